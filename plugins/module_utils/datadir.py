# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a data directory says about itself when its server is not running.

``pg_controldata`` gives the cluster state (shut down cleanly or not), the latest
checkpoint and its timeline; ``pg_waldump`` finds where the valid WAL on disk ends.
Failover uses the end of WAL of a dead primary as the reference of what it may have
held; switchover checks that the candidate received the old primary's shutdown
checkpoint; a standby about to follow a new timeline is checked against the fork point.

The parsers are pure (unit-tested); ``read_controldata`` and ``find_wal_end`` run
the programs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import subprocess

from ansible_collections.pgha.multidc.plugins.module_utils.lsn import format_lsn, parse_lsn

CLEAN_STATES = ('shut down', 'shut down in recovery')
RUNNING_STATES = ('in production', 'in archive recovery', 'in crash recovery', 'starting up', 'shutting down')

_LSN = r'([0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8})'
# pg_waldump reports the end of valid WAL as "error in WAL record at A: <reason>", where A
# is the start of the last record it could read and the reason names the first position
# that holds no valid record. Reasons that carry that position, newest wording first.
_END_PATTERNS = (
    re.compile(r'invalid record length at ' + _LSN),
    re.compile(r'record with invalid length at ' + _LSN),
    re.compile(r'invalid resource manager ID \d+ at ' + _LSN),
    re.compile(r'record with incorrect prev-link ' + _LSN + r' at ' + _LSN),
    re.compile(r'incorrect resource manager data checksum in record at ' + _LSN),
    re.compile(r'missing contrecord at ' + _LSN),
    re.compile(r'there is no contrecord flag at ' + _LSN),
)
# Page-level reasons name a segment and an offset: the valid WAL ended before that page.
_PAGE_PATTERN = re.compile(r'in (?:WAL|log) segment ([0-9A-Fa-f]{24}), (?:LSN ' + _LSN + r', )?offset (\d+)')
_LAST_READ = re.compile(r'error in WAL record at ' + _LSN)
_NO_RECORD = re.compile(r'could not find a valid record after ' + _LSN)
_MISSING_FILE = re.compile(r'could not (?:find|open) file "?([^"\s]*?([0-9A-Fa-f]{24}))"?')

# What the summary keeps of pg_controldata, under stable names.
_CONTROLDATA_KEYS = {
    'pg_control version number': 'pg_control_version',
    'Database system identifier': 'system_identifier',
    'Database cluster state': 'state',
    'Latest checkpoint location': 'checkpoint_lsn',
    "Latest checkpoint's REDO location": 'redo_lsn',
    "Latest checkpoint's TimeLineID": 'timeline',
    "Latest checkpoint's PrevTimeLineID": 'prev_timeline',
    'Minimum recovery ending location': 'min_recovery_end_lsn',
    "Min recovery ending loc's timeline": 'min_recovery_end_timeline',
    'Backup start location': 'backup_start_lsn',
    'wal_log_hints setting': 'wal_log_hints',
    'Data page checksum version': 'data_checksum_version',
    'Bytes per WAL segment': 'wal_segment_size',
    'Time of latest checkpoint': 'checkpoint_time',
}


class DatadirError(Exception):
    pass


def parse_controldata(text):
    """The output of pg_controldata as a summary dict (raw lines under ``raw``)."""
    raw = {}
    for line in (text or '').splitlines():
        if ':' not in line:
            continue
        key, _sep, value = line.partition(':')
        raw[key.strip()] = value.strip()
    summary = {'raw': raw}
    for key, name in _CONTROLDATA_KEYS.items():
        summary[name] = raw.get(key)
    for name in ('timeline', 'prev_timeline', 'min_recovery_end_timeline', 'wal_segment_size',
                 'data_checksum_version', 'pg_control_version'):
        if summary.get(name) is not None and str(summary[name]).isdigit():
            summary[name] = int(summary[name])
    summary['wal_log_hints'] = summary.get('wal_log_hints') == 'on'
    summary['data_checksums'] = bool(summary.get('data_checksum_version'))
    summary['clean_shutdown'] = summary.get('state') in CLEAN_STATES
    summary['rewindable'] = summary['wal_log_hints'] or summary['data_checksums']
    if summary.get('min_recovery_end_lsn') == '0/0':
        summary['min_recovery_end_lsn'] = None
    if summary.get('backup_start_lsn') == '0/0':
        summary['backup_start_lsn'] = None
    return summary


def segment_start(name, segment_size):
    """Byte position where WAL segment file ``name`` (24 hex digits) begins."""
    log_id = int(name[8:16], 16)
    seg_id = int(name[16:24], 16)
    return (log_id << 32) + seg_id * segment_size


def parse_waldump_end(output, segment_size=16 * 1024 * 1024):
    """Where valid WAL ends, from what ``pg_waldump`` printed when it stopped.

    Returns ``(lsn, exact, detail)``: ``exact`` is False when only a lower bound is known
    (the start of the last record read, or a page boundary). ``lsn`` is None when the
    output says nothing usable.
    """
    text = ' '.join((output or '').split())
    last_read = _LAST_READ.search(text)
    for pattern in _END_PATTERNS:
        match = pattern.search(text)
        if match:
            return format_lsn(parse_lsn(match.groups()[-1])), True, match.group(0)
    match = _PAGE_PATTERN.search(text)
    if match:
        if match.group(2):
            page = parse_lsn(match.group(2))
        else:
            page = segment_start(match.group(1), segment_size) + int(match.group(3))
        # The last record ended at or before this page; when it ended inside the previous
        # page, its start is the better bound we know.
        if last_read and parse_lsn(last_read.group(1)) > page:
            page = parse_lsn(last_read.group(1))
        return format_lsn(page), False, match.group(0)
    match = _MISSING_FILE.search(text)
    if match:
        # Ran out of segment files: the WAL ends where the missing segment would begin.
        return format_lsn(segment_start(match.group(2), segment_size)), True, match.group(0)
    if last_read:
        return format_lsn(parse_lsn(last_read.group(1))), False, last_read.group(0)
    match = _NO_RECORD.search(text)
    if match:
        return format_lsn(parse_lsn(match.group(1))), False, match.group(0)
    return None, False, text[-300:] if text else 'pg_waldump printed nothing'


def latest_timeline(wal_dir):
    """(timeline, switchpoint) of the newest timeline history file in ``wal_dir``, else (None, None)."""
    best = None
    try:
        names = os.listdir(wal_dir)
    except OSError:
        return None, None
    for name in names:
        match = re.match(r'^([0-9A-Fa-f]{8})\.history$', name)
        if match:
            tli = int(match.group(1), 16)
            if best is None or tli > best:
                best = tli
    if best is None:
        return None, None
    switchpoint = None
    try:
        with open(os.path.join(wal_dir, '%08X.history' % best)) as handle:
            for line in handle:
                fields = line.split()
                if len(fields) >= 2 and fields[0].isdigit():
                    switchpoint = fields[1]
    except (IOError, OSError):
        pass
    return best, switchpoint


def run(argv, timeout=120):
    """(rc, stdout, stderr) of a program with the C locale (messages parsed in English)."""
    env = dict(os.environ, LC_ALL='C', LANG='C', LC_MESSAGES='C')
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                universal_newlines=True)
    except OSError as error:
        raise DatadirError('cannot run %s: %s' % (argv[0], error))
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise DatadirError('%s did not finish within %d s' % (os.path.basename(argv[0]), timeout))
    return proc.returncode, out, err


def read_controldata(bindir, data_directory):
    rc, out, err = run([os.path.join(bindir, 'pg_controldata'), '-D', data_directory])
    if rc != 0:
        raise DatadirError('pg_controldata failed on %s: %s' % (data_directory, (err or out).strip()))
    return parse_controldata(out)


def find_wal_end(bindir, data_directory, controldata, start=None, timeout=300):
    """The end of the valid WAL in ``data_directory``/pg_wal.

    Reads with pg_waldump from ``start`` (default: the latest checkpoint's REDO location,
    which PostgreSQL always keeps) on the newest timeline found in pg_wal (its history
    file gives the switch point when that timeline began after the checkpoint) to the
    first position that holds no valid record. Returns a dict with ``lsn``, ``exact``,
    ``timeline``, ``start`` and ``detail`` (the pg_waldump message it was read from).
    """
    wal_dir = os.path.join(data_directory, 'pg_wal')
    timeline = controldata.get('timeline')
    start = start or controldata.get('redo_lsn')
    newest, switchpoint = latest_timeline(wal_dir)
    if newest is not None and timeline is not None and newest > timeline:
        timeline = newest
        if switchpoint and parse_lsn(switchpoint) > parse_lsn(start):
            start = switchpoint
    if not start or timeline is None:
        raise DatadirError('pg_controldata gave no checkpoint to start reading WAL from')
    argv = [os.path.join(bindir, 'pg_waldump'), '--quiet', '--path', wal_dir,
            '--timeline', str(timeline), '--start', start]
    rc, out, err = run(argv, timeout=timeout)
    segment_size = controldata.get('wal_segment_size') or 16 * 1024 * 1024
    lsn, exact, detail = parse_waldump_end(err + ' ' + out, segment_size)
    if lsn is None:
        raise DatadirError('cannot tell where the WAL ends from pg_waldump (exit code %d): %s' % (rc, detail))
    if parse_lsn(lsn) < parse_lsn(start):
        lsn, exact = start, False
    return {'lsn': lsn, 'exact': exact, 'timeline': timeline, 'start': start, 'detail': detail}

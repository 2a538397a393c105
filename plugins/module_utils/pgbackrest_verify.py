# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Proof that a pgBackRest backup restores: "a backup that was never restored is not a backup".

On the repository host, as the owner of the repository:

1. ``pgbackrest verify``: pgBackRest's own check of the checksum and size of every file of
   every backup and of the WAL archive, against the backup manifests. Each damaged file is
   named (pgBackRest 2.45 logs them at level INFO and exits 0 even when it found some: the
   report's ``status: error`` is what says so).
2. ``pgbackrest restore`` of the latest backup (or a named one) into a scratch directory
   (``--reset-pg1-host``: the repository host's configuration names the database hosts;
   tablespaces mapped into the scratch directory too, so nothing is written elsewhere).
3. A throwaway PostgreSQL server on that copy, as this user, reachable only through a Unix
   socket in the scratch directory (``listen_addresses`` empty; the port number only names
   the socket), replays the archive to its end (or stops at the backup's consistency
   point, ``immediate``) and promotes itself.
4. Checks on it: it accepts connections, the row counts of named tables (each against an
   optional minimum), optionally ``pg_amcheck``.
5. Always (also when a step failed): the server is stopped and the scratch directory removed.

The throwaway server can never write into the repository: ``archive_mode``,
``archive_command``, ``archive_library``, ``recovery_end_command`` and
``archive_cleanup_command`` are forced off on its command line (which wins over any
configuration file of the backup), so neither its WAL nor the history file of the timeline
its promotion starts is pushed; its ``restore_command`` is an ``archive-get``, which only
reads, synchronous (``--no-archive-async``: no spool shared with a database host).

The pure parts (inputs, the reading of pgBackRest's and psql's output, the command lines,
the settings) are unit tested; ``Verification`` runs the processes, exercised by
tests/integration/test_pgbackrest_verify.py on real servers.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import time

from ansible_collections.pgha.multidc.plugins.module_utils.basebackup import (
    clean_environment, clear_directory, filesystem_space, find_bindir, run_tool)
from ansible_collections.pgha.multidc.plugins.module_utils.lsn import pretty_bytes
from ansible_collections.pgha.multidc.plugins.module_utils.pgbackrest import (
    PgbackrestError, describe_failure, validate_label, validate_stanza)
from ansible_collections.pgha.multidc.plugins.module_utils.pgbackrest_run import check_common, read_info

DEFAULT_SCRATCH_DIR = '/var/lib/postgresql/pgha-verify'
RESTORE_TYPES = ('default', 'immediate')
# The file that marks a scratch directory as ours; a verification holds a lock on it.
MARKER = '.pgha-verify'
# Free space asked for on top of the backup's size: 10 % and room for WAL (the segments
# fetched during recovery and the end-of-recovery checkpoint's).
SPACE_MARGIN_PERCENT = 10
WAL_HEADROOM_BYTES = 256 * 1024 * 1024
# Reasons pgBackRest gives for a file that fails verification (verifyErrorMsg).
_FILE_REASONS = ('file missing', 'invalid checksum', 'invalid size')
_LOG_PREFIX = r'^(?:\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} )?(?:P\d+\s+)?(INFO|WARN|ERROR|DETAIL): '
_FILE_RE = re.compile(_LOG_PREFIX + r'(%s) \'(.+)\'$' % '|'.join(_FILE_REASONS))
# A file whose check itself failed (a decompression error of a damaged file, for example).
_OTHER_RE = re.compile(_LOG_PREFIX + r'(invalid verify|unknown error) (\S+): \[(\d+)\] (.*)$')
_WARN_RE = re.compile(_LOG_PREFIX.replace('(INFO|WARN|ERROR|DETAIL)', '(WARN)') + r'(.*)$')
_PAIR_RE = re.compile(r'^([a-zA-Z ]+): (.*)$')
_BACKUP_DIR_RE = re.compile(r'^\d{8}-\d{6}F(_\d{8}-\d{6}[DI])?/')
_MISSING_TABLE = 'pgha-verify: no such table'
# Settings of the throwaway server given on its command line: they win over the backup's
# postgresql.auto.conf and whatever configuration file it carries.
_NEVER_ARCHIVE = (('archive_mode', 'off'), ('archive_command', ''), ('archive_library', ''),
                  ('recovery_end_command', ''), ('archive_cleanup_command', ''))


class VerifyError(PgbackrestError):
    """A failed verification, with a message that names what failed."""


# -- inputs ------------------------------------------------------------------------------

def _minimum(name, value):
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise VerifyError('table %s: the minimum row count %r is not a whole number' % (name, value))
    try:
        number = int(str(value).strip())
    except ValueError:
        raise VerifyError('table %s: the minimum row count %r is not a whole number' % (name, value))
    if number < 0:
        raise VerifyError('table %s: the minimum row count %d is negative' % (name, number))
    return number


def _table_name(name):
    name = str(name).strip()
    if not name:
        raise VerifyError('tables: an empty table name')
    if len(name) > 200 or any(ord(char) < 32 for char in name):
        raise VerifyError('tables: %r is not a table name' % (name,))
    return name


def parse_tables(value):
    """The tables to count, ``[{'name', 'minimum'}]`` in the order given, from

    - a dict ``{name: minimum}`` (a null or empty minimum: count only);
    - a list of ``name`` or ``name=minimum`` strings;
    - a string of those separated by commas or new lines (an AWX survey's text answer),
      for example ``public.orders=1000, customers``.

    A name is read by the server as SQL reads it (``to_regclass``): schema-qualified or not,
    folded to lower case unless double-quoted.
    """
    if value in (None, '', [], {}):
        return []
    if isinstance(value, dict):
        items = list(value.items())
    else:
        entries = value if isinstance(value, (list, tuple)) else re.split(r'[,\n]', str(value))
        items = []
        for entry in entries:
            entry = str(entry).strip()
            if not entry:
                continue
            name, sep, minimum = entry.partition('=')
            items.append((name, minimum if sep else None))
    tables, seen = [], set()
    for name, minimum in items:
        name = _table_name(name)
        if name in seen:
            raise VerifyError('tables: %s is named twice' % name)
        seen.add(name)
        tables.append({'name': name, 'minimum': _minimum(name, minimum)})
    return tables


def check_scratch_path(path):
    """Refuse a scratch directory that is not a dedicated absolute path: it is removed afterwards."""
    if not path or not os.path.isabs(path):
        raise VerifyError('scratch_dir %r: give an absolute path' % (path,))
    normal = os.path.normpath(path)
    if normal.count('/') < 2 or normal in ('/var/lib/postgresql', '/var/lib/pgbackrest', '/tmp', '/var/tmp',
                                           '/home', '/root', '/srv'):
        raise VerifyError('scratch_dir %s: give a directory of its own (it is removed afterwards), '
                          'for example %s' % (path, DEFAULT_SCRATCH_DIR))
    return normal


# -- pgbackrest verify -------------------------------------------------------------------

def verify_argv(stanza, config, executable='pgbackrest', process_max=None):
    """``pgbackrest verify``: the report on stdout (``--output=text --verbose``), the log -
    where the damaged files are named - on stderr at level INFO, without time stamps."""
    argv = [executable, '--config=%s' % config, '--stanza=%s' % validate_stanza(stanza), '--output=text',
            '--verbose', '--log-level-console=off', '--log-level-stderr=info', '--no-log-timestamp']
    if process_max is not None:
        argv.append('--process-max=%d' % process_max)
    argv.append('verify')
    return argv


def _counters(text):
    counters = {}
    for part in text.split(','):
        key, sep, value = part.strip().partition(': ')
        if sep and value.strip().isdigit():
            counters[key.strip().replace(' ', '_')] = int(value)
    return counters


def parse_verify_report(text):
    """The report of ``pgbackrest verify --output=text --verbose``:

    ``{'stanza', 'status' ('ok'|'error'|None when it printed nothing), 'archives': [{'archive_id',
    'wal_checked', 'wal_valid', 'missing', 'checksum_invalid', 'size_invalid', 'other'}],
    'backups': [{'label', 'status' ('valid', 'invalid', 'manifest missing', 'in-progress'),
    'files_checked', 'files_valid', 'missing', ...}], 'notes': [other lines]}``.
    """
    report = {'stanza': None, 'status': None, 'archives': [], 'backups': [], 'notes': []}
    current = None
    for raw in (text or '').splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith('stanza: '):
            report['stanza'] = line[len('stanza: '):].strip()
        elif line.startswith('status: ') and not raw.startswith(' '):
            report['status'] = line[len('status: '):].strip()
        elif line.startswith('archiveId: ') and not line.endswith('none found'):
            archive_id, rest = line[len('archiveId: '):].split(',', 1) if ',' in line else (line[11:], '')
            counters = _counters(rest)
            current = {'archive_id': archive_id.strip(), 'wal_checked': counters.get('total_WAL_checked'),
                       'wal_valid': counters.get('total_valid_WAL')}
            report['archives'].append(current)
        elif line.startswith('backup: ') and not line.endswith('none found'):
            fields = [part.strip() for part in line[len('backup: '):].split(',')]
            counters = _counters(', '.join(fields[1:]))
            status = fields[1].partition(': ')[2] if len(fields) > 1 else None
            current = {'label': fields[0], 'status': status, 'files_checked': counters.get('total_files_checked'),
                       'files_valid': counters.get('total_valid_files')}
            report['backups'].append(current)
        elif current is not None and _PAIR_RE.match(line.split(',')[0]) and _counters(line):
            current.update(_counters(line))
        else:
            report['notes'].append(line)
    for entry in report['archives'] + report['backups']:
        entry.update((key, entry.get(key, 0)) for key in ('missing', 'checksum_invalid', 'size_invalid', 'other'))
    return report


def repository_path(path, stanza):
    """Where a file pgBackRest names (relative to the stanza) is in the repository."""
    kind = 'backup' if _BACKUP_DIR_RE.match(path) else 'archive'
    return '%s/%s/%s' % (kind, stanza, path)


def parse_verify_log(text, stanza):
    """The damaged files and the warnings in what ``pgbackrest verify`` logged.

    ``files``: ``[{'path' (in the repository: backup/<stanza>/<label>/... or
    archive/<stanza>/<archive id>/...), 'reason', 'counted'}]``; ``counted`` is false for a
    missing WAL segment, which pgBackRest only warns about (expire removes WAL legitimately).
    ``warnings``: the other WARN lines (an info file and its copy that differ, ...).
    """
    files, warnings = [], []
    for line in (text or '').splitlines():
        found = _FILE_RE.match(line)
        if found:
            level, reason, path = found.groups()
            files.append({'path': repository_path(path, stanza), 'reason': reason, 'counted': level != 'WARN'})
            continue
        other = _OTHER_RE.match(line)
        if other:
            level, dummy, path, code, message = other.groups()
            files.append({'path': repository_path(path, stanza), 'reason': 'unreadable: [%s] %s' % (code, message.strip()),
                          'counted': True})
            continue
        warning = _WARN_RE.match(line)
        if warning:
            warnings.append(warning.group(2).strip())
    return {'files': files, 'warnings': warnings}


def verify_problems(report, log, stanza):
    """Why the repository does not pass ``pgbackrest verify`` (an empty list when it does)."""
    problems = []
    damaged = [item for item in log['files'] if item['counted']]
    if damaged:
        problems.append('%d damaged file(s) in the repository: %s' % (
            len(damaged), '; '.join('%s (%s)' % (item['path'], item['reason']) for item in damaged)))
    bad = [backup for backup in report['backups'] if backup['status'] not in ('valid', 'in-progress')]
    if bad:
        problems.append('backup(s) %s' % ', '.join('%s %s' % (backup['label'], backup['status']) for backup in bad))
    if report['status'] == 'error' and not problems:
        problems.append('; '.join(report['notes'] + log['warnings']) or 'status: error')
    elif report['status'] not in ('ok', 'error'):
        problems.append('pgbackrest verify printed no report (stanza %s)' % stanza)
    return problems


# -- the backup ---------------------------------------------------------------------------

def choose_backup(summary, label=None):
    """The backup to verify: ``label``, or the newest one pgBackRest does not mark as in error."""
    backups = [backup for backup in summary['backups'] if not backup['error']]
    if label:
        validate_label(label)
        chosen = [backup for backup in summary['backups'] if backup['label'] == label]
        if not chosen:
            raise VerifyError('backup %s is not in stanza %s (its backups: %s)' % (
                label, summary['stanza'], ', '.join(backup['label'] for backup in summary['backups']) or 'none'))
        return chosen[0]
    if not backups:
        raise VerifyError('stanza %s has no backup to verify%s' % (
            summary['stanza'], ' (status: %s)' % summary['status']['message'] if summary['status'].get('message') else ''))
    return backups[-1]


def space_problem(needed, available, path):
    if needed <= available:
        return None
    return ('not enough free space for the scratch copy at %s: needed %s (the backup\'s database size + %d %% '
            '+ %s for WAL), available %s'
            % (path, pretty_bytes(needed), SPACE_MARGIN_PERCENT, pretty_bytes(WAL_HEADROOM_BYTES),
               pretty_bytes(available)))


def space_needed(database_size):
    return int((database_size or 0) * (1 + SPACE_MARGIN_PERCENT / 100.0)) + WAL_HEADROOM_BYTES


# -- the restore --------------------------------------------------------------------------

def scratch_layout(scratch_dir):
    """The paths inside the scratch directory."""
    return {
        'root': scratch_dir,
        'marker': os.path.join(scratch_dir, MARKER),
        'data': os.path.join(scratch_dir, 'data'),
        'tablespaces': os.path.join(scratch_dir, 'tablespaces'),
        'run': os.path.join(scratch_dir, 'run'),
        'log': os.path.join(scratch_dir, 'server.log'),
        'conf': os.path.join(scratch_dir, 'postgresql.conf'),
        'hba': os.path.join(scratch_dir, 'pg_hba.conf'),
        'ident': os.path.join(scratch_dir, 'pg_ident.conf'),
    }


def _base(stanza, config, executable):
    return [executable, '--config=%s' % config, '--stanza=%s' % validate_stanza(stanza)]


def scratch_restore_command(stanza, config, data_directory, executable='pgbackrest'):
    """The throwaway server's restore_command: archive-get (reads only) as if this host were
    the database host of the scratch copy, synchronous so that no spool is involved."""
    for path in (config, data_directory, executable):
        if any(char.isspace() or char in '\'"\\%' for char in path):
            raise VerifyError('path %r: no spaces, quotes, backslashes or %% in it (it goes into restore_command)'
                              % (path,))
    return ' '.join(_base(stanza, config, executable) + [
        '--reset-pg1-host', '--pg1-path=%s' % data_directory, '--no-archive-async', 'archive-get', '%f', '"%p"'])


def restore_argv(stanza, config, layout, label, restore_type='default', process_max=None, executable='pgbackrest'):
    """``pgbackrest restore`` of backup ``label`` into the scratch directory.

    ``--reset-pg1-host``: on the repository host pg1 is a database host, and pgBackRest only
    restores where the data directory is local. Tablespaces go under the scratch directory
    (never to the paths they had on the database host), links are restored as directories,
    the restored configuration gets ``archive_mode=off``. ``default`` replays the archive to
    its end and promotes; ``immediate`` stops as soon as the backup is consistent.
    """
    if restore_type not in RESTORE_TYPES:
        raise VerifyError('type %r: one of %s' % (restore_type, ', '.join(RESTORE_TYPES)))
    argv = _base(stanza, config, executable) + [
        '--reset-pg1-host', '--pg1-path=%s' % layout['data'], '--set=%s' % validate_label(label),
        '--type=%s' % restore_type, '--archive-mode=off', '--tablespace-map-all=%s' % layout['tablespaces']]
    if restore_type == 'immediate':
        argv.append('--target-action=promote')
    if process_max is not None:
        if not 1 <= int(process_max) <= 999:
            raise VerifyError('process_max %r: from 1 to 999' % (process_max,))
        argv.append('--process-max=%d' % int(process_max))
    argv.append('restore')
    return argv


# -- the throwaway server -----------------------------------------------------------------

HBA = ('# pgha.multidc pgbackrest_verify: the throwaway server of a backup verification.\n'
       '# Its socket is in a directory only its owner can enter; no TCP listener.\n'
       'local all all trust\n')


def server_settings(layout, port, restore_command):
    """The throwaway server's settings, all given on its command line (``-c``)."""
    settings = [
        ('config_file', layout['conf']),
        ('hba_file', layout['hba']),
        ('ident_file', layout['ident']),
        ('listen_addresses', ''),
        ('port', str(port)),
        ('unix_socket_directories', layout['run']),
        ('cluster_name', 'pgha-verify'),
        ('restore_command', restore_command),
    ]
    settings += list(_NEVER_ARCHIVE)
    settings += [
        # No streaming, no standby: a recovery that ends and promotes.
        ('primary_conninfo', ''),
        ('primary_slot_name', ''),
        # Without connections during recovery PostgreSQL does not pause it for settings
        # below the primary's (max_connections, ...); the server answers once promoted.
        ('hot_standby', 'off'),
        # The database hosts' settings that would stop it here or make the checks wait.
        ('synchronous_standby_names', ''),
        ('shared_preload_libraries', ''),
        ('ssl', 'off'),
        ('logging_collector', 'off'),
        ('log_destination', 'stderr'),
        ('shared_buffers', '128MB'),
        ('huge_pages', 'off'),
        ('max_connections', '20'),
        ('default_transaction_read_only', 'off'),
        ('statement_timeout', '0'),
        ('lock_timeout', '0'),
        ('idle_in_transaction_session_timeout', '0'),
    ]
    return settings


def postgres_argv(bindir, layout, port, restore_command):
    argv = [os.path.join(bindir, 'postgres'), '-D', layout['data']]
    for key, value in server_settings(layout, port, restore_command):
        argv += ['-c', '%s=%s' % (key, value)]
    return argv


def free_port():
    """A TCP port nobody listens on at 127.0.0.1 (only the socket's name here)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def psql_argv(bindir, layout, port, database, user):
    return [os.path.join(bindir, 'psql'), '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', layout['run'],
            '-p', str(port), '-U', user, '-d', database, '--no-password']


# One table's count: the name is a psql variable given as a quoted literal (:'table') and
# read by the server (to_regclass); the relation it names is quoted by the server too.
COUNT_SCRIPT = ("SELECT to_regclass(:'table')::text AS pgha_rel \\gset\n"
                "\\if :{?pgha_rel}\n"
                "SELECT count(*) FROM :pgha_rel;\n"
                "\\else\n"
                "\\echo '%s'\n"
                "\\endif\n" % _MISSING_TABLE)


def parse_count(output):
    """A count from psql's output: an int, or None for a table that does not exist."""
    lines = [line.strip() for line in (output or '').splitlines() if line.strip()]
    if lines and lines[-1] == _MISSING_TABLE:
        return None
    if not lines or not lines[-1].isdigit():
        raise VerifyError('unexpected output of the count: %r' % (output,))
    return int(lines[-1])


def count_problems(tables, counts, database):
    """The tables missing or with fewer rows than their minimum."""
    problems = []
    for table in tables:
        count = counts.get(table['name'])
        if count is None:
            problems.append('table %s does not exist in database %s' % (table['name'], database))
        elif table['minimum'] is not None and count < table['minimum']:
            problems.append('table %s has %d rows, fewer than the minimum %d' % (table['name'], count, table['minimum']))
    return problems


def log_tail(text, count=12):
    lines = [line for line in (text or '').splitlines() if line.strip()]
    return '\n'.join(lines[-count:])


# -- the scratch directory ---------------------------------------------------------------

SCRATCH_ABSENT = 'absent'
SCRATCH_EMPTY = 'empty'
SCRATCH_OURS = 'ours'
SCRATCH_OTHER = 'other'


def scratch_state(path):
    """absent, empty, ours (has our marker: left by a verification that did not finish) or other."""
    if not os.path.lexists(path):
        return SCRATCH_ABSENT
    if os.path.islink(path) or not os.path.isdir(path):
        return SCRATCH_OTHER
    entries = os.listdir(path)
    if not entries:
        return SCRATCH_EMPTY
    return SCRATCH_OURS if MARKER in entries else SCRATCH_OTHER


def read_pid(data_directory):
    try:
        with open(os.path.join(data_directory, 'postmaster.pid')) as handle:
            first = handle.readline().strip()
    except (IOError, OSError):
        return None
    return int(first) if first.isdigit() and int(first) > 0 else None


def _alive(pid):
    try:
        os.kill(pid, 0)
    except OSError as error:
        return error.errno == errno.EPERM
    return True


class Verification:
    """The steps, in order, and the cleanup that always runs. ``params``: the module's."""

    def __init__(self, params, bindir, log=None):
        self.params = params
        self.bindir = bindir
        self.layout = scratch_layout(params['scratch_dir'])
        self.port = params.get('port') or free_port()
        self.lock = None
        self.owned = False
        self.server = None
        self.server_log = None
        self.log = log or (lambda message: None)
        self.result = {}

    # -- the scratch directory --
    def _lock(self):
        handle = open(self.layout['marker'], 'a')
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise VerifyError('another verification runs in %s (it holds the lock on %s); nothing was changed'
                              % (self.layout['root'], MARKER))
        self.lock = handle

    def take_scratch(self):
        """Make the scratch directory ours: created (0700) with its marker locked for this run;
        a directory left by a run that did not finish (its marker not locked) is cleaned first
        (its server stopped). Nothing is touched when it fails. Returns whether leftovers were
        removed."""
        root = self.layout['root']
        state = scratch_state(root)
        if state == SCRATCH_OTHER:
            raise VerifyError('scratch_dir %s exists and is not a scratch directory of pgbackrest_verify (no %s in it): '
                              'give a directory that does not exist yet; nothing was changed' % (root, MARKER))
        if state == SCRATCH_ABSENT:
            try:
                os.makedirs(root, 0o700)
            except FileExistsError:
                raise VerifyError('another verification created %s just now; nothing was changed' % root)
        self._lock()
        self.owned = True
        removed = state == SCRATCH_OURS
        if removed:
            self.stop_leftover()
            self.clear(keep_marker=True)
        os.chmod(root, 0o700)
        with open(self.layout['marker'], 'w') as handle:
            handle.write('pgha.multidc pgbackrest_verify, pid %d: this directory is removed when it ends\n' % os.getpid())
        for key in ('data', 'run', 'tablespaces'):
            os.makedirs(self.layout[key], 0o700)
        return removed

    def stop_leftover(self):
        pid = read_pid(self.layout['data'])
        if pid and _alive(pid):
            run_tool([os.path.join(self.bindir, 'pg_ctl'), 'stop', '-D', self.layout['data'], '-m', 'immediate', '-w',
                      '-t', '60'], timeout=90, cwd='/')

    def clear(self, keep_marker=False):
        clear_directory(self.layout['root'], keep=(MARKER,) if keep_marker else ())

    def remove_scratch(self):
        """Remove the scratch directory (only its contents when it is a mount point)."""
        root = self.layout['root']
        if not os.path.lexists(root):
            return True
        if os.path.ismount(root):
            self.clear()
            return not os.listdir(root)
        shutil.rmtree(root)
        return not os.path.lexists(root)

    # -- pgBackRest --
    def run_verify(self):
        params = self.params
        argv = verify_argv(params['stanza'], params['config'], params['executable'], params.get('process_max'))
        started = time.monotonic()
        rc, out, err = run_tool(argv, timeout=params['timeout'], env=clean_environment(), cwd='/')
        seconds = round(time.monotonic() - started, 1)
        report, log = parse_verify_report(out), parse_verify_log(err, params['stanza'])
        summary = {'status': report['status'], 'seconds': seconds, 'damaged_files': log['files'],
                   'backups': report['backups'], 'archives': report['archives'], 'warnings': log['warnings']}
        if rc != 0:
            summary['problems'] = [describe_failure('verify', rc, out + err)]
        else:
            summary['problems'] = verify_problems(report, log, params['stanza'])
        return summary

    def restore(self, label):
        params = self.params
        argv = restore_argv(params['stanza'], params['config'], self.layout, label, params['type'],
                            params.get('process_max'), params['executable'])
        started = time.monotonic()
        rc, out, err = run_tool(argv, timeout=params['timeout'], env=clean_environment(), cwd='/')
        seconds = round(time.monotonic() - started, 1)
        if rc != 0:
            raise VerifyError('%s (after %s s)' % (describe_failure('restore', rc, out + err), seconds))
        return seconds

    # -- the server --
    def start(self):
        params = self.params
        with open(self.layout['conf'], 'w') as handle:
            handle.write('# pgha.multidc pgbackrest_verify: every setting is on the command line.\n')
        with open(self.layout['hba'], 'w') as handle:
            handle.write(HBA)
        with open(self.layout['ident'], 'w') as handle:
            handle.write('')
        command = scratch_restore_command(params['stanza'], params['config'], self.layout['data'], params['executable'])
        self.server_log = open(self.layout['log'], 'ab')
        self.server = subprocess.Popen(postgres_argv(self.bindir, self.layout, self.port, command),
                                       stdin=subprocess.DEVNULL, stdout=self.server_log, stderr=subprocess.STDOUT,
                                       env=clean_environment(), cwd=self.layout['root'], close_fds=True,
                                       start_new_session=True)

    def read_log(self):
        try:
            with open(self.layout['log'], errors='replace') as handle:
                return handle.read()
        except (IOError, OSError):
            return ''

    def psql(self, sql=None, script=None, variables=None, database=None, timeout=None):
        argv = psql_argv(self.bindir, self.layout, self.port, database or self.params['database'], self.params['user'])
        for key, value in (variables or {}).items():
            argv += ['-v', '%s=%s' % (key, value)]
        if sql is not None:
            argv += ['-c', sql]
        proc = subprocess.run(argv, input=(script or '').encode('utf-8'), stdout=subprocess.PIPE,  # pylint: disable=subprocess-run-check
                              stderr=subprocess.PIPE, env=clean_environment(), cwd='/',
                              timeout=timeout or self.params['timeout'])
        return proc.returncode, proc.stdout.decode('utf-8', 'replace'), proc.stderr.decode('utf-8', 'replace')

    def wait_recovered(self):
        """Seconds until the server accepts connections out of recovery; raise with its log
        when it stops or the time runs out."""
        started = time.monotonic()
        deadline = started + self.params['recovery_timeout']
        while True:
            if self.server.poll() is not None:
                raise VerifyError('the restored server stopped during recovery (exit status %s); its log ends with:\n%s'
                                  % (self.server.returncode, log_tail(self.read_log())))
            rc, out, err = self.psql('SELECT pg_is_in_recovery()', database='postgres', timeout=30)
            if rc == 0 and out.strip() == 'f':
                return round(time.monotonic() - started, 1)
            if time.monotonic() > deadline:
                raise VerifyError('the restored server did not finish recovery within %d s (recovery_timeout); its log '
                                  'ends with:\n%s' % (self.params['recovery_timeout'], log_tail(self.read_log())))
            time.sleep(0.5)

    def recovery_facts(self):
        rc, out, err = self.psql(
            "SELECT pg_last_wal_replay_lsn(), "
            "coalesce(to_char(pg_last_xact_replay_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''), "
            "substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8), current_setting('server_version'), "
            "current_setting('archive_mode')", database='postgres', timeout=60)
        if rc != 0:
            raise VerifyError('cannot read the restored server: %s' % err.strip())
        lsn, last_xact, timeline, version, archive_mode = out.strip().split('|')
        if archive_mode != 'off':
            raise VerifyError('the restored server runs with archive_mode=%s: stopped, it must never archive'
                              % archive_mode)
        return {'end_lsn': lsn, 'last_transaction_time': last_xact or None, 'timeline': int(timeline, 16),
                'postgresql_version': version}

    def count(self, tables):
        counts = {}
        for table in tables:
            rc, out, err = self.psql(script=COUNT_SCRIPT, variables={'table': table['name']})
            if rc != 0:
                raise VerifyError('table %s: the count failed: %s' % (table['name'], err.strip()))
            counts[table['name']] = parse_count(out)
        return counts

    def amcheck(self):
        tool = os.path.join(self.bindir, 'pg_amcheck')
        if not os.access(tool, os.X_OK):
            return {'ran': False, 'passed': None, 'output': '%s is not installed' % tool, 'seconds': None}
        started = time.monotonic()
        rc, out, err = run_tool([tool, '-h', self.layout['run'], '-p', str(self.port), '-U', self.params['user'],
                                 '--no-password', '--all', '--install-missing'],
                                timeout=self.params['timeout'], env=clean_environment(), cwd='/')
        return {'ran': True, 'passed': rc == 0, 'output': log_tail(out + err, 20),
                'seconds': round(time.monotonic() - started, 1)}

    def stop(self):
        """Stop the throwaway server: fast, then immediate, then SIGKILL of its process group."""
        if self.server is None:
            return
        if self.server.poll() is None:
            pg_ctl = os.path.join(self.bindir, 'pg_ctl')
            for mode in ('fast', 'immediate'):
                run_tool([pg_ctl, 'stop', '-D', self.layout['data'], '-m', mode, '-w', '-t', '60'], timeout=90, cwd='/')
                try:
                    self.server.wait(10)
                    break
                except subprocess.TimeoutExpired:
                    continue
            if self.server.poll() is None:
                try:
                    os.killpg(self.server.pid, signal.SIGKILL)
                except OSError:
                    pass
                self.server.wait(30)
        if self.server_log is not None:
            self.server_log.close()
            self.server_log = None

    def release(self):
        if self.lock is not None:
            self.lock.close()
            self.lock = None


# -- the whole verification -----------------------------------------------------------------

def prepare(params, info, bindir_finder=find_bindir):
    """Every check that changes nothing, and the plan: the inputs, the backup, the
    PostgreSQL binaries of its major version, the scratch directory and its free space.
    ``info``: ``parse_info`` of the stanza. Raises VerifyError with the reason."""
    if os.geteuid() == 0:
        raise VerifyError('run it as the owner of the repository (become_user: postgres), not as root: '
                          'PostgreSQL refuses to run as root')
    if params['type'] not in RESTORE_TYPES:
        raise VerifyError('type %r: one of %s' % (params['type'], ', '.join(RESTORE_TYPES)))
    tables = parse_tables(params['tables'])
    scratch = check_scratch_path(params['scratch_dir'])
    if scratch_state(scratch) == SCRATCH_OTHER:
        raise VerifyError('scratch_dir %s exists and is not a scratch directory of pgbackrest_verify (no %s in it): '
                          'give a directory that does not exist yet; nothing was changed' % (scratch, MARKER))
    backup = choose_backup(info, params['set'])
    major = (info.get('database') or {}).get('version')
    try:
        bindir = bindir_finder(major, params['pg_bindir'], 'postgres')
    except Exception as error:  # BasebackupError: no binaries for that major
        raise VerifyError('the backup is of PostgreSQL %s, whose server binaries this host needs to start a copy: %s'
                          % (major, error))
    space = filesystem_space(scratch)
    needed = space_needed(backup.get('database_size'))
    problem = space_problem(needed, space['available_bytes'], space['path'])
    if problem:
        raise VerifyError(problem + '; nothing was changed')
    layout = scratch_layout(scratch)
    return {
        'tables': tables, 'backup': backup, 'bindir': bindir, 'layout': layout,
        'space': {'path': space['path'], 'needed_bytes': needed, 'available_bytes': space['available_bytes']},
        'commands': {
            'verify': verify_argv(params['stanza'], params['config'], params['executable'], params['process_max'])
            if params['verify_repository'] else None,
            'restore': restore_argv(params['stanza'], params['config'], layout, backup['label'], params['type'],
                                    params['process_max'], params['executable']),
            'restore_command': scratch_restore_command(params['stanza'], params['config'], layout['data'],
                                                       params['executable']),
        },
    }


def describe_plan(params, plan):
    """What a run would do, in words (check mode)."""
    steps = []
    if params['verify_repository']:
        steps.append('pgbackrest verify of stanza %s (the checksums of every backup file and WAL segment)'
                     % params['stanza'])
    steps.append('restore backup %s (%s, ended %s, %s) into %s' % (
        plan['backup']['label'], plan['backup']['type'], plan['backup']['stop'],
        pretty_bytes(plan['backup'].get('database_size') or 0), plan['layout']['data']))
    steps.append('start PostgreSQL from %s on it (socket in %s, archive_mode off), %s, wait for the promotion' % (
        plan['bindir'], plan['layout']['run'],
        'replay the archive to its end' if params['type'] == 'default' else 'stop at the backup\'s consistency point'))
    if plan['tables']:
        steps.append('count the rows of %s in database %s' % (', '.join(
            '%s%s' % (t['name'], ' (at least %d)' % t['minimum'] if t['minimum'] is not None else '')
            for t in plan['tables']), params['database']))
    if params['amcheck']:
        steps.append('pg_amcheck --all')
    steps.append('stop the server and remove %s' % plan['layout']['root'])
    return steps


def _raise_terminated(signum, frame):
    raise VerifyError('stopped by signal %d' % signum)


def plan_from_repository(params):
    """``prepare`` on the stanza as ``pgbackrest info`` shows it now, after the shared
    options and the recovery bound were checked. Raises PgbackrestError with the reason."""
    check_common(params)
    if params['recovery_timeout'] < 1:
        raise PgbackrestError('recovery_timeout must be at least 1 second')
    return prepare(params, read_info(params))


def verdict(params, plan, problems):
    """The one-line verdict of a verification that ran."""
    named = 'backup %s of stanza %s' % (plan['backup']['label'], params['stanza'])
    return '%s failed verification: %s' % (named, '; '.join(problems)) if problems else named + ' verified'


def run(params, plan):
    """Run the verification of ``plan`` (from ``prepare``). Returns (result, problems):
    ``problems`` empty when the backup passed. The server is stopped and the scratch
    directory removed in every case (a SIGTERM included)."""
    backup = plan['backup']
    result = {'label': backup['label'], 'backup': backup, 'type': params['type'], 'verify': None,
              'restore_seconds': None, 'recovery_seconds': None, 'end_lsn': None, 'timeline': None,
              'last_transaction_time': None, 'postgresql_version': None, 'tables': [], 'counts': {},
              'amcheck': None, 'scratch_dir': plan['layout']['root'], 'scratch_removed': False,
              'leftover_removed': False}
    problems = []
    verification = Verification(params, plan['bindir'])
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        result['leftover_removed'] = verification.take_scratch()
        if params['verify_repository']:
            result['verify'] = verification.run_verify()
            if result['verify']['problems']:
                problems.append('pgbackrest verify: %s' % '; '.join(result['verify']['problems']))
                return result, problems
        result['restore_seconds'] = verification.restore(backup['label'])
        verification.start()
        result['recovery_seconds'] = verification.wait_recovered()
        result.update(verification.recovery_facts())
        counts = verification.count(plan['tables'])
        result['counts'] = counts
        result['tables'] = [dict(table, count=counts.get(table['name'])) for table in plan['tables']]
        problems.extend(count_problems(plan['tables'], counts, params['database']))
        if params['amcheck']:
            result['amcheck'] = verification.amcheck()
            if result['amcheck']['ran'] and not result['amcheck']['passed']:
                problems.append('pg_amcheck found problems:\n%s' % result['amcheck']['output'])
    except (VerifyError, PgbackrestError, OSError, subprocess.SubprocessError) as error:
        problems.append(str(error))
    finally:
        try:
            verification.stop()
        finally:
            if verification.owned:
                result['scratch_removed'] = verification.remove_scratch()
            verification.release()
            signal.signal(signal.SIGTERM, previous)
    return result, problems

# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgBackRest: configuration, commands, recovery targets and the reading of its output.

Everything here is pure (no process is started, no file is read) so that the roles can
render the configuration on the control node and the modules stay thin:

- ``repository_host_conf`` / ``database_host_conf``: the ``pgbackrest.conf`` of the
  repository host and of a database host. They talk over pgBackRest's TLS server mode
  (each side runs ``pgbackrest server`` and authenticates the other by the common name
  of its client certificate), so no SSH keys are shared between the hosts. A database
  host without ``repo_host`` keeps its repository in a local path (one machine setups
  and the integration tests).
- ``archive_command`` / ``restore_command``: the PostgreSQL settings.
- ``recovery_target``, ``plan_restore`` and ``restore_argv``: a point-in-time recovery,
  checked against the backups in the repository before anything changes.
- ``parse_info`` (``pgbackrest info --output=json``) and ``parse_errors`` (what a failed
  command printed, for example ``pgbackrest check``).
- ``archive_timeline`` / ``timelines_beyond``: the archive's entries of the timelines
  newer than the running primary's (a promotion the cluster went back from).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import re
import time

from ansible_collections.pgha.multidc.plugins.module_utils.lsn import InvalidLSN, format_lsn, parse_lsn

DEFAULT_CONFIG = '/etc/pgbackrest/pgbackrest.conf'
DEFAULT_TLS_PORT = 8432
HEADER = 'Managed by pgha.multidc'
COMPRESS_TYPES = ('none', 'bz2', 'gz', 'lz4', 'zst')
CIPHER_TYPE = 'aes-256-cbc'
BACKUP_TYPES = ('full', 'diff', 'incr')
TARGET_ACTIONS = ('promote', 'pause', 'shutdown')
ARCHIVE_MODES = ('preserve', 'off')

_STANZA_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$')
_OPTION_RE = re.compile(r'^[a-z0-9][a-z0-9-]*$')
_LABEL_RE = re.compile(r'^\d{8}-\d{6}F(_\d{8}-\d{6}[DI])?$')
# PostgreSQL takes any timestamptz literal; we accept the unambiguous ISO subset and
# require the offset, because without one the server reads it in its own time zone.
_TIME_RE = re.compile(r'^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(\.\d{1,6})?\s*'
                      r'(Z|UTC|[+-]\d{2}(?::?\d{2})?)?$')
# A restore point's name is stored in a 64-byte buffer with its terminating zero.
_MAX_RESTORE_POINT_NAME = 63
# A console line, with or without the log prefix (time and process) of --log-level-console.
_ENTRY_RE = re.compile(r'^(?:\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} P\d+\s+)?(ERROR|WARN): '
                       r'(?:\[(\d{3})\]: )?(.*)$')
_HINT_RE = re.compile(r'^\s*HINT: (.*)$')
# An archive id's directory holds a history file per timeline (00000019.history) and a
# directory per timeline and WAL log (0000001900000000) with that timeline's segments;
# pg_wal the history files and the segments (000000190000000000000031[.partial]).
_ARCHIVE_ENTRY_RE = re.compile(r'^([0-9A-F]{8})(?:\.history|[0-9A-F]{8}|[0-9A-F]{16}(?:\.partial)?)$')
# Error codes seen from pgbackrest (its exit status is the code), named so a caller can
# tell the usual setup mistakes apart; any other code keeps kind ``error``.
ERROR_KINDS = {
    27: 'no_database',          # no pgN-path/pgN-host answered
    38: 'postgres_running',     # restore refused: a postmaster.pid is in the target
    55: 'missing_info_file',    # no stanza-create yet, or a wrong repository path
    75: 'invalid_backup_set',   # --set names no backup
    82: 'archive_timeout',      # the WAL segment did not reach the archive in time
    87: 'archive_mode_off',     # archive_mode is not on
}


class PgbackrestError(ValueError):
    """Bad input or output, with a message that names the value and the rule."""


# -- configuration ---------------------------------------------------------------------

def validate_stanza(name):
    if not isinstance(name, str) or not _STANZA_RE.match(name):
        raise PgbackrestError('stanza %r: use 1-64 letters, digits, "_", "-" or ".", starting with a '
                              'letter or digit' % (name,))
    return name


def default_process_max(cpus):
    """Parallel processes of a backup or restore on a machine with ``cpus`` cores.

    Compression is what costs CPU, one file per process: half the cores leaves the rest to
    the server the backup is taken from, but at least two when there are two, since one
    compressing process is slower than the disk. At most 8: beyond that the network or the
    disk is the limit.
    """
    cpus = max(1, int(cpus or 1))
    return min(8, max(min(cpus, 2), cpus // 2))


def _format_value(key, value):
    if isinstance(value, bool):
        return 'y' if value else 'n'
    text = str(value)
    if '\n' in text or '\r' in text:
        raise PgbackrestError('option %s: a value cannot span lines' % key)
    return text


def render_conf(sections, header=HEADER):
    """The text of a pgbackrest.conf from ``[(section, {option: value})]``, after the
    comment ``header`` (None: none, for a template that has its own).

    None values are left out; booleans become y/n; a list gives one line per element (how
    pgBackRest spells list and key/value options such as tls-server-auth).
    """
    lines = ['# %s' % header] if header else []
    for section, options in sections:
        if lines:
            lines.append('')
        lines.append('[%s]' % section)
        for key, value in options.items():
            if not _OPTION_RE.match(key):
                raise PgbackrestError('option name %r is not a pgBackRest option name' % (key,))
            values = value if isinstance(value, (list, tuple)) else [value]
            for item in values:
                if item is not None:
                    lines.append('%s=%s' % (key, _format_value(key, item)))
    return '\n'.join(lines) + '\n'


def _compression(compress_type, compress_level):
    if compress_type not in COMPRESS_TYPES:
        raise PgbackrestError('compress_type %r: one of %s' % (compress_type, ', '.join(COMPRESS_TYPES)))
    return {'compress-type': compress_type, 'compress-level': compress_level}


def _process_max(process_max):
    if not isinstance(process_max, int) or isinstance(process_max, bool) or not 1 <= process_max <= 999:
        raise PgbackrestError('process_max %r: an integer from 1 to 999' % (process_max,))
    return process_max


def _cipher(cipher_pass, repo='repo1'):
    if cipher_pass is None:
        return {}
    if len(cipher_pass) < 20:
        # pgBackRest takes any passphrase; a short one makes the encryption decorative.
        raise PgbackrestError('the repository cipher passphrase must have at least 20 characters '
                              '(openssl rand -base64 48 makes a good one)')
    return {'%s-cipher-type' % repo: CIPHER_TYPE, '%s-cipher-pass' % repo: cipher_pass}


def _tls_server(tls, clients, stanza):
    """The options of ``pgbackrest server`` admitting ``clients`` (certificate common names)."""
    return {
        'tls-server-address': tls.get('address', '*'),
        'tls-server-port': tls.get('port', DEFAULT_TLS_PORT),
        'tls-server-ca-file': tls['ca_file'],
        'tls-server-cert-file': tls['cert_file'],
        'tls-server-key-file': tls['key_file'],
        'tls-server-auth': ['%s=%s' % (client, stanza) for client in clients],
    }


def _tls_client(prefix, host, tls, port=None, config=None):
    """Options reaching another host's ``pgbackrest server``. ``config``: the configuration
    file the other host's commands load (pgBackRest sends its path; left out, the default)."""
    return {
        '%s-host' % prefix: host,
        '%s-host-type' % prefix: 'tls',
        '%s-host-port' % prefix: port or DEFAULT_TLS_PORT,
        '%s-host-ca-file' % prefix: tls['ca_file'],
        '%s-host-cert-file' % prefix: tls['cert_file'],
        '%s-host-key-file' % prefix: tls['key_file'],
        '%s-host-config' % prefix: config,
    }


def _pg_options(index, database):
    """pgN-path, -port and -socket-path of one database."""
    prefix = 'pg%d' % index
    return {'%s-path' % prefix: database['path'], '%s-port' % prefix: database.get('port', 5432),
            '%s-socket-path' % prefix: database.get('socket_path')}


def repository_host_conf(stanza, repo_path, databases, tls, process_max=2, compress_type='zst',
                         compress_level=None, retention_full=2, retention_diff=7, cipher_pass=None,
                         backup_standby=True, log_path='/var/log/pgbackrest', extra=None, header=HEADER):
    """pgbackrest.conf of the repository host.

    ``databases``: the database hosts, each ``{'host', 'path', 'port', 'socket_path',
    'tls_port', 'client_cn', 'config'}`` (the primary and the standbys: pgBackRest finds
    out which is which, and with ``backup_standby`` copies the files from a standby and
    only asks the primary for the start and stop of the backup). ``tls``: this host's
    certificate and the CA (``ca_file``, ``cert_file``, ``key_file``, optional ``address``,
    ``port``), both its client certificate towards the database hosts and the one of its
    own ``pgbackrest server``. Retention is counted in backups (pgBackRest's default).
    """
    validate_stanza(stanza)
    if not databases:
        raise PgbackrestError('the repository host needs at least one database host')
    global_options = {'repo1-path': repo_path,
                      'repo1-retention-full': retention_full,
                      'repo1-retention-diff': retention_diff,
                      'process-max': _process_max(process_max),
                      'start-fast': True,
                      'backup-standby': backup_standby and len(databases) > 1,
                      'log-path': log_path,
                      'log-level-file': 'info'}
    global_options.update(_compression(compress_type, compress_level))
    global_options.update(_cipher(cipher_pass))
    global_options.update(_tls_server(tls, [db['client_cn'] for db in databases], stanza))
    global_options.update(extra or {})
    stanza_options = {}
    for index, database in enumerate(databases, 1):
        stanza_options.update(_tls_client('pg%d' % index, database['host'], tls, database.get('tls_port'),
                                          database.get('config')))
        stanza_options.update(_pg_options(index, database))
    return render_conf([('global', global_options), (stanza, stanza_options)], header)


def database_host_conf(stanza, pg_path, pg_port=5432, pg_socket_path=None, repo_host=None, repo_path=None,
                       tls=None, archive_async=True, spool_path='/var/spool/pgbackrest',
                       archive_push_queue_max=None, process_max=2, compress_type='zst', compress_level=None,
                       cipher_pass=None, log_path='/var/log/pgbackrest', lock_path=None, extra=None,
                       archive_get_timeout=2, header=HEADER):
    """pgbackrest.conf of a database host.

    With ``repo_host`` (``{'host', 'port', 'client_cn', 'config'}``) the repository is
    reached over TLS with ``tls`` (``ca_file``, ``cert_file``, ``key_file``) and this host serves the
    repository host's backup and restore requests (``pgbackrest server``, admitting only
    ``repo_host['client_cn']``); the cipher lives on the repository host. Without it the
    repository is the local ``repo_path``.

    ``archive_async`` pushes and gets WAL in parallel batches through ``spool_path`` (one
    connection for many segments), so that the archive keeps up with a busy primary and a
    standby fetches ahead. Commits never wait for the archive; while the repository is
    away archive_command fails after archive-timeout, PostgreSQL retries it and keeps the
    WAL in pg_wal. ``archive_push_queue_max`` bounds that WAL: beyond it pgBackRest drops
    segments from the archive (with a warning) rather than let pg_wal fill its disk.

    ``archive_get_timeout`` bounds restore_command's wait for a repository host that does
    not answer (pgBackRest's io-timeout, default 60 s, twice per call): PostgreSQL calls
    restore_command before streaming when a standby starts and for the history files when
    a standby is promoted, so with the repository host away every start and every
    failover would wait two minutes. A failed fetch costs nothing: PostgreSQL streams, or
    retries.
    """
    validate_stanza(stanza)
    if (repo_host is None) == (repo_path is None):
        raise PgbackrestError('give exactly one of repo_host (a repository host over TLS) and repo_path '
                              '(a local repository)')
    global_options = {'process-max': _process_max(process_max), 'start-fast': True,
                      'log-path': log_path, 'log-level-file': 'info', 'lock-path': lock_path}
    global_options.update(_compression(compress_type, compress_level))
    if archive_async:
        global_options.update({'archive-async': True, 'spool-path': spool_path,
                               'archive-push-queue-max': archive_push_queue_max})
    if repo_host is None:
        global_options['repo1-path'] = repo_path
        global_options.update(_cipher(cipher_pass))
    else:
        if tls is None:
            raise PgbackrestError('a repository host needs tls (ca_file, cert_file, key_file)')
        global_options.update(_tls_client('repo1', repo_host['host'], tls, repo_host.get('port'),
                                          repo_host.get('config')))
        global_options.update(_tls_server(tls, [repo_host['client_cn']], stanza))
    global_options.update(extra or {})
    sections = [('global', global_options)]
    if repo_host is not None:
        sections.append(('global:archive-get', {'io-timeout': archive_get_timeout}))
    stanza_options = _pg_options(1, {'path': pg_path, 'port': pg_port, 'socket_path': pg_socket_path})
    return render_conf(sections + [(stanza, stanza_options)], header)


# -- PostgreSQL settings -----------------------------------------------------------------

def _pgbackrest_prefix(stanza, config):
    validate_stanza(stanza)
    if any(char.isspace() or char in '\'"\\%' for char in config):
        # archive_command goes through the shell and PostgreSQL's % escapes.
        raise PgbackrestError('config path %r: no spaces, quotes, backslashes or %% in it' % (config,))
    return 'pgbackrest --config=%s --stanza=%s' % (config, stanza)


def archive_command(stanza, config=DEFAULT_CONFIG):
    """archive_command pushing each completed WAL segment to the stanza's repository."""
    return '%s archive-push %%p' % _pgbackrest_prefix(stanza, config)


def restore_command(stanza, config=DEFAULT_CONFIG):
    """restore_command fetching a WAL segment (or history file) from the repository."""
    return '%s archive-get %%f "%%p"' % _pgbackrest_prefix(stanza, config)


# -- recovery targets --------------------------------------------------------------------

def parse_target_time(text):
    """A timezone-aware datetime from ``YYYY-MM-DD HH:MM:SS[.ffffff]+HH[:MM]`` (or Z/UTC)."""
    match = _TIME_RE.match(str(text).strip())
    if not match:
        raise PgbackrestError('target_time %r: expected YYYY-MM-DD HH:MM:SS[.ffffff]+HH:MM, for example '
                              '2026-12-07 08:15:00+00' % (text,))
    day, clock, fraction, zone = match.groups()
    if zone is None:
        raise PgbackrestError('target_time %r has no time zone: add +00 (UTC) or the offset it was noted in; '
                              'the server would read it in its own time zone' % (text,))
    if zone in ('Z', 'UTC'):
        offset = datetime.timedelta(0)
    else:
        digits = zone[1:].replace(':', '')
        offset = datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
        if zone[0] == '-':
            offset = -offset
    try:
        moment = datetime.datetime.strptime('%s %s' % (day, clock), '%Y-%m-%d %H:%M:%S')
        moment = moment.replace(microsecond=int((fraction or '.0')[1:].ljust(6, '0')),
                                tzinfo=datetime.timezone(offset))
    except ValueError as error:
        raise PgbackrestError('target_time %r is not a real date and time (%s)' % (text, error))
    return moment


def format_target_time(moment):
    """The text PostgreSQL and pgBackRest are given: UTC, microseconds, explicit offset."""
    moment = moment.astimezone(datetime.timezone.utc)
    return moment.strftime('%Y-%m-%d %H:%M:%S.%f') + '+00'


def recovery_target(target_time=None, target_lsn=None, target_name=None, latest=False):
    """The one recovery target asked for, checked and normalised.

    Returns ``{'type': 'time'|'lsn'|'name'|'latest', 'value': str or None}`` plus
    ``time`` (an aware datetime) or ``lsn`` (a byte position) for the comparable kinds.
    """
    given = [name for name, value in (('target_time', target_time), ('target_lsn', target_lsn),
                                      ('target_name', target_name)) if value not in (None, '')]
    if latest:
        given.append('latest')
    if len(given) != 1:
        raise PgbackrestError('give exactly one recovery target (target_time, target_lsn, target_name or '
                              'latest); got %s' % (', '.join(given) or 'none'))
    if latest:
        return {'type': 'latest', 'value': None}
    if target_time not in (None, ''):
        moment = parse_target_time(target_time)
        return {'type': 'time', 'value': format_target_time(moment), 'time': moment}
    if target_lsn not in (None, ''):
        try:
            position = parse_lsn(target_lsn)
        except InvalidLSN as error:
            raise PgbackrestError('target_lsn: %s' % error)
        return {'type': 'lsn', 'value': format_lsn(position), 'lsn': position}
    name = str(target_name)
    if len(name.encode('utf-8')) > _MAX_RESTORE_POINT_NAME:
        raise PgbackrestError('target_name %r: a restore point name has at most %d bytes'
                              % (name, _MAX_RESTORE_POINT_NAME))
    return {'type': 'name', 'value': name}


def validate_label(label):
    if not _LABEL_RE.match(str(label)):
        raise PgbackrestError('backup label %r: expected 20261207-081500F, or for a differential or '
                              'incremental 20261207-081500F_20261208-081500D / ...I' % (label,))
    return label


def plan_restore(target, summary, now, label=None):
    """The backup to restore for ``target`` (from ``recovery_target``), given the
    ``parse_info`` summary of the repository and the current time (aware datetime).

    Chooses the newest backup that ended before a time or LSN target (a backup can only
    be recovered forward from its end), or the newest backup for a name or the end of the
    archive; ``label`` forces one, which must exist and fit the target. Refuses a target
    time in the future (recovery would end before reaching it) and a target that no
    backup precedes. Returns the chosen backup of the summary.
    """
    backups = [backup for backup in summary['backups'] if not backup['error']]
    if not backups:
        raise PgbackrestError('stanza %s has no usable backup to restore' % summary['stanza'])
    if target['type'] == 'time' and target['time'] > now:
        raise PgbackrestError('target_time %s is in the future (now %s): recovery would end before reaching it'
                              % (target['value'], format_target_time(now)))
    if label is not None:
        validate_label(label)
        chosen = [backup for backup in backups if backup['label'] == label]
        if not chosen:
            raise PgbackrestError('backup %s is not in stanza %s (its backups: %s)' % (
                label, summary['stanza'], ', '.join(backup['label'] for backup in backups)))
        candidates = chosen
    else:
        candidates = backups
    fitting = [backup for backup in candidates if _precedes(backup, target)]
    if not fitting:
        oldest = candidates[0]
        if target['type'] == 'time':
            raise PgbackrestError('target_time %s is before the end of %s backup %s (ended %s): no backup can '
                                  'be recovered to it' % (target['value'], 'the oldest' if label is None else 'the',
                                                          oldest['label'], oldest['stop']))
        raise PgbackrestError('target_lsn %s is before the end of %s backup %s (ended at %s): no backup can '
                              'be recovered to it' % (target['value'], 'the oldest' if label is None else 'the',
                                                      oldest['label'], oldest['lsn_stop']))
    return fitting[-1]


def _precedes(backup, target):
    if target['type'] == 'time':
        return backup['stop_epoch'] <= target['time'].timestamp()
    if target['type'] == 'lsn':
        return parse_lsn(backup['lsn_stop']) <= target['lsn']
    return True


def restore_argv(stanza, pg_path, target, label, config=DEFAULT_CONFIG, delta=False, target_action='promote',
                 archive_mode='preserve', process_max=None, executable='pgbackrest', standby=False):
    """The ``pgbackrest restore`` command line of a recovery to ``target`` from backup ``label``.

    ``archive_mode=off`` keeps a scratch copy (a verification, a look at old data) from
    pushing its own WAL into the cluster's archive. ``standby`` (with the ``latest``
    target only) restores a standby: pgBackRest writes standby.signal, and recovery never
    ends: it replays the archive, then streams from the upstream the caller configures.
    """
    if standby and target['type'] != 'latest':
        raise PgbackrestError('a standby is restored to the end of the archive (latest), not to a %s target'
                              % target['type'])
    if target_action not in TARGET_ACTIONS:
        raise PgbackrestError('target_action %r: one of %s' % (target_action, ', '.join(TARGET_ACTIONS)))
    if archive_mode not in ARCHIVE_MODES:
        raise PgbackrestError('archive_mode %r: one of %s' % (archive_mode, ', '.join(ARCHIVE_MODES)))
    argv = [executable, '--config=%s' % config, '--stanza=%s' % validate_stanza(stanza),
            '--pg1-path=%s' % pg_path, '--set=%s' % validate_label(label)]
    if standby:
        argv.append('--type=standby')
    elif target['type'] == 'latest':
        argv.append('--type=default')
    else:
        argv += ['--type=%s' % target['type'], '--target=%s' % target['value'],
                 '--target-action=%s' % target_action]
    if delta:
        argv.append('--delta')
    if archive_mode != 'preserve':
        argv.append('--archive-mode=%s' % archive_mode)
    if process_max is not None:
        argv.append('--process-max=%d' % _process_max(process_max))
    argv.append('restore')
    return argv


def backup_argv(stanza, backup_type, config=DEFAULT_CONFIG, executable='pgbackrest'):
    if backup_type not in BACKUP_TYPES:
        raise PgbackrestError('backup type %r: one of %s' % (backup_type, ', '.join(BACKUP_TYPES)))
    return [executable, '--config=%s' % config, '--stanza=%s' % validate_stanza(stanza),
            '--type=%s' % backup_type, 'backup']


# -- reading pgBackRest's output ---------------------------------------------------------

def _iso(epoch):
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def _backup_summary(entry, now_epoch):
    timestamp = entry.get('timestamp') or {}
    info = entry.get('info') or {}
    lsn = entry.get('lsn') or {}
    archive = entry.get('archive') or {}
    start, stop = timestamp.get('start'), timestamp.get('stop')
    return {
        'label': entry['label'],
        'type': entry['type'],
        'prior': entry.get('prior'),
        'start': _iso(start),
        'stop': _iso(stop),
        'start_epoch': start,
        'stop_epoch': stop,
        'duration_seconds': stop - start if start is not None and stop is not None else None,
        'age_seconds': max(0, int(now_epoch - stop)) if stop is not None else None,
        'database_size': info.get('size'),
        'delta_size': info.get('delta'),
        'repository_size': (info.get('repository') or {}).get('size'),
        'repository_delta_size': (info.get('repository') or {}).get('delta'),
        'lsn_start': lsn.get('start'),
        'lsn_stop': lsn.get('stop'),
        'wal_start': archive.get('start'),
        'wal_stop': archive.get('stop'),
        'error': bool(entry.get('error')),
    }


def _latest(backups, kind=None):
    matching = [backup for backup in backups if kind is None or backup['type'] == kind]
    return matching[-1] if matching else None


def parse_info(text, stanza, now):
    """Summary of ``pgbackrest info --output=json`` for ``stanza`` at ``now`` (aware datetime).

    ``backups`` oldest first, each with sizes, times (ISO, epoch, age), LSNs and WAL;
    ``latest``/``latest_full``/``latest_diff``/``latest_incr``; ``archive``: the WAL range
    kept for the current database (``min_wal``/``max_wal``) and every archive id;
    ``status`` as pgBackRest reports it (code 0 ok, 1 missing stanza path, 2 no valid
    backups, 99 other, ...), ``ok`` only for code 0; ``problem``, the status message of the
    first repository that is not ok; ``repositories``, each repository's status.
    """
    try:
        stanzas = json.loads(text)
    except ValueError as error:
        raise PgbackrestError('pgbackrest info did not print JSON: %s' % error)
    entry = [item for item in stanzas if isinstance(item, dict) and item.get('name') == stanza]
    if not entry:
        raise PgbackrestError('pgbackrest info has no stanza %s (it lists: %s)' % (
            stanza, ', '.join(str(item.get('name')) for item in stanzas if isinstance(item, dict)) or 'none'))
    entry = entry[0]
    now_epoch = now.timestamp()
    backups = sorted((_backup_summary(item, now_epoch) for item in entry.get('backup', [])),
                     key=lambda backup: (backup['start_epoch'] or 0, backup['label']))
    databases = entry.get('db', [])
    # After a stanza-upgrade (a new major version) the newest database id is the live one.
    current_db = max(databases, key=lambda db: db['id'], default=None)
    current_id = current_db['id'] if current_db else None
    archives = [{'id': item.get('id'), 'min_wal': item.get('min'), 'max_wal': item.get('max')}
                for item in entry.get('archive', [])]
    current = [archive for archive, raw in zip(archives, entry.get('archive', []))
               if (raw.get('database') or {}).get('id') == current_id]
    status = entry.get('status') or {}
    repositories = [{'key': repo.get('key'), 'cipher': repo.get('cipher'),
                     'code': (repo.get('status') or {}).get('code'),
                     'message': (repo.get('status') or {}).get('message')} for repo in entry.get('repo', [])]
    return {
        'stanza': stanza,
        'archive_id': current[0]['id'] if current else None,
        'status': {'code': status.get('code'), 'message': status.get('message')},
        'ok': status.get('code') == 0,
        # The stanza's status says only "other" when a repository cannot be read; the
        # repository's own status says why (for example a repository host that is down).
        'problem': next((repo['message'] for repo in repositories if repo['code'] not in (0, None)), None),
        'repositories': repositories,
        'backup_in_progress': bool(((status.get('lock') or {}).get('backup') or {}).get('held')),
        'cipher': entry.get('cipher'),
        'database': ({'system_id': current_db.get('system-id'), 'version': current_db.get('version')}
                     if current_db else None),
        'backups': backups,
        'backup_count': len(backups),
        'oldest': backups[0] if backups else None,
        'latest': _latest(backups),
        'latest_full': _latest(backups, 'full'),
        'latest_diff': _latest(backups, 'diff'),
        'latest_incr': _latest(backups, 'incr'),
        'archive': {'min_wal': current[0]['min_wal'] if current else None,
                    'max_wal': current[0]['max_wal'] if current else None,
                    'ids': archives},
    }


def archive_timeline(name):
    """The timeline of an entry of an archive id's directory (``00000019.history``,
    ``0000001900000000``) or of pg_wal (``000000190000000000000031``), None for any
    other (``archive.info``, ``archive_status``)."""
    match = _ARCHIVE_ENTRY_RE.match(name)
    return int(match.group(1), 16) if match else None


def archive_timelines(names):
    """The timelines that entries of an archive id's directory (or of pg_wal) belong to, sorted."""
    return sorted(set(timeline for timeline in map(archive_timeline, names) if timeline is not None))


def parse_repo_ls(text):
    """The timelines an archive id's directory holds, from ``pgbackrest repo-ls --output=json``
    of it: those of its history files and of its segment directories, sorted. A history file
    archived alone (a node promoted and stopped before it archived a segment) counts."""
    try:
        entries = json.loads(text)
    except ValueError as error:
        raise PgbackrestError('pgbackrest repo-ls did not print JSON: %s' % error)
    if not isinstance(entries, dict):
        raise PgbackrestError('pgbackrest repo-ls printed %s, not a mapping of names' % type(entries).__name__)
    return archive_timelines(entries)


def timelines_beyond(names, timeline):
    """The entries of an archive id's directory (or of a data directory's pg_wal) that
    belong to timelines newer than ``timeline`` (the running primary's), sorted.

    They come from a promotion the cluster went back from: a DR promotion abandoned for the
    first datacenter, a node promoted by mistake and fenced. A standby that starts with
    ``recovery_target_timeline = latest`` finds the newest history file there, tries to
    follow it and refuses to start (\"requested timeline N is not a child of this server's
    history\") once it replayed past the point where that timeline forked; a history file
    it already copied into its pg_wal does the same. A timeline older
    than the primary's does no harm: PostgreSQL looks for newer ones only. The primary's
    next promotion picks a timeline beyond every history file it finds, so none of them
    is reused.
    """
    if timeline is None or int(timeline) < 1:
        raise PgbackrestError('the primary\'s timeline must be a positive number, not %r' % (timeline,))
    return sorted(name for name in names
                  if archive_timeline(name) is not None and archive_timeline(name) > int(timeline))


def parse_errors(output):
    """The errors in what a pgBackRest command printed (stdout and stderr together).

    Each error is ``{'code', 'kind', 'message', 'hints'}``: a message continues on the
    indented lines that follow it, ``HINT:`` lines are collected apart. Warnings
    (``WARN:``) are returned as their messages under ``warnings``. Log prefixes (time,
    process) are ignored.
    """
    errors, warnings, current = [], [], None
    for line in (output or '').splitlines():
        entry = _ENTRY_RE.match(line)
        if entry:
            level, code, message = entry.groups()
            current = {'message': message.strip(), 'hints': []}
            if level == 'ERROR' and code:
                current.update(code=int(code), kind=ERROR_KINDS.get(int(code), 'error'))
                errors.append(current)
            else:
                warnings.append(current)
            continue
        hint = _HINT_RE.match(line)
        if current is not None and hint:
            current['hints'].append(hint.group(1).strip())
        elif current is not None and line[:1].isspace() and line.strip():
            current['message'] += '\n' + line.strip()
        else:
            current = None
    return {'errors': errors, 'warnings': [warning['message'] for warning in warnings]}


def describe_failure(command, returncode, output):
    """One message for a failed pgBackRest command: its first error and hints, or its
    exit status and last line when it printed no error."""
    errors = parse_errors(output)['errors']
    if not errors:
        last = [line for line in (output or '').splitlines() if line.strip()]
        return 'pgbackrest %s failed with exit status %d%s' % (
            command, returncode, (': ' + last[-1].strip()) if last else '')
    first = errors[0]
    message = 'pgbackrest %s failed: [%03d] %s' % (command, first['code'], first['message'])
    if first['hints']:
        message += ' (hint: %s)' % '; '.join(first['hints'])
    return message


# -- status ------------------------------------------------------------------------------

def _age(seconds):
    if seconds is None:
        return '?'
    seconds = int(seconds)
    if seconds < 120:
        return '%d s' % seconds
    if seconds < 7200:
        return '%d min' % (seconds // 60)
    if seconds < 172800:
        return '%.1f h' % (seconds / 3600.0)
    return '%.1f days' % (seconds / 86400.0)


def _size(size):
    if size is None:
        return '?'
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if size < 1024 or unit == 'GiB':
            return ('%d %s' % (size, unit)) if unit == 'B' else ('%.1f %s' % (size, unit))
        size /= 1024.0


def archive_status(host, archiver, repository=None, info=None, timeline=None, verification=None, now=None):
    """The WAL archive and the backups as status.yml shows them.

    ``archiver``: the primary ``host``'s gather_node_state()['archiver'] (None: not read):
    pg_stat_archiver with the ages of its last success and failure in seconds, and
    ``failing`` (the last failure is newer than the last success);
    ``info``: the pgbackrest_info result read on the ``repository`` host (None: not read);
    ``timeline``: the primary's, to find a newer timeline in the repository (see
    ``timelines_beyond``): in ``info['archive']['timelines']`` (pgbackrest_info lists the
    archive id's directory, a history file archived alone included) and in the newest
    segment's name (the only source when that list is missing);
    ``verification``: the last result of the scheduled verification on the repository host
    (pgha-verify-backup.timer's JSON document; None: none yet; {'unreadable': why} when its
    file is there but could not be read), its age taken at ``now`` (epoch seconds, default
    the current time).
    Returns {archive: {...}, backups: {...}, failing, newer_timeline, lines}.
    """
    lines = []
    archive = None
    if archiver is None:
        lines.append('WAL archive: not read (no primary answered)')
    elif archiver.get('archive_mode') == 'off':
        archive = {'mode': 'off', 'failing': False}
        lines.append('WAL archive: off on %s' % host)
    else:
        archived_age, failed_age = archiver.get('last_archived_age'), archiver.get('last_failed_age')
        failing = bool(archiver.get('failing'))
        archive = {'host': host, 'mode': archiver.get('archive_mode'), 'failing': failing,
                   'archived_count': archiver.get('archived_count'),
                   'last_archived_wal': archiver.get('last_archived_wal') or None,
                   'last_archived_age_seconds': archived_age,
                   'failed_count': archiver.get('failed_count'),
                   'last_failed_wal': archiver.get('last_failed_wal') or None,
                   'last_failed_age_seconds': failed_age}
        text = 'WAL archive of %s: ' % host
        text += ('last archived %s %s ago' % (archive['last_archived_wal'], _age(archived_age))
                 if archive['last_archived_wal'] else 'nothing archived yet')
        text += ', %s failure%s' % (archive['failed_count'], '' if archive['failed_count'] == 1 else 's')
        if failing:
            text += ('; ARCHIVE FAILING since %s ago on %s: the WAL stays in pg_wal until the repository '
                     'takes it' % (_age(failed_age), archive['last_failed_wal']))
        lines.append(text)
    backups = newer = None
    if info is None:
        lines.append('backups: repository %s not read' % (repository or '(none)'))
    elif not info.get('ok'):
        backups = {'repository': repository, 'ok': False,
                   'problem': info.get('problem') or (info.get('status') or {}).get('message')}
        lines.append('backups: repository %s PROBLEM: %s' % (repository, backups['problem']))
    else:
        backups = {'repository': repository, 'ok': True, 'count': info.get('backup_count'),
                   'oldest': info.get('oldest'), 'latest_full': info.get('latest_full'),
                   'latest_diff': info.get('latest_diff'), 'latest_incr': info.get('latest_incr'),
                   'wal': info.get('archive')}
        oldest = info.get('oldest') or {}
        lines.append('backups in %s: %d; restores reach back to %s (end of %s)'
                     % (repository, info.get('backup_count') or 0, oldest.get('stop') or '-', oldest.get('label') or '-'))
        for kind in ('full', 'diff', 'incr'):
            latest = info.get('latest_' + kind)
            if latest:
                lines.append('  latest %s: %s, %s ago, %s (%s in the repository), took %s s'
                             % (kind, latest['label'], _age(latest.get('age_seconds')), _size(latest.get('database_size')),
                                _size(latest.get('repository_size')), latest.get('duration_seconds')))
        wal = info.get('archive') or {}
        if wal.get('min_wal'):
            lines.append('  WAL in the repository: %s to %s' % (wal['min_wal'], wal['max_wal']))
        backups['verification'] = _verification_summary(verification, now)
        lines.append(_verification_line(backups['verification']))
        newer = _newer_timeline(wal, timeline)
        if newer:
            lines.append('  ARCHIVE HOLDS TIMELINE %d, newer than the primary\'s %d: a standby that starts would '
                         'try to follow it and stop; remove it with playbooks/prune_timelines.yml' % (newer, timeline))
    return {'archive': archive, 'backups': backups, 'failing': bool(archive and archive['failing']),
            'newer_timeline': newer, 'lines': lines}


def _verification_summary(result, now=None):
    """What status.yml keeps of the scheduled verification's last result (None: none yet)."""
    if not isinstance(result, dict):
        return None
    if 'unreadable' in result:
        return {'passed': False, 'label': None, 'finished': None, 'age_seconds': None,
                'msg': 'its last result could not be read: %s' % result['unreadable'], 'unreadable': True}
    age = None
    try:
        finished = datetime.datetime.strptime(result.get('finished') or '', '%Y-%m-%dT%H:%M:%SZ')
        finished_epoch = (finished - datetime.datetime(1970, 1, 1)).total_seconds()
        age = max(int((time.time() if now is None else now) - finished_epoch), 0)
    except ValueError:
        pass
    return {'passed': result.get('passed') is True, 'label': result.get('label'), 'finished': result.get('finished'),
            'age_seconds': age, 'msg': result.get('msg')}


def _verification_line(summary):
    if summary is None:
        return '  no scheduled verification of a backup has run yet (pgha-verify-backup.timer)'
    if summary.get('unreadable'):
        return '  SCHEDULED VERIFICATION UNKNOWN: %s' % summary['msg']
    if summary['passed']:
        return ('  latest scheduled verification: backup %s restored and checked, %s ago'
                % (summary['label'], _age(summary['age_seconds'])))
    return '  SCHEDULED VERIFICATION FAILED %s ago: %s' % (_age(summary['age_seconds']), summary['msg'])


def _newer_timeline(wal, timeline):
    """The repository's newest timeline (of its listing and of its newest segment) when it is
    newer than ``timeline``."""
    if not timeline:
        return None
    known = list(wal.get('timelines') or [])
    if wal.get('max_wal'):
        known.append(archive_timeline(wal['max_wal'][:16]))
    newest = max((known_timeline for known_timeline in known if known_timeline is not None), default=None)
    return newest if newest is not None and newest > int(timeline) else None

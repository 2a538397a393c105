# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Building a standby with pg_basebackup: everything but the Ansible glue.

The module ``pg_basebackup_standby`` calls these functions in this order, and
nothing on disk changes before the last check has passed:

1. ``inspect_data_directory``: absent, empty, a cluster (system identifier from
   ``pg_control``, recovery settings from ``postgresql.auto.conf`` and
   ``standby.signal``) or something else; and whether a server runs on it
   (``postmaster.pid`` with a live postmaster, confirmed by ``pg_ctl status``).
2. ``probe_upstream``: a *physical replication* connection, the only kind a
   replication-only role is sure to get through ``pg_hba.conf``:
   ``IDENTIFY_SYSTEM`` (system identifier, timeline) and ``SHOW`` (version, role,
   WAL sizes), ``READ_REPLICATION_SLOT`` (PostgreSQL 15+).
3. ``estimate_size``: how much the copy will write. See its docstring for why it
   has two sources.
4. ``check_free_space``: ``statvfs`` of the target's filesystem (the nearest
   existing parent) against the estimate plus a margin plus WAL headroom.
5. ``basebackup_command`` and ``run_basebackup``: ``pg_basebackup -X stream -R``
   with the password, when there is one, in a temporary 0600 passfile that is
   removed afterwards (``password_file``); never on the command line.

Messages never carry a password: errors from libpq and pg_basebackup go through
``scrub`` with the password known to the caller.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import errno
import os
import re
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

try:
    import psycopg2
    import psycopg2.extras
    HAS_PSYCOPG2 = True
except ImportError:  # pragma: no cover - depends on the host
    psycopg2 = None
    HAS_PSYCOPG2 = False

from ansible_collections.pgha.multidc.plugins.module_utils.conninfo import (
    REDACTED, ConninfoError, build_conninfo, parse_conninfo)
from ansible_collections.pgha.multidc.plugins.module_utils.connection import (
    MIN_SERVER_VERSION_NUM, format_version)
from ansible_collections.pgha.multidc.plugins.module_utils.lsn import pretty_bytes
from ansible_collections.pgha.multidc.plugins.module_utils.standby_config import (
    AUTO_CONF, STANDBY_SIGNAL, parse_auto_conf)

STATE_ABSENT = 'absent'
STATE_EMPTY = 'empty'
STATE_CLUSTER = 'cluster'
STATE_OTHER = 'other'

SIZE_SOURCE_SQL = 'pg_database_size'
SIZE_SOURCE_BASE_BACKUP = 'base_backup_estimate'

SLOT_NAME_RE = re.compile(r'^[a-z0-9_]{1,63}$')
_MAX_RATE_RE = re.compile(r'^\s*(\d+)\s*([kM]?)\s*$')
_SIZE_RE = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?[bB]?)\s*$')
_SIZE_UNITS = {'': 1, 'B': 1, 'K': 1024, 'M': 1024 ** 2, 'G': 1024 ** 3, 'T': 1024 ** 4}

# libpq keys of an ``upstream`` option that go into a connection string.
UPSTREAM_KEYS = ('host', 'port', 'user', 'sslmode', 'sslrootcert', 'sslcert', 'sslkey',
                 'connect_timeout')

# Where distributions put the binaries of one PostgreSQL major version.
BINDIR_PATTERNS = ('/usr/lib/postgresql/{major}/bin',   # Debian, Ubuntu
                   '/usr/pgsql-{major}/bin',            # PGDG RPMs
                   '/usr/local/pgsql-{major}/bin',
                   '/opt/postgresql/{major}/bin')

_SIZE_SQL = """
SELECT count(*) AS databases,
       count(*) FILTER (WHERE readable) AS readable,
       coalesce(sum(CASE WHEN readable THEN pg_database_size(oid) END), 0)::bigint AS bytes,
       coalesce(array_agg(datname::text ORDER BY datname) FILTER (WHERE NOT readable),
                ARRAY[]::text[]) AS unreadable
FROM (SELECT oid, datname,
             has_database_privilege(oid, 'CONNECT')
             OR pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS readable
      FROM pg_database) AS d
"""

_TABLESPACES_SQL = """
SELECT spcname::text AS name, pg_tablespace_location(oid) AS location
FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY spcname
"""


class BasebackupError(Exception):
    """A failed check or step, with a message safe to show (no secrets)."""


class UpstreamError(BasebackupError):
    """The upstream could not be used; ``kind`` says why (see ``classify_libpq_error``)."""

    def __init__(self, message, kind='error'):
        super(UpstreamError, self).__init__(message)
        self.kind = kind


# -- small helpers -------------------------------------------------------------------

def scrub(text, secret):
    """``text`` with every occurrence of ``secret`` replaced by the redaction mark."""
    text = '' if text is None else str(text)
    if secret:
        text = text.replace(str(secret), REDACTED)
    return text


def parse_size(text):
    """Bytes of a size written like PostgreSQL does (``16MB``, ``1GB``, ``512kB``, ``8192``)."""
    if isinstance(text, int):
        return text
    match = _SIZE_RE.match(str(text or ''))
    if not match:
        raise BasebackupError('not a size: %r (examples: 8192, 512kB, 16MB, 1GB)' % (text,))
    number, unit = match.groups()
    unit = unit.upper().rstrip('B') if unit.upper() != 'B' else 'B'
    return int(float(number) * _SIZE_UNITS[unit])


def parse_max_rate(text):
    """Validate pg_basebackup's ``--max-rate``: kB/s with an optional k or M suffix, 32k..1024M."""
    match = _MAX_RATE_RE.match(str(text or ''))
    if not match:
        raise BasebackupError('max_rate %r is not a rate: give kilobytes per second, with an optional '
                              'k or M suffix (e.g. 500k, 50M)' % (text,))
    number, unit = int(match.group(1)), match.group(2)
    kbytes = number * 1024 if unit == 'M' else number
    if kbytes < 32 or kbytes > 1024 * 1024:
        raise BasebackupError('max_rate %r is out of range: pg_basebackup accepts 32k to 1024M' % (text,))
    return '%d%s' % (number, unit)


def validate_slot_name(name):
    if name is not None and not SLOT_NAME_RE.match(name):
        raise BasebackupError('slot %r is not a valid replication slot name: use 1 to 63 lower-case '
                              'letters, digits and underscores' % (name,))
    return name


def short_hostname():
    return socket.gethostname().split('.')[0]


def clean_environment(extra=None):
    """os.environ without libpq variables (PGPASSWORD, PGSERVICE, ... would change the
    connection behind our back), in the C locale so tools' output can be parsed."""
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith('PG'))
    env['LC_ALL'] = 'C'
    env['LANG'] = 'C'
    env.update(extra or {})
    return env


def run_tool(argv, timeout=60, env=None, preexec_fn=None, cwd=None):
    """Run a short command; return (rc, stdout, stderr); rc -1 when it timed out.
    ``preexec_fn`` runs in the child before the program (e.g. to drop privileges)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env or clean_environment(), close_fds=True, preexec_fn=preexec_fn, cwd=cwd)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return -1, out.decode('utf-8', 'replace'), 'timed out after %d s' % timeout
    return proc.returncode, out.decode('utf-8', 'replace'), err.decode('utf-8', 'replace')


# -- upstream connection parameters -------------------------------------------------

def upstream_libpq_params(upstream, passfile=None, **extra):
    """libpq keywords for ``upstream`` (an ``upstream`` option dict) without its password.

    The password reaches libpq through ``passfile`` (see ``password_file``).
    """
    params = dict((key, upstream.get(key)) for key in UPSTREAM_KEYS
                  if upstream.get(key) not in (None, ''))
    passfile = passfile or upstream.get('passfile')
    if passfile:
        params['passfile'] = passfile
    params.update(extra)
    return params


def copy_conninfo(upstream):
    """The ``-d`` connection string of pg_basebackup: no password, no passfile (PGPASSFILE)."""
    params = dict((key, upstream.get(key)) for key in UPSTREAM_KEYS)
    return build_conninfo(params)


def standby_conninfo(upstream, application_name):
    """primary_conninfo for the standby: the passfile when there is one, else the password.

    The WAL receiver connects without libpq's connect_timeout (it polls the connection
    itself), so against an unreachable upstream it would hang in the kernel's SYN retries
    for about two minutes and stream again only at the next retry once the network heals.
    tcp_user_timeout bounds the connection and any unacknowledged write to the same seconds.
    """
    params = upstream_libpq_params(upstream)
    if not upstream.get('passfile') and upstream.get('password'):
        params['password'] = upstream['password']
    if params.get('connect_timeout'):
        params['tcp_user_timeout'] = int(params['connect_timeout']) * 1000
    params['application_name'] = application_name
    return build_conninfo(params)


def redacted_upstream(upstream):
    """The ``upstream`` option for results: password masked, unset keys left out."""
    result = dict((k, v) for k, v in upstream.items() if v is not None)
    if result.get('password'):
        result['password'] = REDACTED
    return result


def upstream_identity(upstream, slot=None):
    """What makes two upstreams the same one: host, port, user, slot."""
    return {'host': upstream.get('host'), 'port': int(upstream.get('port') or 5432),
            'user': upstream.get('user'), 'slot': slot or None}


def identity_from_settings(settings):
    """``upstream_identity`` of a standby from its recovery settings (auto.conf)."""
    try:
        params = parse_conninfo(settings.get('primary_conninfo') or '')
    except ConninfoError:
        params = {}
    port = params.get('port') or '5432'
    return {'host': params.get('host') or params.get('hostaddr'),
            'port': int(port) if str(port).isdigit() else port,
            'user': params.get('user'),
            'slot': settings.get('primary_slot_name') or None}


def identity_mismatches(current, desired):
    """Human-readable differences between two identities (empty when the same)."""
    problems = []
    for key in ('host', 'port', 'user', 'slot'):
        have, want = current.get(key), desired.get(key)
        if key == 'host' and have and want:
            same = str(have).lower() == str(want).lower()
        else:
            same = have == want
        if not same:
            problems.append('%s is %s, expected %s' % (key, 'unset' if have is None else repr(have),
                                                       'unset' if want is None else repr(want)))
    return problems


def _escape_pgpass(value):
    return str(value).replace('\\', '\\\\').replace(':', '\\:')


@contextmanager
def password_file(password, directory=None):
    """A temporary libpq passfile holding ``password`` (mode 0600, in a 0700 directory),
    removed when the block ends; yields None when there is no password."""
    if not password:
        yield None
        return
    if '\n' in password or '\r' in password:
        raise BasebackupError('the upstream password contains a line break, which a libpq passfile cannot hold')
    tmpdir = tempfile.mkdtemp(prefix='pgha-pgpass-', dir=directory)
    path = os.path.join(tmpdir, 'pgpass')
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, 'w') as handle:
            handle.write('*:*:*:*:%s\n' % _escape_pgpass(password))
        yield path
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


# -- upstream probing --------------------------------------------------------------

# (kind, message fragments) in the order they are tried; libpq gives no SQLSTATE for
# connection failures, so its (English, C locale) messages are the only signal.
_ERROR_KINDS = (
    ('credentials', ('password authentication failed', 'no password supplied',
                     'authentication failed', 'role "', 'SCRAM', 'certificate authentication')),
    ('access', ('no pg_hba.conf entry', 'pg_hba.conf rejects', 'must be superuser or replication role',
                'permission denied', 'must have REPLICATION', 'must be superuser')),
    ('tls', ('certificate verify failed', 'server certificate', 'root certificate', 'SSL', 'ssl',
             'certificate')),
    ('unreachable', ('Connection refused', 'could not translate host name', 'timeout expired',
                     'No route to host', 'Network is unreachable', 'could not connect',
                     'server closed the connection', 'Connection timed out', 'could not send')),
)

_KIND_TEXT = {
    'credentials': 'refused the credentials of',
    'access': 'does not let in',
    'tls': 'failed the TLS checks for',
    'unreachable': 'cannot be reached for',
    'error': 'failed for',
}


def classify_libpq_error(text):
    for kind, needles in _ERROR_KINDS:
        if any(needle in text for needle in needles):
            return kind
    return 'error'


def describe_upstream(upstream):
    return '%s@%s:%s' % (upstream.get('user'), upstream.get('host'), upstream.get('port') or 5432)


def upstream_error(upstream, error, what='connection'):
    """An UpstreamError for a libpq error: says which of unreachable / credentials /
    pg_hba / TLS it is, names the upstream and never shows the password."""
    text = scrub(str(error).strip(), upstream.get('password'))
    text = ' '.join(line.strip() for line in text.splitlines() if line.strip())
    kind = classify_libpq_error(text)
    if kind == 'unreachable':
        message = 'upstream %s is unreachable: %s' % (describe_upstream(upstream), text)
    elif kind == 'credentials':
        message = 'upstream %s refused the credentials (check the password or passfile of user %s): %s' % (
            describe_upstream(upstream), upstream.get('user'), text)
    elif kind == 'access':
        message = 'upstream %s refused the %s (pg_hba.conf or the role\'s REPLICATION attribute): %s' % (
            describe_upstream(upstream), what, text)
    elif kind == 'tls':
        message = 'TLS with upstream %s failed (sslmode=%s): %s' % (
            describe_upstream(upstream), upstream.get('sslmode'), text)
    else:
        message = 'upstream %s: %s failed: %s' % (describe_upstream(upstream), what, text)
    return UpstreamError(message, kind)


def _connect(upstream, passfile, replication, dbname='postgres', application_name='pgha.multidc'):
    if not HAS_PSYCOPG2:
        raise BasebackupError('the psycopg2 Python library is required')
    params = upstream_libpq_params(upstream, passfile=passfile, application_name=application_name)
    if replication:
        params['connection_factory'] = psycopg2.extras.PhysicalReplicationConnection
    else:
        params['dbname'] = dbname
    try:
        conn = psycopg2.connect(**params)
    except psycopg2.Error as error:
        raise upstream_error(upstream, error, 'replication connection' if replication else 'SQL connection')
    if not replication:
        conn.autocommit = True
    return conn


def _show(cursor, name):
    cursor.execute('SHOW %s' % name)
    row = cursor.fetchone()
    return row[0] if row else None


def probe_upstream(upstream, passfile=None, slot=None):
    """Identity and settings of the upstream over a physical replication connection.

    Works with a role that has only the REPLICATION attribute and a
    ``hostssl replication`` line in pg_hba.conf. Raises UpstreamError.
    """
    conn = _connect(upstream, passfile, replication=True)
    try:
        cursor = conn.cursor()
        cursor.execute('IDENTIFY_SYSTEM')
        system_identifier, timeline, xlogpos = cursor.fetchone()[:3]
        version_num = int(_show(cursor, 'server_version_num'))
        info = {
            'system_identifier': str(system_identifier),
            'timeline': int(timeline),
            'wal_position': xlogpos,
            'server_version_num': version_num,
            'server_version': format_version(version_num),
            'major': version_num // 10000,
            'in_recovery': _show(cursor, 'in_hot_standby') == 'on' if version_num >= 140000 else None,
            'max_wal_size': parse_size(_show(cursor, 'max_wal_size')),
            'wal_keep_size': parse_size(_show(cursor, 'wal_keep_size')) if version_num >= 130000 else 0,
            'data_directory_mode': _show(cursor, 'data_directory_mode'),
            'slot': None,
        }
        if slot and version_num >= 150000:
            cursor.execute('READ_REPLICATION_SLOT %s' % slot)  # validated by validate_slot_name
            slot_type, restart_lsn, restart_tli = cursor.fetchone()
            info['slot'] = {'name': slot, 'exists': slot_type is not None, 'type': slot_type,
                            'restart_lsn': restart_lsn, 'active': None}
    except psycopg2.Error as error:
        raise upstream_error(upstream, error, 'replication command')
    finally:
        conn.close()
    if version_num < MIN_SERVER_VERSION_NUM:
        raise UpstreamError('upstream %s runs PostgreSQL %s: pgha.multidc needs %d or newer'
                            % (describe_upstream(upstream), info['server_version'],
                               MIN_SERVER_VERSION_NUM // 10000), 'version')
    return info


def sql_details(upstream, passfile=None, dbname='postgres', slot=None):
    """Database sizes, tablespaces and slot activity over an ordinary SQL connection
    with the same role and TLS settings. Raises UpstreamError when pg_hba.conf (or
    anything else) does not allow it; callers treat that as "not available"."""
    conn = _connect(upstream, passfile, replication=False, dbname=dbname)
    try:
        cursor = conn.cursor()
        cursor.execute(_SIZE_SQL)
        databases, readable, size, unreadable = cursor.fetchone()
        cursor.execute(_TABLESPACES_SQL)
        tablespaces = [{'name': name, 'location': location} for name, location in cursor.fetchall()]
        slot_info = None
        if slot:
            cursor.execute('SELECT slot_type, active, active_pid, restart_lsn::text '
                           'FROM pg_replication_slots WHERE slot_name = %s', (slot,))
            row = cursor.fetchone()
            slot_info = {'name': slot, 'exists': row is not None, 'type': row[0] if row else None,
                         'active': bool(row[1]) if row else None, 'active_pid': row[2] if row else None,
                         'restart_lsn': row[3] if row else None}
    except psycopg2.Error as error:
        raise upstream_error(upstream, error, 'size query')
    finally:
        conn.close()
    return {'databases': int(databases), 'readable': int(readable), 'bytes': int(size),
            'unreadable': list(unreadable or []), 'tablespaces': tablespaces, 'slot': slot_info}


def base_backup_estimate(pg_basebackup, upstream, passfile, checkpoint='fast', timeout=600):
    """The server's own estimate of a base backup's size, for roles that can only replicate.

    Starts ``pg_basebackup -D - -Ft -X none -P --max-rate=32k`` (the server adds up the
    size of every file it will send before sending any) and stops it at its first
    progress line, about one second in, after at most a few dozen kilobytes. The server
    aborts the unfinished backup. Its cost on the upstream: one checkpoint of the kind
    given (the copy that follows requests one anyway) and a walk of its data directory.
    """
    argv = [pg_basebackup, '-d', copy_conninfo(upstream), '-D', '-', '-F', 't', '-X', 'none',
            '-P', '-c', checkpoint, '--max-rate=32k', '--no-password', '--no-manifest',
            '-l', 'pgha.multidc size estimate']
    env = clean_environment({'PGPASSFILE': passfile} if passfile else None)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, close_fds=True,
                            start_new_session=True)
    deadline = time.time() + timeout
    err = b''
    total_kb = None
    progress = re.compile(rb'(\d+)/(\d+) kB')
    try:
        streams = [proc.stdout, proc.stderr]
        while streams and total_kb is None and time.time() < deadline:
            ready = select.select(streams, [], [], 1.0)[0]
            for stream in ready:
                chunk = os.read(stream.fileno(), 65536)
                if not chunk:
                    streams.remove(stream)
                elif stream is proc.stderr:
                    err += chunk
                    match = progress.search(err)
                    if match:
                        total_kb = int(match.group(2))
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    if total_kb is None:
        text = scrub(err.decode('utf-8', 'replace').strip(), upstream.get('password'))
        if time.time() >= deadline:
            raise BasebackupError('the size estimate of upstream %s did not arrive within %d s'
                                  % (describe_upstream(upstream), timeout))
        raise upstream_error(upstream, text or 'pg_basebackup exited with status %s' % proc.returncode,
                             'base backup size estimate')
    return total_kb * 1024


# -- local binaries ------------------------------------------------------------------

def tool_major(path):
    """Major version of a PostgreSQL client program (``pg_basebackup --version``)."""
    rc, out, err = run_tool([path, '--version'], timeout=30)
    match = re.search(r'\(PostgreSQL\)\s+(\d+)', out)
    if rc != 0 or not match:
        raise BasebackupError('cannot run %s --version: %s' % (path, (err or out).strip()))
    return int(match.group(1))


def read_pg_version(data_directory):
    """The version in the data directory's PG_VERSION file, or None when it has none."""
    try:
        with open(os.path.join(data_directory, 'PG_VERSION')) as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return None


def find_bindir(major, explicit=None, program='pg_basebackup'):
    """Directory with the PostgreSQL binaries for ``major``: ``explicit`` when given, else the
    distribution's place for that major, else the directory of ``program`` on PATH."""
    if explicit:
        if not os.path.isfile(os.path.join(explicit, program)):
            raise BasebackupError('pg_bindir %s has no %s' % (explicit, program))
        return explicit
    for pattern in BINDIR_PATTERNS:
        candidate = pattern.format(major=major)
        if os.access(os.path.join(candidate, program), os.X_OK):
            return candidate
    found = shutil.which(program)
    if found:
        return os.path.dirname(os.path.realpath(found))
    raise BasebackupError('no %s for PostgreSQL %s: looked in %s and PATH; install the client '
                          'binaries or set pg_bindir' % (program, major, ', '.join(
                              p.format(major=major) for p in BINDIR_PATTERNS)))


# -- the data directory --------------------------------------------------------------

def nearest_existing(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def read_pid_file(data_directory):
    """First line (the postmaster pid) of postmaster.pid, or None."""
    try:
        with open(os.path.join(data_directory, 'postmaster.pid')) as handle:
            first = handle.readline().strip()
    except (IOError, OSError):
        return None
    return int(first) if first.isdigit() else None


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except OSError as error:
        return error.errno == errno.EPERM
    return True


def _looks_like_postgres(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as handle:
            cmdline = handle.read().replace(b'\0', b' ')
    except (IOError, OSError):
        return True  # no /proc: trust kill(0) like pg_ctl does
    return b'postgres' in cmdline or b'postmaster' in cmdline


def server_running(data_directory, bindir=None):
    """The pid of the postmaster running on ``data_directory``, or None.

    A live pid in postmaster.pid that belongs to a PostgreSQL process, confirmed by
    ``pg_ctl status`` when a pg_ctl is at hand (both read the same pid file; pg_ctl is
    the authority, this also works without binaries).
    """
    pid = read_pid_file(data_directory)
    if pid is None or pid <= 0:
        return None
    if not (_pid_alive(pid) and _looks_like_postgres(pid)):
        return None
    pg_ctl = os.path.join(bindir, 'pg_ctl') if bindir else None
    if pg_ctl and os.access(pg_ctl, os.X_OK):
        rc, out, err = run_tool([pg_ctl, 'status', '-D', data_directory], timeout=30)
        if rc == 3:  # "no server running"
            return None
    return pid


def read_control_data(data_directory, bindir=None):
    """``pg_controldata`` of ``data_directory`` as a dict (C locale labels).

    Falls back to the first 8 bytes of global/pg_control (the system identifier, in
    the machine's byte order) when no pg_controldata is available.
    """
    control = os.path.join(data_directory, 'global', 'pg_control')
    if not os.path.exists(control):
        return {}
    tool = os.path.join(bindir, 'pg_controldata') if bindir else None
    if tool and os.access(tool, os.X_OK):
        rc, out, err = run_tool([tool, '-D', data_directory], timeout=60)
        if rc == 0:
            data = {}
            for line in out.splitlines():
                if ':' in line:
                    key, value = line.split(':', 1)
                    data[key.strip()] = value.strip()
            data['source'] = 'pg_controldata'
            return data
    with open(control, 'rb') as handle:
        raw = handle.read(8)
    if len(raw) < 8:
        return {}
    return {'Database system identifier': str(int.from_bytes(raw, sys.byteorder)),
            'source': 'global/pg_control'}


def _external_links(data_directory):
    """Symbolic links that point out of the data directory (pg_wal, tablespaces)."""
    links = []
    candidates = [os.path.join(data_directory, 'pg_wal')]
    tblspc = os.path.join(data_directory, 'pg_tblspc')
    if os.path.isdir(tblspc):
        candidates += [os.path.join(tblspc, name) for name in sorted(os.listdir(tblspc))]
    for path in candidates:
        if os.path.islink(path):
            links.append({'path': path, 'target': os.readlink(path)})
    return links


def inspect_data_directory(data_directory, bindir_for_major=None):
    """What is at ``data_directory``; see the module docstring.

    ``bindir_for_major``: a function major -> bindir (or None) used to run pg_ctl and
    pg_controldata of the cluster's own major version.
    """
    info = {'path': data_directory, 'state': STATE_ABSENT, 'entries': [], 'entry_count': 0,
            'is_mount': False, 'major': None, 'system_identifier': None, 'cluster_state': None,
            'standby_signal': False, 'recovery_signal': False, 'settings': {}, 'running_pid': None,
            'external_links': []}
    if os.path.lexists(data_directory) and not os.path.isdir(data_directory):
        raise BasebackupError('data_directory %s exists and is not a directory' % data_directory)
    if not os.path.exists(data_directory):
        return info
    try:
        entries = sorted(os.listdir(data_directory))
    except OSError as error:
        raise BasebackupError('cannot read data_directory %s: %s' % (data_directory, error.strerror))
    info['is_mount'] = os.path.ismount(data_directory)
    info['entries'] = entries[:10]
    info['entry_count'] = len(entries)
    if not entries:
        info['state'] = STATE_EMPTY
        return info
    text = read_pg_version(data_directory)
    if text is None:
        info['state'] = STATE_OTHER
        return info
    info['state'] = STATE_CLUSTER
    info['major'] = int(text.split('.')[0]) if text.split('.')[0].isdigit() else None
    bindir = None
    if bindir_for_major and info['major']:
        try:
            bindir = bindir_for_major(info['major'])
        except BasebackupError:
            bindir = None
    control = read_control_data(data_directory, bindir)
    info['system_identifier'] = control.get('Database system identifier')
    info['cluster_state'] = control.get('Database cluster state')
    info['standby_signal'] = os.path.exists(os.path.join(data_directory, STANDBY_SIGNAL))
    info['recovery_signal'] = os.path.exists(os.path.join(data_directory, 'recovery.signal'))
    try:
        with open(os.path.join(data_directory, AUTO_CONF)) as handle:
            settings = parse_auto_conf(handle.read())
    except (IOError, OSError):
        settings = {}
    info['settings'] = dict((k, v) for k, v in settings.items()
                            if k in ('primary_conninfo', 'primary_slot_name', 'restore_command',
                                     'recovery_target_timeline'))
    info['running_pid'] = server_running(data_directory, bindir)
    info['external_links'] = _external_links(data_directory)
    return info


def standby_mismatches(info, upstream_info, desired_identity):
    """Why the cluster at ``info`` is not already a standby of the desired upstream
    (an empty list when it is)."""
    if info['state'] != STATE_CLUSTER:
        return ['it is not a PostgreSQL data directory']
    problems = []
    if info['system_identifier'] != upstream_info['system_identifier']:
        problems.append('its system identifier is %s, the upstream\'s is %s (a different cluster)'
                        % (info['system_identifier'] or 'unreadable', upstream_info['system_identifier']))
    if info['major'] != upstream_info['major']:
        problems.append('it is PostgreSQL %s, the upstream runs %s' % (info['major'], upstream_info['major']))
    if not info['standby_signal']:
        problems.append('it has no standby.signal (not a standby: a primary or a promoted standby)')
    current = identity_from_settings(info['settings'])
    if not info['settings'].get('primary_conninfo'):
        problems.append('it has no primary_conninfo')
    else:
        problems.extend('its upstream ' + text for text in identity_mismatches(current, desired_identity))
    return problems


def directory_size(path):
    """Bytes of the regular files under ``path`` on the same filesystem, links not followed."""
    total = 0
    try:
        device = os.lstat(path).st_dev
    except OSError:
        return 0
    for root, dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_dev == device:
                total += st.st_size
    return total


def filesystem_space(path):
    """Free bytes for an unprivileged user on the filesystem that holds ``path``."""
    where = nearest_existing(path)
    st = os.statvfs(where)
    return {'path': where, 'available_bytes': st.f_bavail * st.f_frsize,
            'total_bytes': st.f_blocks * st.f_frsize, 'device': os.stat(where).st_dev}


def space_needed(estimate_bytes, margin_percent, wal_headroom_bytes):
    return int(estimate_bytes * (1 + margin_percent / 100.0)) + int(wal_headroom_bytes)


def check_free_space(data_directory, estimate_bytes, margin_percent, wal_headroom_bytes,
                     reclaimable_bytes=0):
    """Space check; returns its figures, raises BasebackupError (with them) when short."""
    space = filesystem_space(data_directory)
    needed = space_needed(estimate_bytes, margin_percent, wal_headroom_bytes)
    available = space['available_bytes'] + reclaimable_bytes
    result = {'path': space['path'], 'estimate_bytes': int(estimate_bytes), 'margin_percent': margin_percent,
              'wal_headroom_bytes': int(wal_headroom_bytes), 'needed_bytes': needed,
              'free_bytes': space['available_bytes'], 'reclaimable_bytes': int(reclaimable_bytes),
              'available_bytes': available}
    if needed > available:
        raise BasebackupError(
            'not enough free space for the copy on the filesystem of %s (checked at %s): needed %s '
            '(%d bytes = upstream estimate %s + %s%% margin + WAL headroom %s), available %s (%d bytes%s); '
            'nothing was changed' % (
                data_directory, space['path'], pretty_bytes(needed), needed, pretty_bytes(estimate_bytes),
                margin_percent, pretty_bytes(wal_headroom_bytes), pretty_bytes(available), available,
                ', of which %s from the directory to be removed' % pretty_bytes(reclaimable_bytes)
                if reclaimable_bytes else ''))
    return result


def check_writable(data_directory, state, existing):
    """Raise BasebackupError unless this user can create, empty or move the directory."""
    if state == STATE_ABSENT:
        parent = nearest_existing(data_directory)
        if not os.access(parent, os.W_OK | os.X_OK):
            raise BasebackupError('cannot create %s: %s is not writable by this user (uid %d)'
                                  % (data_directory, parent, os.geteuid()))
        return
    if not os.access(data_directory, os.W_OK | os.X_OK | os.R_OK):
        raise BasebackupError('data_directory %s is not writable by this user (uid %d)'
                              % (data_directory, os.geteuid()))
    if existing == 'move_aside':
        if os.path.ismount(data_directory):
            raise BasebackupError('data_directory %s is a mount point and cannot be renamed; use a '
                                  'subdirectory of the mount point, or existing=remove' % data_directory)
        parent = os.path.dirname(os.path.abspath(data_directory))
        if not os.access(parent, os.W_OK | os.X_OK):
            raise BasebackupError('cannot move %s aside: its parent %s is not writable by this user (uid %d)'
                                  % (data_directory, parent, os.geteuid()))


def check_tablespace_locations(tablespaces, data_directory):
    """pg_basebackup writes tablespaces to the upstream's paths: they must be free here."""
    for space in tablespaces or []:
        location = space.get('location') or ''
        if not os.path.isabs(location):
            continue  # in-place tablespace, inside the data directory
        if os.path.commonpath([os.path.abspath(location), os.path.abspath(data_directory)]) == \
                os.path.abspath(data_directory):
            continue
        if os.path.isdir(location) and os.listdir(location):
            raise BasebackupError('the upstream has tablespace %s at %s, and %s is not empty here: '
                                  'pg_basebackup would refuse; empty it first' % (
                                      space['name'], location, location))


def aside_name(data_directory, now=None):
    """``<dir>.pgha-<UTC timestamp>``, with a counter when that name is taken."""
    now = now or datetime.datetime.utcnow()
    base = '%s.pgha-%s' % (data_directory.rstrip('/'), now.strftime('%Y%m%dT%H%M%SZ'))
    candidate, counter = base, 1
    while os.path.lexists(candidate):
        counter += 1
        candidate = '%s-%d' % (base, counter)
    return candidate


def move_aside(data_directory, now=None):
    target = aside_name(data_directory, now)
    os.rename(data_directory, target)
    return target


def clear_directory(path, keep=()):
    """Remove everything inside ``path`` but the names in ``keep`` (links removed, never
    followed); keep ``path``."""
    for name in os.listdir(path):
        if name in keep:
            continue
        full = os.path.join(path, name)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        else:
            os.unlink(full)


def remove_tree(path):
    """Remove ``path`` and everything under it (symbolic links removed, never followed)."""
    if os.path.islink(path):
        os.unlink(path)
    else:
        shutil.rmtree(path)


def fix_directory_mode(path):
    """PostgreSQL starts only on a data directory of mode 0700 or 0750 (group access)."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode not in (0o700, 0o750):
        os.chmod(path, 0o750 if mode & 0o077 == 0o050 else 0o700)


def estimate_size(size_check, sql, sql_error, base_backup):
    """Bytes the copy will write, and where the figure comes from.

    ``sql``: the result of ``sql_details`` (or None, with ``sql_error`` saying why).
    ``base_backup``: a function that returns the server's base backup estimate.

    The SQL figure (the sum of ``pg_database_size``) is free: it is used when the role may
    open an ordinary connection (pg_hba.conf) and read the size of every database (CONNECT,
    granted to PUBLIC by default, or membership of pg_read_all_stats). Otherwise the base
    backup estimate is the one that works with a replication-only role.
    """
    if size_check in ('auto', 'sql') and sql is not None and not sql['unreadable']:
        return {'bytes': sql['bytes'], 'source': SIZE_SOURCE_SQL, 'databases': sql['databases']}
    if sql is not None:
        why = 'the role cannot read the size of database(s) %s' % ', '.join(sql['unreadable'])
    else:
        why = sql_error or 'not tried'
    if size_check == 'sql':
        raise BasebackupError('size_check=sql, but the size of the upstream cannot be read over SQL: %s' % why)
    return {'bytes': base_backup(), 'source': SIZE_SOURCE_BASE_BACKUP,
            'why': why if size_check == 'auto' else 'size_check=base_backup'}


# -- the copy ------------------------------------------------------------------------

def basebackup_command(pg_basebackup, data_directory, upstream, slot=None, create_slot=False,
                       max_rate=None, checkpoint='fast', label='pgha.multidc pg_basebackup_standby'):
    """pg_basebackup's argument vector: streams WAL, writes the standby configuration (-R),
    never prompts and never carries a password (that is in PGPASSFILE)."""
    argv = [pg_basebackup, '-D', data_directory, '-d', copy_conninfo(upstream), '-X', 'stream',
            '-c', checkpoint, '-R', '--no-password', '-v', '-l', label]
    if slot:
        argv += ['-S', slot]
        if create_slot:
            argv.append('-C')
    if max_rate:
        argv += ['-r', max_rate]
    return argv


def _stop_group(proc, grace=30):
    """SIGTERM the process group of ``proc`` (pg_basebackup forks its WAL streamer, which
    keeps the output pipes open), then SIGKILL it after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except OSError:
            pass
        try:
            return proc.communicate(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    return b'', b''


def run_basebackup(argv, passfile=None, timeout=0, secret=None):
    """Run pg_basebackup; return dict(rc, output, duration_seconds, timed_out).

    ``timeout`` 0 means no limit. On timeout its process group gets SIGTERM, then SIGKILL.
    """
    env = clean_environment({'PGPASSFILE': passfile} if passfile else None)
    start = time.time()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, close_fds=True,
                            start_new_session=True)
    timed_out = False
    try:
        out, dummy = proc.communicate(timeout=timeout or None)
    except subprocess.TimeoutExpired:
        timed_out = True
        out, dummy = _stop_group(proc)
    except BaseException:
        _stop_group(proc, grace=5)
        raise
    return {'rc': proc.returncode, 'output': scrub(out.decode('utf-8', 'replace'), secret),
            'timed_out': timed_out, 'duration_seconds': round(time.time() - start, 3)}


def parse_backup_label(text):
    """START WAL LOCATION, START TIMELINE and BACKUP FROM of a backup_label file."""
    result = {}
    for line in (text or '').splitlines():
        if ':' not in line:
            continue
        key, value = line.split(':', 1)
        key, value = key.strip(), value.strip()
        if key == 'START WAL LOCATION':
            result['start_lsn'] = value.split()[0]
        elif key == 'CHECKPOINT LOCATION':
            result['checkpoint_lsn'] = value
        elif key == 'START TIMELINE':
            result['timeline'] = int(value) if value.isdigit() else None
        elif key == 'BACKUP FROM':
            result['backup_from'] = value
        elif key == 'START TIME':
            result['start_time'] = value
    return result


def read_backup_label(data_directory):
    try:
        with open(os.path.join(data_directory, 'backup_label')) as handle:
            return parse_backup_label(handle.read())
    except (IOError, OSError):
        return {}


def last_error_lines(output, count=6):
    """The lines of pg_basebackup's output worth showing (errors first)."""
    lines = [line for line in (output or '').splitlines() if line.strip()]
    errors = [line for line in lines if 'error' in line.lower() or 'fatal' in line.lower()]
    return ' | '.join((errors or lines)[-count:])

# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one connection layer of the collection: argument specs, libpq parameters,
psycopg2 connections and server version checks.

Modules call ``connection_argument_spec()`` and ``connect_from_module()``; code
that runs outside Ansible (the health agent) calls ``open_connection()``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import socket
import time
import traceback

try:
    import psycopg2
    import psycopg2.extensions
    HAS_PSYCOPG2 = True
    PSYCOPG2_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - depends on the host
    psycopg2 = None
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = traceback.format_exc()

from ansible_collections.pgha.multidc.plugins.module_utils.conninfo import REDACTED

MIN_SERVER_VERSION_NUM = 140000
SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']

# libpq keyword -> module option, for the local (login_*) connection.
_LOGIN_TO_LIBPQ = (
    ('login_port', 'port'),
    ('login_user', 'user'),
    ('login_password', 'password'),
    ('login_passfile', 'passfile'),
    ('login_db', 'dbname'),
    ('ssl_mode', 'sslmode'),
    ('ssl_rootcert', 'sslrootcert'),
    ('ssl_cert', 'sslcert'),
    ('ssl_key', 'sslkey'),
    ('connect_timeout', 'connect_timeout'),
)


class PostgresError(Exception):
    """A connection or query failure with a message safe to show (no secrets)."""


# What a failed statement raises, for ``except`` clauses in modules (psycopg2 may be missing).
DatabaseError = psycopg2.Error if HAS_PSYCOPG2 else PostgresError


def connection_argument_spec():
    """Options shared by every module that connects to the local server."""
    return dict(
        login_host=dict(type='str', default=''),
        login_unix_socket=dict(type='str', default=''),
        login_port=dict(type='int', default=5432, aliases=['port']),
        login_user=dict(type='str', default='postgres'),
        login_password=dict(type='str', default='', no_log=True),
        login_passfile=dict(type='path'),
        login_db=dict(type='str', default='postgres'),
        ssl_mode=dict(type='str', default='prefer', choices=SSL_MODES),
        ssl_rootcert=dict(type='path'),
        ssl_cert=dict(type='path'),
        ssl_key=dict(type='path', no_log=False),
        connect_timeout=dict(type='int', default=5),
    )


def upstream_suboptions():
    """Suboptions of an ``upstream`` dict: the libpq keywords of a remote server."""
    return dict(
        host=dict(type='str', required=True),
        port=dict(type='int', default=5432),
        user=dict(type='str', required=True),
        password=dict(type='str', no_log=True),
        passfile=dict(type='path'),
        sslmode=dict(type='str', default='verify-full', choices=SSL_MODES),
        sslrootcert=dict(type='path'),
        sslcert=dict(type='path'),
        sslkey=dict(type='path', no_log=False),
        connect_timeout=dict(type='int', default=5),
    )


def libpq_params_from_module(params):
    """libpq keywords for the local connection described by the login_* options."""
    result = {}
    host = params.get('login_host') or params.get('login_unix_socket')
    if host:
        result['host'] = host
    for option, keyword in _LOGIN_TO_LIBPQ:
        value = params.get(option)
        if value not in (None, ''):
            result[keyword] = value
    return result


def describe_target(libpq_params):
    """``user@host:port`` for messages; never includes a password."""
    return '%s@%s:%s' % (libpq_params.get('user', '?'),
                         libpq_params.get('host') or 'local socket',
                         libpq_params.get('port', 5432))


def _clean_error(error, libpq_params):
    text = str(error).strip()
    password = libpq_params.get('password')
    if password:
        text = text.replace(str(password), REDACTED)
    return text


def open_connection(libpq_params, autocommit=True, application_name='pgha.multidc'):
    """Connect with psycopg2; raise PostgresError with a message that names the target."""
    if not HAS_PSYCOPG2:
        raise PostgresError('the psycopg2 Python library is required')
    params = dict(libpq_params)
    params.setdefault('application_name', application_name)
    try:
        conn = psycopg2.connect(**params)
    except psycopg2.Error as error:
        raise PostgresError('cannot connect to %s: %s' % (describe_target(params), _clean_error(error, params)))
    conn.autocommit = autocommit
    return conn


def ensure_driver(module):
    """Fail the module with Ansible's standard message when psycopg2 is missing."""
    if not HAS_PSYCOPG2:
        from ansible.module_utils.basic import missing_required_lib
        module.fail_json(msg=missing_required_lib('psycopg2'), exception=PSYCOPG2_IMPORT_ERROR)


def connect_from_module(module, check_version=True):
    """Open the local connection from the module's login_* options or fail cleanly."""
    ensure_driver(module)
    try:
        conn = open_connection(libpq_params_from_module(module.params))
    except PostgresError as error:
        module.fail_json(msg=str(error))
    if check_version:
        try:
            check_server_version(conn)
        except PostgresError as error:
            conn.close()
            module.fail_json(msg=str(error))
    return conn


def query(conn, sql, params=None):
    """Run ``sql`` and return the rows as dicts (an empty list when none)."""
    cursor = conn.cursor()
    try:
        cursor.execute(sql, params)
        if cursor.description is None:
            return []
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]
    finally:
        cursor.close()


def query_one(conn, sql, params=None):
    rows = query(conn, sql, params)
    return rows[0] if rows else None


def server_version_num(conn):
    return int(conn.server_version)


def check_server_version(conn, minimum=MIN_SERVER_VERSION_NUM):
    version = server_version_num(conn)
    if version < minimum:
        raise PostgresError('PostgreSQL %s is not supported: pgha.multidc needs %d or newer'
                            % (format_version(version), minimum // 10000))
    return version


def format_version(version_num):
    return '%d.%d' % (version_num // 10000, version_num % 10000)


def quote_identifier(name):
    """Quote an SQL identifier (slot names are validated separately)."""
    return '"' + str(name).replace('"', '""') + '"'


# -- helpers shared by the replication modules -------------------------------------

def execute_recorded(conn, sql, params=None, queries=None):
    """Run a statement that changes something; once it succeeded append its text
    (parameters bound) to ``queries``, so that modules return what they ran and report
    ``changed`` honestly. Returns the rows as dicts."""
    text = render_query(conn, sql, params) if queries is not None else None
    rows = query(conn, sql, params)
    if queries is not None:
        queries.append(text)
    return rows


def render_query(conn, sql, params=None):
    """The text of ``sql`` with ``params`` bound, as the server would receive it."""
    cursor = conn.cursor()
    try:
        text = cursor.mogrify(sql, params)
    finally:
        cursor.close()
    return text.decode('utf-8') if isinstance(text, bytes) else text


def wait_until(probe, timeout, interval=0.2):
    """Call ``probe()`` until it returns a true value or ``timeout`` seconds pass.

    Always calls it at least once; returns ``(ok, last value, seconds waited)``.
    """
    start = time.time()
    deadline = start + max(timeout, 0)
    while True:
        value = probe()
        if value:
            return True, value, time.time() - start
        if time.time() >= deadline:
            return False, value, time.time() - start
        time.sleep(min(interval, max(deadline - time.time(), 0.01)))


def is_in_recovery(conn):
    """True on a standby (or a server still recovering), False on a primary."""
    return bool(query_one(conn, 'SELECT pg_is_in_recovery() AS r')['r'])


def describe_backend(conn, pid):
    """A short description of backend ``pid`` for messages, e.g.
    ``walsender pid 4242 (application_name dc1_pg2, client 10.0.0.12)``."""
    row = query_one(conn, """
        SELECT pid, backend_type, usename, application_name, client_addr::text AS client_addr
        FROM pg_stat_activity WHERE pid = %s""", (pid,))
    if not row:
        return 'pid %s' % pid
    details = []
    if row['application_name']:
        details.append('application_name %s' % row['application_name'])
    if row['client_addr']:
        details.append('client %s' % row['client_addr'])
    if row['usename']:
        details.append('user %s' % row['usename'])
    text = '%s pid %s' % (row['backend_type'] or 'backend', pid)
    return text + (' (%s)' % ', '.join(details) if details else '')


TERMINATE_BACKEND_SQL = 'SELECT pg_terminate_backend(%s)'


def terminate_backend(conn, pid, queries=None):
    """pg_terminate_backend(pid); True when the signal was sent."""
    row = execute_recorded(conn, TERMINATE_BACKEND_SQL, (pid,), queries)
    return bool(row and row[0]['pg_terminate_backend'])


# libpq's own messages for "nobody answered" (client side, not translated: Python does
# not set LC_MESSAGES). Anything else means a server answered (or the client could not
# even try, e.g. a missing CA file), which a safety check must not read as "down".
_NO_ANSWER_MARKERS = (
    'Connection refused', 'timeout expired', 'Connection timed out', 'No route to host',
    'Network is unreachable', 'could not translate host name', 'Name or service not known',
    'Temporary failure in name resolution', 'server closed the connection unexpectedly',
    'No such file or directory',
)


def nobody_answered(message):
    """True when a connection error says that no server answered at all."""
    return any(marker in message for marker in _NO_ANSWER_MARKERS)


def tcp_probe(host, port, timeout):
    """(state, error): 'open', 'refused', 'timeout', 'unreachable' or 'error' for a TCP
    connection to host:port within ``timeout`` s."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.timeout:
        return 'timeout', 'no answer on %s:%s within %s s' % (host, port, timeout)
    except socket.gaierror as error:
        return 'unreachable', 'cannot resolve %s: %s' % (host, error)
    except OSError as error:
        if error.errno == errno.ECONNREFUSED:
            return 'refused', 'connection refused on %s:%s' % (host, port)
        if error.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return 'unreachable', '%s:%s: %s' % (host, port, error.strerror)
        return 'error', '%s:%s: %s' % (host, port, error)
    sock.close()
    return 'open', None


def _tcp_target(params):
    """(host, port) that a TCP check can try for these libpq parameters, or None (a Unix
    socket, several hosts)."""
    host = params.get('hostaddr') or params.get('host')
    if not host or str(host).startswith('/') or ',' in str(host) or ',' in str(params.get('port', '')):
        return None
    return host, int(params.get('port') or 5432)


def probe_replication_server(libpq_params, application_name='pgha.multidc-probe', timeline_history=False,
                             tcp_timeout=None):
    """Open a physical replication connection (what a standby itself opens, so the
    ``replication`` line of pg_hba.conf is enough) and report what answers.

    Returns a dict: ``answered`` (a server responded, even if only to refuse),
    ``reachable`` (connected), ``in_recovery`` (from the ``in_hot_standby`` parameter,
    None when unknown), ``system_identifier``, ``timeline`` and ``wal_position`` (from
    IDENTIFY_SYSTEM: the current WAL position on a primary, the flushed position on a
    standby) and ``error`` (password redacted).

    With ``timeline_history`` the same connection also runs TIMELINE_HISTORY of the
    server's timeline and adds ``timeline_history``: the text of that history file, None
    on timeline 1 (which has none) or when it could not be read.

    With ``tcp_timeout`` a plain TCP connection is tried first and libpq only when the
    port takes it: a host that is gone then costs ``tcp_timeout`` s, not libpq's
    ``connect_timeout`` (2 s at least).
    """
    result = {'answered': False, 'reachable': False, 'in_recovery': None, 'system_identifier': None,
              'timeline': None, 'wal_position': None, 'error': None}
    if timeline_history:
        result['timeline_history'] = None
    if not HAS_PSYCOPG2:
        result['error'] = 'the psycopg2 Python library is required'
        return result
    import psycopg2.extras
    params = dict(libpq_params)
    params.setdefault('application_name', application_name)
    target = _tcp_target(params) if tcp_timeout else None
    if target:
        state, error = tcp_probe(target[0], target[1], tcp_timeout)
        if state != 'open':
            result['error'] = 'cannot connect to %s: %s' % (describe_target(params), error)
            return result
    try:
        conn = psycopg2.connect(connection_factory=psycopg2.extras.PhysicalReplicationConnection, **params)
    except psycopg2.Error as error:
        message = _clean_error(error, params)
        result['error'] = 'cannot connect to %s: %s' % (describe_target(params), message)
        result['answered'] = not nobody_answered(message)
        return result
    result['answered'] = result['reachable'] = True
    try:
        hot_standby = conn.info.parameter_status('in_hot_standby')
        if hot_standby in ('on', 'off'):
            result['in_recovery'] = hot_standby == 'on'
        cursor = conn.cursor()
        cursor.execute('IDENTIFY_SYSTEM')
        row = cursor.fetchone()
        result['system_identifier'] = str(row[0])
        result['timeline'] = int(row[1])
        result['wal_position'] = row[2]
        if timeline_history and result['timeline'] > 1:
            cursor.execute('TIMELINE_HISTORY %d' % result['timeline'])
            content = cursor.fetchone()[1]
            if isinstance(content, memoryview):
                content = content.tobytes()
            if isinstance(content, bytes):
                content = content.decode('utf-8', 'replace')
            result['timeline_history'] = content
        cursor.close()
    except psycopg2.Error as error:
        result['error'] = '%s failed on %s: %s' % (
            'IDENTIFY_SYSTEM/TIMELINE_HISTORY' if timeline_history else 'IDENTIFY_SYSTEM',
            describe_target(params), _clean_error(error, params))
    finally:
        conn.close()
    return result


def upstream_probe_argument_spec():
    """Options of the modules that probe a standby's recorded upstream
    (doc fragment pgha.multidc.upstream_probe)."""
    return dict(
        upstream_passfile=dict(type='path'),
        upstream_sslrootcert=dict(type='path'),
        upstream_connect_timeout=dict(type='int', default=3),
    )

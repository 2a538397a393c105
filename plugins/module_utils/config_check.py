# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check the configuration files on disk with the running server, reload it, and tell
which parameters wait for a restart (module pg_reload_config).

1. Connect. A server that does not answer, or answers that it is starting up, shutting
   down or recovering (what ``pg_isready`` exits 2 and 1 for), is reported, not an error.
2. Read the errors of the files as the server would parse them now: ``pg_file_settings``
   (a whole-file error has no name; a named one is a parameter the server cannot take),
   ``pg_hba_file_rules`` and ``pg_ident_file_mappings`` (PostgreSQL 15+). Errors stop
   everything before the reload: the server keeps the configuration it runs with.
   The one named error that is not an error is a changed parameter of context
   ``postmaster``: the server "could not apply" it, a restart will.
3. ``SELECT pg_reload_conf()`` (the SIGHUP that ``systemctl reload`` sends), then wait
   until this session has reloaded too (``pg_conf_load_time()`` advances) and read
   ``pg_settings.pending_restart``, which the reload updates.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pgha.multidc.plugins.module_utils.connection import (
    PostgresError, execute_recorded, nobody_answered, open_connection, query, query_one, server_version_num,
    wait_until)
from ansible_collections.pgha.multidc.plugins.module_utils.conninfo import build_conninfo

# Seconds to wait for the server to process the reload before pending_restart is read.
RELOAD_WAIT = 2.0

# What the server answers, with SQLSTATE 57P03 (cannot_connect_now), to a connection it
# rejects while it starts, stops or recovers: what PQping and pg_isready call "rejecting".
# Untranslated as long as lc_messages is English or C (the role sets C.UTF-8); otherwise
# PQping decides (see connection_status).
_NOT_ACCEPTING_MARKERS = (
    'the database system is starting up',
    'the database system is shutting down',
    'the database system is in recovery mode',
    'the database system is not yet accepting connections',
    'the database system is not accepting connections',
)

# PQping results (libpq-fe.h PGPing).
PQPING_OK, PQPING_REJECT, PQPING_NO_RESPONSE, PQPING_NO_ATTEMPT = 0, 1, 2, 3

ACCEPTING, NOT_ACCEPTING, NOT_RUNNING, REFUSED = 'accepting', 'not_accepting', 'not_running', 'refused'

RELOAD_SQL = 'SELECT pg_reload_conf()'

_LOAD_TIME_SQL = 'SELECT pg_conf_load_time() AS load_time'

# Every entry of pg_file_settings with an error, in file order, with the context of the
# parameter it sets (names are case-insensitive, the view keeps them as written).
_FILE_SETTINGS_SQL = """
SELECT f.sourcefile, f.sourceline, f.name, f.error, s.name AS setting, s.context
FROM pg_file_settings f LEFT JOIN pg_settings s ON s.name = lower(f.name)
WHERE f.error IS NOT NULL
ORDER BY f.seqno NULLS LAST, f.sourcefile, f.sourceline
"""

# The rows with errors as JSON, so that the same query reads PostgreSQL 14 and 15 (no
# file_name column: errors are in hba_file / ident_file) and 16+ (file_name: includes).
_HBA_ERRORS_SQL = """
SELECT current_setting('hba_file') AS default_file,
       coalesce((SELECT jsonb_agg(to_jsonb(r)) FROM pg_hba_file_rules r WHERE r.error IS NOT NULL), '[]') AS rows
"""

_IDENT_ERRORS_SQL = """
SELECT current_setting('ident_file') AS default_file,
       coalesce((SELECT jsonb_agg(to_jsonb(m)) FROM pg_ident_file_mappings m WHERE m.error IS NOT NULL), '[]') AS rows
"""

_PENDING_RESTART_SQL = """
SELECT pg_conf_load_time() AS load_time,
       ARRAY(SELECT name FROM pg_settings WHERE pending_restart ORDER BY name) AS pending_restart
"""


class ConfigFileErrors(Exception):
    """The configuration files on disk have errors: nothing was reloaded."""


# -- is the server there ----------------------------------------------------------

def connection_status(message, ping=None):
    """What a failed connection says of the server: NOT_RUNNING (nobody answered),
    NOT_ACCEPTING (it answered that it is starting up, shutting down or recovering) or
    REFUSED (it answered and refused for another reason: authentication, pg_hba.conf,
    too many connections, ...).

    ``ping``, when given, is called without arguments for a message that is none of the
    known ones and returns a PQping result (or None): PQPING_REJECT means not accepting
    (a server whose messages are translated), PQPING_NO_RESPONSE not running.
    """
    if nobody_answered(message):
        return NOT_RUNNING
    if any(marker in message for marker in _NOT_ACCEPTING_MARKERS):
        return NOT_ACCEPTING
    answer = ping() if ping is not None else None
    if answer == PQPING_REJECT:
        return NOT_ACCEPTING
    if answer == PQPING_NO_RESPONSE:
        return NOT_RUNNING
    return REFUSED


def libpq_ping(libpq_params):
    """PQping, what pg_isready asks, with the same parameters; None when the libpq shared
    library cannot be loaded."""
    try:
        import ctypes
        libpq = ctypes.CDLL('libpq.so.5')
        ping = libpq.PQping
    except (ImportError, OSError, AttributeError):
        return None
    ping.argtypes = [ctypes.c_char_p]
    ping.restype = ctypes.c_int
    return int(ping(build_conninfo(libpq_params).encode('utf-8')))


def open_local(libpq_params, ping=libpq_ping):
    """Connect; return ``(connection or None, status, error message or None)``."""
    try:
        return open_connection(libpq_params, application_name='pgha.multidc-reload'), ACCEPTING, None
    except PostgresError as error:
        message = str(error)
        return None, connection_status(message, lambda: ping(libpq_params)), message


# -- what the files on disk say ---------------------------------------------------------

def _where(path, line):
    return '%s:%s' % (path or '(unknown file)', line if line is not None else '?')


def classify_file_settings(rows):
    """Split the pg_file_settings rows with an error into ``(file_errors, restart)``.

    ``restart``: the parameters of context postmaster whose new value the running server
    "could not apply" (sorted, canonical names). Everything else is an error of the files,
    as ``file:line: error`` (``file:line: name: error`` for a parameter): a syntax error, a
    missing include, an unknown parameter (the server then applies nothing of the files)
    or a value a reloadable parameter cannot take. A server would not start with any of
    them.
    """
    errors, restart = [], set()
    for row in rows:
        if row.get('name') and row.get('context') == 'postmaster':
            restart.add(row.get('setting') or row['name'].lower())
            continue
        where = _where(row.get('sourcefile'), row.get('sourceline'))
        text = '%s: %s: %s' % (where, row['name'], row['error']) if row.get('name') else \
            '%s: %s' % (where, row['error'])
        if text not in errors:
            errors.append(text)
    return errors, sorted(restart)


def format_auth_file_errors(rows, default_file):
    """``file:line: error`` for the rows with an error of pg_hba_file_rules or
    pg_ident_file_mappings (as JSON objects), in file and line order. ``file_name``
    exists from PostgreSQL 16 on; before, every row comes from ``default_file``."""
    entries = sorted(((row.get('file_name') or default_file, row.get('line_number') or 0, row.get('error'))
                      for row in rows), key=lambda entry: (entry[0] or '', entry[1]))
    return ['%s: %s' % (_where(path, line), error) for path, line, error in entries]


def read_file_state(conn):
    """The errors of the configuration files on disk and what a reload would leave for a
    restart, as the server parses the files now: a dict with ``file_errors``,
    ``hba_errors``, ``ident_errors``, ``not_applied`` (parameters of context postmaster
    changed in the files), ``pending_restart`` and ``load_time`` (pg_conf_load_time())."""
    file_errors, not_applied = classify_file_settings(query(conn, _FILE_SETTINGS_SQL))
    hba = query_one(conn, _HBA_ERRORS_SQL)
    state = {
        'file_errors': file_errors,
        'not_applied': not_applied,
        'hba_errors': format_auth_file_errors(hba['rows'], hba['default_file']),
        'ident_errors': [],
    }
    if server_version_num(conn) >= 150000:  # pg_ident_file_mappings is new in 15
        ident = query_one(conn, _IDENT_ERRORS_SQL)
        state['ident_errors'] = format_auth_file_errors(ident['rows'], ident['default_file'])
    pending = query_one(conn, _PENDING_RESTART_SQL)
    state['pending_restart'] = list(pending['pending_restart'])
    state['load_time'] = pending['load_time']
    return state


def errors_message(state):
    """The failure message for the errors in ``state`` (read_file_state), None without."""
    errors = state['file_errors'] + state['hba_errors'] + state['ident_errors']
    if not errors:
        return None
    return ('the configuration files have errors; PostgreSQL keeps running with the previous ones '
            '(not reloaded): %s' % '; '.join(errors))


# -- reload -------------------------------------------------------------------------------

def reload_and_read(conn, before, timeout=RELOAD_WAIT, queries=None):
    """SELECT pg_reload_conf(), then wait up to ``timeout`` seconds until this session has
    processed the reload (pg_conf_load_time() later than ``before``): only then does
    pg_settings.pending_restart show the new files. Returns ``(confirmed, pending_restart)``."""
    execute_recorded(conn, RELOAD_SQL, queries=queries)
    last = {}

    def reloaded():
        last.update(query_one(conn, _PENDING_RESTART_SQL))
        return before is None or last['load_time'] > before

    confirmed = wait_until(reloaded, timeout, interval=0.05)[0]
    return confirmed, list(last['pending_restart'])


def restart_needed(not_applied, pending_restart, confirmed):
    """``(parameters that need a restart, parameters with an invalid value)``.

    Once the reload is confirmed, ``pending_restart`` is exact: the server sets it for a
    parameter of context postmaster whose new value is valid and differs from the running
    one. A parameter it "could not apply" that is not pending then has a value the server
    rejects: a restart would fail, it is returned apart. Without confirmation, every
    parameter it could not apply is counted.
    """
    pending = set(pending_restart)
    if not confirmed:
        return sorted(pending | set(not_applied)), []
    return sorted(pending), sorted(set(not_applied) - pending)


def check_and_reload(conn, result, reload=True, check_mode=False, timeout=RELOAD_WAIT):
    """Check the files and reload the server unless ``check_mode`` or not ``reload``.

    Fills ``result``: ``file_errors``, ``hba_errors``, ``ident_errors``,
    ``restart_needed``, ``reloaded`` and ``queries`` (the reload, once run; in check mode
    the one that would run). Raises ConfigFileErrors, before any reload, when the files
    have errors. Returns the warnings.
    """
    state = read_file_state(conn)
    result.update(file_errors=state['file_errors'], hba_errors=state['hba_errors'],
                  ident_errors=state['ident_errors'],
                  restart_needed=sorted(set(state['not_applied']) | set(state['pending_restart'])))
    problem = errors_message(state)
    if problem:
        raise ConfigFileErrors(problem)
    warnings = []
    if not reload:
        return warnings
    if check_mode:
        result['queries'].append(RELOAD_SQL)
        return warnings
    confirmed, pending = reload_and_read(conn, state['load_time'], timeout, result['queries'])
    result['reloaded'] = True
    result['restart_needed'], invalid = restart_needed(state['not_applied'], pending, confirmed)
    if not confirmed:
        warnings.append('the server did not confirm the reload within %g s (pg_conf_load_time() did not advance): '
                        'restart_needed lists every parameter it could not apply' % timeout)
    if invalid:
        warnings.append('%s: the server rejects the value in the configuration files (see its log); it is not '
                        'waiting for a restart, and a restart would fail until the value is fixed'
                        % ', '.join(invalid))
    return warnings

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

# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The replication state of one PostgreSQL node, read over one connection.

``gather_node_state(conn)`` is what pg_replication_info returns, what the health
agent serves and what failover compares between nodes. Secrets never leave it:
the upstream conninfo is returned with its password redacted.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pgha.multidc.plugins.module_utils.connection import (
    DatabaseError, query, query_one, server_version_num, format_version, describe_target,
    is_in_recovery, probe_replication_server)
from ansible_collections.pgha.multidc.plugins.module_utils.conninfo import (
    parse_conninfo, redact, build_conninfo, ConninfoError)
from ansible_collections.pgha.multidc.plugins.module_utils.lsn import lsn_diff, max_lsn

ROLE_PRIMARY = 'primary'
ROLE_STANDBY = 'standby'
ROLE_CASCADING_STANDBY = 'cascading_standby'

_SETTINGS = ('data_directory', 'port', 'wal_level', 'hot_standby', 'hot_standby_feedback',
             'wal_log_hints', 'data_checksums', 'max_wal_senders', 'max_replication_slots',
             'synchronous_standby_names', 'synchronous_commit', 'primary_slot_name',
             'restore_command', 'recovery_target_timeline', 'cluster_name')

_BASE_SQL = """
SELECT pg_is_in_recovery() AS in_recovery,
       (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,
       (SELECT timeline_id FROM pg_control_checkpoint()) AS checkpoint_timeline,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS current_lsn,
       pg_last_wal_receive_lsn()::text AS receive_lsn,
       pg_last_wal_replay_lsn()::text AS replay_lsn,
       CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() END AS replay_pause_state,
       extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS since_last_replay_s,
       pg_last_xact_replay_timestamp()::text AS last_replay_timestamp,
       current_setting('primary_conninfo') AS primary_conninfo,
       pg_postmaster_start_time()::text AS postmaster_start_time
"""

# What a server says of itself to a client on the network (the failover's witness, pg_probe).
_WITNESS_SQL = """
SELECT pg_is_in_recovery() AS in_recovery,
       current_setting('default_transaction_read_only') AS read_only,
       (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,
       CASE WHEN pg_is_in_recovery()
            THEN (SELECT timeline_id FROM pg_control_checkpoint())
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS timeline,
       CASE WHEN pg_is_in_recovery()
            THEN greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text
            ELSE pg_current_wal_lsn()::text END AS wal_position
"""

_CURRENT_TIMELINE_SQL = "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int AS tli"

_RECEIVER_SQL = """
SELECT status, receive_start_lsn::text, received_tli, written_lsn::text, flushed_lsn::text,
       latest_end_lsn::text, last_msg_receipt_time::text, slot_name, sender_host, sender_port, conninfo
FROM pg_stat_wal_receiver
"""

_REPLICAS_SQL = """
SELECT application_name, client_addr::text, client_hostname, state, sync_state, sync_priority,
       sent_lsn::text, write_lsn::text, flush_lsn::text, replay_lsn::text,
       extract(epoch FROM write_lag)::float8 AS write_lag_s,
       extract(epoch FROM flush_lag)::float8 AS flush_lag_s,
       extract(epoch FROM replay_lag)::float8 AS replay_lag_s,
       backend_start::text, pid
FROM pg_stat_replication ORDER BY application_name, pid
"""

_SLOT_COLUMNS = """slot_name, slot_type, plugin, database, temporary, active, active_pid,
       restart_lsn::text, confirmed_flush_lsn::text, wal_status, safe_wal_size"""

_SLOTS_SQL = 'SELECT %s FROM pg_replication_slots ORDER BY slot_name' % _SLOT_COLUMNS
# The primary's WAL archiver. PostgreSQL retries a failed segment until it goes, so the
# archive is failing when the last failure is newer than the last success: WAL piles up
# in pg_wal meanwhile. Ages in seconds.
ARCHIVER_SQL = """
SELECT current_setting('archive_mode') AS archive_mode, archived_count,
       coalesce(last_archived_wal, '') AS last_archived_wal,
       extract(epoch FROM now() - last_archived_time)::float8 AS last_archived_age,
       failed_count, coalesce(last_failed_wal, '') AS last_failed_wal,
       extract(epoch FROM now() - last_failed_time)::float8 AS last_failed_age,
       coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false) AS failing
FROM pg_stat_archiver
"""


def read_settings(conn, names=_SETTINGS):
    rows = query(conn, 'SELECT name, setting FROM pg_settings WHERE name = ANY(%s)', (list(names),))
    return dict((row['name'], row['setting']) for row in rows)


def read_witness_state(conn):
    """in_recovery, read_only, system_identifier, timeline and wal_position of the server."""
    row = query_one(conn, _WITNESS_SQL)
    return {'in_recovery': bool(row['in_recovery']), 'read_only': row['read_only'] == 'on',
            'system_identifier': row['system_identifier'], 'timeline': row['timeline'],
            'wal_position': row['wal_position']}


def describe_upstream(primary_conninfo, slot_name=None):
    """The upstream a standby is configured to follow, with its password redacted."""
    if not primary_conninfo:
        return None
    try:
        params = parse_conninfo(primary_conninfo)
    except ConninfoError as error:
        return {'conninfo_error': str(error)}
    return {
        'host': params.get('host') or params.get('hostaddr'),
        'port': int(params['port']) if params.get('port', '').isdigit() else 5432,
        'user': params.get('user'),
        'application_name': params.get('application_name'),
        'sslmode': params.get('sslmode'),
        'slot': slot_name or None,
        'conninfo': build_conninfo(redact(params)),
    }


def _redact_receiver(receiver):
    if receiver and receiver.get('conninfo'):
        receiver = dict(receiver)
        receiver['conninfo'] = redact(receiver['conninfo'])
    return receiver


def wal_position(state):
    """The most advanced WAL this node holds: current on a primary, else received/replayed."""
    if state.get('role') == ROLE_PRIMARY:
        return state.get('current_lsn')
    return max_lsn(state.get('receive_lsn'), state.get('replay_lsn'))


def gather_node_state(conn):
    """Read the complete replication state of the node behind ``conn``."""
    base = query_one(conn, _BASE_SQL)
    settings = read_settings(conn)
    version = server_version_num(conn)
    in_recovery = bool(base['in_recovery'])
    receiver = _redact_receiver(query_one(conn, _RECEIVER_SQL)) if in_recovery else None

    if in_recovery:
        timeline = (receiver or {}).get('received_tli') or base['checkpoint_timeline']
        replay_gap = lsn_diff(base['receive_lsn'], base['replay_lsn'])
        replay_gap = max(replay_gap, 0) if replay_gap is not None else 0
        # Seconds of lag are only meaningful while WAL is waiting to be replayed;
        # an idle primary would otherwise look like a growing lag.
        lag_seconds = base['since_last_replay_s'] if replay_gap > 0 else 0.0
    else:
        timeline = query_one(conn, _CURRENT_TIMELINE_SQL)['tli']
        replay_gap, lag_seconds = None, None

    replicas = query(conn, _REPLICAS_SQL)
    reference = base['current_lsn'] or base['replay_lsn']
    for replica in replicas:
        replica['replay_lag_bytes'] = lsn_diff(reference, replica['replay_lsn'])

    state = {
        'role': ROLE_STANDBY if in_recovery else ROLE_PRIMARY,
        'in_recovery': in_recovery,
        'server_version_num': version,
        'server_version': format_version(version),
        'system_identifier': base['system_identifier'],
        'timeline': int(timeline) if timeline is not None else None,
        'current_lsn': base['current_lsn'],
        'receive_lsn': base['receive_lsn'],
        'replay_lsn': base['replay_lsn'],
        'replay_lag_bytes': replay_gap,
        'replay_lag_seconds': lag_seconds,
        'last_replay_timestamp': base['last_replay_timestamp'],
        'replay_pause_state': base['replay_pause_state'],
        'replay_paused': base['replay_pause_state'] == 'paused',
        'upstream': describe_upstream(base['primary_conninfo'], settings.get('primary_slot_name'))
        if in_recovery else None,
        'wal_receiver': receiver,
        'streaming': bool(receiver and receiver.get('status') == 'streaming'),
        'replicas': replicas,
        'slots': query(conn, _SLOTS_SQL),
        'archiver': None if in_recovery else query_one(conn, ARCHIVER_SQL),
        'settings': settings,
        'postmaster_start_time': base['postmaster_start_time'],
    }
    state['wal_position'] = wal_position(state)
    return state


def mark_cascading(state, upstream_in_recovery):
    """Refine a standby's role once its upstream is known to be a standby itself."""
    if state.get('role') == ROLE_STANDBY and upstream_in_recovery:
        state['role'] = ROLE_CASCADING_STANDBY
    state['upstream_in_recovery'] = upstream_in_recovery
    return state


# -- single reads used by the replication modules ------------------------------------

# Wait events of the startup process that mean "replayed all it has, waiting for WAL".
STARTUP_WAITING_FOR_WAL = ('RecoveryWalStream', 'RecoveryRetrieveRetryInterval', 'RecoveryWalAll')

_REPLAY_SQL = """
SELECT pg_is_in_recovery() AS in_recovery,
       CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() END AS pause_state,
       pg_last_wal_receive_lsn()::text AS receive_lsn,
       pg_last_wal_replay_lsn()::text AS replay_lsn,
       (SELECT wait_event_type || ':' || wait_event FROM pg_stat_activity
         WHERE backend_type = 'startup' LIMIT 1) AS startup_wait,
       (SELECT status FROM pg_stat_wal_receiver) AS receiver_status
"""


def read_slot(conn, name):
    """The row of pg_replication_slots for ``name``, or None."""
    return query_one(conn, 'SELECT %s FROM pg_replication_slots WHERE slot_name = %%s' % _SLOT_COLUMNS, (name,))


def replay_status(conn):
    """Where replay stands on this server, in one read.

    ``replay_gap_bytes`` is received minus replayed WAL (0 when nothing was received
    by streaming since the server started). ``replay_idle`` is true when the startup
    process waits for more WAL: everything received that forms complete records has
    been replayed (a remaining gap is then the start of a record still incomplete).
    """
    row = query_one(conn, _REPLAY_SQL)
    status = dict(row)
    status['in_recovery'] = bool(row['in_recovery'])
    gap = lsn_diff(row['receive_lsn'], row['replay_lsn'])
    status['replay_gap_bytes'] = max(gap, 0) if gap is not None else 0
    event = (row['startup_wait'] or '').split(':')[-1]
    status['replay_idle'] = event in STARTUP_WAITING_FOR_WAL
    status['paused'] = row['pause_state'] == 'paused'
    return status


def read_primary_conninfo(conn):
    """The raw primary_conninfo setting. It may hold a password: use it to connect,
    never return or log it (describe_upstream() gives the redacted view)."""
    return query_one(conn, "SELECT current_setting('primary_conninfo') AS c")['c'] or ''


def upstream_libpq_params(primary_conninfo, passfile=None, sslrootcert=None, connect_timeout=None):
    """libpq parameters to reach the upstream recorded in ``primary_conninfo``, with the
    given overrides. Returns None when no upstream is recorded; raises ConninfoError."""
    if not primary_conninfo:
        return None
    params = parse_conninfo(primary_conninfo)
    # Not the standby's own name: a probe must never look like the standby to the
    # upstream (synchronous_standby_names matches application_name).
    for key in ('application_name', 'fallback_application_name', 'replication', 'dbname'):
        params.pop(key, None)
    if passfile:
        params['passfile'] = passfile
    if sslrootcert:
        params['sslrootcert'] = sslrootcert
    if connect_timeout is not None:
        params['connect_timeout'] = connect_timeout
    return params


def probe_upstream(conn, passfile=None, sslrootcert=None, connect_timeout=3, tcp_timeout=None):
    """Connect to the upstream recorded on the standby behind ``conn`` and report what it
    is: see connection.probe_replication_server(). Adds ``upstream`` (host, port, user of
    the target, never a password). ``recorded`` is False when no upstream is configured.
    ``tcp_timeout``: see probe_replication_server()."""
    try:
        params = upstream_libpq_params(read_primary_conninfo(conn), passfile, sslrootcert, connect_timeout)
    except ConninfoError as error:
        return {'recorded': True, 'answered': False, 'reachable': False, 'in_recovery': None,
                'error': 'primary_conninfo cannot be parsed: %s' % error}
    if params is None:
        return {'recorded': False, 'answered': False, 'reachable': False, 'in_recovery': None,
                'error': 'no upstream is recorded (primary_conninfo is empty)'}
    probe = probe_replication_server(params, tcp_timeout=tcp_timeout)
    probe['recorded'] = True
    probe['upstream'] = describe_target(params)
    return probe


def current_timeline(conn):
    """The timeline a primary writes on (None on a standby)."""
    if is_in_recovery(conn):
        return None
    return int(query_one(conn, _CURRENT_TIMELINE_SQL)['tli'])


def parse_timeline_history(text):
    """Entries of a timeline history file: dicts with ``timeline`` (the parent),
    ``switchpoint`` (LSN where the next timeline begins) and ``reason``."""
    entries = []
    for line in (text or '').splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        fields = line.split('\t') if '\t' in line else line.split(None, 2)
        if len(fields) < 2 or not fields[0].isdigit():
            continue
        entries.append({'timeline': int(fields[0]), 'switchpoint': fields[1].strip(),
                        'reason': fields[2].strip() if len(fields) > 2 else ''})
    return entries


def read_timeline_history(conn, timeline):
    """The parsed ``pg_wal/<timeline>.history`` of this server, None when it cannot be read
    (timeline 1 has none; reading needs superuser or pg_read_server_files)."""
    if not timeline or int(timeline) <= 1:
        return None
    name = 'pg_wal/%08X.history' % int(timeline)
    try:
        row = query_one(conn, 'SELECT pg_read_file(%s) AS content', (name,))
    except DatabaseError:  # no permission, or no such file
        return None
    return parse_timeline_history(row['content']) if row else None

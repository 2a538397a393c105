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
    query, query_one, server_version_num, format_version)
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

_SLOTS_SQL = """
SELECT slot_name, slot_type, plugin, database, temporary, active, active_pid,
       restart_lsn::text, confirmed_flush_lsn::text, wal_status, safe_wal_size
FROM pg_replication_slots ORDER BY slot_name
"""


def read_settings(conn, names=_SETTINGS):
    rows = query(conn, 'SELECT name, setting FROM pg_settings WHERE name = ANY(%s)', (list(names),))
    return dict((row['name'], row['setting']) for row in rows)


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

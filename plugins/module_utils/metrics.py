# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the health agent exports for Prometheus, as plain samples: the node's state
(gather_node_state()) and the keeper's (the state file it writes every loop). The agent
turns the samples into the text format with the prometheus_client library; this module
only decides names, labels and values (base units: bytes, seconds; 0/1 for yes/no)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections import namedtuple

from ansible_collections.pgha.multidc.plugins.module_utils.lsn import InvalidLSN, parse_lsn

# Every sample is a gauge (the values are read, not counted); ``labels`` is a dict.
Sample = namedtuple('Sample', 'name help labels value')

PREFIX = 'pgha_'


def _position(text):
    """A WAL position (``0/3000060``) as a byte offset, None when unknown."""
    if not text:
        return None
    try:
        return parse_lsn(text)
    except InvalidLSN:
        return None


def _flag(value):
    return None if value is None else (1 if value else 0)


def _sample(samples, name, help_text, value, **labels):
    """Add a sample unless its value is unknown (Prometheus: absent, not a made-up 0)."""
    if value is not None:
        samples.append(Sample(PREFIX + name, help_text, labels, float(value)))


def node_samples(state, answering, fenced, accepts_writes):
    """The samples of one node. ``state`` is gather_node_state()'s dict (None when
    PostgreSQL did not answer)."""
    samples = []
    _sample(samples, 'postgresql_up', 'PostgreSQL answers the agent', 1 if answering else 0)
    _sample(samples, 'fenced', 'The fence file exists: the node serves neither writes nor reads', _flag(fenced))
    _sample(samples, 'accepts_writes', 'A primary taking writes (not read-only, not fenced)', _flag(accepts_writes))
    if not state:
        return samples
    primary = not state.get('in_recovery')
    _sample(samples, 'node_info', 'The node as PostgreSQL sees it', 1, role=state.get('role') or '',
            server_version=state.get('server_version') or '', system_identifier=str(state.get('system_identifier') or ''))
    _sample(samples, 'primary', 'Not in recovery (sum over the nodes above 1: two primaries)', _flag(primary))
    _sample(samples, 'timeline', 'The timeline the node writes or replays', state.get('timeline'))
    _sample(samples, 'wal_current_lsn_bytes', "The primary's current WAL position", _position(state.get('current_lsn')))
    _sample(samples, 'wal_received_lsn_bytes', 'The WAL position received (standby)', _position(state.get('receive_lsn')))
    _sample(samples, 'wal_replayed_lsn_bytes', 'The WAL position replayed (standby)', _position(state.get('replay_lsn')))
    if not primary:
        _sample(samples, 'replay_lag_bytes', 'WAL received but not replayed yet', state.get('replay_lag_bytes'))
        _sample(samples, 'replay_lag_seconds', 'Age of the last transaction replayed when WAL waits to be replayed',
                state.get('replay_lag_seconds'))
        _sample(samples, 'replay_paused', 'Replay paused (pg_wal_replay_pause)', _flag(state.get('replay_paused')))
        receiver = state.get('wal_receiver') or {}
        _sample(samples, 'wal_receiver_streaming', 'The WAL receiver streams from its upstream',
                _flag(state.get('streaming')))
        _sample(samples, 'wal_receiver_info', 'The WAL receiver and its upstream', 1,
                status=receiver.get('status') or 'none', sender_host=receiver.get('sender_host') or '')
    archiver = state.get('archiver')
    if archiver and archiver.get('archive_mode') != 'off':
        _sample(samples, 'archive_archived_count', 'WAL segments archived since the statistics were reset',
                archiver.get('archived_count'))
        _sample(samples, 'archive_failed_count', 'Failed attempts to archive a WAL segment', archiver.get('failed_count'))
        _sample(samples, 'archive_last_archived_age_seconds', 'Seconds since the last segment was archived',
                archiver.get('last_archived_age'))
        _sample(samples, 'archive_failing', 'The last archive attempt failed: WAL piles up in pg_wal',
                _flag(archiver.get('failing')))
    reference = _position(state.get('current_lsn') or state.get('replay_lsn'))
    for replica in state.get('replicas') or []:
        labels = {'application_name': replica.get('application_name') or '', 'sync_state': replica.get('sync_state') or ''}
        _sample(samples, 'replica_replay_lag_bytes', 'How far a follower has replayed behind this node',
                replica.get('replay_lag_bytes'), **labels)
        _sample(samples, 'replica_replay_lag_seconds', "A follower's replay lag in time (pg_stat_replication)",
                replica.get('replay_lag_s'), **labels)
    for slot in state.get('slots') or []:
        labels = {'slot_name': slot.get('slot_name') or '', 'slot_type': slot.get('slot_type') or ''}
        _sample(samples, 'slot_active', 'A client uses the replication slot', _flag(slot.get('active')), **labels)
        restart = _position(slot.get('restart_lsn'))
        retained = None if reference is None or restart is None else max(reference - restart, 0)
        _sample(samples, 'slot_retained_wal_bytes', 'WAL the slot keeps from being removed', retained, **labels)
    return samples


def keeper_samples(keeper, now):
    """The samples of the keeper's state file (``keeper``: its dict, None when there is
    none: the keeper is off or has not written it yet); ``now`` is the wall clock."""
    samples = []
    if not keeper:
        return samples
    _sample(samples, 'keeper_state_age_seconds', 'Since the keeper last wrote its state (it does every loop)',
            max(now - float(keeper.get('at') or 0), 0.0))
    _sample(samples, 'keeper_etcd_reachable', 'etcd answered the last loop', _flag(keeper.get('etcd_reachable')))
    _sample(samples, 'keeper_leader', 'This node holds the leader key', _flag(keeper.get('holds_leader')))
    _sample(samples, 'keeper_leader_info', 'Who holds the leader key, as this keeper saw it', 1,
            leader=keeper.get('leader') or '')
    renewed = keeper.get('lease_renewed_at')
    if renewed is not None and keeper.get('ttl') is not None:
        _sample(samples, 'keeper_lease_remaining_seconds', "Until this keeper's lease ends unless renewed",
                max(float(keeper['ttl']) - (now - float(renewed)), 0.0))
    _sample(samples, 'keeper_maintenance', 'Automatic decisions paused by the maintenance key',
            _flag(keeper.get('maintenance')))
    _sample(samples, 'keeper_failover_blocked', 'An automatic failover was refused; it waits for a person',
            _flag(keeper.get('blocked')))
    last = keeper.get('last_change') or {}
    if last.get('at') is not None:
        _sample(samples, 'keeper_last_change_timestamp_seconds', "The keeper's last decision that changed something",
                last['at'], action=last.get('action') or '')
    return samples

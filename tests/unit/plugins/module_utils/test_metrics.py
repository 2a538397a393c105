# -*- coding: utf-8 -*-
"""plugins/module_utils/metrics.py: the samples of a node and of its keeper (the agent's
/metrics against real servers is in tests/integration/test_health_agent.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pgha.multidc.plugins.module_utils.metrics import keeper_samples, node_samples

PRIMARY = {
    'role': 'primary', 'in_recovery': False, 'server_version': '15.14', 'system_identifier': '7412',
    'timeline': 3, 'current_lsn': '0/5000000', 'receive_lsn': None, 'replay_lsn': None,
    'replicas': [{'application_name': 'dc1_pg2', 'sync_state': 'sync', 'replay_lag_bytes': 4096,
                  'replay_lag_s': 0.002}],
    'slots': [{'slot_name': 'dc1_pg2', 'slot_type': 'physical', 'active': True, 'restart_lsn': '0/4FFF000'},
              {'slot_name': 'gone', 'slot_type': 'physical', 'active': False, 'restart_lsn': None}],
}
STANDBY = {
    'role': 'standby', 'in_recovery': True, 'server_version': '15.14', 'system_identifier': '7412',
    'timeline': 3, 'current_lsn': None, 'receive_lsn': '0/5000000', 'replay_lsn': '0/4000000',
    'replay_lag_bytes': 16777216, 'replay_lag_seconds': 1.5, 'replay_paused': True, 'streaming': True,
    'wal_receiver': {'status': 'streaming', 'sender_host': '172.30.1.11'}, 'replicas': [], 'slots': [],
}


def values(samples):
    return dict(((s.name, tuple(sorted(s.labels.items()))), s.value) for s in samples)


def test_a_primary():
    got = values(node_samples(PRIMARY, True, False, True))
    assert got[('pgha_postgresql_up', ())] == 1
    assert got[('pgha_primary', ())] == 1 and got[('pgha_accepts_writes', ())] == 1
    assert got[('pgha_fenced', ())] == 0
    assert got[('pgha_timeline', ())] == 3
    assert got[('pgha_wal_current_lsn_bytes', ())] == 0x5000000
    assert got[('pgha_node_info', (('role', 'primary'), ('server_version', '15.14'), ('system_identifier', '7412')))] == 1
    replica = (('application_name', 'dc1_pg2'), ('sync_state', 'sync'))
    assert got[('pgha_replica_replay_lag_bytes', replica)] == 4096
    assert got[('pgha_replica_replay_lag_seconds', replica)] == 0.002
    slot = (('slot_name', 'dc1_pg2'), ('slot_type', 'physical'))
    assert got[('pgha_slot_active', slot)] == 1
    assert got[('pgha_slot_retained_wal_bytes', slot)] == 0x1000
    # A slot that never reserved WAL retains nothing measurable: no made-up value.
    assert ('pgha_slot_retained_wal_bytes', (('slot_name', 'gone'), ('slot_type', 'physical'))) not in got
    # Standby-only metrics are absent on a primary.
    assert not [name for name, _labels in got if name.startswith('pgha_replay_') or name.startswith('pgha_wal_receiver')]


def test_the_archive_of_a_primary():
    archiver = {'archive_mode': 'on', 'archived_count': 12, 'failed_count': 3, 'last_archived_age': 42.5,
                'failing': True}
    got = values(node_samples(dict(PRIMARY, archiver=archiver), True, False, True))
    assert got[('pgha_archive_archived_count', ())] == 12
    assert got[('pgha_archive_failed_count', ())] == 3
    assert got[('pgha_archive_last_archived_age_seconds', ())] == 42.5
    assert got[('pgha_archive_failing', ())] == 1
    # Nothing archived yet: no age is made up. archive_mode off: no archive metrics at all.
    got = values(node_samples(dict(PRIMARY, archiver=dict(archiver, last_archived_age=None, failing=False)),
                              True, False, True))
    assert ('pgha_archive_last_archived_age_seconds', ()) not in got and got[('pgha_archive_failing', ())] == 0
    got = values(node_samples(dict(PRIMARY, archiver=dict(archiver, archive_mode='off')), True, False, True))
    assert not [name for name, _labels in got if name.startswith('pgha_archive_')]


def test_a_standby_with_paused_replay():
    got = values(node_samples(STANDBY, True, False, False))
    assert got[('pgha_primary', ())] == 0 and got[('pgha_accepts_writes', ())] == 0
    assert got[('pgha_wal_received_lsn_bytes', ())] == 0x5000000
    assert got[('pgha_wal_replayed_lsn_bytes', ())] == 0x4000000
    assert got[('pgha_replay_lag_bytes', ())] == 16777216
    assert got[('pgha_replay_lag_seconds', ())] == 1.5
    assert got[('pgha_replay_paused', ())] == 1
    assert got[('pgha_wal_receiver_streaming', ())] == 1
    assert got[('pgha_wal_receiver_info', (('sender_host', '172.30.1.11'), ('status', 'streaming')))] == 1
    assert ('pgha_wal_current_lsn_bytes', ()) not in got


def test_a_node_that_does_not_answer_says_only_that():
    got = values(node_samples(None, False, True, False))
    assert got == {('pgha_postgresql_up', ()): 0, ('pgha_fenced', ()): 1, ('pgha_accepts_writes', ()): 0}


def test_every_name_follows_the_conventions():
    names = set(s.name for s in node_samples(PRIMARY, True, False, True) + node_samples(STANDBY, True, False, False)
                + keeper_samples(KEEPER, 1000.0))
    for name in names:
        assert name.startswith('pgha_') and name == name.lower() and not name.endswith('_total'), name
        assert not any(unit in name for unit in ('_ms', '_kb', '_mb', 'millis')), name


KEEPER = {'at': 990.0, 'node': 'dc1-pg1', 'ttl': 10, 'etcd_reachable': True, 'lease_renewed_at': 994.0,
          'leader': 'dc1-pg1', 'holds_leader': True, 'maintenance': False, 'blocked': False,
          'decision': {'action': 'renew_leader', 'reason': 'primary'},
          'last_change': {'action': 'promote', 'reason': 'the primary dc1-pg2 is gone', 'at': 900.0}}


def test_the_keeper():
    got = values(keeper_samples(KEEPER, 1000.0))
    assert got[('pgha_keeper_state_age_seconds', ())] == 10.0
    assert got[('pgha_keeper_lease_remaining_seconds', ())] == 4.0
    assert got[('pgha_keeper_leader', ())] == 1
    assert got[('pgha_keeper_leader_info', (('leader', 'dc1-pg1'),))] == 1
    assert got[('pgha_keeper_etcd_reachable', ())] == 1
    assert got[('pgha_keeper_maintenance', ())] == 0 and got[('pgha_keeper_failover_blocked', ())] == 0
    assert got[('pgha_keeper_last_change_timestamp_seconds', (('action', 'promote'),))] == 900.0


def test_a_keeper_without_etcd_and_with_an_expired_lease():
    state = dict(KEEPER, etcd_reachable=False, leader=None, holds_leader=None, maintenance=None, blocked=None,
                 lease_renewed_at=950.0, last_change=None)
    got = values(keeper_samples(state, 1000.0))
    assert got[('pgha_keeper_etcd_reachable', ())] == 0
    assert got[('pgha_keeper_lease_remaining_seconds', ())] == 0.0
    # Unknown without etcd: absent rather than a guess.
    assert ('pgha_keeper_leader', ()) not in got and ('pgha_keeper_maintenance', ()) not in got
    assert not [name for name, _labels in got if name == 'pgha_keeper_last_change_timestamp_seconds']


def test_no_keeper_no_keeper_metrics():
    assert keeper_samples(None, 1000.0) == []

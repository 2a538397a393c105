# -*- coding: utf-8 -*-
"""The keeper's decisions (plugins/module_utils/keeper.py) on a lab-shaped cluster."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.pgha.multidc.plugins.module_utils import keeper
from ansible_collections.pgha.multidc.plugins.module_utils.dcs import ClusterView


def cluster(me, **overrides):
    nodes = {
        'dc1-pg1': {'datacenter': 'dc1', 'address': '172.30.1.11', 'port': 5432, 'application_name': 'dc1_pg1',
                    'upstream': ''},
        'dc1-pg2': {'datacenter': 'dc1', 'address': '172.30.1.12', 'port': 5432, 'application_name': 'dc1_pg2',
                    'upstream': 'dc1-pg1'},
        'dc1-pg3': {'datacenter': 'dc1', 'address': '172.30.1.13', 'port': 5432, 'application_name': 'dc1_pg3',
                    'upstream': 'dc1-pg1'},
        'dc2-pg1': {'datacenter': 'dc2', 'address': '172.30.2.11', 'port': 5432, 'application_name': 'dc2_pg1',
                    'upstream': 'dc1-pg1'},
        'dc2-pg2': {'datacenter': 'dc2', 'address': '172.30.2.12', 'port': 5432, 'application_name': 'dc2_pg2',
                    'upstream': 'dc2-pg1'},
    }
    cfg = dict(keeper.DEFAULTS, me=me, cluster='lab', nodes=nodes, initial_primary='dc1-pg1',
               dc_leaders={'dc2': 'dc2-pg1'}, sync={'mode': 'FIRST', 'count': 1}, sync_hosts=[])
    cfg.update(overrides)
    return cfg


def view(**keys):
    """ClusterView from name=value (revision 10), or name=(value, revision)."""
    entries = {}
    for name, value in keys.items():
        name = name.replace('__', '/')
        revision = 10
        if isinstance(value, tuple):
            value, revision = value
        entries[name] = (value, {'mod_revision': revision, 'lease': 0})
    return ClusterView(entries)


def member(host, lsn='0/5000000', role='standby', answering=True, fenced=False):
    return {'host': host, 'answering': answering, 'fenced': fenced, 'role': role, 'receive_lsn': lsn,
            'replay_lsn': lsn, 'system_identifier': '7000'}


PRIMARY = {'answering': True, 'in_recovery': False}
OPTIME = {'host': 'dc1-pg1', 'datacenter': 'dc1', 'lsn': '0/5000000', 'system_identifier': '7000'}


def standby(upstream='dc1-pg1'):
    return {'answering': True, 'in_recovery': True, 'upstream_host': upstream}


def leader_gone(**members):
    """The leader key gone after a crash of dc1-pg1, every member published at revision 20."""
    keys = {'optime': OPTIME}
    for host, status in members.items():
        keys['members__' + host.replace('_', '-')] = (status, 20)
    return view(**keys)


# -- timings ---------------------------------------------------------------------------------

def test_default_timings_are_safe():
    assert keeper.timing_problems(10, 1, 5) == []


@pytest.mark.parametrize('ttl, loop, retry, words', [
    (6, 1, 5, 'ttl must exceed'),
    (10, 0, 5, 'loop_wait must be at least 1 s'),
    (10, 3, 2, 'retry_timeout must be at least loop_wait'),
])
def test_unsafe_timings_are_named(ttl, loop, retry, words):
    assert any(words in p for p in keeper.timing_problems(ttl, loop, retry))


# -- the primary -------------------------------------------------------------------------------

def test_primary_renews_its_key():
    decision = keeper.decide(cluster('dc1-pg1'), PRIMARY, view(leader={'host': 'dc1-pg1'}), {}, 100)
    assert decision.action == keeper.RENEW


def test_primary_without_key_takes_it():
    assert keeper.decide(cluster('dc1-pg1'), PRIMARY, view(), {}, 100).action == keeper.ACQUIRE


def test_replaced_primary_fences_itself_without_releasing():
    new_primary = dict(member('dc1-pg2', role='primary'), in_recovery=False)
    decision = keeper.decide(cluster('dc1-pg1'), PRIMARY,
                             view(leader={'host': 'dc1-pg2'}, **{'members__dc1-pg2': new_primary}), {}, 100)
    assert decision.action == keeper.FENCE
    assert decision.details['release'] is False
    assert 'dc1-pg2 holds the leader key' in decision.reason


@pytest.mark.parametrize('holder_status', [
    dict(member('dc1-pg1', answering=False), in_recovery=None),
    dict(member('dc1-pg1', role='primary', fenced=True), in_recovery=False),
    dict(member('dc1-pg1'), in_recovery=True),
])
def test_primary_waits_while_a_holder_that_does_not_serve_keeps_the_key(holder_status):
    # A manual failover promoted dc1-pg2; the old primary's keeper has not given the key back yet.
    decision = keeper.decide(cluster('dc1-pg2'), PRIMARY,
                             view(leader={'host': 'dc1-pg1'}, **{'members__dc1-pg1': holder_status}), {}, 100)
    assert decision.action == keeper.WAIT
    assert 'does not serve as a primary' in decision.reason


def test_replaced_primary_is_not_fenced_during_maintenance():
    decision = keeper.decide(cluster('dc1-pg1'), PRIMARY,
                             view(leader={'host': 'dc1-pg2'}, maintenance={'by': 'switchover.yml'}), {}, 100)
    assert decision.action == keeper.WAIT
    assert 'switchover.yml' in decision.reason


def test_dead_primary_fences_and_releases():
    decision = keeper.decide(cluster('dc1-pg1'), {'answering': False, 'postmaster_running': False},
                             view(leader={'host': 'dc1-pg1'}), {}, 100)
    assert decision.action == keeper.FENCE and decision.details['release'] is True


def test_dead_primary_is_left_alone_in_maintenance():
    decision = keeper.decide(cluster('dc1-pg1'), {'answering': False}, view(leader={'host': 'dc1-pg1'}, maintenance={}),
                             {}, 100)
    assert decision.action == keeper.NOTHING


def test_dead_primary_is_left_alone_without_autorecovery():
    decision = keeper.decide(cluster('dc1-pg1', autorecovery=False), {'answering': False},
                             view(leader={'host': 'dc1-pg1'}), {}, 100)
    assert decision.action == keeper.NOTHING
    assert 'pgha_autorecovery is false' in decision.reason


def test_unanswering_primary_gets_its_start_timeout():
    cfg = cluster('dc1-pg1')
    local = {'answering': False, 'postmaster_running': True, 'down_since': 100}
    assert keeper.decide(cfg, local, view(leader={'host': 'dc1-pg1'}), {}, 110).action == keeper.WAIT
    assert keeper.decide(cfg, local, view(leader={'host': 'dc1-pg1'}), {}, 131).action == keeper.FENCE


def test_fenced_node_gives_the_key_back():
    local = {'fenced': True, 'answering': True, 'in_recovery': False}
    assert keeper.decide(cluster('dc1-pg1'), local, view(leader={'host': 'dc1-pg1'}), {}, 1).action == keeper.RELEASE
    assert keeper.decide(cluster('dc1-pg1'), local, view(leader={'host': 'dc1-pg2'}), {}, 1).action == keeper.NOTHING


# -- without etcd ------------------------------------------------------------------------------

def test_primary_waits_within_retry_timeout():
    memory = {'last_renewed': 100, 'held_leader': True}
    assert keeper.decide(cluster('dc1-pg1'), PRIMARY, None, memory, 103).action == keeper.WAIT


def test_primary_reaching_every_peer_goes_on():
    memory = {'last_renewed': 100, 'held_leader': True,
              'peer_answers': {'dc1-pg2': True, 'dc1-pg3': True, 'dc2-pg1': True, 'dc2-pg2': True}}
    assert keeper.decide(cluster('dc1-pg1'), PRIMARY, None, memory, 106).action == keeper.FAILSAFE


def test_isolated_primary_fences_before_its_lease_ends():
    memory = {'last_renewed': 100, 'held_leader': True,
              'peer_answers': {'dc1-pg2': False, 'dc1-pg3': True, 'dc2-pg1': True, 'dc2-pg2': True}}
    decision = keeper.decide(cluster('dc1-pg1'), PRIMARY, None, memory, 106)
    assert decision.action == keeper.FENCE
    assert 'dc1-pg2' in decision.reason
    assert 106 - 100 < cluster('dc1-pg1')['ttl']


def test_no_peer_asked_is_no_failsafe():
    memory = {'last_renewed': 100, 'held_leader': True, 'peer_answers': {}}
    assert keeper.decide(cluster('dc1-pg1'), PRIMARY, None, memory, 106).action == keeper.FENCE


def test_standby_without_etcd_waits():
    assert keeper.decide(cluster('dc1-pg2'), standby(), None, {}, 106).action == keeper.NOTHING


# -- the election ------------------------------------------------------------------------------

def election(me, members, memory=None, now=100, **cfg):
    memory = {'my_revision': 15} if memory is None else memory
    return keeper.decide(cluster(me, **cfg), standby(), leader_gone(**members), memory, now)


def test_most_advanced_standby_of_the_datacenter_is_promoted():
    members = {'dc1-pg2': member('dc1-pg2', '0/5000000'), 'dc1-pg3': member('dc1-pg3', '0/4FFFF00'),
               'dc2-pg1': member('dc2-pg1', '0/5000000')}
    decision = election('dc1-pg2', members)
    assert decision.action == keeper.ELECT
    assert decision.details['failed_primary'] == 'dc1-pg1'
    assert decision.details['reference_lsn'] == '0/5000000'
    other = election('dc1-pg3', members)
    assert other.action == keeper.WAIT and other.details['candidate'] == 'dc1-pg2'


def test_other_datacenter_is_never_promoted():
    decision = election('dc2-pg1', {'dc2-pg1': member('dc2-pg1', '0/6000000')})
    assert decision.action == keeper.NOTHING
    assert 'dr_promote.yml' in decision.reason


def test_election_waits_for_the_positions_of_every_live_keeper():
    members = {'dc1-pg2': member('dc1-pg2'), 'dc1-pg3': (member('dc1-pg3'), 12)}
    keys = {'optime': OPTIME, 'members/dc1-pg2': (members['dc1-pg2'], 20), 'members/dc1-pg3': members['dc1-pg3']}
    entries = dict((k, v if isinstance(v, tuple) else (v, 10)) for k, v in keys.items())
    cluster_view = ClusterView(dict((k, (v[0], {'mod_revision': v[1], 'lease': 0})) for k, v in entries.items()))
    memory = {'my_revision': 15}
    decision = keeper.decide(cluster('dc1-pg2'), standby(), cluster_view, memory, 100)
    assert decision.action == keeper.WAIT and 'dc1-pg3' in decision.reason
    # settle passed: the silent keeper is not waited for any longer
    assert keeper.decide(cluster('dc1-pg2'), standby(), cluster_view, memory, 104).action == keeper.ELECT


def test_nofailover_standby_blocks_the_failover():
    members = {'dc1-pg2': member('dc1-pg2'), 'dc1-pg3': member('dc1-pg3')}
    cfg = cluster('dc1-pg2')
    for host in ('dc1-pg2', 'dc1-pg3'):
        cfg['nodes'][host]['nofailover'] = True
    decision = keeper.decide(cfg, standby(), leader_gone(**members), {'my_revision': 15}, 100)
    assert decision.action == keeper.BLOCK
    assert 'nofailover is set' in decision.reason


def test_standby_beyond_the_lag_bound_is_not_promoted():
    members = {'dc1-pg2': member('dc1-pg2', '0/3000000')}
    decision = election('dc1-pg2', members, max_lag_bytes=1024)
    assert decision.action == keeper.BLOCK
    assert 'more than the bound' in decision.reason


def test_blocked_failover_is_not_retried():
    keys = {'optime': OPTIME, 'blocked': {'reason': 'no standby qualifies'}, 'members__dc1-pg2': member('dc1-pg2')}
    decision = keeper.decide(cluster('dc1-pg2'), standby(), view(**keys), {'my_revision': 15}, 100)
    assert decision.action == keeper.NOTHING and 'blocked' in decision.reason


def test_maintenance_pauses_the_election():
    keys = {'optime': OPTIME, 'maintenance': {'by': 'alice', 'reason': 'kernel update'},
            'members__dc1-pg2': member('dc1-pg2')}
    decision = keeper.decide(cluster('dc1-pg2'), standby(), view(**keys), {'my_revision': 15}, 100)
    assert decision.action == keeper.NOTHING
    assert 'alice: kernel update' in decision.reason


def test_unreachable_and_fenced_standbys_are_never_candidates():
    members = {'dc1-pg2': member('dc1-pg2', '0/6000000', fenced=True), 'dc1-pg3': member('dc1-pg3', '0/5000000')}
    assert election('dc1-pg3', members).action == keeper.ELECT


def test_demoted_holder_releases():
    decision = keeper.decide(cluster('dc1-pg1'), standby(), view(leader={'host': 'dc1-pg1'}), {}, 1)
    assert decision.action == keeper.RELEASE


# -- following ---------------------------------------------------------------------------------

def test_standby_repoints_to_the_new_primary():
    keys = {'leader': {'host': 'dc1-pg2'}, 'members__dc1-pg2': member('dc1-pg2', role='primary')}
    decision = keeper.decide(cluster('dc1-pg3'), standby('172.30.1.11'), view(**keys), {}, 1)
    assert decision.action == keeper.FOLLOW and decision.details['upstream'] == 'dc1-pg2'


def test_standby_of_the_right_upstream_does_nothing():
    keys = {'leader': {'host': 'dc1-pg1'}}
    assert keeper.decide(cluster('dc1-pg3'), standby('172.30.1.11'), view(**keys), {}, 1).action == keeper.NOTHING


def test_cascading_standby_waits_for_a_live_upstream():
    keys = {'leader': {'host': 'dc1-pg1'}, 'dc__dc2__leader': {'host': 'dc2-pg1'}}
    decision = keeper.decide(cluster('dc2-pg2'), standby('172.30.1.11'), view(**keys), {}, 1)
    assert decision.action == keeper.WAIT and 'dc2-pg1' in decision.reason


def test_repoint_is_paused_by_maintenance():
    keys = {'leader': {'host': 'dc1-pg2'}, 'maintenance': {'by': 'rejoin.yml'}}
    assert keeper.decide(cluster('dc1-pg3'), standby('172.30.1.11'), view(**keys), {}, 1).action == keeper.NOTHING


# -- the standby datacenter ---------------------------------------------------------------------

def test_node_streaming_from_the_primary_leads_its_datacenter():
    keys = {'leader': {'host': 'dc1-pg1'}}
    decision = keeper.decide(cluster('dc2-pg1'), standby('172.30.1.11'), view(**keys), {}, 1)
    assert decision.action == keeper.ACQUIRE_DC


def test_best_standby_takes_a_vanished_datacenter_leader_after_settling():
    keys = {'leader': {'host': 'dc1-pg1'}, 'members__dc2-pg2': member('dc2-pg2')}
    memory = {}
    first = keeper.decide(cluster('dc2-pg2'), standby('172.30.2.11'), view(**keys), memory, 100)
    assert first.action == keeper.WAIT
    then = keeper.decide(cluster('dc2-pg2'), standby('172.30.2.11'), view(**keys), memory, 104)
    assert then.action == keeper.ACQUIRE_DC


def test_new_datacenter_leader_follows_the_primary_and_the_old_follows_it():
    leaders = {'dc2': 'dc2-pg2'}
    upstream = keeper.desired_upstreams(cluster('dc2-pg2'), 'dc1-pg1', leaders)
    assert upstream['dc2-pg2'] == 'dc1-pg1'
    assert upstream['dc2-pg1'] == 'dc2-pg2'
    assert upstream['dc1-pg2'] == 'dc1-pg1'


def test_datacenter_leader_follows_the_new_primary():
    keys = {'leader': {'host': 'dc1-pg2'}, 'dc__dc2__leader': {'host': 'dc2-pg1'},
            'members__dc1-pg2': member('dc1-pg2', role='primary')}
    decision = keeper.decide(cluster('dc2-pg1'), standby('172.30.1.11'), view(**keys), {}, 1)
    assert decision.action == keeper.FOLLOW and decision.details['upstream'] == 'dc1-pg2'


def test_sync_intended_defaults_to_the_primary_datacenter():
    assert keeper.sync_intended(cluster('dc1-pg2'), 'dc1-pg2') == ['dc1_pg1', 'dc1_pg3']


# -- the state report (the health agent's metrics) -------------------------------------------
def test_state_report_of_a_primary_holding_its_key():
    memory = {'last_renewed': 500.0}
    decision = keeper.Decision(keeper.RENEW, 'primary')
    report = keeper.state_report(cluster('dc1-pg1'), view(leader={'host': 'dc1-pg1'}), memory, decision, 10000.0, 502.5)
    assert report['leader'] == 'dc1-pg1' and report['holds_leader'] is True
    assert report['maintenance'] is False and report['blocked'] is False and report['etcd_reachable'] is True
    # The lease is timed on the monotonic clock: renewed 2.5 s ago in wall-clock time too.
    assert report['lease_renewed_at'] == 9997.5 and report['ttl'] == 10
    assert report['decision'] == {'action': 'renew_leader', 'reason': 'primary'}
    assert report['last_change'] is None


def test_state_report_remembers_the_last_change_and_says_unknown_without_etcd():
    memory = {}
    promote = keeper.Decision(keeper.ELECT, 'the primary dc1-pg1 is gone')
    keeper.state_report(cluster('dc1-pg2'), view(maintenance={'by': 'x'}, blocked={'reason': 'y'}), memory, promote,
                        100.0, 1.0)
    report = keeper.state_report(cluster('dc1-pg2'), None, memory, keeper.Decision(keeper.WAIT, 'etcd down'), 105.0, 6.0)
    assert report['last_change'] == {'action': 'promote', 'reason': 'the primary dc1-pg1 is gone', 'at': 100.0}
    assert report['etcd_reachable'] is False
    assert report['leader'] is None and report['holds_leader'] is None and report['maintenance'] is None
    assert report['lease_renewed_at'] is None


def test_state_report_sees_maintenance_and_a_blocked_failover():
    report = keeper.state_report(cluster('dc1-pg2'), view(maintenance={'by': 'x'}, blocked={'reason': 'y'}), {},
                                 keeper.Decision(keeper.NOTHING, 'paused'), 100.0, 1.0)
    assert report['maintenance'] is True and report['blocked'] is True and report['holds_leader'] is False


def test_state_report_does_not_count_a_change_that_was_not_carried_out():
    memory = {'last_change': {'action': 'promote', 'reason': 'earlier', 'at': 50.0}}
    fence = keeper.Decision(keeper.FENCE, 'replaced')
    report = keeper.state_report(cluster('dc1-pg1'), None, memory, fence, 100.0, 1.0, acted=False)
    assert report['last_change'] == {'action': 'promote', 'reason': 'earlier', 'at': 50.0}
    assert report['decision'] == {'action': 'fence', 'reason': 'replaced'}

# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/operations.py (what failover.yml decides)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.pgha.multidc.plugins.module_utils import operations as ops

SYSID = '7301234567890123456'


def primary(name='dc1-pg1', address='10.0.1.11', **extra):
    node = {'name': name, 'datacenter': 'dc1', 'address': address, 'ssh': True, 'initialized': True,
            'running': True, 'accepting': True, 'standby_signal': False, 'role': 'primary', 'timeline': 1,
            'system_identifier': SYSID, 'fenced': False, 'read_only': False,
            'witness': {'tcp': 'open', 'answered': True, 'reachable': True, 'in_recovery': False,
                        'read_only': False, 'timeline': 1}}
    node.update(extra)
    return node


def standby(name, address, upstream='10.0.1.11', streaming=True, dc='dc1', lsn='0/5000000', **extra):
    node = {'name': name, 'datacenter': dc, 'address': address, 'ssh': True, 'initialized': True,
            'running': True, 'accepting': True, 'standby_signal': True, 'role': 'standby', 'timeline': 1,
            'system_identifier': SYSID, 'upstream_host': upstream, 'streaming': streaming,
            'sender_host': upstream if streaming else None, 'receive_lsn': lsn, 'replay_lsn': lsn,
            'fenced': False, 'witness': {'tcp': 'open', 'answered': True, 'reachable': True, 'in_recovery': True}}
    node.update(extra)
    return node


def dead(node, ssh=True):
    node = dict(node, running=False, accepting=False, role='', ssh=ssh,
                witness={'tcp': 'refused' if ssh else 'timeout', 'answered': False, 'reachable': False,
                         'in_recovery': None, 'error': 'connection refused'})
    return node


def cluster():
    return [primary(), standby('dc1-pg2', '10.0.1.12'), standby('dc2-pg1', '10.0.2.11', dc='dc2'),
            standby('dc2-pg2', '10.0.2.12', upstream='10.0.2.11', dc='dc2')]


def test_healthy_primary_nothing_to_do():
    plan = ops.classify(cluster())
    assert plan['action'] == ops.ACTION_NONE
    assert plan['primary'] == 'dc1-pg1'
    assert 'nothing to do' in plan['reasons'][-1]


def test_candidate_requested_while_primary_answers_is_refused():
    plan = ops.classify(cluster(), requested='dc1-pg2')
    assert plan['action'] == ops.ACTION_REFUSE
    assert 'split brain guard' in plan['refusal'] and 'switchover' in plan['refusal']


def test_candidate_requested_is_the_primary_nothing_to_do():
    assert ops.classify(cluster(), requested='dc1-pg1', force=True)['action'] == ops.ACTION_NONE


def test_force_with_candidate_fails_over_a_live_primary():
    plan = ops.classify(cluster(), requested='dc1-pg2', force=True)
    assert plan['action'] == ops.ACTION_FAILOVER
    assert plan['old_primary'] == 'dc1-pg1' and plan['fence']
    assert plan['overridden']


def test_primary_killed_host_up_fails_over_and_fences():
    nodes = cluster()
    nodes[0] = dead(nodes[0])
    for node in nodes[1:3]:
        node.update(streaming=False, sender_host=None)
    plan = ops.classify(nodes)
    assert plan['action'] == ops.ACTION_FAILOVER
    assert plan['old_primary'] == 'dc1-pg1'
    assert plan['fence'] is True


def test_primary_host_unreachable_fails_over_without_fence():
    nodes = cluster()
    nodes[0] = dead(nodes[0], ssh=False)
    for node in nodes[1:3]:
        node.update(streaming=False, sender_host=None)
    plan = ops.classify(nodes)
    assert plan['action'] == ops.ACTION_FAILOVER
    assert plan['fence'] is False
    assert 'cannot be fenced' in plan['reasons'][-1]


def test_standby_still_streaming_from_old_primary_is_refused():
    nodes = cluster()
    nodes[0] = dead(nodes[0], ssh=False)
    nodes[2].update(streaming=False, sender_host=None)
    plan = ops.classify(nodes)
    assert plan['action'] == ops.ACTION_REFUSE
    assert 'dc1-pg2 still streams from dc1-pg1' in plan['refusal']
    assert ops.classify(nodes, force=True)['action'] == ops.ACTION_FAILOVER


def test_port_answers_but_role_unknown_is_refused():
    nodes = cluster()
    nodes[0] = dead(nodes[0], ssh=False)
    nodes[0]['witness'] = {'tcp': 'open', 'answered': True, 'reachable': False, 'error': 'password authentication failed'}
    for node in nodes[1:3]:
        node.update(streaming=False, sender_host=None)
    plan = ops.classify(nodes)
    assert plan['action'] == ops.ACTION_REFUSE
    assert 'cannot be checked' in plan['refusal']


def test_witness_alone_counts_as_primary():
    nodes = cluster()
    nodes[0] = dict(nodes[0], ssh=False, running=False, accepting=False, role='')
    assert ops.classify(nodes, requested='dc1-pg2')['action'] == ops.ACTION_REFUSE


def test_two_primaries_refused_even_with_force():
    nodes = cluster()
    nodes[1] = primary('dc1-pg2', '10.0.1.12', timeline=2)
    plan = ops.classify(nodes, force=True)
    assert plan['action'] == ops.ACTION_REFUSE
    assert 'split brain' in plan['refusal']


def test_fenced_primary_refused_unless_forced():
    nodes = cluster()
    nodes[0]['fenced'] = True
    assert ops.classify(nodes)['action'] == ops.ACTION_REFUSE
    assert ops.classify(nodes, force=True)['action'] == ops.ACTION_FAILOVER


def test_after_failover_rerun_is_nothing_to_do():
    nodes = [dead(primary(standby_signal=False)),
             primary('dc1-pg2', '10.0.1.12', timeline=2),
             standby('dc2-pg1', '10.0.2.11', upstream='10.0.1.12', dc='dc2', timeline=2),
             standby('dc2-pg2', '10.0.2.12', upstream='10.0.2.11', dc='dc2', timeline=2)]
    plan = ops.classify(nodes)
    assert plan['action'] == ops.ACTION_NONE and plan['primary'] == 'dc1-pg2'


def test_interrupted_failover_converges():
    nodes = [dead(primary()), primary('dc1-pg2', '10.0.1.12', timeline=2),
             standby('dc2-pg1', '10.0.2.11', upstream='10.0.1.11', dc='dc2', streaming=False)]
    plan = ops.classify(nodes)
    assert plan['action'] == ops.ACTION_CONVERGE
    assert plan['stale_followers'] == ['dc2-pg1']


def test_old_primary_unknown_is_refused():
    nodes = [dead(primary(), ssh=False), standby('dc1-pg2', '10.0.1.12', upstream=None, streaming=False)]
    plan = ops.classify(nodes)
    assert plan['action'] == ops.ACTION_REFUSE and 'failed_primary' in plan['refusal']
    assert ops.classify(nodes, failed_primary='dc1-pg1')['action'] == ops.ACTION_FAILOVER


def test_unknown_hosts_refused():
    assert ops.classify(cluster(), requested='nope')['action'] == ops.ACTION_REFUSE


def test_candidate_nodes_marks_unreachable():
    nodes = cluster()
    nodes[1] = dead(nodes[1])
    out = ops.candidate_nodes(nodes, exclude=['dc1-pg1'])
    assert [n['name'] for n in out] == ['dc1-pg2', 'dc2-pg1', 'dc2-pg2']
    assert out[0]['reachable'] is False and out[1]['reachable'] is True


@pytest.mark.parametrize('mode,intended,streaming,fallback,expected', [
    ('FIRST', ['a'], ['a', 'b'], ['b'], 'FIRST 1 ("a")'),
    ('FIRST', ['a'], ['b'], ['b'], 'FIRST 1 ("b")'),
    ('ANY', ['a', 'c'], ['a', 'c'], [], 'ANY 1 ("a", "c")'),
    ('FIRST', ['a'], [], ['b'], ''),
    ('off', ['a'], ['a'], [], ''),
])
def test_sync_standby_names(mode, intended, streaming, fallback, expected):
    value, _note = ops.sync_standby_names(mode, 1, intended, streaming, fallback)
    assert value == expected


def test_sync_count_capped():
    assert ops.sync_standby_names('ANY', 3, ['a', 'b'], ['a', 'b'], [])[0] == 'ANY 2 ("a", "b")'


def test_sync_names_listed():
    assert ops.sync_names_listed('FIRST 1 ("a", "b")') == ['a', 'b']
    assert ops.sync_names_listed('ANY 2 (a,b)') == ['a', 'b']
    assert ops.sync_names_listed('a') == ['a']
    assert ops.sync_names_listed('') == []


def test_blocked_commits_converge():
    nodes = cluster()
    nodes[0].update(sync_names='FIRST 1 ("gone")', streaming_replicas=['dc1_pg2', 'dc2_pg1'])
    plan = ops.classify(nodes, sync_mode='FIRST')
    assert plan['action'] == ops.ACTION_CONVERGE and 'every commit waits' in plan['sync_problem']


def test_unprotected_commits_converge_only_when_sync_asked():
    nodes = cluster()
    nodes[0].update(sync_names='', streaming_replicas=['dc1_pg2'])
    assert ops.classify(nodes, sync_mode='FIRST')['action'] == ops.ACTION_CONVERGE
    assert ops.classify(nodes, sync_mode=False)['action'] == ops.ACTION_NONE
    nodes[0].update(sync_names='FIRST 1 ("dc1_pg2")')
    assert ops.classify(nodes, sync_mode='FIRST')['action'] == ops.ACTION_NONE


def test_node_from_a_standby_status_and_its_decision():
    status = {'installed': True, 'initialized': True, 'standby_signal': True, 'running': True, 'accepting': True,
              'role': 'standby', 'error': None, 'fenced': False, 'masked': False, 'unit': {'ActiveState': 'active'},
              'state': {'timeline': 1, 'receive_lsn': '0/5000000', 'replay_lsn': '0/5000000',
                        'system_identifier': SYSID, 'streaming': False, 'upstream': {'host': '10.0.1.11'},
                        'wal_receiver': None, 'replicas': [],
                        'settings': {'synchronous_standby_names': ''}}}
    witness = {'tcp': 'open', 'answered': True, 'reachable': True, 'in_recovery': True, 'read_only': True}
    node = ops.node_from_status(status, 'dc1-pg2', datacenter='dc1', address='10.0.1.12', priority='5',
                                witness=witness)
    assert node['ssh'] and node['role'] == 'standby' and node['upstream_host'] == '10.0.1.11'
    assert (node['priority'], node['read_only'], node['replicas']) == (5, True, [])
    # Its primary is gone (the WAL receiver stopped): the decisions read these dicts.
    dead = ops.node_from_status(None, 'dc1-pg1', datacenter='dc1', address='10.0.1.11', ssh_error='SSH port closed',
                                witness={'tcp': 'refused', 'answered': False, 'reachable': False})
    assert (dead['ssh'], dead['running'], dead['ssh_error']) == (False, False, 'SSH port closed')
    plan = ops.classify([dead, node])
    assert plan['action'] == ops.ACTION_FAILOVER and plan['old_primary'] == 'dc1-pg1'


def test_node_from_a_primary_status_lists_its_replicas():
    status = {'installed': True, 'initialized': True, 'standby_signal': False, 'running': True, 'accepting': True,
              'role': 'primary', 'fenced': False, 'masked': False,
              'state': {'timeline': 2, 'current_lsn': '0/6000000',
                        'replicas': [{'application_name': 'dc1_pg2', 'state': 'streaming'},
                                     {'application_name': 'dc2_pg1', 'state': 'catchup'}],
                        'settings': {'synchronous_standby_names': 'FIRST 1 ("dc1_pg2")'}}}
    node = ops.node_from_status(status, 'dc1-pg1')
    assert node['replicas'] == ['dc1_pg2', 'dc2_pg1'] and node['streaming_replicas'] == ['dc1_pg2']
    assert (node['address'], node['sync_names'], node['upstream_host']) == ('dc1-pg1', 'FIRST 1 ("dc1_pg2")', None)

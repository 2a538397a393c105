# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The live topology: which host is the primary now and who follows whom."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pgha.multidc.plugins.module_utils.topology import decide_primary, live_topology

HOSTS = ['dc1-pg1', 'dc1-pg2', 'dc2-pg1', 'dc2-pg2']
INVENTORY = {'dc1-pg1': '', 'dc1-pg2': 'dc1-pg1', 'dc2-pg1': 'dc1-pg1', 'dc2-pg2': 'dc2-pg1'}
DC = {'dc1-pg1': 'dc1', 'dc1-pg2': 'dc1', 'dc2-pg1': 'dc2', 'dc2-pg2': 'dc2'}
NAMES = dict((h, h.replace('-', '_')) for h in HOSTS)


def primary():
    return {'probed': True, 'installed': True, 'initialized': True, 'running': True, 'accepting': True,
            'role': 'primary', 'standby_signal': False}


def standby():
    return dict(primary(), role='standby', standby_signal=True)


def stopped(standby_signal=False):
    return dict(primary(), running=False, accepting=False, standby_signal=standby_signal)


def fresh():
    return {'probed': True, 'installed': True, 'initialized': False, 'running': False, 'accepting': False,
            'role': '', 'standby_signal': False}


def topo(live, **kwargs):
    return live_topology(HOSTS, live, INVENTORY, 'dc1-pg1', datacenter_of=DC, name_of=NAMES, **kwargs)


def test_inventory_primary_running_keeps_the_inventory_tree():
    result = topo({'dc1-pg1': primary(), 'dc1-pg2': standby(), 'dc2-pg1': standby(), 'dc2-pg2': standby()},
                  sync_mode='FIRST', sync_count=1)
    assert result['primary'] == 'dc1-pg1'
    assert result['upstream'] == INVENTORY
    assert result['depth'] == {'dc1-pg1': 0, 'dc1-pg2': 1, 'dc2-pg1': 1, 'dc2-pg2': 2}
    assert result['followers'] == {'dc1-pg1': ['dc1-pg2', 'dc2-pg1'], 'dc1-pg2': [], 'dc2-pg1': ['dc2-pg2'],
                                   'dc2-pg2': []}
    assert result['sync_names'] == 'FIRST 1 ("dc1_pg2")'
    assert result['unreached'] == []


def test_promoted_standby_becomes_the_root_and_the_old_primary_follows_it():
    live = {'dc1-pg1': stopped(), 'dc1-pg2': primary(), 'dc2-pg1': standby(), 'dc2-pg2': standby()}
    result = topo(live, sync_mode='ANY', sync_count=2)
    assert result['decision'] == {'primary': 'dc1-pg2', 'reason': 'dc1-pg2 runs as the primary'}
    assert result['upstream'] == {'dc1-pg1': 'dc1-pg2', 'dc1-pg2': '', 'dc2-pg1': 'dc1-pg2', 'dc2-pg2': 'dc2-pg1'}
    assert result['followers']['dc1-pg2'] == ['dc1-pg1', 'dc2-pg1']
    # The count is capped to the names left once the primary itself is taken out.
    assert result['sync_names'] == 'ANY 1 ("dc1_pg1")'


def test_named_synchronous_standbys_and_off():
    live = {'dc1-pg1': primary(), 'dc1-pg2': standby(), 'dc2-pg1': standby(), 'dc2-pg2': standby()}
    assert topo(live, sync_mode='FIRST', sync_count=2, sync_hosts=['dc2-pg1', 'dc1-pg2'])['sync_names'] == \
        'FIRST 2 ("dc2_pg1", "dc1_pg2")'
    assert topo(live, sync_mode='OFF', sync_hosts=['dc1-pg2'])['sync_names'] == ''


def test_two_running_primaries_is_a_split_brain_and_decides_nothing():
    live = {'dc1-pg1': primary(), 'dc1-pg2': primary(), 'dc2-pg1': standby(), 'dc2-pg2': standby()}
    result = topo(live)
    assert 'split brain: dc1-pg1 and dc1-pg2' in result['decision']['error']
    assert result['primary'] == ''


def test_an_unread_host_may_be_the_primary():
    live = {'dc1-pg1': {'probed': False}, 'dc1-pg2': standby(), 'dc2-pg1': standby(), 'dc2-pg2': standby()}
    assert 'dc1-pg1 could not be read' in decide_primary(HOSTS, live, 'dc1-pg1')['error']


def test_a_running_primary_wins_over_an_unread_host():
    live = {'dc1-pg1': {'probed': False}, 'dc1-pg2': primary(), 'dc2-pg1': standby(), 'dc2-pg2': standby()}
    assert decide_primary(HOSTS, live, 'dc1-pg1')['primary'] == 'dc1-pg2'


def test_new_cluster_takes_the_initial_primary():
    live = dict((h, fresh()) for h in HOSTS)
    assert decide_primary(HOSTS, live, 'dc1-pg1') == {
        'primary': 'dc1-pg1', 'reason': 'new cluster: dc1-pg1 has pgha_initial_primary'}


def test_one_stopped_primary_data_directory_is_started_two_are_refused():
    live = {'dc1-pg1': fresh(), 'dc1-pg2': stopped(), 'dc2-pg1': stopped(standby_signal=True), 'dc2-pg2': fresh()}
    assert decide_primary(HOSTS, live, 'dc1-pg1')['primary'] == 'dc1-pg2'
    live['dc1-pg1'] = stopped()
    assert 'dc1-pg1, dc1-pg2 all hold a stopped primary' in decide_primary(HOSTS, live, 'dc1-pg1')['error']


def test_only_standbys_or_a_starting_server_decide_nothing():
    live = dict((h, stopped(standby_signal=True)) for h in HOSTS)
    assert 'none of them runs as a primary' in decide_primary(HOSTS, live, 'dc1-pg1')['error']
    live['dc1-pg1'] = dict(primary(), accepting=False)
    assert 'still starting on dc1-pg1' in decide_primary(HOSTS, live, 'dc1-pg1')['error']


def test_a_cycle_of_upstreams_is_reported_unreached():
    inventory = {'dc1-pg1': '', 'dc1-pg2': 'dc1-pg1', 'dc2-pg1': 'dc2-pg2', 'dc2-pg2': 'dc2-pg1'}
    live = {'dc1-pg1': primary(), 'dc1-pg2': standby(), 'dc2-pg1': standby(), 'dc2-pg2': standby()}
    result = live_topology(HOSTS, live, inventory, 'dc1-pg1', datacenter_of=DC, name_of=NAMES)
    assert result['unreached'] == ['dc2-pg1', 'dc2-pg2']


def test_assumed_primary_is_the_root_before_its_promotion():
    live = {'dc1-pg1': {'probed': False}, 'dc1-pg2': standby(), 'dc2-pg1': standby(), 'dc2-pg2': standby()}
    result = topo(live, assume_primary='dc1-pg2')
    assert result['decision']['primary'] == 'dc1-pg2'
    assert result['followers']['dc1-pg2'] == ['dc1-pg1', 'dc2-pg1']
    # The primary that still runs is taken as stopped (the operation fences it).
    live['dc1-pg1'] = primary()
    assert topo(live, assume_primary='dc1-pg2')['upstream'] == topo(
        dict(live, **{'dc1-pg1': stopped(), 'dc1-pg2': primary()}))['upstream']
    assert live['dc1-pg1']['running'] and live['dc1-pg2']['role'] == 'standby'   # the input is not changed


def test_the_datacenter_leader_the_keepers_hold_replaces_the_configured_one():
    live = dict((h, standby()) for h in HOSTS)
    live['dc1-pg1'] = primary()
    result = topo(live, dc_leaders={'dc2': 'dc2-pg2'}, configured_dc_leaders={'dc2': 'dc2-pg1'})
    assert result['upstream'] == {'dc1-pg1': '', 'dc1-pg2': 'dc1-pg1', 'dc2-pg2': 'dc1-pg1', 'dc2-pg1': 'dc2-pg2'}
    assert result['depth']['dc2-pg1'] == 2 and result['unreached'] == []


def test_the_configured_leader_held_or_no_key_keeps_the_inventory_tree():
    live = dict((h, standby()) for h in HOSTS)
    live['dc1-pg1'] = primary()
    configured = {'dc2': 'dc2-pg1'}
    for held in ({}, {'dc2': 'dc2-pg1'}, {'dc2': 'not-a-host'}, {'dc9': 'dc2-pg2'}):
        assert topo(live, dc_leaders=held, configured_dc_leaders=configured)['upstream'] == INVENTORY, held


def test_a_datacenter_leader_after_a_failover_follows_the_new_primary():
    live = dict((h, standby()) for h in HOSTS)
    live['dc1-pg2'] = primary()
    live['dc1-pg1'] = stopped()
    result = topo(live, dc_leaders={'dc2': 'dc2-pg2'}, configured_dc_leaders={'dc2': 'dc2-pg1'})
    assert result['upstream']['dc2-pg2'] == 'dc1-pg2' and result['upstream']['dc2-pg1'] == 'dc2-pg2'

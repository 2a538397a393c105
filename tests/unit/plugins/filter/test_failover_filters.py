# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/filter/failover.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.pgha.multidc.plugins.filter.failover import FilterModule

F = FilterModule().filters()


def node(name, dc, lsn, **extra):
    n = {'name': name, 'datacenter': dc, 'reachable': True, 'role': 'standby', 'receive_lsn': lsn,
         'replay_lsn': lsn, 'system_identifier': '1'}
    n.update(extra)
    return n


def test_candidate_prefers_the_failed_primary_datacenter():
    nodes = [node('dc1-pg2', 'dc1', '0/5000000'), node('dc2-pg1', 'dc2', '0/5000100')]
    decision = F['failover_candidate'](nodes, failed_primary_datacenter='dc1', max_lag_bytes='1048576')
    assert decision['candidate'] == 'dc1-pg2' and decision['error'] is None


def test_no_candidate_does_not_raise():
    decision = F['failover_candidate']([node('a', 'dc1', '0/1', reachable=False)])
    assert decision['candidate'] is None and 'unreachable' in decision['error']


def test_bad_input_raises_filter_error():
    with pytest.raises(AnsibleFilterError):
        F['failover_candidate']('nope')
    with pytest.raises(AnsibleFilterError):
        F['failover_candidate']([node('a', 'dc1', 'garbage')])


def test_lsn_filters():
    assert F['pg_lsn_diff']('0/3000060', '0/3000000') == 0x60
    assert F['pg_lsn_diff'](None, '0/1') is None
    assert F['pg_lsn_max'](['0/1', None, '1/0']) == '1/0'
    assert F['pg_lsn']('0/03000060') == '0/3000060'
    assert F['pg_pretty_bytes'](1536) == '1.5 KiB'


def test_sync_standby_names_filter():
    out = F['sync_standby_names'](['dc1_pg2'], mode='FIRST', count=1, streaming=['dc2_pg1'], fallback=['dc2_pg1'])
    assert out['value'] == 'FIRST 1 ("dc2_pg1")' and out['note']


def test_candidate_nodes_exclude_string():
    nodes = [{'name': 'a', 'ssh': True, 'running': True, 'accepting': True, 'role': 'standby'},
             {'name': 'b', 'ssh': True, 'running': True, 'accepting': True, 'role': 'primary'}]
    assert [n['name'] for n in F['failover_candidate_nodes'](nodes, exclude='b')] == ['a']

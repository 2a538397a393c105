# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/candidate.py (failover candidate selection)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import itertools

import pytest

from ansible_collections.pgha.multidc.plugins.module_utils.candidate import (
    NoCandidate, node_position, select_candidate)
from ansible_collections.pgha.multidc.plugins.module_utils.lsn import format_lsn, parse_lsn

MIB = 1024 * 1024
SYSID = '7301234567890123456'


def node(name, datacenter='dc1', lsn='0/5000000', **extra):
    """A healthy streaming standby at ``lsn`` (received and replayed)."""
    state = {'name': name, 'datacenter': datacenter, 'reachable': True, 'role': 'standby',
             'receive_lsn': lsn, 'replay_lsn': lsn, 'system_identifier': SYSID}
    state.update(extra)
    return state


def at(base, delta):
    """The LSN ``delta`` bytes after ``base``."""
    return format_lsn(parse_lsn(base) + delta)


def excluded(decision):
    return dict((entry['name'], entry['reason']) for entry in decision['excluded'])


def ranked(decision):
    return [entry['name'] for entry in decision['ranking']]


def final_reason(decision):
    return decision['reasons'][-1]


# ---------------------------------------------------------------- position

def test_position_is_the_highest_of_received_and_replayed():
    assert node_position({'receive_lsn': '0/5000000', 'replay_lsn': '0/4000000'}) == 0x5000000
    assert node_position({'receive_lsn': '0/4000000', 'replay_lsn': '0/5000000'}) == 0x5000000


def test_position_falls_back_to_replay_when_receive_unknown():
    assert node_position({'receive_lsn': None, 'replay_lsn': '0/4000000'}) == 0x4000000
    assert node_position({'replay_lsn': '1/0'}) == 1 << 32


def test_position_unknown():
    assert node_position({'receive_lsn': None, 'replay_lsn': None}) is None
    assert node_position({}) is None


def test_receive_lsn_none_candidate_uses_replay_lsn():
    nodes = [node('a', lsn='0/4000000'), node('b', receive_lsn=None, replay_lsn='0/6000000')]
    decision = select_candidate(nodes)
    assert decision['candidate'] == 'b'
    assert decision['ranking'][0]['position'] == '0/6000000'


# ---------------------------------------------------------------- rule 1: exclusions

@pytest.mark.parametrize('extra, reason', [
    ({'reachable': False}, 'unreachable'),
    ({'reachable': None}, 'unreachable'),
    ({'nofailover': True}, 'nofailover is set'),
    ({'role': 'primary'}, 'not a standby (role primary)'),
    ({'role': None}, 'not a standby (role None)'),
    ({'role': 'unknown'}, 'not a standby (role unknown)'),
    ({'system_identifier': '7309999999999999999'},
     'belongs to another cluster (system identifier 7309999999999999999)'),
    ({'receive_lsn': None, 'replay_lsn': None}, 'WAL position unknown'),
    ({'receive_lsn': '', 'replay_lsn': ''}, 'WAL position unknown'),
])
def test_excluded_with_reason(extra, reason):
    nodes = [node('good', lsn='0/1000000'), node('bad', lsn='0/9000000', **extra)]
    decision = select_candidate(nodes, system_identifier=SYSID)
    assert decision['candidate'] == 'good'
    assert excluded(decision) == {'bad': reason}
    assert 'bad excluded: %s' % reason in decision['reasons']
    assert ranked(decision) == ['good']


def test_missing_reachable_means_unreachable():
    state = node('a')
    del state['reachable']
    with pytest.raises(NoCandidate) as error:
        select_candidate([state])
    assert excluded(error.value.decision) == {'a': 'unreachable'}


def test_unreachable_reported_before_other_reasons():
    decision = select_candidate([node('ok'), node('x', reachable=False, role='primary', nofailover=True)])
    assert excluded(decision) == {'x': 'unreachable'}


def test_cascading_standby_is_eligible():
    decision = select_candidate([node('cascade', role='cascading_standby', lsn='0/6000000'), node('direct')])
    assert decision['candidate'] == 'cascade'


def test_nofailover_false_is_eligible():
    assert select_candidate([node('a', nofailover=False)])['candidate'] == 'a'


def test_system_identifier_not_checked_when_not_given():
    decision = select_candidate([node('a', system_identifier='1'), node('b', system_identifier='2', lsn='0/6000000')])
    assert decision['candidate'] == 'b'
    assert decision['excluded'] == []


def test_node_with_unknown_system_identifier_is_not_excluded():
    decision = select_candidate([node('a', system_identifier=None)], system_identifier=SYSID)
    assert decision['candidate'] == 'a'


@pytest.mark.parametrize('expected, reported', [(SYSID, int(SYSID)), (int(SYSID), SYSID), (int(SYSID), int(SYSID))])
def test_system_identifier_compared_whatever_its_type(expected, reported):
    # pg_control_system() gives a bigint, node_state sends text, templating may turn it back into an int.
    decision = select_candidate([node('a', system_identifier=reported)], system_identifier=expected)
    assert decision['candidate'] == 'a'


def test_all_excluded_raises_with_decision():
    nodes = [node('a', reachable=False), node('b', nofailover=True), node('c', role='primary')]
    with pytest.raises(NoCandidate) as error:
        select_candidate(nodes)
    decision = error.value.decision
    assert decision['candidate'] is None
    assert decision['ranking'] == []
    assert excluded(decision) == {'a': 'unreachable', 'b': 'nofailover is set', 'c': 'not a standby (role primary)'}
    assert final_reason(decision) == 'no standby qualifies for promotion'
    message = str(error.value)
    for text in ('a excluded: unreachable', 'b excluded: nofailover is set', 'no standby qualifies'):
        assert text in message


def test_no_nodes_raises():
    with pytest.raises(NoCandidate) as error:
        select_candidate([])
    assert error.value.decision['candidate'] is None
    assert error.value.decision['reference_lsn'] is None


def test_no_candidate_is_an_exception_with_message():
    error = NoCandidate('why', {'candidate': None})
    assert isinstance(error, Exception)
    assert str(error) == 'why'


# ---------------------------------------------------------------- rule 2: lag bound

def test_lag_bound_relative_to_reference_lsn():
    reference = '0/9000000'
    nodes = [node('close', lsn=at(reference, -MIB)), node('far', lsn=at(reference, -MIB - 1))]
    decision = select_candidate(nodes, max_lag_bytes=MIB, reference_lsn=reference)
    assert decision['candidate'] == 'close'
    assert decision['reference_lsn'] == reference
    assert excluded(decision) == {'far': 'lags 1.0 MiB behind 0/9000000, more than the bound of 1.0 MiB'}
    assert decision['ranking'][0]['lag_bytes'] == MIB


def test_lag_bound_applies_to_all_when_reference_is_far_ahead():
    nodes = [node('a', lsn='0/1000000'), node('b', lsn='0/2000000')]
    with pytest.raises(NoCandidate) as error:
        select_candidate(nodes, max_lag_bytes=MIB, reference_lsn='0/9000000')
    assert set(excluded(error.value.decision)) == {'a', 'b'}
    assert 'more than the bound of 1.0 MiB' in excluded(error.value.decision)['b']


def test_lag_bound_relative_to_most_advanced_node_without_reference():
    nodes = [node('ahead', lsn='0/9000000'), node('behind', lsn=at('0/9000000', -2 * MIB))]
    decision = select_candidate(nodes, max_lag_bytes=MIB)
    assert decision['reference_lsn'] == '0/9000000'
    assert excluded(decision) == {'behind': 'lags 2.0 MiB behind 0/9000000, more than the bound of 1.0 MiB'}


def test_lag_bound_relative_to_most_advanced_node_when_reference_is_stale():
    # The failed primary's last known LSN can be older than what a standby received.
    nodes = [node('ahead', lsn='0/9000000'), node('behind', lsn=at('0/9000000', -2 * MIB))]
    decision = select_candidate(nodes, max_lag_bytes=MIB, reference_lsn='0/8000000')
    assert decision['reference_lsn'] == '0/9000000'
    assert set(excluded(decision)) == {'behind'}


def test_lag_exactly_at_bound_is_allowed():
    nodes = [node('ahead', lsn='0/9000000', nofailover=True), node('edge', lsn=at('0/9000000', -MIB))]
    decision = select_candidate(nodes, max_lag_bytes=MIB, reference_lsn='0/9000000')
    assert decision['candidate'] == 'edge'


def test_zero_bound_only_fully_caught_up():
    nodes = [node('exact', lsn='0/9000000'), node('one_byte', lsn=at('0/9000000', -1))]
    decision = select_candidate(nodes, max_lag_bytes=0, reference_lsn='0/9000000')
    assert ranked(decision) == ['exact']
    assert excluded(decision) == {'one_byte': 'lags 1 B behind 0/9000000, more than the bound of 0 B'}


def test_no_bound_keeps_every_lagging_node():
    nodes = [node('a', lsn='0/1'), node('b', lsn='10/0')]
    decision = select_candidate(nodes, reference_lsn='20/0')
    assert ranked(decision) == ['b', 'a']
    assert decision['excluded'] == []
    assert decision['ranking'][0]['lag_bytes'] == parse_lsn('20/0') - parse_lsn('10/0')


def test_lag_counts_received_not_only_replayed():
    # Replay paused or slow: what was received is what a promotion keeps.
    nodes = [node('paused', receive_lsn='0/9000000', replay_lsn='0/1000000')]
    decision = select_candidate(nodes, max_lag_bytes=MIB, reference_lsn='0/9000000')
    assert decision['candidate'] == 'paused'
    assert decision['ranking'][0]['lag_bytes'] == 0


def test_lag_bound_across_the_4gib_boundary():
    nodes = [node('a', lsn='1/0'), node('b', lsn='0/FFFFFFFF'), node('c', lsn='0/FFF00000')]
    decision = select_candidate(nodes, max_lag_bytes=1)
    assert ranked(decision) == ['a', 'b']
    assert set(excluded(decision)) == {'c'}


# ---------------------------------------------------------------- rule 3: ranking

def test_highest_lsn_wins():
    nodes = [node('a', lsn='0/3000000'), node('b', lsn='0/5000000'), node('c', lsn='0/4000000')]
    decision = select_candidate(nodes)
    assert decision['candidate'] == 'b'
    assert ranked(decision) == ['b', 'c', 'a']
    assert final_reason(decision) == 'b chosen: highest WAL position 0/5000000'


def test_lsn_compared_as_numbers_not_text():
    decision = select_candidate([node('nine', lsn='9/0'), node('ten', lsn='10/0'), node('small', lsn='0/FFFFFFFF')])
    assert ranked(decision) == ['ten', 'nine', 'small']


def test_same_datacenter_preferred_even_when_other_is_more_advanced_within_bound():
    nodes = [node('dc2-pg1', 'dc2', lsn='0/9000000'), node('dc1-pg2', 'dc1', lsn=at('0/9000000', -512 * 1024))]
    decision = select_candidate(nodes, failed_primary_datacenter='dc1', max_lag_bytes=MIB)
    assert decision['candidate'] == 'dc1-pg2'
    assert ranked(decision) == ['dc1-pg2', 'dc2-pg1']
    assert final_reason(decision) == (
        "dc1-pg2 chosen: in the failed primary's datacenter dc1; highest WAL position 0/8F80000 in its datacenter; "
        'preferred over the more advanced dc2-pg1 in dc2 (512.0 KiB ahead, within the lag bound)')


def test_same_datacenter_preferred_without_a_bound():
    nodes = [node('dc2-pg1', 'dc2', lsn='1/0'), node('dc1-pg2', 'dc1', lsn='0/0')]
    decision = select_candidate(nodes, failed_primary_datacenter='dc1')
    assert decision['candidate'] == 'dc1-pg2'
    assert final_reason(decision).endswith('preferred over the more advanced dc2-pg1 in dc2 (4.0 GiB ahead)')


def test_same_datacenter_node_beyond_bound_loses_to_other_datacenter():
    nodes = [node('dc2-pg1', 'dc2', lsn='0/9000000'), node('dc1-pg2', 'dc1', lsn=at('0/9000000', -2 * MIB))]
    decision = select_candidate(nodes, failed_primary_datacenter='dc1', max_lag_bytes=MIB)
    assert decision['candidate'] == 'dc2-pg1'
    assert set(excluded(decision)) == {'dc1-pg2'}
    reason = final_reason(decision)
    assert "no qualified standby in the failed primary's datacenter dc1" in reason
    assert 'highest WAL position 0/9000000' in reason


def test_same_datacenter_unreachable_other_datacenter_chosen():
    nodes = [node('dc1-pg2', 'dc1', reachable=False), node('dc2-pg1', 'dc2', lsn='0/1000000')]
    decision = select_candidate(nodes, failed_primary_datacenter='dc1')
    assert decision['candidate'] == 'dc2-pg1'
    assert "no qualified standby in the failed primary's datacenter dc1" in final_reason(decision)


def test_without_failed_primary_datacenter_position_decides():
    nodes = [node('dc1-pg2', 'dc1', lsn='0/8000000'), node('dc2-pg1', 'dc2', lsn='0/9000000')]
    decision = select_candidate(nodes)
    assert decision['candidate'] == 'dc2-pg1'
    assert 'datacenter' not in final_reason(decision)


def test_same_datacenter_ranks_by_position_inside_it():
    nodes = [node('dc1-a', 'dc1', lsn='0/7000000'), node('dc1-b', 'dc1', lsn='0/8000000'),
             node('dc2-a', 'dc2', lsn='0/9000000')]
    decision = select_candidate(nodes, failed_primary_datacenter='dc1')
    assert ranked(decision) == ['dc1-b', 'dc1-a', 'dc2-a']


def test_priority_breaks_a_position_tie():
    nodes = [node('a', priority=1), node('b', priority=5), node('c', priority=3)]
    decision = select_candidate(nodes)
    assert decision['candidate'] == 'b'
    assert ranked(decision) == ['b', 'c', 'a']
    assert final_reason(decision) == 'b chosen: same position as c, higher priority 5'


def test_priority_does_not_beat_a_higher_position():
    nodes = [node('low', lsn='0/5000000', priority=100), node('high', lsn='0/5000001', priority=0)]
    assert select_candidate(nodes)['candidate'] == 'high'


def test_priority_does_not_beat_datacenter_preference():
    nodes = [node('dc1-pg2', 'dc1', priority=0), node('dc2-pg1', 'dc2', priority=100)]
    assert select_candidate(nodes, failed_primary_datacenter='dc1')['candidate'] == 'dc1-pg2'


def test_priority_as_text_or_missing():
    nodes = [node('a', priority='10'), node('b', priority=None), node('c')]
    decision = select_candidate(nodes)
    assert decision['candidate'] == 'a'
    assert [entry['priority'] for entry in decision['ranking']] == [10, 0, 0]


def test_name_breaks_a_full_tie():
    decision = select_candidate([node('pg3'), node('pg1'), node('pg2')])
    assert decision['candidate'] == 'pg1'
    assert ranked(decision) == ['pg1', 'pg2', 'pg3']
    assert final_reason(decision) == 'pg1 chosen: same position and priority as pg2; name breaks the tie'


@pytest.mark.parametrize('order', list(itertools.permutations(range(4))))
def test_decision_does_not_depend_on_input_order(order):
    nodes = [node('dc1-pg3', 'dc1', priority=2), node('dc1-pg2', 'dc1', priority=2),
             node('dc2-pg1', 'dc2', lsn='0/6000000'), node('dc1-pg4', 'dc1', reachable=False)]
    decision = select_candidate([nodes[i] for i in order], failed_primary_datacenter='dc1', max_lag_bytes=32 * MIB)
    reference = select_candidate(nodes, failed_primary_datacenter='dc1', max_lag_bytes=32 * MIB)
    assert decision == reference
    assert decision['candidate'] == 'dc1-pg2'


def test_ranking_entries():
    nodes = [node('a', 'dc1', lsn='0/5000000', priority=2), node('b', 'dc2', lsn='0/4000000')]
    decision = select_candidate(nodes, reference_lsn='0/5000000')
    assert decision['ranking'] == [
        {'name': 'a', 'datacenter': 'dc1', 'position': '0/5000000', 'lag_bytes': 0, 'priority': 2},
        {'name': 'b', 'datacenter': 'dc2', 'position': '0/4000000', 'lag_bytes': 0x1000000, 'priority': 0},
    ]


def test_input_nodes_are_not_modified():
    nodes = [node('a'), node('b', reachable=False), node('c', lsn='0/1')]
    before = copy.deepcopy(nodes)
    select_candidate(nodes, max_lag_bytes=MIB, failed_primary_datacenter='dc1')
    assert nodes == before


def test_reasons_list_exclusions_then_the_choice():
    nodes = [node('a', reachable=False), node('b', lsn='0/1'), node('c')]
    decision = select_candidate(nodes, max_lag_bytes=MIB)
    assert decision['reasons'][:2] == ['a excluded: unreachable',
                                       'b excluded: lags 80.0 MiB behind 0/5000000, more than the bound of 1.0 MiB']
    assert decision['reasons'][2].startswith('c chosen: ')
    assert len(decision['reasons']) == 3


# ---------------------------------------------------------------- requested candidate

def test_requested_candidate_honoured_even_if_not_best():
    nodes = [node('best', lsn='0/9000000'), node('wanted', 'dc2', lsn='0/8F00000')]
    decision = select_candidate(nodes, requested='wanted', max_lag_bytes=2 * MIB, failed_primary_datacenter='dc1')
    assert decision['candidate'] == 'wanted'
    reason = final_reason(decision)
    assert reason.startswith('wanted chosen as requested')
    assert reason == 'wanted chosen as requested (position 0/8F00000, 1.0 MiB behind 0/9000000)'


def test_requested_candidate_that_is_best():
    decision = select_candidate([node('a', lsn='0/2'), node('b', lsn='0/1')], requested='a')
    assert decision['candidate'] == 'a'
    assert 'as requested' in final_reason(decision)


@pytest.mark.parametrize('extra, reason', [
    ({'nofailover': True}, 'nofailover is set'),
    ({'reachable': False}, 'unreachable'),
    ({'role': 'primary'}, 'not a standby (role primary)'),
])
def test_requested_candidate_refused_when_excluded(extra, reason):
    nodes = [node('ok'), node('wanted', **extra)]
    with pytest.raises(NoCandidate) as error:
        select_candidate(nodes, requested='wanted')
    decision = error.value.decision
    assert decision['candidate'] is None
    expected = 'requested candidate wanted cannot be promoted: %s' % reason
    assert final_reason(decision) == expected
    assert str(error.value) == expected
    assert ranked(decision) == ['ok'], 'the ranking still shows who could be promoted'


def test_requested_candidate_refused_when_lagging_beyond_bound():
    nodes = [node('ok', lsn='0/9000000'), node('wanted', lsn='0/1000000')]
    with pytest.raises(NoCandidate) as error:
        select_candidate(nodes, requested='wanted', max_lag_bytes=MIB)
    assert final_reason(error.value.decision) == (
        'requested candidate wanted cannot be promoted: lags 128.0 MiB behind 0/9000000, more than the bound of 1.0 MiB')


def test_requested_candidate_unknown():
    with pytest.raises(NoCandidate) as error:
        select_candidate([node('a')], requested='ghost')
    assert final_reason(error.value.decision) == 'requested candidate ghost cannot be promoted: not a known node'

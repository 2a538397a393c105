# -*- coding: utf-8 -*-
"""The filters of the up-front validation (plugins/filter/validation.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.pgha.multidc.plugins.filter.validation import input_spec, range_problems, unknown_names

RANGES = {'lag': {'minimum': 0, 'unit': 'bytes'}, 'priority': {'minimum': 1, 'maximum': 254}, 'free': {}}


def test_input_spec_drops_our_keys_and_required_where_asked():
    spec = {'node': {'type': 'str', 'required': True, 'database_host': True},
            'lag': {'type': 'int', 'minimum': 0, 'maximum': 9, 'unit': 'bytes'}}
    assert input_spec(spec) == {'node': {'type': 'str', 'required': True}, 'lag': {'type': 'int'}}
    assert input_spec(spec, ['node'])['node'] == {'type': 'str'}
    assert spec['node']['required'] is True  # the input is not changed


@pytest.mark.parametrize('values', [{}, {'lag': 0}, {'lag': '16777216'}, {'priority': 254}, {'free': -5}])
def test_values_in_range_have_no_problem(values):
    assert range_problems(values, RANGES, 'dc1-lb1') == []


def test_a_negative_number_is_named_with_its_host_and_bound():
    assert range_problems({'lag': -1}, RANGES, 'dc1-lb1') == [
        '[ranges] dc1-lb1: lag = -1 is out of range; it must be a whole number of at least 0 (bytes)']
    assert range_problems({'priority': 300}, RANGES, 'inventory', 'bounds') == [
        '[bounds] inventory: priority = 300 is out of range; it must be a whole number from 1 to 254']


@pytest.mark.parametrize('value', ['lots', True, 1.5, None, [1]])
def test_a_value_that_is_no_whole_number_is_named(value):
    problems = range_problems({'lag': value}, RANGES, 'dc1-lb1')
    assert len(problems) == 1 and 'is not a whole number; it must be a whole number of at least 0' in problems[0]


def test_unknown_names_get_the_closest_known_one():
    known = ['pgha_haproxy_max_replica_lag_bytes', 'pgha_nofailover', 'pgha_pg_port']
    assert unknown_names(['pgha_haproxy_max_replica_lag_byte', 'pgha_pg_port', 'ansible_host', 'pgha_zzz_unrelated'], known) == [
        ['pgha_haproxy_max_replica_lag_byte', 'pgha_haproxy_max_replica_lag_bytes'], ['pgha_zzz_unrelated', '']]


@pytest.mark.parametrize('call', [lambda: input_spec(['x']), lambda: range_problems([], {}, 'h'), lambda: unknown_names('pgha_x', [])])
def test_wrong_inputs_are_refused(call):
    with pytest.raises(AnsibleFilterError):
        call()


def test_input_spec_merges_the_options_of_several_entry_points():
    first = {'port': {'type': 'int', 'default': 5432}, 'dc': {'type': 'str'}}
    second = {'dc': {'type': 'str', 'required': True}, 'vip': {'type': 'str', 'database_host': True}}
    assert input_spec([first, second]) == {'port': {'type': 'int', 'default': 5432},
                                           'dc': {'type': 'str', 'required': True}, 'vip': {'type': 'str'}}
    # Required by one, not required when another's default provides it.
    assert input_spec([second, first], ['dc'])['dc'] == {'type': 'str'}

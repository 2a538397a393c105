# -*- coding: utf-8 -*-
"""The keeper's filters (plugins/filter/keeper.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.pgha.multidc.plugins.filter.keeper import etcd_endpoints, keeper_timing_problems


def test_safe_timings_have_no_problem():
    assert keeper_timing_problems([10, 1, 5]) == []
    assert keeper_timing_problems(['30', '2', '10']) == []


def test_a_lease_too_short_to_fence_in_time_is_named():
    problems = keeper_timing_problems([7, 1, 5])
    assert len(problems) == 1 and problems[0].startswith('ttl must exceed retry_timeout + 2 x loop_wait + 2 s')


@pytest.mark.parametrize('bad', [[10, 1], ['ten', 1, 5], None])
def test_malformed_timings_are_refused(bad):
    with pytest.raises(AnsibleFilterError, match=r'\[ttl, loop_wait, retry_timeout\]'):
        keeper_timing_problems(bad)


def test_endpoints_use_each_members_address_and_the_port():
    hostvars = {'lb1': {'ansible_host': '172.30.1.21'}, 'lb2': {'ansible_host': '2001:db8::22'}, 'lb3': {}}
    assert etcd_endpoints(['lb1', 'lb2', 'lb3'], hostvars, 2390) == [
        'https://172.30.1.21:2390', 'https://[2001:db8::22]:2390', 'https://lb3:2390']
    assert etcd_endpoints([], hostvars) == []

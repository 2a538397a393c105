# -*- coding: utf-8 -*-
"""plugins/module_utils/dcs.py: how a call goes through the endpoints (the client is a
stand-in; the real etcd is in tests/integration/test_dcs.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

import pytest

from ansible_collections.pgha.multidc.plugins.module_utils.dcs import ClusterView, Dcs, DcsError, dc_leader_key


class Endpoint:
    def __init__(self, url, delay, fail):
        self.url, self.delay, self.fail, self.calls = url, delay, fail, 0

    def get_prefix(self, _prefix):
        self.calls += 1
        time.sleep(self.delay)
        if self.fail:
            raise OSError('timed out')
        return []


def dcs_with(specs, budget=None):
    endpoints = dict((url, Endpoint(url, delay, fail)) for url, delay, fail in specs)
    return Dcs(list(endpoints), 'unit', client_factory=lambda url: endpoints[url], budget=budget), endpoints


def test_without_a_budget_every_endpoint_is_tried():
    dcs, endpoints = dcs_with([('a', 0.05, True), ('b', 0.05, True), ('c', 0, False)])
    dcs.read()
    assert [e.calls for e in endpoints.values()] == [1, 1, 1]
    # The one that answered is asked first next time.
    dcs.read()
    assert endpoints['c'].calls == 2 and endpoints['a'].calls == 1


def test_a_budget_stops_the_call_and_the_next_one_starts_further():
    dcs, endpoints = dcs_with([('a', 0.3, True), ('b', 0, False), ('c', 0, False)], budget=0.2)
    with pytest.raises(DcsError, match='no time left to try b, c'):
        dcs.read()
    assert endpoints['b'].calls == 0
    dcs.read()
    assert endpoints['b'].calls == 1 and endpoints['a'].calls == 1


def test_the_view_names_the_datacenter_leaders_held():
    meta = {'mod_revision': 1, 'lease': 7}
    view = ClusterView({dc_leader_key('dc2'): ({'host': 'dc2-pg2'}, meta), dc_leader_key('dc3'): ({'host': 'dc3-pg1'}, meta),
                        'leader': ({'host': 'dc1-pg1'}, meta), 'members/dc2-pg2': ({'host': 'dc2-pg2'}, meta),
                        'dc/dc4/other': ({'host': 'x'}, meta)})
    assert view.dc_leaders() == {'dc2': 'dc2-pg2', 'dc3': 'dc3-pg1'}
    assert ClusterView({}).dc_leaders() == {}

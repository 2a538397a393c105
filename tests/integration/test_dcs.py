"""plugins/module_utils/dcs.py against a real etcd (Debian's etcd-server) on loopback,
with TLS and client certificates required, as the etcd role configures it."""

import time

import pytest

from ansible_collections.pgha.multidc.plugins.module_utils.dcs import (
    LEADER, MAINTENANCE, Dcs, DcsError, member_key)
from pgharness import free_port


def connect(etcd, cluster, endpoints=None, tls=None):
    return Dcs(endpoints or [etcd['url']], cluster, tls=etcd['tls'] if tls is None else tls, timeout=2)


def test_only_one_node_takes_the_leader_key(etcd):
    first, second = connect(etcd, 'race'), connect(etcd, 'race')
    lease_a, lease_b = first.grant(10), second.grant(10)
    assert first.create(LEADER, {'host': 'a'}, lease_a) is True
    assert second.create(LEADER, {'host': 'b'}, lease_b) is False
    assert second.read().value(LEADER) == {'host': 'a'}


def test_leader_key_goes_with_its_lease(etcd):
    dcs = connect(etcd, 'lease')
    lease = dcs.grant(2)
    dcs.create(LEADER, {'host': 'a'}, lease)
    dcs.put(member_key('a'), {'answering': True}, lease)
    assert dcs.refresh(lease) is True
    assert dcs.read().members() == {'a': {'answering': True}}
    time.sleep(4)
    view = dcs.read()
    assert not view.has(LEADER) and view.members() == {}
    assert dcs.refresh(lease) is False


def test_revoke_releases_at_once(etcd):
    dcs = connect(etcd, 'revoke')
    lease = dcs.grant(30)
    dcs.create(MAINTENANCE, {'by': 'test'}, lease)
    dcs.revoke(lease)
    assert not dcs.read().has(MAINTENANCE)


def test_create_refuses_while_an_absent_key_exists(etcd):
    dcs = connect(etcd, 'absent')
    dcs.put(MAINTENANCE, {'by': 'alice'})
    assert dcs.create(LEADER, {'host': 'a'}, absent=(MAINTENANCE,)) is False
    assert not dcs.read().has(LEADER)
    dcs.delete(MAINTENANCE)
    assert dcs.create(LEADER, {'host': 'a'}, absent=(MAINTENANCE,)) is True


def test_delete_if_only_removes_the_expected_value(etcd):
    dcs = connect(etcd, 'cas')
    dcs.put(LEADER, {'host': 'b'})
    assert dcs.delete_if(LEADER, {'host': 'a'}) is False
    assert dcs.read().value(LEADER) == {'host': 'b'}
    assert dcs.replace_if(LEADER, {'host': 'b'}, {'host': 'c'}) is True
    assert dcs.delete_if(LEADER, {'host': 'c'}) is True
    assert not dcs.read().has(LEADER)


def test_a_dead_endpoint_is_skipped(etcd):
    dead = 'https://127.0.0.1:%d' % free_port()
    dcs = connect(etcd, 'skip', endpoints=[dead, etcd['url']])
    dcs.put(LEADER, {'host': 'a'})
    assert dcs.read().value(LEADER) == {'host': 'a'}


def test_no_endpoint_answering_is_an_error(etcd):
    dcs = connect(etcd, 'none', endpoints=['https://127.0.0.1:%d' % free_port()])
    with pytest.raises(DcsError, match='etcd did not answer'):
        dcs.read()


def test_a_client_without_certificate_is_refused(etcd):
    dcs = connect(etcd, 'nocert', tls={'ca': etcd['tls']['ca']})
    with pytest.raises(DcsError):
        dcs.put(LEADER, {'host': 'intruder'})
    assert not connect(etcd, 'nocert').read().has(LEADER)


def test_status_names_the_member(etcd):
    report = connect(etcd, 'status').members_status()
    assert report[0]['answered'] is True and report[0]['version']

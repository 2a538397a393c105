"""The maintenance key (plugins/module_utils/maintenance.py and the action plugin
pgha_dcs_lock) against a real etcd with TLS and client certificates required."""

import os
import time

import pytest

from ansible_collections.pgha.multidc.plugins.module_utils import maintenance
from ansible_collections.pgha.multidc.plugins.module_utils.dcs import BLOCKED, MAINTENANCE, Dcs

OWNER = {'controller': 'test', 'pid': os.getpid()}


def connect(etcd, cluster):
    return Dcs([etcd['url']], cluster, tls=etcd['tls'], timeout=2)


def lock_args(etcd, cluster, **extra):
    args = {'endpoints': [etcd['url']], 'cluster': cluster, 'ca': etcd['tls']['ca'], 'cert': etcd['tls']['cert'],
            'key': etcd['tls']['key']}
    args.update(extra)
    return args


def wait_for(predicate, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def running(pid):
    try:
        with open('/proc/%d/stat' % pid) as handle:
            return handle.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except (IOError, OSError):
        return False


def test_an_operation_takes_the_key_and_gives_it_back(etcd):
    dcs = connect(etcd, 'lock-basic')
    taken = maintenance.acquire(dcs, 'switchover', OWNER, 10, reason='test')
    assert taken['lock'] == maintenance.OPERATION
    value = dcs.read().value(MAINTENANCE)
    assert value['by'] == 'switchover' and value['kind'] == 'operation' and value['pid'] == os.getpid()
    assert maintenance.release(dcs, taken['lease']) is True
    assert dcs.read().value(MAINTENANCE) is None
    # Given back twice: the lease is gone, nothing fails.
    assert maintenance.release(dcs, taken['lease']) is False


def test_a_second_operation_is_refused_then_forced(etcd):
    dcs = connect(etcd, 'lock-race')
    first = maintenance.acquire(dcs, 'failover', OWNER, 10)
    with pytest.raises(maintenance.LockError) as refused:
        maintenance.acquire(dcs, 'switchover', OWNER, 10)
    assert 'maintenance is held by failover (operation)' in str(refused.value)
    assert 'another operation is running' in str(refused.value)
    forced = maintenance.acquire(dcs, 'switchover', OWNER, 10, force=True)
    assert forced['lock'] == maintenance.OPERATION
    assert dcs.read().value(MAINTENANCE)['by'] == 'switchover'
    # The first operation's release no longer removes the second's key.
    maintenance.release(dcs, first['lease'])
    assert dcs.read().value(MAINTENANCE)['by'] == 'switchover'
    maintenance.release(dcs, forced['lease'])


def test_an_operation_under_a_person_leaves_the_persons_key(etcd):
    dcs = connect(etcd, 'lock-person')
    maintenance.person_on(dcs, OWNER, reason='kernel update')
    taken = maintenance.acquire(dcs, 'rejoin', OWNER, 10)
    assert taken['lock'] == maintenance.PERSON and taken['value']['reason'] == 'kernel update'
    assert dcs.read().value(MAINTENANCE)['kind'] == 'person'
    dcs.put(BLOCKED, {'reason': 'every standby beyond the lag bound'})
    previous, blocked = maintenance.person_off(dcs)
    assert previous['reason'] == 'kernel update' and blocked['reason'].startswith('every standby')
    view = dcs.read()
    assert not view.has(MAINTENANCE) and not view.has(BLOCKED)


def test_off_refuses_to_end_a_running_operation_unless_forced(etcd):
    dcs = connect(etcd, 'lock-off')
    taken = maintenance.acquire(dcs, 'switchover', OWNER, 10)
    with pytest.raises(maintenance.LockError, match='an operation is running'):
        maintenance.person_off(dcs)
    maintenance.person_off(dcs, force=True)
    assert dcs.read().value(MAINTENANCE) is None
    maintenance.release(dcs, taken['lease'])


def test_the_key_outlives_its_ttl_while_the_process_lives_and_goes_with_it(etcd):
    dcs = connect(etcd, 'lock-keepalive')
    taken = maintenance.acquire(dcs, 'failover', OWNER, 3)
    state = {'alive': True, 'loops': 0}

    def sleep(_seconds):
        # Two leases long while "ansible-playbook" lives, then it ends.
        time.sleep(1)
        state['loops'] += 1
        if state['loops'] == 7:
            assert dcs.read().value(MAINTENANCE) is not None, 'the key ended while the process lived'
            state['alive'] = False
    why = maintenance.keep_alive(dcs, taken['lease'], 4242, 1, alive=lambda _pid: state['alive'], sleep=sleep)
    assert why == 'process 4242 ended'
    assert dcs.read().value(MAINTENANCE) is None


def test_the_action_plugin_frees_the_key_when_the_playbook_ends(etcd, ansible):
    """A real ansible-playbook takes the key and ends without giving it back: its
    keepalive child sees the process gone and ends the lease."""
    dcs = connect(etcd, 'lock-plugin')
    result = ansible.run('pgha_dcs_lock', lock_args(etcd, 'lock-plugin', state='acquire', operation='switchover',
                                                    ttl=30))
    assert result['lock'] == 'operation' and result['changed'] is True
    # Well before the 30 s lease could end by itself.
    assert wait_for(lambda: dcs.read().value(MAINTENANCE) is None, timeout=20), dcs.read().value(MAINTENANCE)
    assert wait_for(lambda: not running(result['keepalive_pid']), timeout=10), 'the keepalive child did not end'


def test_the_action_plugin_refuses_another_operation_with_its_holder(etcd, ansible):
    dcs = connect(etcd, 'lock-plugin-refused')
    held = maintenance.acquire(dcs, 'failover', {'controller': 'elsewhere', 'pid': 1}, 30)
    result = ansible.run('pgha_dcs_lock', lock_args(etcd, 'lock-plugin-refused', state='acquire',
                                                    operation='switchover'), expect_failure=True)
    assert 'maintenance is held by failover (operation)' in result['msg'] and 'from elsewhere' in result['msg']
    maintenance.release(dcs, held['lease'])


def test_the_action_plugin_person_on_and_off(etcd, ansible):
    dcs = connect(etcd, 'lock-plugin-person')
    on = ansible.run('pgha_dcs_lock', lock_args(etcd, 'lock-plugin-person', state='on', reason='network change'))
    assert on['changed'] is True and dcs.read().value(MAINTENANCE)['kind'] == 'person'
    again = ansible.run('pgha_dcs_lock', lock_args(etcd, 'lock-plugin-person', state='on', reason='network change'))
    assert again['changed'] is False
    off = ansible.run('pgha_dcs_lock', lock_args(etcd, 'lock-plugin-person', state='off'))
    assert off['changed'] is True and dcs.read().value(MAINTENANCE) is None


def test_the_action_plugin_without_etcd(etcd, ansible):
    unreachable = lock_args(etcd, 'lock-none', state='acquire', operation='failover',
                            endpoints=['https://127.0.0.1:9'], timeout=1)
    failed = ansible.run('pgha_dcs_lock', unreachable, expect_failure=True)
    assert 'the maintenance key cannot be read or written' in failed['msg'] and '127.0.0.1:9' in failed['msg']
    best_effort = ansible.run('pgha_dcs_lock', dict(unreachable, required=False))
    assert best_effort['lock'] == 'none' and 'going on without the maintenance key' in best_effort['msg']
    none = ansible.run('pgha_dcs_lock', lock_args(etcd, 'lock-none', state='acquire', operation='failover',
                                                  endpoints=[], required=False))
    assert none['lock'] == 'none' and none['changed'] is False
    missing = ansible.run('pgha_dcs_lock', lock_args(etcd, 'lock-none', state='acquire'), expect_failure=True)
    assert 'operation' in missing['msg']


def test_an_operation_waits_for_the_keepers_actions_under_way(etcd):
    dcs = connect(etcd, 'lock-busy')
    lease = dcs.grant(30)
    member = {'host': 'pg1', 'datacenter': 'dc1', 'answering': True}
    # A keeper announced a repoint before the key existed: the operation waits for it.
    assert dcs.put_while_absent('members/pg1', dict(member, acting='follow'), lease, absent=(MAINTENANCE,))
    taken = maintenance.acquire(dcs, 'switchover', OWNER, 10)
    assert maintenance.wait_keepers_idle(dcs, 1.0, interval=0.2) == {'pg1': 'follow'}
    # Under the key no keeper can announce a new action...
    assert not dcs.put_while_absent('members/pg2', dict(member, host='pg2', acting='follow'), lease,
                                    absent=(MAINTENANCE,))
    assert 'pg2' not in dcs.read().members()
    # ... and once the one under way ends (its next loop's member key) the operation goes on.
    dcs.put('members/pg1', member, lease)
    assert maintenance.wait_keepers_idle(dcs, 5.0, interval=0.2) == {}
    maintenance.release(dcs, taken['lease'])
    dcs.revoke(lease)


def test_the_action_plugin_gives_the_key_back_when_a_keeper_stays_busy(etcd, ansible):
    dcs = connect(etcd, 'lock-busy-plugin')
    lease = dcs.grant(30)
    dcs.put('members/pg1', {'host': 'pg1', 'acting': 'promote'}, lease)
    run = ansible.run('pgha_dcs_lock', lock_args(etcd, 'lock-busy-plugin', state='acquire', operation='failover',
                                                 idle_timeout=1), expect_failure=True)
    assert 'pg1 (promote)' in run['msg'] and 'given back' in run['msg'], run
    assert dcs.read().value(MAINTENANCE) is None
    dcs.revoke(lease)

"""pg_replication_slot against real servers: a primary, a streaming standby and a
cascading standby that streams from a slot on that standby."""

import pytest

from pgharness import free_port

# The primary and the standby (slot_primary, slot_standby streaming through slot
# slot_standby) come from conftest.py.
SERVER_PREFIX = 'slot'


def holder(row):
    """What must not change while a slot is refused: type, activity and its process."""
    return {k: row[k] for k in ('slot_type', 'active', 'active_pid')} if row else None


def slot_row(server, name):
    rows = server.execute("SELECT slot_type, plugin, database, active, active_pid, restart_lsn::text "
                          "FROM pg_replication_slots WHERE slot_name = %s", (name,))
    if not rows:
        return None
    keys = ('slot_type', 'plugin', 'database', 'active', 'active_pid', 'restart_lsn')
    return dict(zip(keys, rows[0]))


@pytest.fixture(scope='module')
def logical_primary(servers):
    server = servers.primary('slot_logical')
    server.execute("ALTER SYSTEM SET wal_level = 'logical'")
    server.stop()
    server.start()
    assert server.scalar('SHOW wal_level') == 'logical'
    return server


@pytest.mark.parametrize('args, message', [
    ({'name': 'Bad-Name'}, 'may contain only lower case letters, digits and underscores'),
    ({'name': 'x' * 64}, 'the limit is 63'),
    ({'name': 'has space'}, 'may contain only lower case letters'),
    ({'name': 'cdc', 'slot_type': 'logical'}, 'needs an output plugin'),
    ({'name': 'phys', 'plugin': 'pgoutput'}, 'plugin applies only to logical slots'),
    ({'name': 'cdc', 'slot_type': 'logical', 'plugin': 'pgoutput', 'immediately_reserve': True},
     'immediately_reserve applies only to physical slots'),
])
def test_bad_input_fails_before_connecting(ansible, args, message):
    # Nothing listens on this port: a connection attempt would fail with "cannot connect".
    args = dict(args, login_host='127.0.0.1', login_port=free_port(), connect_timeout=2)
    result = ansible.run('pg_replication_slot', args, expect_failure=True)
    assert message in result['msg']
    assert 'cannot connect' not in result['msg']
    assert result['changed'] is False


def test_physical_slot_create_idempotent_check_mode_and_drop(ansible, primary):
    args = dict(primary.login(), name='dc1_pg9', immediately_reserve=True)

    predicted = ansible.run('pg_replication_slot', args, check_mode=True, diff=True)
    assert predicted['changed'] is True
    assert predicted['slot']['slot_name'] == 'dc1_pg9'
    assert predicted['slot']['slot_type'] == 'physical'
    assert predicted['queries'] == ["SELECT pg_create_physical_replication_slot('dc1_pg9', true)"]
    assert predicted['diff'] == {'before': {'state': 'absent'}, 'after': {'state': 'present', 'slot_type': 'physical'}}
    assert slot_row(primary, 'dc1_pg9') is None

    created = ansible.run('pg_replication_slot', args)
    assert created['changed'] is True
    assert created['queries'] == ["SELECT pg_create_physical_replication_slot('dc1_pg9', true)"]
    row = slot_row(primary, 'dc1_pg9')
    assert row['slot_type'] == 'physical'
    assert row['restart_lsn'] is not None, 'immediately_reserve must reserve WAL at creation'
    assert created['slot']['restart_lsn'] == row['restart_lsn']
    assert created['slot']['active'] is False
    assert created['slot']['wal_status'] == 'reserved'

    again = ansible.run('pg_replication_slot', args)
    assert again['changed'] is False
    assert again['queries'] == []
    assert again['slot']['slot_name'] == 'dc1_pg9'

    drop_args = dict(primary.login(), name='dc1_pg9', state='absent')
    predicted_drop = ansible.run('pg_replication_slot', drop_args, check_mode=True)
    assert predicted_drop['changed'] is True
    assert predicted_drop['queries'] == ["SELECT pg_drop_replication_slot('dc1_pg9')"]
    assert slot_row(primary, 'dc1_pg9') is not None

    dropped = ansible.run('pg_replication_slot', drop_args, diff=True)
    assert dropped['changed'] is True
    assert dropped['slot'] is None
    assert dropped['diff']['before'] == {'state': 'present', 'slot_type': 'physical'}
    assert dropped['diff']['after'] == {'state': 'absent'}
    assert slot_row(primary, 'dc1_pg9') is None

    assert ansible.run('pg_replication_slot', drop_args)['changed'] is False


def test_slot_without_reservation_until_a_standby_uses_it(ansible, primary):
    result = ansible.run('pg_replication_slot', dict(primary.login(), name='lazy_slot'))
    assert result['changed'] is True
    assert result['slot']['restart_lsn'] is None
    assert slot_row(primary, 'lazy_slot')['restart_lsn'] is None
    # immediately_reserve cannot apply to a slot that exists: said, not silently ignored.
    later = ansible.run('pg_replication_slot', dict(primary.login(), name='lazy_slot', immediately_reserve=True))
    assert later['changed'] is False
    assert any('applies only when a slot is created' in w for w in later['warnings'])
    ansible.run('pg_replication_slot', dict(primary.login(), name='lazy_slot', state='absent'))


def test_active_slot_is_refused_then_force_terminates_the_walsender(ansible, primary, standby):
    before = slot_row(primary, 'slot_standby')
    assert before['active'] is True
    pid = before['active_pid']
    args = dict(primary.login(), name='slot_standby', state='absent')

    refused = ansible.run('pg_replication_slot', args, expect_failure=True)
    assert 'is active' in refused['msg']
    assert 'walsender pid %d' % pid in refused['msg']
    assert 'application_name slot_standby' in refused['msg']
    assert 'force: true' in refused['msg']
    assert refused['changed'] is False
    assert refused['slot']['active_pid'] == pid
    assert holder(slot_row(primary, 'slot_standby')) == holder(before)

    predicted = ansible.run('pg_replication_slot', dict(args, force=True), check_mode=True)
    assert predicted['changed'] is True
    assert predicted['terminated_pids'] == [pid]
    assert predicted['queries'] == ['SELECT pg_terminate_backend(%d)' % pid,
                                    "SELECT pg_drop_replication_slot('slot_standby')"]
    assert holder(slot_row(primary, 'slot_standby')) == holder(before)
    assert primary.scalar('SELECT count(*) FROM pg_stat_replication WHERE pid = %s', (pid,)) == 1

    forced = ansible.run('pg_replication_slot', dict(args, force=True))
    assert forced['changed'] is True
    # First the walsender seen above. The standby may reconnect between that termination
    # and the drop; the module then terminates the new walsender too, until the slot is free.
    terminated = forced['terminated_pids']
    assert terminated[0] == pid and len(set(terminated)) == len(terminated), terminated
    for gone in terminated:
        assert 'SELECT pg_terminate_backend(%d)' % gone in forced['queries']
        # A terminated backend may take a moment to exit.
        assert primary.wait_for('SELECT count(*) FROM pg_stat_activity WHERE pid = %d' % gone, 0, timeout=10) == 0
    assert slot_row(primary, 'slot_standby') is None


def test_existing_slot_of_another_type_is_not_recreated(ansible, primary):
    primary.execute("SELECT pg_create_physical_replication_slot('typed_slot')")
    result = ansible.run('pg_replication_slot', dict(primary.login(), name='typed_slot', slot_type='logical',
                                                     plugin='test_decoding'), expect_failure=True)
    assert 'exists as a physical slot, not the requested logical (plugin test_decoding' in result['msg']
    assert 'not recreated' in result['msg']
    assert slot_row(primary, 'typed_slot')['slot_type'] == 'physical'
    primary.execute("SELECT pg_drop_replication_slot('typed_slot')")


def test_logical_slot_needs_wal_level_logical(ansible, primary):
    result = ansible.run('pg_replication_slot', dict(primary.login(), name='cdc', slot_type='logical',
                                                     plugin='test_decoding'), check_mode=True, expect_failure=True)
    assert 'wal_level is replica' in result['msg']
    assert slot_row(primary, 'cdc') is None


def test_logical_slot_with_test_decoding(ansible, logical_primary):
    server = logical_primary
    args = dict(server.login(), name='cdc_test', slot_type='logical', plugin='test_decoding')

    created = ansible.run('pg_replication_slot', args)
    assert created['changed'] is True
    assert created['slot']['slot_type'] == 'logical'
    assert created['slot']['plugin'] == 'test_decoding'
    assert created['slot']['database'] == 'postgres'
    assert created['queries'] == ["SELECT pg_create_logical_replication_slot('cdc_test', 'test_decoding')"]

    # A real slot: it decodes what is written after it.
    server.execute('CREATE TABLE cdc_probe (id int)')
    server.execute('INSERT INTO cdc_probe VALUES (42)')
    changes = [row[0] for row in server.execute("SELECT data FROM pg_logical_slot_peek_changes('cdc_test', NULL, NULL)")]
    assert any('table public.cdc_probe: INSERT: id[integer]:42' in change for change in changes)

    assert ansible.run('pg_replication_slot', args)['changed'] is False

    other_plugin = ansible.run('pg_replication_slot', dict(args, plugin='pgoutput'), expect_failure=True)
    assert 'plugin test_decoding' in other_plugin['msg'] and 'plugin pgoutput' in other_plugin['msg']
    physical = ansible.run('pg_replication_slot', dict(server.login(), name='cdc_test'), expect_failure=True)
    assert 'exists as a logical (plugin test_decoding, database postgres) slot' in physical['msg']
    assert slot_row(server, 'cdc_test')['plugin'] == 'test_decoding'

    other_db = ansible.run('pg_replication_slot', dict(server.login(), name='cdc_test', state='absent',
                                                       login_db='template1'), expect_failure=True)
    assert 'belongs to database postgres' in other_db['msg']
    assert slot_row(server, 'cdc_test') is not None

    dropped = ansible.run('pg_replication_slot', dict(server.login(), name='cdc_test', state='absent'))
    assert dropped['changed'] is True
    assert slot_row(server, 'cdc_test') is None


def test_physical_slot_on_a_standby_serves_a_cascading_standby(ansible, servers, primary):
    leader = servers.new('slot_leader').init_standby_of(primary)
    created = ansible.run('pg_replication_slot', dict(leader.login(), name='cascade_slot', immediately_reserve=True))
    assert created['changed'] is True
    assert leader.scalar('SELECT pg_is_in_recovery()') is True
    assert slot_row(leader, 'cascade_slot')['restart_lsn'] is not None
    assert ansible.run('pg_replication_slot', dict(leader.login(), name='cascade_slot'))['changed'] is False

    follower = servers.new('slot_follower').init_standby_of(leader, slot='cascade_slot')
    row = slot_row(leader, 'cascade_slot')
    assert row['active'] is True
    assert follower.scalar('SELECT pg_is_in_recovery()') is True

    refused = ansible.run('pg_replication_slot', dict(leader.login(), name='cascade_slot', state='absent'),
                          expect_failure=True)
    assert 'walsender pid %d' % row['active_pid'] in refused['msg']
    assert 'application_name slot_follower' in refused['msg']
    assert slot_row(leader, 'cascade_slot')['active'] is True

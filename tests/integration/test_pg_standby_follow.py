"""pg_standby_follow and pg_datadir_state against real servers: a primary A with standbys B
and C; A stops cleanly, B is promoted, C and A follow B (A without a rebuild, since B
received A's shutdown checkpoint); then a server that wrote WAL its successor never
received is refused with the numbers."""

import pytest


def follow_args(server, upstream, slot, **extra):
    args = dict(server.login(), data_directory=server.datadir, upstream=upstream.upstream(),
                application_name=server.name, slot=slot, timeout=60)
    args.update(extra)
    return args


@pytest.fixture(scope='module')
def trio(servers):
    a = servers.primary('follow_a')
    a.execute('CREATE TABLE t (n int)')
    a.execute('INSERT INTO t SELECT generate_series(1, 1000)')
    b = servers.new('follow_b').init_standby_of(a, slot='follow_b')
    c = servers.new('follow_c').init_standby_of(a, slot='follow_c')
    a.execute('INSERT INTO t SELECT generate_series(1, 1000)')
    end = a.scalar('SELECT pg_current_wal_lsn()::text')
    for s in (b, c):
        s.wait_for("SELECT pg_last_wal_replay_lsn() >= '%s'::pg_lsn" % end, True)
    return a, b, c


def test_datadir_state_refuses_wal_end_while_running(ansible, trio):
    a, _b, _c = trio
    result = ansible.run('pg_datadir_state', {'data_directory': a.datadir, 'wal_end': True}, expect_failure=True)
    assert result['running'] is True
    assert 'a server runs' in result['msg']
    result = ansible.run('pg_datadir_state', {'data_directory': a.datadir})
    assert result['controldata']['state'] == 'in production'
    assert result['controldata']['wal_log_hints'] is True


def test_clean_stop_then_promote_and_follow(ansible, trio):
    a, b, c = trio
    a.stop('fast')
    stopped = ansible.run('pg_datadir_state', {'data_directory': a.datadir})
    assert stopped['running'] is False
    assert stopped['controldata']['state'] == 'shut down'
    ckpt = stopped['controldata']['checkpoint_lsn']
    end = ansible.run('pg_datadir_state', {'data_directory': a.datadir, 'wal_end': True, 'wal_end_start': ckpt})
    end_lsn = end['wal_end']['lsn']
    assert end['wal_end']['exact'] is True
    # The shutdown checkpoint reached both standbys (the WAL senders send it before exiting).
    for s in (b, c):
        assert s.wait_for("SELECT pg_last_wal_receive_lsn() >= '%s'::pg_lsn" % end_lsn, True) is True

    b.execute('SELECT pg_promote(true, 60)')
    assert b.scalar('SELECT pg_is_in_recovery()') is False
    for slot in ('follow_a', 'follow_c'):
        b.execute("SELECT pg_create_physical_replication_slot(%s, true)", (slot,))

    predicted = ansible.run('pg_standby_follow', follow_args(c, b, 'follow_c'), check_mode=True, diff=True)
    assert predicted['changed'] is True
    assert predicted['fork']['can_follow'] is True
    assert c.scalar("SELECT current_setting('primary_slot_name')") == 'follow_c'
    assert str(a.port) in c.scalar("SELECT current_setting('primary_conninfo')")

    result = ansible.run('pg_standby_follow', follow_args(c, b, 'follow_c'))
    assert result['changed'] is True and result['streaming'] is True
    assert result['timeline'] == 2
    assert result['fork']['switchpoint'] is not None
    assert 'password' not in result['wal_receiver']['conninfo'] or '********' in result['wal_receiver']['conninfo']
    again = ansible.run('pg_standby_follow', follow_args(c, b, 'follow_c'))
    assert again['changed'] is False and again['streaming'] is True

    # The cleanly stopped old primary follows too, without a rebuild.
    old = ansible.run('pg_standby_follow', follow_args(a, b, 'follow_a'))
    assert old['running'] is False and old['changed'] is True
    assert old['fork']['can_follow'] is True and old['fork']['ahead_bytes'] == 0
    a.start()
    status = a.wait_for('SELECT (SELECT status FROM pg_stat_wal_receiver)', 'streaming', timeout=60)
    assert status == 'streaming'
    b.execute('INSERT INTO t VALUES (-1)')
    assert a.wait_for('SELECT count(*) FROM t WHERE n = -1', 1) == 1
    assert c.wait_for('SELECT count(*) FROM t WHERE n = -1', 1) == 1


def test_running_primary_is_refused(ansible, trio):
    _a, b, c = trio
    result = ansible.run('pg_standby_follow', follow_args(b, c, 'follow_b'), expect_failure=True)
    assert 'is a primary' in result['msg']
    assert result['changed'] is False


def test_ahead_of_fork_point_is_refused(ansible, servers):
    d = servers.primary('follow_d')
    d.execute('CREATE TABLE t (n int)')
    e = servers.new('follow_e').init_standby_of(d, slot='follow_e')
    # e stops receiving; d writes more and crashes; e is promoted without that WAL.
    e.execute("ALTER SYSTEM SET primary_conninfo = ''")
    e.execute('SELECT pg_reload_conf()')
    e.wait_for('SELECT count(*) FROM pg_stat_wal_receiver', 0)
    d.execute('INSERT INTO t SELECT generate_series(1, 5000)')
    d.stop('immediate')
    e.execute('SELECT pg_promote(true, 60)')
    e.execute("SELECT pg_create_physical_replication_slot('follow_d', true)")
    state = ansible.run('pg_datadir_state', {'data_directory': d.datadir, 'wal_end': True})
    assert state['controldata']['clean_shutdown'] is False
    result = ansible.run('pg_standby_follow', follow_args(d, e, 'follow_d'), expect_failure=True)
    assert result['fork']['can_follow'] is False
    assert result['fork']['ahead_bytes'] > 0
    assert 'pg_rewind' in result['msg']
    assert result['changed'] is False
    import os
    assert not os.path.exists(os.path.join(d.datadir, 'standby.signal'))

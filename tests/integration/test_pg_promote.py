"""pg_promote against real servers: the split brain guard, the replay and lag checks,
check mode, a real promotion to a new timeline that accepts writes, and idempotence."""

import json
import os

import pytest

from ansible_collections.pgha.multidc.plugins.module_utils.lsn import format_lsn, parse_lsn
from pgharness import controldata, free_port


def in_recovery(server):
    return server.scalar('SELECT pg_is_in_recovery()')


def history_files(server):
    return sorted(name for name in os.listdir(os.path.join(server.datadir, 'pg_wal')) if name.endswith('.history'))


def writes(server, table):
    server.execute('CREATE TABLE %s (id int)' % table)
    server.execute('INSERT INTO %s VALUES (1)' % table)
    return server.scalar('SELECT count(*) FROM %s' % table)


def pair(servers, name):
    primary = servers.primary(name + '_p')
    primary.execute('CREATE TABLE rows (id int)')
    standby = servers.new(name + '_s').init_standby_of(primary)
    return primary, standby


def caught_up(primary, standby):
    """Wait until the standby replayed everything the primary has flushed."""
    target = primary.scalar('SELECT pg_current_wal_flush_lsn()::text')
    return standby.wait_for('SELECT pg_last_wal_replay_lsn() >= %r::pg_lsn' % target, True) is True


def test_refused_while_the_upstream_primary_is_up(ansible, servers):
    primary, standby = pair(servers, 'guard')
    for check_mode in (True, False):
        result = ansible.run('pg_promote', standby.login(), check_mode=check_mode, expect_failure=True)
        assert 'split brain guard' in result['msg']
        assert 'localhost:%d still answers as a primary' % primary.port in result['msg']
        assert 'nothing was changed' in result['msg']
        assert result['changed'] is False
        assert result['promoted'] is False
        assert result['queries'] == []
        upstream = result['checks']['upstream']
        assert upstream['status'] == 'refused'
        assert upstream['upstream']['in_recovery'] is False
        assert 'replay' not in result['checks']  # later checks do not run once one refused
        assert in_recovery(standby) is True
        assert history_files(standby) == []

    # An upstream that answers but cannot be identified (here: the CA file is missing) is not "down".
    unverified = ansible.run('pg_promote', dict(standby.login(), upstream_sslrootcert='/nonexistent/ca.crt'),
                             expect_failure=True)
    assert 'answered but its role could not be checked' in unverified['msg']
    assert '/nonexistent/ca.crt' in unverified['msg']
    assert unverified['checks']['upstream']['upstream']['answered'] is True
    assert in_recovery(standby) is True


def test_forced_promotion_while_the_upstream_is_up(ansible, servers):
    primary, standby = pair(servers, 'forced')
    primary.execute('INSERT INTO rows VALUES (1)')
    assert caught_up(primary, standby)

    result = ansible.run('pg_promote', dict(standby.login(), force=True))
    assert result['changed'] is True and result['promoted'] is True
    assert result['checks']['upstream']['status'] == 'overridden'
    assert 'still answers as a primary' in result['checks']['upstream']['problem']
    assert any('force: promoting although split brain guard' in w for w in result.get('warnings', []))
    assert result['previous_timeline'] == 1 and result['timeline'] == 2
    assert in_recovery(standby) is False
    assert writes(standby, 'after_forced') == 1
    assert in_recovery(primary) is False  # the module does not fence the old primary: that is the playbook's job


def test_promotion_after_the_primary_stopped(ansible, servers):
    primary, standby = pair(servers, 'failover')
    primary.execute('INSERT INTO rows SELECT generate_series(1, 1000)')
    assert caught_up(primary, standby)
    primary.stop()
    # The failed primary's last WAL: its shutdown checkpoint, which the standby received.
    last_lsn = controldata(primary.datadir)['Latest checkpoint location']
    assert standby.wait_for('SELECT pg_last_wal_receive_lsn() > %r::pg_lsn' % last_lsn, True) is True

    # reference_wait: the standby has the reference already, nothing to wait for.
    args = dict(standby.login(), reference_lsn=last_lsn, max_lag_bytes=0, reference_wait=30)
    predicted = ansible.run('pg_promote', args, check_mode=True)
    assert predicted['checks']['lag']['waited_seconds'] < 5
    assert predicted['changed'] is True
    assert predicted['promoted'] is False
    assert predicted['checks']['upstream']['status'] == 'passed'
    assert predicted['checks']['upstream']['upstream']['answered'] is False
    assert predicted['checks']['replay']['status'] == 'passed'
    assert predicted['checks']['lag']['status'] == 'passed'
    assert predicted['checks']['lag']['lag_bytes'] == 0
    assert predicted['queries'] == []
    assert in_recovery(standby) is True
    assert history_files(standby) == []

    result = ansible.run('pg_promote', args)
    assert result['changed'] is True and result['promoted'] is True
    assert result['previous_timeline'] == 1
    assert result['timeline'] == 2
    assert result['queries'] == ['SELECT pg_promote(true, 60)']
    assert result['duration_seconds'] > 0
    assert result['checks']['write']['status'] == 'passed'
    assert int(result['checks']['write']['xid']) > 0
    assert in_recovery(standby) is False
    assert standby.scalar('SELECT count(*) FROM rows') == 1000
    assert writes(standby, 'after_failover') == 1
    # The new timeline begins where its history file says, right after the last replayed WAL.
    assert history_files(standby) == ['00000002.history']
    with open(os.path.join(standby.datadir, 'pg_wal', '00000002.history')) as handle:
        parent, switchpoint = handle.read().split('\t')[:2]
    assert (int(parent), switchpoint) == (1, result['promotion_lsn'])
    assert result['promotion_lsn_source'] == 'timeline_history'
    assert parse_lsn(result['promotion_lsn']) > parse_lsn(last_lsn)

    again = ansible.run('pg_promote', args)
    assert again['changed'] is False and again['promoted'] is False
    assert again['timeline'] == 2
    assert again['previous_timeline'] == 1
    assert again['promotion_lsn'] == result['promotion_lsn']
    assert 'already a primary' in again['msg']
    assert history_files(standby) == ['00000002.history']


def test_lag_check_refuses_a_standby_behind_the_reference(ansible, servers):
    primary, standby = pair(servers, 'lagging')
    primary.stop()
    position = standby.scalar('SELECT pg_last_wal_receive_lsn()::text')
    ahead = format_lsn(parse_lsn(position) + 2 * 1024 * 1024)  # the failed primary got 2 MiB further
    result = ansible.run('pg_promote', dict(standby.login(), reference_lsn=ahead, max_lag_bytes=1024 * 1024),
                         expect_failure=True)
    assert 'behind the reference %s, more than max_lag_bytes (1.0 MiB)' % ahead in result['msg']
    assert result['checks']['lag']['status'] == 'refused'
    assert result['checks']['lag']['lag_bytes'] >= 2 * 1024 * 1024
    assert result['changed'] is False
    assert in_recovery(standby) is True

    # Waiting for WAL that never comes ends after reference_wait; the lag check then refuses.
    waited = ansible.run('pg_promote', dict(standby.login(), reference_lsn=ahead, max_lag_bytes=0, reference_wait=2),
                         expect_failure=True)
    assert waited['checks']['lag']['status'] == 'refused'
    assert waited['checks']['lag']['waited_seconds'] >= 2
    assert waited['changed'] is False and in_recovery(standby) is True

    warned = ansible.run('pg_promote', dict(standby.login(), max_lag_bytes=1024), check_mode=True)
    assert warned['checks']['lag']['status'] == 'skipped'
    assert any('no reference LSN is known' in w for w in warned['warnings'])


def test_paused_standby_needs_resume_replay(ansible, servers):
    primary, standby = pair(servers, 'paused')
    standby.execute('SELECT pg_wal_replay_pause()')
    primary.execute('INSERT INTO rows SELECT generate_series(1, 500)')  # WAL arrives, pause takes effect
    assert standby.wait_for('SELECT pg_get_wal_replay_pause_state()', 'paused') == 'paused'
    target = primary.scalar('SELECT pg_current_wal_flush_lsn()::text')
    primary.stop()
    assert standby.wait_for('SELECT pg_last_wal_receive_lsn() >= %r::pg_lsn' % target, True) is True
    assert standby.scalar('SELECT count(*) FROM rows') == 0

    refused = ansible.run('pg_promote', standby.login(), expect_failure=True)
    assert 'replay is paused' in refused['msg'] and 'resume_replay: true' in refused['msg']
    assert refused['checks']['replay']['status'] == 'refused'
    assert refused['checks']['replay']['gap_bytes_before'] > 0
    assert refused['changed'] is False
    assert in_recovery(standby) is True
    assert standby.scalar('SELECT pg_get_wal_replay_pause_state()') == 'paused'

    predicted = ansible.run('pg_promote', dict(standby.login(), resume_replay=True), check_mode=True)
    assert predicted['changed'] is True
    assert predicted['checks']['replay']['status'] == 'predicted'
    assert standby.scalar('SELECT pg_get_wal_replay_pause_state()') == 'paused'

    result = ansible.run('pg_promote', dict(standby.login(), resume_replay=True))
    assert result['promoted'] is True
    assert result['queries'] == ['SELECT pg_wal_replay_resume()', 'SELECT pg_promote(true, 60)']
    replay = result['checks']['replay']
    assert replay['resumed'] is True and replay['unreplayed_bytes'] == 0
    assert standby.scalar('SELECT count(*) FROM rows') == 500  # everything received was replayed first


def test_cascading_standby_guard_hosts_and_upstream_reference(ansible, servers):
    primary = servers.primary('cascade_p')
    leader = servers.new('cascade_leader').init_standby_of(primary)
    follower = servers.new('cascade_follower').init_standby_of(leader)
    primary.execute('CREATE TABLE rows (id int)')
    primary.execute('INSERT INTO rows VALUES (1)')
    assert caught_up(primary, leader) and caught_up(primary, follower)

    # The direct upstream is a standby; only guard_hosts can tell that the primary is alive.
    guarded = ansible.run('pg_promote', dict(follower.login(), guard_hosts=[{'host': 'localhost', 'port': primary.port}]),
                          expect_failure=True)
    assert 'split brain guard' in guarded['msg'] and 'localhost:%d' % primary.port in guarded['msg']
    assert in_recovery(follower) is True

    primary.stop()
    # The leader's last WAL (the primary's shutdown checkpoint) reaches the follower.
    last_lsn = controldata(primary.datadir)['Latest checkpoint location']
    assert leader.wait_for('SELECT pg_last_wal_receive_lsn() > %r::pg_lsn' % last_lsn, True) is True
    assert follower.wait_for('SELECT pg_last_wal_replay_lsn() > %r::pg_lsn' % last_lsn, True) is True
    result = ansible.run('pg_promote', dict(follower.login(), max_lag_bytes=0,
                                            guard_hosts=[{'host': 'localhost', 'port': primary.port}]))
    upstream = result['checks']['upstream']
    assert upstream['status'] == 'passed'
    assert upstream['upstream']['in_recovery'] is True  # the leader answered as a standby
    assert upstream['guard_hosts'][0]['answered'] is False
    lag = result['checks']['lag']
    assert lag['references']['upstream'] == upstream['upstream']['wal_position']
    assert lag['lag_bytes'] == 0
    assert result['promoted'] is True and result['timeline'] == 2
    assert writes(follower, 'after_cascade') == 1
    assert in_recovery(leader) is True


@pytest.mark.parametrize('args, message', [
    ({'reference_lsn': 'not-an-lsn'}, 'reference_lsn: not an LSN'),
    ({'max_lag_bytes': -1}, 'max_lag_bytes cannot be negative'),
    ({'reference_wait': -1}, 'reference_wait cannot be negative'),
    ({'wait_seconds': 0}, 'wait_seconds must be at least 1'),
])
def test_bad_arguments_fail_before_connecting(ansible, args, message):
    # Nothing listens on this port: a connection attempt would fail with "cannot connect".
    result = ansible.run('pg_promote', dict(args, login_host='127.0.0.1', login_port=free_port()), expect_failure=True)
    assert message in result['msg']
    assert result['changed'] is False


def test_wrong_password_and_unreachable_host_fail_clearly(ansible, servers):
    server = servers.primary('promote_login')
    secret = 'Not-The-Password-77'
    wrong = ansible.run('pg_promote', dict(login_host='localhost', login_port=server.port, login_password=secret,
                                           ssl_mode='verify-full', ssl_rootcert=server.ca.ca_cert),
                        expect_failure=True)
    assert 'password authentication failed for user "postgres"' in wrong['msg']
    assert secret not in json.dumps(wrong)
    assert wrong['changed'] is False

    port = free_port()
    unreachable = ansible.run('pg_promote', dict(login_host='127.0.0.1', login_port=port, connect_timeout=2),
                              expect_failure=True)
    assert 'cannot connect to postgres@127.0.0.1:%d' % port in unreachable['msg']
    assert 'Connection refused' in unreachable['msg']

    unknown = ansible.run('pg_promote', dict(login_host='no-such-host.invalid', connect_timeout=2),
                          expect_failure=True)
    assert 'cannot connect to postgres@no-such-host.invalid:5432' in unknown['msg']
    assert 'could not translate host name' in unknown['msg']

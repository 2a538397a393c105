"""pg_replay_control against a real primary and standby: a paused standby receives WAL
but shows none of it until replay resumes; a pause is reported only once in effect."""

import threading

import pytest

from ansible_collections.pgha.multidc.plugins.module_utils.lsn import parse_lsn
from pgharness import free_port


@pytest.fixture(scope='module')
def primary(servers):
    server = servers.primary('replay_primary')
    server.execute('CREATE TABLE marks (id int PRIMARY KEY, note text)')
    server.execute('CREATE TABLE heartbeat (at timestamptz DEFAULT now())')
    return server


@pytest.fixture(scope='module')
def standby(servers, primary):
    return servers.new('replay_standby').init_standby_of(primary)


def pause_state(server):
    return server.scalar('SELECT pg_get_wal_replay_pause_state()')


def visible(server, mark_id):
    return server.scalar('SELECT count(*) FROM marks WHERE id = %s', (mark_id,)) == 1


class Writer(threading.Thread):
    """Writes on the primary until stopped, so that WAL keeps reaching the standby."""

    def __init__(self, server):
        super().__init__(daemon=True)
        self.server, self.stopped = server, threading.Event()

    def run(self):
        conn = self.server.connect()
        try:
            while not self.stopped.wait(0.1):
                with conn.cursor() as cursor:
                    cursor.execute('INSERT INTO heartbeat DEFAULT VALUES')
        finally:
            conn.close()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.join(10)


def test_status_on_a_streaming_standby(ansible, standby):
    result = ansible.run('pg_replay_control', standby.login())
    assert result['changed'] is False
    assert result['pause_state'] == 'not paused'
    assert result['paused'] is False
    assert result['wal_receiver_status'] == 'streaming'
    assert parse_lsn(result['replay_lsn']) > 0
    assert result['queries'] == []


def test_pause_hides_new_rows_until_resume(ansible, primary, standby):
    args = dict(standby.login(), action='pause', timeout=30)

    predicted = ansible.run('pg_replay_control', args, check_mode=True, diff=True)
    assert predicted['changed'] is True
    assert predicted['pause_state'] == 'paused'
    assert predicted['diff'] == {'before': {'pause_state': 'not paused'}, 'after': {'pause_state': 'paused'}}
    assert pause_state(standby) == 'not paused'

    with Writer(primary):  # WAL arrives while the module waits for the pause to take effect
        paused = ansible.run('pg_replay_control', args)
    assert paused['changed'] is True
    assert paused['previous_pause_state'] == 'not paused'
    assert paused['pause_state'] == 'paused' and paused['paused'] is True
    assert paused['queries'] == ['SELECT pg_wal_replay_pause()']
    assert paused['startup_wait_event'] == 'IPC:RecoveryPause'
    assert pause_state(standby) == 'paused'

    primary.execute("INSERT INTO marks VALUES (1, 'written while the standby is paused')")
    target = primary.scalar('SELECT pg_current_wal_flush_lsn()::text')
    received = standby.wait_for('SELECT pg_last_wal_receive_lsn() >= %r::pg_lsn' % target, True)
    assert received is True, 'the standby must still receive WAL while paused'
    assert visible(primary, 1)
    assert not visible(standby, 1), 'a paused standby must not show rows written after the pause'
    assert parse_lsn(standby.scalar('SELECT pg_last_wal_replay_lsn()::text')) < parse_lsn(target)

    status = ansible.run('pg_replay_control', dict(standby.login(), action='status'))
    assert status['changed'] is False and status['paused'] is True
    assert status['replay_gap_bytes'] > 0

    again = ansible.run('pg_replay_control', args)
    assert again['changed'] is False
    assert again['queries'] == []

    resume = dict(standby.login(), action='resume')
    predicted = ansible.run('pg_replay_control', resume, check_mode=True)
    assert predicted['changed'] is True and predicted['pause_state'] == 'not paused'
    assert pause_state(standby) == 'paused'
    assert not visible(standby, 1)

    resumed = ansible.run('pg_replay_control', resume, diff=True)
    assert resumed['changed'] is True
    assert resumed['pause_state'] == 'not paused'
    assert resumed['diff'] == {'before': {'pause_state': 'paused'}, 'after': {'pause_state': 'not paused'}}
    assert standby.wait_for('SELECT count(*) FROM marks WHERE id = 1', 1) == 1

    assert ansible.run('pg_replay_control', resume)['changed'] is False


def test_pause_is_reported_only_once_in_effect(ansible, primary, standby):
    """Replay blocked by a recovery conflict cannot reach the point where it pauses: the
    state stays 'pause requested', and the module fails rather than claim a pause."""
    standby.execute('ALTER SYSTEM SET max_standby_streaming_delay = -1')  # wait for the query forever
    standby.execute('SELECT pg_reload_conf()')
    assert standby.wait_for('SHOW max_standby_streaming_delay', '-1') == '-1'
    primary.execute("INSERT INTO marks VALUES (2, 'before the conflict')")
    assert standby.wait_for('SELECT count(*) FROM marks WHERE id = 2', 1) == 1

    reader = standby.connect()
    reader.autocommit = False
    try:
        with reader.cursor() as cursor:
            cursor.execute('SELECT count(*) FROM marks')  # holds a lock the primary's LOCK conflicts with
        primary.execute('BEGIN; LOCK TABLE marks IN ACCESS EXCLUSIVE MODE; COMMIT')
        primary.execute("INSERT INTO marks VALUES (3, 'behind the conflict')")
        blocked = standby.wait_for("SELECT wait_event_type || ':' || wait_event FROM pg_stat_activity "
                                   "WHERE backend_type = 'startup'", 'Lock:relation')
        assert blocked == 'Lock:relation'

        failed = ansible.run('pg_replay_control', dict(standby.login(), action='pause', timeout=2),
                             expect_failure=True)
        assert failed['changed'] is True  # the request was made, and stays
        assert failed['pause_state'] == 'pause requested'
        assert failed['paused'] is False
        assert 'not in effect after' in failed['msg']
        assert 'recovery conflict' in failed['msg']
        assert failed['waited_seconds'] >= 2
        assert pause_state(standby) == 'pause requested'
    finally:
        reader.rollback()  # ends the conflict: replay goes on to the point where it pauses
        reader.close()
    try:
        done = ansible.run('pg_replay_control', dict(standby.login(), action='pause', timeout=30))
        assert done['changed'] is False  # the pause was requested by the previous run
        assert done['previous_pause_state'] in ('pause requested', 'paused')
        assert done['pause_state'] == 'paused'
        assert pause_state(standby) == 'paused'
    finally:
        standby.execute('SELECT pg_wal_replay_resume()')
        standby.execute('ALTER SYSTEM RESET max_standby_streaming_delay')
        standby.execute('SELECT pg_reload_conf()')
    assert standby.wait_for('SELECT count(*) FROM marks WHERE id = 3', 1) == 1


def test_pause_without_waiting_returns_the_requested_state(ansible, primary, standby):
    result = ansible.run('pg_replay_control', dict(standby.login(), action='pause', wait=False))
    try:
        assert result['changed'] is True
        assert result['pause_state'] in ('pause requested', 'paused')
        assert result['waited_seconds'] == 0
        assert pause_state(standby) in ('pause requested', 'paused')
    finally:
        standby.execute('SELECT pg_wal_replay_resume()')


@pytest.mark.parametrize('action', ['pause', 'resume', 'status'])
def test_a_primary_is_refused(ansible, primary, action):
    result = ansible.run('pg_replay_control', dict(primary.login(), action=action), expect_failure=True)
    assert 'not in recovery (it is a primary)' in result['msg']
    assert result['changed'] is False
    assert primary.scalar('SELECT pg_is_in_recovery()') is False


def test_negative_timeout_fails_before_connecting(ansible):
    # Nothing listens on this port: a connection attempt would fail with "cannot connect".
    result = ansible.run('pg_replay_control', dict(login_host='127.0.0.1', login_port=free_port(), action='pause',
                                                   timeout=-1), expect_failure=True)
    assert result['msg'] == 'timeout cannot be negative'

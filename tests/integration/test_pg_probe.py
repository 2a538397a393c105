"""pg_probe, the failover's witness: what a server says of itself to a client on the
network (TLS verify-full, the monitoring role), and the host's SSH port probed in the
same call."""

import socket

import pytest

from pgharness import free_port

SERVER_PREFIX = 'probe'
MONITOR_PASSWORD = 'probe-monitor-secret'


@pytest.fixture(scope='module')
def monitored(primary):
    primary.execute("CREATE ROLE pgha_monitor WITH LOGIN PASSWORD '%s' IN ROLE pg_monitor" % MONITOR_PASSWORD)
    return primary


@pytest.fixture
def listening_port():
    """A TCP port that accepts connections (an SSH port stands in for it)."""
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    sock.listen(1)
    yield sock.getsockname()[1]
    sock.close()


def probe_args(server, **overrides):
    args = {'host': 'localhost', 'port': server.port, 'password': MONITOR_PASSWORD,
            'sslrootcert': server.ca.ca_cert, 'connect_timeout': 2, 'tcp_timeout': 2}
    args.update(overrides)
    return args


def test_a_primary_answers_as_a_primary(ansible, monitored, listening_port):
    result = ansible.run('pg_probe', probe_args(monitored, ssh_port=listening_port))
    assert result['changed'] is False
    assert (result['tcp'], result['answered'], result['reachable']) == ('open', True, True)
    assert result['in_recovery'] is False and result['read_only'] is False
    assert result['timeline'] == 1
    assert monitored.scalar("SELECT %s::pg_lsn <= pg_current_wal_lsn()", (result['wal_position'],)) is True
    assert result['system_identifier'] == str(monitored.scalar('SELECT system_identifier FROM pg_control_system()'))
    assert (result['ssh'], result['ssh_error']) == ('open', None)
    assert MONITOR_PASSWORD not in str(result)


def test_a_standby_answers_as_a_standby(ansible, monitored, standby):
    standby.wait_for("SELECT count(*) FROM pg_roles WHERE rolname = 'pgha_monitor'", 1)
    result = ansible.run('pg_probe', probe_args(standby))
    assert result['reachable'] is True
    assert result['in_recovery'] is True
    assert result['system_identifier'] == str(monitored.scalar('SELECT system_identifier FROM pg_control_system()'))
    assert result['ssh'] is None  # not asked


def test_a_refused_login_still_counts_as_an_answer(ansible, monitored):
    result = ansible.run('pg_probe', probe_args(monitored, password='wrong'))
    assert (result['tcp'], result['answered'], result['reachable']) == ('open', True, False)
    assert result['in_recovery'] is None
    assert 'wrong' not in (result['error'] or '').split()


def test_a_closed_port_is_no_answer_and_the_ssh_port_is_reported(ansible, monitored):
    closed = free_port()
    result = ansible.run('pg_probe', probe_args(monitored, port=closed, ssh_port=free_port()))
    assert (result['tcp'], result['answered'], result['reachable']) == ('refused', False, False)
    assert result['ssh'] == 'refused'
    assert 'connection refused' in result['ssh_error']

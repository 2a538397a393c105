"""pg_probe, the failover's witness: what a server says of itself to a client on the
network (TLS verify-full, the monitoring role), and the host's SSH port probed in the
same call."""

import json
import os
import socket
import subprocess

import pytest

from pgharness import REPO, free_port

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


def test_several_targets_in_one_call(ansible, monitored, standby, listening_port):
    standby.wait_for("SELECT count(*) FROM pg_roles WHERE rolname = 'pgha_monitor'", 1)
    closed = free_port()
    args = probe_args(monitored)
    del args['host'], args['port']
    args['targets'] = [{'name': 'dc1-pg1', 'host': 'localhost', 'port': monitored.port, 'ssh_port': listening_port},
                       {'name': 'dc1-pg2', 'host': 'localhost', 'port': standby.port},
                       {'name': 'dc1-pg3', 'host': 'localhost', 'port': closed, 'ssh_port': closed}]
    result = ansible.run('pg_probe', args)
    answers = result['targets']
    assert sorted(answers) == ['dc1-pg1', 'dc1-pg2', 'dc1-pg3']
    assert (answers['dc1-pg1']['reachable'], answers['dc1-pg1']['in_recovery'], answers['dc1-pg1']['ssh']) == \
        (True, False, 'open')
    assert (answers['dc1-pg2']['reachable'], answers['dc1-pg2']['in_recovery'], answers['dc1-pg2']['ssh']) == \
        (True, True, None)
    assert (answers['dc1-pg3']['tcp'], answers['dc1-pg3']['answered'], answers['dc1-pg3']['ssh']) == \
        ('refused', False, 'refused')
    assert result['tcp'] is None and result['answered'] is False  # nothing at the top level
    assert MONITOR_PASSWORD not in str(result)


def test_host_and_targets_exclude_each_other(ansible, monitored):
    args = probe_args(monitored, targets=[{'name': 'x', 'host': 'localhost'}])
    result = ansible.run('pg_probe', args, expect_failure=True)
    assert 'mutually exclusive' in result['msg']


def test_the_module_gives_the_same_answer_off_the_control_node(ansible, monitored, listening_port):
    """On a local connection (every test above) the action plugin probes in the controller's
    process; on any other connection the module runs on the host. Run the module itself
    (as Ansible would on a remote host: its arguments in a JSON file) and compare."""
    args = probe_args(monitored, ssh_port=listening_port)
    in_process = ansible.run('pg_probe', args)
    args_file = os.path.join(ansible.workdir, 'pg_probe_args.json')
    with open(args_file, 'w') as handle:
        json.dump({'ANSIBLE_MODULE_ARGS': args}, handle)
    proc = subprocess.run(  # pylint: disable=subprocess-run-check  # the output says why when it fails
        [os.path.join(REPO, '.venv', 'bin', 'python'), '-m', 'ansible_collections.pgha.multidc.plugins.modules.pg_probe',
         args_file], capture_output=True, text=True, timeout=60,
        env=dict(os.environ, PYTHONPATH=os.path.join(REPO, 'collections')))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    as_module = json.loads(proc.stdout)
    keys = ('tcp', 'answered', 'reachable', 'in_recovery', 'read_only', 'timeline', 'system_identifier', 'ssh')
    assert [as_module[k] for k in keys] == [in_process[k] for k in keys] == \
        ['open', True, True, False, False, 1, in_process['system_identifier'], 'open']
    assert MONITOR_PASSWORD not in proc.stdout

"""pg_replication_info on a primary, a standby and a cascading standby; no password
from primary_conninfo ever reaches the result."""

import json

import pytest

from pgharness import REPLICATION_PASSWORD, REPLICATION_USER, free_port

# The primary and the standby (info_primary, info_standby streaming through slot
# info_standby) come from conftest.py.
SERVER_PREFIX = 'info'


@pytest.fixture(scope='module')
def cascade(servers, standby):
    return servers.new('info_cascade').init_standby_of(standby)


def test_primary(ansible, primary, standby):
    result = ansible.run('pg_replication_info', dict(primary.login(), probe_upstream=True), check_mode=True)
    state = result['state']
    assert result['changed'] is False
    assert state['role'] == 'primary'
    assert state['in_recovery'] is False
    assert state['upstream'] is None
    assert 'upstream_probe' not in state  # nothing to probe on a primary
    assert state['timeline'] == 1
    assert state['current_lsn'] and state['wal_position'] == state['current_lsn']
    assert state['system_identifier'] == str(primary.scalar('SELECT system_identifier FROM pg_control_system()'))
    replicas = [r['application_name'] for r in state['replicas']]
    assert replicas == ['info_standby']
    slots = dict((s['slot_name'], s) for s in state['slots'])
    assert slots['info_standby']['active'] is True


def test_standby(ansible, primary, standby):
    state = ansible.run('pg_replication_info', standby.login())['state']
    assert state['role'] == 'standby'
    assert state['in_recovery'] is True
    assert state['streaming'] is True
    assert state['upstream']['host'] == 'localhost'
    assert state['upstream']['port'] == primary.port
    assert state['upstream']['user'] == REPLICATION_USER
    assert state['upstream']['slot'] == 'info_standby'
    assert state['system_identifier'] == str(primary.scalar('SELECT system_identifier FROM pg_control_system()'))
    assert 'upstream_probe' not in state


def test_standby_with_probe_sees_a_primary_upstream(ansible, primary, standby):
    state = ansible.run('pg_replication_info', dict(standby.login(), probe_upstream=True))['state']
    assert state['role'] == 'standby'
    assert state['upstream_in_recovery'] is False
    probe = state['upstream_probe']
    assert probe['reachable'] is True
    assert probe['in_recovery'] is False
    assert probe['upstream'] == '%s@localhost:%d' % (REPLICATION_USER, primary.port)
    assert probe['system_identifier'] == state['system_identifier']
    assert probe['timeline'] == 1


def test_cascading_standby_with_probe(ansible, standby, cascade):
    plain = ansible.run('pg_replication_info', cascade.login())['state']
    assert plain['role'] == 'standby'  # without a probe a cascade cannot be told
    assert plain['upstream']['port'] == standby.port

    state = ansible.run('pg_replication_info', dict(cascade.login(), probe_upstream=True))['state']
    assert state['role'] == 'cascading_standby'
    assert state['upstream_in_recovery'] is True
    assert state['upstream_probe']['in_recovery'] is True
    assert state['upstream_probe']['upstream'].endswith(':%d' % standby.port)

    upstream_view = ansible.run('pg_replication_info', standby.login())['state']
    assert [r['application_name'] for r in upstream_view['replicas']] == ['info_cascade']


def test_unreachable_upstream_is_reported_not_failed(ansible, standby):
    # An override that cannot be read: the upstream answers, but the login needs a password.
    state = ansible.run('pg_replication_info', dict(standby.login(), probe_upstream=True,
                                                    upstream_passfile='/nonexistent/pgpass'))['state']
    probe = state['upstream_probe']
    assert probe['reachable'] is False
    assert probe['answered'] is True
    assert 'no password supplied' in probe['error']
    assert state['role'] == 'standby'
    assert state['upstream_in_recovery'] is None


def test_password_in_primary_conninfo_never_reaches_the_result(ansible, servers, primary):
    server = servers.new('info_secret').init_standby_of(primary)
    conninfo = ("host=localhost port=%d user=%s password=%s sslmode=verify-full sslrootcert=%s "
                "application_name=info_secret" % (primary.port, REPLICATION_USER, REPLICATION_PASSWORD,
                                                  server.ca.ca_cert))
    server.execute('ALTER SYSTEM SET primary_conninfo = %s', (conninfo,))
    server.execute('SELECT pg_reload_conf()')
    # The WAL receiver restarts with the new conninfo (no passfile): streaming proves the password is used.
    assert server.wait_for("SELECT (SELECT status FROM pg_stat_wal_receiver WHERE conninfo NOT LIKE '%passfile%')",
                           'streaming') == 'streaming'

    result = ansible.run('pg_replication_info', dict(server.login(), probe_upstream=True))
    state = result['state']
    assert state['upstream_probe']['reachable'] is True  # the probe connected with that password
    assert state['upstream_probe']['in_recovery'] is False
    assert 'password=********' in state['upstream']['conninfo']
    assert REPLICATION_PASSWORD not in json.dumps(result)
    assert REPLICATION_PASSWORD not in result['_stdout']


def test_wrong_password_fails_clearly(ansible, primary):
    secret = 'Not-The-Password-77'
    result = ansible.run('pg_replication_info', dict(login_host='localhost', login_port=primary.port,
                                                     login_password=secret, ssl_mode='require'),
                         expect_failure=True)
    assert 'cannot connect to postgres@localhost:%d' % primary.port in result['msg']
    assert 'password authentication failed' in result['msg']
    assert secret not in json.dumps(result)


def test_unreachable_server_fails_clearly(ansible):
    port = free_port()
    result = ansible.run('pg_replication_info', dict(login_host='127.0.0.1', login_port=port, connect_timeout=2),
                         expect_failure=True)
    assert 'cannot connect to postgres@127.0.0.1:%d' % port in result['msg']
    assert 'Connection refused' in result['msg']

"""What a DBA checks after `site.yml`: replication, endpoints, TLS, access rules, SSH,
the VIP and the health agent, on the real containers."""

import json
import re
import uuid

import psycopg2
import pytest

from labcheck import wait_until

AGENT_PORT = 8008
# What PostgreSQL says when pg_hba.conf has no line for a connection or a reject line.
HBA_REFUSED = 'no pg_hba.conf entry|pg_hba.conf rejects connection'


def app_name(host):
    return host.replace('-', '_')


def test_row_written_through_the_vip_reaches_every_node(lab):
    marker = str(uuid.uuid4())
    conn = lab.connect(lab.vip(), 5000)
    with conn.cursor() as cur:
        cur.execute('CREATE TABLE IF NOT EXISTS verify_rows (marker text PRIMARY KEY)')
        cur.execute('INSERT INTO verify_rows VALUES (%s)', (marker,))
    conn.close()
    query = "SELECT count(*) FROM verify_rows WHERE marker = '%s'" % marker
    for node in lab.database_hosts:
        seen = wait_until(lambda node=node: lab.sql(node, query, lab.app['database']) == '1', timeout=10)
        assert seen, 'row written through VIP:5000 did not reach %s' % node


def test_write_port_reaches_only_the_primary(lab):
    for _attempt in range(3):
        conn = lab.connect(lab.vip(), 5000)
        with conn.cursor() as cur:
            cur.execute('SELECT pg_is_in_recovery(), host(inet_server_addr())')
            in_recovery, address = cur.fetchone()
        conn.close()
        assert in_recovery is False
        assert address == lab.address[lab.primary]


@pytest.mark.parametrize('endpoint', ['dc1-vip', 'dc2-lb1'])
def test_read_port_answers_from_standbys(lab, endpoint):
    address = lab.vip() if endpoint == 'dc1-vip' else lab.address[endpoint]
    servers = set()
    for _attempt in range(6):
        conn = lab.connect(address, 5001)
        with conn.cursor() as cur:
            cur.execute('SELECT pg_is_in_recovery(), host(inet_server_addr())')
            in_recovery, server = cur.fetchone()
        conn.close()
        assert in_recovery is True, 'read port of %s reached the primary %s' % (endpoint, server)
        servers.add(server)
    assert lab.address[lab.primary] not in servers


def test_each_standby_streams_from_its_upstream(lab):
    replicas = lab.sql(lab.primary, "SELECT application_name || ':' || state || ':' || sync_state "
                                    "FROM pg_stat_replication ORDER BY 1")
    assert replicas.splitlines() == ['dc1_pg2:streaming:sync', 'dc2_pg1:streaming:async']
    cascade = lab.sql('dc2-pg1', "SELECT application_name || ':' || state FROM pg_stat_replication")
    assert cascade.splitlines() == ['dc2_pg2:streaming']
    for standby, upstream in (('dc1-pg2', 'dc1-pg1'), ('dc2-pg1', 'dc1-pg1'), ('dc2-pg2', 'dc2-pg1')):
        row = lab.sql(standby, "SELECT status || ':' || sender_host || ':' || coalesce(slot_name, '') "
                               "FROM pg_stat_wal_receiver")
        assert row == 'streaming:%s:%s' % (lab.address[upstream], app_name(standby)), standby


def test_tls_verify_full_accepts_the_node_name_and_refuses_a_wrong_one(lab):
    address = lab.address[lab.primary]
    conn = lab.connect(address, 5432)
    with conn.cursor() as cur:
        cur.execute('SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()')
        ssl, version = cur.fetchone()
    conn.close()
    assert ssl is True and version in ('TLSv1.2', 'TLSv1.3')
    with pytest.raises(psycopg2.OperationalError, match='does not match'):
        lab.connect('wrong-name.invalid', 5432, hostaddr=address)


def test_plain_tcp_and_a_wrong_password_are_refused(lab):
    address = lab.address[lab.primary]
    with pytest.raises(psycopg2.OperationalError, match=HBA_REFUSED):
        lab.connect(address, 5432, sslmode='disable')
    with pytest.raises(psycopg2.OperationalError, match='password authentication failed'):
        lab.connect(address, 5432, password='not-the-password')


def test_a_host_outside_the_allowed_ones_is_refused(lab):
    # dc2-pg2 is a database host of datacenter 2: it may replicate from dc2-pg1, never
    # open an application session on the primary.
    target = lab.address[lab.primary]
    cmd = lab.host('dc2-pg2').run(
        "PGPASSWORD='%s' psql 'host=%s port=5432 user=%s dbname=%s sslmode=require connect_timeout=5' -XAtc 'SELECT 1'"
        % (lab.app['password'], target, lab.app['name'], lab.app['database']))
    assert cmd.rc != 0
    # Refused by pg_hba.conf, or dropped by the firewall before PostgreSQL sees it.
    assert re.search(HBA_REFUSED + '|timeout expired', cmd.stderr), cmd.stderr


def test_the_replication_role_cannot_open_a_database(lab):
    cmd = lab.host('dc1-pg2').run(
        "sudo -u postgres psql 'host=%s port=5432 user=%s dbname=postgres sslmode=verify-full "
        "sslrootcert=/etc/postgresql/tls/ca.crt passfile=%s connect_timeout=5' -XAtc 'SELECT 1'"
        % (lab.address[lab.primary], lab.vars.get('pgha_pg_replication_user', 'replicator'),
           '/var/lib/postgresql/.pgha_replication.pgpass'))
    assert cmd.rc != 0
    assert re.search(HBA_REFUSED, cmd.stderr), cmd.stderr


def test_ssh_refuses_root_and_passwords_and_admits_the_admin_key(lab):
    address = lab.address['dc1-pg1']
    ok = lab.ssh('remote', address, '-i', lab.key)
    assert ok.returncode == 0, ok.stderr
    root = lab.ssh('root', address, '-i', lab.key)
    assert root.returncode != 0 and 'Permission denied' in root.stderr
    password = lab.ssh('remote', address, '-o', 'PubkeyAuthentication=no',
                       '-o', 'PreferredAuthentications=password,keyboard-interactive')
    assert password.returncode != 0 and 'Permission denied' in password.stderr
    config = lab.host('dc1-pg1').run('sudo sshd -T')
    assert 'permitrootlogin no' in config.stdout and 'passwordauthentication no' in config.stdout
    assert int([line.split()[1] for line in config.stdout.splitlines() if line.startswith('maxauthtries ')][0]) <= 3


def _curl_code(lab, source, address, path):
    cmd = lab.host(source).run("curl -s -o /dev/null -w '%%{http_code}' --max-time 3 'http://%s:%d%s'"
                               % (address, AGENT_PORT, path))
    return cmd.stdout.strip()


def test_health_agent_answers_with_the_right_codes(lab):
    expected_primary = {'/primary': '200', '/replica': '503', '/health': '200'}
    expected_standby = {'/primary': '503', '/replica': '200', '/replica?lag=104857600': '200', '/health': '200'}
    for node in lab.database_hosts:
        expected = expected_primary if node == lab.primary else expected_standby
        for path, code in expected.items():
            assert _curl_code(lab, 'dc1-lb1', lab.address[node], path) == code, (node, path)
    status = lab.host('dc1-lb1').run('curl -s --max-time 3 http://%s:%d/status' % (lab.address[lab.primary], AGENT_PORT))
    state = json.loads(status.stdout)
    assert state['role'] == 'primary'
    for secret in (lab.vars['pgha_monitor_password'], lab.vars['pgha_replication_password']):
        assert secret not in status.stdout


def test_health_agent_is_closed_to_other_hosts(lab):
    # dc2-pg2 is not an HAProxy host: the firewall drops it.
    cmd = lab.host('dc2-pg2').run("curl -s -o /dev/null -w '%%{http_code}' --max-time 3 http://%s:%d/health"
                                  % (lab.address[lab.primary], AGENT_PORT))
    assert cmd.stdout.strip() in ('000', ''), cmd.stdout


def _vip_holder(lab):
    vip = lab.vip()
    for lb in lab.groups['pgha_keepalived']:
        if lab.host(lb).run('ip -4 -o addr show').stdout.find(' %s/' % vip) >= 0:
            return lb
    return None


def test_vip_moves_when_haproxy_stops_and_clients_reconnect(lab):
    holder = wait_until(lambda: _vip_holder(lab), timeout=10)
    assert holder, 'nobody holds the VIP'
    other = next(lb for lb in lab.groups['pgha_keepalived'] if lb != holder)
    lab.host(holder).run('sudo systemctl stop haproxy')
    try:
        moved = wait_until(lambda: _vip_holder(lab) == other, timeout=20)
        assert moved, 'VIP did not move from %s to %s' % (holder, other)

        def can_write():
            try:
                conn = lab.connect(lab.vip(), 5000)
            except psycopg2.OperationalError:
                return False
            with conn.cursor() as cur:
                cur.execute('SELECT NOT pg_is_in_recovery()')
                ok = cur.fetchone()[0]
            conn.close()
            return ok
        assert wait_until(can_write, timeout=15), 'clients could not reconnect through the VIP'
    finally:
        lab.host(holder).run('sudo systemctl start haproxy')
    assert wait_until(lambda: _vip_holder(lab) is not None, timeout=20)

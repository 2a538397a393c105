"""The same deployment on Debian 13 with PostgreSQL 17: replication, endpoints, TLS."""

import uuid

import psycopg2
import pytest

from labcheck import wait_until

LB = 't1-lb1'


def test_postgresql_is_the_debian_13_major(lab):
    for node in lab.database_hosts:
        assert lab.sql(node, 'SHOW server_version_num').startswith('17'), node


def test_standbys_stream_with_the_chosen_sync_state(lab):
    replicas = lab.sql(lab.primary, "SELECT application_name || ':' || state || ':' || sync_state "
                                    "FROM pg_stat_replication ORDER BY 1")
    # ANY 1 (t1_pg2) makes the datacenter-1 standby a quorum standby; datacenter 2 stays async.
    assert replicas.splitlines() == ['t1_pg2:streaming:quorum', 't2_pg1:streaming:async']


def test_row_written_through_haproxy_reaches_every_node(lab):
    marker = str(uuid.uuid4())
    conn = lab.connect(lab.address[LB], 5000)
    with conn.cursor() as cur:
        cur.execute('CREATE TABLE IF NOT EXISTS verify_rows (marker text PRIMARY KEY)')
        cur.execute('INSERT INTO verify_rows VALUES (%s)', (marker,))
        cur.execute('SELECT pg_is_in_recovery()')
        assert cur.fetchone()[0] is False
    conn.close()
    query = "SELECT count(*) FROM verify_rows WHERE marker = '%s'" % marker
    for node in lab.database_hosts:
        assert wait_until(lambda node=node: lab.sql(node, query, lab.app['database']) == '1', timeout=10), node


def test_read_port_answers_from_a_standby(lab):
    conn = lab.connect(lab.address[LB], 5001)
    with conn.cursor() as cur:
        cur.execute('SELECT pg_is_in_recovery()')
        assert cur.fetchone()[0] is True
    conn.close()


def test_tls_is_required_and_verified(lab):
    address = lab.address[lab.primary]
    lab.connect(address, 5432).close()
    with pytest.raises(psycopg2.OperationalError, match='does not match'):
        lab.connect('wrong-name.invalid', 5432, hostaddr=address)
    with pytest.raises(psycopg2.OperationalError, match='no pg_hba.conf entry|pg_hba.conf rejects connection'):
        lab.connect(address, 5432, sslmode='disable')

"""The harness itself: a primary starts with TLS and refuses plain TCP."""

import psycopg2
import pytest

from pgharness import REPLICATION_PASSWORD, REPLICATION_USER


def test_primary_accepts_tls_and_rejects_plain_tcp(servers, ca):
    primary = servers.primary('harness')
    assert primary.scalar('SELECT pg_is_in_recovery()') is False
    conn = psycopg2.connect(host='localhost', port=primary.port, user=REPLICATION_USER, dbname='postgres',
                            password=REPLICATION_PASSWORD, sslmode='verify-full', sslrootcert=ca.ca_cert)
    with conn.cursor() as cursor:
        cursor.execute('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')
        assert cursor.fetchone()[0] is True
    conn.close()
    with pytest.raises(psycopg2.OperationalError, match='no encryption|rejects'):
        psycopg2.connect(host='127.0.0.1', port=primary.port, user=REPLICATION_USER, dbname='postgres',
                         password=REPLICATION_PASSWORD, sslmode='disable')

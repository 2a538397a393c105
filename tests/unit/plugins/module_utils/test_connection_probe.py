# -*- coding: utf-8 -*-
"""plugins/module_utils/connection.py: the TCP check in front of the replication probe,
against real sockets on the loopback (the real servers are in tests/integration)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket
import threading

import pytest

from ansible_collections.pgha.multidc.plugins.module_utils import connection
from ansible_collections.pgha.multidc.plugins.module_utils.connection import probe_replication_server, tcp_probe


def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def hangup_server():
    """Accepts TCP connections and closes them at once: the port is open, no PostgreSQL."""
    server = socket.socket()
    server.bind(('127.0.0.1', 0))
    server.listen(8)
    accepted = []

    def serve():
        while True:
            try:
                client, _addr = server.accept()
            except OSError:
                return
            accepted.append(client)
            client.close()
    thread = threading.Thread(target=serve)
    thread.daemon = True
    thread.start()
    yield server.getsockname()[1], accepted
    server.close()


def login(port):
    return {'host': '127.0.0.1', 'port': port, 'user': 'replicator', 'sslmode': 'disable', 'connect_timeout': 2}


def test_tcp_probe_tells_open_from_refused(hangup_server):
    port, _accepted = hangup_server
    assert tcp_probe('127.0.0.1', port, 1.0) == ('open', None)
    refused = closed_port()
    assert tcp_probe('127.0.0.1', refused, 1.0) == ('refused', 'connection refused on 127.0.0.1:%d' % refused)


def test_tcp_probe_reports_a_timeout(monkeypatch):
    def no_answer(address, timeout):
        raise socket.timeout('timed out')
    monkeypatch.setattr(connection.socket, 'create_connection', no_answer)
    assert tcp_probe('192.0.2.1', 5432, 0.5) == ('timeout', 'no answer on 192.0.2.1:5432 within 0.5 s')


def test_a_closed_port_never_reaches_libpq(monkeypatch):
    def libpq_called(*_args, **_kwargs):
        raise AssertionError('libpq must not be tried when the TCP check failed')
    pytest.importorskip('psycopg2')
    monkeypatch.setattr(connection.psycopg2, 'connect', libpq_called)
    port = closed_port()
    result = probe_replication_server(login(port), tcp_timeout=0.5)
    assert result['answered'] is False and result['reachable'] is False and result['in_recovery'] is None
    assert result['error'] == ('cannot connect to replicator@127.0.0.1:%d: connection refused on 127.0.0.1:%d'
                               % (port, port))


def test_an_open_port_goes_on_to_libpq(hangup_server):
    pytest.importorskip('psycopg2')
    port, accepted = hangup_server
    result = probe_replication_server(login(port), tcp_timeout=0.5)
    # The TCP check and libpq each opened a connection; the server hung up on libpq.
    assert len(accepted) == 2
    assert result['reachable'] is False
    assert result['error'].startswith('cannot connect to replicator@127.0.0.1:%d: ' % port)


def test_without_tcp_timeout_only_libpq_connects(hangup_server):
    pytest.importorskip('psycopg2')
    port, accepted = hangup_server
    result = probe_replication_server(login(port))
    assert len(accepted) == 1 and result['reachable'] is False


@pytest.mark.parametrize('params, target', [
    ({'host': 'db1', 'port': 5433}, ('db1', 5433)),
    ({'host': 'db1.example', 'hostaddr': '10.0.0.5'}, ('10.0.0.5', 5432)),
    ({'host': '/var/run/postgresql', 'port': 5432}, None),
    ({'host': 'db1,db2', 'port': 5432}, None),
    ({'host': 'db1', 'port': '5432,5433'}, None),
    ({}, None),
])
def test_tcp_target(params, target):
    assert connection._tcp_target(params) == target

# -*- coding: utf-8 -*-
"""plugins/module_utils/haproxy_stat.py on the "show stat" answer of the lab's HAProxy 2.6
(fixtures/haproxy-2.6-show-stat.csv: dc1-lb1 with dc1-pg1 primary, dc1-pg2 its standby);
status.yml reads a real HAProxy in the Molecule lab."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import socket
import threading

import pytest

from ansible_collections.pgha.multidc.plugins.module_utils.haproxy_stat import (
    HaproxyStatError, backends_view, parse_show_stat, read_show_stat)

FIXTURE = os.path.join(os.path.dirname(__file__), 'fixtures', 'haproxy-2.6-show-stat.csv')


def show_stat():
    with open(FIXTURE) as handle:
        return handle.read()


def test_the_read_write_and_read_only_proxies():
    view = backends_view(parse_show_stat(show_stat()), only=['pgha_rw', 'pgha_ro'])
    assert sorted(view) == ['pgha_ro', 'pgha_rw']
    rw = view['pgha_rw']
    assert rw['status'] == 'UP'
    assert [(s['name'], s['status'], s['check_status'], s['backup']) for s in rw['servers']] == [
        ('dc1-pg1', 'UP', 'L7OK', False), ('dc1-pg2', 'DOWN', 'L7STS', False),
        ('dc2-pg1', 'DOWN', 'L7STS', False), ('dc2-pg2', 'DOWN', 'L7STS', False)]
    assert all(s['since_s'] == 59 for s in rw['servers'])
    ro = dict((s['name'], s) for s in view['pgha_ro']['servers'])
    assert ro['dc1-pg2']['status'] == 'UP' and not ro['dc1-pg2']['backup']
    assert ro['dc1-pg1_primary']['backup'] and ro['dc1-pg1_primary']['status'] == 'UP'


def test_every_proxy_with_servers_without_a_filter():
    # The stats page is a frontend only (its line in the fixture): no backend to show.
    assert sorted(backends_view(parse_show_stat(show_stat()))) == ['pgha_ro', 'pgha_rw']


def test_an_answer_that_is_not_show_stat_is_refused():
    with pytest.raises(HaproxyStatError, match='not the answer of "show stat"'):
        parse_show_stat('Unknown command. Please enter one of the following commands only :\n')


@pytest.fixture
def stats_socket(tmp_path):
    """A Unix socket that answers one "show stat" with the fixture, as HAProxy does."""
    path = str(tmp_path / 'admin.sock')
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    asked = []

    def serve():
        conn, _addr = server.accept()
        asked.append(conn.recv(1024))
        conn.sendall(show_stat().encode('utf-8'))
        conn.close()
    thread = threading.Thread(target=serve)
    thread.daemon = True
    thread.start()
    yield path, asked
    server.close()


def test_read_show_stat_over_the_socket(stats_socket):
    path, asked = stats_socket
    assert read_show_stat(path) == show_stat()
    assert asked == [b'show stat\n']


def test_a_missing_socket_is_named(tmp_path):
    with pytest.raises(HaproxyStatError, match='cannot read the HAProxy stats socket .*missing.sock'):
        read_show_stat(str(tmp_path / 'missing.sock'))

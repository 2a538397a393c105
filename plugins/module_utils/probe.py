# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The network witness of the operations (module pg_probe; its action plugin runs it in
the controller's own process on the control node): TCP probes of a server's PostgreSQL
and SSH ports, then what the server says of itself to a client, for one server or
several at the same time."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading

from ansible_collections.pgha.multidc.plugins.module_utils.connection import (
    HAS_PSYCOPG2, SSL_MODES, PostgresError, nobody_answered, open_connection, tcp_probe)
from ansible_collections.pgha.multidc.plugins.module_utils.node_state import read_witness_state

# The options of pg_probe (its DOCUMENTATION describes them).
ARGUMENT_SPEC = dict(
    host=dict(type='str'),
    port=dict(type='int', default=5432),
    targets=dict(type='list', elements='dict', options=dict(
        name=dict(type='str', required=True),
        host=dict(type='str', required=True),
        port=dict(type='int', default=5432),
        ssh_port=dict(type='int'),
    )),
    user=dict(type='str', default='pgha_monitor'),
    password=dict(type='str', no_log=True),
    passfile=dict(type='path'),
    dbname=dict(type='str', default='postgres'),
    sslmode=dict(type='str', default='verify-full', choices=SSL_MODES),
    sslrootcert=dict(type='path'),
    connect_timeout=dict(type='int', default=3),
    tcp_timeout=dict(type='float', default=2),
    ssh_port=dict(type='int'),
)
REQUIRED_ONE_OF = [('host', 'targets')]
MUTUALLY_EXCLUSIVE = [('host', 'targets')]


def in_parallel(function, keys):
    """function(key) for every key, all at the same time: {key: result}."""
    answers = {}

    def run(key):
        answers[key] = function(key)
    threads = [threading.Thread(target=run, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def tcp_probe_ports(host, ports, timeout):
    """tcp_probe() of each port at the same time: {port: (state, error)}."""
    return in_parallel(lambda port: tcp_probe(host, port, timeout), ports)


def empty_answer():
    return {'tcp': None, 'answered': False, 'reachable': False, 'in_recovery': None, 'read_only': None,
            'timeline': None, 'wal_position': None, 'system_identifier': None, 'error': None, 'ssh': None,
            'ssh_error': None}


def probe_server(p, host, port, ssh_port):
    """The answer of one server (see RETURN) to the TCP probes and the login of ``p``."""
    result = empty_answer()
    ports = [port] + ([ssh_port] if ssh_port and ssh_port != port else [])
    answers = tcp_probe_ports(host, ports, p['tcp_timeout'])
    result['tcp'], result['error'] = answers[port]
    if ssh_port:
        result['ssh'], result['ssh_error'] = answers.get(ssh_port, answers[port])
    if result['tcp'] != 'open':
        return result
    if not HAS_PSYCOPG2:
        # The port answered: something is there; without a driver we cannot say what.
        result['answered'] = True
        result['error'] = 'TCP port open, but psycopg2 is missing on the control node: cannot tell the role'
        return result
    params = dict(host=host, port=port, user=p['user'], dbname=p['dbname'], sslmode=p['sslmode'],
                  connect_timeout=max(p['connect_timeout'], 2))
    for key in ('password', 'passfile', 'sslrootcert'):
        if p[key]:
            params[key] = p[key]
    try:
        conn = open_connection(params, application_name='pgha.multidc-witness')
    except PostgresError as error:
        result['error'] = str(error)
        result['answered'] = not nobody_answered(str(error))
        return result
    result['answered'] = result['reachable'] = True
    try:
        result.update(read_witness_state(conn))
    except Exception as error:  # pylint: disable=broad-except  # the answer is "answered, unknown role"
        result['error'] = 'connected but could not read the state: %s' % str(error).strip()
    finally:
        conn.close()
    return result


def probe_targets(p, targets):
    """probe_server() of every target at the same time: {name: answer}."""
    by_name = dict((target['name'], target) for target in targets)
    return in_parallel(lambda name: probe_server(p, by_name[name]['host'], by_name[name]['port'],
                                                 by_name[name]['ssh_port']), list(by_name))


def probe(p):
    """The result of pg_probe (see its RETURN) for the validated options ``p``."""
    result = dict(empty_answer(), changed=False, targets={})
    if p['targets'] is not None:
        result['targets'] = probe_targets(p, p['targets'])
    else:
        result.update(probe_server(p, p['host'], p['port'], p['ssh_port']))
    return result

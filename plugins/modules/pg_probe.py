#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: pg_probe
short_description: Ask a PostgreSQL server over the network whether it answers, and as what
version_added: 0.1.0
description:
  - Opens a TCP connection to O(host):O(port) (bounded by O(tcp_timeout)), then a libpq
    connection (normally over TLS, bounded by O(connect_timeout)) and reads whether the
    server is in recovery, its timeline, its WAL position and whether it accepts writes.
  - Meant to run on the control node (delegated to localhost) as the independent
    witness of the failover playbooks' split brain guard, with the monitoring role of
    the collection (C(pgha_monitor), allowed from C(pgha_admin_networks)).
  - Never fails because the server does not answer, that is the answer. RV(answered) is
    true as soon as a server responded (even only to refuse the login); then the guard
    must not take it for dead.
  - With O(targets) instead of O(host), probes several servers at the same time in one
    call (one timeout for all of them, one module run on the control node instead of one
    per host) and returns each answer in RV(targets).
author:
  - pgha.multidc contributors (!UNKNOWN)
options:
  host:
    description: Host name or address of the server. One of O(host) and O(targets) is required.
    type: str
  port:
    description: Port.
    type: int
    default: 5432
  targets:
    description:
      - Servers to probe at the same time, instead of O(host), O(port) and O(ssh_port);
        the other options apply to all of them.
    type: list
    elements: dict
    suboptions:
      name:
        description: Key of its answer in RV(targets) (an inventory host name).
        type: str
        required: true
      host:
        description: Host name or address.
        type: str
        required: true
      port:
        description: Port.
        type: int
        default: 5432
      ssh_port:
        description: Also probe this TCP port, as O(ssh_port).
        type: int
  user:
    description: Role to log in as (C(pg_monitor) membership is enough).
    type: str
    default: pgha_monitor
  password:
    description: Its password.
    type: str
  passfile:
    description: A libpq password file instead of O(password).
    type: path
  dbname:
    description: Database to connect to.
    type: str
    default: postgres
  sslmode:
    description: libpq C(sslmode).
    type: str
    default: verify-full
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  sslrootcert:
    description: CA certificate that signed the server's certificate.
    type: path
  connect_timeout:
    description: Seconds libpq may take to connect (at least 2, libpq's minimum).
    type: int
    default: 3
  tcp_timeout:
    description: Seconds the TCP probe may take.
    type: float
    default: 2
  ssh_port:
    description:
      - Also probe this TCP port of O(host) (its SSH port), at the same time as the
        PostgreSQL port, and report it in RV(ssh). The failover playbooks learn in one
        call, bounded by one O(tcp_timeout), whether a host is worth an SSH connection.
    type: int
extends_documentation_fragment:
  - pgha.multidc.read_only
attributes:
  platform:
    support: full
    platforms: posix
    description: Runs where the server is reachable over the network, usually the control node.
requirements:
  - psycopg2 where the module runs (the control node's Python when delegated to localhost)
seealso:
  - module: pgha.multidc.pg_replication_info
'''

EXAMPLES = r'''
- name: Does the old primary still answer, and as what?
  pgha.multidc.pg_probe:
    host: "{{ hostvars[old_primary].ansible_host }}"
    password: "{{ pgha_monitor_password }}"
    sslrootcert: "{{ pgha_pki_dir }}/ca.crt"
  delegate_to: localhost
  register: witness

- name: Ask every database host at once
  pgha.multidc.pg_probe:
    targets:
      - {name: dc1-pg1, host: 192.0.2.11, ssh_port: 22}
      - {name: dc1-pg2, host: 192.0.2.12, ssh_port: 22}
    password: "{{ pgha_monitor_password }}"
    sslrootcert: "{{ pgha_pki_dir }}/ca.crt"
  delegate_to: localhost
  run_once: true
  register: witnesses   # witnesses.targets['dc1-pg1'].answered, ...
'''

RETURN = r'''
tcp:
  description: V(open), V(refused), V(timeout), V(unreachable) or V(error) (the TCP probe).
  returned: always
  type: str
  sample: refused
answered:
  description: Whether a server responded at all (TCP open and a PostgreSQL reply, even a refusal).
  returned: always
  type: bool
  sample: false
reachable:
  description: Whether the login succeeded.
  returned: always
  type: bool
  sample: false
in_recovery:
  description: C(pg_is_in_recovery()), null when unknown.
  returned: always
  type: bool
  sample: null
read_only:
  description: C(default_transaction_read_only), null when unknown.
  returned: always
  type: bool
  sample: null
timeline:
  description: Timeline (a primary's current one, a standby's last checkpoint's).
  returned: always
  type: int
  sample: 1
wal_position:
  description: C(pg_current_wal_lsn()) on a primary, the received or replayed position on a standby.
  returned: always
  type: str
  sample: 0/3018198
system_identifier:
  description: System identifier.
  returned: always
  type: str
  sample: "7310402342233112345"
ssh:
  description: The probe of O(ssh_port), as RV(tcp); null without O(ssh_port).
  returned: always
  type: str
  sample: open
ssh_error:
  description: Why O(ssh_port) did not accept the connection, or null.
  returned: always
  type: str
  sample: null
error:
  description: Why it did not answer or could not be read (no password in it).
  returned: always
  type: str
  sample: "connection refused"
targets:
  description:
    - With O(targets), the answer of each target by its name, with the keys above. The
      keys above are then null at the top level.
  returned: always
  type: dict
  sample: {"dc1-pg1": {"tcp": "open", "answered": true, "reachable": true, "in_recovery": false}}
'''

import errno
import socket
import threading

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.multidc.plugins.module_utils.connection import (
    HAS_PSYCOPG2, SSL_MODES, PostgresError, nobody_answered, open_connection)
from ansible_collections.pgha.multidc.plugins.module_utils.node_state import read_witness_state


def tcp_probe(host, port, timeout):
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.timeout:
        return 'timeout', 'no answer on %s:%s within %s s' % (host, port, timeout)
    except socket.gaierror as error:
        return 'unreachable', 'cannot resolve %s: %s' % (host, error)
    except OSError as error:
        if error.errno == errno.ECONNREFUSED:
            return 'refused', 'connection refused on %s:%s' % (host, port)
        if error.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return 'unreachable', '%s:%s: %s' % (host, port, error.strerror)
        return 'error', '%s:%s: %s' % (host, port, error)
    sock.close()
    return 'open', None


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


def main():
    module = AnsibleModule(
        argument_spec=dict(
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
        ),
        required_one_of=[('host', 'targets')],
        mutually_exclusive=[('host', 'targets')],
        supports_check_mode=True,
    )
    p = module.params
    result = dict(empty_answer(), changed=False, targets={})
    if p['targets'] is not None:
        result['targets'] = probe_targets(p, p['targets'])
    else:
        result.update(probe_server(p, p['host'], p['port'], p['ssh_port']))
    module.exit_json(**result)


if __name__ == '__main__':
    main()

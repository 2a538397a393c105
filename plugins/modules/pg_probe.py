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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.multidc.plugins.module_utils.probe import (
    ARGUMENT_SPEC, MUTUALLY_EXCLUSIVE, REQUIRED_ONE_OF, probe)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, required_one_of=REQUIRED_ONE_OF,
                           mutually_exclusive=MUTUALLY_EXCLUSIVE, supports_check_mode=True)
    module.exit_json(**probe(module.params))


if __name__ == '__main__':
    main()

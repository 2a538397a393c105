#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: pg_standby_follow
short_description: Make a PostgreSQL standby follow another upstream, without a new copy
version_added: 0.1.0
description:
  - Points an existing standby (running, or a stopped data directory) at a new upstream. It
    writes C(standby.signal) and the recovery settings C(primary_conninfo),
    C(primary_slot_name), C(restore_command) and C(recovery_target_timeline) in
    C(postgresql.auto.conf), the way M(pgha.multidc.pg_basebackup_standby) writes them.
  - This is the repointing step of a failover or a switchover. A running standby reloads
    the settings (C(primary_conninfo) and C(primary_slot_name) are reloadable since
    PostgreSQL 13; its WAL receiver then reconnects) and the module waits until it
    streams from the new upstream, on the upstream's timeline or a newer one. A stopped
    data directory is only configured; start the server afterwards and run the module
    again to wait for streaming. A cleanly stopped former primary becomes a standby this
    way, without pg_rewind, when the new primary received its shutdown checkpoint.
  - B(Before anything changes) the new upstream is asked, over a replication connection
    made with the same parameters the standby will use, for its system identifier, its
    timeline and the history of that timeline. The module refuses when the upstream
    cannot be reached (pg_hba.conf, TLS, password), belongs to another cluster, or when
    the standby cannot follow it because it holds WAL beyond the point where the
    upstream's timeline forked off its own (a standby that replayed more than the new
    primary had when it was promoted). Such a standby needs pg_rewind or a new copy;
    RV(fork) gives the numbers.
  - The position compared with the fork point is, on a running standby, what it replayed
    once replay waits for WAL (waiting up to O(settle_timeout)); on a stopped data
    directory, the end of the valid WAL on disk (C(pg_waldump)), which the server would
    replay when started.
  - Refuses to touch a server that runs as a primary.
author:
  - pgha.multidc contributors (!UNKNOWN)
options:
  data_directory:
    description: Data directory of the standby.
    type: path
    required: true
  application_name:
    description:
      - C(application_name) in C(primary_conninfo) (what C(synchronous_standby_names) matches).
      - Defaults to the short host name.
    type: str
  slot:
    description:
      - C(primary_slot_name), the physical slot on the upstream. Create it there first
        (M(pgha.multidc.pg_replication_slot)); the WAL receiver fails while it is missing.
    type: str
  restore_command:
    description: C(restore_command); omitted means none (the setting is removed).
    type: str
  recovery_target_timeline:
    description:
      - C(recovery_target_timeline). V(latest) lets the standby move to the upstream's newer
        timeline. Changing it needs a restart, which the module reports in RV(pending_restart)
        and leaves to the caller.
    type: str
    default: latest
  check_timeline:
    description:
      - Ask the upstream for its timeline history and refuse when the standby cannot follow
        it (see the description). V(false) skips the check and the upstream probe.
    type: bool
    default: true
  force:
    description:
      - Repoint even when the check cannot tell whether the standby can follow (its timeline
        or position is unknown). A standby known to be ahead of the fork point is always refused.
    type: bool
    default: false
  wait:
    description: On a running standby, wait until it streams from the new upstream.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for streaming.
    type: int
    default: 60
  settle_timeout:
    description: Seconds to wait for replay to reach the received WAL before the position is compared.
    type: int
    default: 10
  pg_bindir:
    description:
      - Directory of C(pg_controldata) and C(pg_waldump), needed for a stopped data directory.
      - Defaults to the one of the data directory's major version (C(/usr/lib/postgresql/<major>/bin)).
    type: path
extends_documentation_fragment:
  - pgha.multidc.connection
  - pgha.multidc.upstream
attributes:
  check_mode:
    support: full
    description: Runs every check (including the upstream probe and the fork check) and predicts the change; writes nothing, reloads nothing, does not wait.
  diff_mode:
    support: full
    description: Shows the recovery settings and C(standby.signal) before and after (passwords redacted).
  platform:
    support: full
    platforms: posix
    description: Runs on the standby host, as the owner of the data directory.
notes:
  - Run it as the operating system user that owns the data directory (usually C(postgres)).
  - The upstream must let this host replicate (a C(replication) line in its C(pg_hba.conf));
    re-render it before repointing.
  - The connection options (O(login_unix_socket) and so on) reach the local server when it runs.
seealso:
  - module: pgha.multidc.pg_basebackup_standby
  - module: pgha.multidc.pg_promote
  - module: pgha.multidc.pg_replication_slot
'''

EXAMPLES = r'''
- name: Repoint the datacenter-2 leader to the new primary after a failover
  pgha.multidc.pg_standby_follow:
    data_directory: /var/lib/postgresql/15/main
    upstream:
      host: 172.30.1.12
      user: replicator
      passfile: /var/lib/postgresql/.pgha_replication.pgpass
      sslmode: verify-full
      sslrootcert: /etc/postgresql/tls/ca.crt
    application_name: dc2_pg1
    slot: dc2_pg1
    login_unix_socket: /var/run/postgresql
  become: true
  become_user: postgres

- name: Turn the cleanly stopped old primary into a standby of the new one (switchover)
  pgha.multidc.pg_standby_follow:
    data_directory: /var/lib/postgresql/15/main
    upstream: "{{ new_primary_upstream }}"
    application_name: dc1_pg1
    slot: dc1_pg1
  become: true
  become_user: postgres
'''

RETURN = r'''
running:
  description: Whether a server ran on the data directory.
  returned: always
  type: bool
  sample: true
streaming:
  description: Whether the standby streams from the new upstream when the module returns.
  returned: always
  type: bool
  sample: true
timeline:
  description: Timeline of the WAL the standby receives (running), else the upstream's timeline.
  returned: always
  type: int
  sample: 2
fork:
  description: The fork check.
  returned: when O(check_timeline=true) and the upstream answered
  type: dict
  contains:
    can_follow:
      description: True, False, or null when it cannot be told.
      type: bool
    reason:
      description: Why, in words.
      type: str
    standby_timeline:
      description: Newest timeline the standby knows.
      type: int
    standby_position:
      description: Position compared with the fork point.
      type: str
    position_source:
      description: Where that position comes from.
      type: str
    upstream_timeline:
      description: The upstream's timeline.
      type: int
    upstream_position:
      description: The upstream's WAL position (IDENTIFY_SYSTEM).
      type: str
    switchpoint:
      description: Where the standby's timeline ends in the upstream's history (null on the same timeline).
      type: str
    ahead_bytes:
      description: WAL the standby holds beyond the switch point.
      type: int
  sample: {can_follow: true, reason: "timeline 2 forked off timeline 1 at 0/5000A0; the standby is at 0/5000A0 (not beyond it)",
           standby_timeline: 1, standby_position: 0/5000A0, upstream_timeline: 2, switchpoint: 0/5000A0, ahead_bytes: 0}
upstream_state:
  description: What the upstream answered (IDENTIFY_SYSTEM).
  returned: when the upstream was probed
  type: dict
  sample: {answered: true, reachable: true, in_recovery: false, system_identifier: "7310402342233112345",
           timeline: 2, wal_position: 0/5001B8, error: null}
settings_changed:
  description: Recovery settings (and C(standby.signal)) written, or that would be written in check mode.
  returned: always
  type: list
  elements: str
  sample: [primary_conninfo, primary_slot_name]
pending_restart:
  description: Settings that the reload could not apply (they need a restart).
  returned: always
  type: list
  elements: str
  sample: []
wal_receiver:
  description: C(pg_stat_wal_receiver) after the run (conninfo redacted); null when none runs.
  returned: always
  type: dict
  sample: {status: streaming, received_tli: 2, sender_host: 172.30.1.12, sender_port: 5432, slot_name: dc2_pg1}
wal_end:
  description: For a stopped data directory, where its valid WAL ends (see M(pgha.multidc.pg_datadir_state)).
  returned: when the server was stopped and the fork check ran
  type: dict
  sample: {lsn: 0/5000A0, exact: true, timeline: 1}
waited_seconds:
  description: Seconds spent waiting for streaming.
  returned: always
  type: float
  sample: 1.2
upstream:
  description: The O(upstream) option, password redacted.
  returned: always
  type: dict
  sample: {host: 172.30.1.12, port: 5432, user: replicator, sslmode: verify-full}
queries:
  description: Statements that changed something.
  returned: always
  type: list
  elements: str
  sample: ["SELECT pg_reload_conf()"]
'''

import os
import socket

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.multidc.plugins.module_utils.basebackup import find_bindir, server_running
from ansible_collections.pgha.multidc.plugins.module_utils.connection import (
    DatabaseError, connection_argument_spec, ensure_driver, libpq_params_from_module, open_connection,
    check_server_version, upstream_suboptions)
from ansible_collections.pgha.multidc.plugins.module_utils.datadir import DatadirError
from ansible_collections.pgha.multidc.plugins.module_utils.follow import FollowError, follow
from ansible_collections.pgha.multidc.plugins.module_utils.replication import slot_name_problem


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        data_directory=dict(type='path', required=True),
        upstream=dict(type='dict', required=True, options=upstream_suboptions()),
        application_name=dict(type='str'),
        slot=dict(type='str'),
        restore_command=dict(type='str'),
        recovery_target_timeline=dict(type='str', default='latest'),
        check_timeline=dict(type='bool', default=True),
        force=dict(type='bool', default=False),
        wait=dict(type='bool', default=True),
        timeout=dict(type='int', default=60),
        settle_timeout=dict(type='int', default=10),
        pg_bindir=dict(type='path'),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    ensure_driver(module)
    params = module.params
    result = {'changed': False}
    if params['slot'] and slot_name_problem(params['slot']):
        module.fail_json(msg=slot_name_problem(params['slot']), **result)
    if os.geteuid() == 0:
        module.fail_json(msg='run this module as the owner of the data directory (become_user: postgres), not root:'
                             ' the files it writes must stay readable by the server', **result)
    data_directory = params['data_directory']
    bindir = params['pg_bindir']
    if not bindir:
        try:
            with open(os.path.join(data_directory, 'PG_VERSION')) as handle:
                major = handle.read().strip()
            bindir = find_bindir(major)
        except Exception as error:  # pylint: disable=broad-except  # reported below when needed
            bindir = None
            module.warn('cannot find the PostgreSQL binaries of %s: %s' % (data_directory, error))

    opts = dict(params)
    opts['pg_bindir'] = bindir
    opts['application_name'] = params['application_name'] or socket.gethostname().split('.')[0]

    def connect():
        conn = open_connection(libpq_params_from_module(params))
        check_server_version(conn)
        return conn

    try:
        result = follow(opts, connect, lambda: server_running(data_directory, bindir), module.check_mode)
    except FollowError as error:
        details = dict(error.details)
        details['changed'] = error.changed
        module.fail_json(msg=str(error), **details)
    except DatadirError as error:
        module.fail_json(msg=str(error), changed=False)
    except DatabaseError as error:
        module.fail_json(msg='PostgreSQL error: %s' % str(error).strip(), changed=False)
    if not module._diff:
        result.pop('diff', None)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

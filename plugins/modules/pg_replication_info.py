#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: pg_replication_info
short_description: Report the replication state of a PostgreSQL node
version_added: 0.1.0
description:
  - Reads the replication state of a PostgreSQL 14+ server in one go, the same view the
    health agent serves and failover compares between nodes. Changes nothing.
  - Its role is V(primary) or V(standby); with O(probe_upstream=true) a standby whose
    own upstream is a standby is reported as V(cascading_standby).
  - No password leaves the module. The upstream C(primary_conninfo) is returned with its
    password masked, and the upstream is probed with the standby's own settings
    (normally a passfile).
author:
  - pgha.multidc contributors (!UNKNOWN)
options:
  probe_upstream:
    description:
      - On a standby, connect to the upstream recorded in C(primary_conninfo) and report
        what it is (RV(state.upstream_probe)). An upstream in recovery makes this node a
        V(cascading_standby).
      - An upstream that cannot be reached is reported, not a failure.
      - Ignored on a primary.
    type: bool
    default: false
extends_documentation_fragment:
  - pgha.multidc.connection
  - pgha.multidc.upstream_probe
  - pgha.multidc.read_only
attributes:
  platform:
    support: full
    platforms: posix
    description: Runs on the database host (as the user that owns the cluster) or wherever the server is reachable.
seealso:
  - module: pgha.multidc.pg_replay_control
  - module: pgha.multidc.pg_promote
'''

EXAMPLES = r'''
- name: Replication state of every database node
  pgha.multidc.pg_replication_info:
    probe_upstream: true
  register: replication
  become: true
  become_user: postgres

- name: Fail when a standby lags more than 16 MiB behind its upstream
  ansible.builtin.assert:
    that: replication.state.replay_lag_bytes | default(0, true) < 16777216
    fail_msg: "{{ inventory_hostname }} replays {{ replication.state.replay_lag_bytes }} bytes behind"
  when: replication.state.in_recovery
'''

RETURN = r'''
state:
  description: The replication state of the node.
  returned: always
  type: dict
  contains:
    role:
      description: V(primary), V(standby) or V(cascading_standby) (the latter only with O(probe_upstream=true)).
      type: str
      sample: standby
    in_recovery:
      description: C(pg_is_in_recovery()).
      type: bool
      sample: true
    server_version:
      description: Major and minor version, for example C(15.8).
      type: str
      sample: "15.8"
    server_version_num:
      description: C(server_version_num).
      type: int
      sample: 150008
    system_identifier:
      description: The cluster's system identifier (as text; all nodes of a cluster share it).
      type: str
      sample: "7310402342233112345"
    timeline:
      description: Current timeline (on a standby the WAL receiver's, else the last restartpoint's).
      type: int
      sample: 1
    current_lsn:
      description: C(pg_current_wal_lsn()) on a primary, null on a standby.
      type: str
      sample: 0/3018198
    receive_lsn:
      description: Last WAL received by streaming (standby).
      type: str
      sample: 0/3018198
    replay_lsn:
      description: Last WAL replayed (standby).
      type: str
      sample: 0/3018198
    wal_position:
      description: The most advanced WAL the node holds (current on a primary, else received or replayed).
      type: str
      sample: 0/3018198
    replay_lag_bytes:
      description: Received but not yet replayed bytes (standby), null on a primary.
      type: int
      sample: 0
    replay_lag_seconds:
      description: Seconds since the last replayed transaction while WAL waits to be replayed, else 0 (standby).
      type: float
      sample: 0.0
    last_replay_timestamp:
      description: Commit time of the last replayed transaction.
      type: str
      sample: "2025-01-01 12:00:00.000000+00"
    replay_pause_state:
      description: C(pg_get_wal_replay_pause_state()) on a standby.
      type: str
      sample: not paused
    replay_paused:
      description: Whether replay is paused.
      type: bool
      sample: false
    upstream:
      description: The upstream recorded in C(primary_conninfo) (password masked), null on a primary.
      type: dict
      sample: {host: dc1-pg1, port: 5432, user: replicator, application_name: dc1-pg2, sslmode: verify-full,
               slot: dc1_pg2, conninfo: "host=dc1-pg1 port=5432 user=replicator passfile=/var/lib/postgresql/.pgpass"}
    upstream_in_recovery:
      description: Whether the probed upstream is in recovery; null when it could not be told. Only with O(probe_upstream=true).
      type: bool
      returned: when O(probe_upstream=true) on a standby
      sample: false
    upstream_probe:
      description:
        - What the upstream probe found. Only with O(probe_upstream=true) on a standby.
        - C(answered) is true when a server responded at all (even to refuse the login);
          C(reachable) when the connection succeeded.
      type: dict
      returned: when O(probe_upstream=true) on a standby
      sample: {upstream: "replicator@dc1-pg1:5432", recorded: true, answered: true, reachable: true,
               in_recovery: false, system_identifier: "7310402342233112345", timeline: 1,
               wal_position: 0/3018198, error: null}
    wal_receiver:
      description: C(pg_stat_wal_receiver) (conninfo masked), null on a primary.
      type: dict
    streaming:
      description: Whether the WAL receiver is streaming.
      type: bool
      sample: true
    replicas:
      description: C(pg_stat_replication) rows, with C(replay_lag_bytes) each.
      type: list
      elements: dict
    slots:
      description: C(pg_replication_slots) rows.
      type: list
      elements: dict
    settings:
      description: Replication related settings (C(wal_level), C(synchronous_standby_names), C(primary_slot_name), ...).
      type: dict
    postmaster_start_time:
      description: When the server started.
      type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.multidc.plugins.module_utils.connection import (
    connection_argument_spec, upstream_probe_argument_spec)
from ansible_collections.pgha.multidc.plugins.module_utils.module_run import local_connection
from ansible_collections.pgha.multidc.plugins.module_utils.node_state import (
    gather_node_state, mark_cascading, probe_upstream)


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(upstream_probe_argument_spec())
    argument_spec.update(probe_upstream=dict(type='bool', default=False))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    if params['upstream_connect_timeout'] < 1:
        module.fail_json(msg='upstream_connect_timeout must be at least 1 second')

    with local_connection(module, error_prefix='cannot read the replication state') as conn:
        state = gather_node_state(conn)
        if params['probe_upstream'] and state['in_recovery']:
            probe = probe_upstream(conn, params['upstream_passfile'], params['upstream_sslrootcert'],
                                   params['upstream_connect_timeout'])
            state['upstream_probe'] = probe
            mark_cascading(state, probe.get('in_recovery'))
            if probe.get('reachable') and probe.get('system_identifier') \
                    and probe['system_identifier'] != state['system_identifier']:
                module.warn('the upstream %s belongs to another cluster (system identifier %s, this node %s)'
                            % (probe.get('upstream'), probe['system_identifier'], state['system_identifier']))
    module.exit_json(changed=False, state=state)


if __name__ == '__main__':
    main()

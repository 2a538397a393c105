#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: pg_replication_slot
short_description: Create or drop a PostgreSQL replication slot
version_added: 0.1.0
description:
  - Makes a physical replication slot, or a logical one with an output plugin, present or
    absent on a PostgreSQL 14+ server.
  - Works on a standby too. A physical slot on a standby is how a cascading leader keeps
    the WAL that its own standbys still need.
  - A slot that exists with another type, plugin or database than requested is never
    recreated silently; the module fails and says what it found.
  - Dropping a slot that is in use (by a walsender, or a session decoding it) is refused
    with the process that holds it, unless O(force=true).
  - The slot name is checked before any connection is made.
author:
  - pgha.multidc contributors (!UNKNOWN)
options:
  name:
    description:
      - Name of the slot. Lower case letters, digits and underscores, at most 63 characters
        (the rule PostgreSQL applies).
    type: str
    required: true
    aliases: [slot_name]
  state:
    description:
      - V(present) creates the slot when it does not exist.
      - V(absent) drops it when it exists.
    type: str
    default: present
    choices: [present, absent]
  slot_type:
    description:
      - V(physical) for streaming replication, V(logical) for logical decoding.
      - A logical slot belongs to the database of the connection (O(login_db)) and needs
        C(wal_level=logical) (and PostgreSQL 16+ on a standby).
    type: str
    default: physical
    choices: [physical, logical]
  plugin:
    description:
      - Output plugin of a logical slot, for example V(pgoutput) or V(test_decoding).
      - Required when O(slot_type=logical) and O(state=present); not allowed for a physical slot.
    type: str
  immediately_reserve:
    description:
      - Reserve WAL when a physical slot is created, rather than when a standby first streams
        from it. Use it when the slot is made before its standby is built, so that no WAL the
        standby will need is removed meanwhile.
      - Applies only when the slot is created; physical slots only.
    type: bool
    default: false
  force:
    description:
      - With O(state=absent), drop a slot that is in use. The backend holding it is
        terminated (C(pg_terminate_backend)), the module waits until the slot is released and
        then drops it. A standby streaming from the slot is cut off and cannot resume without it.
    type: bool
    default: false
  timeout:
    description:
      - Seconds to wait, with O(force=true), for the slot to be released and dropped (the
        consumer may reconnect in between; the module then tries again until this time is up).
    type: int
    default: 30
extends_documentation_fragment:
  - pgha.multidc.connection
attributes:
  check_mode:
    support: full
    description: Reads the slot and makes every check; predicts the change without creating, dropping or terminating anything.
  diff_mode:
    support: full
    description: Shows the slot (state, type, plugin, database) before and after.
  platform:
    support: full
    platforms: posix
    description: Runs on the database host (as the user that owns the cluster) or wherever the server is reachable.
notes:
  - A slot that nobody consumes keeps WAL forever (up to C(max_slot_wal_keep_size)); drop
    the slots of standbys that are gone.
seealso:
  - name: Replication slots
    description: The PostgreSQL documentation of replication slots.
    link: https://www.postgresql.org/docs/current/warm-standby.html#STREAMING-REPLICATION-SLOTS
'''

EXAMPLES = r'''
- name: Keep WAL for a standby that is about to be built
  pgha.multidc.pg_replication_slot:
    name: dc1_pg2
    immediately_reserve: true
  become: true
  become_user: postgres

- name: On the datacenter 2 leader, a slot for the standby that cascades from it
  pgha.multidc.pg_replication_slot:
    name: dc2_pg2
  become: true
  become_user: postgres

- name: A logical slot for change data capture in database app
  pgha.multidc.pg_replication_slot:
    name: cdc_app
    slot_type: logical
    plugin: pgoutput
    login_db: app
  become: true
  become_user: postgres

- name: Drop the slot of a standby that was removed, even if something still streams from it
  pgha.multidc.pg_replication_slot:
    name: dc1_pg3
    state: absent
    force: true
  become: true
  become_user: postgres
'''

RETURN = r'''
slot:
  description:
    - The slot as C(pg_replication_slots) shows it after the run; null when it does not exist.
    - In check mode, the predicted slot (fields that only the server knows are null).
  returned: always
  type: dict
  contains:
    slot_name:
      description: Name of the slot.
      type: str
      sample: dc1_pg2
    slot_type:
      description: V(physical) or V(logical).
      type: str
      sample: physical
    plugin:
      description: Output plugin of a logical slot, null for a physical one.
      type: str
      sample: null
    database:
      description: Database of a logical slot, null for a physical one.
      type: str
      sample: null
    active:
      description: Whether a process is using the slot.
      type: bool
      sample: true
    active_pid:
      description: Process id of the walsender or session using the slot.
      type: int
      sample: 4242
    restart_lsn:
      description: Oldest WAL the slot keeps; null until WAL is reserved.
      type: str
      sample: 0/3000148
    wal_status:
      description: C(reserved), C(extended), C(unreserved) or C(lost).
      type: str
      sample: reserved
    safe_wal_size:
      description: Bytes of WAL that can still be written before the slot risks losing WAL (null when unlimited).
      type: int
      sample: null
  sample:
    slot_name: dc1_pg2
    slot_type: physical
    plugin: null
    database: null
    active: false
    active_pid: null
    restart_lsn: 0/3000148
    wal_status: reserved
    safe_wal_size: null
queries:
  description: Statements that changed something (or would have, in check mode), parameters bound.
  returned: always
  type: list
  elements: str
  sample: ["SELECT pg_create_physical_replication_slot('dc1_pg2', true)"]
terminated_pids:
  description: Process ids terminated to release the slot (O(force=true)).
  returned: always
  type: list
  elements: int
  sample: [4242]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.multidc.plugins.module_utils.connection import connection_argument_spec
from ansible_collections.pgha.multidc.plugins.module_utils.module_run import local_connection
from ansible_collections.pgha.multidc.plugins.module_utils.replication import (
    create_slot, drop_slot, plan_slot, planned_queries, slot_name_problem, slot_view)


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        name=dict(type='str', required=True, aliases=['slot_name']),
        state=dict(type='str', default='present', choices=['present', 'absent']),
        slot_type=dict(type='str', default='physical', choices=['physical', 'logical']),
        plugin=dict(type='str'),
        immediately_reserve=dict(type='bool', default=False),
        force=dict(type='bool', default=False),
        timeout=dict(type='int', default=30),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
    )
    params = module.params
    name, state, slot_type, plugin = params['name'], params['state'], params['slot_type'], params['plugin']
    result = {'changed': False, 'slot': None, 'queries': [], 'terminated_pids': []}

    # Everything that can be judged from the arguments alone, before connecting.
    problem = slot_name_problem(name)
    if not problem and state == 'present' and slot_type == 'logical' and not plugin:
        problem = 'a logical replication slot needs an output plugin: set plugin (for example pgoutput)'
    if not problem and slot_type == 'physical' and plugin:
        problem = 'plugin applies only to logical slots; set slot_type: logical or remove plugin'
    if not problem and slot_type == 'logical' and params['immediately_reserve']:
        problem = 'immediately_reserve applies only to physical slots (a logical slot always reserves WAL)'
    if not problem and params['timeout'] < 0:
        problem = 'timeout cannot be negative'
    if problem:
        module.fail_json(msg=problem, **result)

    with local_connection(module, result) as conn:
        plan = plan_slot(conn, name, state, slot_type, plugin, params['immediately_reserve'], params['force'])
        for warning in plan['warnings']:
            module.warn(warning)
        if module._diff:
            result['diff'] = plan['diff']
        action = plan['action']
        result['changed'] = action is not None
        if action is None:
            result['slot'] = slot_view(plan['current'])
        elif module.check_mode:
            result['queries'] = planned_queries(conn, plan, name, slot_type, plugin, params['immediately_reserve'])
            if action == 'create':
                result['slot'] = dict(slot_name=name, slot_type=slot_type, plugin=plugin if slot_type == 'logical' else None,
                                      database=plan['database'] if slot_type == 'logical' else None, active=False,
                                      active_pid=None, restart_lsn=None, wal_status=None, safe_wal_size=None)
            if plan['current'] and plan['current']['active']:
                result['terminated_pids'] = [plan['current']['active_pid']]
        elif action == 'create':
            result['slot'] = slot_view(create_slot(conn, name, slot_type, plugin, params['immediately_reserve'],
                                                   result['queries']))
        else:
            result['terminated_pids'] = drop_slot(conn, name, params['force'], params['timeout'], result['queries'])
    module.exit_json(**result)


if __name__ == '__main__':
    main()

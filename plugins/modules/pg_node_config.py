#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: pg_node_config
short_description: Apply a PostgreSQL node's share of a topology change in one call - configuration files, reload, replication slots
version_added: 0.1.0
description:
  - What a database host needs when the replication topology changes (a failover, a
    switchover, a rejoin), in one call on a running PostgreSQL 14+ server, in this order.
  - The files given in O(files) whose content differs from the one on disk are replaced
    atomically, each after a backup of the previous one next to it. The running server
    then parses them (C(pg_file_settings), C(pg_hba_file_rules), C(pg_ident_file_mappings)).
    On any error the previous contents are put back and the module fails, naming each
    error with its file and line; nothing is reloaded.
  - The server is reloaded once when a file changed (C(pg_reload_conf)); the parameters that
    take effect only after a restart are reported (RV(restart_needed)) and warned about. It
    never restarts the server.
  - The physical replication slots in O(slots) are created (reserving WAL at once); those
    in O(drop_slots) that exist are dropped when inactive. An active one is in use by a
    standby that still streams through it, so it is kept, reported in
    RV(slots_kept_active) and warned about.
  - Fails, before anything is written, when the server does not accept connections (the
    files could not be checked).
  - pgha.multidc.pg_reload_config and pgha.multidc.pg_replication_slot do these steps one
    at a time (the deploy uses them through the pgha.multidc.postgresql role); this module
    spares the operations their round trips.
author:
  - pgha.multidc contributors (!UNKNOWN)
options:
  files:
    description: Configuration files read by the server, with their whole content.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the file.
        type: path
        required: true
      content:
        description: The whole content of the file.
        type: str
        required: true
      mode:
        description: Permissions of the file when it is written.
        type: raw
        default: '0640'
  backup:
    description: Keep a copy of each replaced file next to it, with a time stamp.
    type: bool
    default: true
  slots:
    description: Names of the physical replication slots that must exist.
    type: list
    elements: str
    default: []
  drop_slots:
    description:
      - Names of replication slots to drop when they exist and are inactive. A name also in
        O(slots) is kept.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - pgha.multidc.connection
attributes:
  check_mode:
    support: full
    description: Reports the files that would change and the statements that would run; writes and runs nothing.
  diff_mode:
    support: full
    description: Shows the changes of each file.
  platform:
    support: full
    platforms: posix
    description: Runs on the database host as the user that owns the cluster (it must be able to write the files), over the local socket.
seealso:
  - module: pgha.multidc.pg_reload_config
  - module: pgha.multidc.pg_replication_slot
'''

EXAMPLES = r'''
- name: New pg_hba.conf for the followers, and their slots
  pgha.multidc.pg_node_config:
    files:
      - path: /etc/postgresql/15/main/pg_hba.conf
        content: "{{ lookup('ansible.builtin.template', 'pg_hba.conf.j2') }}"
    slots: [dc1_pg1, dc2_pg1]
    drop_slots: [dc1_pg2]
    login_unix_socket: /var/run/postgresql
  become: true
  become_user: postgres
'''

RETURN = r'''
files:
  description: The files that were replaced (would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [/etc/postgresql/15/main/pg_hba.conf]
backups:
  description: The copies of the replaced files.
  returned: always
  type: list
  elements: str
  sample: ["/etc/postgresql/15/main/pg_hba.conf.4242.2026-12-02@12:00:00~"]
reloaded:
  description: Whether the server was reloaded.
  returned: always
  type: bool
  sample: true
restart_needed:
  description: Parameters (sorted) whose value in the files takes effect only after a restart.
  returned: always
  type: list
  elements: str
  sample: []
slots_created:
  description: The replication slots created.
  returned: always
  type: list
  elements: str
  sample: [dc2_pg1]
slots_dropped:
  description: The replication slots dropped.
  returned: always
  type: list
  elements: str
  sample: []
slots_kept_active:
  description: Slots of O(drop_slots) left in place because a standby streams through them.
  returned: always
  type: list
  elements: str
  sample: []
file_errors:
  description: Errors of postgresql.conf and its includes as the server parsed them; set when the module failed.
  returned: failure
  type: list
  elements: str
hba_errors:
  description: Errors of pg_hba.conf as the server parsed it; set when the module failed.
  returned: failure
  type: list
  elements: str
queries:
  description: The statements that changed something (or would have, in check mode).
  returned: always
  type: list
  elements: str
  sample: ["SELECT pg_reload_conf()", "SELECT pg_create_physical_replication_slot('dc2_pg1', true)"]
'''

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.multidc.plugins.module_utils.config_check import NOT_ACCEPTING, open_local
from ansible_collections.pgha.multidc.plugins.module_utils.connection import (
    DatabaseError, check_server_version, connection_argument_spec, ensure_driver, libpq_params_from_module)
from ansible_collections.pgha.multidc.plugins.module_utils.node_config import (
    apply_files, apply_slots, changed_files)
from ansible_collections.pgha.multidc.plugins.module_utils.replication import ReplicationError


def file_writer(module, result):
    """Replace a file atomically (temporary file in the same directory, then rename),
    with a backup of the previous one when asked for."""
    def write(entry, content, backup):
        path = entry['path']
        if backup and module.params['backup'] and entry['before'] is not None:
            result['backups'].append(module.backup_local(path))
        handle, temporary = tempfile.mkstemp(prefix='.pgha-', dir=os.path.dirname(path))
        with os.fdopen(handle, 'w') as out:
            out.write(content)
        module.set_mode_if_different(temporary, entry['mode'], False)
        if entry['before'] is not None and os.geteuid() == 0:
            owner = os.stat(path)
            os.chown(temporary, owner.st_uid, owner.st_gid)
        os.rename(temporary, path)
    return write


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        files=dict(type='list', elements='dict', default=[], options=dict(
            path=dict(type='path', required=True),
            content=dict(type='str', required=True),
            mode=dict(type='raw', default='0640'),
        )),
        backup=dict(type='bool', default=True),
        slots=dict(type='list', elements='str', default=[]),
        drop_slots=dict(type='list', elements='str', default=[]),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    ensure_driver(module)
    params = module.params
    result = {'changed': False, 'files': [], 'backups': [], 'reloaded': False, 'restart_needed': [],
              'slots_created': [], 'slots_dropped': [], 'slots_kept_active': [], 'queries': []}

    conn, status, error = open_local(libpq_params_from_module(params))
    if conn is None:
        module.fail_json(msg='PostgreSQL %s, so the configuration files could not be checked: nothing was written '
                             '(%s)' % ('is starting up, shutting down or recovering' if status == NOT_ACCEPTING
                                       else 'does not accept connections', error), **result)
    try:
        check_server_version(conn)
        changed = changed_files(params['files'])
        if module._diff:
            result['diff'] = [{'before_header': entry['path'], 'after_header': entry['path'],
                               'before': entry['before'] or '', 'after': entry['content']} for entry in changed]
        warnings = apply_files(conn, changed, file_writer(module, result), result, module.check_mode)
        warnings += apply_slots(conn, params['slots'], params['drop_slots'], result, module.check_mode)
    except ReplicationError as failure:
        result.update(failure.details)
        result['changed'] = failure.changed
        module.fail_json(msg=str(failure), **result)
    except (DatabaseError, EnvironmentError) as failure:
        result['changed'] = bool(result['files']) and not module.check_mode
        module.fail_json(msg='cannot apply the configuration: %s' % str(failure).strip(), **result)
    finally:
        conn.close()
    for warning in warnings:
        module.warn(warning)
    result['changed'] = bool(result['files'] or result['slots_created'] or result['slots_dropped'])
    module.exit_json(**result)


if __name__ == '__main__':
    main()

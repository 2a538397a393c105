#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: pgbackrest_restore
short_description: Restore a data directory from pgBackRest for a point-in-time recovery
version_added: 0.1.0
description:
  - Restores a backup of the stanza into O(data_directory) and writes the recovery
    settings (C(restore_command), the target, C(recovery.signal)), so that the server,
    once started, replays the archive up to the target. It does not start the server.
  - Exactly one target - O(target_time), O(target_lsn), O(target_name) or O(latest) (the
    end of the archive).
  - Before anything changes, these checks run and each one that fails ends the task with
    the reason - the target is well formed (a time needs its time zone); no server runs
    on O(data_directory); the directory is absent or empty, or O(existing) says what to do
    with what is there; the stanza has a backup that ended before a time or LSN target
    (a backup can only be recovered forward from its end), and a time target is not in
    the future; a given O(label) exists and fits the target.
  - The backup restored is the newest that fits the target unless O(label) names one; it
    is passed to pgBackRest explicitly (RV(label)), so what is restored is what was checked.
author:
  - pgha.multidc contributors (!UNKNOWN)
options:
  data_directory:
    description: Where to restore (pgBackRest's C(pg1-path)).
    type: path
    required: true
  target_time:
    description:
      - Recover up to this moment - C(YYYY-MM-DD HH:MM:SS[.ffffff]+HH[:MM]), or with C(Z) or
        C(UTC). The time zone is required.
      - Transactions that committed at or before it are kept (C(recovery_target_inclusive)).
    type: str
  target_lsn:
    description: Recover up to this WAL position (C(X/Y)).
    type: str
  target_name:
    description: Recover up to this restore point (made with C(pg_create_restore_point)).
    type: str
  latest:
    description: Recover to the end of the archive.
    type: bool
    default: false
  label:
    description: The backup to restore (a label from RV(pgha.multidc.pgbackrest_info#module:backups)). Default - the newest that fits.
    type: str
  target_action:
    description: What the server does once it reaches the target (not used with O(latest), which promotes at the end of the archive).
    type: str
    choices: [promote, pause, shutdown]
    default: promote
  existing:
    description:
      - What to do with a non-empty O(data_directory) - V(fail) (the default); V(move_aside)
        renames it to C(<data_directory>.pgha-<UTC time>) and restores into a new one (put
        back when the restore fails); V(delta) has pgBackRest restore over it, copying only
        the files that differ (a PostgreSQL data directory only).
    type: str
    choices: [fail, move_aside, delta]
    default: fail
  archive_mode:
    description:
      - V(off) writes C(archive_mode=off) for the restored server, so that a scratch copy (a
        verification, a look at old data) does not push WAL into the cluster's archive.
    type: str
    choices: [preserve, 'off']
    default: preserve
  standby:
    description:
      - Restore a standby (needs O(latest)) - pgBackRest writes C(standby.signal) and recovery
        never ends - it replays the archive, then streams from the upstream that the standby's
        configuration names (M(pgha.multidc.pg_basebackup_standby) writes it over the
        restored directory). With O(existing=delta), only the files that differ are fetched,
        for a standby that is rebuilt from the repository instead of across the link from its
        upstream.
    type: bool
    default: false
  process_max:
    description: Parallel processes of the restore (default - the configuration file's C(process-max)).
    type: int
  pg_bindir:
    description: Directory of C(pg_ctl), to tell whether a server runs on an existing data directory (default - the distribution's for its version).
    type: path
extends_documentation_fragment:
  - pgha.multidc.pgbackrest
attributes:
  check_mode:
    support: full
    description:
      - Runs every check and chooses the backup; reports C(changed=true) and restores nothing.
      - A server running on O(data_directory) is reported (RV(running_pid)), not refused, so
        that a playbook can check the whole restore before it stops the server.
  diff_mode:
    support: none
    description: A restore replaces a data directory; there is no file difference to show.
  platform:
    support: full
    platforms: posix
    description: Runs on the host of the data directory, as the owner of the cluster.
notes:
  - The restored server starts on the configuration of the backup (its C(postgresql.conf)
    and C(postgresql.auto.conf)); with O(archive_mode=preserve) it archives its new
    timeline into the stanza once promoted.
seealso:
  - module: pgha.multidc.pgbackrest_info
  - module: pgha.multidc.pgbackrest_backup
  - name: pgBackRest restore command
    description: The command this module runs.
    link: https://pgbackrest.org/command.html#command-restore
'''

EXAMPLES = r'''
- name: Bring the cluster back to just before the bad migration
  pgha.multidc.pgbackrest_restore:
    stanza: main
    data_directory: /var/lib/postgresql/15/main
    target_time: "2026-12-07 08:14:59+00"
    existing: move_aside
  register: restore
  become: true
  become_user: postgres

- name: A scratch copy of the latest backup, replayed to the end of the archive
  pgha.multidc.pgbackrest_restore:
    stanza: main
    data_directory: /var/lib/pgbackrest-verify/data
    latest: true
    archive_mode: "off"
  become: true
  become_user: postgres
'''

RETURN = r'''
label:
  description: The backup restored (chosen in check mode).
  returned: when the checks passed
  type: str
  sample: 20261207-075615F
backup:
  description: That backup, with the keys of RV(pgha.multidc.pgbackrest_info#module:backups).
  returned: when the checks passed
  type: dict
running_pid:
  description: In check mode, the pid of a server running on O(data_directory) (it must be stopped before the restore); null otherwise.
  returned: always
  type: int
  sample: 886
target:
  description: The target as given to pgBackRest (C(type) V(time), V(lsn), V(name) or V(latest), C(value)); a time is in UTC.
  returned: always
  type: dict
  sample: {type: time, value: "2026-12-07 08:14:59.000000+00"}
moved_aside:
  description: Where the previous data directory went (O(existing=move_aside)), null otherwise.
  returned: always
  type: str
  sample: /var/lib/postgresql/15/main.pgha-20261207T081700Z
command:
  description: The pgbackrest command line (it carries no secret).
  returned: always
  type: list
  elements: str
duration_seconds:
  description: Wall-clock seconds of the restore command (null in check mode).
  returned: always
  type: float
'''

import datetime
import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.multidc.plugins.module_utils.basebackup import (
    STATE_ABSENT, STATE_CLUSTER, STATE_EMPTY, BasebackupError, check_writable, find_bindir,
    inspect_data_directory, move_aside, remove_tree)
from ansible_collections.pgha.multidc.plugins.module_utils.pgbackrest import (
    PgbackrestError, plan_restore, recovery_target, restore_argv)
from ansible_collections.pgha.multidc.plugins.module_utils.pgbackrest_run import (
    check_common, pgbackrest_argument_spec, read_info, run_or_raise)


def check_data_directory(params, check_mode=False):
    """Refuse a running server (in check mode only reported: the caller stops it before the
    restore) or a non-empty directory the ``existing`` rule does not cover; return the
    inspection of the directory."""
    directory = params['data_directory']
    info = inspect_data_directory(directory, lambda major: find_bindir(major, params['pg_bindir'], 'pg_ctl'))
    if info['running_pid'] and not check_mode:
        raise PgbackrestError('a server runs on %s (pid %s): stop it first' % (directory, info['running_pid']))
    occupied = info['state'] not in (STATE_ABSENT, STATE_EMPTY)
    if occupied and params['existing'] == 'fail':
        raise PgbackrestError('%s is not empty (%d entries: %s): choose existing=move_aside or existing=delta'
                              % (directory, info['entry_count'], ', '.join(info['entries'])))
    if params['existing'] == 'delta' and occupied and info['state'] != STATE_CLUSTER:
        raise PgbackrestError('existing=delta: %s is not a PostgreSQL data directory' % directory)
    check_writable(directory, info['state'], params['existing'])
    return info


def main():
    argument_spec = pgbackrest_argument_spec()
    argument_spec.update(
        data_directory=dict(type='path', required=True),
        target_time=dict(type='str'),
        target_lsn=dict(type='str'),
        target_name=dict(type='str'),
        latest=dict(type='bool', default=False),
        label=dict(type='str'),
        target_action=dict(type='str', choices=['promote', 'pause', 'shutdown'], default='promote'),
        existing=dict(type='str', choices=['fail', 'move_aside', 'delta'], default='fail'),
        archive_mode=dict(type='str', choices=['preserve', 'off'], default='preserve'),
        standby=dict(type='bool', default=False),
        process_max=dict(type='int'),
        pg_bindir=dict(type='path'),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    directory = params['data_directory']
    result = {'changed': False, 'target': None, 'moved_aside': None, 'command': [], 'duration_seconds': None,
              'running_pid': None}
    try:
        check_common(params)
        target = recovery_target(params['target_time'], params['target_lsn'], params['target_name'], params['latest'])
        result['target'] = {'type': target['type'], 'value': target['value']}
        inspected = check_data_directory(params, module.check_mode)
        state, result['running_pid'] = inspected['state'], inspected['running_pid']
        now = datetime.datetime.now(datetime.timezone.utc)
        backup = plan_restore(target, read_info(params, now), now, label=params['label'])
        result.update(label=backup['label'], backup=backup)
        result['command'] = restore_argv(
            params['stanza'], directory, target, backup['label'], config=params['config'],
            delta=params['existing'] == 'delta' and state == STATE_CLUSTER, target_action=params['target_action'],
            archive_mode=params['archive_mode'], process_max=params['process_max'], executable=params['executable'],
            standby=params['standby'])
    except (PgbackrestError, BasebackupError) as error:
        module.fail_json(msg=str(error), **result)
    if module.check_mode:
        result['changed'] = True
        module.exit_json(**result)

    if params['existing'] == 'move_aside' and state not in (STATE_ABSENT, STATE_EMPTY):
        result['moved_aside'] = move_aside(directory)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o700)
    started = time.monotonic()
    try:
        run_or_raise(params, 'restore', argv=result['command'])
    except PgbackrestError as error:
        if result['moved_aside']:
            # Put the previous directory back: a half restore is worth nothing.
            remove_tree(directory)
            os.rename(result['moved_aside'], directory)
            result['moved_aside'] = None
            module.fail_json(msg='%s; the previous data directory was put back' % error, changed=False,
                             **{k: v for k, v in result.items() if k != 'changed'})
        module.fail_json(msg=str(error), changed=True, **{k: v for k, v in result.items() if k != 'changed'})
    result.update(changed=True, duration_seconds=round(time.monotonic() - started, 1))
    module.exit_json(**result)


if __name__ == '__main__':
    main()

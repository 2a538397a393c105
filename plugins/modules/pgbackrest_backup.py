#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: pgbackrest_backup
short_description: Take a pgBackRest backup now
version_added: 0.1.0
description:
  - Runs C(pgbackrest backup) of the given O(type) and returns the new backup as
    C(pgbackrest info) describes it (label, sizes, times, LSNs) and how long it took.
  - pgBackRest makes a full backup instead of a differential or incremental one when the
    stanza has no full backup yet; the C(type) of RV(backup) is what was made.
  - Where the files are copied from (the primary, or a standby with C(backup-standby)),
    compression, parallelism and retention come from the configuration file; retention is
    applied after the backup (C(expire)).
  - Not idempotent - every run takes a backup.
author:
  - pgha.multidc contributors (!UNKNOWN)
options:
  type:
    description: V(full) copies everything; V(diff) what changed since the latest full; V(incr) since the latest backup.
    type: str
    choices: [full, diff, incr]
    default: full
extends_documentation_fragment:
  - pgha.multidc.pgbackrest
attributes:
  check_mode:
    support: full
    description: Checks that the stanza exists and reports C(changed=true); takes no backup.
  diff_mode:
    support: none
    description: A backup adds to the repository; there is no difference to show.
  platform:
    support: full
    platforms: posix
    description: Runs on the repository host (or a database host with a local repository).
seealso:
  - module: pgha.multidc.pgbackrest_info
  - module: pgha.multidc.pgbackrest_restore
  - name: pgBackRest backup command
    description: The command this module runs.
    link: https://pgbackrest.org/command.html#command-backup
'''

EXAMPLES = r'''
- name: A differential backup now
  pgha.multidc.pgbackrest_backup:
    stanza: main
    type: diff
  register: backup
  become: true
  become_user: postgres

- name: Report it
  ansible.builtin.debug:
    msg: "{{ backup.label }}: {{ backup.backup.repository_size | human_readable }} in {{ backup.duration_seconds }} s"
'''

RETURN = r'''
label:
  description: Label of the new backup (null in check mode).
  returned: always
  type: str
  sample: 20261207-075615F
backup:
  description: The new backup, with the keys of RV(pgha.multidc.pgbackrest_info#module:backups) (null in check mode).
  returned: always
  type: dict
  sample: {label: 20261207-075615F, type: full, database_size: 22988580, repository_size: 4520167,
           lsn_start: 0/2000028, lsn_stop: 0/3000050, duration_seconds: 2}
duration_seconds:
  description: Wall-clock seconds of the backup command (null in check mode).
  returned: always
  type: float
  sample: 2.7
warnings_seen:
  description: The warnings pgBackRest printed (for example about retention not set).
  returned: always
  type: list
  elements: str
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.multidc.plugins.module_utils.pgbackrest import (
    PgbackrestError, backup_argv, parse_errors)
from ansible_collections.pgha.multidc.plugins.module_utils.pgbackrest_run import (
    check_common, pgbackrest_argument_spec, read_info, run_or_raise)

MISSING_STANZA = 1


def main():
    argument_spec = pgbackrest_argument_spec()
    argument_spec.update(type=dict(type='str', choices=['full', 'diff', 'incr'], default='full'))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    result = {'changed': False, 'label': None, 'backup': None, 'duration_seconds': None, 'warnings_seen': []}
    try:
        check_common(params)
        before = read_info(params)
        if before['status']['code'] == MISSING_STANZA:
            raise PgbackrestError('stanza %s does not exist in the repository: create it first '
                                  '(pgha.multidc.pgbackrest_stanza)' % params['stanza'])
        if module.check_mode:
            module.exit_json(changed=True, **{k: v for k, v in result.items() if k != 'changed'})
        argv = backup_argv(params['stanza'], params['type'], config=params['config'],
                           executable=params['executable'])
        started = time.monotonic()
        output = run_or_raise(params, 'backup', argv=argv)
        result.update(changed=True, duration_seconds=round(time.monotonic() - started, 1),
                      warnings_seen=parse_errors(output)['warnings'])
        known = set(backup['label'] for backup in before['backups'])
        new = [backup for backup in read_info(params)['backups'] if backup['label'] not in known]
        if not new:
            raise PgbackrestError('pgbackrest backup succeeded but pgbackrest info shows no new backup')
        result.update(label=new[-1]['label'], backup=new[-1])
    except PgbackrestError as error:
        module.fail_json(msg=str(error), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

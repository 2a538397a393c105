#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: pgbackrest_stanza
short_description: Create a pgBackRest stanza
version_added: 0.1.0
description:
  - Creates the stanza in the repository with C(pgbackrest stanza-create) when
    C(pgbackrest info) says it is missing (C(missing stanza path)); a stanza that exists is
    left alone (C(changed=false)), after C(stanza-create) confirmed it matches the
    database (pgBackRest refuses one made for another cluster or version).
  - The database must be running and reachable from where this runs (its local socket on
    a database host, the TLS server of the database hosts from the repository host).
author:
  - pgha.multidc contributors (!UNKNOWN)
options: {}
extends_documentation_fragment:
  - pgha.multidc.pgbackrest
attributes:
  check_mode:
    support: full
    description: Reads C(pgbackrest info) and reports C(changed=true) when the stanza would be created.
  diff_mode:
    support: none
    description: The stanza is files in the repository, not something to show as a difference.
  platform:
    support: full
    platforms: posix
    description: Runs on the repository host or a database host.
seealso:
  - module: pgha.multidc.pgbackrest_info
  - name: pgBackRest stanza-create command
    description: The command this module runs.
    link: https://pgbackrest.org/command.html#command-stanza-create
'''

EXAMPLES = r'''
- name: Create the stanza of the cluster
  pgha.multidc.pgbackrest_stanza:
    stanza: main
  become: true
  become_user: postgres
'''

RETURN = r'''
created:
  description: Whether this run created the stanza (or would, in check mode).
  returned: always
  type: bool
  sample: true
status:
  description: The stanza's status after the run (before it in check mode), as pgBackRest reports it.
  returned: always
  type: dict
  sample: {code: 2, message: no valid backups}
database:
  description: System identifier and version the stanza is for (null when it does not exist).
  returned: always
  type: dict
  sample: {system_id: 7716467831998378698, version: "15"}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.multidc.plugins.module_utils.pgbackrest import PgbackrestError
from ansible_collections.pgha.multidc.plugins.module_utils.pgbackrest_run import (
    check_common, pgbackrest_argument_spec, read_info, run_or_raise)

# pgBackRest's status code of a stanza whose repository path does not exist.
MISSING_STANZA = 1


def main():
    module = AnsibleModule(argument_spec=pgbackrest_argument_spec(), supports_check_mode=True)
    params = module.params
    result = {'changed': False, 'created': False, 'status': None, 'database': None}
    try:
        check_common(params)
        info = read_info(params)
        missing = info['status']['code'] == MISSING_STANZA
        result.update(status=info['status'], database=info['database'])
        if module.check_mode:
            result.update(changed=missing, created=missing)
            module.exit_json(**result)
        # Run even when it exists: stanza-create then verifies the stanza matches this database.
        run_or_raise(params, 'stanza-create')
        info = read_info(params)
    except PgbackrestError as error:
        module.fail_json(msg=str(error), **result)
    result.update(changed=missing, created=missing, status=info['status'], database=info['database'])
    module.exit_json(**result)


if __name__ == '__main__':
    main()

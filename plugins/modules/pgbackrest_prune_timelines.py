#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: pgbackrest_prune_timelines
short_description: Remove from a pgBackRest archive the timelines newer than the primary's
version_added: 0.1.0
description:
  - Removes from the stanza's WAL archive (the current database's archive id) the history
    files and the WAL segments of every timeline newer than I(timeline), the running
    primary's. They come from a promotion the cluster went back from (a DR promotion
    abandoned for the first datacenter, a node promoted by mistake). Left there, they keep
    every standby from starting. With C(recovery_target_timeline = latest) a standby tries
    to follow the newest history file it finds in the archive and stops (C(requested
    timeline N is not a child of this server's history)).
  - The caller must make sure that no server runs on one of those timelines and that no
    promotion happens meanwhile (playbooks/prune_timelines.yml holds the maintenance key).
  - Runs on the repository host, as the owner of the repository.
author:
  - pgha.multidc contributors (!UNKNOWN)
options:
  timeline:
    description: The running primary's timeline; every newer one goes.
    type: int
    required: true
  repository_path:
    description: The repository's path (pgBackRest's C(repo1-path)) on this host.
    type: path
    default: /var/lib/pgbackrest
extends_documentation_fragment:
  - pgha.multidc.pgbackrest
attributes:
  check_mode:
    support: full
    description: Lists what would be removed and removes nothing.
  diff_mode:
    support: none
    description: WAL files are not something to show as a difference.
  platform:
    support: full
    platforms: posix
    description: Runs on the repository host.
seealso:
  - module: pgha.multidc.pgbackrest_info
'''

EXAMPLES = r'''
- name: Remove the timelines the cluster went back from
  pgha.multidc.pgbackrest_prune_timelines:
    stanza: main
    timeline: 24
  become: true
  become_user: postgres
'''

RETURN = r'''
archive_id:
  description: The archive id pruned (the current database's), null when the stanza has no archive yet.
  returned: always
  type: str
  sample: 15-1
removed:
  description: The entries removed (or that check mode would remove), relative to the archive id's directory.
  returned: always
  type: list
  elements: str
  sample: [00000019.history, "0000001900000000"]
timelines:
  description: The timelines those entries belong to.
  returned: always
  type: list
  elements: int
  sample: [25]
'''

import os
import shutil

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.multidc.plugins.module_utils.pgbackrest import (
    PgbackrestError, archive_timelines, timelines_beyond)
from ansible_collections.pgha.multidc.plugins.module_utils.pgbackrest_run import (
    check_common, pgbackrest_argument_spec, read_info)


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


def main():
    spec = pgbackrest_argument_spec()
    spec.update(timeline=dict(type='int', required=True),
                repository_path=dict(type='path', default='/var/lib/pgbackrest'))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    result = {'changed': False, 'archive_id': None, 'removed': [], 'timelines': []}
    try:
        check_common(params)
        archive_id = read_info(params)['archive_id']
        result['archive_id'] = archive_id
        if archive_id is None:
            module.exit_json(**result)
        directory = os.path.join(params['repository_path'], 'archive', params['stanza'], archive_id)
        if not os.path.isdir(directory):
            raise PgbackrestError('%s is not a directory: is this the repository host, and is the repository at %s?'
                                  % (directory, params['repository_path']))
        doomed = timelines_beyond(os.listdir(directory), params['timeline'])
    except PgbackrestError as error:
        module.fail_json(msg=str(error), **result)
    result.update(changed=bool(doomed), removed=doomed,
                  timelines=archive_timelines(doomed))
    if not module.check_mode:
        for name in doomed:
            try:
                _remove(os.path.join(directory, name))
            except OSError as error:
                module.fail_json(msg='could not remove %s from the archive: %s' % (name, error), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

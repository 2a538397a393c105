#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: pgbackrest_info
short_description: Read the backups and the WAL archive of a pgBackRest stanza
version_added: 0.1.0
description:
  - Runs C(pgbackrest info --output=json) and returns a summary of the stanza - its status,
    every backup (type, times, age, sizes, LSNs, WAL), the latest full, differential and
    incremental backup, the range of WAL segments the archive keeps and its timelines.
  - With O(check=true) first runs C(pgbackrest check), which has the server switch to a new
    WAL segment and waits for it to reach the archive, and reports whether it passed and
    its errors; a failed check does not fail the task (the C(passed) of RV(check)).
  - A stanza that does not exist yet, or a repository that cannot be reached, is no
    failure - RV(status) and RV(problem) say so (C(missing stanza path), C(HostConnectError) ...).
    pgBackRest tries to reach a repository host for twice its C(io-timeout) (60 s by default).
author:
  - pgha.multidc contributors (!UNKNOWN)
options:
  check:
    description:
      - Also run C(pgbackrest check) (on a database host, or on the repository host with
        the database hosts configured). It has the primary switch to a new WAL segment,
        in check mode too (that changes no data).
    type: bool
    default: false
extends_documentation_fragment:
  - pgha.multidc.pgbackrest
  - pgha.multidc.read_only
attributes:
  platform:
    support: full
    platforms: posix
    description: Runs on the repository host or a database host.
seealso:
  - module: pgha.multidc.pgbackrest_backup
  - module: pgha.multidc.pgbackrest_restore
  - name: pgBackRest info command
    description: The command this module runs.
    link: https://pgbackrest.org/command.html#command-info
'''

EXAMPLES = r'''
- name: Backups and archive of the cluster
  pgha.multidc.pgbackrest_info:
    stanza: main
  register: backups
  become: true
  become_user: postgres

- name: Fail when the latest full backup is older than 8 days
  ansible.builtin.assert:
    that: backups.latest_full is not none and backups.latest_full.age_seconds < 8 * 86400
    fail_msg: the latest full backup is missing or too old

- name: Check that the archive works
  pgha.multidc.pgbackrest_info:
    stanza: main
    check: true
  register: archive
  become: true
  become_user: postgres
'''

RETURN = r'''
status:
  description: The stanza's status as pgBackRest reports it (code 0 ok, 1 missing stanza path, 2 no valid backups, ...).
  returned: always
  type: dict
  sample: {code: 0, message: ok}
ok:
  description: Whether the status code is 0.
  returned: always
  type: bool
problem:
  description:
    - The status message of the first repository that is not ok (null when all are) - why
      the stanza's status is not ok, for example a repository host that cannot be reached.
  returned: always
  type: str
  sample: "[HostConnectError] unable to connect to 'dc2-backup1:8432': [111] Connection refused"
repositories:
  description: Each repository's C(key), C(cipher) and status (C(code), C(message)).
  returned: always
  type: list
  elements: dict
  sample: [{key: 1, cipher: none, code: 0, message: ok}]
backups:
  description: Every backup, oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    label:
      description: The backup's label (what O(pgha.multidc.pgbackrest_restore#module:label) takes).
      type: str
    type:
      description: V(full), V(diff) or V(incr).
      type: str
    prior:
      description: The backup it depends on (null for a full backup).
      type: str
    start:
      description: Start time, UTC, ISO 8601.
      type: str
    stop:
      description: End time, UTC, ISO 8601.
      type: str
    start_epoch:
      description: Start time, seconds since the epoch.
      type: int
    stop_epoch:
      description: End time, seconds since the epoch.
      type: int
    duration_seconds:
      description: Seconds the backup took.
      type: int
    age_seconds:
      description: Seconds since it ended.
      type: int
    database_size:
      description: Bytes of the cluster at the time of the backup.
      type: int
    delta_size:
      description: Bytes this backup copied (the changed files for diff and incr).
      type: int
    repository_size:
      description: Bytes the backup takes in the repository (compressed).
      type: int
    repository_delta_size:
      description: Bytes this backup added to the repository.
      type: int
    lsn_start:
      description: WAL position where the backup started.
      type: str
    lsn_stop:
      description: WAL position where it ended; recovery can only target later positions.
      type: str
    wal_start:
      description: First WAL segment the backup needs.
      type: str
    wal_stop:
      description: Last WAL segment the backup needs.
      type: str
    error:
      description: Whether pgBackRest found errors (for example page checksums) in it.
      type: bool
  sample:
    - {label: 20261207-075615F, type: full, prior: null, start: "2026-12-07T07:56:15Z", stop: "2026-12-07T07:56:17Z",
       start_epoch: 1796630175, stop_epoch: 1796630177, duration_seconds: 2, age_seconds: 3598,
       database_size: 22988580, delta_size: 22988580, repository_size: 4520167, repository_delta_size: 4520167,
       lsn_start: 0/2000028, lsn_stop: 0/3000050, wal_start: "000000010000000000000002",
       wal_stop: "000000010000000000000003", error: false}
backup_count:
  description: Number of backups.
  returned: always
  type: int
oldest:
  description: The oldest backup (as in RV(backups)), null without backups.
  returned: always
  type: dict
latest:
  description: The newest backup of any type, null without backups.
  returned: always
  type: dict
latest_full:
  description: The newest full backup, null without one.
  returned: always
  type: dict
latest_diff:
  description: The newest differential backup, null without one.
  returned: always
  type: dict
latest_incr:
  description: The newest incremental backup, null without one.
  returned: always
  type: dict
archive:
  description:
    - The WAL kept for the current database (C(min_wal), C(max_wal)) and every archive id
      (one per database version the stanza had) with its range.
    - C(timelines), once the stanza has an archive, lists the timelines of the current archive
      id's directory (C(pgbackrest repo-ls)) - of its segments and of its history files, so a
      history file archived alone shows too (pgBackRest's C(info) does not list it).
  returned: always
  type: dict
  sample: {min_wal: "000000010000000000000001", max_wal: "000000010000000000000009", timelines: [1],
           ids: [{id: 15-1, min_wal: "000000010000000000000001", max_wal: "000000010000000000000009"}]}
database:
  description: System identifier and version of the current database of the stanza (null before stanza-create).
  returned: always
  type: dict
  sample: {system_id: 7716467831998378698, version: "15"}
backup_in_progress:
  description: Whether a backup holds the stanza's lock now.
  returned: always
  type: bool
cipher:
  description: The repository's cipher (V(none) or V(aes-256-cbc)).
  returned: always
  type: str
check:
  description:
    - The result of C(pgbackrest check) - C(passed), C(message) (the first error and its
      hints), C(errors) (C(code), C(kind), C(message), C(hints)) and C(warnings).
  returned: when O(check=true)
  type: dict
  sample: {passed: false, message: "pgbackrest check failed: [087] archive_mode must be enabled",
           errors: [{code: 87, kind: archive_mode_off, message: archive_mode must be enabled, hints: []}],
           warnings: []}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.multidc.plugins.module_utils.pgbackrest import PgbackrestError
from ansible_collections.pgha.multidc.plugins.module_utils.pgbackrest_run import (
    check_common, pgbackrest_argument_spec, read_archive_timelines, read_info, run_check)


def main():
    argument_spec = pgbackrest_argument_spec()
    argument_spec.update(check=dict(type='bool', default=False))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    result = {'changed': False}
    try:
        check_common(params)
        if params['check']:
            # First, so that the info shows the segment the check had archived.
            result['check'] = run_check(params)
        result.update(read_info(params))
        if result['archive_id']:
            result['archive']['timelines'] = read_archive_timelines(params, result['archive_id'])
    except PgbackrestError as error:
        module.fail_json(msg=str(error), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

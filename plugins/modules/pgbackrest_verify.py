#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: pgbackrest_verify
short_description: Prove that a pgBackRest backup restores, on a throwaway server
version_added: 0.1.0
description:
  - A backup that was never restored is not a backup. On the repository host, in order -
  - 1. C(pgbackrest verify) (unless O(verify_repository=false)), pgBackRest's check of the
    checksum and size of every file of every backup and WAL segment in the repository; a
    damaged file fails the task with its name (RV(verify.damaged_files)) and nothing is restored.
  - 2. C(pgbackrest restore) of the latest backup, or of the one O(set) names, into O(scratch_dir).
  - 3. A throwaway PostgreSQL server on it, which replays the WAL archive to its end
    (O(type=default)) or only to the backup's consistency point (O(type=immediate)) and
    promotes itself; the module waits until it accepts connections.
  - 4. Checks - the row counts of O(tables), each against its minimum, and with O(amcheck=true)
    C(pg_amcheck) of every database.
  - 5. Whatever happened before, the server is stopped and O(scratch_dir) removed.
  - The throwaway server cannot write into the repository - C(archive_mode=off) and empty
    C(archive_command), C(archive_library), C(recovery_end_command) and
    C(archive_cleanup_command) are given on its command line, which wins over every
    configuration file of the backup, so neither its WAL nor the history file of the new
    timeline its promotion starts is ever pushed. Its C(restore_command) is a synchronous
    C(archive-get), which only reads.
  - The server listens on no TCP address - its socket is in O(scratch_dir), which only its
    owner can enter; O(port) only names the socket. Settings of the database hosts that
    would stop it on this host or make the checks wait are overridden the same way
    (C(shared_preload_libraries), C(ssl), C(synchronous_standby_names), C(shared_buffers)
    128MB, C(hot_standby=off) - no connection before the promotion).
  - Fails when a check fails, with every reason in the message and the figures of the run
    in the result. Before anything is restored it refuses - an unknown backup label, a bad
    O(tables) entry, no PostgreSQL server binaries for the backup's major version, an
    O(scratch_dir) that exists and was not made by this module, too little free space
    (the backup's size + 10 % + 256 MiB). A O(scratch_dir) left by a run that was killed
    (its marker file unlocked) is cleaned up first (C(changed=true)).
author:
  - pgha.multidc contributors (!UNKNOWN)
options:
  set:
    description:
      - The label of the backup to verify (RV(pgha.multidc.pgbackrest_info#module:backups)).
      - Default - the latest backup.
    type: str
    aliases: [label]
  type:
    description:
      - V(default) replays the whole archive after the backup, then promotes - proves the
        backup and the WAL up to now.
      - V(immediate) stops as soon as the backup is consistent - proves the backup alone.
    type: str
    choices: [default, immediate]
    default: default
  tables:
    description:
      - Tables whose rows are counted, each with an optional minimum, in the database O(database).
      - A dict of table names to minimums (a null minimum - count only), a list of C(name) or
        C(name=minimum), or a string of these separated by commas or new lines (C(public.orders=1000, customers)).
      - Names are read the way SQL reads them (C(to_regclass)) - schema-qualified or not,
        folded to lower case unless double-quoted. A table that does not exist fails the check.
    type: raw
  database:
    description: The database of O(tables).
    type: str
    default: postgres
  user:
    description: The database role the checks connect as (over the socket, C(trust) for the throwaway server).
    type: str
    default: postgres
  amcheck:
    description:
      - Also run C(pg_amcheck --all --install-missing) (heap tables and B-tree indexes of
        every database) on the restored server. Skipped (C(ran=false) in RV(amcheck)) when
        C(pg_amcheck) is not installed (it comes with PostgreSQL 14 and later).
    type: bool
    default: false
  verify_repository:
    description: Run C(pgbackrest verify) before the restore, and fail without restoring when it finds damage.
    type: bool
    default: true
  scratch_dir:
    description:
      - The directory the backup is restored into, with the server's socket and log. It must
        not exist (or be empty); it is created with mode 0700 and removed at the end.
      - It needs the backup's database size in free space, plus room for WAL.
    type: path
    default: /var/lib/postgresql/pgha-verify
  port:
    description: The port number of the throwaway server's socket (default - one free on 127.0.0.1).
    type: int
  process_max:
    description: Parallel processes of C(pgbackrest verify) and C(restore) (default - the configuration file's C(process-max)).
    type: int
  recovery_timeout:
    description: Seconds the server may take to replay the archive and promote itself.
    type: int
    default: 3600
  pg_bindir:
    description: Directory of C(postgres), C(pg_ctl), C(psql) and C(pg_amcheck) (default - the distribution's for the backup's major version).
    type: path
extends_documentation_fragment:
  - pgha.multidc.pgbackrest
attributes:
  check_mode:
    support: full
    description: Runs every check that changes nothing and returns RV(plan), what a run would do; restores nothing.
  diff_mode:
    support: none
    description: A verification leaves nothing behind; there is no difference to show.
  platform:
    support: full
    platforms: posix
    description: Runs on the repository host, as the owner of the repository, with the PostgreSQL server binaries of the backup's major version installed.
notes:
  - Run it as the owner of the repository (C(become_user=postgres)); PostgreSQL refuses to run as root.
  - C(pgbackrest verify) reads and decompresses the whole repository, and the restore needs
    the space of the whole database - schedule it when the repository host is quiet.
  - pgBackRest 2.45 exits with status 0 even when C(verify) finds damage; this module reads
    its report (C(status=error)) and its log (the names of the damaged files).
seealso:
  - module: pgha.multidc.pgbackrest_info
  - module: pgha.multidc.pgbackrest_restore
  - name: pgBackRest verify command
    description: The repository check this module runs first.
    link: https://pgbackrest.org/command.html#command-verify
'''

EXAMPLES = r'''
- name: Verify the latest backup, replayed to the end of the archive
  pgha.multidc.pgbackrest_verify:
    stanza: main
    tables:
      public.orders: 1000
      public.customers: null
    amcheck: true
  register: verified
  become: true
  become_user: postgres

- name: Report it
  ansible.builtin.debug:
    msg: >-
      {{ verified.label }} restored in {{ verified.restore_seconds }} s, recovered to
      {{ verified.end_lsn }} in {{ verified.recovery_seconds }} s; rows {{ verified.counts }}

- name: Verify a named backup alone (no WAL after it), tables given as text
  pgha.multidc.pgbackrest_verify:
    stanza: main
    set: 20261207-081500F
    type: immediate
    tables: "public.orders=1000, public.customers"
    scratch_dir: /srv/verify/pgha-verify
  become: true
  become_user: postgres
'''

RETURN = r'''
label:
  description: The backup verified (chosen in check mode).
  returned: when the backup could be chosen
  type: str
  sample: 20261207-075615F
backup:
  description: That backup, with the keys of RV(pgha.multidc.pgbackrest_info#module:backups) (its C(stop) is its time).
  returned: when the backup could be chosen
  type: dict
type:
  description: O(type).
  returned: when the backup could be chosen
  type: str
verify:
  description: What C(pgbackrest verify) found (null with O(verify_repository=false) and in check mode).
  returned: when the backup could be chosen
  type: dict
  contains:
    status:
      description: V(ok) or V(error), as pgBackRest reports it.
      type: str
    seconds:
      description: Wall-clock seconds of the command.
      type: float
    damaged_files:
      description:
        - Each file that failed - C(path) in the repository (C(backup/<stanza>/<label>/pg_data/...)
          or C(archive/<stanza>/<archive id>/...)), C(reason) (C(invalid checksum), C(invalid size),
          C(file missing), C(unreadable ...)), C(counted) (false for a missing WAL segment,
          which pgBackRest only warns about).
      type: list
      elements: dict
      sample: [{path: backup/main/20261207-075615F/pg_data/base/5/16384.zst, reason: invalid checksum, counted: true}]
    backups:
      description: Each backup's C(label), C(status) (V(valid), V(invalid), ...), C(files_checked), C(files_valid) and error counters.
      type: list
      elements: dict
    archives:
      description: Each archive id's C(wal_checked), C(wal_valid) and error counters.
      type: list
      elements: dict
    warnings:
      description: Other warnings of the command.
      type: list
      elements: str
    problems:
      description: Why the repository failed the check (empty when it passed).
      type: list
      elements: str
restore_seconds:
  description: Wall-clock seconds of C(pgbackrest restore).
  returned: when the backup could be chosen
  type: float
  sample: 12.4
recovery_seconds:
  description: Seconds from the server's start until it accepted connections, promoted.
  returned: when the backup could be chosen
  type: float
  sample: 3.1
end_lsn:
  description: The end of the last WAL record replayed (C(pg_last_wal_replay_lsn)).
  returned: when the backup could be chosen
  type: str
  sample: 0/5000060
timeline:
  description: The timeline the promoted copy started (never archived).
  returned: when the backup could be chosen
  type: int
  sample: 2
last_transaction_time:
  description: Commit time (UTC) of the last transaction replayed, null when recovery replayed none.
  returned: when the backup could be chosen
  type: str
  sample: "2026-12-07T08:14:58Z"
postgresql_version:
  description: The restored server's version.
  returned: when the backup could be chosen
  type: str
tables:
  description: Each table of O(tables) - C(name), C(minimum), C(count) (null when it does not exist).
  returned: when the backup could be chosen
  type: list
  elements: dict
  sample: [{name: public.orders, minimum: 1000, count: 1523}]
counts:
  description: The row count of each table of O(tables), by name.
  returned: when the backup could be chosen
  type: dict
  sample: {public.orders: 1523}
amcheck:
  description: C(ran), C(passed), C(seconds) and the end of the C(output) of C(pg_amcheck) (null without O(amcheck)).
  returned: when the backup could be chosen
  type: dict
scratch_dir:
  description: The scratch directory.
  returned: always
  type: str
scratch_removed:
  description: Whether the scratch directory was removed (false in check mode, and when the module refused before creating it).
  returned: always
  type: bool
leftover_removed:
  description: Whether a scratch directory left by a run that was killed was cleaned up first.
  returned: always
  type: bool
plan:
  description: In check mode, the steps a run would take.
  returned: check mode
  type: list
  elements: str
commands:
  description: In check mode, the C(verify) and C(restore) command lines and the throwaway server's C(restore_command) (they carry no secret).
  returned: check mode
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.multidc.plugins.module_utils.pgbackrest import PgbackrestError
from ansible_collections.pgha.multidc.plugins.module_utils.pgbackrest_run import pgbackrest_argument_spec
from ansible_collections.pgha.multidc.plugins.module_utils.pgbackrest_verify import (
    DEFAULT_SCRATCH_DIR, RESTORE_TYPES, describe_plan, plan_from_repository, run, verdict)


def main():
    argument_spec = pgbackrest_argument_spec()
    argument_spec.update(
        set=dict(type='str', aliases=['label']),
        type=dict(type='str', choices=list(RESTORE_TYPES), default='default'),
        tables=dict(type='raw'),
        database=dict(type='str', default='postgres'),
        user=dict(type='str', default='postgres'),
        amcheck=dict(type='bool', default=False),
        verify_repository=dict(type='bool', default=True),
        scratch_dir=dict(type='path', default=DEFAULT_SCRATCH_DIR),
        port=dict(type='int'),
        process_max=dict(type='int'),
        recovery_timeout=dict(type='int', default=3600),
        pg_bindir=dict(type='path'),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    result = {'changed': False, 'scratch_dir': params['scratch_dir'], 'scratch_removed': False,
              'leftover_removed': False}
    try:
        plan = plan_from_repository(params)
    except PgbackrestError as error:
        module.fail_json(msg=str(error), **result)
    result.update(label=plan['backup']['label'], backup=plan['backup'], type=params['type'])
    if module.check_mode:
        module.exit_json(plan=describe_plan(params, plan), commands=plan['commands'], **result)
    try:
        outcome, problems = run(params, plan)
    except OSError as error:
        module.fail_json(msg='the verification of %s could not clean up: %s' % (plan['backup']['label'], error),
                         **result)
    result.update(outcome)
    result['changed'] = bool(outcome['leftover_removed'])
    if problems:
        module.fail_json(msg=verdict(params, plan, problems), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

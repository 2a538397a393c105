#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: pg_fence
short_description: Fence a former PostgreSQL primary and read where its WAL ends
version_added: 0.1.0
description:
  - Makes sure that a former primary cannot come back as a second primary, in one call
    and in this order.
  - (1) Writes the health agent's fence file O(fence_file) (root:root 0644; its directory
    is created root:root 0755 when missing), so that the agent answers 503 and HAProxy
    takes the node out of the read-write port even if PostgreSQL still answered.
  - (2) Masks the PostgreSQL unit O(service) persistently (C(systemctl mask), not
    C(--runtime)), then stops it (C(systemctl stop), a fast shutdown for the units of
    Debian's postgresql-common). A masked unit cannot be started, not by an automatic
    C(Restart=), a reboot, C(postgresql.service) or a rerun of a playbook. With
    O(mask=false) (a planned handover that may be undone) the unit is only stopped.
  - (3) When a postmaster still runs on O(data_directory) (one not started by systemd, or
    one the stop did not end within O(stop_timeout) seconds), shuts it down with
    C(pg_ctl stop -m immediate) run as the owner of the data directory, and fails when it
    still runs afterwards.
  - (4) Reads C(pg_controldata) and, with O(wal_end=true), where the valid WAL on disk
    ends (from O(wal_end_start)), exactly as M(pgha.multidc.pg_datadir_state) does. A failure to read them does
    not fail the module, the fence is done; RV(wal_end_error) says why, and the caller
    goes on without a reference position.
  - A step that fails does not keep the next ones from running (a node that cannot be
    masked is still stopped); the module then fails with every error once all ran.
  - Idempotent, a rerun on a fenced host changes nothing (C(changed=false)) and reads the
    data directory again.
author:
  - pgha.multidc contributors (!UNKNOWN)
options:
  data_directory:
    description: The data directory of the PostgreSQL server to fence.
    type: path
    required: true
  service:
    description: The systemd unit of that server, for example C(postgresql@15-main.service).
    type: str
    required: true
  fence_file:
    description: The health agent's fence file (the agent answers 503 while it exists).
    type: path
    required: true
  fence_text:
    description:
      - What the fence file holds, for example who fenced the node, when and why.
      - The file is rewritten only when its text, owner or mode differ.
      - When not given, one line naming this module.
    type: str
  pg_bindir:
    description:
      - Directory of C(pg_ctl), C(pg_controldata) and C(pg_waldump).
      - Defaults to the one of the data directory's major version (C(/usr/lib/postgresql/<major>/bin)).
    type: path
  wal_end:
    description: Also find where the valid WAL on disk ends (RV(wal_end)), once no server runs.
    type: bool
    default: true
  wal_end_start:
    description:
      - Where to start reading WAL - V(redo) (the latest checkpoint's REDO location) or
        V(checkpoint) (the latest checkpoint record itself, the shutdown checkpoint of a
        cleanly stopped server), as in M(pgha.multidc.pg_datadir_state).
    type: str
    choices: [redo, checkpoint]
    default: redo
  mask:
    description:
      - Mask the unit before it is stopped. V(false) for a planned handover
        (playbooks/switchover.yml), which starts the server again when it aborts.
    type: bool
    default: true
  stop_timeout:
    description:
      - Seconds C(systemctl stop) is waited for; a stop that takes longer goes on in the
        background while a surviving postmaster is shut down immediately.
      - Seconds C(pg_ctl stop -m immediate) may take (its C(-t)).
    type: int
    default: 30
attributes:
  check_mode:
    support: full
    description:
      - Reads the fence file, the unit and the postmaster and reports what would change;
        writes, masks, stops and shuts down nothing. RV(killed_survivor) is then a
        prediction (a postmaster runs while the unit is not active). The data directory is
        read as in a real run, but not the end of WAL while a server runs.
  diff_mode:
    support: full
    description: Shows the fence file, the unit (masked, active) and the postmaster before and after.
  platform:
    support: full
    platforms: posix
    description: Runs on the database host, as root, on a host managed by systemd.
notes:
  - Run it as root (C(become=true)). C(pg_ctl) refuses to run as root, so it runs in a
    child process that takes the uid, the groups and a clean environment (C(HOME), C(PATH),
    C(C) locale) of the owner of the data directory.
  - C(pg_controldata) and C(pg_waldump) only read and accept root, so they run as root.
  - The unit comes back with C(systemctl unmask) (playbooks/rejoin.yml does it once the
    node is a standby again) and the fence file has to be removed.
seealso:
  - module: pgha.multidc.pg_datadir_state
  - module: pgha.multidc.pg_node_status
  - name: pg_ctl
    description: The PostgreSQL program that shuts down a surviving server.
    link: https://www.postgresql.org/docs/current/app-pg-ctl.html
'''

EXAMPLES = r'''
- name: Fence the old primary and read where its WAL ends
  pgha.multidc.pg_fence:
    data_directory: /var/lib/postgresql/15/main
    service: postgresql@15-main.service
    fence_file: /var/lib/pgha/fenced
    fence_text: |
      # Fenced by playbooks/failover.yml: failed primary, replaced by a promoted standby.
    pg_bindir: /usr/lib/postgresql/15/bin
  become: true
  register: fence

- name: Reference position of the failover
  ansible.builtin.debug:
    msg: "{{ fence.wal_end.lsn if fence.wal_end else 'unknown: ' ~ fence.wal_end_error }}"
'''

RETURN = r'''
fence_file_changed:
  description: Whether the fence file was (or would be) written.
  returned: always
  type: bool
  sample: true
masked_changed:
  description: Whether the unit was (or would be) masked; false when it was masked already.
  returned: always
  type: bool
  sample: true
stopped:
  description: Whether the unit was active (or activating, deactivating) and a stop was (or would be) asked for.
  returned: always
  type: bool
  sample: false
killed_survivor:
  description:
    - Whether a postmaster survived the stop and was shut down with C(pg_ctl stop -m immediate).
    - In check mode, whether that is expected.
  returned: always
  type: bool
  sample: false
was_running:
  description: Whether a postmaster ran on the data directory before the fence.
  returned: always
  type: bool
  sample: true
controldata:
  description:
    - C(pg_controldata), summarised as by M(pgha.multidc.pg_datadir_state) (without the raw labels).
    - Empty when it could not be read (RV(wal_end_error) says why).
  returned: always
  type: dict
  sample: {state: in production, clean_shutdown: false, system_identifier: "7301234567890123456",
           checkpoint_lsn: 0/5000060, redo_lsn: 0/5000028, timeline: 1}
wal_end:
  description:
    - Where the valid WAL on disk ends, as RV(pgha.multidc.pg_datadir_state#module:wal_end).
    - Null with O(wal_end=false) or when it could not be read.
  returned: always
  type: dict
  contains:
    lsn:
      description: First position without a valid record.
      type: str
    exact:
      description: False when only a lower bound is known.
      type: bool
    timeline:
      description: Timeline read.
      type: int
    start:
      description: Where reading started.
      type: str
    detail:
      description: The pg_waldump message the position was read from.
      type: str
  sample: {lsn: 0/50000A0, exact: true, timeline: 1, start: 0/5000028,
           detail: "invalid record length at 0/50000A0"}
wal_end_error:
  description:
    - Why the control file or the end of WAL could not be read, else null. The fence itself
      is done; the caller has no reference position.
  returned: always
  type: str
  sample: null
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.multidc.plugins.module_utils.datadir import (
    DatadirError, find_wal_end, read_controldata)
from ansible_collections.pgha.multidc.plugins.module_utils.fence import (
    FenceError, controldata_summary, fence_now, find_programs)

DEFAULT_FENCE_TEXT = 'Fenced by pgha.multidc.pg_fence.\n'
WAL_END_TIMEOUT = 300


def read_disk(data_directory, pg_bindir, wal_end, running_pid, wal_end_start='redo'):
    """(controldata summary, wal_end, error) as pg_datadir_state reads them.

    pg_controldata and pg_waldump run as root (this module's user): they only read, accept
    root, and root reads any data directory; no second privilege switch is needed here.
    """
    try:
        bindir = find_programs(data_directory, pg_bindir, 'pg_controldata')
        controldata = read_controldata(bindir, data_directory)
    except (FenceError, DatadirError) as error:
        return {}, None, str(error)
    if not wal_end:
        return controldata_summary(controldata), None, None
    if running_pid:
        return (controldata_summary(controldata), None,
                'a server runs on %s (pid %s): its end of WAL is read once it is stopped' % (data_directory, running_pid))
    try:
        start = controldata.get('checkpoint_lsn') if wal_end_start == 'checkpoint' else None
        end = find_wal_end(bindir, data_directory, controldata, start=start, timeout=WAL_END_TIMEOUT)
    except DatadirError as error:
        return controldata_summary(controldata), None, str(error)
    return controldata_summary(controldata), end, None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            data_directory=dict(type='path', required=True),
            service=dict(type='str', required=True),
            fence_file=dict(type='path', required=True),
            fence_text=dict(type='str'),
            pg_bindir=dict(type='path'),
            wal_end=dict(type='bool', default=True),
            wal_end_start=dict(type='str', default='redo', choices=['redo', 'checkpoint']),
            mask=dict(type='bool', default=True),
            stop_timeout=dict(type='int', default=30),
        ),
        supports_check_mode=True,
    )
    params = module.params
    data_directory = params['data_directory']
    text = DEFAULT_FENCE_TEXT if params['fence_text'] is None else params['fence_text']
    result = dict(changed=False, fence_file_changed=False, masked_changed=False, stopped=False,
                  killed_survivor=False, was_running=False, controldata={}, wal_end=None, wal_end_error=None)
    if os.geteuid() != 0:
        module.fail_json(msg='pg_fence masks and stops a systemd unit: run it as root (become: true)', **result)
    if params['stop_timeout'] < 1:
        module.fail_json(msg='stop_timeout must be at least 1 second', **result)
    try:
        outcome = fence_now(data_directory, params['service'], params['fence_file'], text,
                            pg_bindir=params['pg_bindir'], mask=params['mask'],
                            stop_timeout=params['stop_timeout'],
                            systemctl_bin=module.get_bin_path('systemctl', required=True),
                            check_mode=module.check_mode)
    except FenceError as error:
        module.fail_json(msg=str(error), **result)
    for key in ('was_running', 'fence_file_changed', 'masked_changed', 'stopped', 'killed_survivor'):
        result[key] = outcome[key]
    for warning in outcome['warnings']:
        module.warn(warning)
    if module._diff:
        before = outcome['before']
        result['diff'] = {
            'before': before,
            'after': {'fence_file': text, 'masked': params['mask'] or before['masked'], 'active': False,
                      'postmaster_pid': None},
        }
    result['controldata'], result['wal_end'], result['wal_end_error'] = read_disk(
        data_directory, params['pg_bindir'], params['wal_end'], outcome['pid'], wal_end_start=params['wal_end_start'])
    result['changed'] = any(result[key] for key in ('fence_file_changed', 'masked_changed', 'stopped', 'killed_survivor'))
    if outcome['errors']:
        module.fail_json(msg='the fence is incomplete: %s' % '; '.join(outcome['errors']), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

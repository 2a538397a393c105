#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: pg_replay_control
short_description: Pause, resume or inspect WAL replay on a PostgreSQL standby
version_added: 0.1.0
description:
  - Pauses or resumes WAL replay on a PostgreSQL 14+ standby (C(pg_wal_replay_pause),
    C(pg_wal_replay_resume)), or reports where replay stands.
  - While replay is paused the standby keeps receiving WAL but applies none of it, so its
    data stays as it was, for example during a risky change on the primary, or to read a
    consistent view for a while.
  - A pause takes effect only when the startup process is about to replay its next WAL
    record; until then C(pg_get_wal_replay_pause_state()) says C(pause requested). With
    O(wait=true) the module waits until the state is C(paused), so that once it returns no
    further WAL is applied. A replay held up (for example by a recovery conflict with a
    query on the standby) keeps the state at C(pause requested); the module then fails
    after O(timeout) seconds with what the startup process waits on, and leaves the request
    in place.
  - Fails with a clear message on a server that is not in recovery (a primary).
author:
  - pgha.multidc contributors (!UNKNOWN)
options:
  action:
    description:
      - V(pause) requests a pause (unless replay is paused or a pause is already requested)
        and, with O(wait=true), waits until replay is paused.
      - V(resume) resumes replay when it is paused or a pause is requested.
      - V(status) changes nothing and reports the replay state.
    type: str
    default: status
    choices: [pause, resume, status]
  wait:
    description:
      - With O(action=pause), wait until the pause is in effect (state C(paused)).
      - With V(false) the module returns as soon as the pause is requested; RV(pause_state)
        may then be C(pause requested).
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for the pause to take effect before failing.
    type: int
    default: 30
extends_documentation_fragment:
  - pgha.multidc.connection
attributes:
  check_mode:
    support: full
    description: Reports the current state and whether the action would change it; requests nothing and does not wait.
  diff_mode:
    support: full
    description: Shows the pause state before and after.
  platform:
    support: full
    platforms: posix
    description: Runs on the database host (as the user that owns the cluster) or wherever the server is reachable.
notes:
  - C(changed) is true only when the module requested a pause or a resume. Waiting for a
    pause that was requested earlier is not a change.
  - Promotion ends a pause (PostgreSQL replays the remaining WAL first); see
    M(pgha.multidc.pg_promote) for how it treats a paused standby.
seealso:
  - module: pgha.multidc.pg_promote
  - module: pgha.multidc.pg_replication_info
  - name: Recovery control functions
    description: The PostgreSQL functions this module calls.
    link: https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-RECOVERY-CONTROL
'''

EXAMPLES = r'''
- name: Freeze the disaster recovery standby before a risky migration on the primary
  pgha.multidc.pg_replay_control:
    action: pause
    timeout: 60
  become: true
  become_user: postgres

- name: Let it catch up again
  pgha.multidc.pg_replay_control:
    action: resume
  become: true
  become_user: postgres

- name: Where does replay stand?
  pgha.multidc.pg_replay_control:
  register: replay
  become: true
  become_user: postgres
'''

RETURN = r'''
pause_state:
  description: C(pg_get_wal_replay_pause_state()) after the run.
  returned: always
  type: str
  sample: paused
paused:
  description: Whether replay is paused (RV(pause_state) is C(paused)).
  returned: always
  type: bool
  sample: true
previous_pause_state:
  description: The pause state before the run.
  returned: always
  type: str
  sample: not paused
receive_lsn:
  description: Last WAL position received and flushed by streaming (null when nothing was streamed since the server started).
  returned: always
  type: str
  sample: 0/3018120
replay_lsn:
  description: Last WAL position replayed.
  returned: always
  type: str
  sample: 0/3018090
replay_gap_bytes:
  description: Bytes received but not replayed yet.
  returned: always
  type: int
  sample: 144
startup_wait_event:
  description: What the startup process (replay) waits on, as C(type:event), for example C(IPC:RecoveryPause).
  returned: always
  type: str
  sample: "IPC:RecoveryPause"
wal_receiver_status:
  description: Status of the WAL receiver (C(streaming) when connected), null when none runs.
  returned: always
  type: str
  sample: streaming
waited_seconds:
  description: Seconds spent waiting for the pause to take effect.
  returned: always
  type: float
  sample: 0.2
queries:
  description: Statements that changed something (or would have, in check mode).
  returned: always
  type: list
  elements: str
  sample: ["SELECT pg_wal_replay_pause()"]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.multidc.plugins.module_utils.connection import connection_argument_spec
from ansible_collections.pgha.multidc.plugins.module_utils.module_run import local_connection
from ansible_collections.pgha.multidc.plugins.module_utils.node_state import replay_status
from ansible_collections.pgha.multidc.plugins.module_utils.replication import (
    PAUSE_SQL, RESUME_SQL, pending_pause_message, replay_view, request_pause,
    request_resume, require_standby, wait_for_pause)

_VERB = {'pause': 'pause replay', 'resume': 'resume replay', 'status': 'report the replay state'}
# action -> (the pause state it leads to, its statement, the function that runs and records it)
_CHANGES = {'pause': ('paused', PAUSE_SQL, request_pause), 'resume': ('not paused', RESUME_SQL, request_resume)}


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        action=dict(type='str', default='status', choices=['pause', 'resume', 'status']),
        wait=dict(type='bool', default=True),
        timeout=dict(type='int', default=30),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    action = module.params['action']
    result = {'changed': False, 'queries': [], 'waited_seconds': 0.0}
    if module.params['timeout'] < 0:
        module.fail_json(msg='timeout cannot be negative', **result)

    with local_connection(module, result) as conn:
        before = require_standby(conn, _VERB[action])
        previous = before['pause_state']
        after_state = previous
        if action in _CHANGES:
            state, sql, request = _CHANGES[action]
            # A pause changes only 'not paused'; a resume, 'paused' and 'pause requested'.
            if (previous == 'not paused') != (state == 'not paused'):
                result['changed'] = True
                after_state = state
                if not module.check_mode:
                    request(conn, result['queries'])
                else:
                    result['queries'].append(sql)

        status = replay_status(conn)
        if action == 'pause' and module.params['wait'] and not module.check_mode:
            ok, status, waited = wait_for_pause(conn, module.params['timeout'])
            result['waited_seconds'] = round(waited, 3)
            if not ok:
                result.update(replay_view(status), previous_pause_state=previous)
                module.fail_json(msg=pending_pause_message(status, waited), **result)
        result.update(replay_view(status), previous_pause_state=previous)
        if module.check_mode and result['changed']:
            result['pause_state'], result['paused'] = after_state, after_state == 'paused'
        if module._diff:
            result['diff'] = {'before': {'pause_state': previous}, 'after': {'pause_state': result['pause_state']}}
        if action == 'pause' and not module.params['wait'] and not result['paused']:
            result['msg'] = 'pause requested; it takes effect before the next WAL record is replayed'
    module.exit_json(**result)


if __name__ == '__main__':
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: pg_promote
short_description: Promote a PostgreSQL standby after safety checks
version_added: 0.1.0
description:
  - Promotes a PostgreSQL 14+ standby with C(pg_promote(wait => true)) and returns once it
    accepts writes (out of recovery, and a transaction id can be assigned).
  - A server that already is a primary is left alone (C(changed=false)) and its timeline
    is returned.
  - Before anything changes, these checks run in this order; each one that fails refuses
    the promotion with the reason and the numbers, unless O(force=true) (then it is
    recorded as C(overridden) with a warning).
  - (a) B(Split brain guard.) The upstream recorded in C(primary_conninfo), and each of
    O(guard_hosts), is probed. One that answers as a primary (not in recovery) refuses the
    promotion. One that answers but whose role cannot be told (login refused, TLS error)
    refuses it too; only one that does not answer at all (refused, timed out, unknown
    host) counts as down. An upstream that answers as a standby (a cascade) passes, and
    its WAL position becomes a reference for check (c).
  - (b) B(Replay.) A paused standby (or one with a pause requested) is refused unless
    O(resume_replay=true), because promotion would end the pause and replay the WAL held
    back. With O(wait_for_replay=true) the module then waits up to O(replay_timeout)
    seconds until everything received is replayed, and refuses when more than
    O(max_unreplayed_bytes) remain.
  - (c) B(Lag.) With O(max_lag_bytes), the standby's position (the higher of received and
    replayed WAL) is compared with the reference, the most advanced of O(reference_lsn)
    and the upstream's position when the upstream answered; more than O(max_lag_bytes)
    behind refuses the promotion.
  - Check (c) is evaluated before the waiting part of (b), so that O(resume_replay), the
    one change a refused run can make, happens only once (a), the pause rule and (c) passed.
author:
  - pgha.multidc contributors (!UNKNOWN)
options:
  force:
    description:
      - Promote even when a check fails. Every check still runs and is reported, marked
        C(overridden). Promoting while the old primary is alive makes two primaries;
        fence it first.
    type: bool
    default: false
  wait_seconds:
    description:
      - Seconds C(pg_promote) waits for the promotion to finish, and then for the server to
        accept a write transaction.
    type: int
    default: 60
  wait_for_replay:
    description:
      - Wait up to O(replay_timeout) seconds for replay to reach the received WAL before
        promoting. With V(false) the gap is measured once.
    type: bool
    default: true
  replay_timeout:
    description: Seconds to wait for replay to catch up with the received WAL.
    type: int
    default: 60
  resume_replay:
    description:
      - When replay is paused (or a pause is requested), resume it and wait for it to
        catch up, instead of refusing. PostgreSQL would replay that WAL during promotion
        anyway; this makes the wait and the check explicit.
    type: bool
    default: false
  max_unreplayed_bytes:
    description:
      - Most bytes of received WAL that may still be unreplayed after waiting. With the
        upstream gone replay always reaches the received WAL, so V(0) by default.
      - Received bytes that are the beginning of a record not received completely (replay
        waits for the rest, which will never come from a dead primary) do not count.
      - On a standby with C(recovery_min_apply_delay) the delayed WAL counts; PostgreSQL
        applies it at promotion, which is usually exactly what a delayed standby is meant
        to avoid, so such a promotion needs a higher bound or O(force=true).
    type: int
    default: 0
  max_lag_bytes:
    description:
      - Refuse when the standby's position is more than this many bytes behind the
        reference (see O(reference_lsn)). Unset means no lag check (the lag is still
        reported when a reference is known).
      - When it is set but no reference is known, the check is skipped with a warning.
    type: int
  reference_lsn:
    description:
      - A WAL position the standby should have, for example the last LSN of the failed
        primary that a playbook found (in C(X/Y) form). Checked before connecting.
    type: str
  reference_wait:
    description:
      - Seconds to wait, before the checks, until the standby has received (or replayed)
        O(reference_lsn), for WAL that is on its way (a planned switchover waits for the
        old primary's shutdown checkpoint). When it has not arrived by then, the lag check
        judges the position as it is. 0 does not wait.
    type: int
    default: 0
  guard_hosts:
    description:
      - Further servers that must not answer as a primary, probed like the upstream (with
        the user, passfile and TLS settings of C(primary_conninfo)). For example the nodes
        of the primary datacenter when promoting a standby whose direct upstream is
        another standby.
    type: list
    elements: dict
    default: []
    suboptions:
      host:
        description: Host name or address.
        type: str
        required: true
      port:
        description: Port.
        type: int
        default: 5432
      user:
        description: Role to connect as, instead of the user of C(primary_conninfo).
        type: str
extends_documentation_fragment:
  - pgha.multidc.connection
  - pgha.multidc.upstream_probe
attributes:
  check_mode:
    support: full
    description:
      - Runs every check (including the wait for replay, which only reads) and reports
        C(changed=true) when the standby would be promoted; promotes nothing. With
        O(resume_replay=true) on a paused standby the replay check is C(predicted), as
        nothing is resumed.
  diff_mode:
    support: none
    description: A promotion has no file or setting to show as a difference.
  platform:
    support: full
    platforms: posix
    description: Runs on the database host (as the user that owns the cluster) or wherever the server is reachable.
notes:
  - RV(promotion_lsn) is where the new timeline begins (the switch point recorded in the
    new timeline's history file C(pg_wal/0000000N.history), read with C(pg_read_file),
    which needs superuser or C(pg_read_server_files)); when that file cannot be read it is
    C(pg_current_wal_lsn()) right after the promotion (RV(promotion_lsn_source) says which).
  - RV(duration_seconds) runs from the C(pg_promote) call until a write transaction succeeded.
  - Clients that follow C(primary_conninfo) of other standbys are not repointed; that is the
    job of the failover playbook.
seealso:
  - module: pgha.multidc.pg_replication_info
  - module: pgha.multidc.pg_replay_control
  - name: pg_promote
    description: The PostgreSQL function this module calls.
    link: https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-RECOVERY-CONTROL
'''

EXAMPLES = r'''
- name: Promote the disaster recovery leader once the primary datacenter is confirmed down
  pgha.multidc.pg_promote:
    max_lag_bytes: 16777216
    reference_lsn: "{{ failed_primary_last_lsn | default(omit) }}"
    guard_hosts:
      - host: dc1-pg1.example.net
      - host: dc1-pg2.example.net
  register: promotion
  become: true
  become_user: postgres

- name: Planned switchover step, the old primary was just stopped cleanly
  pgha.multidc.pg_promote:
    wait_seconds: 30
  become: true
  become_user: postgres

- name: Promote a standby whose replay was paused, after letting it catch up
  pgha.multidc.pg_promote:
    resume_replay: true
    replay_timeout: 300
  become: true
  become_user: postgres
'''

RETURN = r'''
promoted:
  description: Whether this run promoted the server.
  returned: always
  type: bool
  sample: true
timeline:
  description: The timeline the server writes on after the run (null in check mode while still a standby).
  returned: always
  type: int
  sample: 2
previous_timeline:
  description: The timeline before the promotion (for a server that already was a primary, the parent of its current timeline when known).
  returned: always
  type: int
  sample: 1
promotion_lsn:
  description: Where the new timeline begins (see the notes); null in check mode.
  returned: always
  type: str
  sample: 0/3018198
promotion_lsn_source:
  description: V(timeline_history) or V(current_wal_lsn), how RV(promotion_lsn) was found.
  returned: always
  type: str
  sample: timeline_history
duration_seconds:
  description: Seconds from the C(pg_promote) call until a write transaction succeeded; null without a promotion.
  returned: always
  type: float
  sample: 0.12
checks:
  description:
    - The checks made, keyed C(upstream), C(replay), C(lag) (and C(write) after a
      promotion), each with its C(status) (C(passed), C(skipped), C(overridden), C(refused),
      C(predicted)), its numbers, C(notes), and C(problem) when it did not pass.
    - Empty when the server already was a primary.
  returned: always
  type: dict
  sample:
    upstream: {name: upstream, status: passed, notes: ["the upstream replicator@dc1-pg1:5432 does not answer (...)"],
               upstream: {upstream: "replicator@dc1-pg1:5432", reachable: false, answered: false}, guard_hosts: []}
    replay: {name: replay, status: passed, pause_state: not paused, receive_lsn: 0/3018198, replay_lsn: 0/3018198,
             gap_bytes: 0, unreplayed_bytes: 0, waited_seconds: 0.0, max_unreplayed_bytes: 0}
    lag: {name: lag, status: passed, position: 0/3018198, reference_lsn: 0/3018198, lag_bytes: 0, max_lag_bytes: 16777216}
    write: {name: write, status: passed, xid: "735", transaction_read_only: "off"}
queries:
  description: Statements that changed something (C(pg_wal_replay_resume), C(pg_promote)).
  returned: always
  type: list
  elements: str
  sample: ["SELECT pg_promote(true, 60)"]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.multidc.plugins.module_utils.connection import (
    connection_argument_spec, upstream_probe_argument_spec)
from ansible_collections.pgha.multidc.plugins.module_utils.module_run import local_connection
from ansible_collections.pgha.multidc.plugins.module_utils.replication import promote, validate_reference_lsn

_NON_NEGATIVE = ('wait_seconds', 'replay_timeout', 'max_unreplayed_bytes', 'max_lag_bytes', 'reference_wait')


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(upstream_probe_argument_spec())
    argument_spec.update(
        force=dict(type='bool', default=False),
        wait_seconds=dict(type='int', default=60),
        wait_for_replay=dict(type='bool', default=True),
        replay_timeout=dict(type='int', default=60),
        resume_replay=dict(type='bool', default=False),
        max_unreplayed_bytes=dict(type='int', default=0),
        max_lag_bytes=dict(type='int'),
        reference_lsn=dict(type='str'),
        reference_wait=dict(type='int', default=0),
        guard_hosts=dict(type='list', elements='dict', default=[], options=dict(
            host=dict(type='str', required=True),
            port=dict(type='int', default=5432),
            user=dict(type='str'),
        )),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    result = {'changed': False, 'promoted': False, 'timeline': None, 'previous_timeline': None,
              'promotion_lsn': None, 'promotion_lsn_source': None, 'duration_seconds': None,
              'checks': {}, 'queries': []}

    # Bad input fails here, before any connection.
    for name in _NON_NEGATIVE:
        if params[name] is not None and params[name] < 0:
            module.fail_json(msg='%s cannot be negative' % name, **result)
    if params['wait_seconds'] < 1:
        module.fail_json(msg='wait_seconds must be at least 1', **result)
    if params['upstream_connect_timeout'] < 1:
        module.fail_json(msg='upstream_connect_timeout must be at least 1 second', **result)
    problem = validate_reference_lsn(params['reference_lsn'])
    if problem:
        module.fail_json(msg=problem, **result)

    with local_connection(module, result) as conn:
        outcome = promote(conn, params, check_mode=module.check_mode, queries=result['queries'])
    for warning in outcome.pop('warnings'):
        module.warn(warning)
    result.update(outcome)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

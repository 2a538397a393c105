# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``maintenance`` key in etcd: what keeps the keepers from racing a person or an
operation playbook (docs/design.md, "Keeper").

- A person's (``playbooks/maintenance.yml -e state=on``): no lease, stays until ``off``.
- An operation's (switchover.yml, failover.yml, ...; action plugin pgha_dcs_lock): on a
  lease that a detached child process (``keepalive_main``) refreshes while the
  ansible-playbook process lives, so a run that is killed or fails frees it within the
  lease's TTL, and one that ends gives it back at once (``release``).

An operation under a person's maintenance runs under it and leaves it in place.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sys
import time

from ansible_collections.pgha.multidc.plugins.module_utils.dcs import BLOCKED, MAINTENANCE, Dcs, DcsError

PERSON = 'person'
OPERATION = 'operation'


class LockError(Exception):
    pass


def _now():
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())


def describe(value):
    """A sentence naming who holds ``value`` (a maintenance key's value)."""
    if not isinstance(value, dict):
        return 'maintenance is on'
    return 'maintenance is held by %s (%s) since %s from %s%s' % (
        value.get('by') or '?', value.get('kind') or '?', value.get('since') or '?', value.get('controller') or '?',
        ': %s' % value['reason'] if value.get('reason') else '')


def acquire(dcs, operation, owner, ttl, reason=None, force=False):
    """Take the key for ``operation`` on a new lease of ``ttl`` s.

    ``owner``: {controller, pid}. Returns {lock: 'operation', lease, value} or, under a
    person's maintenance, {lock: 'person', value} (nothing taken). Another operation's key
    raises LockError unless ``force``, which takes its place.
    """
    value = dict(owner, by=operation, kind=OPERATION, reason=reason or '', since=_now())
    for _attempt in range(3):
        lease = dcs.grant(ttl)
        if dcs.create(MAINTENANCE, value, lease):
            return {'lock': OPERATION, 'lease': lease, 'value': value}
        dcs.revoke(lease)
        current = dcs.read().value(MAINTENANCE)
        if current is None:
            continue  # gone in between (a lease that ended): try again
        if isinstance(current, dict) and current.get('kind') == PERSON:
            return {'lock': PERSON, 'value': current}
        if not force:
            raise LockError('%s: another operation is running; wait for it to end, or pass force=true if it is '
                            'dead (its lock ends by itself within its TTL)' % describe(current))
        dcs.delete_if(MAINTENANCE, current)
    raise LockError('the maintenance key kept changing: %s' % describe(dcs.read().value(MAINTENANCE)))


def busy_keepers(view):
    """{host: action} of the keepers that announced an action (``acting`` in their member
    key) and have not published since it ended."""
    return dict((host, status['acting']) for host, status in view.members().items()
                if isinstance(status, dict) and status.get('acting'))


def wait_keepers_idle(dcs, timeout, interval=0.5):
    """Once the maintenance key exists no keeper starts an action (each announces it in
    a transaction that fails under the key): wait for the ones already started to end.
    {host: action} of those still busy after ``timeout`` s ({} when idle)."""
    deadline = time.time() + timeout
    while True:
        busy = busy_keepers(dcs.read())
        if not busy or time.time() >= deadline:
            return busy
        time.sleep(interval)


def release(dcs, lease):
    """End the operation's lease: its key goes with it (a person's key, without a lease,
    stays). True when the lease was still alive."""
    try:
        return bool(dcs.revoke(lease))
    except DcsError as error:
        if 'not found' in str(error).lower():
            return False
        raise


def person_on(dcs, owner, reason=None, force=False):
    """A person's maintenance (no lease); (previous, new) values."""
    previous = dcs.read().value(MAINTENANCE)
    if isinstance(previous, dict) and previous.get('kind') == PERSON and not force:
        return previous, previous
    value = dict(owner, by=reason or 'person', kind=PERSON, reason=reason or '', since=_now())
    dcs.put(MAINTENANCE, value)
    return previous, value


def person_off(dcs, force=False):
    """End a person's maintenance and a blocked failover (the keepers may try again);
    (previous maintenance, previous blocked). An operation's key is left unless ``force``."""
    view = dcs.read()
    previous, blocked = view.value(MAINTENANCE), view.value(BLOCKED)
    if isinstance(previous, dict) and previous.get('kind') == OPERATION and not force:
        raise LockError('%s: an operation is running; it gives the key back when it ends (force=true removes it)'
                        % describe(previous))
    if previous is not None:
        dcs.delete(MAINTENANCE)
    if blocked is not None:
        dcs.delete(BLOCKED)
    return previous, blocked


def keeper_view(dcs):
    """What status.yml shows of the keepers: the keys, the leader lease's time left, and
    each etcd endpoint's answer (member id, raft leader, version)."""
    from ansible_collections.pgha.multidc.plugins.module_utils.dcs import DECISION, LEADER, dc_leader_key
    view = dcs.read()
    leader_lease = view.lease(LEADER)
    members = view.members()
    return {
        'leader': view.value(LEADER),
        'leader_lease_left_s': dcs.time_to_live(leader_lease) if leader_lease else None,
        'dc_leaders': dict((dc, view.value(dc_leader_key(dc))) for dc in view.dc_leaders()),
        'maintenance': view.value(MAINTENANCE), 'blocked': view.value(BLOCKED),
        'decision': view.value(DECISION), 'members': members,
        'etcd': dcs.members_status(),
    }


# -- the keepalive child -------------------------------------------------------------------

def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def keep_alive(dcs, lease, pid, interval, alive=pid_alive, sleep=time.sleep, watch=0.5):
    """Refresh ``lease`` every ``interval`` s while process ``pid`` lives (looked at every
    ``watch`` s, so that a run that failed frees the key at once); then revoke it.
    Returns why it stopped."""
    waited = 0.0
    while True:
        sleep(min(watch, interval))
        waited += min(watch, interval)
        if not alive(pid):
            try:
                release(dcs, lease)
            except DcsError:
                pass  # the lease ends by itself within its TTL
            return 'process %d ended' % pid
        if waited < interval:
            continue
        waited = 0.0
        try:
            if not dcs.refresh(lease):
                return 'the lease ended'
        except DcsError:
            continue  # etcd unreachable for now: the next refresh may get through


def keepalive_main():
    """Entry point of the child: its settings as JSON on standard input (no secret)."""
    request = json.load(sys.stdin)
    dcs = Dcs(request['endpoints'], request['cluster'], tls=request.get('tls'), timeout=request.get('timeout', 3))
    keep_alive(dcs, request['lease'], request['pid'], max(1.0, request['ttl'] / 3.0))

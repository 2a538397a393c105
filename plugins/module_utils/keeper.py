# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The decisions of the HA keeper (pgha-keeper on every database node), as pure functions.

One loop per node, every ``loop_wait`` seconds: read the node (PostgreSQL, the fence file),
keep its etcd lease alive, read the cluster's keys (dcs.ClusterView), then ``decide``
what this node does now. The daemon only carries the decision out with the code the
operations playbooks use (candidate.py, replication.promote, follow.follow,
node_config, fence), so that the keeper and the playbooks never disagree.

The rules (docs/design.md, "Keeper"):
- The primary holds the leader key on its lease and renews it every loop. A primary whose
  last renewal is older than ``retry_timeout`` fences itself, unless it still reaches
  every other database node (failsafe: losing etcd alone never stops a healthy primary).
  ``retry_timeout`` < ``ttl``, so an isolated primary has stopped before its lease can expire.
- A primary whose server died (no postmaster) fences itself and releases the key at once;
  one whose postmaster runs but does not answer gets ``primary_start_timeout`` first.
- When the leader key is gone, the standbys of the failed primary's datacenter (the
  ``optime`` key names it) publish their positions; once all of them have published since
  (or ``settle`` seconds passed) each runs candidate.select_candidate on the same data and
  only the chosen one takes the key (one transaction, refused during maintenance or when
  a failover was blocked) and promotes itself. Another datacenter is never promoted.
- No candidate: the failover is blocked (the ``blocked`` key) and not retried until a
  person acts (an operation or maintenance off clears it).
- A standby datacenter keeps a leader (``dc/<dc>/leader``): the node that streams from the
  primary; when it is gone, the datacenter's best standby takes its place.
- Every standby follows the upstream the topology gives it (topology.live_upstreams with
  the current primary and datacenter leaders), once that upstream is alive.
- Maintenance (the ``maintenance`` key) pauses every decision but the bookkeeping of the
  keys (a primary keeps its key, a demoted one releases it).
- A fenced node (fence file) only publishes and releases its keys: it comes back through
  playbooks/rejoin.yml, never by itself.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pgha.multidc.plugins.module_utils.candidate import NoCandidate, select_candidate
from ansible_collections.pgha.multidc.plugins.module_utils.dcs import (
    BLOCKED, LEADER, MAINTENANCE, OPTIME, dc_leader_key)
from ansible_collections.pgha.multidc.plugins.module_utils.topology import live_upstreams, with_datacenter_leaders

# Actions (the daemon's verbs).
NOTHING = 'nothing'
WAIT = 'wait'
ACQUIRE = 'acquire_leader'
RENEW = 'renew_leader'
RELEASE = 'release_leader'
FENCE = 'fence'
FAILSAFE = 'failsafe'
ELECT = 'promote'
BLOCK = 'block'
FOLLOW = 'follow'
ACQUIRE_DC = 'acquire_dc_leader'
RELEASE_DC = 'release_dc_leader'

DEFAULTS = {'ttl': 10, 'loop_wait': 1, 'retry_timeout': 5, 'primary_start_timeout': 30,
            'max_lag_bytes': 1048576, 'autorecovery': True}


class Decision:
    """What the node does this loop: ``action``, a sentence saying why, and details."""

    def __init__(self, action, reason, **details):
        self.action = action
        self.reason = reason
        self.details = details

    def __repr__(self):
        return 'Decision(%s: %s)' % (self.action, self.reason)

    def as_dict(self):
        return dict(self.details, action=self.action, reason=self.reason)


def timing_problems(ttl, loop_wait, retry_timeout):
    """Why these timings cannot keep the promise "never two writable primaries"."""
    problems = []
    if loop_wait < 1:
        problems.append('loop_wait must be at least 1 s')
    if retry_timeout < loop_wait:
        problems.append('retry_timeout must be at least loop_wait')
    # The primary fences at retry_timeout (+ a loop + the stop); the lease ends at ttl.
    if ttl < retry_timeout + 2 * loop_wait + 2:
        problems.append('ttl must exceed retry_timeout + 2 x loop_wait + 2 s (the time a primary needs to notice '
                        'and fence itself before its lease ends)')
    return problems


# -- the topology the keys give ------------------------------------------------------------

def current_dc_leaders(cfg, view):
    """{datacenter: host} of the standby datacenters: the key's holder, else the inventory's."""
    leaders = dict(cfg['dc_leaders'])
    for dc in list(leaders):
        held = view.value(dc_leader_key(dc)) if view is not None else None
        if isinstance(held, dict) and held.get('host') in cfg['nodes']:
            leaders[dc] = held['host']
    return leaders


def desired_upstreams(cfg, primary, dc_leaders):
    """host -> the host it should follow with ``primary`` as the primary and ``dc_leaders``
    leading their datacenters (topology.with_datacenter_leaders, then
    topology.live_upstreams: as the playbooks decide it)."""
    hosts = sorted(cfg['nodes'])
    inventory = dict((h, cfg['nodes'][h].get('upstream') or '') for h in hosts)
    inventory = with_datacenter_leaders(inventory, cfg['dc_leaders'], dc_leaders)
    return live_upstreams(hosts, inventory, cfg['initial_primary'], primary)


def sync_intended(cfg, primary):
    """Application names the inventory wants as synchronous standbys of ``primary``."""
    nodes = cfg['nodes']
    hosts = cfg.get('sync_hosts') or [h for h in sorted(nodes)
                                      if nodes[h]['datacenter'] == nodes[primary]['datacenter']]
    return [nodes[h]['application_name'] for h in hosts if h != primary and h in nodes]


# -- the node's own situation -----------------------------------------------------------------

def local_role(local):
    """'primary' (writable, unfenced), 'standby', 'fenced', 'down' (no postmaster),
    'unanswering' (a postmaster that does not answer)."""
    if local.get('fenced'):
        return 'fenced'
    if not local.get('answering'):
        return 'unanswering' if local.get('postmaster_running') else 'down'
    if local.get('in_recovery'):
        return 'standby'
    return 'primary'


def holder(view, key):
    value = view.value(key) if view is not None else None
    return value.get('host') if isinstance(value, dict) else None


def failsafe_holds(peer_answers):
    """The primary may go on without etcd only while it reaches every other database node."""
    return bool(peer_answers) and all(peer_answers.values())


# The decisions that change nothing: not the "last change" of the state report.
QUIET_ACTIONS = (NOTHING, WAIT, RENEW)


def state_report(cfg, view, memory, decision, wall, mono, acted=True):
    """What the keeper writes to its state file each loop, for the health agent's metrics:
    ``wall`` is time.time(), ``mono`` time.monotonic() (the lease is timed on the latter).
    Remembers in ``memory`` the last decision that changed something (``acted``: it was
    carried out, not stopped by maintenance or an error)."""
    if acted and decision.action not in QUIET_ACTIONS:
        memory['last_change'] = {'action': decision.action, 'reason': decision.reason, 'at': wall}
    renewed = memory.get('last_renewed')
    report = {'at': wall, 'node': cfg['me'], 'ttl': cfg['ttl'], 'etcd_reachable': view is not None,
              'lease_renewed_at': None if renewed is None else wall - (mono - renewed),
              'decision': {'action': decision.action, 'reason': decision.reason},
              'last_change': memory.get('last_change'),
              'leader': None, 'holds_leader': None, 'maintenance': None, 'blocked': None}
    if view is not None:
        leader = holder(view, LEADER)
        report.update(leader=leader, holds_leader=leader == cfg['me'], maintenance=view.has(MAINTENANCE),
                      blocked=view.has(BLOCKED))
    return report


# -- the decision -----------------------------------------------------------------------------

def decide(cfg, local, view, memory, now):
    """The Decision of this loop.

    ``cfg``: the keeper configuration (see the daemon); ``local``: this node (``answering``,
    ``in_recovery``, ``fenced``, ``postmaster_running``, ``upstream_host``, ``down_since``);
    ``view``: the dcs.ClusterView, or None when etcd did not answer; ``memory``: the
    keeper's own record across loops (``last_renewed``, ``leader_gone_since``,
    ``leader_gone_revision``, ``my_revision``, ``peer_answers``); ``now``: a monotonic time.
    """
    role = local_role(local)
    me = cfg['me']
    if view is None:
        return _without_etcd(cfg, role, memory, now)
    leader = holder(view, LEADER)
    maintenance = view.value(MAINTENANCE) if view.has(MAINTENANCE) else None
    paused = maintenance is not None or not cfg.get('autorecovery', True)

    if role == 'fenced':
        if leader == me:
            return Decision(RELEASE, 'this node is fenced: it gives the leader key back')
        return _release_dc_key(cfg, view) or Decision(NOTHING, 'fenced: waiting for playbooks/rejoin.yml')

    if role == 'primary':
        return _as_primary(cfg, view, leader, paused, maintenance)

    if role in ('down', 'unanswering'):
        if leader == me:
            if paused:
                return Decision(NOTHING, 'PostgreSQL is %s, but automatic decisions are paused (%s)'
                                % (role, _pause_reason(cfg, maintenance)))
            if role == 'down':
                return Decision(FENCE, 'PostgreSQL died on the primary (no postmaster): fence it and give the '
                                       'leader key back so that a standby takes over', release=True)
            waited = now - (local.get('down_since') or now)
            if waited >= cfg['primary_start_timeout']:
                return Decision(FENCE, 'PostgreSQL has not answered for %d s on the primary (postmaster running): '
                                       'fence it and give the leader key back' % waited, release=True)
            return Decision(WAIT, 'PostgreSQL does not answer on the primary for %d s (fence after %d s)'
                            % (waited, cfg['primary_start_timeout']))
        return _release_dc_key(cfg, view) or Decision(NOTHING, 'PostgreSQL is %s on this standby' % role)

    return _as_standby(cfg, local, view, leader, paused, maintenance, memory, now)


def _pause_reason(cfg, maintenance):
    if not cfg.get('autorecovery', True):
        return 'pgha_autorecovery is false'
    if isinstance(maintenance, dict):
        return 'maintenance by %s%s' % (maintenance.get('by') or 'someone',
                                        ': %s' % maintenance['reason'] if maintenance.get('reason') else '')
    return 'maintenance'


def _without_etcd(cfg, role, memory, now):
    """etcd does not answer: a primary counts the time since its last renewal."""
    if role != 'primary':
        return Decision(NOTHING, 'etcd does not answer: a standby waits')
    since = now - memory.get('last_renewed', now)
    if since < cfg['retry_timeout']:
        return Decision(WAIT, 'etcd does not answer; last renewal of the lease %.1f s ago (fence after %d s '
                              'unless every database node is reachable)' % (since, cfg['retry_timeout']))
    if not memory.get('held_leader'):
        return Decision(NOTHING, 'etcd does not answer, and this primary does not hold the leader key')
    answers = memory.get('peer_answers') or {}
    if failsafe_holds(answers):
        return Decision(FAILSAFE, 'etcd does not answer for %.1f s, but every database node answers (%s): '
                                  'the primary goes on (failsafe)' % (since, ', '.join(sorted(answers))))
    silent = sorted(h for h, ok in answers.items() if not ok) or ['(no peer asked)']
    return Decision(FENCE, 'the lease could not be renewed for %.1f s and %s cannot be reached: this primary may be '
                           'isolated, it fences itself before its lease ends' % (since, ', '.join(silent)),
                    release=False)


def _as_primary(cfg, view, leader, paused, maintenance):
    me = cfg['me']
    if leader == me:
        return Decision(RENEW, 'primary holding the leader key')
    if leader is None:
        return Decision(ACQUIRE, 'primary without a leader key: takes it')
    if paused:
        return Decision(WAIT, 'writable primary while %s holds the leader key; paused (%s): nothing is fenced'
                        % (leader, _pause_reason(cfg, maintenance)))
    # After a manual failover the old primary's keeper may hold the key a little longer
    # (it gives it back once it sees its node down or fenced): only a holder that serves
    # as a primary replaces this one.
    status = view.members().get(leader) or {}
    if not (status.get('answering') and status.get('in_recovery') is False and not status.get('fenced')):
        return Decision(WAIT, 'writable primary while %s holds the leader key but does not serve as a primary: '
                              'waiting for it to give the key back' % leader)
    return Decision(FENCE, '%s holds the leader key: this node was replaced as the primary and must not take writes'
                    % leader, release=False)


def _release_dc_key(cfg, view):
    me = cfg['me']
    dc = cfg['nodes'][me]['datacenter']
    if holder(view, dc_leader_key(dc)) == me:
        return Decision(RELEASE_DC, 'this node cannot lead datacenter %s now: it gives the key back' % dc)
    return None


def _as_standby(cfg, local, view, leader, paused, maintenance, memory, now):
    me = cfg['me']
    nodes = cfg['nodes']
    my_dc = nodes[me]['datacenter']
    if leader == me:
        return Decision(RELEASE, 'in recovery while holding the leader key (demoted): gives it back')
    optime = view.value(OPTIME) if isinstance(view.value(OPTIME), dict) else {}
    primary = leader or optime.get('host')
    if not primary or primary not in nodes:
        return Decision(NOTHING, 'no primary known yet (no leader key, no optime)')
    primary_dc = nodes[primary]['datacenter']

    if leader is None:
        memory.setdefault('leader_gone_since', now)
        memory.setdefault('leader_gone_revision', memory.get('my_revision', 0))
        if paused:
            return Decision(NOTHING, 'no leader key, but automatic decisions are paused (%s)'
                            % _pause_reason(cfg, maintenance))
        if view.has(BLOCKED):
            return Decision(NOTHING, 'no leader key; the automatic failover was blocked: %s'
                            % (view.value(BLOCKED) or {}).get('reason', 'see status.yml'))
        if my_dc != primary_dc:
            return Decision(NOTHING, 'no leader key; the failed primary %s is in datacenter %s: this datacenter is '
                                     'never promoted automatically (playbooks/dr_promote.yml)' % (primary, primary_dc))
        return _election(cfg, view, primary, optime, memory, now)

    memory.pop('leader_gone_since', None)
    memory.pop('leader_gone_revision', None)
    dc_leaders = current_dc_leaders(cfg, view)
    if my_dc != primary_dc and not paused:
        dc_decision = _standby_datacenter(cfg, local, view, primary, memory, now)
        if dc_decision is not None:
            return dc_decision
        dc_leaders = current_dc_leaders(cfg, view)
    if paused:
        return Decision(NOTHING, 'standby of %s; paused (%s)' % (primary, _pause_reason(cfg, maintenance)))
    wanted = desired_upstreams(cfg, primary, dc_leaders).get(me)
    if not wanted:
        return Decision(NOTHING, 'no upstream in the topology')
    if local.get('upstream_host') in (wanted, nodes[wanted]['address']):
        return Decision(NOTHING, 'standby of %s' % wanted)
    alive = view.members().get(wanted) or {}
    if wanted != primary and not (alive.get('answering') and not alive.get('fenced')):
        return Decision(WAIT, 'should follow %s, which is not up: keeps following %s'
                        % (wanted, local.get('upstream_host')))
    return Decision(FOLLOW, 'the topology has this node follow %s (it follows %s)'
                    % (wanted, local.get('upstream_host') or 'nobody'), upstream=wanted)


def _candidate_nodes(cfg, view, datacenter):
    """The standbys of ``datacenter`` as candidate.select_candidate takes them, from what
    their keepers published (a keeper whose lease ended is absent: unreachable)."""
    members = view.members()
    nodes = []
    for host, spec in sorted(cfg['nodes'].items()):
        if spec['datacenter'] != datacenter:
            continue
        status = members.get(host)
        if not isinstance(status, dict):
            nodes.append({'name': host, 'datacenter': datacenter, 'reachable': False})
            continue
        nodes.append({
            'name': host, 'datacenter': datacenter,
            'reachable': bool(status.get('answering')) and not status.get('fenced'),
            'role': status.get('role'), 'receive_lsn': status.get('receive_lsn'),
            'replay_lsn': status.get('replay_lsn'), 'system_identifier': status.get('system_identifier'),
            'nofailover': spec.get('nofailover', False), 'priority': spec.get('priority', 0)})
    return nodes


def _settled(cfg, view, datacenter, memory, now, exclude=()):
    """Every live keeper of ``datacenter`` published after the key went (or settle passed)."""
    since = memory.get('leader_gone_revision', 0)
    revisions = view.member_revisions()
    stale = sorted(h for h, spec in cfg['nodes'].items()
                   if spec['datacenter'] == datacenter and h in revisions and h not in exclude
                   and revisions[h] <= since)
    waited = now - memory.get('leader_gone_since', now)
    return not stale or waited >= cfg.get('settle', 2 * cfg['loop_wait'] + 1), stale


def _election(cfg, view, failed, optime, memory, now):
    me = cfg['me']
    datacenter = cfg['nodes'][failed]['datacenter']
    settled, stale = _settled(cfg, view, datacenter, memory, now, exclude=(failed,))
    if not settled:
        return Decision(WAIT, 'leader key gone: waiting for the positions of %s' % ', '.join(stale))
    nodes = [n for n in _candidate_nodes(cfg, view, datacenter) if n['name'] != failed]
    try:
        decision = select_candidate(nodes, failed_primary_datacenter=datacenter,
                                    max_lag_bytes=cfg.get('max_lag_bytes'),
                                    reference_lsn=optime.get('lsn'),
                                    system_identifier=optime.get('system_identifier'))
    except NoCandidate as refusal:
        return Decision(BLOCK, 'automatic failover of %s refused: %s' % (failed, refusal),
                        failed_primary=failed, decision=refusal.decision)
    if decision['candidate'] != me:
        return Decision(WAIT, 'leader key gone: %s is the candidate' % decision['candidate'],
                        candidate=decision['candidate'])
    return Decision(ELECT, 'the primary %s is gone: %s' % (failed, decision['reasons'][-1]),
                    failed_primary=failed, decision=decision, reference_lsn=optime.get('lsn'))


def _standby_datacenter(cfg, local, view, primary, memory, now):
    """The leader of this standby datacenter: kept by the node that streams from the
    primary; taken, when nobody holds it, by that node at once or by the best standby."""
    me = cfg['me']
    nodes = cfg['nodes']
    dc = nodes[me]['datacenter']
    key = dc_leader_key(dc)
    held = holder(view, key)
    if held == me:
        memory.pop('dc_gone_since', None)
        return None
    if held is not None:
        memory.pop('dc_gone_since', None)
        return None
    if local.get('upstream_host') in (primary, nodes[primary]['address']):
        return Decision(ACQUIRE_DC, 'streams from the primary and datacenter %s has no leader key: takes it' % dc)
    memory.setdefault('dc_gone_since', now)
    if now - memory['dc_gone_since'] < cfg.get('settle', 2 * cfg['loop_wait'] + 1):
        return Decision(WAIT, 'datacenter %s has no leader: waiting before choosing one' % dc)
    try:
        decision = select_candidate(_candidate_nodes(cfg, view, dc), failed_primary_datacenter=dc)
    except NoCandidate as refusal:
        return Decision(NOTHING, 'datacenter %s has no leader and no standby can lead it: %s' % (dc, refusal))
    if decision['candidate'] != me:
        return Decision(WAIT, 'datacenter %s has no leader: %s is the candidate' % (dc, decision['candidate']))
    return Decision(ACQUIRE_DC, 'datacenter %s has no leader: %s' % (dc, decision['reasons'][-1]),
                    decision=decision)

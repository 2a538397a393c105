# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the operations playbooks (failover, switchover, rejoin) decide from the state of
every database host: pure functions, unit-tested, used through the filters of
plugins/filter/failover.py.

A node is a dict built by node_from_status() (playbooks/tasks/read_live.yml, from the
answer of pgha.multidc.pg_node_status, or with ``status=None`` for a host that could not
be read over SSH):

``name``, ``datacenter``, ``address``, ``ssh`` (the host answered over SSH),
``initialized``, ``running``, ``accepting``, ``standby_signal``, ``role`` ('primary',
'standby' or '' when PostgreSQL does not answer locally), ``timeline``, ``receive_lsn``,
``replay_lsn``, ``current_lsn``, ``system_identifier``, ``streaming``, ``upstream_host``
(the host of primary_conninfo), ``sender_host`` (the host the WAL receiver is connected
to, when streaming), ``read_only``, ``fenced`` (the fence file exists), ``masked``
(the PostgreSQL unit is masked), ``priority``, ``nofailover`` and ``witness``: what the
control node itself saw on the node's PostgreSQL port (module pg_probe: ``tcp``,
``answered``, ``reachable``, ``in_recovery``, ``read_only``, ``timeline``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pgha.multidc.plugins.module_utils.candidate import STANDBY_ROLES
from ansible_collections.pgha.multidc.plugins.module_utils.topology import synchronous_standby_names

ACTION_NONE = 'none'          # a healthy primary: nothing to do
ACTION_CONVERGE = 'converge'  # a healthy primary, but standbys still follow a dead host
ACTION_FAILOVER = 'failover'
ACTION_REFUSE = 'refuse'


def node_from_status(status, name, datacenter='', address=None, priority=0, nofailover=False, witness=None,
                     ssh_error=None):
    """The node dict of ``name`` from pgha.multidc.pg_node_status's answer (``status``).

    ``status`` None: the host could not be read over SSH (``ssh_error`` says why); it
    neither runs nor accepts as far as the decisions can tell.
    """
    node = {'name': name, 'datacenter': datacenter or '', 'address': address or name,
            'priority': int(priority or 0), 'nofailover': bool(nofailover), 'witness': witness or {}}
    if status is None:
        node.update(ssh=False, ssh_error=ssh_error or 'SSH failed', running=False, accepting=False,
                    initialized=None, role='')
        return node
    state = status.get('state') or {}
    settings = state.get('settings') or {}
    replicas = state.get('replicas') or []
    node.update(
        ssh=True,
        installed=status.get('installed'),
        initialized=status.get('initialized'),
        standby_signal=status.get('standby_signal'),
        running=status.get('running'),
        accepting=status.get('accepting'),
        role=status.get('role') or '',
        error=status.get('error'),
        timeline=state.get('timeline'),
        current_lsn=state.get('current_lsn'),
        receive_lsn=state.get('receive_lsn'),
        replay_lsn=state.get('replay_lsn'),
        system_identifier=state.get('system_identifier'),
        streaming=bool(state.get('streaming')),
        replay_paused=bool(state.get('replay_paused')),
        upstream_host=(state.get('upstream') or {}).get('host'),
        sender_host=(state.get('wal_receiver') or {}).get('sender_host'),
        replicas=[r.get('application_name') for r in replicas],
        streaming_replicas=[r.get('application_name') for r in replicas if r.get('state') == 'streaming'],
        sync_names=settings.get('synchronous_standby_names'),
        read_only=(witness or {}).get('read_only'),
        fenced=status.get('fenced'),
        masked=status.get('masked'),
        unit=status.get('unit') or {},
    )
    return node


def answers_as_primary(node):
    """(True/False, evidence) whether anyone sees this node's PostgreSQL as a primary."""
    evidence = []
    if node.get('running') and node.get('accepting') and node.get('role') == 'primary':
        evidence.append('its host reports a running primary')
    witness = node.get('witness') or {}
    if witness.get('reachable') and witness.get('in_recovery') is False:
        evidence.append('it answers the control node as a primary (timeline %s)' % witness.get('timeline'))
    return bool(evidence), evidence


def accepts_writes(node):
    """(True/False, reason) for a node that answers as a primary."""
    witness = node.get('witness') or {}
    if node.get('fenced'):
        return False, 'its fence file exists (the health agent keeps it out of HAProxy)'
    read_only = node.get('read_only')
    if read_only is None:
        read_only = witness.get('read_only')
    if read_only:
        return False, 'default_transaction_read_only is on'
    return True, 'accepts writes'


def host_of_address(nodes, address):
    """Name of the node whose address (or name) is ``address``."""
    if not address:
        return None
    for node in nodes:
        if str(address) in (str(node.get('address')), node['name']):
            return node['name']
    return None


def running_standbys(nodes):
    return [n for n in nodes if n.get('running') and n.get('accepting') and n.get('role') in STANDBY_ROLES]


def find_old_primary(nodes, failed_primary=None):
    """(name or None, reason): the host that was the primary, when no primary answers."""
    if failed_primary:
        return failed_primary, 'given as failed_primary'
    standby_names = set(n['name'] for n in running_standbys(nodes))
    upstreams = {}
    for node in running_standbys(nodes):
        host = host_of_address(nodes, node.get('upstream_host'))
        if host and host not in standby_names:
            upstreams.setdefault(host, []).append(node['name'])
    if len(upstreams) == 1:
        host, followers = list(upstreams.items())[0]
        return host, '%s follow%s it' % (', '.join(sorted(followers)), 's' if len(followers) == 1 else '')
    if len(upstreams) > 1:
        return None, ('the standbys follow different hosts that are not standbys (%s)'
                      % '; '.join('%s: %s' % (h, ', '.join(f)) for h, f in sorted(upstreams.items())))
    stopped = [n['name'] for n in nodes if n.get('ssh') and n.get('initialized') and not n.get('running')
               and not n.get('standby_signal')]
    if len(stopped) == 1:
        return stopped[0], 'it holds the only stopped primary data directory'
    return None, 'no standby names a primary it follows and no single stopped primary data directory was found'


def classify(nodes, requested=None, failed_primary=None, force=False, sync_mode=None):
    """The plan of failover.yml: what to do, and why.

    Returns a dict: ``action`` (none, converge, failover, refuse), ``primary`` (the live
    primary for none/converge), ``old_primary`` (failover), ``reasons`` (sentences),
    ``refusal`` (the message for refuse), ``stale_followers`` (standbys following a host
    that does not run, for converge), ``fence`` (whether the old primary's host can be
    reached to fence it), ``overridden`` (guards that force overrode).
    """
    names = set(n['name'] for n in nodes)
    plan = {'action': None, 'primary': None, 'old_primary': None, 'reasons': [], 'refusal': None,
            'stale_followers': [], 'sync_problem': None, 'fence': False, 'overridden': [],
            'requested': requested or None}
    reasons = plan['reasons']

    def refuse(message):
        plan['action'] = ACTION_REFUSE
        plan['refusal'] = message
        return plan

    if requested and requested not in names:
        return refuse('candidate %s is not a database host of the inventory' % requested)
    if failed_primary and failed_primary not in names:
        return refuse('failed_primary %s is not a database host of the inventory' % failed_primary)

    primaries = []
    for node in nodes:
        yes, evidence = answers_as_primary(node)
        if yes:
            primaries.append(node)
            reasons.append('%s answers as a primary: %s' % (node['name'], '; '.join(evidence)))

    if len(primaries) > 1:
        return refuse('split brain: %s all answer as primary. Nothing was changed. Fence the one that must not be the '
                      'primary (its writes since the failover are lost to the cluster), then rejoin it with '
                      'playbooks/rejoin.yml' % ' and '.join(n['name'] for n in primaries))

    if len(primaries) == 1:
        live = primaries[0]
        ok, why = accepts_writes(live)
        if requested and requested != live['name']:
            message = ('split brain guard: %s still answers as a primary (%s); promoting %s would make two primaries. '
                       'For a planned change use playbooks/switchover.yml; set force=true only once you know %s must '
                       'go (it is then fenced first)' % (live['name'], why, requested, live['name']))
            if not force:
                return refuse(message)
            plan['overridden'].append(message)
        elif not ok:
            message = ('split brain guard: %s runs as a primary but %s (an interrupted switchover?). Nothing was '
                       'changed; rerun playbooks/switchover.yml, remove the fence by hand if it is wrong, or set '
                       'force=true to fence it and fail over' % (live['name'], why))
            if not force:
                return refuse(message)
            plan['overridden'].append(message)
        elif requested == live['name'] or not force:
            plan['action'] = ACTION_NONE
            plan['primary'] = live['name']
            stale = stale_followers(nodes, live['name'])
            plan['stale_followers'] = stale
            sync = sync_problem(live, sync_mode)
            plan['sync_problem'] = sync
            if stale:
                plan['action'] = ACTION_CONVERGE
                reasons.append('%s is a healthy primary, but %s still follow%s a host that does not run: they are '
                               'repointed (an interrupted failover is completed)'
                               % (live['name'], ', '.join(stale), 's' if len(stale) == 1 else ''))
            elif sync:
                plan['action'] = ACTION_CONVERGE
                reasons.append('%s is a healthy primary, but %s: it is set again' % (live['name'], sync))
            else:
                reasons.append('%s is a healthy primary (timeline %s, %s): nothing to do. A planned change of primary '
                               'is playbooks/switchover.yml' % (live['name'], live.get('timeline')
                                                                or (live.get('witness') or {}).get('timeline'), why))
            return plan
        plan['action'] = ACTION_FAILOVER
        plan['old_primary'] = live['name']
        plan['fence'] = bool(live.get('ssh'))
        reasons.append('force: failing over from %s although it answers as a primary; it is fenced first' % live['name'])
        return plan

    old, why = find_old_primary(nodes, failed_primary)
    if old is None:
        return refuse('no primary answers and the failed primary cannot be told: %s. Set failed_primary=HOST' % why)
    plan['old_primary'] = old
    old_node = [n for n in nodes if n['name'] == old][0]
    reasons.append('no primary answers; %s was the primary (%s)' % (old, why))
    if old_node.get('running') and old_node.get('role') in STANDBY_ROLES:
        return refuse('failed_primary %s runs as a standby, not a failed primary' % old)

    guards = []
    witness = old_node.get('witness') or {}
    if witness.get('answered') and not witness.get('reachable'):
        guards.append('the PostgreSQL port of %s answers the control node but its role cannot be checked (%s)'
                      % (old, witness.get('error')))
    elif witness.get('tcp') == 'open' and not witness.get('reachable'):
        guards.append('the PostgreSQL port of %s accepts TCP connections from the control node' % old)
    streaming_from_old = [n['name'] for n in running_standbys(nodes)
                          if n.get('streaming') and host_of_address(nodes, n.get('sender_host')) == old]
    if streaming_from_old:
        guards.append('%s still stream%s from %s: it is alive for them (a network partition between the control node '
                      'and %s?)' % (', '.join(streaming_from_old), 's' if len(streaming_from_old) == 1 else '', old, old))
    if guards:
        message = 'split brain guard: %s. Nothing was changed; set force=true once %s is known to be down' % (
            '; '.join(guards), old)
        if not force:
            return refuse(message)
        plan['overridden'].append(message)
    plan['action'] = ACTION_FAILOVER
    plan['fence'] = bool(old_node.get('ssh'))
    if plan['fence']:
        reasons.append('%s answers over SSH: PostgreSQL there is stopped and masked (fenced) before the promotion'
                       % old)
    else:
        reasons.append('%s does not answer over SSH (%s) nor on its PostgreSQL port (%s): it cannot be fenced, it is '
                       'taken for down' % (old, old_node.get('ssh_error') or 'unreachable',
                                           witness.get('error') or witness.get('tcp')))
    return plan


def sync_names_listed(value):
    """Application names listed in a synchronous_standby_names value ('*' included)."""
    text = (value or '').strip()
    if not text:
        return []
    if '(' in text and text.endswith(')'):
        text = text[text.index('(') + 1:-1]
    names = []
    for part in text.split(','):
        part = part.strip()
        if part.startswith('"') and part.endswith('"') and len(part) >= 2:
            part = part[1:-1].replace('""', '"')
        if part:
            names.append(part)
    return names


def sync_problem(primary_node, sync_mode):
    """Why the primary's synchronous_standby_names needs attention, or None.

    Commits wait forever when it names only standbys that do not stream; they are not
    protected when it is empty although synchronous replication is asked for and a
    standby streams.
    """
    value = primary_node.get('sync_names')
    if value is None:
        return None
    streaming = set(primary_node.get('streaming_replicas') or [])
    listed = sync_names_listed(value)
    if listed and '*' not in listed and not streaming.intersection(listed):
        return ('synchronous_standby_names is %s but none of them streams: every commit waits' % value)
    mode = (sync_mode or 'off')
    mode = 'off' if mode is False else str(mode).lower()
    if not listed and mode not in ('off', 'false', '') and streaming:
        return ('synchronous_standby_names is empty although pgha_synchronous_mode is %s and %s stream%s'
                % (sync_mode, ', '.join(sorted(streaming)), 's' if len(streaming) == 1 else ''))
    return None


def stale_followers(nodes, primary):
    """Running standbys whose recorded upstream is a database host that does not run PostgreSQL."""
    running = set(n['name'] for n in nodes if n.get('running') and n.get('accepting'))
    stale = []
    for node in running_standbys(nodes):
        host = host_of_address(nodes, node.get('upstream_host'))
        if host is not None and host not in running and host != primary:
            stale.append(node['name'])
    return sorted(stale)


def candidate_nodes(nodes, exclude=()):
    """The node dicts select_candidate() expects."""
    out = []
    for node in nodes:
        if node['name'] in exclude:
            continue
        reachable = bool(node.get('ssh') and node.get('running') and node.get('accepting'))
        out.append({
            'name': node['name'],
            'datacenter': node.get('datacenter'),
            'reachable': reachable,
            'role': node.get('role') if reachable else None,
            'receive_lsn': node.get('receive_lsn'),
            'replay_lsn': node.get('replay_lsn'),
            'priority': node.get('priority') or 0,
            'nofailover': bool(node.get('nofailover')),
            'system_identifier': node.get('system_identifier'),
        })
    return out


def sync_standby_names(mode, count, intended, streaming, fallback):
    """synchronous_standby_names for a primary after a change of topology.

    ``intended``: application names the inventory wants as synchronous standbys, in
    order; ``streaming``: application names streaming from the primary now;
    ``fallback``: other direct followers (application names) that may stand in when
    none of the intended ones streams. Returns (value, note). The intended names that
    stream come first; the fallback ones are only listed when none of them does, so that
    commits never wait for a standby that is gone (FIRST/ANY over absent names would
    block every write).
    """
    mode = (mode or 'off').upper()
    if mode in ('OFF', 'FALSE', ''):
        return '', 'asynchronous (pgha_synchronous_mode off)'
    live = [n for n in intended if n in streaming]
    note = None
    names = live
    if not names:
        names = [n for n in fallback if n in streaming]
        if names:
            note = ('none of the intended synchronous standbys (%s) streams: %s stand%s in until one is back'
                    % (', '.join(intended) or 'none', ', '.join(names), 's' if len(names) == 1 else ''))
    if not names:
        return '', ('no standby streams from the primary: asynchronous until one does (commits would otherwise '
                    'wait forever)')
    return synchronous_standby_names(mode, count, names), note

# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The live topology of the cluster: which host is the primary now and who follows whom.

Pure functions over what the inventory says (each host's upstream, the initial primary)
and what the hosts answered (``live``: the fact ``__pgha_live`` of each database host,
``{'probed': False}`` for a host that could not be read). Used by the cluster_facts role's
`topology` entry point (site.yml and the operations playbooks) through the filter
``pgha.multidc.live_topology``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def decide_primary(hosts, live, initial_primary):
    """Which host is the primary: ``{'primary', 'reason'}`` or ``{'error'}``.

    Exactly one running primary: that one, whatever the inventory says; two or more:
    split brain, nothing may change. None running: a single stopped data directory
    without standby.signal is started as the primary; none anywhere (a new cluster):
    the inventory's initial primary; anything else stops, as the primary may be on a
    host that could not be read.
    """
    running, starting, stopped, existing, unknown = [], [], [], [], []
    for host in hosts:
        state = live.get(host) or {}
        if not state.get('probed'):
            unknown.append(host)
            continue
        if state.get('initialized'):
            existing.append(host)
        if state.get('accepting') and state.get('role') == 'primary':
            running.append(host)
        elif state.get('running') and not state.get('accepting'):
            starting.append(host)
        elif state.get('initialized') and not state.get('running') and not state.get('standby_signal'):
            stopped.append(host)
    if len(running) > 1:
        return {'error': 'split brain: %s all run as primary. Nothing was changed. Stop the one that must not be the'
                         ' primary (its writes since the failover are lost to the cluster) and rejoin it with the'
                         ' operations playbooks.' % ' and '.join(running)}
    if running:
        return {'primary': running[0], 'reason': '%s runs as the primary' % running[0]}
    if starting:
        return {'error': 'no running primary, and PostgreSQL is still starting on %s (not accepting connections).'
                         ' Nothing was changed; rerun once it is up.' % ', '.join(starting)}
    if unknown:
        return {'error': 'no running primary among the reachable database hosts, and %s could not be read'
                         ' (unreachable or failed). Nothing was changed: the primary may be there.' % ', '.join(unknown)}
    if not existing:
        return {'primary': initial_primary, 'reason': 'new cluster: %s has pgha_initial_primary' % initial_primary}
    if len(stopped) == 1:
        return {'primary': stopped[0],
                'reason': '%s holds the only primary data directory (stopped; it will be started)' % stopped[0]}
    if stopped:
        return {'error': 'no running primary, and %s all hold a stopped primary data directory. Nothing was changed;'
                         ' start the right one by hand.' % ', '.join(stopped)}
    return {'error': 'no primary: the data directories on %s are standbys and none of them runs as a primary.'
                     ' Nothing was changed; promote one with the failover playbook.' % ', '.join(existing)}


def with_datacenter_leaders(inventory_upstream, configured_leaders, leaders):
    """The inventory's map with the standby datacenters' leaders of the moment (the keepers'
    keys, ``leaders``: datacenter -> host) in the place of the configured ones: the new
    leader takes the configured one's upstream; the configured one and its followers
    follow the new leader."""
    upstream = dict(inventory_upstream)
    for dc, leader in sorted((leaders or {}).items()):
        configured = (configured_leaders or {}).get(dc)
        if not configured or leader == configured or leader not in upstream or configured not in upstream:
            continue
        swapped = {}
        for host, up in upstream.items():
            if host == leader:
                swapped[host] = upstream[configured]
            elif host == configured or up == configured:
                swapped[host] = leader
            else:
                swapped[host] = up
        upstream = swapped
    return upstream


def live_upstreams(hosts, inventory_upstream, initial_primary, primary):
    """host -> the host it follows now ('' for the primary).

    The inventory's map with the live primary at its root: when the live primary is not
    the inventory's, the inventory's primary and its direct followers follow the live one.
    """
    upstream = {}
    for host in hosts:
        up = inventory_upstream.get(host, '')
        if host == primary:
            up = ''
        elif host == initial_primary or up == initial_primary:
            up = primary
        upstream[host] = up
    return upstream


def depths(hosts, upstream):
    """host -> distance from the primary; hosts whose chain never reaches it are absent."""
    depth = {}
    for _round in hosts:
        for host in hosts:
            up = upstream.get(host, '')
            if up == '':
                depth[host] = 0
            elif up in depth:
                depth[host] = depth[up] + 1
    return depth


def followers(hosts, upstream):
    """host -> the hosts that follow it, in inventory order."""
    return dict((host, [h for h in hosts if upstream.get(h) == host]) for host in hosts)


def synchronous_standby_names(mode, count, names):
    """FIRST|ANY n ("name", ...) over ``names``; '' when off or empty; n capped to the names
    (at least 1)."""
    mode = (mode or 'off').upper()
    if mode in ('OFF', 'FALSE', '') or not names:
        return ''
    return '%s %d (%s)' % (mode, max(1, min(int(count or 1), len(names))), ', '.join('"%s"' % n for n in names))


def assuming_primary(live, host):
    """``live`` as it will be once ``host`` runs as the primary and the others do not.

    For an operation that works out the topology before it promotes ``host`` (and
    fences the primary that ran, if any).
    """
    assumed = {}
    for name, state in live.items():
        state = dict(state or {})
        if state.get('role') == 'primary':
            state.update(running=False, accepting=False)
        assumed[name] = state
    assumed[host] = dict(assumed.get(host, {}), probed=True, installed=True, initialized=True, running=True,
                         accepting=True, role='primary', standby_signal=False)
    return assumed


def live_topology(hosts, live, inventory_upstream, initial_primary, datacenter_of=None, name_of=None,
                  sync_mode='off', sync_count=1, sync_hosts=None, assume_primary=None,
                  dc_leaders=None, configured_dc_leaders=None):
    """Everything the `topology` entry point publishes, in one pass.

    ``sync_hosts``: the hosts named as synchronous standbys (default: the other database
    hosts of the primary's datacenter); ``assume_primary``: work it out as if this host
    were the only running primary (see assuming_primary); ``dc_leaders``: the standby
    datacenters' leaders the keepers hold now, in the place of ``configured_dc_leaders``
    (see with_datacenter_leaders), so that a playbook and the keepers agree. Returns ``decision``,
    ``primary`` ('' when undecided), ``upstream``, ``depth``, ``followers``,
    ``sync_names`` and ``unreached`` (hosts whose chain of upstreams never reaches the
    primary).
    """
    hosts = list(hosts)
    datacenter_of = datacenter_of or {}
    name_of = name_of or dict((h, h) for h in hosts)
    if assume_primary:
        live = assuming_primary(live, assume_primary)
    decision = decide_primary(hosts, live, initial_primary)
    primary = decision.get('primary', '') or ''
    inventory_upstream = with_datacenter_leaders(inventory_upstream, configured_dc_leaders, dc_leaders)
    upstream = live_upstreams(hosts, inventory_upstream, initial_primary, primary)
    depth = depths(hosts, upstream)
    if sync_hosts:
        wanted = list(sync_hosts)
    else:
        home = datacenter_of.get(primary, '')
        wanted = [h for h in hosts if datacenter_of.get(h, '') == home]
    names = [name_of.get(h, h) for h in wanted if h != primary]
    return {
        'decision': decision,
        'primary': primary,
        'upstream': upstream,
        'depth': depth,
        'followers': followers(hosts, upstream),
        'sync_names': synchronous_standby_names(sync_mode, sync_count, names),
        'unreached': [h for h in hosts if h not in depth],
    }

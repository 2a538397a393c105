# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Failover candidate selection: a pure function over the states of the nodes.

Rules, in order (each exclusion and the final ranking are explained):
1. exclude nodes that are unreachable, are not standbys, carry ``nofailover``,
   belong to another cluster (system identifier) or whose position is unknown;
2. exclude nodes lagging more than ``max_lag_bytes`` behind the reference position
   (the failed primary's last known LSN when known, else the most advanced node);
3. prefer the failed primary's datacenter, then the highest received LSN, then the
   highest ``priority``, then the name (a stable tie-break).
A requested candidate must pass rules 1 and 2; it is then chosen whatever its rank.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pgha.multidc.plugins.module_utils.lsn import (
    parse_lsn, format_lsn, lsn_diff, pretty_bytes)

STANDBY_ROLES = ('standby', 'cascading_standby')


class NoCandidate(Exception):
    def __init__(self, message, decision):
        super(NoCandidate, self).__init__(message)
        self.decision = decision


def node_position(node):
    """Highest of received and replayed LSN, as a byte position (None if unknown)."""
    known = [parse_lsn(node.get(k)) for k in ('receive_lsn', 'replay_lsn') if node.get(k)]
    return max(known) if known else None


def _exclusion(node, system_identifier):
    if not node.get('reachable', False):
        return 'unreachable'
    if node.get('role') not in STANDBY_ROLES:
        return 'not a standby (role %s)' % node.get('role')
    if node.get('nofailover'):
        return 'nofailover is set'
    # Compared as text: pg_control_system() gives a bigint, node_state reports text and
    # templating may turn that text back into an integer.
    if system_identifier and node.get('system_identifier') is not None \
            and str(node.get('system_identifier')) != str(system_identifier):
        return 'belongs to another cluster (system identifier %s)' % node.get('system_identifier')
    if node_position(node) is None:
        return 'WAL position unknown'
    return None


def select_candidate(nodes, failed_primary_datacenter=None, max_lag_bytes=None,
                     reference_lsn=None, requested=None, system_identifier=None):
    """Choose the standby to promote.

    ``nodes``: dicts with ``name``, ``datacenter``, ``reachable``, ``role``,
    ``receive_lsn``, ``replay_lsn``, optional ``nofailover``, ``priority`` (higher
    wins) and ``system_identifier``. Returns a decision dict with ``candidate``,
    ``reasons`` (list of sentences), ``ranking`` and ``excluded``; raises
    NoCandidate (carrying the same decision) when nobody qualifies.
    """
    excluded, eligible = [], []
    for node in sorted(nodes, key=lambda n: n['name']):
        why = _exclusion(node, system_identifier)
        if why:
            excluded.append({'name': node['name'], 'reason': why})
        else:
            eligible.append(node)

    positions = [node_position(n) for n in eligible]
    reference = parse_lsn(reference_lsn)
    if positions:
        reference = max([reference] + positions) if reference is not None else max(positions)

    within = []
    for node in eligible:
        lag = lsn_diff(reference, node_position(node))
        node_lag = dict(node, lag_bytes=lag)
        if max_lag_bytes is not None and lag > max_lag_bytes:
            excluded.append({'name': node['name'],
                             'reason': 'lags %s behind %s, more than the bound of %s'
                                       % (pretty_bytes(lag), format_lsn(reference), pretty_bytes(max_lag_bytes))})
        else:
            within.append(node_lag)

    def rank_key(node):
        same_dc = failed_primary_datacenter is not None and node.get('datacenter') == failed_primary_datacenter
        return (0 if same_dc else 1, -node_position(node), -int(node.get('priority') or 0), node['name'])

    ranking = sorted(within, key=rank_key)
    decision = {
        'candidate': None,
        'reference_lsn': format_lsn(reference),
        'ranking': [{'name': n['name'], 'datacenter': n.get('datacenter'),
                     'position': format_lsn(node_position(n)), 'lag_bytes': n['lag_bytes'],
                     'priority': int(n.get('priority') or 0)} for n in ranking],
        'excluded': excluded,
        'reasons': ['%s excluded: %s' % (e['name'], e['reason']) for e in excluded],
    }

    if requested is not None:
        chosen = [n for n in ranking if n['name'] == requested]
        if not chosen:
            why = [e['reason'] for e in excluded if e['name'] == requested] or ['not a known node']
            decision['reasons'].append('requested candidate %s cannot be promoted: %s' % (requested, why[0]))
            raise NoCandidate(decision['reasons'][-1], decision)
        decision['candidate'] = requested
        decision['reasons'].append('%s chosen as requested (position %s, %s behind %s)'
                                   % (requested, format_lsn(node_position(chosen[0])),
                                      pretty_bytes(chosen[0]['lag_bytes']), format_lsn(reference)))
        return decision

    if not ranking:
        decision['reasons'].append('no standby qualifies for promotion')
        raise NoCandidate('; '.join(decision['reasons']), decision)

    best = ranking[0]
    because = []
    if failed_primary_datacenter and best.get('datacenter') == failed_primary_datacenter:
        because.append("in the failed primary's datacenter %s" % failed_primary_datacenter)
    elif failed_primary_datacenter:
        because.append("no qualified standby in the failed primary's datacenter %s" % failed_primary_datacenter)
    # Only the datacenter preference puts a node ahead of a more advanced one.
    ahead = sorted((n for n in ranking if node_position(n) > node_position(best)),
                   key=lambda n: (-node_position(n), n['name']))
    peers = [n for n in ranking[1:] if rank_key(n)[0] == rank_key(best)[0]]
    if peers and node_position(peers[0]) == node_position(best):
        if int(peers[0].get('priority') or 0) == int(best.get('priority') or 0):
            because.append('same position and priority as %s; name breaks the tie' % peers[0]['name'])
        else:
            because.append('same position as %s, higher priority %d'
                           % (peers[0]['name'], int(best.get('priority') or 0)))
    else:
        where = ' in its datacenter' if ahead else ''
        because.append('highest WAL position %s%s' % (format_lsn(node_position(best)), where))
    if ahead:
        because.append('preferred over the more advanced %s in %s (%s ahead%s)'
                       % (ahead[0]['name'], ahead[0].get('datacenter'),
                          pretty_bytes(node_position(ahead[0]) - node_position(best)),
                          ', within the lag bound' if max_lag_bytes is not None else ''))
    decision['candidate'] = best['name']
    decision['reasons'].append('%s chosen: %s' % (best['name'], '; '.join(because)))
    return decision

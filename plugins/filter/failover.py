# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that bring the core library's failover and topology decisions into playbooks.

``failover_candidate`` is plugins/module_utils/candidate.py's select_candidate() (the
pure decision, unit-tested there) as a filter that never raises: when no standby
qualifies, the decision carries ``candidate: null`` and ``error``. The LSN filters are
plugins/module_utils/lsn.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.pgha.multidc.plugins.module_utils.candidate import NoCandidate, select_candidate
from ansible_collections.pgha.multidc.plugins.module_utils.lsn import (
    InvalidLSN, format_lsn, lsn_diff, max_lsn, parse_lsn, pretty_bytes)
from ansible_collections.pgha.multidc.plugins.module_utils import operations, topology


def failover_candidate(nodes, failed_primary_datacenter=None, max_lag_bytes=None, reference_lsn=None,
                       requested=None, system_identifier=None):
    """The decision of select_candidate() over ``nodes`` (list of dicts, see candidate.py)."""
    if not isinstance(nodes, (list, tuple)):
        raise AnsibleFilterError('failover_candidate expects a list of node dicts, got %s' % type(nodes).__name__)
    try:
        max_lag = int(max_lag_bytes) if max_lag_bytes not in (None, '') else None
        decision = select_candidate(
            [dict(n) for n in nodes], failed_primary_datacenter=failed_primary_datacenter or None,
            max_lag_bytes=max_lag, reference_lsn=reference_lsn or None, requested=requested or None,
            system_identifier=system_identifier or None)
        decision['error'] = None
    except NoCandidate as error:
        decision = dict(error.decision)
        decision['candidate'] = None
        decision['error'] = str(error)
    except (InvalidLSN, KeyError, TypeError, ValueError) as error:
        raise AnsibleFilterError('failover_candidate: %s' % error)
    return decision


def failover_plan(nodes, requested=None, failed_primary=None, force=False, sync_mode=None):
    """What failover.yml does (operations.classify): none, converge, failover or refuse."""
    try:
        return operations.classify(list(nodes), requested=requested or None, failed_primary=failed_primary or None,
                                   force=bool(force), sync_mode=sync_mode)
    except (KeyError, TypeError, ValueError) as error:
        raise AnsibleFilterError('failover_plan: %s' % error)


def op_node(status, name, host_vars=None, witness=None, ssh_error=None):
    """operations.node_from_status(): the node dict the operations decide on.

    ``host_vars``: the host's variables (``hostvars[inventory_hostname]``), for its
    datacenter, address, failover priority and nofailover.
    """
    host_vars = host_vars or {}
    try:
        return operations.node_from_status(
            status or None, name, datacenter=host_vars.get('pgha_datacenter', ''),
            address=host_vars.get('ansible_host', name), priority=host_vars.get('pgha_failover_priority', 0),
            nofailover=host_vars.get('pgha_nofailover', False), witness=witness, ssh_error=ssh_error)
    except (AttributeError, TypeError, ValueError) as error:
        raise AnsibleFilterError('op_node: %s' % error)


def failover_candidate_nodes(nodes, exclude=None):
    """The gathered node dicts in the form failover_candidate expects."""
    if isinstance(exclude, str):
        exclude = [exclude]
    return operations.candidate_nodes(list(nodes), exclude=[e for e in exclude or [] if e])


def sync_standby_names(intended, mode='off', count=1, streaming=None, fallback=None):
    """synchronous_standby_names over the intended names that stream (see operations)."""
    value, note = operations.sync_standby_names(mode, count, list(intended or []), list(streaming or []),
                                                list(fallback or []))
    return {'value': value, 'note': note}


def live_topology(hosts, live=None, inventory_upstream=None, initial_primary='', datacenter_of=None, name_of=None,
                  sync_mode='off', sync_count=1, sync_hosts=None, assume_primary=None, dc_leaders=None,
                  configured_dc_leaders=None):
    """topology.live_topology(): the primary now (or once assume_primary is) and who follows whom."""
    try:
        return topology.live_topology(
            list(hosts), dict(live or {}), dict(inventory_upstream or {}), initial_primary or '',
            datacenter_of=dict(datacenter_of or {}), name_of=dict(name_of or {}), sync_mode=sync_mode,
            sync_count=sync_count, sync_hosts=[h for h in sync_hosts or [] if h] if not isinstance(sync_hosts, str) else None,
            assume_primary=assume_primary or None, dc_leaders=dict(dc_leaders or {}),
            configured_dc_leaders=dict(configured_dc_leaders or {}))
    except (KeyError, TypeError, ValueError) as error:
        raise AnsibleFilterError('live_topology: %s' % error)


def pg_lsn_diff(newer, older):
    """Bytes from ``older`` to ``newer`` (None when either is unknown)."""
    try:
        return lsn_diff(newer or None, older or None)
    except InvalidLSN as error:
        raise AnsibleFilterError('pg_lsn_diff: %s' % error)


def pg_lsn_max(values):
    """The most advanced of a list of LSNs (unknown ones skipped; None when none is known)."""
    try:
        return max_lsn(*[v for v in values or [] if v])
    except InvalidLSN as error:
        raise AnsibleFilterError('pg_lsn_max: %s' % error)


def pg_lsn(value):
    """Normalise an LSN text (``0/3000060``), None stays None."""
    try:
        return format_lsn(parse_lsn(value)) if value else None
    except InvalidLSN as error:
        raise AnsibleFilterError('pg_lsn: %s' % error)


def pg_pretty_bytes(count):
    return pretty_bytes(None if count in (None, '') else int(count))


class FilterModule(object):
    def filters(self):
        return {
            'failover_candidate': failover_candidate,
            'failover_candidate_nodes': failover_candidate_nodes,
            'op_node': op_node,
            'failover_plan': failover_plan,
            'sync_standby_names': sync_standby_names,
            'live_topology': live_topology,
            'pg_lsn_diff': pg_lsn_diff,
            'pg_lsn_max': pg_lsn_max,
            'pg_lsn': pg_lsn,
            'pg_pretty_bytes': pg_pretty_bytes,
        }

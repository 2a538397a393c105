# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The replication tree of status.yml: as text lines for the report, and as Graphviz DOT
source for its SVG. Both take the status rows of roles/cluster_facts (one dict per
database host: ``host``, ``dc``, ``role``, ``upstream``, ``state``, ``lag``, ``timeline``,
``sync_state``, ``streaming``, ``fenced``)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

ROOT_ROLES = ('primary',)


def _children(rows):
    """{upstream host: [rows that follow it]}."""
    hosts = set(row['host'] for row in rows)
    children = {}
    for row in rows:
        if row.get('role') not in ROOT_ROLES and row.get('upstream') in hosts:
            children.setdefault(row['upstream'], []).append(row)
    return children


def _edge_text(row):
    parts = [row.get('sync_state') or ('streaming' if row.get('streaming') else 'not streaming')]
    if row.get('sync_state') and not row.get('streaming'):
        parts.append('NOT STREAMING')
    if row.get('lag'):
        parts.append('lag ' + row['lag'])
    return ', '.join(parts)


def _node_text(row):
    words = [row.get('dc') or '?', row.get('role') or '?']
    if row.get('timeline') not in (None, ''):
        words.append('TL %s' % row['timeline'])
    if row.get('fenced'):
        words.append('FENCED')
    return '%s (%s)' % (row['host'], ', '.join(words))


def tree_lines(rows):
    """The replication tree, one line per host, primaries as roots (two roots: two
    primaries). Hosts that follow nobody the table knows (stopped, unreachable) are listed
    after it."""
    children = _children(rows)
    roots = [row for row in rows if row.get('role') in ROOT_ROLES]
    lines = []
    seen = set()

    def walk(row, prefix, last, root):
        seen.add(row['host'])
        if root:
            lines.append(_node_text(row))
        else:
            lines.append('%s%s %s  <- %s' % (prefix, '`--' if last else '|--', _node_text(row), _edge_text(row)))
        below = [child for child in children.get(row['host'], []) if child['host'] not in seen]
        inner = '' if root else prefix + ('    ' if last else '|   ')
        for index, child in enumerate(below):
            walk(child, inner, index == len(below) - 1, False)

    for root in roots:
        walk(root, '', True, True)
    if not roots:
        lines.append('no primary')
    for row in [row for row in rows if row['host'] not in seen]:
        lines.append('not in the tree: %s%s' % (_node_text(row), (', follows ' + row['upstream']) if row.get('upstream') else ''))
    return lines


def _quote(text):
    """A DOT string; its ``\\n`` are line breaks (host names carry no backslash)."""
    return '"%s"' % str(text).replace('"', '\\"')


def _fill(row):
    """Green a primary, blue a standby, red a node that is fenced or serves nothing."""
    if row.get('fenced'):
        return '#ffc7ce'
    if row.get('role') == 'primary':
        return '#c6efce'
    return '#ddebf7' if row.get('role') in ('standby', 'cascading standby') else '#ffc7ce'


def dot_source(rows, title='pgha replication'):
    """Graphviz DOT of the same tree: one box per datacenter, an edge from each upstream
    to its follower (solid: synchronous, dashed: asynchronous, red: not streaming)."""
    out = ['digraph replication {', '  label=%s; labelloc=t; rankdir=TB; fontname="Helvetica";' % _quote(title),
           '  node [shape=box, style="rounded,filled", fontname="Helvetica", fillcolor="#ffffff"];',
           '  edge [fontname="Helvetica", fontsize=10];']
    datacenters = []
    for row in rows:
        if row.get('dc') not in datacenters:
            datacenters.append(row.get('dc'))
    for dc in datacenters:
        out.append('  subgraph %s {' % _quote('cluster_%s' % dc))
        out.append('    label=%s; style=rounded; color="#777777"; fontname="Helvetica";' % _quote('datacenter %s' % dc))
        for row in [r for r in rows if r.get('dc') == dc]:
            timeline = ['TL %s' % row['timeline']] if row.get('timeline') not in (None, '') else []
            label = '\\n'.join([row['host'], row.get('role') or '?'] + timeline)
            out.append('    %s [label=%s, fillcolor=%s];' % (_quote(row['host']), _quote(label), _quote(_fill(row))))
        out.append('  }')
    hosts = set(row['host'] for row in rows)
    for row in rows:
        if row.get('role') in ROOT_ROLES or row.get('upstream') not in hosts:
            continue
        style = 'solid' if (row.get('sync_state') or '') in ('sync', 'quorum') else 'dashed'
        color = '#000000' if row.get('streaming') else '#c00000'
        label = '\\n'.join([row.get('sync_state') or ('streaming' if row.get('streaming') else 'not streaming')]
                           + ([row['lag']] if row.get('lag') else []))
        out.append('  %s -> %s [label=%s, style=%s, color=%s];' % (
            _quote(row['upstream']), _quote(row['host']), _quote(label), style, _quote(color)))
    out.append('}')
    return '\n'.join(out) + '\n'

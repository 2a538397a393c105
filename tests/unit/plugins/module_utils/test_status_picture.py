# -*- coding: utf-8 -*-
"""plugins/module_utils/status_picture.py: the replication tree of status.yml as text and as
DOT (the SVG drawn by Graphviz from a real cluster is checked in the Molecule lab)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.pgha.multidc.plugins.module_utils.status_picture import dot_source, tree_lines


def row(host, dc, role, upstream='', sync_state='', streaming=True, lag='0 B / 0.0 s', timeline=4, fenced=False):
    return {'host': host, 'dc': dc, 'role': role, 'upstream': upstream, 'sync_state': sync_state,
            'streaming': streaming, 'lag': lag if upstream else '', 'timeline': timeline, 'fenced': fenced}


CLUSTER = [row('dc1-pg1', 'dc1', 'primary'),
           row('dc1-pg2', 'dc1', 'standby', 'dc1-pg1', 'sync'),
           row('dc2-pg1', 'dc2', 'standby', 'dc1-pg1', 'async', lag='4096 B / 0.2 s'),
           row('dc2-pg2', 'dc2', 'cascading standby', 'dc2-pg1', 'async')]


def test_the_tree_of_a_healthy_cluster():
    assert tree_lines(CLUSTER) == [
        'dc1-pg1 (dc1, primary, TL 4)',
        '|-- dc1-pg2 (dc1, standby, TL 4)  <- sync, lag 0 B / 0.0 s',
        '`-- dc2-pg1 (dc2, standby, TL 4)  <- async, lag 4096 B / 0.2 s',
        '    `-- dc2-pg2 (dc2, cascading standby, TL 4)  <- async, lag 0 B / 0.0 s']


def test_a_stopped_node_and_its_follower_are_listed_after_the_tree():
    rows = [CLUSTER[0], CLUSTER[1], row('dc2-pg1', 'dc2', 'stopped (standby)', timeline=''),
            row('dc2-pg2', 'dc2', 'cascading standby', 'dc2-pg1', 'async', streaming=False)]
    lines = tree_lines(rows)
    assert lines[:2] == ['dc1-pg1 (dc1, primary, TL 4)', '`-- dc1-pg2 (dc1, standby, TL 4)  <- sync, lag 0 B / 0.0 s']
    assert lines[2:] == ['not in the tree: dc2-pg1 (dc2, stopped (standby))',
                         'not in the tree: dc2-pg2 (dc2, cascading standby, TL 4), follows dc2-pg1']


def test_two_primaries_are_two_roots_and_a_fence_is_said():
    rows = [row('dc1-pg1', 'dc1', 'primary', fenced=True), row('dc1-pg2', 'dc1', 'primary', timeline=5)]
    assert tree_lines(rows) == ['dc1-pg1 (dc1, primary, TL 4, FENCED)', 'dc1-pg2 (dc1, primary, TL 5)']


def test_no_primary_is_said():
    assert tree_lines([row('dc1-pg2', 'dc1', 'standby', 'dc1-pg1', 'sync', streaming=False)])[0] == 'no primary'


def test_a_synchronous_standby_that_stopped_streaming_is_flagged():
    rows = [CLUSTER[0], row('dc1-pg2', 'dc1', 'standby', 'dc1-pg1', 'sync', streaming=False)]
    assert tree_lines(rows)[1] == '`-- dc1-pg2 (dc1, standby, TL 4)  <- sync, NOT STREAMING, lag 0 B / 0.0 s'


def test_the_dot_source_has_a_box_per_datacenter_a_node_per_host_an_edge_per_follower():
    dot = dot_source(CLUSTER, title='lab')
    assert dot.startswith('digraph replication {') and dot.rstrip().endswith('}')
    assert re.findall(r'subgraph "cluster_(\w+)"', dot) == ['dc1', 'dc2']
    assert sorted(re.findall(r'^    "([\w-]+)" \[label=', dot, re.M)) == ['dc1-pg1', 'dc1-pg2', 'dc2-pg1', 'dc2-pg2']
    edges = re.findall(r'^  "([\w-]+)" -> "([\w-]+)" \[label="([^"]*)", style=(\w+)', dot, re.M)
    assert edges == [('dc1-pg1', 'dc1-pg2', 'sync\\n0 B / 0.0 s', 'solid'),
                     ('dc1-pg1', 'dc2-pg1', 'async\\n4096 B / 0.2 s', 'dashed'),
                     ('dc2-pg1', 'dc2-pg2', 'async\\n0 B / 0.0 s', 'dashed')]
    assert 'label="lab"' in dot


def test_a_quote_in_the_title_cannot_break_the_source():
    assert 'label="say \\"hi\\""' in dot_source(CLUSTER, title='say "hi"')


def test_the_colours_say_primary_standby_and_trouble():
    rows = [row('a', 'dc1', 'primary'), row('b', 'dc1', 'primary', fenced=True), row('c', 'dc1', 'standby', 'a'),
            row('d', 'dc1', 'stopped (standby)')]
    fills = dict(re.findall(r'^    "(\w)" \[label="[^"]*", fillcolor="(#\w+)"\]', dot_source(rows), re.M))
    assert fills == {'a': '#c6efce', 'b': '#ffc7ce', 'c': '#ddebf7', 'd': '#ffc7ce'}

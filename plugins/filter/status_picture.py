# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of status.yml's picture: the replication tree as text lines and as Graphviz
DOT source (plugins/module_utils/status_picture.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.pgha.multidc.plugins.module_utils.status_picture import dot_source, tree_lines


def _rows(rows, name):
    if not isinstance(rows, list) or not all(isinstance(row, dict) and 'host' in row for row in rows):
        raise AnsibleFilterError('%s expects the status rows of pgha.multidc.cluster_facts (a list of dicts with host)' % name)
    return rows


def replication_tree(rows):
    return tree_lines(_rows(rows, 'replication_tree'))


def replication_dot(rows, title='pgha replication'):
    return dot_source(_rows(rows, 'replication_dot'), title)


class FilterModule(object):
    def filters(self):
        return {'replication_tree': replication_tree, 'replication_dot': replication_dot}

# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pure decisions of node_config: which files differ, which slots to create or drop."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.pgha.multidc.plugins.module_utils.node_config import changed_files, slot_plan
from ansible_collections.pgha.multidc.plugins.module_utils.replication import ReplicationError


def row(active=False, slot_type='physical'):
    return {'active': active, 'slot_type': slot_type}


def test_only_files_whose_content_differs_are_changed():
    disk = {'/c/pg_hba.conf': 'a\n', '/c/postgresql.conf': 'x = 1\n'}
    files = [{'path': '/c/pg_hba.conf', 'content': 'a\n'},
             {'path': '/c/postgresql.conf', 'content': 'x = 2\n'},
             {'path': '/c/new.conf', 'content': 'n\n'}]
    changed = changed_files(files, read=disk.get)
    assert [(entry['path'], entry['before']) for entry in changed] == [
        ('/c/postgresql.conf', 'x = 1\n'), ('/c/new.conf', None)]
    assert changed[0]['content'] == 'x = 2\n'


def test_missing_slots_are_created_existing_ones_kept():
    create, drop, kept = slot_plan(['dc1_pg1', 'dc2_pg1'], [], {'dc2_pg1': row(active=True)})
    assert (create, drop, kept) == (['dc1_pg1'], [], [])


def test_inactive_slots_of_former_followers_are_dropped_active_ones_kept():
    existing = {'dc1_pg1': row(), 'dc1_pg2': row(active=True), 'dc2_pg1': row(), 'backup': row()}
    create, drop, kept = slot_plan(['dc2_pg1'], ['dc1_pg1', 'dc1_pg2', 'dc2_pg1', 'dc2_pg2'], existing)
    assert create == []
    assert drop == ['dc1_pg1']          # dc2_pg1 is wanted, dc2_pg2 does not exist, backup is not named
    assert kept == ['dc1_pg2']


def test_logical_slots_are_never_dropped():
    assert slot_plan([], ['dc1_pg1'], {'dc1_pg1': row(slot_type='logical')}) == ([], [], [])


@pytest.mark.parametrize('name', ['Dc1-pg1', '', 'x' * 64])
def test_invalid_slot_names_are_refused(name):
    with pytest.raises(ReplicationError):
        slot_plan([name], [], {})

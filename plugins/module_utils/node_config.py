# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A node's share of a topology change, in one call (module pg_node_config): the files
the server reads (pg_hba.conf, postgresql.conf), checked by the running server before
it reloads them, and the replication slots it keeps for its followers.

1. The files whose content differs are replaced (a backup of each kept), then the
   server parses them (config_check.read_file_state). Any error puts the previous
   contents back: nothing is reloaded and the server keeps what it runs with.
2. One reload for all the files that changed.
3. The followers' slots are created; the slots of hosts that follow another node now
   are dropped when inactive (an active one is in use: kept and reported).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.pgha.multidc.plugins.module_utils.config_check import (
    errors_message, read_file_state, reload_and_read, restart_needed)
from ansible_collections.pgha.multidc.plugins.module_utils.replication import (
    ReplicationError, create_slot, drop_slot, slot_name_problem)
from ansible_collections.pgha.multidc.plugins.module_utils.node_state import read_slot


def read_text(path):
    """The content of ``path``, or None when it does not exist."""
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError) as error:
        if not os.path.exists(path):
            return None
        raise ReplicationError('cannot read %s: %s' % (path, error))


def changed_files(files, read=read_text):
    """The entries of ``files`` ({path, content, ...}) whose content on disk differs,
    each with ``before`` (None for a new file)."""
    changed = []
    for entry in files:
        before = read(entry['path'])
        if before != entry['content']:
            changed.append(dict(entry, before=before))
    return changed


def slot_plan(slots, drop_slots, existing):
    """What to do with the replication slots: ``(create, drop, kept_active)``.

    ``slots``: the names that must exist; ``drop_slots``: the names of slots to remove
    when they exist (a name in both is kept); ``existing``: {name: row} of the slots the
    server has (rows with ``slot_type`` and ``active``). An active slot is never dropped
    here: its consumer still streams through it (it is kept and reported). Logical slots
    are not the followers' and are left alone.
    """
    for name in list(slots) + list(drop_slots):
        problem = slot_name_problem(name)
        if problem:
            raise ReplicationError(problem)
    create = [name for name in slots if name not in existing]
    drop, kept = [], []
    for name in drop_slots:
        if name in slots or name not in existing or existing[name]['slot_type'] != 'physical':
            continue
        (kept if existing[name]['active'] else drop).append(name)
    return create, drop, kept


def restore(changed, write):
    """Put back the previous content of every changed file (remove a new one)."""
    for entry in changed:
        if entry['before'] is None:
            try:
                os.unlink(entry['path'])
            except OSError:
                pass
        else:
            write(entry, entry['before'], False)


def apply_files(conn, changed, write, result, check_mode):
    """Write the changed files, have the server check them, reload once.

    ``write(entry, content, backup)`` replaces a file (keeping a copy of the previous one
    when ``backup``). Raises
    ReplicationError, with every file restored, when the server finds errors.
    """
    result['files'] = [entry['path'] for entry in changed]
    if not changed or check_mode:
        if changed:
            result['queries'].append('SELECT pg_reload_conf()')
        return []
    for entry in changed:
        write(entry, entry['content'], True)
    state = read_file_state(conn)
    problem = errors_message(state)
    if problem:
        restore(changed, write)
        raise ReplicationError('%s; the previous files were put back' % problem, changed=False,
                               file_errors=state['file_errors'], hba_errors=state['hba_errors'],
                               ident_errors=state['ident_errors'], files=[])
    confirmed, pending = reload_and_read(conn, state['load_time'], queries=result['queries'])
    result['reloaded'] = True
    result['restart_needed'], invalid = restart_needed(state['not_applied'], pending, confirmed)
    warnings = []
    if result['restart_needed']:
        warnings.append('%s take effect only after a restart of PostgreSQL, which this module does not do'
                        % ', '.join(result['restart_needed']))
    if invalid:
        warnings.append('%s: the server rejects the value in the configuration files (see its log)'
                        % ', '.join(invalid))
    return warnings


def apply_slots(conn, slots, drop_slots, result, check_mode):
    """Create the followers' slots and drop the inactive ones of former followers."""
    existing = {}
    for name in set(slots) | set(drop_slots):
        row = read_slot(conn, name)
        if row is not None:
            existing[name] = row
    create, drop, kept = slot_plan(slots, drop_slots, existing)
    result.update(slots_created=create, slots_dropped=drop, slots_kept_active=kept)
    warnings = ['replication slot %s is in use (active): it was not dropped' % name for name in kept]
    if check_mode:
        result['queries'].extend(['SELECT pg_create_physical_replication_slot(%r, true)' % name for name in create]
                                 + ['SELECT pg_drop_replication_slot(%r)' % name for name in drop])
        return warnings
    for name in create:
        create_slot(conn, name, 'physical', immediately_reserve=True, queries=result['queries'])
    for name in drop:
        drop_slot(conn, name, force=False, queries=result['queries'])
    return warnings

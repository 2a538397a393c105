#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: pg_basebackup_standby
short_description: Build a PostgreSQL streaming standby with pg_basebackup
version_added: 0.1.0
description:
  - Copies an upstream server (a primary, or a standby for cascading replication) into
    O(data_directory) with C(pg_basebackup -X stream -R) and configures the copy as a
    standby of that upstream (C(standby.signal), C(primary_conninfo),
    C(primary_slot_name), C(restore_command), C(recovery_target_timeline) in
    C(postgresql.auto.conf)).
  - Checks everything before it changes anything, and fails with the reason when a check
    does not pass. No server may be running on O(data_directory); the upstream must
    be reachable and accept the credentials; the filesystem must have room for the
    upstream's size plus O(space_margin_percent) plus O(wal_headroom); an existing
    non-empty O(data_directory) is handled only as O(existing) says.
  - Idempotent. A data directory that already is a standby of this upstream (same
    system identifier, major version, upstream host, port, user and slot, and a
    C(standby.signal)) is not copied again, whatever O(existing) says (see
    O(force_rebuild)); only its recovery settings are brought to the desired values.
  - The password never appears on a command line, in a result or in a log. For the copy
    it is written to a temporary passfile (mode 0600) that is removed afterwards. The
    standby's C(primary_conninfo) names O(upstream.passfile) when it is set, and then holds
    no password; otherwise it holds O(upstream.password) and the module warns.
  - The module does not start the server; start it through systemd (or C(pg_ctl)) once
    the module has returned.
  - Run it as the operating system user that owns the data directory (usually
    C(postgres), with O(ignore:become_user)); it refuses to run as root, since
    PostgreSQL would not start on files owned by root.
author:
  - pgha.multidc contributors (!UNKNOWN)
options:
  data_directory:
    description:
      - Absolute path of the standby's data directory.
      - When it is absent it is created (with missing parents, mode 0700).
      - On a dedicated mount point, prefer a subdirectory of the mount point.
    type: path
    required: true
  application_name:
    description:
      - C(application_name) in C(primary_conninfo), the name the upstream shows in
        C(pg_stat_replication) and matches against C(synchronous_standby_names).
      - Defaults to the short host name of the managed host (a module does not know the
        inventory name; roles pass C(inventory_hostname)).
    type: str
  slot:
    description:
      - Physical replication slot on the upstream to stream from (C(pg_basebackup -S) and
        C(primary_slot_name)). The slot must exist and be inactive unless O(create_slot)
        is set.
    type: str
  create_slot:
    description:
      - Create O(slot) on the upstream as part of the copy (C(pg_basebackup -C)), which also
        works on a standby upstream. A slot of that name that already exists and is
        inactive (for example left by an interrupted run) is used as it is.
    type: bool
    default: false
  max_rate:
    description:
      - Limit of the transfer rate (C(pg_basebackup --max-rate)), in kilobytes per second
        with an optional C(k) or C(M) suffix, from V(32k) to V(1024M), for example V(50M).
    type: str
  checkpoint:
    description:
      - V(fast) requests an immediate checkpoint on the upstream, so the copy starts at
        once; V(spread) waits for a spread checkpoint and spares the upstream's I/O.
    type: str
    default: fast
    choices: [fast, spread]
  wal_method:
    description:
      - How the WAL written during the copy reaches the standby. Only V(stream) (a second
        connection streams it while the files are copied) is supported; it is the method
        that yields a copy that can start on its own.
    type: str
    default: stream
    choices: [stream]
  restore_command:
    description:
      - C(restore_command) of the standby, to fetch WAL from an archive when streaming
        cannot provide it. Omitted means none (the setting is removed).
    type: str
  recovery_target_timeline:
    description: C(recovery_target_timeline) of the standby.
    type: str
    default: latest
  existing:
    description:
      - What to do when O(data_directory) is not empty and is not already a standby of the
        upstream.
      - V(fail) stops with what was found (nothing is changed).
      - V(keep) accepts only a directory that already is a standby of this upstream, and
        otherwise fails with each mismatch (system identifier, version, host, port, user,
        slot, standby.signal).
      - V(move_aside) renames the directory to C(<data_directory>.pgha-<UTC timestamp>) and
        copies into a new one. If the copy fails, the partial copy is removed and the old
        directory is put back.
      - V(remove) deletes the contents of the directory before the copy (the directory
        itself, its owner and mode are kept). The space it frees counts in the space check.
    type: str
    default: fail
    choices: [fail, keep, move_aside, remove]
  force_rebuild:
    description:
      - Copy anew even when O(data_directory) already is a standby of this upstream, for a
        standby that cannot catch up any more (WAL it needs is gone). Needs O(existing) set
        to V(move_aside) or V(remove).
    type: bool
    default: false
  pg_bindir:
    description:
      - Directory of C(pg_basebackup), C(pg_ctl) and C(pg_controldata).
      - Defaults to the one of the upstream's major version (C(/usr/lib/postgresql/<major>/bin),
        C(/usr/pgsql-<major>/bin)), else the directory of C(pg_basebackup) on E(PATH). Its
        major version must not be older than the upstream's.
    type: path
  timeout:
    description:
      - Seconds the copy may take before C(pg_basebackup) is stopped and the partial copy
        removed. V(0) means no limit (large copies are better run with C(async)).
    type: int
    default: 0
  space_margin_percent:
    description:
      - Room required on top of the upstream's size, in percent of that size.
    type: int
    default: 10
  wal_headroom:
    description:
      - Room required on top of that for WAL (streamed during the copy, then kept by the
        standby), as a PostgreSQL size such as V(512MB) or V(0).
      - Defaults to the larger of the upstream's C(max_wal_size) and C(wal_keep_size).
    type: str
  size_check:
    description:
      - Where the upstream's size comes from.
      - V(sql) sums C(pg_database_size) over an ordinary connection of O(upstream.user) to the
        C(postgres) database. It costs nothing, but needs a C(pg_hba.conf) line that lets the
        role connect to that database and the right to read every database's size (C(CONNECT),
        granted to PUBLIC by default, or membership of C(pg_read_all_stats)).
      - V(base_backup) asks the upstream for its own base backup estimate, over the
        replication connection that the copy needs anyway; it works with a replication-only
        role. It starts a base backup and cancels it once the estimate has arrived (about one
        second, a few kilobytes). This costs the upstream one checkpoint of the kind set by
        O(checkpoint) and a walk of its data directory, and leaves a C(connection to client
        lost) line in its log.
      - V(auto) uses V(sql) when it works, else V(base_backup). Where pg_hba.conf allows the role
        only replication connections, the attempt leaves a C(pg_hba.conf rejects connection) (or
        C(no pg_hba.conf entry)) line in the upstream's log; set V(base_backup) to avoid it.
    type: str
    default: auto
    choices: [auto, sql, base_backup]
extends_documentation_fragment:
  - pgha.multidc.upstream
attributes:
  check_mode:
    support: full
    description: Runs every check (including the upstream probes and the size estimate) and predicts the change; copies nothing.
  diff_mode:
    support: full
    description: Shows the data directory and recovery settings before and after (passwords redacted).
  platform:
    support: full
    platforms: posix
    description: Runs on the standby host, as the operating system user that owns the data directory.
notes:
  - The upstream is probed on every run, also when nothing is to be copied (the data
    directory's system identifier is compared with the upstream's), so it must be reachable.
  - Tablespaces are copied to the same paths as on the upstream; each must be absent or
    empty on this host (checked beforehand when the size is read over SQL).
  - A C(pg_wal) or tablespace symbolic link of a data directory that is moved aside or
    removed is not followed; the new copy keeps its WAL inside the data directory.
  - C(bytes_copied) is the size of the new data directory (WAL included) once the copy is
    done; C(start_lsn), C(timeline) and C(backup_from) are read from the C(backup_label) that
    pg_basebackup writes into the copy (it stays there until the server first starts).
requirements:
  - psycopg2 on the managed host
  - pg_basebackup, pg_ctl and pg_controldata of the upstream's major version (or newer)
seealso:
  - name: pg_basebackup
    description: The PostgreSQL program this module runs.
    link: https://www.postgresql.org/docs/current/app-pgbasebackup.html
'''

EXAMPLES = r'''
- name: Build the standby from the primary over TLS (password in a passfile)
  pgha.multidc.pg_basebackup_standby:
    data_directory: /var/lib/postgresql/15/main
    upstream:
      host: dc1-pg1.example.net
      user: replicator
      passfile: /var/lib/postgresql/.pgpass
      sslrootcert: /etc/postgresql/pgha-ca.crt
    application_name: "{{ inventory_hostname }}"
    slot: "{{ inventory_hostname | replace('-', '_') }}"
    create_slot: true
  become: true
  become_user: postgres

- name: Rebuild a standby that lost its WAL, keeping the old copy aside
  pgha.multidc.pg_basebackup_standby:
    data_directory: /var/lib/postgresql/15/main
    upstream:
      host: dc2-pg1.example.net
      user: replicator
      passfile: /var/lib/postgresql/.pgpass
      sslrootcert: /etc/postgresql/pgha-ca.crt
    existing: move_aside
    force_rebuild: true
    max_rate: 100M
    checkpoint: spread
  become: true
  become_user: postgres
'''

RETURN = r'''
action:
  description: V(copied) (a new copy was made), V(configured) (an existing standby of this upstream had its recovery settings changed) or V(unchanged).
  returned: always
  type: str
  sample: copied
data_directory:
  description: The data directory.
  returned: always
  type: str
  sample: /var/lib/postgresql/15/main
system_identifier:
  description: System identifier of the standby's data directory (equal to the upstream's).
  returned: success
  type: str
  sample: '7310281766328713245'
bytes_copied:
  description: Size in bytes of the new data directory, WAL included; V(0) when nothing was copied.
  returned: success
  type: int
  sample: 1073741824
duration_seconds:
  description: Seconds the copy took; V(0) when nothing was copied.
  returned: success
  type: float
  sample: 12.5
start_lsn:
  description: WAL location the copy starts from (C(START WAL LOCATION) of the copy's C(backup_label)); null when nothing was copied.
  returned: success
  type: str
  sample: 0/5000028
timeline:
  description: Timeline of the copy (C(START TIMELINE) of its C(backup_label)), or of the upstream when nothing was copied.
  returned: success
  type: int
  sample: 1
backup_from:
  description: V(primary) or V(standby), from the copy's C(backup_label); null when nothing was copied.
  returned: success
  type: str
  sample: primary
moved_aside_to:
  description: Where the previous data directory was moved (O(existing=move_aside)); null otherwise.
  returned: always
  type: str
  sample: /var/lib/postgresql/15/main.pgha-20250101T120000Z
upstream:
  description: The O(upstream) option with its password redacted.
  returned: always
  type: dict
  sample: {host: dc1-pg1, port: 5432, user: replicator, sslmode: verify-full}
upstream_server_version:
  description: PostgreSQL version of the upstream.
  returned: when the upstream was reached
  type: str
  sample: '15.8'
upstream_in_recovery:
  description: Whether the upstream is itself a standby (the new standby then cascades).
  returned: when the upstream was reached
  type: bool
  sample: false
primary_conninfo:
  description: The standby's C(primary_conninfo), passwords redacted.
  returned: success
  type: str
  sample: host=dc1-pg1 port=5432 user=replicator passfile=/var/lib/postgresql/.pgpass application_name=dc1-pg2 sslmode=verify-full
slot:
  description: The replication slot the standby streams from, or null.
  returned: always
  type: str
  sample: dc1_pg2
slot_created:
  description: Whether pg_basebackup created O(slot) on the upstream.
  returned: success
  type: bool
  sample: true
settings_changed:
  description:
    - Recovery settings (and C(standby.signal)) written, or that would be written in check mode.
    - On an existing standby a running server needs a reload to apply them (a restart for
      C(recovery_target_timeline)).
  returned: success
  type: list
  elements: str
  sample: [restore_command]
size_estimate:
  description: The upstream's size as estimated before the copy, and its source (V(pg_database_size) or V(base_backup_estimate)).
  returned: when a copy was needed
  type: dict
  sample: {bytes: 1073741824, source: pg_database_size}
space:
  description: Figures of the free-space check, in bytes.
  returned: when a copy was needed
  type: dict
  sample: {path: /var/lib/postgresql, needed_bytes: 2254857830, available_bytes: 50000000000, margin_percent: 10}
command:
  description: The pg_basebackup command line (it never holds a password).
  returned: when a copy was made or would be made
  type: list
  elements: str
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.multidc.plugins.module_utils.basebackup import (
    STATE_ABSENT, STATE_CLUSTER, STATE_EMPTY, BasebackupError, UpstreamError,
    base_backup_estimate, basebackup_command, check_free_space, check_tablespace_locations,
    check_writable, clear_directory, directory_size, estimate_size, filesystem_space, find_bindir,
    fix_directory_mode, inspect_data_directory, last_error_lines, move_aside, parse_max_rate,
    parse_size, password_file, probe_upstream, read_backup_label, read_control_data,
    redacted_upstream, remove_tree, run_basebackup, scrub, short_hostname, sql_details,
    standby_conninfo, standby_mismatches, tool_major, upstream_identity, validate_slot_name)
from ansible_collections.pgha.multidc.plugins.module_utils.connection import (
    ensure_driver, upstream_suboptions)
from ansible_collections.pgha.multidc.plugins.module_utils.conninfo import redact
from ansible_collections.pgha.multidc.plugins.module_utils.standby_config import (
    apply_standby_config, desired_recovery_settings)


def argument_spec():
    return dict(
        data_directory=dict(type='path', required=True),
        upstream=dict(type='dict', required=True, options=upstream_suboptions()),
        application_name=dict(type='str'),
        slot=dict(type='str'),
        create_slot=dict(type='bool', default=False),
        max_rate=dict(type='str'),
        checkpoint=dict(type='str', default='fast', choices=['fast', 'spread']),
        wal_method=dict(type='str', default='stream', choices=['stream']),
        restore_command=dict(type='str'),
        recovery_target_timeline=dict(type='str', default='latest'),
        existing=dict(type='str', default='fail', choices=['fail', 'keep', 'move_aside', 'remove']),
        force_rebuild=dict(type='bool', default=False),
        pg_bindir=dict(type='path'),
        timeout=dict(type='int', default=0),
        space_margin_percent=dict(type='int', default=10),
        wal_headroom=dict(type='str'),
        size_check=dict(type='str', default='auto', choices=['auto', 'sql', 'base_backup']),
    )


class Builder(object):
    """One run of the module: checks, then (unless in check mode) the copy."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.upstream = self.params['upstream']
        self.password = self.upstream.get('password')
        self.data_directory = self.params['data_directory']
        self.slot = self.params['slot']
        self.result = {
            'changed': False, 'action': 'unchanged', 'data_directory': self.data_directory,
            'upstream': redacted_upstream(self.upstream), 'moved_aside_to': None, 'slot': self.slot,
        }
        self.diff = {'before': {}, 'after': {}}

    # -- helpers -----------------------------------------------------------------------
    def fail(self, msg, **extra):
        self.result.update(extra)
        self.module.fail_json(msg=scrub(msg, self.password), **self.result)

    def bindir_for(self, major, program='pg_basebackup'):
        return find_bindir(major, self.params['pg_bindir'], program=program)

    def desired_settings(self):
        application_name = self.params['application_name'] or short_hostname()
        conninfo = standby_conninfo(self.upstream, application_name)
        return desired_recovery_settings(conninfo, self.slot, self.params['restore_command'],
                                         self.params['recovery_target_timeline'])

    @staticmethod
    def _redact_settings(settings):
        shown = dict(settings)
        if shown.get('primary_conninfo'):
            shown['primary_conninfo'] = redact(shown['primary_conninfo'])
        return shown

    def validate(self):
        params = self.params
        if os.geteuid() == 0:
            raise BasebackupError('pg_basebackup_standby runs as root: run it as the user that owns the '
                                  'data directory (become_user: postgres), or PostgreSQL will not start '
                                  'on the copy')
        if not os.path.isabs(self.data_directory):
            raise BasebackupError('data_directory must be an absolute path, not %r' % self.data_directory)
        self.data_directory = os.path.normpath(self.data_directory)
        self.result['data_directory'] = self.data_directory
        validate_slot_name(self.slot)
        if params['create_slot'] and not self.slot:
            raise BasebackupError('create_slot needs slot (the name of the slot to create)')
        if params['max_rate']:
            params['max_rate'] = parse_max_rate(params['max_rate'])
        if params['space_margin_percent'] < 0:
            raise BasebackupError('space_margin_percent cannot be negative')
        if params['timeout'] < 0:
            raise BasebackupError('timeout cannot be negative (0 means no limit)')
        if params['wal_headroom'] is not None:
            self.wal_headroom = parse_size(params['wal_headroom'])
        else:
            self.wal_headroom = None
        if params['force_rebuild'] and params['existing'] not in ('move_aside', 'remove'):
            raise BasebackupError('force_rebuild needs existing=move_aside or existing=remove (the standby '
                                  'in data_directory has to go somewhere)')
        if self.upstream.get('passfile') and not os.path.isfile(self.upstream['passfile']):
            raise BasebackupError('upstream passfile %s does not exist' % self.upstream['passfile'])
        for key in ('sslrootcert', 'sslcert', 'sslkey'):
            path = self.upstream.get(key)
            if path and not os.path.isfile(path):
                raise BasebackupError('upstream %s %s does not exist' % (key, path))

    # -- the run -----------------------------------------------------------------------
    def run(self, temp_passfile):
        params = self.params
        self.passfile = temp_passfile or self.upstream.get('passfile')
        info = inspect_data_directory(self.data_directory,
                                      lambda major: self.bindir_for(major, program='pg_ctl'))
        self.diff['before'] = self._describe(info)
        self.up = up = probe_upstream(self.upstream, self.passfile, self.slot)
        self.result.update(upstream_server_version=up['server_version'],
                           upstream_in_recovery=up['in_recovery'])
        desired = self.desired_settings()
        identity = upstream_identity(self.upstream, self.slot)
        mismatches = standby_mismatches(info, up, identity) if info['state'] == STATE_CLUSTER else None

        if mismatches == [] and not params['force_rebuild']:
            return self.converge(info, desired)

        self.check_existing(info, mismatches)

        bindir = self.bindir_for(up['major'])
        pg_basebackup = os.path.join(bindir, 'pg_basebackup')
        major = tool_major(pg_basebackup)
        if major < up['major']:
            raise BasebackupError('%s is PostgreSQL %d, older than the upstream (%s): set pg_bindir to the '
                                  'binaries of PostgreSQL %d or newer' % (pg_basebackup, major,
                                                                          up['server_version'], up['major']))
        sql, sql_error = self.read_sql()
        create = self.check_slot(sql)
        if sql is not None:
            check_tablespace_locations(sql['tablespaces'], self.data_directory)
        check_writable(self.data_directory, info['state'], params['existing'])
        self.check_space(info, sql, sql_error, pg_basebackup)

        argv = basebackup_command(pg_basebackup, self.data_directory, self.upstream, slot=self.slot,
                                  create_slot=create, max_rate=params['max_rate'],
                                  checkpoint=params['checkpoint'])
        self.result.update(changed=True, action='copied', command=argv, slot_created=False)
        self.diff['after'] = {'state': 'standby', 'system_identifier': up['system_identifier'],
                              'settings': self._redact_settings(dict((k, v) for k, v in desired.items() if v)),
                              'standby.signal': True}
        if self.module.check_mode:
            self.result['msg'] = 'would copy upstream %s into %s' % (self.describe_upstream(), self.data_directory)
            return
        self.copy(info, argv, desired, bindir, create)

    def describe_upstream(self):
        return '%s@%s:%s' % (self.upstream['user'], self.upstream['host'], self.upstream['port'])

    @staticmethod
    def _describe(info):
        described = {'state': info['state']}
        if info['state'] == STATE_CLUSTER:
            described.update(system_identifier=info['system_identifier'], major=info['major'],
                             standby_signal=info['standby_signal'])
            if info['settings']:
                described['settings'] = Builder._redact_settings(info['settings'])
        elif info['entry_count']:
            described['entries'] = info['entry_count']
        return described

    def converge(self, info, desired):
        """Already a standby of this upstream: only the recovery settings may change."""
        changed, diff = apply_standby_config(self.data_directory, desired, check_mode=self.module.check_mode)
        names = sorted(name for name in diff['after'] if diff['before'].get(name) != diff['after'].get(name))
        self.result.update(
            changed=changed, action='configured' if changed else 'unchanged',
            system_identifier=info['system_identifier'], bytes_copied=0, duration_seconds=0,
            start_lsn=None, timeline=self.up['timeline'], backup_from=None, slot_created=False,
            settings_changed=names, primary_conninfo=redact(desired['primary_conninfo']),
            msg='%s is already a standby of %s%s' % (
                self.data_directory, self.describe_upstream(),
                '; recovery settings %s: %s' % ('would change' if self.module.check_mode else 'changed',
                                                ', '.join(names)) if changed else ''))
        self.diff = {'before': self._redact_settings(diff['before']),
                     'after': self._redact_settings(diff['after'])}

    def check_existing(self, info, mismatches):
        state, existing = info['state'], self.params['existing']
        if state in (STATE_ABSENT, STATE_EMPTY):
            return
        if info['running_pid']:
            raise BasebackupError('a PostgreSQL server (pid %d) is running on %s: stop it before the data '
                                  'directory is replaced; nothing was changed'
                                  % (info['running_pid'], self.data_directory))
        if mismatches:
            what = 'it is not a standby of upstream %s: %s' % (self.describe_upstream(), '; '.join(mismatches))
        elif state == STATE_CLUSTER:
            what = 'it already is a standby of upstream %s' % self.describe_upstream()
        else:
            what = 'it is not a PostgreSQL data directory (no PG_VERSION; %d entries: %s)' % (
                info['entry_count'], ', '.join(info['entries']))
        if existing == 'fail':
            raise BasebackupError('data_directory %s is not empty and existing=fail: %s. Nothing was changed; '
                                  'set existing=move_aside or existing=remove to replace it'
                                  % (self.data_directory, what))
        if existing == 'keep':
            raise BasebackupError('existing=keep, but data_directory %s cannot be kept: %s. Nothing was changed'
                                  % (self.data_directory, what))
        for link in info['external_links']:
            self.module.warn('%s is a symbolic link to %s; it is not followed: the new copy keeps its WAL and '
                             'tablespaces where pg_basebackup puts them' % (link['path'], link['target']))

    def read_sql(self):
        if self.params['size_check'] == 'base_backup':
            return None, 'size_check=base_backup'
        try:
            return sql_details(self.upstream, self.passfile, slot=self.slot), None
        except UpstreamError as error:
            return None, str(error)

    def check_slot(self, sql):
        """Whether pg_basebackup must create the slot (-C); fails on unusable slots."""
        if not self.slot:
            return False
        slot = (sql or {}).get('slot') or self.up.get('slot')
        create = self.params['create_slot']
        if slot is None:
            return create  # PostgreSQL 14 without SQL access: pg_basebackup will tell
        where = 'upstream %s' % self.describe_upstream()
        if slot['exists'] and slot['type'] != 'physical':
            raise BasebackupError('slot %s on %s is a %s slot, not a physical one' % (self.slot, where, slot['type']))
        if slot['exists'] and slot.get('active'):
            raise BasebackupError('slot %s on %s is in use (by pid %s): another standby streams from it; '
                                  'nothing was changed' % (self.slot, where, slot.get('active_pid')))
        if not slot['exists'] and not create:
            raise BasebackupError('slot %s does not exist on %s: create it (pgha.multidc.pg_replication_slot) '
                                  'or set create_slot=true; nothing was changed' % (self.slot, where))
        return create and not slot['exists']

    def check_space(self, info, sql, sql_error, pg_basebackup):
        params = self.params

        def from_base_backup():
            return base_backup_estimate(pg_basebackup, self.upstream, self.passfile,
                                        checkpoint=params['checkpoint'])

        estimate = estimate_size(params['size_check'], sql, sql_error, from_base_backup)
        self.result['size_estimate'] = estimate
        headroom = self.wal_headroom
        if headroom is None:
            headroom = max(self.up['max_wal_size'], self.up['wal_keep_size'])
        reclaimable = 0
        if params['existing'] == 'remove' and info['state'] not in (STATE_ABSENT, STATE_EMPTY):
            if filesystem_space(self.data_directory)['device'] == os.stat(self.data_directory).st_dev:
                reclaimable = directory_size(self.data_directory)
        self.result['space'] = check_free_space(self.data_directory, estimate['bytes'],
                                                params['space_margin_percent'], headroom, reclaimable)

    def copy(self, info, argv, desired, bindir, create):
        existing = self.params['existing']
        moved = None
        if info['state'] not in (STATE_ABSENT, STATE_EMPTY):
            if existing == 'move_aside':
                moved = move_aside(self.data_directory)
                self.result['moved_aside_to'] = moved
            else:
                clear_directory(self.data_directory)
        created = not os.path.exists(self.data_directory)
        try:
            outcome = run_basebackup(argv, passfile=self.passfile, timeout=self.params['timeout'],
                                     secret=self.password)
        except OSError as error:
            outcome = {'rc': -1, 'output': 'cannot run %s: %s' % (argv[0], error), 'timed_out': False,
                       'duration_seconds': 0}
        if outcome['rc'] != 0:
            self.undo(created, moved)
            reason = ('timed out after %d s' % self.params['timeout']) if outcome['timed_out'] \
                else 'exited with status %s' % outcome['rc']
            removed = existing == 'remove' and info['state'] not in (STATE_ABSENT, STATE_EMPTY)
            self.result.update(changed=removed, action='failed')
            notes = ['the partial copy was removed']
            if moved and not self.result['moved_aside_to']:
                notes.append('the previous data directory is back in place')
            if removed:
                notes.append('the previous contents had been removed (existing=remove)')
            if create:
                notes.append('slot %s, if pg_basebackup created it, stays on the upstream and the next run '
                             'reuses it' % self.slot)
            self.fail('pg_basebackup from upstream %s %s: %s. Then %s' % (
                self.describe_upstream(), reason, last_error_lines(outcome['output']), '; '.join(notes)))
        fix_directory_mode(self.data_directory)
        apply_standby_config(self.data_directory, desired)
        label = read_backup_label(self.data_directory)
        control = read_control_data(self.data_directory, bindir)
        self.result.update(
            system_identifier=control.get('Database system identifier'),
            bytes_copied=directory_size(self.data_directory),
            duration_seconds=outcome['duration_seconds'],
            start_lsn=label.get('start_lsn'), timeline=label.get('timeline'),
            backup_from=label.get('backup_from'), slot_created=bool(create),
            settings_changed=sorted(k for k in desired) + ['standby.signal'],
            primary_conninfo=redact(desired['primary_conninfo']),
            msg='copied upstream %s into %s%s' % (self.describe_upstream(), self.data_directory,
                                                  '; the previous data directory is at %s' % moved if moved else ''))

    def undo(self, created, moved):
        """After a failed copy: remove what it wrote, put a moved-aside directory back."""
        self.result['moved_aside_to'] = None
        try:
            if os.path.exists(self.data_directory):
                if created or moved:
                    remove_tree(self.data_directory)
                else:
                    clear_directory(self.data_directory)
            if moved:
                os.rename(moved, self.data_directory)
        except OSError as error:
            self.module.warn('cleaning up after the failed copy: %s%s' % (
                error, '; the previous data directory is at %s' % moved if moved else ''))
            if moved:
                self.result['moved_aside_to'] = moved


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    ensure_driver(module)
    builder = Builder(module)
    password = builder.password
    try:
        builder.validate()
        if password and not builder.upstream.get('passfile'):
            module.warn('upstream.password without upstream.passfile: the standby needs the password to '
                        'stream, so it is stored in primary_conninfo (postgresql.auto.conf, mode 0600); '
                        'prefer a passfile')
        with password_file(password, directory=module.tmpdir) as temp_passfile:
            builder.run(temp_passfile)
    except BasebackupError as error:
        builder.fail(str(error))
    except (IOError, OSError) as error:
        builder.fail('%s: %s' % (getattr(error, 'filename', None) or 'file operation failed',
                                 error.strerror or error))
    if module._diff:
        builder.result['diff'] = builder.diff
    module.exit_json(**builder.result)


if __name__ == '__main__':
    main()

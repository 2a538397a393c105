#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: pg_datadir_state
short_description: Read the control file and the end of WAL of a PostgreSQL data directory
version_added: 0.1.0
description:
  - Reports what a data directory says about itself, without a running server -
    whether a postmaster runs on it, C(pg_controldata) (cluster state, latest checkpoint,
    its REDO location and timeline, system identifier, C(wal_log_hints), checksums),
    whether C(standby.signal) exists, and with O(wal_end=true) where the valid WAL on disk ends.
  - The end of WAL is found with C(pg_waldump --quiet) reading from O(wal_end_start)
    (default the latest checkpoint's REDO location, which PostgreSQL always keeps) on the
    newest timeline of C(pg_wal) to the first position that holds no valid record. It is
    the position right after the last complete record. C(pg_controldata) alone cannot
    give it, as its REDO and checkpoint locations lag behind the WAL written since.
  - Failover reads the end of WAL of a primary whose server was killed (its host still
    answers) as the reference of what it held; switchover reads the end of the shutdown
    checkpoint of the cleanly stopped old primary (O(wal_end_start) set to
    RV(controldata.checkpoint_lsn)), which the candidate must have received.
  - Changes nothing. Refuses O(wal_end=true) while a server runs on the data directory
    (its WAL moves on; ask the server instead).
author:
  - pgha.multidc contributors (!UNKNOWN)
options:
  data_directory:
    description: The data directory.
    type: path
    required: true
  pg_bindir:
    description:
      - Directory of C(pg_controldata) and C(pg_waldump).
      - Defaults to the one of the data directory's major version (C(/usr/lib/postgresql/<major>/bin)).
    type: path
  wal_end:
    description: Also find where the valid WAL ends (RV(wal_end)).
    type: bool
    default: false
  wal_end_start:
    description:
      - Where to start reading WAL, a position (C(X/Y)), V(redo) (the latest checkpoint's REDO
        location, the default) or V(checkpoint) (the latest checkpoint record itself, for
        example the shutdown checkpoint of a cleanly stopped server).
    type: str
  timeout:
    description: Seconds C(pg_waldump) may take.
    type: int
    default: 300
extends_documentation_fragment:
  - pgha.multidc.read_only
attributes:
  platform:
    support: full
    platforms: posix
    description: Runs on the database host, as the owner of the data directory or root.
notes:
  - Run it as the owner of the data directory (usually C(postgres)) or root.
  - When the WAL ends in the middle of a page header or a file is missing, the position
    reported may be a lower bound; RV(wal_end.exact) says so.
seealso:
  - module: pgha.multidc.pg_standby_follow
  - name: pg_waldump
    description: The PostgreSQL program used to find the end of WAL.
    link: https://www.postgresql.org/docs/current/pgwaldump.html
'''

EXAMPLES = r'''
- name: Read where the WAL of the killed primary ends
  pgha.multidc.pg_datadir_state:
    data_directory: /var/lib/postgresql/15/main
    wal_end: true
  become: true
  become_user: postgres
  register: old_primary_disk

- name: End of the shutdown checkpoint of the stopped old primary
  pgha.multidc.pg_datadir_state:
    data_directory: /var/lib/postgresql/15/main
    wal_end: true
    wal_end_start: checkpoint
  become: true
  become_user: postgres
'''

RETURN = r'''
running:
  description: Whether a postmaster runs on the data directory.
  returned: always
  type: bool
  sample: false
pid:
  description: Its process id, or null.
  returned: always
  type: int
  sample: null
standby_signal:
  description: Whether C(standby.signal) exists.
  returned: always
  type: bool
  sample: false
pg_version:
  description: Major version of the data directory (C(PG_VERSION)).
  returned: always
  type: str
  sample: "15"
controldata:
  description: C(pg_controldata), summarised (the raw labels are under C(raw)).
  returned: always
  type: dict
  contains:
    state:
      description: C(Database cluster state), for example C(shut down), C(shut down in recovery), C(in production).
      type: str
    clean_shutdown:
      description: Whether the state is C(shut down) or C(shut down in recovery).
      type: bool
    system_identifier:
      description: Database system identifier.
      type: str
    checkpoint_lsn:
      description: Latest checkpoint location (where that record starts).
      type: str
    redo_lsn:
      description: The latest checkpoint's REDO location.
      type: str
    timeline:
      description: The latest checkpoint's timeline.
      type: int
    min_recovery_end_lsn:
      description: Minimum recovery ending location (null when 0/0).
      type: str
    wal_log_hints:
      description: C(wal_log_hints) when the server last ran.
      type: bool
    data_checksums:
      description: Whether data checksums are on.
      type: bool
    rewindable:
      description: Whether pg_rewind can work on it (wal_log_hints or checksums).
      type: bool
  sample: {state: shut down, clean_shutdown: true, checkpoint_lsn: 0/5000028, redo_lsn: 0/5000028, timeline: 1}
wal_end:
  description: Where the valid WAL ends (O(wal_end=true)).
  returned: when O(wal_end=true)
  type: dict
  contains:
    lsn:
      description: First position without a valid record.
      type: str
    exact:
      description: False when only a lower bound is known.
      type: bool
    timeline:
      description: Timeline read.
      type: int
    start:
      description: Where reading started.
      type: str
    detail:
      description: The pg_waldump message the position was read from.
      type: str
  sample: {lsn: 0/50000A0, exact: true, timeline: 1, start: 0/5000028,
           detail: "invalid record length at 0/50000A0"}
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.multidc.plugins.module_utils.basebackup import (
    BasebackupError, find_bindir, read_pg_version, server_running)
from ansible_collections.pgha.multidc.plugins.module_utils.datadir import (
    DatadirError, find_wal_end, read_controldata)
from ansible_collections.pgha.multidc.plugins.module_utils.lsn import InvalidLSN, parse_lsn


def main():
    module = AnsibleModule(
        argument_spec=dict(
            data_directory=dict(type='path', required=True),
            pg_bindir=dict(type='path'),
            wal_end=dict(type='bool', default=False),
            wal_end_start=dict(type='str'),
            timeout=dict(type='int', default=300),
        ),
        supports_check_mode=True,
    )
    params = module.params
    data_directory = params['data_directory']
    result = {'changed': False, 'running': False, 'pid': None}
    if params['wal_end_start'] and params['wal_end_start'] not in ('redo', 'checkpoint'):
        try:
            parse_lsn(params['wal_end_start'])
        except InvalidLSN as error:
            module.fail_json(msg='wal_end_start: %s (or redo, checkpoint)' % error, **result)
    version = read_pg_version(data_directory)
    if version is None:
        module.fail_json(msg='%s is not a PostgreSQL data directory (no PG_VERSION)' % data_directory, **result)
    result['pg_version'] = version
    try:
        bindir = find_bindir(result['pg_version'], params['pg_bindir'], program='pg_controldata')
    except BasebackupError as error:
        module.fail_json(msg=str(error), **result)
    pid = server_running(data_directory, bindir)
    result.update(running=bool(pid), pid=pid,
                  standby_signal=os.path.exists(os.path.join(data_directory, 'standby.signal')))
    try:
        result['controldata'] = read_controldata(bindir, data_directory)
        if params['wal_end']:
            if pid:
                module.fail_json(msg='a server runs on %s (pid %s): its WAL end moves; ask the server '
                                     '(pg_current_wal_lsn) instead' % (data_directory, pid), **result)
            start = params['wal_end_start']
            if start == 'checkpoint':
                start = result['controldata'].get('checkpoint_lsn')
            elif start == 'redo':
                start = None
            result['wal_end'] = find_wal_end(bindir, data_directory, result['controldata'],
                                             start=start, timeout=params['timeout'])
    except DatadirError as error:
        module.fail_json(msg=str(error), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

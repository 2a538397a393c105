#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: pg_node_status
short_description: Everything the operations playbooks need to know about one database host, in one call
version_added: 0.1.0
description:
  - Reads, without changing anything, the PostgreSQL cluster of a Debian-layout host
    (C(/var/lib/postgresql/<version>/<cluster>), unit C(postgresql@<version>-<cluster>)) -
    whether it is installed and initialized, whether C(standby.signal) exists, whether a
    postmaster runs and accepts connections, its replication state (the same view as
    M(pgha.multidc.pg_replication_info)), the state of its systemd unit (masked or not)
    and whether the health agent's fence file exists.
  - One module call instead of a handful of tasks, so that failover reads every host in
    about one round trip.
  - Run it as the C(postgres) operating system user (peer authentication on the socket).
author:
  - pgha.multidc contributors (!UNKNOWN)
options:
  version:
    description:
      - PostgreSQL major version. Empty means the only (or newest) version that has an
        initialized O(cluster) under C(/var/lib/postgresql), else the newest installed server.
    type: str
    default: ''
  cluster:
    description: Cluster name of the Debian layout.
    type: str
    default: main
  fence_file:
    description: The health agent's fence file.
    type: path
    default: /var/lib/pgha/fenced
  connect_timeout_ready:
    description: Seconds to wait for a server that is starting up or shutting down to accept connections.
    type: int
    default: 0
extends_documentation_fragment:
  - pgha.multidc.connection
  - pgha.multidc.read_only
attributes:
  platform:
    support: full
    platforms: posix
    description: Runs on the database host, as the postgres user.
seealso:
  - module: pgha.multidc.pg_replication_info
  - module: pgha.multidc.pg_datadir_state
'''

EXAMPLES = r'''
- name: Read the host
  pgha.multidc.pg_node_status:
    login_unix_socket: /var/run/postgresql
  become: true
  become_user: postgres
  register: node
'''

RETURN = r'''
version:
  description: PostgreSQL major version found.
  returned: always
  type: str
  sample: "15"
data_directory:
  description: The data directory.
  returned: always
  type: str
  sample: /var/lib/postgresql/15/main
bindir:
  description: Directory of the server binaries.
  returned: always
  type: str
  sample: /usr/lib/postgresql/15/bin
confdir:
  description: Configuration directory.
  returned: always
  type: str
  sample: /etc/postgresql/15/main
service:
  description: The systemd unit.
  returned: always
  type: str
  sample: postgresql@15-main.service
installed:
  description: Whether the server binaries are installed.
  returned: always
  type: bool
initialized:
  description: Whether the data directory holds a cluster (C(PG_VERSION)).
  returned: always
  type: bool
standby_signal:
  description: Whether C(standby.signal) exists.
  returned: always
  type: bool
running:
  description: Whether a postmaster runs on the data directory.
  returned: always
  type: bool
accepting:
  description: Whether it accepts connections.
  returned: always
  type: bool
role:
  description: V(primary), V(standby), or empty when the server does not answer.
  returned: always
  type: str
state:
  description: The replication state (see M(pgha.multidc.pg_replication_info)), empty when the server does not answer.
  returned: always
  type: dict
unit:
  description: C(ActiveState), C(LoadState) and C(UnitFileState) of the unit.
  returned: always
  type: dict
  sample: {ActiveState: failed, LoadState: masked, UnitFileState: masked}
masked:
  description: Whether the unit is masked.
  returned: always
  type: bool
fenced:
  description: Whether the fence file exists.
  returned: always
  type: bool
error:
  description: Why the server could not be read when it runs.
  returned: always
  type: str
'''

import os
import re
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.multidc.plugins.module_utils.basebackup import server_running
from ansible_collections.pgha.multidc.plugins.module_utils.connection import (
    HAS_PSYCOPG2, PostgresError, connection_argument_spec, libpq_params_from_module, open_connection)
from ansible_collections.pgha.multidc.plugins.module_utils.node_state import gather_node_state

PG_ROOT = '/var/lib/postgresql'
PG_LIB = '/usr/lib/postgresql'


def _versions(path):
    try:
        return sorted((d for d in os.listdir(path) if re.match(r'^\d+$', d)), key=int)
    except OSError:
        return []


def find_version(cluster):
    initialized = [v for v in _versions(PG_ROOT) if os.path.exists(os.path.join(PG_ROOT, v, cluster, 'PG_VERSION'))]
    if initialized:
        return initialized[-1]
    installed = [v for v in _versions(PG_LIB) if os.path.exists(os.path.join(PG_LIB, v, 'bin', 'postgres'))]
    return installed[-1] if installed else ''


def unit_state(service):
    try:
        out = subprocess.run(['systemctl', 'show', '--property=ActiveState,LoadState,UnitFileState', service],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=20,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return dict(line.split('=', 1) for line in out.splitlines() if '=' in line)


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        version=dict(type='str', default=''),
        cluster=dict(type='str', default='main'),
        fence_file=dict(type='path', default='/var/lib/pgha/fenced'),
        connect_timeout_ready=dict(type='int', default=0),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    version = p['version'] or find_version(p['cluster'])
    datadir = os.path.join(PG_ROOT, version, p['cluster']) if version else ''
    bindir = os.path.join(PG_LIB, version, 'bin') if version else ''
    service = 'postgresql@%s-%s.service' % (version, p['cluster']) if version else ''
    result = {
        'changed': False, 'version': version, 'data_directory': datadir, 'bindir': bindir,
        'confdir': os.path.join('/etc/postgresql', version, p['cluster']) if version else '',
        'service': service,
        'installed': bool(bindir) and os.path.exists(os.path.join(bindir, 'postgres')),
        'initialized': bool(datadir) and os.path.exists(os.path.join(datadir, 'PG_VERSION')),
        'standby_signal': bool(datadir) and os.path.exists(os.path.join(datadir, 'standby.signal')),
        'running': False, 'accepting': False, 'role': '', 'state': {}, 'error': None,
        'fenced': os.path.lexists(p['fence_file']),
    }
    result['unit'] = unit_state(service) if service else {}
    result['masked'] = result['unit'].get('LoadState') == 'masked'
    if result['initialized']:
        result['running'] = bool(server_running(datadir, bindir))
    if result['running'] and HAS_PSYCOPG2:
        deadline = time.time() + max(p['connect_timeout_ready'], 0)
        while True:
            try:
                conn = open_connection(libpq_params_from_module(p), application_name='pgha.multidc-status')
                try:
                    state = gather_node_state(conn)
                finally:
                    conn.close()
                result.update(accepting=True, state=state, role=state['role'], error=None)
                break
            except PostgresError as error:
                result['error'] = str(error)
            except Exception as error:  # pylint: disable=broad-except  # reported, the caller decides
                result['error'] = 'cannot read the replication state: %s' % str(error).strip()
            if time.time() >= deadline:
                break
            time.sleep(1)
    elif result['running']:
        result['error'] = 'psycopg2 is missing on the host: the server cannot be read'
    module.exit_json(**result)


if __name__ == '__main__':
    main()

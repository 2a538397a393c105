#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: pg_reload_config
short_description: Check the PostgreSQL configuration files with the server, reload it, report what needs a restart
version_added: 0.1.0
description:
  - In one call, what a configuration change needs on a PostgreSQL 14+ server, in this
    order.
  - Whether the server runs and accepts connections. A server that does not run, or that
    is starting up, shutting down or recovering (what C(pg_isready) exits with 2 and 1
    for), is reported (RV(running), RV(accepting)); nothing is checked or reloaded and the
    module does not fail. A server that answers but refuses the connection for another
    reason (authentication, C(pg_hba.conf), too many connections) makes it fail.
  - The errors of the configuration files on disk, as the server parses them now -
    C(pg_file_settings) (syntax errors, missing include files, unknown parameters,
    values a reloadable parameter cannot take), C(pg_hba_file_rules) and, from
    PostgreSQL 15 on, C(pg_ident_file_mappings). With any, the module fails without
    reloading and names each one with its file and line; the server keeps running with the
    configuration it has. A server would not start with such files either.
  - Then it reloads the server (with the function C(pg_reload_conf), the same SIGHUP that
    C(systemctl reload) sends) and reports the parameters that take effect only after a
    restart (RV(restart_needed)) - those of context C(postmaster) whose value changed in the
    files and those already waiting (C(pg_settings.pending_restart)). It waits up to 2 s
    for the server to process the reload before it reads C(pending_restart).
  - It never restarts the server; the caller decides (see the example).
author:
  - pgha.multidc contributors (!UNKNOWN)
options:
  reload:
    description:
      - Reload the server when the files have no errors. V(false) only checks the files and
        reports what needs a restart (it still fails when the files have errors).
    type: bool
    default: true
extends_documentation_fragment:
  - pgha.multidc.connection
attributes:
  check_mode:
    support: full
    description: Checks the files and reports what a restart would be needed for; reloads nothing and predicts the reload as a change.
  diff_mode:
    support: none
    description: A reload changes no file; there is no difference to show.
  platform:
    support: full
    platforms: posix
    description: Runs on the database host, as the user that owns the cluster, over the local socket.
notes:
  - The server's messages for a server that is starting up or shutting down are recognized
    in English (C(lc_messages) C or English, as pgha.multidc.postgresql sets it); with
    translated messages the module asks libpq's C(PQping), as C(pg_isready) does.
  - The configuration files are read by the server itself, so the postgres user must be
    able to read them, and the connection needs a superuser (C(pg_file_settings) and
    C(pg_hba_file_rules) are readable only by superusers by default).
seealso:
  - name: pg_file_settings
    description: The view that reports how the server parses the configuration files.
    link: https://www.postgresql.org/docs/current/view-pg-file-settings.html
  - name: pg_hba_file_rules
    description: The view that reports how the server parses pg_hba.conf.
    link: https://www.postgresql.org/docs/current/view-pg-hba-file-rules.html
'''

EXAMPLES = r'''
- name: Check the configuration files and reload PostgreSQL
  pgha.multidc.pg_reload_config:
    login_unix_socket: /var/run/postgresql
  become: true
  become_user: postgres
  register: pg_reload

- name: Restart for the parameters that need it
  ansible.builtin.systemd_service:
    name: postgresql@15-main.service
    state: restarted
  when:
    - pg_reload.accepting
    - pg_reload.restart_needed | length > 0

- name: Only check the files (fails when they have errors)
  pgha.multidc.pg_reload_config:
    login_unix_socket: /var/run/postgresql
    login_port: 5433
    reload: false
  become: true
  become_user: postgres
'''

RETURN = r'''
running:
  description: Whether a server answered (accepting connections or not).
  returned: always
  type: bool
  sample: true
accepting:
  description: Whether it accepts connections; false while it starts up, shuts down or recovers, and when it does not run.
  returned: always
  type: bool
  sample: true
reloaded:
  description: Whether the server was reloaded. C(changed) is the same, except in check mode, where it predicts the reload.
  returned: always
  type: bool
  sample: true
restart_needed:
  description:
    - Parameters (sorted) whose value in the files takes effect only after a restart.
    - Empty when the server does not accept connections.
  returned: always
  type: list
  elements: str
  sample: [max_connections, shared_buffers]
file_errors:
  description:
    - Errors of C(postgresql.conf), its include files and C(postgresql.auto.conf) (C(pg_file_settings)),
      as C(<file>:<line>) then the error, with the parameter's name before it for a parameter.
    - Not empty only when the module failed.
  returned: always
  type: list
  elements: str
  sample: ["/etc/postgresql/15/main/conf.d/local.conf:3: syntax error"]
hba_errors:
  description: Errors of C(pg_hba.conf) (C(pg_hba_file_rules)), as C(<file>:<line>) then the error; not empty only when the module failed.
  returned: always
  type: list
  elements: str
  sample: ['/etc/postgresql/15/main/pg_hba.conf:12: invalid connection type "hots"']
ident_errors:
  description:
    - Errors of C(pg_ident.conf) (C(pg_ident_file_mappings), PostgreSQL 15 and later) as
      C(<file>:<line>) then the error; not empty only when the module failed.
  returned: always
  type: list
  elements: str
  sample: ["/etc/postgresql/15/main/pg_ident.conf:44: missing entry at end of line"]
queries:
  description: The statement that reloaded the server (or would have, in check mode).
  returned: always
  type: list
  elements: str
  sample: ["SELECT pg_reload_conf()"]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.multidc.plugins.module_utils.config_check import (
    NOT_ACCEPTING, REFUSED, ConfigFileErrors, check_and_reload, open_local)
from ansible_collections.pgha.multidc.plugins.module_utils.connection import (
    DatabaseError, PostgresError, check_server_version, connection_argument_spec, ensure_driver,
    libpq_params_from_module)


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(reload=dict(type='bool', default=True))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    ensure_driver(module)
    result = {'changed': False, 'running': False, 'accepting': False, 'reloaded': False, 'restart_needed': [],
              'file_errors': [], 'hba_errors': [], 'ident_errors': [], 'queries': []}

    conn, status, error = open_local(libpq_params_from_module(module.params))
    if status == REFUSED:
        result['running'] = True
        module.fail_json(msg='PostgreSQL answers but refuses the connection, so the configuration can be neither '
                             'checked nor reloaded: %s' % error, **result)
    if conn is None:
        result['running'] = status == NOT_ACCEPTING
        if result['running']:
            module.warn('PostgreSQL is starting up, shutting down or recovering, nothing was checked or reloaded '
                        '(run it again once the server accepts connections): %s' % error)
        module.exit_json(**result)

    result.update(running=True, accepting=True)
    try:
        check_server_version(conn)
        for warning in check_and_reload(conn, result, module.params['reload'], module.check_mode):
            module.warn(warning)
    except ConfigFileErrors as failure:
        module.fail_json(msg=str(failure), **result)
    except PostgresError as failure:
        module.fail_json(msg=str(failure), **result)
    except DatabaseError as failure:
        result['changed'] = result['reloaded']
        module.fail_json(msg='cannot check or reload the configuration: %s' % str(failure).strip(), **result)
    finally:
        conn.close()
    result['changed'] = bool(result['queries'])
    module.exit_json(**result)


if __name__ == '__main__':
    main()

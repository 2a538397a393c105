# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The options of plugins/module_utils/connection.py:connection_argument_spec().
    DOCUMENTATION = r'''
options:
  login_host:
    description:
      - Host name or address of the PostgreSQL server to manage.
      - Empty means a Unix socket (see O(login_unix_socket)).
    type: str
    default: ''
  login_unix_socket:
    description:
      - Directory of the server's Unix socket, used when O(login_host) is empty.
    type: str
    default: ''
  login_port:
    description: Port of the server.
    type: int
    default: 5432
    aliases: [port]
  login_user:
    description: Role to connect as.
    type: str
    default: postgres
  login_password:
    description:
      - Password of O(login_user). Prefer O(login_passfile) or peer authentication.
    type: str
    default: ''
  login_passfile:
    description:
      - A libpq password file (mode 0600) to read the password from.
    type: path
  login_db:
    description: Database to connect to.
    type: str
    default: postgres
  ssl_mode:
    description:
      - libpq C(sslmode). Use V(verify-full) with O(ssl_rootcert) over the network.
    type: str
    default: prefer
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  ssl_rootcert:
    description: CA certificate that signed the server's certificate.
    type: path
  ssl_cert:
    description: Client certificate, for certificate authentication.
    type: path
  ssl_key:
    description: Key of O(ssl_cert).
    type: path
  connect_timeout:
    description: Seconds to wait for the connection.
    type: int
    default: 5
requirements:
  - psycopg2 on the managed host
notes:
  - Run the module as the operating system user that owns the cluster (usually C(postgres))
    so that local peer authentication works without a password.
'''

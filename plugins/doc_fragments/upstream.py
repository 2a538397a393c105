# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The upstream option of the modules that make a standby stream from a server:
    # plugins/module_utils/connection.py:upstream_suboptions().
    DOCUMENTATION = r'''
options:
  upstream:
    description:
      - The server to stream from (a primary, or a standby for cascading replication), as
        libpq parameters. The same parameters go into the standby's C(primary_conninfo).
      - A role with the C(REPLICATION) attribute and a C(replication) line in the upstream's
        C(pg_hba.conf) is enough.
    type: dict
    required: true
    suboptions:
      host:
        description: Host name or address of the upstream (the name its certificate carries for V(verify-full)).
        type: str
        required: true
      port:
        description: Port of the upstream.
        type: int
        default: 5432
      user:
        description: Replication role.
        type: str
        required: true
      password:
        description:
          - Password of O(upstream.user).
          - When O(upstream.passfile) is not set, the standby needs the password to stream and
            it is written into C(primary_conninfo) (the file is mode 0600). Prefer O(upstream.passfile).
        type: str
      passfile:
        description:
          - A libpq password file (mode 0600, owned by the user the module runs as) with the
            password of O(upstream.user). C(primary_conninfo) names it, so no password is stored
            in the configuration; the module connects to the upstream with it too (unless
            O(upstream.password) is set).
        type: path
      sslmode:
        description: libpq C(sslmode) for the connections to the upstream and for streaming.
        type: str
        default: verify-full
        choices: [disable, allow, prefer, require, verify-ca, verify-full]
      sslrootcert:
        description: CA certificate that signed the upstream's certificate.
        type: path
      sslcert:
        description: Client certificate, for certificate authentication.
        type: path
      sslkey:
        description: Key of O(upstream.sslcert).
        type: path
      connect_timeout:
        description:
          - Seconds to wait for a connection to the upstream.
          - C(primary_conninfo) also gets C(tcp_user_timeout) of the same length, because the WAL
            receiver ignores C(connect_timeout) and would otherwise wait out the kernel's connection
            retries against an unreachable upstream.
        type: int
        default: 5
'''

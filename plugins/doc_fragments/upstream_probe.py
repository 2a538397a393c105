# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The options of plugins/module_utils/connection.py:upstream_probe_argument_spec().
    DOCUMENTATION = r'''
options:
  upstream_passfile:
    description:
      - libpq password file used to reach the upstream recorded in the standby's
        C(primary_conninfo), instead of the C(passfile) named there.
      - The upstream is reached with the standby's own replication settings (host, port,
        user, TLS); C(primary_conninfo) normally names a passfile and holds no password.
    type: path
  upstream_sslrootcert:
    description:
      - CA certificate used to verify the upstream, instead of the C(sslrootcert) named in
        C(primary_conninfo).
    type: path
  upstream_connect_timeout:
    description:
      - Seconds to wait for the upstream to answer. Keep it short; an upstream that does
        not answer within this time counts as down.
    type: int
    default: 3
notes:
  - The upstream is probed over a physical replication connection, the kind the standby
    itself opens, so the C(replication) line of the upstream's C(pg_hba.conf) that lets the
    standby stream is all it needs. Whether the upstream is in recovery comes from the
    C(in_hot_standby) parameter it reports (PostgreSQL 14+); its WAL position and timeline
    come from C(IDENTIFY_SYSTEM).
'''

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: haproxy_backend_info
short_description: HAProxy's own view of its backends, from its stats socket
version_added: 0.1.0
description:
  - Sends C(show stat) to the stats socket of HAProxy on the host and returns, for each
    proxy, its status and each server's status, last check and how long it has been in
    that status - what HAProxy routes to now, as opposed to what the inventory says.
  - Reads only. Run it as root or as a member of the socket's group.
author:
  - pgha.multidc contributors (!UNKNOWN)
options:
  socket:
    description: The stats socket (C(stats socket) in haproxy.cfg).
    type: path
    default: /run/haproxy/admin.sock
  proxies:
    description: Only these proxies (C(listen) or C(backend) names); all when empty.
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds to wait for HAProxy's answer.
    type: float
    default: 5
extends_documentation_fragment:
  - pgha.multidc.read_only
attributes:
  platform:
    support: full
    platforms: posix
    description: Runs on the HAProxy host.
'''

EXAMPLES = r'''
- name: Read HAProxy's view of the read-write and read-only ports
  pgha.multidc.haproxy_backend_info:
    proxies: [pgha_rw, pgha_ro]
  become: true
  register: haproxy
'''

RETURN = r'''
proxies:
  description: Per proxy, its status (C(UP), C(DOWN)) and its servers.
  returned: success
  type: dict
  sample:
    pgha_rw:
      status: UP
      servers:
        - {name: dc1-pg1, status: UP, check_status: L7OK, backup: false, since_s: 3120}
        - {name: dc1-pg2, status: DOWN, check_status: L7STS, backup: false, since_s: 3120}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.multidc.plugins.module_utils.haproxy_stat import (
    HaproxyStatError, backends_view, parse_show_stat, read_show_stat)


def main():
    module = AnsibleModule(
        argument_spec=dict(socket=dict(type='path', default='/run/haproxy/admin.sock'),
                           proxies=dict(type='list', elements='str', default=[]),
                           timeout=dict(type='float', default=5)),
        supports_check_mode=True)
    try:
        rows = parse_show_stat(read_show_stat(module.params['socket'], module.params['timeout']))
    except HaproxyStatError as error:
        module.fail_json(msg=str(error))
    module.exit_json(changed=False, proxies=backends_view(rows, module.params['proxies']))


if __name__ == '__main__':
    main()

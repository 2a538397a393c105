# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for the keeper and its etcd cluster: the timing rules of
plugins/module_utils/keeper.py, and the client URLs of the etcd members."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.pgha.multidc.plugins.module_utils.keeper import timing_problems


def keeper_timing_problems(timings):
    """[ttl, loop_wait, retry_timeout] -> why they cannot keep "never two primaries" ([] if fine)."""
    try:
        ttl, loop_wait, retry_timeout = [int(value) for value in timings]
    except (TypeError, ValueError) as error:
        raise AnsibleFilterError('keeper_timing_problems expects [ttl, loop_wait, retry_timeout] as integers: %s' % error)
    return timing_problems(ttl, loop_wait, retry_timeout)


def etcd_endpoints(hosts, hostvars, port=2379):
    """The https://<ansible_host>:<port> client URL of each etcd member in ``hosts``."""
    urls = []
    for host in hosts or []:
        address = hostvars[host].get('ansible_host', host)
        urls.append('https://%s:%d' % ('[%s]' % address if ':' in str(address) else address, int(port)))
    return urls


class FilterModule(object):
    def filters(self):
        return {
            'keeper_timing_problems': keeper_timing_problems,
            'etcd_endpoints': etcd_endpoints,
        }

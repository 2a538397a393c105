#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: pgha_dcs_lock
short_description: Take or give back the maintenance key of the keepers in etcd
version_added: 0.1.0
description:
  - The key that pauses every automatic decision of the keepers (docs/design.md,
    "Keeper"). The operation playbooks take it for their duration (O(state=acquire) and
    O(state=release)); C(playbooks/maintenance.yml) sets a person's (O(state=on),
    O(state=off)).
  - An operation's key is on an etcd lease of O(ttl) seconds that a detached child
    process refreshes while the C(ansible-playbook) process lives, so a run that fails or is
    killed gives it back within O(ttl) seconds, one that ends gives it back at once.
  - Under a person's maintenance an operation takes nothing and leaves it in place.
    Another operation's key is refused unless O(force).
  - Every keeper announces a change of its node in its member key in a transaction that
    fails under the maintenance key; once the key is held this waits for the announced
    changes to end, so that the operation never races a keeper.
  - An action plugin that runs on the control node; delegate it to localhost.
author:
  - pgha.multidc contributors (!UNKNOWN)
options:
  state:
    description: What to do.
    type: str
    required: true
    choices: [acquire, release, 'on', 'off', read]
  endpoints:
    description: Client URLs of the etcd members. Empty means no etcd (see O(required)).
    type: list
    elements: str
    default: []
  cluster:
    description: The cluster's name (its keys are under C(/pgha/<cluster>/)).
    type: str
    required: true
  ca:
    description: CA certificate of the etcd cluster, on the control node.
    type: path
  cert:
    description: Client certificate of the control node.
    type: path
  key:
    description: Key of the client certificate (0600).
    type: path
  operation:
    description: Name of the operation taking the key (O(state=acquire)).
    type: str
  reason:
    description: Why, for status.yml and the keepers' log.
    type: str
  ttl:
    description: Lease of an operation's key, in seconds.
    type: int
    default: 30
  force:
    description:
      - Take the place of another operation's key (O(state=acquire)), replace a person's
        (O(state=on)), or remove an operation's (O(state=off)).
    type: bool
    default: false
  required:
    description:
      - Fail when etcd does not answer or no endpoint is given. False goes on without the
        key (an inventory without etcd, a disaster that took the etcd quorum).
    type: bool
    default: true
  timeout:
    description: Seconds per etcd request.
    type: float
    default: 3.0
  idle_timeout:
    description:
      - Seconds to wait, once the key is held (O(state=acquire), O(state=on)), for the
        keepers' actions already under way (a promotion, a repoint, a fence) to end. No
        keeper starts one under the key. O(state=acquire) gives the key back and fails
        when some are still busy after that long.
    type: float
    default: 60.0
  lease:
    description: The lease RV(lease) of the acquire (O(state=release)).
    type: int
  keepalive_pid:
    description: RV(keepalive_pid) of the acquire (O(state=release)).
    type: int
attributes:
  platform:
    support: full
    platforms: posix
    description: Runs on the control node (an action plugin).
requirements:
  - etcd3gw on the control node (requirements.txt)
'''

EXAMPLES = r'''
- name: Hold the keepers off for the switchover
  pgha.multidc.pgha_dcs_lock:
    state: acquire
    operation: switchover
    endpoints: "{{ pgha_etcd_endpoints }}"
    cluster: "{{ pgha_cluster_name }}"
    ca: "{{ pgha_pki_dir }}/ca.crt"
    cert: "{{ pgha_pki_dir }}/etcd-controller.crt"
    key: "{{ pgha_pki_dir }}/etcd-controller.key"
  delegate_to: localhost
  run_once: true
  register: lock

- name: Give it back
  pgha.multidc.pgha_dcs_lock:
    state: release
    lease: "{{ lock.lease }}"
    keepalive_pid: "{{ lock.keepalive_pid }}"
    endpoints: "{{ pgha_etcd_endpoints }}"
    cluster: "{{ pgha_cluster_name }}"
    ca: "{{ pgha_pki_dir }}/ca.crt"
    cert: "{{ pgha_pki_dir }}/etcd-controller.crt"
    key: "{{ pgha_pki_dir }}/etcd-controller.key"
  delegate_to: localhost
  run_once: true
  when: lock.lock == 'operation'
'''

RETURN = r'''
lock:
  description: C(operation) (taken), C(person) (a person's maintenance holds; nothing taken),
    C(released), or C(none) (no etcd).
  returned: always
  type: str
lease:
  description: The lease of the operation's key.
  returned: when lock is operation
  type: int
keepalive_pid:
  description: The process that keeps the lease alive.
  returned: when lock is operation
  type: int
busy:
  description: The keepers still acting (host to action) after O(idle_timeout) (O(state=on)).
  returned: when state is on
  type: dict
dc_leaders:
  description:
    - The standby datacenters' leaders that the keepers hold (datacenter to host), read under
      the key (O(state=acquire)); the operation's topology puts them in the place of the
      inventory's leaders.
  returned: when state is acquire and etcd answered
  type: dict
value:
  description: The maintenance key's value (who, since when, why).
  returned: when a key was taken or found
  type: dict
previous:
  description: The maintenance key before (O(state=on), O(state=off)).
  returned: when state is on or off
  type: dict
blocked:
  description: The blocked automatic failover that O(state=off) removed.
  returned: when state is off
  type: dict
keeper:
  description:
    - The keepers' view (O(state=read)) - C(leader), C(leader_lease_left_s), C(dc_leaders),
      C(maintenance), C(blocked), C(decision) (the last automatic decision), C(members)
      (what each keeper published) and C(etcd) (each endpoint's answer, its member id,
      the raft leader's id, its version).
  returned: when state is read
  type: dict
msg:
  description: What happened, in a sentence.
  returned: always
  type: str
'''

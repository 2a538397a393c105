# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every mistake refused up front (issue 14): one bad input at a time on a copy of
inventories/prod, each a real ansible-playbook run (site.yml for the inventory, the
operation playbook for its extra vars) that must stop in its validation with the
message of the rule, before any host is contacted. The hosts are documentation addresses
(unreachable) and SSH is /bin/false: the recap must name localhost only. Then
playbooks/validate.yml: every problem at once, warnings for unknown names, and the
inventories the project ships (prod, lab, molecule's trixie) clean."""

from __future__ import absolute_import, division, print_function

import os
import re
import shutil
import subprocess

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
SECRETS = {
    'vault_pgha_superuser_password': 'test-superuser',
    'vault_pgha_replication_password': 'test-replication',
    'vault_pgha_monitor_password': 'test-monitor',
    'vault_pgha_app_password': 'test-app',
}


class Inventory(object):
    """A copy of inventories/prod whose hosts.yml and group_vars/all/main.yml are edited as data."""

    def __init__(self, path):
        self.path = path
        self.hosts = yaml.safe_load((path / 'hosts.yml').read_text())
        self.main = yaml.safe_load((path / 'group_vars' / 'all' / 'main.yml').read_text())
        # Loaded after main.yml: a variable it sets is changed there.
        self.secrets = yaml.safe_load((path / 'group_vars' / 'all' / 'secrets.yml').read_text())

    def group(self, name):
        return self.hosts['all']['children'].setdefault(name, {'hosts': {}})['hosts']

    def entries(self, name):
        """The variables of host ``name`` in each group that lists it with variables."""
        return [group['hosts'][name] for group in self.hosts['all']['children'].values()
                if (group.get('hosts') or {}).get(name)]

    def set_host_var(self, name, var, value):
        # In the group that sets it already (the last definition would win), else the first.
        entries = self.entries(name)
        target = ([entry for entry in entries if var in entry] or entries)[0]
        target[var] = value

    def save(self):
        (self.path / 'hosts.yml').write_text(yaml.safe_dump(self.hosts))
        (self.path / 'group_vars' / 'all' / 'main.yml').write_text(yaml.safe_dump(self.main))
        (self.path / 'group_vars' / 'all' / 'secrets.yml').write_text(yaml.safe_dump(self.secrets))

    def set_var(self, name, value):
        (self.secrets if name in self.secrets else self.main)[name] = value


@pytest.fixture
def inventory(tmp_path):
    copy = tmp_path / 'prod'
    shutil.copytree(os.path.join(ROOT, 'inventories', 'prod'), str(copy))
    (copy / 'group_vars' / 'all' / 'vault.yml').write_text(yaml.safe_dump(SECRETS))
    inv = Inventory(copy)
    # Were a check to let a case through, the keepers' lock must not leave this machine.
    inv.main['pgha_etcd_endpoints'] = ['https://127.0.0.1:9']
    inv.save()
    return inv


# Another ansible-core (the lowest meta/runtime.yml admits, in a virtualenv of its own) with
# PGHA_TEST_ANSIBLE_PLAYBOOK=/path/to/ansible-playbook.
ANSIBLE_PLAYBOOK = os.environ.get('PGHA_TEST_ANSIBLE_PLAYBOOK', os.path.join(ROOT, '.venv', 'bin', 'ansible-playbook'))


def run(playbook, inventory_path, *extra, env=None):
    environ = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
                   ANSIBLE_SSH_EXECUTABLE='/bin/false', **(env or {}))
    args = [ANSIBLE_PLAYBOOK, '-i', str(inventory_path), playbook]
    for value in extra:
        args += ['-e', value]
    proc = subprocess.run(args, cwd=ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=300, check=False)
    return proc.returncode, proc.stdout


def recap_hosts(out):
    return set(re.findall(r'^(\S+)\s+: ok=\d+', out.split('PLAY RECAP')[-1], re.M))


# ansible-core 2.16.20 writes the task that checks a role's argument_specs in the `action`
# mapping form it deprecates (ansible/ansible#85399, fixed from 2.19 on); no file of ours
# causes it, and `make test-core-min` proves that none of ours uses that form.
CORE_OWN_DEPRECATION = '[DEPRECATION WARNING]: Using a mapping for `action` is deprecated.'


def warnings(out):
    """The warning lines of a run, without the one ansible-core 2.16.20 causes itself."""
    return [line for line in out.splitlines() if 'WARNING' in line and CORE_OWN_DEPRECATION not in line]


def has_message(flat, message):
    """``message`` in the output, '...' standing for any text (the type names of
    validate_argument_spec differ between ansible-core versions)."""
    return re.search('.*?'.join(re.escape(part) for part in message.split('...')), flat) is not None


def assert_refused_before_any_host(rc, out, message):
    flat = ' '.join(out.split())
    assert rc != 0, flat[-3000:]
    assert has_message(flat, message), flat[-3000:]
    assert recap_hosts(out) == {'localhost'}, flat[-3000:]
    assert 'UNREACHABLE' not in out and 'changed=0' in out.split('PLAY RECAP')[-1], flat[-3000:]


def set_var(name, value):
    def edit(inv):
        inv.set_var(name, value)
    return edit


def set_host_var(host, name, value):
    def edit(inv):
        inv.set_host_var(host, name, value)
    return edit


def drop_host_var(host, name):
    def edit(inv):
        for entry in inv.entries(host):
            entry.pop(name, None)
    return edit


def add_to_group(host, group, **host_vars):
    def edit(inv):
        inv.group(group)[host] = host_vars or None
    return edit


def both(*edits):
    def edit(inv):
        for one in edits:
            one(inv)
    return edit


# (id, edit of the inventory, message site.yml must stop with)
INVENTORY_CASES = [
    ('lag-negative', set_var('pgha_haproxy_max_replica_lag_bytes', -1),
     '[ranges] inventory: pgha_haproxy_max_replica_lag_bytes = -1 is out of range; it must be a whole number of at least 0 (bytes)'),
    ('lag-string', set_var('pgha_haproxy_max_replica_lag_bytes', 'lots'),
     "[ranges] inventory: pgha_haproxy_max_replica_lag_bytes = 'lots' is not a whole number"),
    ('lag-string-type', set_var('pgha_haproxy_max_replica_lag_bytes', 'lots'),
     "[role inputs] dc1-lb1, dc1-lb2, dc2-lb1: argument 'pgha_haproxy_max_replica_lag_bytes' is of type ... unable to convert to int"),
    ('lag-negative-one-host', set_host_var('dc1-lb2', 'pgha_haproxy_max_replica_lag_bytes', -5),
     '[ranges] dc1-lb2: pgha_haproxy_max_replica_lag_bytes = -5 is out of range'),
    ('database-and-haproxy', add_to_group('dc1-pg1', 'pgha_haproxy'),
     '[group memberships] dc1-pg1: is in pgha_database and in pgha_haproxy'),
    ('database-and-keepalived', add_to_group('dc1-pg2', 'pgha_keepalived', pgha_keepalived_priority=90),
     '[group memberships] dc1-pg2: is in pgha_database and in pgha_keepalived'),
    ('keepalived-without-haproxy',
     add_to_group('dc1-lb3', 'pgha_keepalived', ansible_host='192.0.2.23', pgha_datacenter='dc1', pgha_keepalived_priority=90),
     '[keepalived on two hosts] dc1-lb3: is in pgha_keepalived but not in pgha_haproxy'),
    ('keepalived-priority-range', set_host_var('dc1-lb1', 'pgha_keepalived_priority', 300),
     '[ranges] dc1-lb1: pgha_keepalived_priority = 300 is out of range; it must be a whole number from 1 to 254'),
    ('keepalived-priority-missing', drop_host_var('dc1-lb2', 'pgha_keepalived_priority'),
     '[role inputs] dc1-lb2: missing required arguments: pgha_keepalived_priority (argument_specs of role keepalived)'),
    ('keepalived-router-id', set_var('pgha_keepalived_virtual_router_id', 0),
     '[ranges] inventory: pgha_keepalived_virtual_router_id = 0 is out of range'),
    ('pg-port-string', set_var('pgha_pg_port', 'abc'),
     '[ports] dc1-pg1: pgha_pg_port = abc is not a port number (1-65535)'),
    ('pg-port-type', set_var('pgha_pg_port', 'abc'),
     "argument 'pgha_pg_port' is of type ... and we were unable to convert to int"),
    ('duplicate-port', set_var('pgha_agent_port', 5432),
     '[no duplicate ports] dc1-pg1: port 5432 is used by pgha_pg_port and pgha_agent_port'),
    ('sync-mode', set_var('pgha_synchronous_mode', 'sometimes'),
     '[synchronous standbys] inventory: pgha_synchronous_mode sometimes must be off, FIRST or ANY'),
    ('sync-count-zero', set_var('pgha_synchronous_count', 0),
     '[synchronous standbys] inventory: pgha_synchronous_count 0 must be a positive integer'),
    ('sync-standby-unknown', set_var('pgha_synchronous_standbys', ['dc9-pg9']),
     '[synchronous standbys] dc9-pg9: named in pgha_synchronous_standbys but is no standby'),
    ('two-primaries', set_host_var('dc1-pg2', 'pgha_initial_primary', True),
     '[one primary] dc1-pg1, dc1-pg2: pgha_initial_primary is true on 2 hosts'),
    ('no-primary', drop_host_var('dc1-pg1', 'pgha_initial_primary'),
     '[one primary] inventory: no database host has pgha_initial_primary: true'),
    ('unknown-datacenter', set_host_var('dc2-pg2', 'pgha_datacenter', 'dc3'),
     '[datacenter of every host] dc2-pg2: pgha_datacenter dc3 is not defined in pgha_datacenters'),
    ('address-not-ip', set_host_var('dc1-pg2', 'ansible_host', 'db2.example'),
     '[addresses] dc1-pg2: ansible_host db2.example is not an IP address'),
    ('address-outside-network', set_host_var('dc1-pg2', 'ansible_host', '198.51.100.99'),
     '[addresses] dc1-pg2: address 198.51.100.99 is outside the network 192.0.2.0/24 of its datacenter dc1'),
    ('duplicate-address', set_host_var('dc1-pg2', 'ansible_host', '192.0.2.11'),
     '[addresses] dc1-pg1, dc1-pg2: share the address 192.0.2.11'),
    ('vip-outside', set_var('pgha_datacenters', {'dc1': {'network': '192.0.2.0/24', 'vip': '10.0.0.1'},
                                                 'dc2': {'network': '198.51.100.0/24', 'leader': 'dc2-pg1'}}),
     '[VIP inside its datacenter] datacenter dc1: vip 10.0.0.1 is outside the datacenter network 192.0.2.0/24'),
    ('network-not-cidr', set_var('pgha_datacenters', {'dc1': {'network': '192.0.2.0/33', 'vip': '192.0.2.100'},
                                                      'dc2': {'network': '198.51.100.0/24', 'leader': 'dc2-pg1'}}),
     '[datacenters] datacenter dc1: network 192.0.2.0/33 is not a CIDR network'),
    ('upstream-self', set_host_var('dc1-pg2', 'pgha_upstream', 'dc1-pg2'),
     '[no upstream cycle] dc1-pg2: pgha_upstream names the host itself'),
    ('upstream-unknown', set_host_var('dc1-pg2', 'pgha_upstream', 'nohost'),
     '[upstream exists] dc1-pg2: upstream nohost is not a host of pgha_database'),
    ('admin-networks-string', set_var('pgha_admin_networks', '203.0.113.0/28'),
     '[networks] inventory: pgha_admin_networks must be a list of CIDR networks'),
    ('client-network-entry', set_var('pgha_client_networks', ['300.1.1.0/24']),
     '[networks] inventory: pgha_client_networks entry 300.1.1.0/24 is not an address or CIDR network'),
    ('app-user-without-password', set_var('pgha_app_users', [{'name': 'app', 'database': 'app'}]),
     '[secrets] inventory: pgha_app_users entry #1 needs a name and a password'),
    ('replication-password-empty', set_var('pgha_replication_password', ''),
     '[secrets] inventory: pgha_replication_password is not set'),
    ('nofailover-not-bool', set_host_var('dc2-pg2', 'pgha_nofailover', 'perhaps'),
     "[role inputs] dc2-pg2: argument 'pgha_nofailover' is of type ... and we were unable to convert to bool"),
    ('failover-priority-negative', set_host_var('dc1-pg2', 'pgha_failover_priority', -1),
     '[ranges] dc1-pg2: pgha_failover_priority = -1 is out of range'),
    ('ro-balance-choice', set_var('pgha_haproxy_ro_balance', 'random'),
     'value of pgha_haproxy_ro_balance must be one of: leastconn, roundrobin, source, first, got: random'),
    ('nonlocal-bind-choice', set_var('pgha_haproxy_nonlocal_bind', 'magic'),
     'value of pgha_haproxy_nonlocal_bind must be one of: transparent, sysctl, got: magic'),
    ('max-connections-zero', set_var('pgha_pg_max_connections', 0),
     '[ranges] inventory: pgha_pg_max_connections = 0 is out of range; it must be a whole number of at least 1'),
    ('pg-parameters-list', set_var('pgha_pg_parameters', ['work_mem=16MB']),
     "argument 'pgha_pg_parameters' is of type ... and we were unable to convert to dict"),
    ('etcd-port-string', set_var('pgha_etcd_client_port', 'x'),
     "argument 'pgha_etcd_client_port' is of type ... and we were unable to convert to int"),
    ('datacenter-missing-on-haproxy', drop_host_var('dc2-lb1', 'pgha_datacenter'),
     '[datacenter of every host] dc2-lb1: no pgha_datacenter'),
    ('haproxy-packages-string', set_var('pgha_haproxy_log_normal_sessions', 'often'),
     "argument 'pgha_haproxy_log_normal_sessions' is of type ... and we were unable to convert to bool"),
    ('keeper-ttl-zero', set_var('pgha_keeper_ttl', 0),
     '[ranges] inventory: pgha_keeper_ttl = 0 is out of range'),
    ('both-mistakes-named', both(add_to_group('dc2-pg2', 'pgha_haproxy'), set_var('pgha_haproxy_max_replica_lag_bytes', -1)),
     '[group memberships] dc2-pg2: is in pgha_database and in pgha_haproxy'),
]


@pytest.mark.parametrize('edit,message', [case[1:] for case in INVENTORY_CASES], ids=[case[0] for case in INVENTORY_CASES])
def test_site_refuses_a_bad_inventory_before_any_host(inventory, edit, message):
    edit(inventory)
    inventory.save()
    rc, out = run('site.yml', inventory.path)
    assert_refused_before_any_host(rc, out, message)


# (playbook, extra vars, message)
OPERATION_CASES = [
    ('playbooks/switchover.yml', ['pgha_switchover_max_lag_bytes=-1'],
     '[argument ranges] switchover.yml: pgha_switchover_max_lag_bytes = -1 is out of range; it must be a whole number of at least 0'),
    ('playbooks/switchover.yml', ['pgha_switchover_max_lag_bytes=lots'],
     "[argument types] switchover.yml: argument 'pgha_switchover_max_lag_bytes' is of type ... unable to convert to int"),
    ('playbooks/switchover.yml', ['candidate=nohost'],
     '[argument hosts] switchover.yml: candidate=nohost is not a database host of the inventory'),
    ('playbooks/switchover.yml', ['pgha_switchover_catchup_timeout=0'],
     '[argument ranges] switchover.yml: pgha_switchover_catchup_timeout = 0 is out of range; it must be a whole number from 1 to 3600'),
    ('playbooks/switchover.yml', ['pgha_op_ssh_timeout=0'],
     '[argument ranges] switchover.yml: pgha_op_ssh_timeout = 0 is out of range'),
    ('playbooks/failover.yml', ['force=maybe'],
     "[argument types] failover.yml: argument 'force' is of type ... and we were unable to convert to bool"),
    ('playbooks/failover.yml', ['pgha_failover_max_lag_bytes=-1'],
     '[argument ranges] failover.yml: pgha_failover_max_lag_bytes = -1 is out of range'),
    ('playbooks/failover.yml', ['failed_primary=nohost'],
     '[argument hosts] failover.yml: failed_primary=nohost is not a database host'),
    ('playbooks/rejoin.yml', [],
     '[argument types] rejoin.yml: missing required arguments: node'),
    ('playbooks/rejoin.yml', ['node=nohost'],
     '[argument hosts] rejoin.yml: node=nohost is not a database host of the inventory'),
    ('playbooks/rejoin.yml', ['node=dc1-pg2', 'pgha_rejoin_method=magic'],
     '[argument types] rejoin.yml: value of pgha_rejoin_method must be one of: auto, rewind, rebuild, got: magic'),
    ('playbooks/rebuild_standby.yml', ['node=dc1-pg2', 'pgha_rebuild_checkpoint=slow'],
     '[argument types] rebuild_standby.yml: value of pgha_rebuild_checkpoint must be one of: fast, spread, got: slow'),
    ('playbooks/rebuild_standby.yml', ['node=dc1-pg2', 'pgha_rebuild_space_margin_percent=-1'],
     '[argument ranges] rebuild_standby.yml: pgha_rebuild_space_margin_percent = -1 is out of range'),
    ('playbooks/dr_promote.yml', ['pgha_dr_promote_timeout=0'],
     '[argument ranges] dr_promote.yml: pgha_dr_promote_timeout = 0 is out of range; it must be a whole number from 1 to 3600'),
    ('playbooks/maintenance.yml', ['state=maybe'],
     '[argument types] maintenance.yml: value of state must be one of: on, off, got: maybe'),
    ('playbooks/maintenance.yml', [],
     '[argument types] maintenance.yml: missing required arguments: state'),
    ('playbooks/status.yml', ['status_format=xml'],
     '[argument types] status.yml: value of status_format must be one of: text, json, got: xml'),
    ('playbooks/replication.yml', ['node=dc1-pg2', 'replay=stop'],
     '[argument types] replication.yml: value of replay must be one of: pause, resume, status, got: stop'),
]


@pytest.mark.parametrize('playbook,extra,message', OPERATION_CASES,
                         ids=['%s-%s' % (os.path.basename(case[0])[:-4], '-'.join(case[1]) or 'none') for case in OPERATION_CASES])
def test_an_operation_refuses_bad_inputs_before_any_host(inventory, playbook, extra, message):
    rc, out = run(playbook, inventory.path, *extra)
    assert_refused_before_any_host(rc, out, message)


@pytest.mark.parametrize('playbook', ['backup.yml', 'restore.yml', 'verify_backup.yml', 'prune_timelines.yml'])
def test_a_backup_operation_refuses_an_inventory_without_a_repository(inventory, playbook):
    del inventory.hosts['all']['children']['pgha_backup']
    inventory.save()
    extra = ['latest=true', 'force=true'] if playbook == 'restore.yml' else []
    rc, out = run('playbooks/' + playbook, inventory.path, *extra)
    assert_refused_before_any_host(rc, out, 'The inventory has no group pgha_backup: no pgBackRest repository was '
                                            'deployed (role pgha.multidc.backup, site.yml). Nothing was changed.')


def test_the_matrix_has_at_least_40_cases():
    assert len(INVENTORY_CASES) + len(OPERATION_CASES) >= 40


def test_validate_reports_every_problem_at_once(inventory):
    add_to_group('dc1-pg1', 'pgha_haproxy')(inventory)
    set_var('pgha_haproxy_max_replica_lag_bytes', -1)(inventory)
    set_host_var('dc1-lb1', 'pgha_keepalived_priority', 0)(inventory)
    set_var('pgha_synchronous_mode', 'sometimes')(inventory)
    inventory.save()
    rc, out = run('playbooks/validate.yml', inventory.path, 'pgha_switchover_max_lag_bytes=-1', 'state=maybe', 'status_format=xml')
    flat = ' '.join(out.split())
    assert rc != 0
    assert 'Validation found 7 problem(s); nothing was changed' in flat, flat[-3000:]
    for message in ('[group memberships] dc1-pg1: is in pgha_database and in pgha_haproxy',
                    '[ranges] inventory: pgha_haproxy_max_replica_lag_bytes = -1',
                    '[ranges] dc1-lb1: pgha_keepalived_priority = 0',
                    '[synchronous standbys] inventory: pgha_synchronous_mode sometimes',
                    '[argument ranges] switchover.yml: pgha_switchover_max_lag_bytes = -1',
                    '[argument types] maintenance.yml: value of state must be one of: on, off, got: maybe',
                    '[argument types] status.yml: value of status_format must be one of: text, json, got: xml'):
        assert message in flat, flat[-3000:]
    assert recap_hosts(out) == {'localhost'}


def test_unknown_names_are_warned_about_with_the_closest_one(inventory):
    set_var('pgha_haproxy_max_replica_lag_byte', 5)(inventory)
    set_host_var('dc2-pg2', 'pgha_nofailovr', True)(inventory)
    inventory.hosts['all']['children']['pgha_dsc'] = {'hosts': {'dc1-lb1': None}}
    inventory.save()
    rc, out = run('playbooks/validate.yml', inventory.path)
    flat = ' '.join(out.split())
    assert rc == 0, flat[-3000:]
    assert 'WARNING: 3 name(s) that no role or playbook declares' in flat, flat[-3000:]
    assert ('[unknown variable] pgha_haproxy_max_replica_lag_byte: no role or playbook declares it; '
            'did you mean pgha_haproxy_max_replica_lag_bytes?') in flat
    assert '[unknown variable] pgha_nofailovr: no role or playbook declares it; did you mean pgha_nofailover?' in flat
    assert '[unknown group] pgha_dsc: not a group of the collection' in flat and 'did you mean pgha_dcs?' in flat


def test_validate_passes_on_the_prod_example_without_warnings(inventory):
    rc, out = run('playbooks/validate.yml', inventory.path)
    assert rc == 0, ' '.join(out.split())[-3000:]
    assert warnings(out) == [] and recap_hosts(out) == {'localhost'}


@pytest.mark.parametrize('path', ['inventories/lab', 'molecule/trixie/inventory'])
def test_validate_passes_on_the_lab_inventories(tmp_path, path):
    # The lab inventories read the lab's SSH public key: a stand-in, not the lab's.
    lab = tmp_path / 'lab'
    (lab / 'ssh').mkdir(parents=True)
    (lab / 'ssh' / 'id_ed25519.pub').write_text('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJt0c3Q= test\n')
    rc, out = run('playbooks/validate.yml', os.path.join(ROOT, path), env={'PGHA_LAB_DIR': str(lab)})
    assert rc == 0, ' '.join(out.split())[-3000:]
    assert warnings(out) == [] and recap_hosts(out) == {'localhost'}

"""A refused input leaves the deployed cluster as it was (issue 14). Each case is a real run
against the lab: site.yml with a mistake in the inventory (given with -e, or in a copy of the
lab's inventory) or an operation with a bad argument. The run must stop with the message of
the rule, before any host is contacted, and a fingerprint of the cluster (molecule/shared/
cluster_fingerprint.py: the files the roles manage, their services' states, each server's
role, timeline and upstream) taken before and after the run must be the same. Last, rejoin.yml
of the healthy primary, refused after reading the cluster: nothing changed either."""

import os
import re
import shutil
import subprocess

import pytest
import yaml

from cluster_fingerprint import cluster_fingerprint, fingerprint_differences
from labcheck import PROJECT


def lag_on_one_host(hosts):
    hosts['all']['children']['pgha_haproxy']['hosts']['dc1-lb2']['pgha_haproxy_max_replica_lag_bytes'] = -5


def database_host_in_haproxy(hosts):
    hosts['all']['children']['pgha_haproxy']['hosts']['dc1-pg2'] = {'pgha_datacenter': 'dc1'}


def database_group_misnamed(hosts):
    children = hosts['all']['children']
    children['pgha_databases'] = children.pop('pgha_database')


def two_initial_primaries(hosts):
    hosts['all']['children']['pgha_database']['hosts']['dc1-pg2']['pgha_initial_primary'] = True


# (id, playbook, extra vars, edit of a copy of the lab's hosts.yml or None, message)
CASES = [
    ('site-lag-negative', 'site.yml', ['pgha_haproxy_max_replica_lag_bytes=-1'], None,
     '[ranges] inventory: pgha_haproxy_max_replica_lag_bytes = -1 is out of range; '
     'it must be a whole number of at least 0 (bytes)'),
    ('site-lag-string', 'site.yml', ['pgha_haproxy_max_replica_lag_bytes=lots'], None,
     "[ranges] inventory: pgha_haproxy_max_replica_lag_bytes = 'lots' is not a whole number"),
    ('site-lag-negative-on-one-host', 'site.yml', [], lag_on_one_host,
     '[ranges] dc1-lb2: pgha_haproxy_max_replica_lag_bytes = -5 is out of range'),
    ('site-database-host-in-haproxy', 'site.yml', [], database_host_in_haproxy,
     '[group memberships] dc1-pg2: is in pgha_database and in pgha_haproxy'),
    ('site-database-group-misnamed', 'site.yml', [], database_group_misnamed,
     '[database hosts] inventory: group pgha_database has no host'),
    ('site-two-initial-primaries', 'site.yml', [], two_initial_primaries,
     '[one primary] dc1-pg1, dc1-pg2: pgha_initial_primary is true on 2 hosts'),
    ('switchover-lag-negative', 'playbooks/switchover.yml', ['pgha_switchover_max_lag_bytes=-1'], None,
     '[argument ranges] switchover.yml: pgha_switchover_max_lag_bytes = -1 is out of range'),
    ('failover-unknown-node', 'playbooks/failover.yml', ['failed_primary=nohost'], None,
     '[argument hosts] failover.yml: failed_primary=nohost is not a database host'),
    ('rejoin-unknown-node', 'playbooks/rejoin.yml', ['node=nohost'], None,
     '[argument hosts] rejoin.yml: node=nohost is not a database host of the inventory'),
    ('rebuild-unknown-node', 'playbooks/rebuild_standby.yml', ['node=nohost'], None,
     '[argument hosts] rebuild_standby.yml: node=nohost is not a database host of the inventory'),
    ('replication-bad-replay', 'playbooks/replication.yml', ['node=dc1-pg2', 'replay=stop'], None,
     '[argument types] replication.yml: value of replay must be one of: pause, resume, status, got: stop'),
    ('maintenance-bad-state', 'playbooks/maintenance.yml', ['state=maybe'], None,
     '[argument types] maintenance.yml: value of state must be one of: on, off, got: maybe'),
]


def run_playbook(lab, playbook, inventory, extra_vars):
    # Molecule's verifier exports ANSIBLE_FORCE_COLOR, which beats ANSIBLE_NOCOLOR.
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(PROJECT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_FORCE_COLOR='0', PGHA_LAB_DIR=lab.lab_dir)
    argv = [os.path.join(PROJECT, '.venv', 'bin', 'ansible-playbook'), '-i', inventory, playbook]
    for extra in extra_vars:
        argv += ['-e', extra]
    proc = subprocess.run(argv, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=300, check=False)
    return proc.returncode, proc.stdout


def recap_hosts(out):
    plain = re.sub(r'\x1b\[[0-9;]*m', '', out)
    return set(re.findall(r'^(\S+)\s+: ok=\d+', plain.split('PLAY RECAP')[-1], re.M))


def copy_of_the_inventory(lab, path, edit):
    """The lab's inventory (its hosts.yml edited by ``edit``) in ``path``."""
    shutil.copytree(lab.inventory, str(path), ignore=shutil.ignore_patterns('pki'))
    hosts_file = path / 'hosts.yml'
    hosts = yaml.safe_load(hosts_file.read_text())
    edit(hosts)
    hosts_file.write_text(yaml.safe_dump(hosts))
    return str(path)


@pytest.fixture(scope='module')
def fingerprints(lab):
    """The hosts, and the cluster's fingerprint after the last run (the next one's before)."""
    hosts = sorted(set(host for members in lab.groups.values() for host in members))
    return {'hosts': hosts, 'last': cluster_fingerprint(hosts, lab.database_hosts)}


def take(lab, fingerprints):
    fingerprint = cluster_fingerprint(fingerprints['hosts'], lab.database_hosts)
    fingerprints['last'] = fingerprint
    return fingerprint


def test_the_fingerprint_sees_the_managed_files_and_services(lab, fingerprints):
    fingerprint = fingerprints['last']
    for host, facts in fingerprint.items():
        assert 'docker exec' not in facts, (host, facts)
        assert 'file /etc/ssh/sshd_config' in facts and 'file /etc/nftables.conf' in facts, (host, sorted(facts))
    for host in lab.database_hosts:
        facts = fingerprint[host]
        assert any(re.match(r'file /etc/postgresql/\d+/main/postgresql\.conf$', key) for key in facts), \
            (host, sorted(facts))
        assert any(re.match(r'file /var/lib/postgresql/\d+/main/postgresql\.auto\.conf$', key) for key in facts), \
            (host, sorted(facts))
        units = dict((key, value) for key, value in facts.items() if key.startswith('unit '))
        assert any(re.match(r'unit postgresql@\d+-main$', key) and value == 'active enabled'
                   for key, value in units.items()), (host, units)
        assert units['unit pgha-agent'] == 'active enabled', (host, units)
        recovery, _timeline, conninfo = facts['server'].split('|', 2)
        assert recovery == ('f' if host == lab.primary else 't'), (host, facts['server'])
        assert (conninfo == '') == (host == lab.primary), (host, facts['server'])
    for host in lab.groups['pgha_haproxy']:
        assert fingerprint[host]['unit haproxy'] == 'active enabled', (host, fingerprint[host]['unit haproxy'])
        assert 'file /etc/haproxy/haproxy.cfg' in fingerprint[host], (host, sorted(fingerprint[host]))
    for host in lab.groups.get('pgha_keepalived', []):
        assert 'file /etc/keepalived/keepalived.conf' in fingerprint[host], (host, sorted(fingerprint[host]))


@pytest.mark.parametrize('playbook,extra_vars,edit,message', [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_a_refused_input_changes_nothing(lab, fingerprints, tmp_path, playbook, extra_vars, edit, message):
    inventory = copy_of_the_inventory(lab, tmp_path / 'lab', edit) if edit else lab.inventory
    before = fingerprints['last']
    rc, out = run_playbook(lab, playbook, inventory, extra_vars)
    after = take(lab, fingerprints)
    flat = ' '.join(out.split())
    changed = fingerprint_differences(before, after)
    assert not changed, 'the run changed the cluster:\n%s\n%s' % (changed, flat[-2000:])
    assert rc != 0, flat[-3000:]
    assert message in flat, flat[-3000:]
    assert recap_hosts(out) == {'localhost'}, flat[-3000:]


def test_rejoin_of_the_healthy_primary_changes_nothing(lab, fingerprints):
    before = fingerprints['last']
    rc, out = run_playbook(lab, 'playbooks/rejoin.yml', lab.inventory, ['node=%s' % lab.primary])
    after = take(lab, fingerprints)
    flat = ' '.join(out.split())
    changed = fingerprint_differences(before, after)
    assert not changed, 'the run changed the cluster:\n%s\n%s' % (changed, flat[-2000:])
    assert rc != 0, flat[-3000:]
    assert 'Nothing to do, nothing was changed: %s is the primary of the cluster' % lab.primary in flat, flat[-3000:]

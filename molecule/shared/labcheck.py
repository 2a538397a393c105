"""Shared access to a deployed lab for the Molecule verify tests: hosts, secrets, the CA.

Each scenario's tests/conftest.py sets the inventory it deployed and imports this.
"""

import json
import os
import re
import subprocess
import time

import psycopg2
import testinfra
import yaml

PROJECT = os.environ.get('MOLECULE_PROJECT_DIRECTORY',
                         os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _inventory_dir():
    """The inventory this scenario deploys (molecule links it; read the real files)."""
    return os.environ.get('PGHA_VERIFY_INVENTORY', os.path.join(PROJECT, 'inventories', 'lab'))


def _load_group_vars():
    merged = {}
    folder = os.path.join(_inventory_dir(), 'group_vars', 'all')
    for name in sorted(os.listdir(folder)):
        if name.endswith('.yml'):
            with open(os.path.join(folder, name)) as handle:
                merged.update(yaml.safe_load(handle) or {})
    return merged


def _load_hosts():
    with open(os.path.join(_inventory_dir(), 'hosts.yml')) as handle:
        tree = yaml.safe_load(handle)
    groups, addresses = {}, {}
    for group, body in tree['all']['children'].items():
        groups[group] = list(body['hosts'])
        for name, hostvars in body['hosts'].items():
            if hostvars and 'ansible_host' in hostvars:
                addresses[name] = hostvars['ansible_host']
    return groups, addresses


class Lab:
    def __init__(self):
        self.vars = _load_group_vars()
        self.groups, self.address = _load_hosts()
        # The real inventory directory (hosts and group_vars), not Molecule's copy of it.
        self.inventory = _inventory_dir()
        self.lab_dir = os.environ.get('PGHA_LAB_DIR') or os.path.join(PROJECT, '.lab')
        self.key = os.path.join(self.lab_dir, 'ssh', 'id_ed25519')
        self.admin_user = self.vars.get('ansible_user', 'remote')
        self._hosts = {}
        self.ca_file = None

    def host(self, name):
        if name not in self._hosts:
            # Plain ssh as the admin user: testinfra's ansible backend reads host variables
            # without templating them, and the lab's key path is a template.
            self._hosts[name] = testinfra.get_host(
                'ssh://%s@%s' % (self.admin_user, self.address[name]), ssh_identity_file=self.key,
                ssh_extra_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes')
        return self._hosts[name]

    def sql(self, name, statement, database='postgres'):
        """Run SQL on a database node as postgres (local socket); return stripped output."""
        cmd = self.host(name).run('sudo -u postgres psql -d %s -XAtc %s' % (database, _shell_quote(statement)))
        assert cmd.rc == 0, '%s: %s' % (name, cmd.stderr)
        return cmd.stdout.strip()

    @property
    def database_hosts(self):
        return self.groups['pgha_database']

    @property
    def app(self):
        return self.vars['pgha_app_users'][0]

    def vip(self, datacenter='dc1'):
        return self.vars['pgha_datacenters'][datacenter]['vip']

    def connect(self, host, port, **overrides):
        params = dict(host=host, port=port, user=self.app['name'], password=self.app['password'],
                      dbname=self.app['database'], sslmode='verify-full', sslrootcert=self.ca_file,
                      connect_timeout=5)
        params.update(overrides)
        conn = psycopg2.connect(**params)
        conn.autocommit = True
        return conn

    def ssh(self, user, address, *options):
        """ssh from the control node; returns the CompletedProcess (never raises)."""
        cmd = ['ssh', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
               '-o', 'ConnectTimeout=5'] + list(options) + ['%s@%s' % (user, address), 'true']
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)


def _shell_quote(text):
    return "'" + text.replace("'", "'\"'\"'") + "'"


def wait_until(probe, timeout=20.0, interval=0.25):
    """Poll ``probe`` until it returns a truthy value; return the last value."""
    deadline = time.time() + timeout
    value = probe()
    while not value and time.time() < deadline:
        time.sleep(interval)
        value = probe()
    return value


def run_status(lab, callback, *extra_vars):
    """The output of playbooks/status.yml through the stdout ``callback``, with ``extra_vars``."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(PROJECT, 'ansible.cfg'), ANSIBLE_STDOUT_CALLBACK=callback,
               ANSIBLE_NOCOLOR='1')
    argv = [os.path.join(PROJECT, '.venv', 'bin', 'ansible-playbook'), '-i', lab.inventory, 'playbooks/status.yml']
    for extra in extra_vars:
        argv += ['-e', extra]
    proc = subprocess.run(argv, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def status_document(lab, *extra_vars):
    """The JSON document of one status.yml run (status_format=json, the ansible.posix.json callback)."""
    run = json.loads(run_status(lab, 'ansible.posix.json', 'status_format=json', *extra_vars))
    documents = [task['hosts']['localhost']['msg'] for play in run['plays'] for task in play['tasks']
                 if task['task']['name'].endswith('Show the status as one JSON document')
                 and 'msg' in task['hosts'].get('localhost', {})]
    assert len(documents) == 1, [task['task']['name'] for play in run['plays'] for task in play['tasks']]
    return documents[0]


def open_lab():
    """The Lab with its current primary found and the CA fetched from it."""
    lab = Lab()
    primary = next(h for h in lab.database_hosts if lab.sql(h, 'SELECT pg_is_in_recovery()') == 'f')
    # Clients trust the CA the control node keeps with the inventory (pgha_pki_dir; the lab
    # inventories write it as "{{ pgha_lab_dir }}/<dir>", resolved here without Ansible).
    pki_dir = re.sub(r'\{\{\s*pgha_lab_dir\s*\}\}', lambda _m: lab.lab_dir,
                     lab.vars.get('pgha_pki_dir') or os.path.join(lab.inventory, 'pki'))
    lab.ca_file = os.path.join(pki_dir, 'ca.crt')
    assert os.path.exists(lab.ca_file), 'no CA at %s: was the lab deployed?' % lab.ca_file
    lab.primary = primary
    return lab

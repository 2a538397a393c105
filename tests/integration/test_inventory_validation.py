# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory validation of site.yml (roles/cluster_facts, entry point validate) on a
copy of inventories/prod, with the ansible-core of the virtualenv: documented defaults
hold when their variable is absent, and a bad value is named."""

from __future__ import absolute_import, division, print_function

import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
PLAYBOOK = '''- name: Validate the inventory only
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Check the inventory rules
      ansible.builtin.import_role:
        name: pgha.multidc.cluster_facts
        tasks_from: validate
'''
SECRETS = '''---
vault_pgha_superuser_password: test-superuser
vault_pgha_replication_password: test-replication
vault_pgha_monitor_password: test-monitor
vault_pgha_app_password: test-app
'''


@pytest.fixture
def inventory(tmp_path):
    copy = tmp_path / 'prod'
    shutil.copytree(os.path.join(ROOT, 'inventories', 'prod'), str(copy))
    (copy / 'group_vars' / 'all' / 'vault.yml').write_text(SECRETS)
    (tmp_path / 'validate.yml').write_text(PLAYBOOK)
    return copy


def set_main_vars(inventory, drop=(), add=''):
    main = inventory / 'group_vars' / 'all' / 'main.yml'
    lines = [line for line in main.read_text().splitlines() if not any(line.startswith(name + ':') for name in drop)]
    main.write_text('\n'.join(lines) + '\n' + add)


def validate(inventory):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1')
    proc = subprocess.run([os.path.join(ROOT, '.venv', 'bin', 'ansible-playbook'), '-i', str(inventory),
                           str(inventory.parent / 'validate.yml')], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=300, check=False)
    return proc.returncode, ' '.join(proc.stdout.split())


def test_the_prod_example_passes(inventory):
    rc, out = validate(inventory)
    assert rc == 0, out[-2000:]


def test_synchronous_replication_settings_absent_take_their_documented_defaults(inventory):
    set_main_vars(inventory, drop=('pgha_synchronous_mode', 'pgha_synchronous_count'))
    rc, out = validate(inventory)
    assert rc == 0, out[-2000:]
    assert not re.search(r'UndefinedMarker|concatenate', out), out[-2000:]


def test_a_bad_synchronous_mode_is_named(inventory):
    set_main_vars(inventory, drop=('pgha_synchronous_mode',), add='pgha_synchronous_mode: sometimes\n')
    rc, out = validate(inventory)
    assert rc != 0
    assert '[synchronous standbys] inventory: pgha_synchronous_mode sometimes must be off, FIRST or ANY' in out, \
        out[-2000:]

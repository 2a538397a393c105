# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The answers of the AWX surveys (extensions/awx/surveys), passed the way AWX passes
them (one JSON extra vars file: numbers as numbers, yes/no answers as the strings "true"
and "false"), pass the operations' own input checks: playbooks/validate.yml on a copy of
inventories/prod runs playbooks/tasks/check_arguments.yml for every operation, without
contacting any host. Once with every default, once with every other answer (the other
yes/no, the upper bound of each number, a choice other than the default); and answers no
survey admits (a number out of range, a yes/no that is neither) are refused, a control
that the answers are checked at all."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import json
import os
import shutil
import subprocess

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
ANSIBLE_PLAYBOOK = os.environ.get('PGHA_TEST_ANSIBLE_PLAYBOOK', os.path.join(ROOT, '.venv', 'bin', 'ansible-playbook'))
SECRETS = {
    'vault_pgha_superuser_password': 'test-superuser',
    'vault_pgha_replication_password': 'test-replication',
    'vault_pgha_monitor_password': 'test-monitor',
    'vault_pgha_app_password': 'test-app',
}


def questions():
    found = []
    for path in sorted(glob.glob(os.path.join(ROOT, 'extensions', 'awx', 'surveys', '*.json'))):
        with open(path) as handle:
            found.extend(json.load(handle)['spec'])
    return found


def database_hosts():
    with open(os.path.join(ROOT, 'inventories', 'prod', 'hosts.yml')) as handle:
        return sorted(yaml.safe_load(handle)['all']['children']['pgha_database']['hosts'])


def answers(other):
    """One set of answers to every question of every survey (a variable several surveys ask
    has the same type in all of them): the defaults, or with ``other`` the other answers."""
    host = database_hosts()[-1 if other else 0]
    values = {}
    for item in questions():
        name = item['variable']
        if item['type'] == 'multiplechoice':
            if other:  # a choice other than the default
                values[name] = ([choice for choice in item['choices'] if choice != item.get('default')] or item['choices'])[-1]
            else:
                values[name] = item.get('default', item['choices'][0])
        elif item['type'] in ('integer', 'float'):
            if other:
                values[name] = item['max'] if item.get('max') is not None else item['default'] + 1
            elif 'default' in item:
                values[name] = item['default']
        elif 'default' not in item or 'database host' in item['question_description'].lower():
            values[name] = host  # node, candidate, failed_primary
        else:
            values[name] = item['default']
    return values


@pytest.fixture(scope='module')
def inventory(tmp_path_factory):
    copy = tmp_path_factory.mktemp('survey') / 'prod'
    shutil.copytree(os.path.join(ROOT, 'inventories', 'prod'), str(copy))
    (copy / 'group_vars' / 'all' / 'vault.yml').write_text(yaml.safe_dump(SECRETS))
    return copy


def validate(inventory, values, tmp_path):
    extra_vars = tmp_path / 'extra_vars.json'
    extra_vars.write_text(json.dumps(values))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_SSH_EXECUTABLE='/bin/false')
    proc = subprocess.run([ANSIBLE_PLAYBOOK, '-i', str(inventory), 'playbooks/validate.yml', '-e', '@%s' % extra_vars],
                          cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=300, check=False)
    return proc.returncode, ' '.join(proc.stdout.split())


@pytest.mark.parametrize('other', [False, True], ids=['defaults', 'other-answers'])
def test_the_survey_answers_pass_the_operations_checks(inventory, tmp_path, other):
    values = answers(other)
    assert values.get('force') == ('true' if other else 'false')
    rc, out = validate(inventory, values, tmp_path)
    assert rc == 0, out[-3000:]
    assert '[argument' not in out, out[-3000:]


def test_answers_no_survey_admits_are_refused(inventory, tmp_path):
    rc, out = validate(inventory, dict(answers(False), pgha_op_ssh_timeout=301, force='maybe'), tmp_path)
    assert rc != 0
    assert 'pgha_op_ssh_timeout = 301 is out of range' in out, out[-3000:]
    assert "force" in out and "'maybe'" in out and 'bool' in out, out[-3000:]

"""The backup role's configuration files, rendered by Ansible from the role's defaults,
vars and templates for a two-datacenter inventory, then read by pgBackRest itself (the
check the role runs before it installs a file). No lab needed: the templates are rendered
on this machine and the files are not installed anywhere."""

import json
import os
import shlex
import subprocess

import pytest

from pgharness import REPO

CIPHER = 'K7pY2v9Qw4Zx8Rt1Ls6Hn3Bc-vault'
INVENTORY = {
    'all': {
        'vars': {'ansible_connection': 'local', 'pgha_pki_dir': '/nonexistent', 'pgha_pg_version': '15'},
        'children': {
            'pgha_database': {'hosts': {'dc1-pg1': {'ansible_host': '172.30.1.11'},
                                        'dc1-pg2': {'ansible_host': '172.30.1.12'},
                                        'dc2-pg1': {'ansible_host': '172.30.2.11'}}},
            'pgha_backup': {'hosts': {'dc2-backup1': {'ansible_host': '172.30.2.20'}}},
        },
    },
}


@pytest.fixture(scope='module')
def rendered(tmp_path_factory):
    """{host: (configuration text, the role's check of it)} for a database host and the
    repository host, and under ``validate`` the role's check command."""
    work = tmp_path_factory.mktemp('backup-role')
    role = os.path.join(REPO, 'roles', 'backup')
    inventory = work / 'inventory.json'
    inventory.write_text(json.dumps(INVENTORY))
    playbook = [{
        'hosts': 'dc1-pg1:dc2-backup1', 'gather_facts': False,
        'vars_files': [os.path.join(role, 'defaults', 'main.yml'), os.path.join(role, 'vars', 'main.yml')],
        'vars': {'ansible_facts': {'processor_vcpus': 4}},
        'tasks': [
            {'name': 'render', 'ansible.builtin.template': {
                'src': os.path.join(role, 'templates', "{{ 'pgbackrest-repository.conf.j2' if inventory_hostname in "
                                                       "groups['pgha_backup'] else 'pgbackrest-database.conf.j2' }}"),
                'dest': str(work) + '/{{ inventory_hostname }}.conf', 'mode': '0644'}},
            {'name': 'emit', 'ansible.builtin.copy': {
                'content': '{{ __pgha_backup_validate }}', 'dest': str(work) + '/validate', 'mode': '0644'},
             'run_once': True},
        ],
    }]
    path = work / 'play.json'
    path.write_text(json.dumps(playbook))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, 'ansible.cfg'), ANSIBLE_NOCOLOR='1')
    # Extra variables: vars_files (the role's defaults here) beat the inventory.
    extra = work / 'secrets.json'
    extra.write_text(json.dumps({'pgha_backup_cipher_pass': CIPHER}))
    proc = subprocess.run([os.path.join(REPO, '.venv', 'bin', 'ansible-playbook'), '-i', str(inventory),
                           '-e', '@%s' % extra, str(path)],
                          capture_output=True, text=True, env=env, cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    validate = (work / 'validate').read_text()
    rendered = {}
    for host in ('dc1-pg1', 'dc2-backup1'):
        conf = str(work / (host + '.conf'))
        # As file_set runs it (AnsibleModule.run_command splits the string like a shell).
        checked = subprocess.run(shlex.split(validate % conf), capture_output=True, text=True, check=False)
        with open(conf) as handle:
            rendered[host] = (handle.read(), checked)
    rendered['validate'] = validate
    return rendered


@pytest.mark.parametrize('host', ['dc1-pg1', 'dc2-backup1'])
def test_pgbackrest_accepts_the_rendered_file(rendered, host):
    text, checked = rendered[host]
    assert text.startswith('#')  # ansible_managed
    assert checked.returncode == 0, checked  # the role's check: no WARN or ERROR from pgBackRest
    assert checked.stdout == ''


def test_database_host_reaches_the_repository_over_tls(rendered):
    text = rendered['dc1-pg1'][0]
    for line in ('repo1-host=172.30.2.20', 'repo1-host-type=tls', 'tls-server-auth=dc2-backup1=main',
                 'archive-async=y', 'spool-path=/var/spool/pgbackrest', 'process-max=2', 'compress-type=zst',
                 'pg1-path=/var/lib/postgresql/15/main'):
        assert line in text.splitlines()
    assert CIPHER not in text and 'repo1-path' not in text


def test_repository_host_knows_every_database_host_and_keeps_the_cipher(rendered):
    lines = rendered['dc2-backup1'][0].splitlines()
    for line in ('repo1-path=/var/lib/pgbackrest', 'repo1-cipher-type=aes-256-cbc', 'repo1-cipher-pass=' + CIPHER,
                 'backup-standby=y', 'pg1-host=172.30.1.11', 'pg2-host=172.30.1.12', 'pg3-host=172.30.2.11',
                 'tls-server-auth=dc1-pg1=main', 'tls-server-auth=dc2-pg1=main', 'repo1-retention-full=2'):
        assert line in lines


def test_the_roles_check_refuses_an_unknown_option_and_a_bad_value(rendered, tmp_path):
    for bad in ('archive-pushh-queue-max=1GiB', 'compress-type=xz'):
        path = tmp_path / 'bad.conf'
        path.write_text(rendered['dc1-pg1'][0] + bad + '\n')
        checked = subprocess.run(shlex.split(rendered['validate'] % path), capture_output=True, text=True, check=False)
        assert checked.returncode != 0 and bad.split('=', maxsplit=1)[0] in checked.stdout, (bad, checked)

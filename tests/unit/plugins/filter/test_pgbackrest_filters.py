# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/filter/pgbackrest.py (the functions behind it are tested in
tests/unit/plugins/module_utils/test_pgbackrest.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.pgha.multidc.plugins.filter.pgbackrest import FilterModule

F = FilterModule().filters()
TLS = {'ca_file': '/t/ca.crt', 'cert_file': '/t/h.crt', 'key_file': '/t/h.key'}


def test_database_conf_without_header():
    text = F['pgbackrest_database_conf']({'stanza': 'main', 'pg_path': '/srv/pg', 'repo_path': '/srv/repo'})
    assert text.startswith('[global]\n') and '\n[main]\npg1-path=/srv/pg\n' in text


def test_repository_conf_without_header():
    text = F['pgbackrest_repository_conf']({
        'stanza': 'main', 'repo_path': '/r', 'tls': TLS,
        'databases': [{'host': 'dc1-pg1', 'path': '/srv/pg', 'client_cn': 'dc1-pg1'}]})
    assert text.startswith('[global]\nrepo1-path=/r\n') and 'pg1-host=dc1-pg1' in text


@pytest.mark.parametrize('name, settings, message', [
    ('pgbackrest_database_conf', {'stanza': 'main', 'pg_path': '/srv/pg'}, 'exactly one of repo_host'),
    ('pgbackrest_database_conf', {'stanza': 'main', 'pg_path': '/srv/pg', 'repo_path': '/r', 'colour': 1},
     'unexpected keyword'),
    ('pgbackrest_repository_conf', {'stanza': 'main', 'repo_path': '/r', 'tls': TLS, 'databases': [{'host': 'x', 'client_cn': 'x'}]},
     "the setting 'path' is missing"),
])
def test_conf_errors_are_filter_errors(name, settings, message):
    with pytest.raises(AnsibleFilterError, match='%s: .*%s' % (name, message)):
        F[name](settings)


def test_commands_and_process_max():
    assert F['pgbackrest_archive_command']('main').endswith('--stanza=main archive-push %p')
    assert F['pgbackrest_restore_command']('main', '/c.conf') == \
        'pgbackrest --config=/c.conf --stanza=main archive-get %f "%p"'
    with pytest.raises(AnsibleFilterError, match='pgbackrest_archive_command: stanza'):
        F['pgbackrest_archive_command']('bad stanza')
    assert F['pgbackrest_process_max'](16) == 8


def test_databases_from_the_inventory():
    hostvars = {'dc1-pg1': {'ansible_host': '172.30.1.11'}, 'dc1-pg2': {}}
    assert F['pgbackrest_databases'](['dc1-pg1', 'dc1-pg2'], hostvars, '/var/lib/postgresql/15/main', '5433') == [
        {'host': '172.30.1.11', 'path': '/var/lib/postgresql/15/main', 'port': 5433, 'tls_port': 8432,
         'client_cn': 'dc1-pg1'},
        {'host': 'dc1-pg2', 'path': '/var/lib/postgresql/15/main', 'port': 5433, 'tls_port': 8432,
         'client_cn': 'dc1-pg2'}]

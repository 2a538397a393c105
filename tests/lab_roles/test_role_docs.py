"""Static checks of pgha.multidc.ssh_hardening, firewall and backup (no lab needed):
argument_specs is the single source of the inputs, defaults and README follow it."""

import glob
import os

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = ['ssh_hardening', 'firewall', 'backup']


def load(role, path):
    with open(os.path.join(ROOT, 'roles', role, path)) as handle:
        return yaml.safe_load(handle)


@pytest.mark.parametrize('role', ROLES)
def test_defaults_match_argument_specs(role):
    options = load(role, 'meta/argument_specs.yml')['argument_specs']['main']['options']
    defaults = load(role, 'defaults/main.yml')
    # A required input (the collection-wide pgha_pki_dir) has no default.
    assert sorted(name for name, spec in options.items() if not spec.get('required')) == sorted(defaults)
    for name, spec in options.items():
        if 'default' in spec:   # templated defaults are described, not given
            assert spec['default'] == defaults[name], name


@pytest.mark.parametrize('role', ROLES)
def test_readme_documents_every_input(role):
    options = load(role, 'meta/argument_specs.yml')['argument_specs']['main']['options']
    with open(os.path.join(ROOT, 'roles', role, 'README.md')) as handle:
        readme = handle.read()
    assert [name for name in options if '`%s`' % name not in readme] == []


@pytest.mark.parametrize('role', ROLES)
def test_templates_start_with_ansible_managed(role):
    for path in glob.glob(os.path.join(ROOT, 'roles', role, 'templates', '*.j2')):
        with open(path) as handle:
            assert handle.readline().strip() == '{{ ansible_managed | comment }}', path


@pytest.mark.parametrize('role', ROLES)
def test_no_swallowed_errors(role):
    for path in glob.glob(os.path.join(ROOT, 'roles', role, '*', '*.yml')):
        with open(path) as handle:
            text = handle.read()
        assert 'ignore_errors' not in text and 'failed_when: false' not in text, path

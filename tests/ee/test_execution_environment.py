# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The execution environment installs exactly what the project declares elsewhere
(`make ee-check`): the build context that `ansible-builder create` writes for
execution-environment.yml (no image is built or pulled) names the Python requirements of
requirements.txt, the collections of requirements.yml, which are galaxy.yml's dependencies,
and the system packages of bindep.txt; ansible-core's bound is that of requirements.txt and
meta/runtime.yml; and the collection's own meta/execution-environment.yml, read by
ansible-builder's introspection from the built and installed collection, gives the same.
A dependency added in one place and not in the other fails here.

PGHA_EE_CONTEXT: a build context already written (the Makefile's); else one is written here."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import subprocess
import sys

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
BIN = os.path.dirname(sys.executable)
DEFINITION = 'execution-environment.yml'
# The files the definition and the collection's EE metadata must read, and nothing else.
REFERENCES = {'python': 'requirements.txt', 'galaxy': 'requirements.yml', 'system': 'bindep.txt'}


def tool(name):
    path = os.path.join(BIN, name)
    return path if os.path.exists(path) else shutil.which(name)


def content_lines(path):
    """The lines of a requirements or bindep file without comments and blank lines,
    following `-r FILE` as pip and ansible-builder do."""
    lines = []
    with open(path) as handle:
        for line in handle:
            line = line.split(' #', 1)[0].strip()
            if not line or line.startswith('#'):
                continue
            if line.startswith(('-r ', '--requirement ')):
                lines.extend(content_lines(os.path.join(os.path.dirname(path), line.split(None, 1)[1])))
            else:
                lines.append(line)
    return lines


def python_requirements(lines):
    """{canonical name: the requirement as written, normalised}."""
    found = {}
    for line in lines:
        requirement = Requirement(line)
        found[canonicalize_name(requirement.name)] = str(requirement)
    return found


def collections_of(path):
    with open(path) as handle:
        data = yaml.safe_load(handle) or {}
    return dict((entry['name'], str(entry.get('version', '*'))) for entry in data.get('collections') or [])


def load(path):
    with open(path) as handle:
        return yaml.safe_load(handle)


def create_context(root, context):
    result = subprocess.run([tool('ansible-builder'), 'create', '-f', os.path.join(root, DEFINITION),
                             '-c', context, '--output-filename', 'Containerfile'],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return context


def context_problems(root, context):
    """Every way the build context differs from what the project declares."""
    problems = []
    build = os.path.join(context, '_build')
    definition = load(os.path.join(root, DEFINITION))
    dependencies = definition.get('dependencies') or {}
    if definition.get('version') != 3:
        problems.append('%s: version is %r, not 3' % (DEFINITION, definition.get('version')))
    for key, name in sorted(REFERENCES.items()):
        if dependencies.get(key) != name:
            problems.append('%s: dependencies.%s is %r: it must name %s, the one list of them'
                            % (DEFINITION, key, dependencies.get(key), name))

    declared = python_requirements(content_lines(os.path.join(root, 'requirements.txt')))
    built = os.path.join(build, 'requirements.txt')
    named = python_requirements(content_lines(built)) if os.path.exists(built) else {}
    for name in sorted(set(declared) | set(named)):
        if declared.get(name) != named.get(name):
            problems.append('Python: requirements.txt says %r, the execution environment installs %r'
                            % (declared.get(name), named.get(name)))

    wanted = collections_of(os.path.join(root, 'requirements.yml'))
    galaxy = dict((name, str(version)) for name, version in (load(os.path.join(root, 'galaxy.yml')).get('dependencies') or {}).items())
    built = os.path.join(build, 'requirements.yml')
    installed = collections_of(built) if os.path.exists(built) else {}
    for name in sorted(set(wanted) | set(galaxy) | set(installed)):
        versions = (wanted.get(name), galaxy.get(name), installed.get(name))
        if len(set(versions)) != 1:
            problems.append('collection %s: requirements.yml %r, galaxy.yml dependencies %r, execution environment %r'
                            % ((name,) + versions))

    system = content_lines(os.path.join(root, 'bindep.txt'))
    built = os.path.join(build, 'bindep.txt')
    packages = content_lines(built) if os.path.exists(built) else []
    if sorted(system) != sorted(packages):
        problems.append('system packages: bindep.txt says %s, the execution environment installs %s' % (system, packages))

    with open(os.path.join(context, 'Containerfile')) as handle:
        containerfile = handle.read()
    for needle in ('--user-pip=requirements.txt', '--user-bindep=bindep.txt', '-r requirements.yml'):
        if needle not in containerfile:
            problems.append('Containerfile: does not use %s' % needle)

    core = (dependencies.get('ansible_core') or {}).get('package_pip', '')
    core_requirement = Requirement(core) if core else None
    if core_requirement is None or str(core_requirement) != declared.get('ansible-core'):
        problems.append('ansible-core: %s installs %r, requirements.txt says %r'
                        % (DEFINITION, core, declared.get('ansible-core')))
    if core and core not in containerfile:
        problems.append('Containerfile: does not install %s' % core)
    runtime = load(os.path.join(root, 'meta', 'runtime.yml'))['requires_ansible']
    if core_requirement is not None and set(Requirement('ansible-core' + runtime).specifier) != set(core_requirement.specifier):
        problems.append('ansible-core: %s installs %r, meta/runtime.yml requires %r' % (DEFINITION, core, runtime))
    return problems


@pytest.fixture(scope='module')
def context(tmp_path_factory):
    given = os.environ.get('PGHA_EE_CONTEXT')
    if given:
        return given
    return create_context(ROOT, str(tmp_path_factory.mktemp('ee') / 'context'))


def test_the_build_context_installs_what_the_project_declares(context):
    assert context_problems(ROOT, context) == []


def test_the_system_packages_cover_the_programs_the_control_node_runs():
    system = ' '.join(content_lines(os.path.join(ROOT, 'bindep.txt')))
    with open(os.path.join(ROOT, 'roles', 'cluster_facts', 'tasks', 'status.yml')) as handle:
        assert 'argv: [dot,' in handle.read()  # the status picture runs Graphviz's dot
    assert 'graphviz' in system
    assert 'openssh-client' in system


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """The collection as ansible-builder finds it in an image: built, then installed."""
    work = tmp_path_factory.mktemp('collection')
    env = dict(os.environ)
    for name in ('ANSIBLE_CONFIG', 'ANSIBLE_COLLECTIONS_PATH', 'ANSIBLE_COLLECTIONS_PATHS'):
        env.pop(name, None)
    galaxy = tool('ansible-galaxy')
    subprocess.run([galaxy, 'collection', 'build', '--output-path', str(work / 'dist'), ROOT],
                   cwd=str(work), env=env, check=True, capture_output=True)
    tarball = os.path.join(str(work / 'dist'), os.listdir(str(work / 'dist'))[0])
    subprocess.run([galaxy, 'collection', 'install', '--offline', '--no-deps', '-p', str(work / 'collections'), tarball],
                   cwd=str(work), env=env, check=True, capture_output=True)
    meta = load(os.path.join(ROOT, 'galaxy.yml'))
    return str(work / 'collections'), os.path.join(str(work / 'collections'), 'ansible_collections', meta['namespace'], meta['name'])


def test_the_collection_metadata_gives_the_same_dependencies(context, installed):
    collections, path = installed
    meta = load(os.path.join(path, 'meta', 'execution-environment.yml'))
    assert meta['dependencies'] == {'python': REFERENCES['python'], 'system': REFERENCES['system']}
    # ansible-builder's own introspection, as the image build runs it.
    result = subprocess.run([sys.executable, os.path.join(context, '_build', 'scripts', 'introspect.py'), 'introspect', collections],
                            capture_output=True, text=True, check=True)
    found = yaml.safe_load(result.stdout[result.stdout.index('---'):])
    python = [line.split('  # from collection')[0] for line in found.get('python') or []]
    system = [line.split('  # from collection')[0] for line in found.get('system') or []]
    declared = python_requirements(content_lines(os.path.join(ROOT, 'requirements.txt')))
    # ansible-builder leaves out what every execution environment has (ansible-core).
    assert python_requirements(python) == dict((name, line) for name, line in declared.items() if name != 'ansible-core')
    assert sorted(system) == sorted(content_lines(os.path.join(ROOT, 'bindep.txt')))


@pytest.fixture
def sources(tmp_path):
    """The files the execution environment is made from, in a directory of their own."""
    for name in (DEFINITION, 'requirements.txt', 'requirements.yml', 'bindep.txt', 'galaxy.yml'):
        shutil.copy(os.path.join(ROOT, name), str(tmp_path / name))
    (tmp_path / 'meta').mkdir()
    shutil.copy(os.path.join(ROOT, 'meta', 'runtime.yml'), str(tmp_path / 'meta' / 'runtime.yml'))
    return tmp_path


def edit_yaml(path, change):
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


def problems_of(sources):
    return context_problems(str(sources), create_context(str(sources), str(sources / 'context')))


def test_the_copy_has_no_problem(sources):
    assert problems_of(sources) == []


def test_a_collection_only_galaxy_yml_declares_fails(sources):
    edit_yaml(sources / 'galaxy.yml', lambda data: data['dependencies'].update({'community.docker': '>=3.0.0'}))
    assert problems_of(sources) == [
        "collection community.docker: requirements.yml None, galaxy.yml dependencies '>=3.0.0', execution environment None"]


def test_a_python_package_listed_in_the_definition_fails(sources):
    def inline(data):
        data['dependencies']['python'] = content_lines(os.path.join(ROOT, 'requirements.txt')) + ['psutil']
    edit_yaml(sources / DEFINITION, inline)
    problems = problems_of(sources)
    assert any('dependencies.python' in problem for problem in problems), problems
    assert "Python: requirements.txt says None, the execution environment installs 'psutil'" in problems


def test_another_ansible_core_bound_fails(sources):
    text = (sources / 'requirements.txt').read_text()
    (sources / 'requirements.txt').write_text(text.replace('ansible-core>=2.16', 'ansible-core>=2.17'))
    assert problems_of(sources) == [
        "ansible-core: execution-environment.yml installs 'ansible-core>=2.16', requirements.txt says 'ansible-core>=2.17'"]

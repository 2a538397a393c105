# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fault tests are one ordered scenario on one cluster: once a step fails, the later
ones are skipped (the cluster is not in the state they expect)."""

import os

import pytest

from faultlab import ANSIBLE_WARNINGS, Lab


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == 'call' and rep.failed:
        item.config._pgha_fault_failed = True


@pytest.fixture(autouse=True)
def _skip_after_a_failed_step(request):
    if getattr(request.config, '_pgha_fault_failed', False):
        pytest.skip('an earlier scenario failed: the cluster is not in the expected state')


@pytest.fixture(scope='session', autouse=True)
def _say_that_the_fault_tests_began():
    """Creates $PGHA_FAULT_TESTS_BEGAN_FILE before the first fault test: make test's lab
    runner (scripts/lab-tests.sh) starts its other labs then, while these tests mostly wait
    for failovers and leave half the CPU idle."""
    marker = os.environ.get('PGHA_FAULT_TESTS_BEGAN_FILE')
    if marker:
        with open(marker, 'a'):
            pass
    yield


@pytest.fixture(autouse=True)
def _no_ansible_warning():
    """The playbooks a test ran printed no Ansible warning (an error at its teardown)."""
    before = len(ANSIBLE_WARNINGS)
    yield
    assert ANSIBLE_WARNINGS[before:] == [], 'Ansible warned: %s' % '; '.join(ANSIBLE_WARNINGS[before:])


# The order of the scenario, whatever order the files were given in (Molecule's verifier
# passes them sorted by name): the DR promotion stops datacenter 1 and rebuilds the lab,
# so it comes last.
FILE_ORDER = ('test_failover.py', 'test_lag_bound.py', 'test_rebuild_replication.py', 'test_autorecovery.py',
              'test_backup.py', 'test_dr_promote.py')


def _scenario_rank(item):
    path = str(item.fspath)
    if os.sep + 'faults' + os.sep not in path:
        return (0, 0)
    name = os.path.basename(path)
    return (1, FILE_ORDER.index(name) if name in FILE_ORDER else len(FILE_ORDER))


def pytest_collection_modifyitems(session, config, items):
    """Fault tests break and repair the cluster: when collected with other tests (the
    Molecule verify step), they run after them, file by file in FILE_ORDER, each file's
    tests in their own order (a stable sort)."""
    items.sort(key=_scenario_rank)


@pytest.fixture(scope='module', autouse=True)
def _manual_operations_under_maintenance(request):
    """The files whose subject is a playbook (MANUAL = True) kill primaries and then run
    the playbook: the keepers must not act first, so maintenance is on for the whole file
    (a person's, as playbooks/maintenance.yml sets it), and off again at its end."""
    inventory = os.environ.get('PGHA_FAULT_INVENTORY')
    if not getattr(request.module, 'MANUAL', False) or not inventory:
        yield
        return
    lab = Lab(inventory, os.environ.get('PGHA_FAULT_LOG_DIR'))
    if not lab.groups.get('pgha_dcs'):
        yield
        return
    lab.maintenance('on', reason='fault tests of %s' % request.module.__name__)
    try:
        yield
    finally:
        lab.maintenance('off')

# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fault tests are one ordered scenario: once a step fails, the later ones are skipped
(the cluster is not in the state they expect)."""

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == 'call' and rep.failed:
        item.config._pgha_fault_failed = True
        failed = getattr(item.config, '_pgha_fault_failed_modules', set())
        failed.add(item.module.__name__)
        item.config._pgha_fault_failed_modules = failed

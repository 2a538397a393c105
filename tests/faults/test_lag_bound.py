# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fault test: every candidate is beyond the lag bound.

The standbys that stream from the primary are cut off (their packets to it dropped), the
primary writes a few MB with synchronous_commit = local (acknowledged by nobody else), and
its postmaster is killed. failover.yml refuses: the end of the old primary's WAL on its disk
is more than pgha_failover_max_lag_bytes ahead of every standby. Rerun with force=true, it
promotes the most advanced standby and reports the bytes it lacks; rejoin.yml rewinds the
old primary and a switchover restores the start topology.

    PGHA_FAULT_INVENTORY=inventories/lab .venv/bin/pytest -v tests/faults/test_lag_bound.py
"""

from __future__ import absolute_import, division, print_function

import os
import re

import pytest

from faultlab import Lab

INVENTORY = os.environ.get('PGHA_FAULT_INVENTORY')
pytestmark = pytest.mark.skipif(not INVENTORY, reason='PGHA_FAULT_INVENTORY is not set (no deployed lab topology)')
# About the playbooks: the keepers are held in maintenance for the whole file (conftest.py).
MANUAL = True

BOUND = 1 << 20
# About 4 MB of WAL that no standby receives.
UNSHIPPED = ("SET synchronous_commit = local; "
             "CREATE TABLE IF NOT EXISTS pgha_lag_test (n int, pad text); "
             "INSERT INTO pgha_lag_test SELECT g, repeat('x', 100) FROM generate_series(1, 30000) g")


@pytest.fixture(scope='module')
def lab():
    return Lab(INVENTORY, os.environ.get('PGHA_FAULT_LOG_DIR'))


def test_failover_refused_beyond_the_lag_bound_then_forced(lab):
    primaries = lab.primaries()
    assert len(primaries) == 1, primaries
    old = primaries[0]
    followers = [h for h in lab.db_hosts if (lab.receiver(h) or (None, None))[1] == lab.address(old)]
    assert followers, 'no standby streams from %s' % old
    try:
        for host in followers:
            lab.block(host, lab.address(old))
        assert lab.sql(old, UNSHIPPED) is not None, 'the primary did not take the write'
        behind = [float(lab.sql(old, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '%s')"
                                % lab.lsn(host, 'pg_last_wal_receive_lsn()'))) for host in followers]
        assert min(behind) > 2 * BOUND, 'the standbys are not far enough behind: %s bytes' % behind
        lab.kill_postmaster(old)
    finally:
        for host in followers:
            lab.unblock(host)

    refused = lab.playbook('failover', pgha_failover_max_lag_bytes=BOUND)
    assert refused.rc != 0, refused.tail(80)
    assert 'No standby can be promoted' in refused.output, refused.tail(80)
    assert 'more than the bound' in refused.output, refused.tail(80)
    assert lab.primaries() == [], 'a standby was promoted although every one is beyond the bound'

    forced = lab.playbook('failover', pgha_failover_max_lag_bytes=BOUND, force=True)
    assert forced.rc == 0, forced.tail(80)
    assert 'force=true: the lag bound' in forced.output, forced.tail(80)
    new = lab.primaries()
    assert len(new) == 1 and new[0] != old, new
    lost = re.search(r'bytes possibly lost: (\d+)', forced.output)
    assert lost and int(lost.group(1)) > BOUND, forced.tail(80)
    # What only the old primary had is gone from the new one: the loss force=true accepted.
    assert lab.sql(new[0], "SELECT to_regclass('pgha_lag_test') IS NULL") == 't'

    rejoin = lab.playbook('rejoin', node=old)
    assert rejoin.rc == 0, rejoin.tail(80)
    rec = lab.wait_streaming(old, lab.address(new[0]), timeout=60)
    assert rec and rec[0] == 'streaming', rec
    back = lab.playbook('switchover', candidate=old)
    assert back.rc == 0, back.tail(80)
    assert lab.primaries() == [old]

# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fault test 7: WAL replay control and standby rebuilds against a deployed lab topology.

    PGHA_FAULT_INVENTORY=/path/to/inventory .venv/bin/pytest -v -s tests/faults/test_rebuild_replication.py

Ordered, on one cluster, leaving it as it found it (same primary, every standby streaming):

1. replication.yml pause on the primary's standby: a row committed on the primary stays
   invisible there while it is received; status shows it paused with WAL not replayed;
   resume: the row arrives;
2. rebuild_standby.yml refuses the primary (nothing changed);
3. the standby is stopped and its slot dropped on the primary (a slot lost after a long
   outage), rebuild_standby.yml node=<standby>: slot recreated, old data directory moved
   aside, the standby streams and has the rows;
4. rebuild_standby.yml node=<datacenter-2 leader> while the primary takes writes: the
   leader streams from the primary, its follower streams from it again (its slot on the
   new copy recreated, the WAL it needs copied), and the rows reach the follower.

Needs: PGHA_FAULT_INVENTORY (unset: skipped); helpers of tests/faults/faultlab.py.
"""

from __future__ import absolute_import, division, print_function

import json
import os
import threading
import time
import uuid

import pytest

from faultlab import Lab, wait_for

INVENTORY = os.environ.get('PGHA_FAULT_INVENTORY')
pytestmark = pytest.mark.skipif(not INVENTORY, reason='PGHA_FAULT_INVENTORY is not set (no deployed lab topology)')
# About the playbooks: the keepers are held in maintenance for the whole file (conftest.py).
MANUAL = True

RESULTS = {}
TABLE = 'pgha_fault_replay'


def slot_name(host):
    return ''.join(c if c.isalnum() or c == '_' else '_' for c in host.lower())


@pytest.fixture(scope='module')
def lab():
    lab = Lab(INVENTORY, os.environ.get('PGHA_FAULT_LOG_DIR'))
    yield lab
    with open(os.path.join(lab.log_dir, 'results-rebuild-replication.json'), 'w') as handle:
        json.dump(RESULTS, handle, indent=2, sort_keys=True)
    print('\nrebuild/replication results (%s): %s' % (lab.log_dir, json.dumps(RESULTS, indent=2, sort_keys=True)))


@pytest.fixture(scope='module')
def topo(lab):
    primaries = lab.primaries()
    assert len(primaries) == 1, 'the lab must start with exactly one primary, found %s' % primaries
    primary = primaries[0]
    dc = lab.datacenter(primary)
    standbys = [h for h in lab.db_hosts if h != primary and lab.datacenter(h) == dc]
    leader = [cfg['leader'] for name, cfg in sorted(lab.datacenters.items()) if (cfg or {}).get('leader')][0]
    followers = [h for h in lab.in_datacenter(leader) if h != leader]
    assert standbys and followers, 'the lab needs a standby next to the primary and a follower of the dc2 leader'
    assert lab.sql(primary, 'CREATE TABLE IF NOT EXISTS %s (token text PRIMARY KEY, at timestamptz DEFAULT now())'
                   % TABLE) is not None
    return {'primary': primary, 'standby': standbys[0], 'leader': leader, 'follower': followers[0]}


def insert(lab, primary, token):
    assert lab.sql(primary, "INSERT INTO %s (token) VALUES ('%s')" % (TABLE, token)) is not None


def visible(lab, host, token):
    return lab.sql(host, "SELECT count(*) FROM %s WHERE token = '%s'" % (TABLE, token)) == '1'


class TestRebuildReplication:

    def test_1_pause_hides_new_rows_resume_shows_them(self, lab, topo):
        standby, primary = topo['standby'], topo['primary']
        run = lab.playbook('replication', node=standby, replay='pause')
        assert run.rc == 0, run.tail()
        assert lab.sql(standby, 'SELECT pg_get_wal_replay_pause_state()') == 'paused'
        token = 'pause-%s' % uuid.uuid4().hex[:8]
        insert(lab, primary, token)
        # The standby receives the WAL (it even confirms it, synchronous or not) but applies none.
        received = wait_for(lambda: lab.sql(
            standby, "SELECT pg_last_wal_receive_lsn() >= '%s'::pg_lsn" % lab.sql(primary, 'SELECT pg_current_wal_lsn()')) == 't',
            timeout=30)
        assert received, 'the paused standby did not receive the WAL'
        time.sleep(3)
        assert not visible(lab, standby, token), 'a row appeared on a paused standby'
        status = lab.playbook('replication', node=standby, replay='status')
        assert status.rc == 0, status.tail()
        assert '%s: paused' % standby in status.output, status.tail()
        resumed = lab.playbook('replication', node=standby, replay='resume')
        assert resumed.rc == 0, resumed.tail()
        start = time.time()
        assert wait_for(lambda: visible(lab, standby, token), timeout=30), 'the row did not arrive after resume'
        RESULTS['resume_to_row_visible_s'] = round(time.time() - start, 2)
        RESULTS['replication_pause_playbook_s'] = round(run.duration, 1)
        all_status = lab.playbook('replication', node='all')
        assert all_status.rc == 0, all_status.tail()
        for host in (standby, topo['leader'], topo['follower']):
            assert '%s: not paused' % host in all_status.output, all_status.tail()

    def test_2_rebuild_refuses_the_primary(self, lab, topo):
        run = lab.playbook('rebuild_standby', node=topo['primary'])
        assert run.rc != 0, run.tail()
        assert 'REFUSED' in run.output and 'never rebuilt' in run.output, run.tail()
        assert lab.role(topo['primary']) == 'primary'
        assert run.changed == 0, run.tail()

    def test_3_rebuild_standby_with_missing_slot(self, lab, topo):
        standby, primary = topo['standby'], topo['primary']
        # A long outage: the standby is down and its slot is gone on the primary.
        proc = lab.docker('exec', standby, 'sh', '-c', 'systemctl stop "postgresql@$(ls /etc/postgresql | head -1)-main"')
        assert proc.returncode == 0, proc.stderr
        assert wait_for(lambda: lab.sql(primary, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '%s' "
                                        "AND NOT active" % slot_name(standby)) == '1', timeout=30)
        assert lab.sql(primary, "SELECT pg_drop_replication_slot('%s')" % slot_name(standby)) is not None
        token = 'rebuild-%s' % uuid.uuid4().hex[:8]
        # synchronous_commit=local: the synchronous standby is the one that is down.
        assert lab.sql(primary, "SET synchronous_commit = local; INSERT INTO %s (token) VALUES ('%s')"
                       % (TABLE, token)) is not None
        run = lab.playbook('rebuild_standby', node=standby)
        RESULTS['rebuild_standby_s'] = round(run.duration, 1)
        assert run.rc == 0, run.tail()
        assert 'created (it was missing)' in run.output, run.tail()
        assert '.pgha-' in run.output, run.tail()   # keep_old=true: moved aside, named in the report
        rec = lab.wait_streaming(standby, lab.address(primary), timeout=30)
        assert rec and rec[0] == 'streaming', rec
        assert lab.sql(primary, "SELECT active FROM pg_replication_slots WHERE slot_name = '%s'" % slot_name(standby)) == 't'
        assert wait_for(lambda: visible(lab, standby, token), timeout=30)
        aside = lab.docker('exec', standby, 'sh', '-c', 'ls -d /var/lib/postgresql/*/main.pgha-*').stdout.split()
        assert aside, 'keep_old=true must leave the old data directory aside'

    def test_4_rebuild_dc2_leader_follower_resumes(self, lab, topo):
        leader, follower, primary = topo['leader'], topo['follower'], topo['primary']
        before = 'leader-before-%s' % uuid.uuid4().hex[:8]
        insert(lab, primary, before)
        assert wait_for(lambda: visible(lab, follower, before), timeout=60), 'the follower does not replicate to start with'
        # Writes while the leader is rebuilt: the follower needs WAL from before the new copy.
        run_start = time.time()
        during = []
        stop = threading.Event()

        def writer():
            while not stop.is_set():
                token = 'leader-during-%s' % uuid.uuid4().hex[:8]
                if lab.sql(primary, "INSERT INTO %s (token) VALUES ('%s')" % (TABLE, token)) is not None:
                    during.append(token)
                time.sleep(0.5)

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            run = lab.playbook('rebuild_standby', node=leader, keep_old=False)
        finally:
            stop.set()
            thread.join()
        RESULTS['rebuild_dc2_leader_s'] = round(run.duration, 1)
        RESULTS['rows_written_during_leader_rebuild'] = len(during)
        assert run.rc == 0, run.tail()
        assert 'streams from %s again' % leader in run.output, run.tail()
        rec = lab.wait_streaming(leader, lab.address(primary), timeout=30)
        assert rec and rec[0] == 'streaming', rec
        rec = lab.wait_streaming(follower, lab.address(leader), timeout=60)
        assert rec and rec[0] == 'streaming', rec
        assert lab.sql(leader, "SELECT active FROM pg_replication_slots WHERE slot_name = '%s'" % slot_name(follower)) == 't'
        after = 'leader-after-%s' % uuid.uuid4().hex[:8]
        insert(lab, primary, after)
        for token in [before, after] + during[-1:]:
            assert wait_for(lambda: visible(lab, follower, token), timeout=60), 'row %s missing on %s' % (token, follower)
        RESULTS['leader_rebuild_end_to_follower_row_s'] = round(time.time() - run_start - run.duration, 1)

# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fault test 6: the link between the datacenters is cut, then datacenter 1 is lost and
datacenter 2 is promoted with playbooks/dr_promote.yml.

    PGHA_FAULT_INVENTORY=/path/to/inventory PGHA_FAULT_ROUTER=pgha-router \\
        .venv/bin/pytest -v -s tests/faults/test_dr_promote.py

Ordered, on one cluster:

1. the link is cut at the router (lab/link.sh cut ROUTER): datacenter 1 keeps taking
   writes through its VIP:5000, datacenter 2 keeps serving reads through its HAProxy:5001;
2. dr_promote.yml REFUSES while the datacenter-1 primary answers the control node; the
   leader is still a standby;
3. datacenter 1's database containers are stopped (docker stop): dr_promote.yml promotes
   the leader (new timeline), the follower streams from it on that timeline, datacenter 2
   takes writes through its HAProxy:5000 and the follower gets them; a second run
   changes nothing; with a pgBackRest repository, `pgbackrest check` passes on the new
   primary (it archives on its timeline);
4. (PGHA_FAULT_DR_RESTORE, default 1) back to the start: the link restored, datacenter 2
   stopped, datacenter 1 started again; with a repository, status.yml names datacenter
   2's timeline in the archive, prune_timelines.yml removes it (--check first, a rerun
   has nothing to do) and rejoin.yml starts each datacenter-1 standby that refused to
   start as it is; datacenter 2 is rebuilt from the datacenter-1 primary with
   rebuild_standby.yml (leader, then follower).

Run it after test_rebuild_replication.py (it changes the cluster until step 4 repairs it):
    pytest tests/faults/test_rebuild_replication.py tests/faults/test_dr_promote.py

Environment: PGHA_FAULT_INVENTORY (unset: skipped), PGHA_FAULT_ROUTER (the lab's router
container, default pgha-router), PGHA_FAULT_DR_DATACENTER (dc2); see faultlab.py.
"""

from __future__ import absolute_import, division, print_function

import json
import os
import time
import uuid

import pytest

from faultlab import Lab, wait_for

INVENTORY = os.environ.get('PGHA_FAULT_INVENTORY')
DR_DC = os.environ.get('PGHA_FAULT_DR_DATACENTER', 'dc2')
RESTORE = os.environ.get('PGHA_FAULT_DR_RESTORE', '1') not in ('0', 'false', 'no')
pytestmark = pytest.mark.skipif(not INVENTORY, reason='PGHA_FAULT_INVENTORY is not set (no deployed lab topology)')
# About the playbooks: the keepers are held in maintenance for the whole file (conftest.py).
MANUAL = True

RESULTS = {}
TABLE = 'pgha_fault_dr'


def app_sql(lab, host, statement):
    """Run SQL on a node in the application's database (docker exec, local socket as postgres)."""
    proc = lab.docker('exec', '-u', 'postgres', host, 'psql', '-XAtq', '-h', '/var/run/postgresql',
                      '-d', lab.app_db, '-c', statement, timeout=20)
    return proc.stdout.strip() if proc.returncode == 0 else None


def ok(result):
    return isinstance(result, list)


@pytest.fixture(scope='module')
def lab():
    lab = Lab(INVENTORY, os.environ.get('PGHA_FAULT_LOG_DIR'))
    yield lab
    with open(os.path.join(lab.log_dir, 'results-dr-promote.json'), 'w') as handle:
        json.dump(RESULTS, handle, indent=2, sort_keys=True)
    print('\nDR promotion results (%s): %s' % (lab.log_dir, json.dumps(RESULTS, indent=2, sort_keys=True)))


@pytest.fixture(scope='module')
def topo(lab):
    primaries = lab.primaries()
    assert len(primaries) == 1, 'the lab must start with exactly one primary, found %s' % primaries
    primary = primaries[0]
    leader = lab.datacenters[DR_DC]['leader']
    assert lab.datacenter(primary) != DR_DC
    dc1_db = lab.in_datacenter(primary)
    dr_db = [h for h in lab.db_hosts if lab.datacenter(h) == DR_DC]
    dr_lb = [h for h in sorted(lab._members('pgha_haproxy')) if lab.datacenter(h) == DR_DC]
    assert dr_lb, 'datacenter %s needs an HAProxy host' % DR_DC
    return {'primary': primary, 'dc1_db': dc1_db, 'leader': leader,
            'followers': [h for h in dr_db if h != leader], 'dr_lb': dr_lb[0]}


class TestDrPromote:

    def test_1_cut_link_both_datacenters_keep_serving(self, lab, topo):
        table = lab.through(lab.vip, lab.rw_port, 'CREATE TABLE IF NOT EXISTS %s (token text PRIMARY KEY)' % TABLE)
        assert ok(table), table
        token = 'before-cut-%s' % uuid.uuid4().hex[:8]
        assert ok(lab.through(lab.vip, lab.rw_port, "INSERT INTO %s VALUES ('%s')" % (TABLE, token)))
        lb = lab.address(topo['dr_lb'])
        assert wait_for(lambda: ok(lab.through(lb, 5001, "SELECT 1 FROM %s WHERE token = '%s'" % (TABLE, token)))
                        and lab.through(lb, 5001, "SELECT 1 FROM %s WHERE token = '%s'" % (TABLE, token)), timeout=60)
        assert lab.link('cut').startswith('link cut at')
        RESULTS['link_cut_at'] = time.time()
        time.sleep(5)   # let the health checks see whatever they will see
        writes = [lab.through(lab.vip, lab.rw_port, "INSERT INTO %s VALUES ('cut-%s-%d')" % (TABLE, uuid.uuid4().hex[:6], i))
                  for i in range(5)]
        assert all(ok(w) for w in writes), writes
        reads = lab.through(lb, 5001, 'SELECT pg_is_in_recovery(), count(*) FROM %s' % TABLE)
        assert ok(reads) and reads[0][0] is True, reads
        RESULTS['dc2_rows_visible_during_cut'] = reads[0][1]

    def test_2_dr_promote_refused_while_primary_reachable(self, lab, topo):
        run = lab.playbook('dr_promote', datacenter=DR_DC)
        RESULTS['dr_promote_refusal_s'] = round(run.duration, 1)
        assert run.rc != 0, run.tail()
        assert 'REFUSED' in run.output and 'split brain' in run.output, run.tail()
        assert topo['primary'] in run.output
        assert lab.role(topo['leader']) == 'standby'
        assert run.changed == 0, run.tail()

    def test_3_dc1_lost_dr_promote_succeeds(self, lab, topo):
        # The timeline datacenter 2 replicates: the primary's (a standby's last restartpoint
        # may be several failovers behind).
        old_tl = lab.current_timeline(topo['primary'])
        for host in topo['dc1_db']:
            proc = lab.docker('stop', host, timeout=120)
            assert proc.returncode == 0, proc.stderr
        run = lab.playbook('dr_promote', datacenter=DR_DC)
        RESULTS['dr_promote_s'] = round(run.duration, 1)
        assert run.rc == 0, run.tail()
        assert lab.role(topo['leader']) == 'primary'
        new_tl = lab.current_timeline(topo['leader'])
        assert new_tl == old_tl + 1, (old_tl, new_tl)
        RESULTS['dr_timeline'] = new_tl
        assert 'timeline %d -> %d' % (old_tl, new_tl) in run.output, run.tail()
        for follower in topo['followers']:
            rec = lab.wait_streaming(follower, lab.address(topo['leader']), timeout=30)
            assert rec and rec[0] == 'streaming' and rec[2] == new_tl, rec
        lb = lab.address(topo['dr_lb'])
        start = time.time()
        token = 'dr-%s' % uuid.uuid4().hex[:8]
        assert wait_for(lambda: ok(lab.through(lb, 5000, "INSERT INTO %s VALUES ('%s')" % (TABLE, token))), timeout=30)
        RESULTS['dr_first_write_after_playbook_s'] = round(time.time() - start, 2)
        for follower in topo['followers']:
            assert wait_for(lambda: app_sql(lab, follower, "SELECT 1 FROM %s WHERE token = '%s'" % (TABLE, token)) == '1',
                            timeout=30, interval=1), 'the row written in %s did not reach %s' % (DR_DC, follower)
        again = lab.playbook('dr_promote', datacenter=DR_DC)
        assert again.rc == 0, again.tail()
        assert again.changed == 0, again.tail()
        assert 'already was a primary' in again.output
        if lab.groups.get('pgha_backup'):
            # The new primary archives on its timeline: pgbackrest check switches to a new
            # segment and waits until the repository has it.
            stanza = lab.hostvars[topo['leader']].get('pgha_backup_stanza', 'main')
            check = lab.docker('exec', '-u', 'postgres', topo['leader'], 'pgbackrest', '--stanza=' + stanza, 'check',
                               timeout=120)
            assert check.returncode == 0, check.stdout + check.stderr

    @pytest.mark.skipif(not RESTORE, reason='PGHA_FAULT_DR_RESTORE=0: the lab stays promoted')
    def test_4_restore_dc1_and_rebuild_dc2(self, lab, topo):
        lab.link('restore')
        dr_hosts = [topo['leader']] + topo['followers']
        dr_timeline = RESULTS.get('dr_timeline')
        # Datacenter 2 goes back to being the standby cluster: stop it before datacenter 1
        # comes back, so that at no time two primaries answer.
        for host in dr_hosts:
            proc = lab.docker('exec', host, 'sh', '-c', 'systemctl stop "postgresql@$(ls /etc/postgresql | head -1)-main"')
            assert proc.returncode == 0, proc.stderr
        for host in topo['dc1_db']:
            assert lab.docker('start', host, timeout=120).returncode == 0
        assert wait_for(lambda: lab.role(topo['primary']) == 'primary', timeout=120, interval=2)
        dc1_standbys = [host for host in topo['dc1_db'] if host != topo['primary']]
        if lab.groups.get('pgha_backup'):
            # The archive holds datacenter 2's timeline, abandoned: a datacenter-1 standby
            # that replayed past its fork point will not start until it is gone.
            status = lab.playbook('status')
            assert status.rc == 0, status.tail()
            assert 'ARCHIVE HOLDS TIMELINE %d' % dr_timeline in status.output, status.tail()
            planned = lab.playbook('prune_timelines', check=True)
            assert planned.rc == 0 and 'Would remove timeline(s) %d' % dr_timeline in planned.output, planned.tail()
            pruned = lab.playbook('prune_timelines')
            assert pruned.rc == 0 and 'Removed timeline(s) %d' % dr_timeline in pruned.output, pruned.tail()
            again = lab.playbook('prune_timelines')
            assert again.rc == 0 and 'Nothing to do' in again.output and again.changed == 0, again.tail()
            # Started again as it is if it stopped on that timeline (the history file it
            # copied into pg_wal went too), nothing done if it streams: no new copy.
            for host in dc1_standbys:
                run = lab.playbook('rejoin', node=host)
                assert run.rc == 0 and 'rejoin of %s: new copy' % host not in run.output, run.tail()
        for host in dc1_standbys:
            assert wait_for(lambda: lab.receiver(host) and lab.receiver(host)[0] == 'streaming', timeout=120, interval=2)
        start = time.time()
        for host in dr_hosts:
            run = lab.playbook('rebuild_standby', node=host, keep_old=False)
            assert run.rc == 0, run.tail()
        RESULTS['dc2_rebuild_after_dr_s'] = round(time.time() - start, 1)
        assert lab.primaries() == [topo['primary']]
        rec = lab.wait_streaming(topo['leader'], lab.address(topo['primary']), timeout=30)
        assert rec and rec[0] == 'streaming', rec
        for follower in topo['followers']:
            rec = lab.wait_streaming(follower, lab.address(topo['leader']), timeout=30)
            assert rec and rec[0] == 'streaming', rec

# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fault tests of the operations playbooks against a deployed lab topology.

    PGHA_FAULT_INVENTORY=/path/to/inventory .venv/bin/pytest -v tests/faults

The tests run in order on one cluster and leave it as they found it (the initial
primary is the primary again at the end):

1. failover.yml on a healthy primary: nothing to do (changed=0); with a candidate: refused;
2. kill -9 of the primary's postmaster under write load, failover.yml: no acknowledged
   row lost, writes resume through the VIP, the datacenter-2 leader streams from the new
   primary on the new timeline, the old primary is fenced (masked, fence file);
3. failover.yml again: nothing to do, changed=0;
4. rejoin.yml node=<old primary>: it streams from the new primary, unmasked, unfenced;
   rejoin.yml again: changed=0;
5. switchover.yml to the old primary and back, under write load: no row lost, write
   windows measured, the topology is back where it started; then a switchover whose
   candidate stops receiving WAL as the old primary is stopped: aborted, the old primary
   started again and unfenced, nothing lost;
6-7. (the fast forward and the host loss, below); 8. status.yml names a replication slot
   that no follower uses.

Measured numbers are printed (pytest -s) and written to PGHA_FAULT_LOG_DIR/results.json.
They are skipped when PGHA_FAULT_INVENTORY is not set (make test on a machine without
a deployed lab).
"""

from __future__ import absolute_import, division, print_function

import json
import os
import re
import time

import pytest

from faultlab import Lab, Writer

INVENTORY = os.environ.get('PGHA_FAULT_INVENTORY')
pytestmark = pytest.mark.skipif(not INVENTORY, reason='PGHA_FAULT_INVENTORY is not set (no deployed lab topology)')
# About the playbooks: the keepers are held in maintenance for the whole file (conftest.py).
MANUAL = True

RESULTS = {}


@pytest.fixture(scope='module')
def lab():
    lab = Lab(INVENTORY, os.environ.get('PGHA_FAULT_LOG_DIR'))
    yield lab
    with open(os.path.join(lab.log_dir, 'results.json'), 'w') as handle:
        json.dump(RESULTS, handle, indent=2, sort_keys=True)
    print('\nfault test results (%s): %s' % (lab.log_dir, json.dumps(RESULTS, indent=2, sort_keys=True)))


@pytest.fixture(scope='module')
def start(lab):
    """The topology at the start: one primary, its same-datacenter standby, the dc2 leader."""
    primaries = lab.primaries()
    assert len(primaries) == 1, 'the lab must start with exactly one primary, found %s' % primaries
    primary = primaries[0]
    dc = lab.datacenter(primary)
    same_dc = [h for h in lab.db_hosts if h != primary and lab.datacenter(h) == dc]
    others = lab.datacenters
    leaders = [cfg['leader'] for name, cfg in sorted(others.items()) if (cfg or {}).get('leader')]
    assert same_dc, 'the primary needs a standby in its datacenter'
    return {'primary': primary, 'standby': same_dc[0], 'leaders': leaders}


class TestOperations:
    """Ordered: each test starts from the state the previous one left."""

    def test_1_failover_on_healthy_primary(self, lab, start):
        run = lab.playbook('failover')
        assert run.rc == 0, run.tail()
        assert run.changed == 0, run.tail()
        assert 'nothing to do' in run.output
        refused = lab.playbook('failover', candidate=start['standby'])
        assert refused.rc != 0, refused.tail()
        assert 'REFUSED' in refused.output and 'split brain guard' in refused.output
        assert refused.changed == 0
        assert lab.primaries() == [start['primary']]
        RESULTS['failover_on_healthy_primary_s'] = round(run.duration, 1)

    def test_2_kill_primary_and_fail_over(self, lab, start):
        old, new = start['primary'], start['standby']
        timeline_before = lab.current_timeline(old)
        writer = Writer(lab, 'failover')
        try:
            assert writer.wait_acks(0, count=20, timeout=30), 'the writer does not write through the VIP'
            killed_at = lab.kill_postmaster(old)
            run = lab.playbook('failover')
            assert run.rc == 0, run.tail(80)
            assert writer.wait_acks(killed_at, count=20, timeout=60), 'writes did not resume through the VIP'
            time.sleep(1)
        finally:
            writer.stop()
        report = writer.analyse(since=killed_at)
        # Writes stop when the primary dies and resume through the VIP once the new one is
        # promoted and HAProxy has seen it: the longest gap between acknowledgements around the kill.
        RESULTS['failover'] = {'playbook_s': round(run.duration, 1),
                               'write_window_s': writer.window_around(killed_at, killed_at + run.duration),
                               'acknowledged': report['acknowledged'], 'lost': report['lost'],
                               'errors': report['errors']}
        assert report['lost'] == [], 'acknowledged rows lost: %s' % report['lost'][:20]
        assert lab.primaries() == [new]
        new_timeline = lab.current_timeline(new)
        assert new_timeline == timeline_before + 1
        for leader in start['leaders']:
            rec = lab.wait_streaming(leader, lab.address(new), timeout=30)
            assert rec and rec[0] == 'streaming' and rec[1] == lab.address(new) and rec[2] == new_timeline, rec
        unit = lab.unit_state(old)
        assert unit.get('LoadState') == 'masked', unit
        assert lab.file_exists(old, '/var/lib/pgha/fenced')
        assert 'failover done: %s -> %s' % (old, new) in run.output

    def test_3_failover_again_changes_nothing(self, lab, start):
        run = lab.playbook('failover')
        assert run.rc == 0, run.tail()
        assert run.changed == 0, run.tail(120)
        assert 'nothing to do' in run.output
        RESULTS['failover_rerun_s'] = round(run.duration, 1)

    def test_4_rejoin_old_primary(self, lab, start):
        old, new = start['primary'], start['standby']
        run = lab.playbook('rejoin', node=old)
        assert run.rc == 0, run.tail(80)
        rec = lab.wait_streaming(old, lab.address(new), timeout=30)
        assert rec and rec[0] == 'streaming', rec
        assert lab.unit_state(old).get('LoadState') == 'loaded'
        assert not lab.file_exists(old, '/var/lib/pgha/fenced')
        RESULTS['rejoin'] = {'playbook_s': round(run.duration, 1),
                             'method': 'rewind' if 'pg_rewind' in run.output else 'rebuild'}
        again = lab.playbook('rejoin', node=old)
        assert again.rc == 0, again.tail()
        assert again.changed == 0, again.tail(120)

    def test_5_switchover_there_and_back(self, lab, start):
        old, new = start['primary'], start['standby']
        writer = Writer(lab, 'switchover')
        try:
            assert writer.wait_acks(0, count=20, timeout=30)
            first_at = time.time()
            first = lab.playbook('switchover', candidate=old)
            assert first.rc == 0, first.tail(80)
            assert lab.primaries() == [old]
            assert writer.wait_acks(time.time(), count=20, timeout=30)
            second_at = time.time()
            second = lab.playbook('switchover', candidate=new)
            assert second.rc == 0, second.tail(80)
            assert lab.primaries() == [new]
            assert writer.wait_acks(time.time(), count=20, timeout=30)
            third_at = time.time()
            third = lab.playbook('switchover', candidate=old)
            assert third.rc == 0, third.tail(80)
            assert writer.wait_acks(time.time(), count=20, timeout=30)
            end = time.time()
        finally:
            writer.stop()
        report = writer.analyse()
        RESULTS['switchover'] = {
            'playbook_s': [round(r.duration, 1) for r in (first, second, third)],
            'write_window_s': [writer.window_around(first_at, second_at), writer.window_around(second_at, third_at),
                               writer.window_around(third_at, end)],
            'acknowledged': report['acknowledged'], 'lost': report['lost'], 'errors': report['errors']}
        assert report['lost'] == [], 'acknowledged rows lost: %s' % report['lost'][:20]
        # Back where the module started: the initial primary, everyone streaming from it.
        assert lab.primaries() == [old]
        rec = lab.wait_streaming(new, lab.address(old), timeout=30)
        assert rec and rec[0] == 'streaming', rec
        for leader in start['leaders']:
            rec = lab.wait_streaming(leader, lab.address(old), timeout=30)
            assert rec and rec[0] == 'streaming', rec
        run = lab.playbook('failover')
        assert run.rc == 0 and run.changed == 0, run.tail()

    @pytest.mark.parametrize('cut', ['new_connections', 'inbound'])
    def test_5b_switchover_aborted_when_the_candidate_misses_the_shutdown_checkpoint(self, lab, start, cut):
        """The candidate loses the primary's WAL as the switchover begins to stop the
        primary, so it never gets the shutdown checkpoint and must not be promoted: the
        switchover aborts, starts the old primary again and unfences it, nothing
        acknowledged is lost. new_connections: its WAL receiver is disconnected and cannot
        connect again (refused by the lag check: it lacks the checkpoint); inbound: nothing
        reaches it any more while its WAL receiver still believes it streams (refused by
        the split brain guard first; the receiver is given a minute before it times out,
        wal_receiver_timeout and its connection's tcp_user_timeout, as the deployed 5 s
        would end the stream before the promotion's checks)."""
        old, candidate = start['primary'], start['standby']
        if cut == 'inbound':
            deployed_timeout = lab.sql(candidate, 'SHOW wal_receiver_timeout')
            deployed_conninfo = lab.sql(candidate, 'SHOW primary_conninfo')
            lab.alter_system(candidate, 'wal_receiver_timeout', "'60s'", lambda shown: shown == '1min')
            patient = re.sub(r'tcp_user_timeout=\d+', 'tcp_user_timeout=60000', deployed_conninfo)
            assert patient != deployed_conninfo, deployed_conninfo
            lab.alter_system(candidate, 'primary_conninfo', "'%s'" % patient, lambda shown: shown == patient)
            rec = lab.wait_streaming(candidate, lab.address(old), timeout=30)
            assert rec and rec[0] == 'streaming', rec
        writer = Writer(lab, 'switchover-abort-' + cut)

        def cut_the_candidate_off():
            # The primary's WAL sender to the candidate ends: the clean stop does not wait for it.
            if cut == 'inbound':
                lab.block(candidate, lab.address(old), inbound=True)
            else:
                lab.block(candidate, lab.address(old), new_only=True)
            lab.sql(old, "SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE client_addr = '%s'"
                    % lab.address(candidate))
        hba = "cat /etc/postgresql/*/main/pg_hba.conf"
        slots = "SELECT slot_name FROM pg_replication_slots ORDER BY 1"
        before = (lab.docker('exec', candidate, 'sh', '-c', hba).stdout, lab.sql(candidate, slots))
        try:
            assert writer.wait_acks(0, count=20, timeout=30)
            started = time.time()
            run = lab.playbook('switchover', candidate=candidate, when_output=('TASK [Checkpoint', cut_the_candidate_off))
            # Writes wait for the synchronous standby (the candidate) until it is let through.
            lab.unblock(candidate)
            assert run.rc != 0 and 'ABORTED' in run.output, run.tail(80)
            reason = 'split brain guard' if cut == 'inbound' else 'behind the reference'
            assert reason in re.sub(r'\s+', ' ', run.output), run.tail(80)
            assert lab.primaries() == [old]
            assert lab.role(candidate) == 'standby'
            assert lab.unit_state(old).get('ActiveState') == 'active'
            assert not lab.file_exists(old, '/var/lib/pgha/fenced')
            # The candidate's preparation taken back: its own pg_hba.conf, no slot left for
            # the followers it was to have.
            assert (lab.docker('exec', candidate, 'sh', '-c', hba).stdout, lab.sql(candidate, slots)) == before
            rec = lab.wait_streaming(candidate, lab.address(old), timeout=60)
            assert rec and rec[0] == 'streaming', rec
            assert writer.wait_acks(time.time(), count=20, timeout=60), 'writes did not resume through the VIP'
        finally:
            lab.unblock(candidate)
            writer.stop()
            if cut == 'inbound':
                lab.alter_system(candidate, 'wal_receiver_timeout', None, lambda shown: shown == deployed_timeout)
                lab.alter_system(candidate, 'primary_conninfo', "'%s'" % deployed_conninfo,
                                 lambda shown: shown == deployed_conninfo)
        report = writer.analyse()
        RESULTS['switchover_abort_' + cut] = {'playbook_s': round(run.duration, 1),
                                              'write_window_s': writer.window_around(started, time.time()),
                                              'acknowledged': report['acknowledged'], 'lost': report['lost']}
        assert report['lost'] == [], 'acknowledged rows lost: %s' % report['lost'][:20]
        for leader in start['leaders']:
            rec = lab.wait_streaming(leader, lab.address(old), timeout=30)
            assert rec and rec[0] == 'streaming', rec


class TestFastForward:
    """The synchronous standby loses its connection; a commit then waits for it while its
    WAL reaches the datacenter-2 leader only; the primary is killed. failover.yml promotes
    the synchronous standby (its datacenter comes first) after it fetched the missing WAL
    from the leader, so the leader follows the new timeline without a rewind and even the
    commit that was never acknowledged survives. Then the old primary is rejoined and the
    start topology restored with a switchover."""

    def test_6_fast_forward_from_the_leader(self, lab, start):
        old = lab.primaries()[0]
        dc = lab.datacenter(old)
        sync = [h for h in lab.db_hosts if h != old and lab.datacenter(h) == dc][0]
        leader = start['leaders'][0]
        writer = Writer(lab, 'fast-forward')
        try:
            assert writer.wait_acks(0, count=20, timeout=30)
            lab.block(sync, lab.address(old))
            # Commits now wait for the synchronous standby; their WAL still reaches the leader.
            deadline = time.time() + 60
            while time.time() < deadline:
                ahead = lab.sql(leader, "SELECT pg_last_wal_receive_lsn()")
                behind = lab.sql(sync, "SELECT pg_last_wal_receive_lsn()")
                if ahead and behind and lab.sql(leader, "SELECT '%s'::pg_lsn > '%s'::pg_lsn" % (ahead, behind)) == 't':
                    break
                time.sleep(0.5)
            else:
                pytest.fail('the leader did not get ahead of the synchronous standby')
            time.sleep(2)
            killed_at = lab.kill_postmaster(old)
            lab.unblock(sync)
            run = lab.playbook('failover')
            assert run.rc == 0, run.tail(80)
            assert writer.wait_acks(killed_at, count=20, timeout=90)
        finally:
            lab.unblock(sync)
            writer.stop()
        report = writer.analyse(since=killed_at)
        # The commit that was waiting when the primary died: the first write error after the kill.
        errors = [e for e in writer.events() if e['event'] == 'error' and e.get('phase') == 'write'
                  and killed_at - 1 <= e['t'] <= killed_at + 10]
        in_doubt = [errors[0]['n']] if errors else []
        RESULTS['fast_forward'] = {'playbook_s': round(run.duration, 1),
                                   'write_window_s': writer.window_around(killed_at, killed_at + run.duration),
                                   'lost': report['lost'], 'in_doubt': in_doubt,
                                   'in_doubt_kept': lab.rows(sync, in_doubt) if in_doubt else []}
        assert report['lost'] == []
        assert 'fast forward' in run.output, run.tail(80)
        assert lab.primaries() == [sync]
        rec = lab.wait_streaming(leader, lab.address(sync), timeout=60)
        assert rec and rec[0] == 'streaming' and rec[2] == lab.current_timeline(sync), rec
        # The commit that waited for the synchronous standby reached the leader, hence the new primary.
        assert in_doubt and lab.rows(sync, in_doubt) == in_doubt

        rejoin = lab.playbook('rejoin', node=old)
        assert rejoin.rc == 0, rejoin.tail(80)
        back = lab.playbook('switchover', candidate=old)
        assert back.rc == 0, back.tail(80)
        assert lab.primaries() == [old]


class TestHostLoss:
    """The primary's host is lost (its container killed: power off) under write load.
    failover.yml cannot fence it (it does not answer) and says so; the standby of its
    datacenter is promoted with no acknowledged row lost. Then the host boots again: the
    start guard of its PostgreSQL unit sees the new primary and refuses to start it (and
    fences it), so it never serves writes next to the new one. rejoin.yml brings it back
    as a standby, and a switchover restores the start topology."""

    def test_7_host_loss_then_the_old_primary_boots(self, lab, start):
        old = lab.primaries()[0]
        new = [h for h in lab.in_datacenter(old) if h != old][0]
        timeline_before = lab.current_timeline(old)
        writer = Writer(lab, 'host-loss')
        try:
            assert writer.wait_acks(0, count=20, timeout=30), 'the writer does not write through the VIP'
            lost_at = time.time()
            proc = lab.docker('kill', old)
            assert proc.returncode == 0, proc.stderr
            run = lab.playbook('failover')
            assert run.rc == 0, run.tail(80)
            assert writer.wait_acks(lost_at, count=20, timeout=60), 'writes did not resume through the VIP'
            report = writer.analyse(since=lost_at)
            RESULTS['host_loss'] = {'playbook_s': round(run.duration, 1),
                                    'write_window_s': writer.window_around(lost_at, lost_at + run.duration),
                                    'acknowledged': report['acknowledged'], 'lost': report['lost']}
            assert report['lost'] == [], 'acknowledged rows lost: %s' % report['lost'][:20]
            assert 'old primary: NOT fenced' in run.output, run.tail(80)
            assert lab.primaries() == [new]
            assert lab.current_timeline(new) == timeline_before + 1
            for leader in start['leaders']:
                rec = lab.wait_streaming(leader, lab.address(new), timeout=30)
                assert rec and rec[0] == 'streaming' and rec[1] == lab.address(new), rec

            # The lost host boots with its PostgreSQL unit enabled, as a primary on disk.
            booted_at = time.time()
            proc = lab.docker('start', old)
            assert proc.returncode == 0, proc.stderr
            deadline = time.time() + 120
            while time.time() < deadline and lab.unit_state(old).get('ActiveState') != 'failed':
                time.sleep(1)
            assert lab.unit_state(old).get('ActiveState') == 'failed', lab.unit_state(old)
            journal = lab.docker('exec', old, 'sh', '-c', 'journalctl -b --no-pager -u "postgresql@*"').stdout
            assert 'must not start' in journal and lab.address(new) in journal, journal[-2000:]
            assert lab.file_exists(old, '/var/lib/pgha/fenced')
            assert lab.role(old) is None, 'the old primary answers SQL'
            # Writes still go to the new primary only, through the VIP.
            assert writer.wait_acks(booted_at, count=20, timeout=30)
        finally:
            writer.stop()
        assert lab.primaries() == [new]
        assert writer.analyse(since=lost_at)['lost'] == []

        rejoin = lab.playbook('rejoin', node=old)
        assert rejoin.rc == 0, rejoin.tail(80)
        rec = lab.wait_streaming(old, lab.address(new), timeout=30)
        assert rec and rec[0] == 'streaming', rec
        assert not lab.file_exists(old, '/var/lib/pgha/fenced')
        back = lab.playbook('switchover', candidate=old)
        assert back.rc == 0, back.tail(80)
        assert lab.primaries() == [old]


class TestStatus:
    """status.yml names a physical slot that no follower uses: it keeps WAL for nobody."""

    def test_8_status_shows_an_idle_slot(self, lab, start):
        node = start['standby']
        assert lab.sql(node, "SELECT pg_create_physical_replication_slot('pgha_idle_probe', true)") is not None
        try:
            run = lab.playbook('status')
            assert run.rc == 0, run.tail()
            assert '%s: pgha_idle_probe (restart_lsn ' % node in run.output, run.tail(40)
        finally:
            lab.sql(node, "SELECT pg_drop_replication_slot('pgha_idle_probe')")
        run = lab.playbook('status')
        assert run.rc == 0, run.tail()
        assert 'pgha_idle_probe' not in run.output and 'Replication slots not in use' not in run.output, run.tail(40)

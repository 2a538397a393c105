# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Autorecovery: the keepers fail over by themselves on etcd, with nobody running a
playbook between the fault and the checks (docs/design.md, "Keeper").

    PGHA_FAULT_INVENTORY=/path/to/inventory .venv/bin/pytest -v tests/faults/test_autorecovery.py

In order, on one cluster, which is left as it was found (the initial primary again):

1. the keepers hold the keys: the primary the leader key, every node its member key;
2. the keeper killed on the primary (the daemon, not PostgreSQL): its lease runs out, the
   standbys see the primary still answering as a primary and promote nobody;
3. kill -9 of the primary's postmaster with the writer running through the VIP: the
   primary's keeper fences it, the best standby of its datacenter takes the leader key and
   is promoted, the datacenter-2 leader is repointed to it, writes resume through the VIP,
   no acknowledged row is lost; the old primary stays down and fenced; then rejoin.yml
   and switchover.yml put the initial primary back, the keepers never acting during them;
4. maintenance on, the primary killed: nothing is promoted; maintenance off: the failover
   happens; then back to the initial primary;
5. the primary's host lost (its container killed): its lease runs out, the standby is
   promoted, no acknowledged row lost; the host boots, its start guard keeps PostgreSQL
   down and fenced, its keeper leaves it so; then back to the initial primary;
6. two of the three etcd members stopped (no quorum): the primary goes on taking writes
   (failsafe: it still reaches every database peer), nothing is promoted; etcd back: the
   keepers resume and the primary holds the leader key again;
7. the primary isolated (it reaches neither etcd nor its database peers): it fences
   itself before its lease ends, and only then is the standby promoted; no acknowledged
   row lost; then back to the initial primary.

Write gaps are printed (pytest -s) and written to PGHA_FAULT_LOG_DIR/results-autorecovery.json.
"""

from __future__ import absolute_import, division, print_function

import json
import os
import subprocess
import time

import pytest

from faultlab import Lab, Writer, back_to_the_initial_primary, kill_and_measure, wait_for

INVENTORY = os.environ.get('PGHA_FAULT_INVENTORY')
pytestmark = pytest.mark.skipif(not INVENTORY, reason='PGHA_FAULT_INVENTORY is not set (no deployed lab topology)')

RESULTS = {}
FENCE_FILE = '/var/lib/pgha/fenced'


@pytest.fixture(scope='module')
def lab():
    lab = Lab(INVENTORY, os.environ.get('PGHA_FAULT_LOG_DIR'))
    if not lab.groups.get('pgha_dcs'):
        pytest.fail('the inventory has no pgha_dcs hosts, so no keeper runs: autorecovery cannot be tested on it')
    yield lab
    with open(os.path.join(lab.log_dir, 'results-autorecovery.json'), 'w') as handle:
        json.dump(RESULTS, handle, indent=2, sort_keys=True)
    print('\nautorecovery results (%s): %s' % (lab.log_dir, json.dumps(RESULTS, indent=2, sort_keys=True)))


@pytest.fixture(scope='module')
def start(lab):
    primaries = lab.primaries()
    assert len(primaries) == 1, 'the lab must start with exactly one primary, found %s' % primaries
    primary = primaries[0]
    same_dc = [h for h in lab.db_hosts if h != primary and lab.datacenter(h) == lab.datacenter(primary)]
    leaders = [cfg['leader'] for _name, cfg in sorted(lab.datacenters.items()) if (cfg or {}).get('leader')]
    assert same_dc, 'the primary needs a standby in its datacenter'
    ttl = int(lab.hostvars[primary].get('pgha_keeper_ttl', 10))
    return {'primary': primary, 'standby': same_dc[0], 'leaders': leaders, 'ttl': ttl}


class TestAutorecovery:
    """Ordered: each test starts from the state the previous one left."""

    def test_1_the_keepers_hold_the_keys(self, lab, start):
        for host in lab.db_hosts:
            assert lab.keeper(host, 'is-active') == 'active', host
        assert wait_for(lambda: lab.leader_key() == start['primary'], timeout=30), lab.etcd_get('leader')
        for host in lab.db_hosts:
            member = lab.etcd_get('members/%s' % host)
            assert member and member['answering'] is True and member['host'] == host, (host, member)
        assert lab.etcd_get('maintenance') is None

    def test_2_keeper_killed_on_the_primary_no_failover(self, lab, start):
        primary = start['primary']
        before = lab.etcd_get('decision')
        lab.docker('exec', primary, 'systemctl', 'kill', '--signal=KILL', 'pgha-keeper.service')
        lab.keeper(primary, 'stop')
        try:
            # The lease runs out; the standbys find the primary still a primary.
            assert wait_for(lambda: lab.leader_key() is None, timeout=start['ttl'] + 10), lab.etcd_get('leader')
            time.sleep(start['ttl'])
            assert lab.primaries() == [primary]
            assert lab.role(start['standby']) == 'standby'
            assert lab.etcd_get('decision') == before
            assert not lab.file_exists(primary, FENCE_FILE)
        finally:
            lab.keeper(primary, 'start')
        assert wait_for(lambda: lab.leader_key() == primary, timeout=30), lab.etcd_get('leader')

    def test_3_kill_primary_the_keepers_fail_over(self, lab, start):
        old, new = start['primary'], start['standby']
        timeline = lab.current_timeline(old)
        report, gap, killed_at = kill_and_measure(lab, start, 'autorecovery-kill')
        RESULTS['kill9'] = {'write_gap_s': gap, 'acknowledged': report['acknowledged'], 'lost': report['lost'],
                            'errors': report['errors']}
        assert lab.current_timeline(new) == timeline + 1
        assert wait_for(lambda: lab.leader_key() == new, timeout=30), lab.etcd_get('leader')
        # Announced: the old primary's self-fence, then the failover by the new one.
        fenced = [e for e in lab.keeper_events(old, killed_at - 1) if e['event'] == 'self_fence']
        assert fenced, 'no self_fence notification from %s' % old
        failovers = [e for e in lab.keeper_events(new, killed_at - 1) if e['event'] == 'failover']
        assert len(failovers) == 1, failovers
        assert failovers[0]['new_primary'] == new and failovers[0]['failed_primary'] == old, failovers
        RESULTS['kill9']['promotion_s'] = failovers[0]['duration_s']
        # The old primary stays down and fenced: never re-added automatically.
        assert lab.file_exists(old, FENCE_FILE)
        assert lab.unit_state(old).get('LoadState') == 'masked'
        assert lab.role(old) is None
        for leader in start['leaders']:
            rec = lab.wait_streaming(leader, lab.address(new), timeout=60)
            assert rec and rec[0] == 'streaming' and rec[2] == timeline + 1, rec
        rejoin, switch = back_to_the_initial_primary(lab, start)
        RESULTS['kill9'].update(rejoin_s=round(rejoin.duration, 1), switchover_back_s=round(switch.duration, 1))

    def test_4_maintenance_pauses_the_keepers(self, lab, start):
        old, new = start['primary'], start['standby']
        paused = {}

        def maintenance_on():
            lab.maintenance('on', reason='fault test 4')

        def wait_paused_then_resume(killed_at):
            time.sleep(start['ttl'] + 10)
            paused['standby_role'] = lab.role(new)
            paused['primaries'] = lab.primaries()
            lab.maintenance('off')
            paused['resumed_at'] = time.time()

        report, _gap, _killed = kill_and_measure(lab, start, 'autorecovery-maintenance', maintenance_on,
                                                 wait_paused_then_resume)
        assert paused['standby_role'] == 'standby' and paused['primaries'] == [], paused
        assert lab.etcd_get('maintenance') is None
        assert wait_for(lambda: lab.leader_key() == new, timeout=30)
        RESULTS['maintenance'] = {'acknowledged': report['acknowledged'], 'lost': report['lost']}
        back_to_the_initial_primary(lab, start)

    def test_5_host_loss(self, lab, start):
        old, new = start['primary'], start['standby']

        def kill_the_host(host):
            lost_at = time.time()
            proc = lab.docker('kill', host)
            assert proc.returncode == 0, proc.stderr
            return lost_at

        report, gap, _lost_at = kill_and_measure(lab, start, 'autorecovery-host-loss', fault=kill_the_host)
        RESULTS['host_loss'] = {'write_gap_s': gap, 'acknowledged': report['acknowledged'], 'lost': report['lost']}
        assert wait_for(lambda: lab.leader_key() == new, timeout=30), lab.etcd_get('leader')
        # The host boots as a primary on disk: the start guard fences it, the keeper leaves it down.
        proc = lab.docker('start', old)
        assert proc.returncode == 0, proc.stderr
        assert wait_for(lambda: lab.unit_state(old).get('ActiveState') == 'failed', timeout=120), lab.unit_state(old)
        assert lab.file_exists(old, FENCE_FILE)
        assert wait_for(lambda: lab.keeper(old, 'is-active') == 'active', timeout=60)
        time.sleep(3)
        assert lab.role(old) is None and lab.primaries() == [new]
        assert lab.leader_key() == new
        back_to_the_initial_primary(lab, start)

    def test_6_etcd_without_quorum_the_primary_goes_on(self, lab, start):
        primary = start['primary']
        stopped = sorted(lab.groups['pgha_dcs'])[:2]
        writer = Writer(lab, 'autorecovery-no-quorum')
        try:
            assert writer.wait_acks(0, count=20, timeout=30)
            cut_at = time.time()
            for member in stopped:
                assert lab.docker('exec', member, 'systemctl', 'stop', 'etcd.service').returncode == 0
            # Well past retry_timeout and the lease: the failsafe holds.
            time.sleep(start['ttl'] + 5)
            assert writer.wait_acks(time.time(), count=20, timeout=30), 'the primary stopped taking writes'
            assert lab.primaries() == [primary] and lab.role(start['standby']) == 'standby'
            assert not lab.file_exists(primary, FENCE_FILE)
        finally:
            for member in stopped:
                lab.docker('exec', member, 'systemctl', 'start', 'etcd.service')
            writer.stop()
        report = writer.analyse(since=cut_at)
        assert report['lost'] == [], report['lost'][:20]
        events = [e['event'] for e in lab.keeper_events(primary, cut_at - 1)]
        assert 'failsafe' in events and 'self_fence' not in events, events
        assert wait_for(lambda: lab.leader_key() == primary, timeout=60), lab.etcd_get('leader')
        RESULTS['no_quorum'] = {'acknowledged': report['acknowledged'], 'lost': report['lost']}

    def test_7_isolated_primary_fences_itself_before_the_promotion(self, lab, start):
        old, new = start['primary'], start['standby']
        etcd = [lab.address(h) for h in lab.groups['pgha_dcs']]
        peers = [lab.address(h) for h in lab.db_hosts if h != old]
        # What the old primary sends to etcd and to its peers' PostgreSQL is dropped
        # (new connections and established ones alike); HAProxy and the writer still reach it.
        rules = ('table inet pgha_fault\ndelete table inet pgha_fault\ntable inet pgha_fault {\n chain output {\n'
                 '  type filter hook output priority -10; policy accept;\n'
                 '  ip daddr { %s } tcp dport 2379 drop\n  ip daddr { %s } tcp dport 5432 drop\n }\n}\n'
                 % (', '.join(etcd), ', '.join(peers)))

        def isolate(host):
            at = time.time()
            proc = subprocess.run(['docker', 'exec', '-i', host, 'nft', '-f', '-'], input=rules,
                                  universal_newlines=True, capture_output=True, timeout=30, check=False)
            assert proc.returncode == 0, proc.stderr
            return at

        try:
            # The isolated primary takes writes until it fences itself: wait for the promotion.
            report, gap, isolated_at = kill_and_measure(
                lab, start, 'autorecovery-isolation', fault=isolate,
                until_promoted=lambda _at: wait_for(lambda: lab.role(new) == 'primary', timeout=90))
        finally:
            lab.unblock(old)
        fence = [e for e in lab.keeper_events(old, time.time() - 300) if e['event'] == 'self_fence']
        promotion = [e for e in lab.keeper_events(new, time.time() - 300) if e['event'] == 'failover']
        assert fence and promotion, (fence, promotion)
        # The old primary had stopped (the fence ends with the server stopped) before the
        # new one was promoted, and within one TTL of the isolation.
        assert fence[-1]['at'] < promotion[-1]['at'], (fence[-1]['at'], promotion[-1]['at'])
        RESULTS['isolation'] = {'write_gap_s': gap, 'acknowledged': report['acknowledged'], 'lost': report['lost'],
                                'fenced_at': fence[-1]['at'], 'promoted_at': promotion[-1]['at'],
                                'isolated_at': isolated_at}
        assert lab.file_exists(old, FENCE_FILE) and lab.role(old) is None
        back_to_the_initial_primary(lab, start)

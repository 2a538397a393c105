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
   the fence and the failover are posted to the webhook, with its headers;
4. maintenance on, the primary killed: nothing is promoted; maintenance off: the failover
   happens; then back to the initial primary;
5. the primary's host lost (its container killed): its lease runs out, the standby is
   promoted, no acknowledged row lost; the host boots, its start guard keeps PostgreSQL
   down and fenced, its keeper leaves it so; then back to the initial primary;
6. one etcd member stopped: nothing changes; two of the three stopped (no quorum): the
   primary goes on taking writes (failsafe: it still reaches every database peer), nothing
   is promoted; etcd back: the keepers resume and the primary holds the leader key again;
7. the primary isolated (it reaches neither etcd nor its database peers): it fences
   itself before its lease ends, and only then is the standby promoted; no acknowledged
   row lost; then back to the initial primary;
8. the standbys cut off from the primary, which writes 4 MB more, then dies: the only
   candidate is beyond the lag bound, nothing is promoted, the refusal is recorded (the
   ``blocked`` key) and announced once, never retried; failover.yml force=true (a person's
   decision) promotes it and its keeper clears the refusal; then back to the initial primary;
9. the link between the datacenters cut: datacenter 1 keeps writing, datacenter 2 keeps
   serving reads, nobody is promoted or fenced; restored: datacenter 2 streams again and
   its leader holds its key;
10. the datacenter-2 leader killed: the datacenter-2 follower takes its key and streams
    from the primary, datacenter 1 untouched; rejoin.yml puts the old leader under the new
    one and the keepers leave it there; then the same the other way round;
11. asynchronous replication, the primary's container loses every packet but loopback: a
    second writer on its own socket acknowledges after the cut, and its last
    acknowledgement comes before the new primary's promotion began (never two writable
    primaries), no later than one TTL after the cut; then back to the initial primary;
12. rejoin.yml of the healthy primary: refused, it says the node is the primary and that
    nothing is to be done (not "fail over first").

Write gaps are printed (pytest -s) and written to PGHA_FAULT_LOG_DIR/results-autorecovery.json.
"""

from __future__ import absolute_import, division, print_function

import json
import os
import time

import pytest

from faultlab import (ROOT, Lab, WebhookReceiver, Writer, back_to_the_initial_primary, epoch, kill_and_measure,
                      wait_for)

INVENTORY = os.environ.get('PGHA_FAULT_INVENTORY')
pytestmark = pytest.mark.skipif(not INVENTORY, reason='PGHA_FAULT_INVENTORY is not set (no deployed lab topology)')

RESULTS = {}
FENCE_FILE = '/var/lib/pgha/fenced'
# About 4 MB of WAL that no standby receives (the standbys are cut off from the primary).
UNSHIPPED = ("SET synchronous_commit = local; "
             "CREATE TABLE IF NOT EXISTS pgha_lag_test (n int, pad text); "
             "INSERT INTO pgha_lag_test SELECT g, repeat('x', 100) FROM generate_series(1, 30000) g")


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
def webhook(lab):
    """The receiver of the keepers' webhook, at the URL the inventory gives them."""
    url = lab.hostvars[lab.db_hosts[0]].get('pgha_keeper_webhook_url')
    if not url:
        pytest.fail('the inventory sets no pgha_keeper_webhook_url: the notifications cannot be tested on it')
    receiver = WebhookReceiver(url)
    yield receiver
    receiver.stop()


@pytest.fixture(scope='module')
def start(lab):
    primaries = lab.primaries()
    assert len(primaries) == 1, 'the lab must start with exactly one primary, found %s' % primaries
    primary = primaries[0]
    same_dc = [h for h in lab.in_datacenter(primary) if h != primary]
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

    def test_3_kill_primary_the_keepers_fail_over(self, lab, start, webhook):
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
        # The same decisions posted to the webhook, with the inventory's headers.
        headers = lab.hostvars[new].get('pgha_keeper_webhook_headers') or {}
        posted = wait_for(lambda: webhook.events('failover', killed_at - 1), timeout=10)
        assert len(posted) == 1, webhook.received
        assert posted[0]['path'] == webhook.path and posted[0]['payload']['new_primary'] == new, posted
        assert posted[0]['headers'].get('content-type') == 'application/json', posted[0]['headers']
        for name, value in headers.items():
            assert posted[0]['headers'].get(name.lower()) == value, (name, posted[0]['headers'])
        assert [p['payload']['node'] for p in webhook.events('self_fence', killed_at - 1)] == [old], webhook.received
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
        new = start['standby']
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
        first, second = sorted(lab.groups['pgha_dcs'])[:2]
        decision = lab.etcd_get('decision')
        writer = Writer(lab, 'autorecovery-no-quorum')
        try:
            assert writer.wait_acks(0, count=20, timeout=30)
            cut_at = time.time()
            # One member stopped: a quorum is left, nothing changes.
            assert lab.docker('exec', first, 'systemctl', 'stop', 'etcd.service').returncode == 0
            time.sleep(start['ttl'] + 2)
            assert lab.leader_key() == primary and lab.etcd_get('decision') == decision
            assert lab.keeper_events_of(lab.db_hosts, cut_at) == []
            assert writer.wait_acks(time.time(), count=20, timeout=30), 'the primary stopped taking writes'
            # Two stopped: no quorum. Well past retry_timeout and the lease: the failsafe holds.
            no_quorum_at = time.time()
            assert lab.docker('exec', second, 'systemctl', 'stop', 'etcd.service').returncode == 0
            time.sleep(start['ttl'] + 5)
            assert writer.wait_acks(time.time(), count=20, timeout=30), 'the primary stopped taking writes'
            assert lab.primaries() == [primary] and lab.role(start['standby']) == 'standby'
            assert not lab.file_exists(primary, FENCE_FILE)
        finally:
            for member in (first, second):
                lab.docker('exec', member, 'systemctl', 'start', 'etcd.service')
            writer.stop()
        report = writer.analyse(since=cut_at)
        assert report['lost'] == [], report['lost'][:20]
        events = [e['event'] for e in lab.keeper_events(primary, no_quorum_at - 1)]
        assert 'failsafe' in events and 'self_fence' not in events, events
        assert wait_for(lambda: lab.leader_key() == primary, timeout=60), lab.etcd_get('leader')
        RESULTS['no_quorum'] = {'acknowledged': report['acknowledged'], 'lost': report['lost'],
                                'write_gap_s': writer.window_around(cut_at, time.time())}

    def test_7_isolated_primary_fences_itself_before_the_promotion(self, lab, start):
        old, new = start['primary'], start['standby']
        etcd = [lab.address(h) for h in lab.groups['pgha_dcs']]
        peers = [lab.address(h) for h in lab.db_hosts if h != old]
        # What the old primary sends to etcd and to its peers' PostgreSQL is dropped
        # (new connections and established ones alike); HAProxy and the writer still reach it.
        rules = (' chain output {\n  type filter hook output priority -10; policy accept;\n'
                 '  ip daddr { %s } tcp dport 2379 drop\n  ip daddr { %s } tcp dport 5432 drop\n }\n'
                 % (', '.join(etcd), ', '.join(peers)))

        try:
            # The isolated primary takes writes until it fences itself: wait for the promotion.
            report, gap, isolated_at = kill_and_measure(
                lab, start, 'autorecovery-isolation', fault=lambda host: lab.fault_rules(host, rules),
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

    def test_8_only_candidate_beyond_the_lag_bound_nothing_promoted(self, lab, start):
        old, new = start['primary'], start['standby']
        followers = [h for h in lab.db_hosts if (lab.receiver(h) or (None, None))[1] == lab.address(old)]
        bound = int(lab.hostvars[old].get('pgha_failover_max_lag_bytes', 1 << 20))
        try:
            for host in followers:
                lab.block(host, lab.address(old))
            assert lab.sql(old, UNSHIPPED) is not None, 'the primary did not take the write'
            written = lab.lsn(old, 'pg_current_wal_lsn()')
            # The keepers compare the standbys with the position the primary last published.
            assert wait_for(lambda: lab.sql(old, "SELECT pg_wal_lsn_diff('%s', '%s') >= 0"
                                            % ((lab.etcd_get('optime') or {}).get('lsn') or '0/0', written)) == 't',
                            timeout=30), lab.etcd_get('optime')
            behind = float(lab.sql(old, "SELECT pg_wal_lsn_diff('%s', '%s')"
                                   % (written, lab.lsn(new, 'pg_last_wal_receive_lsn()'))))
            assert behind > 2 * bound, 'the standby is not far enough behind: %s bytes' % behind
            killed_at = lab.kill_postmaster(old)
            assert wait_for(lambda: lab.etcd_get('blocked') is not None, timeout=start['ttl'] + 30)
            # No retry loop: the refusal stands, announced once, while the keepers go on.
            time.sleep(10)
        finally:
            for host in followers:
                lab.unblock(host)
        blocked = lab.etcd_get('blocked')
        assert blocked['failed_primary'] == old and 'more than the bound' in blocked['reason'], blocked
        refused = [e for e in lab.keeper_events(new, killed_at - 1) if e['event'] == 'failover_refused']
        assert len(refused) == 1 and 'more than the bound' in refused[0]['message'], refused
        assert lab.primaries() == [] and lab.role(new) == 'standby'
        RESULTS['lag_bound'] = {'behind_bytes': behind, 'bound_bytes': bound, 'reason': blocked['reason']}
        # A person decides: failover.yml with force=true; the new primary's keeper takes the
        # leader key and clears the refusal.
        forced = lab.playbook('failover', force=True)
        assert forced.rc == 0, forced.tail(80)
        assert wait_for(lambda: lab.leader_key() == new and lab.etcd_get('blocked') is None, timeout=30), \
            (lab.etcd_get('leader'), lab.etcd_get('blocked'))
        back_to_the_initial_primary(lab, start)

    def test_9_link_between_the_datacenters_cut_nothing_promoted(self, lab, start):
        primary = start['primary']
        remote_lb = [h for h in sorted(lab.groups.get('pgha_haproxy', []))
                     if lab.datacenter(h) != lab.datacenter(primary)]
        assert remote_lb and start['leaders'], 'the lab needs a second datacenter with an HAProxy host'
        writer = Writer(lab, 'autorecovery-link-cut')
        try:
            assert writer.wait_acks(0, count=20, timeout=30)
            assert lab.link('cut').startswith('link cut at')
            cut_at = time.time()
            # Past the lease of every datacenter-2 key: datacenter 2 sees no quorum.
            time.sleep(2 * start['ttl'])
            assert writer.wait_acks(time.time(), count=20, timeout=30), 'datacenter 1 stopped taking writes'
            reads = lab.through(lab.address(remote_lb[0]), 5001, 'SELECT pg_is_in_recovery(), count(*) FROM pgha_writer')
            assert isinstance(reads, list) and reads[0][0] is True, reads
            assert lab.primaries() == [primary]
            for leader in start['leaders']:
                assert lab.role(leader) == 'standby', leader
            # Pre-vote: an etcd member cut off from the quorum asks whether it could win
            # before it campaigns, so it never raises its Raft term in vain, and its return
            # cannot depose the leader (without it: a term 17 higher after a 20 s cut).
            for member in sorted(lab.groups['pgha_dcs']):
                if lab.datacenter(member) != lab.datacenter(primary):
                    etcd_log = lab.journal(member, 'etcd.service', '--since', '@%d' % int(cut_at))
                    assert 'became pre-candidate' in etcd_log and 'became candidate' not in etcd_log, etcd_log[-2000:]
        finally:
            lab.link('restore')
            writer.stop()
        restored_at = time.time()
        report = writer.analyse(since=cut_at)
        assert report['lost'] == [], report['lost'][:20]
        acted = [e for e in lab.keeper_events_of(lab.db_hosts, cut_at - 1)
                 if e['event'] in ('failover', 'self_fence', 'failover_refused', 'failover_failed')]
        assert acted == [], acted
        for leader in start['leaders']:
            rec = lab.wait_streaming(leader, lab.address(primary), timeout=90)
            assert rec and rec[0] == 'streaming', (
                rec, lab.sql(primary, 'SELECT slot_name, active_pid FROM pg_replication_slots'),
                lab.pg_log(leader, lines=40), lab.keeper_journal(leader, '-n', '20'))
            key = 'dc/%s/leader' % lab.datacenter(leader)
            assert wait_for(lambda key=key, leader=leader: (lab.etcd_get(key) or {}).get('host') == leader,
                            timeout=30), lab.etcd_get(key)
        # etcd answered the keepers while the link came back: datacenter 1 noted nothing
        # (a failsafe event here once followed a heal, before pre-vote).
        assert lab.keeper_events_of(lab.in_datacenter(primary), restored_at - 1) == []
        RESULTS['link_cut'] = {'acknowledged': report['acknowledged'], 'lost': report['lost'],
                               'dc2_rows_read_during_cut': reads[0][1],
                               'write_gap_s': writer.window_around(cut_at, restored_at),
                               'dc2_streaming_again_s': round(time.time() - restored_at, 1)}

    def test_10_datacenter_2_leader_killed_its_follower_takes_over(self, lab, start):
        primary = start['primary']
        leader = start['leaders'][0]
        key = 'dc/%s/leader' % lab.datacenter(leader)
        followers = [h for h in lab.in_datacenter(leader) if h != leader]
        assert followers, 'datacenter %s needs a second database host' % lab.datacenter(leader)
        assert (lab.etcd_get(key) or {}).get('host') == leader, lab.etcd_get(key)
        # There and back: the follower takes over, the old leader rejoins under it; then the
        # same the other way round, which leaves the lab as it was.
        RESULTS['dc2_leader'] = []
        for lost, heir in ((leader, followers[0]), (followers[0], leader)):
            killed_at = lab.kill_postmaster(lost)
            assert wait_for(lambda heir=heir: (lab.etcd_get(key) or {}).get('host') == heir,
                            timeout=start['ttl'] + 30), lab.etcd_get(key)
            rec = lab.wait_streaming(heir, lab.address(primary), timeout=60)
            assert rec and rec[0] == 'streaming', rec
            streaming_at = time.time()
            # The keeper notes its repoint once the stream is up: its journal may lag the stream.
            assert wait_for(lambda heir=heir, killed_at=killed_at: {'standby_leader', 'repointed'}
                            <= set(e['event'] for e in lab.keeper_events(heir, killed_at - 1)), timeout=30), \
                [e['event'] for e in lab.keeper_events(heir, killed_at - 1)]
            # Datacenter 1 untouched.
            assert lab.primaries() == [primary] and lab.role(start['standby']) == 'standby'
            assert lab.keeper_events_of(lab.in_datacenter(primary), killed_at - 1) == []
            # rejoin.yml places the lost one under the leader the keepers hold.
            rejoin = lab.playbook('rejoin', node=lost)
            assert rejoin.rc == 0, rejoin.tail(80)
            rec = lab.wait_streaming(lost, lab.address(heir), timeout=60)
            assert rec and rec[0] == 'streaming', rec
            rejoined_at = time.time()
            time.sleep(5)
            # The keepers agree with the playbook: nobody is moved again.
            assert [e for e in lab.keeper_events(lost, rejoined_at - 1) if e['event'] == 'repointed'] == []
            assert lab.receiver(lost)[1] == lab.address(heir) and (lab.etcd_get(key) or {}).get('host') == heir
            RESULTS['dc2_leader'].append({'lost': lost, 'leader': heir,
                                          'streaming_from_the_primary_s': round(streaming_at - killed_at, 1),
                                          'rejoin_s': round(rejoin.duration, 1)})

    def test_11_asynchronous_primary_cut_off_never_writes_with_the_new_one(self, lab, start):
        """The primary's container loses every packet but loopback, with asynchronous
        replication: a second writer on its own socket shows when it stops acknowledging."""
        old, new = start['primary'], start['standby']
        lab.alter_system(old, 'synchronous_standby_names', "''", lambda shown: shown == '')
        socket_log, socket_stop = '/tmp/pgha-socket-writer.jsonl', '/tmp/pgha-socket-writer.stop'
        assert lab.docker('cp', os.path.join(ROOT, 'tools', 'pgha_writer.py'), '%s:/tmp/pgha_writer.py' % old).returncode == 0
        lab.docker('exec', old, 'rm', '-f', socket_log, socket_stop)
        proc = lab.docker('exec', '-d', '-u', 'postgres', old, 'python3', '/tmp/pgha_writer.py', 'run', '--dsn',
                          'host=/var/run/postgresql dbname=postgres', '--log', socket_log, '--seconds', '300',
                          '--stop-file', socket_stop)
        assert proc.returncode == 0, proc.stderr
        cut_off = (' chain input {\n  type filter hook input priority -10; policy drop;\n  iif lo accept\n }\n'
                   ' chain output {\n  type filter hook output priority -10; policy drop;\n  oif lo accept\n }\n')

        try:
            report, gap, isolated_at = kill_and_measure(
                lab, start, 'autorecovery-cut-off-async', fault=lambda host: lab.fault_rules(host, cut_off), lossless=False,
                until_promoted=lambda _at: wait_for(lambda: lab.role(new) == 'primary', timeout=90))
        finally:
            lab.docker('exec', old, 'touch', socket_stop)
            time.sleep(2)
            lab.unblock(old)
        out = lab.docker('exec', old, 'cat', socket_log)
        acks = [e['t'] for e in (json.loads(line) for line in out.stdout.splitlines() if line.strip())
                if e['event'] == 'ack']
        promotion = [e for e in lab.keeper_events(new, isolated_at - 1) if e['event'] == 'failover']
        fence = [e for e in lab.keeper_events(old, isolated_at - 1) if e['event'] == 'self_fence']
        assert promotion and fence, (promotion, fence)
        promotion_began = epoch(promotion[-1]['at']) - promotion[-1]['duration_s']
        last_old_ack = max(acks)
        # The old primary took writes after the cut (the writer reached it) and stopped
        # before the new one could take any: its promotion began later.
        assert last_old_ack > isolated_at, 'the socket writer never wrote after the cut'
        assert last_old_ack < promotion_began, (last_old_ack, promotion_began)
        assert last_old_ack <= isolated_at + start['ttl'], (last_old_ack, isolated_at)
        RESULTS['cut_off_async'] = {
            'write_gap_s': gap, 'acknowledged': report['acknowledged'], 'lost_async': len(report['lost']),
            'old_primary_last_ack_after_cut_s': round(last_old_ack - isolated_at, 2),
            'promotion_began_after_cut_s': round(promotion_began - isolated_at, 2),
            'fenced_after_cut_s': round(epoch(fence[-1]['at']) - isolated_at, 2)}
        assert lab.file_exists(old, FENCE_FILE) and lab.role(old) is None
        back_to_the_initial_primary(lab, start)
        lab.alter_system(old, 'synchronous_standby_names', None, lambda shown: shown != '')

    def test_12_rejoin_of_the_healthy_primary_says_there_is_nothing_to_do(self, lab, start):
        run = lab.playbook('rejoin', node=start['primary'])
        assert run.rc != 0, run.tail(40)
        said = ' '.join(run.output.split())   # the YAML output folds long messages
        assert 'Nothing to do, nothing was changed: %s is the primary of the cluster' % start['primary'] in said, \
            run.tail(40)
        assert 'fail over first' not in said
        assert lab.primaries() == [start['primary']]
        # The run failed: its keepalive child gives the key back as soon as it has ended.
        assert wait_for(lambda: lab.etcd_get('maintenance') is None, timeout=5), lab.etcd_get('maintenance')

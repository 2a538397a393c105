# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fault test 9: the pgBackRest archive, backups and point-in-time recovery (issue 13).

    PGHA_FAULT_INVENTORY=/path/to/inventory .venv/bin/pytest -v -s tests/faults/test_backup.py

Ordered, on one cluster, after the tests that moved the primary around (failover,
switchover, autorecovery): the archive must follow the primary of the moment.

1. the deploy made the stanza and took a first full backup; `pgbackrest check` passes
   against the primary of the moment (after every failover of the earlier tests);
2. backup.yml takes an incremental backup and reports it;
3. restore.yml refuses, before anything changes, what cannot be restored (no force while
   the primary serves, a target before every backup, in the future, malformed, two
   targets, an unknown label): the primary, its timeline and every standby as before;
4. rows, a backup, more rows, the time noted, DROP TABLE, more writes: restore.yml to the
   noted time gives the table back with exactly the rows committed before it, on a new
   timeline, every standby copied anew and streaming, the replaced data directories kept
   aside, the archive going on (`pgbackrest check`);
5. a standby stopped, its slot dropped and the WAL it needs removed from its upstream:
   started again, it fetches that WAL from the archive and streams again;
6. the repository cut off from the database hosts: the primary keeps committing while
   archive_command fails and status.yml says ARCHIVE FAILING; back: the archive catches up
   and every segment of the outage can be fetched from it;
7. verify_backup.yml restores the latest backup on the repository host and counts a
   table's rows (a minimum above them fails); a file of a backup damaged in the
   repository fails the verification, which names it;
8. rebuild_standby.yml source=backup: a standby restored from the repository (delta) over
   its data directory streams again; refused for a standby that others follow.
9. a history file archived alone by the primary's archiver, as a node promoted by mistake
   and fenced within a second leaves it (no segment of its timeline): status.yml names
   that timeline, prune_timelines.yml removes it, status.yml no longer names it and
   `pgbackrest check` passes.

Needs: PGHA_FAULT_INVENTORY (unset: skipped) with a pgha_backup group.
"""

from __future__ import absolute_import, division, print_function

import datetime
import json
import os
import time

import pytest

from faultlab import Lab, wait_for

INVENTORY = os.environ.get('PGHA_FAULT_INVENTORY')
pytestmark = pytest.mark.skipif(not INVENTORY, reason='PGHA_FAULT_INVENTORY is not set (no deployed lab topology)')
# restore.yml takes the maintenance key itself: the keepers stay on for this file.
MANUAL = False
STANZA = 'main'
TABLE = 'pgha_pitr_check'


@pytest.fixture(scope='module')
def lab():
    lab = Lab(INVENTORY, os.environ.get('PGHA_FAULT_LOG_DIR'))
    if not lab.groups.get('pgha_backup'):
        pytest.skip('the inventory has no pgha_backup group')
    return lab


@pytest.fixture(scope='module')
def repo(lab):
    return sorted(lab.groups['pgha_backup'])[0]


def pgbackrest(lab, repo, *args, timeout=120):
    return lab.docker('exec', '-u', 'postgres', repo, 'pgbackrest', '--stanza=%s' % STANZA, *args, timeout=timeout)


def backups(lab, repo):
    proc = pgbackrest(lab, repo, 'info', '--output=json')
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)[0]['backup']


def check_archive(lab, repo):
    """pgbackrest check from the repository host: the primary of the moment archives a
    fresh segment into the stanza, and the repository is consistent."""
    proc = pgbackrest(lab, repo, 'check')
    return proc.returncode, proc.stdout + proc.stderr


def app_sql(lab, host, statement):
    return lab.sql(host, statement, database=lab.app_db)


def aside_dirs(lab):
    """host -> the data directories moved aside on it (<datadir>.pgha-<UTC time>); earlier
    fault tests may have left some."""
    found = {}
    for host in lab.db_hosts:
        out = lab.docker('exec', host, 'sh', '-c', 'ls -d /var/lib/postgresql/*/main.pgha-* 2>/dev/null').stdout
        found[host] = set(out.split())
    return found


def rows_of(lab, host):
    return app_sql(lab, host, 'SELECT count(*) FROM %s' % TABLE)


def cluster_picture(lab):
    """What a refused operation must leave as it was: who is primary on which timeline,
    and from whom each standby streams."""
    primaries = lab.primaries()
    return {'primaries': primaries,
            'timeline': lab.current_timeline(primaries[0]) if primaries else None,
            'receivers': dict((h, (lab.receiver(h) or (None, None, None))[:2])
                              for h in lab.db_hosts if h not in primaries)}


def streaming_everywhere(lab):
    picture = cluster_picture(lab)
    return len(picture['primaries']) == 1 and all(r[0] == 'streaming' for r in picture['receivers'].values())


def test_1_the_deploy_archives_and_took_a_full_backup(lab, repo):
    taken = backups(lab, repo)
    assert [b for b in taken if b['type'] == 'full'], taken
    rc, out = check_archive(lab, repo)
    assert rc == 0, out
    primary = lab.primaries()[0]
    archiver = lab.sql(primary, 'SELECT archived_count > 0 FROM pg_stat_archiver')
    assert archiver == 't', archiver


def test_2_backup_playbook_takes_an_incremental_backup(lab, repo):
    before = len(backups(lab, repo))
    run = lab.playbook('backup', type='incr')
    assert run.rc == 0, run.tail()
    after = backups(lab, repo)
    assert len(after) == before + 1
    assert after[-1]['type'] == 'incr'
    assert after[-1]['label'] in run.output


def _noted_now(lab, host):
    return lab.sql(host, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")


@pytest.mark.parametrize('extra, message', [
    ({'latest': True}, 'runs as the primary: a restore replaces'),
    ({'target_time': '2000-01-01 00:00:00+00', 'force': True}, 'is before the end of the oldest backup'),
    ({'target_time': 'FUTURE', 'force': True}, 'is in the future'),
    ({'target_time': '2026-12-07 08:14:59', 'force': True}, 'has no time zone'),
    ({'target_lsn': 'zz/12', 'force': True}, 'target_lsn'),
    ({'target_lsn': '0/1', 'latest': True, 'force': True}, 'give exactly one recovery target'),
    ({'latest': True, 'label': '20000101-000000F', 'force': True}, 'is not in stanza main'),
    ({'latest': True, 'node': 'dc2-pg2', 'force': True}, 'the restore goes onto it'),
], ids=['no-force', 'before-backups', 'future', 'no-zone', 'bad-lsn', 'two-targets', 'unknown-label',
        'not-the-primary'])
def test_3_restore_refuses_before_anything_changes(lab, repo, extra, message):
    assert streaming_everywhere(lab), cluster_picture(lab)
    before = cluster_picture(lab)
    aside_before = aside_dirs(lab)
    if extra.get('target_time') == 'FUTURE':
        moment = datetime.datetime.utcnow() + datetime.timedelta(hours=1)
        extra = dict(extra, target_time=moment.strftime('%Y-%m-%d %H:%M:%S+00'))
    run = lab.playbook('restore', **extra)
    assert run.rc != 0, run.tail()
    assert message in run.output, run.tail()
    assert cluster_picture(lab) == before
    # Nothing was stopped, restored or moved aside.
    assert all(lab.unit_state(h).get('ActiveState') == 'active' for h in lab.db_hosts)
    assert aside_dirs(lab) == aside_before


def test_4_restore_to_a_noted_time_brings_a_dropped_table_back(lab, repo):
    primary = lab.primaries()[0]
    timeline = lab.current_timeline(primary)
    aside_before = aside_dirs(lab)
    assert app_sql(lab, primary, 'DROP TABLE IF EXISTS %s; CREATE TABLE %s (n int PRIMARY KEY)' % (TABLE, TABLE)) \
        is not None
    assert app_sql(lab, primary, 'INSERT INTO %s SELECT generate_series(1, 100)' % TABLE) is not None
    run = lab.playbook('backup', type='incr')
    assert run.rc == 0, run.tail()
    assert app_sql(lab, primary, 'INSERT INTO %s SELECT generate_series(101, 150)' % TABLE) is not None
    noted = _noted_now(lab, primary)
    time.sleep(1.0)
    assert app_sql(lab, primary, 'DROP TABLE %s' % TABLE) is not None
    assert app_sql(lab, primary, 'CREATE TABLE pgha_pitr_after (n int); INSERT INTO pgha_pitr_after VALUES (1)') \
        is not None

    run = lab.playbook('restore', timeout=1800, target_time=noted, force=True)
    assert run.rc == 0, run.tail()

    assert lab.primaries() == [primary]
    assert lab.current_timeline(primary) > timeline
    assert app_sql(lab, primary, 'SELECT count(*), min(n), max(n) FROM %s' % TABLE) == '150|1|150'
    assert app_sql(lab, primary, "SELECT to_regclass('pgha_pitr_after') IS NULL") == 't'
    assert wait_for(lambda: streaming_everywhere(lab), timeout=120), cluster_picture(lab)
    for standby in lab.db_hosts:
        if standby != primary:
            assert wait_for(lambda standby=standby: rows_of(lab, standby) == '150', timeout=60), standby
    # Every replaced data directory is kept aside.
    kept = dict((host, dirs - aside_before[host]) for host, dirs in aside_dirs(lab).items())
    assert all(kept.values()), kept
    # Commits after the target reach every standby, and none stops there: no recovery
    # target of the restore is left in any node's configuration (a standby copied from the
    # restored primary with one would promote itself at the first later commit).
    assert app_sql(lab, primary, 'INSERT INTO %s VALUES (151)' % TABLE) is not None
    for host in lab.db_hosts:
        assert lab.sql(host, 'SHOW recovery_target_time') == '', host
        assert wait_for(lambda host=host: rows_of(lab, host) == '151', timeout=60), host
    time.sleep(2)
    assert lab.primaries() == [primary]
    assert streaming_everywhere(lab), cluster_picture(lab)
    # The keepers hold the restored primary, the archive goes on from its timeline, and
    # writes go through the VIP again.
    assert wait_for(lambda: lab.leader_key() == primary, timeout=30), lab.leader_key()
    rc, out = check_archive(lab, repo)
    assert rc == 0, out
    assert lab.through(lab.vip, lab.rw_port, 'SELECT 1') == [(1,)]
    # Leave the lab as it was: no table of this test, no copies aside.
    assert app_sql(lab, primary, 'DROP TABLE %s' % TABLE) is not None
    for host, dirs in kept.items():
        lab.docker('exec', host, 'rm', '-rf', *sorted(dirs))


def test_5_a_standby_whose_wal_is_gone_catches_up_from_the_archive(lab, repo):
    primary = lab.primaries()[0]
    follower = 'dc2-pg2'
    upstream = lab.receiver(follower)
    assert upstream and upstream[0] == 'streaming', upstream
    leader = [h for h in lab.db_hosts if lab.address(h) == upstream[1]][0]
    slot = follower.replace('-', '_')
    position = lab.lsn(follower, 'pg_last_wal_replay_lsn()')
    needed = lab.sql(primary, "SELECT pg_walfile_name('%s')" % position)
    assert lab.docker('exec', follower, 'systemctl', 'stop', 'postgresql@15-main').returncode == 0
    try:
        # Its slot lost (a long outage) and the WAL it needs removed from its upstream.
        assert lab.sql(leader, "SELECT pg_drop_replication_slot('%s')" % slot) is not None
        assert app_sql(lab, primary, 'CREATE TABLE IF NOT EXISTS pgha_archive_catchup (n int)') is not None
        for n in range(4):
            assert app_sql(lab, primary, 'INSERT INTO pgha_archive_catchup SELECT generate_series(1, 1000)') \
                is not None
            assert lab.sql(primary, 'SELECT pg_switch_wal()') is not None
        assert lab.sql(primary, 'CHECKPOINT') is not None
        current = lab.lsn(primary, 'pg_current_wal_lsn()')
        assert wait_for(lambda: lab.sql(leader, "SELECT pg_last_wal_replay_lsn() >= '%s'" % current) == 't',
                        timeout=60)
        assert wait_for(lambda: lab.sql(leader, 'CHECKPOINT') is not None and lab.sql(
            leader, "SELECT min(substr(name, 9)) > '%s' FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'"
            % needed[8:]) == 't',
            timeout=60), lab.sql(leader, 'SELECT min(name) FROM pg_ls_waldir()')
        assert lab.sql(leader, "SELECT pg_create_physical_replication_slot('%s', true)" % slot) is not None
    finally:
        assert lab.docker('exec', follower, 'systemctl', 'start', 'postgresql@15-main').returncode == 0
    assert lab.wait_streaming(follower, upstream[1], timeout=120)[0] == 'streaming'
    assert wait_for(lambda: app_sql(lab, follower, 'SELECT count(*) FROM pgha_archive_catchup') == '4000', timeout=60)
    log = lab.pg_log(follower)
    assert 'from archive' in log, log[-2000:]
    assert app_sql(lab, primary, 'DROP TABLE pgha_archive_catchup') is not None


def test_6_the_primary_commits_while_the_repository_is_away(lab, repo):
    primary = lab.primaries()[0]
    assert app_sql(lab, primary, 'CREATE TABLE IF NOT EXISTS pgha_archive_outage (n int)') is not None
    failed_before = int(lab.sql(primary, 'SELECT failed_count FROM pg_stat_archiver'))
    cut = 'chain input {\n  type filter hook input priority -10; policy accept;\n  tcp dport 8432 drop\n }\n'
    lab.fault_rules(repo, cut)
    segments = []
    try:
        for n in range(3):
            started = time.time()
            assert app_sql(lab, primary, 'INSERT INTO pgha_archive_outage VALUES (%d)' % n) is not None
            # A commit never waits for the archive.
            assert time.time() - started < 5
            segments.append(lab.sql(primary, 'SELECT pg_walfile_name(pg_switch_wal())'))
        assert wait_for(lambda: int(lab.sql(primary, 'SELECT failed_count FROM pg_stat_archiver')) > failed_before,
                        timeout=120), 'archive_command never failed while the repository was away'
        status = lab.playbook('status')
        assert status.rc == 0, status.tail()
        assert 'ARCHIVE FAILING' in status.output, status.tail()
    finally:
        lab.unblock(repo)
    assert wait_for(lambda: lab.sql(primary, 'SELECT last_archived_wal >= %r FROM pg_stat_archiver'
                                    % segments[-1]) == 't', timeout=180), \
        lab.sql(primary, 'SELECT * FROM pg_stat_archiver')
    # Fetched the way a standby's restore_command does, from a database host over TLS.
    for segment in segments:
        got = lab.docker('exec', '-u', 'postgres', primary, 'pgbackrest', '--stanza=%s' % STANZA, 'archive-get',
                         segment, '/tmp/%s' % segment)
        assert got.returncode == 0, (segment, got.stdout, got.stderr)
    lab.docker('exec', primary, 'sh', '-c', 'rm -f /tmp/0000*')
    rc, out = check_archive(lab, repo)
    assert rc == 0, out
    assert app_sql(lab, primary, 'DROP TABLE pgha_archive_outage') is not None


def test_7_verify_backup_restores_the_latest_backup_and_names_a_damaged_file(lab, repo):
    primary = lab.primaries()[0]
    assert app_sql(lab, primary, 'DROP TABLE IF EXISTS pgha_verify_check; CREATE TABLE pgha_verify_check (n int); '
                                 'INSERT INTO pgha_verify_check SELECT generate_series(1, 100)') is not None
    assert lab.sql(primary, 'SELECT pg_switch_wal()') is not None
    tables = 'public.pgha_verify_check=100'
    good = lab.playbook('verify_backup', tables=tables, database=lab.app_db, amcheck=True)
    assert good.rc == 0, good.tail()
    assert '"public.pgha_verify_check": 100' in good.output and 'pg_amcheck passed' in good.output, good.tail()
    short = lab.playbook('verify_backup', tables='public.pgha_verify_check=101', database=lab.app_db)
    assert short.rc != 0 and 'public.pgha_verify_check' in short.output, short.tail()

    # A file of a new backup damaged in the repository: named, and nothing restored.
    run = lab.playbook('backup', type='incr')
    assert run.rc == 0, run.tail()
    label = backups(lab, repo)[-1]['label']
    damaged = 'backup/%s/%s/pg_data/global/pg_control' % (STANZA, label)
    found = lab.docker('exec', repo, 'sh', '-c', 'ls /var/lib/pgbackrest/%s*' % damaged)
    assert found.returncode == 0, found.stderr
    path = found.stdout.split()[0]
    try:
        assert lab.docker('exec', repo, 'sh', '-c', "printf 'damaged' | dd of=%s bs=1 seek=20 conv=notrunc 2>/dev/null"
                          % path).returncode == 0
        bad = lab.playbook('verify_backup')
        assert bad.rc != 0, bad.tail()
        assert damaged in bad.output, bad.tail()
        assert lab.docker('exec', repo, 'test', '-e', '/var/lib/postgresql/pgha-verify').returncode != 0
    finally:
        # The damaged backup goes; the repository verifies again.
        expired = pgbackrest(lab, repo, 'expire', '--set=%s' % label)
        assert expired.returncode == 0, expired.stderr
    again = lab.playbook('verify_backup', recovery='immediate')
    assert again.rc == 0, again.tail()
    assert app_sql(lab, primary, 'DROP TABLE pgha_verify_check') is not None


def test_8_rebuild_standby_from_the_repository(lab, repo):
    primary = lab.primaries()[0]
    # A standby that others follow keeps the upstream copy (the WAL its followers need).
    refused = lab.playbook('rebuild_standby', node='dc2-pg1', source='backup')
    assert refused.rc != 0 and 'rebuilds a standby no other host follows' in refused.output, refused.tail()
    upstream = lab.receiver('dc2-pg2')
    assert upstream and upstream[0] == 'streaming', upstream
    assert app_sql(lab, primary, 'CREATE TABLE pgha_rebuilt_from_backup (n int); '
                                 'INSERT INTO pgha_rebuilt_from_backup VALUES (1)') is not None
    run = lab.playbook('rebuild_standby', node='dc2-pg2', source='backup')
    assert run.rc == 0, run.tail()
    assert 'of the repository (delta)' in run.output, run.tail()
    assert lab.wait_streaming('dc2-pg2', upstream[1], timeout=60)[0] == 'streaming'
    assert wait_for(lambda: app_sql(lab, 'dc2-pg2', 'SELECT count(*) FROM pgha_rebuilt_from_backup') == '1',
                    timeout=60)
    log = lab.pg_log('dc2-pg2', lines=300)
    assert 'from archive' in log, log[-2000:]
    assert app_sql(lab, primary, 'DROP TABLE pgha_rebuilt_from_backup') is not None


def archive_alone(lab, host, name, content):
    """``name`` written into the server's pg_wal marked ready, as a promotion leaves its
    history file; a finished segment wakes the archiver, which pushes history files first.
    True once it archived it (the .ready became .done); the file is then removed."""
    script = ('cd "$(ls -d /var/lib/postgresql/*/main)/pg_wal" && printf %%s "$1" > %(n)s '
              '&& touch archive_status/%(n)s.ready' % {'n': name})
    made = lab.docker('exec', '-u', 'postgres', host, 'sh', '-c', script, 'archive_alone', content)
    assert made.returncode == 0, made.stderr
    lab.sql(host, "SELECT pg_logical_emit_message(false, 'pgha', 'wake the archiver'), pg_switch_wal()")
    done = wait_for(lambda: lab.docker('exec', host, 'sh', '-c', 'test -e "$(ls -d /var/lib/postgresql/*/main)'
                                       '/pg_wal/archive_status/%s.done"' % name).returncode == 0, timeout=60)
    lab.docker('exec', host, 'sh', '-c', 'cd "$(ls -d /var/lib/postgresql/*/main)/pg_wal" && '
               'rm -f %(n)s archive_status/%(n)s.done archive_status/%(n)s.ready' % {'n': name})
    return done


def test_9_a_history_file_archived_alone_is_named_and_pruned(lab, repo):
    primary = lab.primaries()[0]
    timeline = lab.current_timeline(primary)
    abandoned = timeline + 2
    # Its fork point lies far behind every standby's replay: a standby that looks at the
    # archive meanwhile rejects it rather than following it.
    assert archive_alone(lab, primary, '%08X.history' % abandoned,
                         '%d\t0/1000000\tno recovery target specified\n' % timeline)
    status = lab.playbook('status')
    assert status.rc == 0, status.tail()
    assert "ARCHIVE HOLDS TIMELINE %d, newer than the primary's %d" % (abandoned, timeline) in status.output, \
        status.tail()
    pruned = lab.playbook('prune_timelines')
    assert pruned.rc == 0 and 'Removed timeline(s) %d' % abandoned in pruned.output, pruned.tail()
    status = lab.playbook('status')
    assert status.rc == 0 and 'ARCHIVE HOLDS TIMELINE' not in status.output, status.tail()
    rc, out = check_archive(lab, repo)
    assert rc == 0, out
    assert streaming_everywhere(lab), cluster_picture(lab)

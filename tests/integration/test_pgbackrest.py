"""pgBackRest against a real PostgreSQL server, through the collection's modules.

One primary archives into a local repository with the archive_command and the
configuration that module_utils/pgbackrest.py writes (asynchronous push through a spool).
The tests run in file order on that one stanza: pgBackRest's own option check of the
rendered configurations, stanza-create, a full backup, a point-in-time recovery that
brings a dropped table back with exactly the rows committed before the noted time, the
refusals of bad restore requests, and a standby that catches up from the archive after
the primary removed the WAL it needed. A second primary then archives to, and is backed
up by, a repository "host" reached over pgBackRest's TLS server mode, which goes away
(the primary keeps committing, the check says why it fails) and comes back (the archive
catches up without a hole).
"""

import json
import os
import time

import pytest

from backrest_harness import RepositoryHost
from pgharness import as_postgres, chown_pg

from ansible_collections.pgha.multidc.plugins.module_utils.node_state import ARCHIVER_SQL
from ansible_collections.pgha.multidc.plugins.module_utils.pgbackrest import (
    archive_command, archive_status, database_host_conf, repository_host_conf, restore_command)

SERVER_PREFIX = 'pgbr'
STANZA = 'main'
# Rows of table t: 1-100 before the backup, 101-150 after it and before the noted time,
# 151-160 after the noted time (they must not come back), then DROP TABLE t.
BEFORE_BACKUP, BEFORE_TARGET, AFTER_TARGET = 100, 150, 160
# What status.yml reads of the primary's archiver: archiving, no failure.
ARCHIVER = {'archive_mode': 'on', 'archived_count': 1, 'last_archived_wal': None, 'failed_count': 0, 'failing': False}
# The repository host's cipher passphrase (the database hosts never have it).
CIPHER = 'K7pY2v9Qw4Zx8Rt1Ls6Hn3Bc-test'


def pgbackrest(config, *args, check=True):
    return as_postgres(['pgbackrest', '--config=%s' % config, '--stanza=%s' % STANZA] + list(args), check=check)


@pytest.fixture(scope='module')
def backrest(servers):
    """A pgbackrest.conf for a local repository in the module's directory, and its paths."""
    home = os.path.join(servers.base, 'pgbackrest')
    paths = dict((name, os.path.join(home, name)) for name in ('repo', 'spool', 'log', 'lock'))
    for path in paths.values():
        os.makedirs(path)
    paths['config'] = os.path.join(home, 'pgbackrest.conf')
    chown_pg(home)
    return paths


def write_config(backrest, server, name):
    """The pgbackrest.conf of ``server`` (each database host has its own: pgBackRest checks
    that pg1-path is the data directory of the server that runs archive-get); its path."""
    path = os.path.join(os.path.dirname(backrest['repo']), name)
    with open(path, 'w') as handle:
        handle.write(database_host_conf(
            STANZA, server.datadir, pg_port=server.port, pg_socket_path=server.socket_dir,
            repo_path=backrest['repo'], spool_path=backrest['spool'], log_path=backrest['log'],
            lock_path=backrest['lock'], compress_type='lz4', process_max=2,
            extra={'repo1-retention-full': 2, 'archive-timeout': 30}))
    chown_pg(path)
    os.chmod(path, 0o600)
    return path


@pytest.fixture(scope='module')
def primary(servers, backrest):
    """A primary whose archive_command pushes to the stanza; the configuration is written
    once the server exists (it names the data directory, port and socket)."""
    server = servers.primary('pgbr_primary')
    write_config(backrest, server, os.path.basename(backrest['config']))
    with open(os.path.join(server.datadir, 'postgresql.conf'), 'a') as handle:
        handle.write("archive_mode = on\narchive_command = '%s'\n" % archive_command(STANZA, backrest['config']))
    server.stop()
    server.start()
    return server


@pytest.fixture(scope='module')
def state():
    """What one test leaves for the next (the tests run in file order on one stanza)."""
    return {}


def common(backrest):
    return {'stanza': STANZA, 'config': backrest['config'], 'timeout': 300}


def segment_after(name, count=1):
    """The name of the WAL segment ``count`` after ``name`` (16 MB segments: 256 a log file)."""
    timeline, number = name[:8], int(name[8:16], 16) * 0x100 + int(name[16:], 16) + count
    return '%s%08X%08X' % (timeline, number // 0x100, number % 0x100)


def utc_now_text(server):
    """The server's clock, in UTC, in the form the restore module takes."""
    return server.scalar("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")


# -- configuration -----------------------------------------------------------------------

TLS = {'ca_file': '/etc/pgbackrest/tls/ca.crt', 'cert_file': '/etc/pgbackrest/tls/host.crt',
       'key_file': '/etc/pgbackrest/tls/host.key'}


def options_check(servers, name, text):
    """pgBackRest's own reading of a configuration file: ``help`` loads it, warns about an
    unknown option and fails on a bad value (exit status, output)."""
    path = os.path.join(servers.base, name)
    with open(path, 'w') as handle:
        handle.write(text)
    chown_pg(path)
    result = as_postgres(['pgbackrest', '--config=%s' % path, '--stanza=%s' % STANZA, 'help', 'backup'], check=False)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize('name, text', [
    ('repository.conf', repository_host_conf(
        STANZA, '/var/lib/pgbackrest', [{'host': 'dc1-pg1', 'path': '/var/lib/postgresql/15/main', 'client_cn': 'dc1-pg1'},
                                        {'host': 'dc1-pg2', 'path': '/var/lib/postgresql/15/main', 'client_cn': 'dc1-pg2'}],
        TLS, cipher_pass='K7pY2v9Qw4Zx8Rt1Ls6Hn3Bc', compress_level=3)),
    ('database.conf', database_host_conf(
        STANZA, '/var/lib/postgresql/15/main', repo_host={'host': 'dc2-backup1', 'client_cn': 'dc2-backup1'},
        tls=TLS, archive_push_queue_max='4GiB')),
])
def test_rendered_configurations_pass_pgbackrests_option_check(servers, name, text):
    returncode, output = options_check(servers, name, text)
    assert returncode == 0, output
    assert 'WARN' not in output and 'ERROR' not in output, output
    assert '[current=main]' in output  # the file was read


def test_the_option_check_catches_a_bad_option(servers):
    returncode, output = options_check(servers, 'bad.conf', database_host_conf(
        STANZA, '/srv/pg', repo_path='/srv/repo', extra={'archive-pushh-queue-max': '1GiB'}))
    assert returncode == 0 and "invalid option 'archive-pushh-queue-max'" in output
    returncode, output = options_check(servers, 'bad-value.conf', database_host_conf(
        STANZA, '/srv/pg', repo_path='/srv/repo', extra={'start-fast': 'maybe'}))
    assert returncode != 0 and 'start-fast' in output


# -- stanza, check, backup ---------------------------------------------------------------------

def test_info_before_the_stanza_exists(ansible, primary, backrest):
    result = ansible.run('pgbackrest_info', common(backrest))
    assert result['changed'] is False
    assert result['ok'] is False
    assert result['status'] == {'code': 1, 'message': 'missing stanza path'}
    assert result['backups'] == [] and result['latest_full'] is None


def test_backup_refused_before_the_stanza_exists(ansible, primary, backrest):
    result = ansible.run('pgbackrest_backup', common(backrest), expect_failure=True)
    assert 'stanza main does not exist in the repository' in result['msg']


def test_stanza_create_check_mode_then_create_then_nothing(ansible, primary, backrest):
    predicted = ansible.run('pgbackrest_stanza', common(backrest), check_mode=True)
    assert predicted['changed'] is True and predicted['created'] is True
    assert not os.listdir(backrest['repo'])  # check mode wrote nothing
    created = ansible.run('pgbackrest_stanza', common(backrest))
    assert created['changed'] is True and created['created'] is True
    assert created['status'] == {'code': 2, 'message': 'no valid backups'}
    assert created['database']['version'] == primary.scalar('SHOW server_version').split('.')[0]
    assert str(created['database']['system_id']) == primary.system_identifier()
    again = ansible.run('pgbackrest_stanza', common(backrest))
    assert again['changed'] is False and again['created'] is False


def test_check_passes_and_the_archive_has_the_switched_segment(ansible, primary, backrest):
    segment = primary.scalar('SELECT pg_walfile_name(pg_current_wal_lsn())')
    result = ansible.run('pgbackrest_info', dict(common(backrest), check=True))
    assert result['check']['passed'] is True, result['check']
    assert result['check']['errors'] == []
    assert result['archive']['max_wal'] >= segment
    assert primary.scalar('SELECT last_archived_wal FROM pg_stat_archiver') >= segment


def test_full_backup(ansible, primary, backrest, state):
    primary.execute('CREATE TABLE t (id int PRIMARY KEY, note text)')
    primary.execute("INSERT INTO t SELECT g, 'before backup' FROM generate_series(1, %d) g" % BEFORE_BACKUP)
    predicted = ansible.run('pgbackrest_backup', dict(common(backrest), type='diff'), check_mode=True)
    assert predicted['changed'] is True and predicted['label'] is None
    result = ansible.run('pgbackrest_backup', dict(common(backrest), type='diff'))
    assert result['changed'] is True
    # The first backup of a stanza is a full one whatever was asked.
    assert result['backup']['type'] == 'full' and result['label'].endswith('F')
    assert result['backup']['database_size'] > 10 * 1024 * 1024
    assert 0 < result['backup']['repository_size'] < result['backup']['database_size']  # compressed
    assert result['duration_seconds'] > 0
    info = ansible.run('pgbackrest_info', common(backrest))
    assert info['ok'] is True and info['backup_count'] == 1
    assert info['latest_full']['label'] == result['label']
    assert info['latest_full']['age_seconds'] < 120
    state['full'] = result['label']


# -- point-in-time recovery --------------------------------------------------------------------

def test_point_in_time_recovery_brings_the_dropped_table_back(ansible, servers, primary, backrest, state):
    primary.execute("INSERT INTO t SELECT g, 'after backup' FROM generate_series(%d, %d) g"
                    % (BEFORE_BACKUP + 1, BEFORE_TARGET))
    time.sleep(0.2)
    noted = utc_now_text(primary)
    time.sleep(0.2)
    primary.execute("INSERT INTO t SELECT g, 'after the noted time' FROM generate_series(%d, %d) g"
                    % (BEFORE_TARGET + 1, AFTER_TARGET))
    primary.execute('DROP TABLE t')
    primary.execute('CREATE TABLE later AS SELECT 1 AS x')
    # The WAL past the noted time must be in the archive for recovery to find where to stop.
    assert ansible.run('pgbackrest_info', dict(common(backrest), check=True))['check']['passed'] is True

    restored = servers.new('pgbr_restored')
    result = ansible.run('pgbackrest_restore', dict(common(backrest), data_directory=restored.datadir,
                                                    target_time=noted, archive_mode='off'))
    assert result['changed'] is True
    assert result['label'] == state['full']
    assert result['target'] == {'type': 'time', 'value': noted[:-3] + '+00'}
    assert '--type=time' in result['command'] and '--set=%s' % state['full'] in result['command']

    restored.start_existing()
    assert restored.wait_for('SELECT NOT pg_is_in_recovery()', True, timeout=60) is True, \
        open(restored.logfile).read()[-3000:]
    assert restored.execute('SELECT count(*), min(id), max(id) FROM t') == [(BEFORE_TARGET, 1, BEFORE_TARGET)]
    assert restored.scalar("SELECT count(*) FROM t WHERE note = 'after the noted time'") == 0
    assert restored.scalar("SELECT to_regclass('later') IS NULL") is True
    # Promoted at the target: a new timeline.
    assert restored.scalar('SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)') == '00000002'
    assert restored.scalar('SHOW archive_mode') == 'off'
    # The primary still has no table t: the restore touched only the new directory.
    assert primary.scalar("SELECT to_regclass('t') IS NULL") is True
    restored.stop()
    state['restored'], state['noted'] = restored, noted


def test_restore_refusals_change_nothing(ansible, servers, primary, backrest, state):
    info = ansible.run('pgbackrest_info', common(backrest))
    oldest_start = info['oldest']['start'].replace('T', ' ').replace('Z', '+00')
    target = os.path.join(os.path.dirname(backrest['repo']), 'never-restored')  # a parent postgres may write
    cases = [
        ({'target_time': oldest_start}, 'is before the end of the oldest backup %s' % state['full']),
        ({'target_time': '2999-01-01 00:00:00+00'}, 'is in the future'),
        ({'target_time': '2026-12-07 08:00:00'}, 'has no time zone'),
        ({'target_lsn': '0/XYZ'}, "target_lsn: not an LSN: '0/XYZ'"),
        ({'latest': True, 'label': '20200101-000000F'}, 'backup 20200101-000000F is not in stanza main'),
        ({'latest': True, 'target_name': 'x'}, 'exactly one recovery target'),
    ]
    for args, message in cases:
        result = ansible.run('pgbackrest_restore', dict(common(backrest), data_directory=target, **args),
                             expect_failure=True)
        assert message in result['msg'], (args, result['msg'])
        assert result['changed'] is False
        assert not os.path.exists(target)

    running = ansible.run('pgbackrest_restore', dict(common(backrest), data_directory=primary.datadir, latest=True,
                                                     existing='delta'), expect_failure=True)
    assert 'a server runs on %s' % primary.datadir in running['msg']
    # Check mode reports the server instead (a playbook checks the restore before it stops it).
    checked = ansible.run('pgbackrest_restore', dict(common(backrest), data_directory=primary.datadir, latest=True,
                                                     existing='delta'), check_mode=True)
    with open(os.path.join(primary.datadir, 'postmaster.pid')) as handle:
        postmaster = int(handle.readline())
    assert checked['changed'] is True and checked['running_pid'] == postmaster
    assert primary.scalar('SELECT 1') == 1
    occupied = state['restored'].datadir
    before = sorted(os.listdir(occupied))
    refused = ansible.run('pgbackrest_restore', dict(common(backrest), data_directory=occupied, latest=True),
                          expect_failure=True)
    assert 'is not empty' in refused['msg'] and 'existing=move_aside' in refused['msg']
    assert sorted(os.listdir(occupied)) == before


def test_restore_over_an_old_copy_moves_it_aside(ansible, backrest, state):
    restored = state['restored']
    result = ansible.run('pgbackrest_restore', dict(common(backrest), data_directory=restored.datadir, latest=True,
                                                    existing='move_aside', archive_mode='off'))
    assert result['moved_aside'].startswith(restored.datadir + '.pgha-')
    assert os.path.exists(os.path.join(result['moved_aside'], 'PG_VERSION'))
    restored.start_existing()  # the restored postgresql.conf is the primary's again
    assert restored.wait_for('SELECT NOT pg_is_in_recovery()', True, timeout=60) is True
    # The end of the archive: the table was dropped, the later one exists.
    assert restored.scalar("SELECT to_regclass('t') IS NULL") is True
    assert restored.scalar('SELECT x FROM later') == 1
    restored.stop()


def test_delta_restore_over_a_copy_to_the_noted_time(ansible, backrest, state):
    """existing=delta: pgBackRest restores over the directory, copying what differs; the
    copy of the end of the archive goes back to the noted time."""
    restored = state['restored']
    result = ansible.run('pgbackrest_restore', dict(common(backrest), data_directory=restored.datadir,
                                                    target_time=state['noted'], existing='delta', archive_mode='off'))
    assert '--delta' in result['command'] and result['moved_aside'] is None
    restored.start_existing()
    assert restored.wait_for('SELECT NOT pg_is_in_recovery()', True, timeout=60) is True
    assert restored.execute('SELECT count(*), max(id) FROM t') == [(BEFORE_TARGET, BEFORE_TARGET)]
    assert restored.scalar("SELECT to_regclass('later') IS NULL") is True
    restored.stop()


# -- a standby catches up from the archive -------------------------------------------------------

def test_standby_catches_up_from_the_archive_after_its_wal_is_gone(ansible, servers, primary, backrest):
    standby = servers.new('pgbr_standby').init_standby_of(primary, slot='pgbr_standby')
    config = write_config(backrest, standby, 'standby.conf')
    standby.execute("ALTER SYSTEM SET restore_command = '%s'" % restore_command(STANZA, config))
    standby.execute('SELECT pg_reload_conf()')
    primary.execute('CREATE TABLE gap (id int)')
    assert standby.wait_for("SELECT to_regclass('gap') IS NOT NULL", True) is True
    standby.stop()
    last_streamed = primary.scalar('SELECT pg_walfile_name(pg_current_wal_lsn())')
    primary.execute("SELECT pg_drop_replication_slot('pgbr_standby')")
    for batch in range(4):
        primary.execute('INSERT INTO gap SELECT g FROM generate_series(%d, %d) g' % (batch * 1000 + 1, (batch + 1) * 1000))
        primary.execute('SELECT pg_switch_wal()')
    # Everything written is archived (check switches the segment and waits for it), so the
    # checkpoints can remove the segments the standby needs from the primary.
    assert ansible.run('pgbackrest_info', dict(common(backrest), check=True))['check']['passed'] is True
    primary.execute('CHECKPOINT')
    primary.execute('CHECKPOINT')
    missing = segment_after(last_streamed)
    assert not os.path.exists(os.path.join(primary.datadir, 'pg_wal', missing)), 'the primary still has ' + missing

    standby.start()
    assert standby.wait_for('SELECT count(*) FROM gap', 4000, timeout=90) == 4000, open(standby.logfile).read()[-3000:]
    with open(standby.logfile) as handle:
        log = handle.read()
    # The primary no longer had that segment: only the archive could give it.
    assert 'restored log file "%s" from archive' % missing in log
    standby.stop()


def fetch_every_segment(config, directory):
    """archive-get every segment from the oldest the archive keeps to the newest into
    ``directory`` (it fails on a hole in the archive); the number fetched."""
    archive = json.loads(pgbackrest(config, '--output=json', 'info').stdout)[0]['archive'][0]
    os.makedirs(directory)
    chown_pg(directory)
    segment, count = archive['min'], 0
    while segment <= archive['max']:
        pgbackrest(config, 'archive-get', segment, os.path.join(directory, segment))
        assert os.path.getsize(os.path.join(directory, segment)) == 16 * 1024 * 1024
        segment, count = segment_after(segment), count + 1
    return count


def test_archive_get_of_every_archived_segment(servers, backrest):
    assert fetch_every_segment(backrest['config'], os.path.join(servers.base, 'fetched')) >= 8


# -- a timeline the cluster went back from ---------------------------------------------------------

def archive_as_postgres_would(server, name, content):
    """Put ``name`` in the server's pg_wal marked ready, as a promotion leaves its history
    file, and wait until the server's archiver has pushed it (archive_command)."""
    path = os.path.join(server.datadir, 'pg_wal', name)
    with open(path, 'w') as handle:
        handle.write(content)
    ready = os.path.join(server.datadir, 'pg_wal', 'archive_status', name + '.ready')
    open(ready, 'w').close()
    chown_pg(path)
    chown_pg(ready)
    # A finished segment wakes the archiver, which pushes history files first.
    server.execute("SELECT pg_logical_emit_message(false, 'pgha', 'wake the archiver')")
    server.execute('SELECT pg_switch_wal()')
    done = ready[:-len('.ready')] + '.done'
    deadline = time.time() + 60
    while not os.path.exists(done) and time.time() < deadline:
        time.sleep(0.2)
    assert os.path.exists(done), 'the archiver did not archive %s' % name
    os.remove(path)
    os.remove(done)


def test_a_history_file_archived_alone_is_seen_and_pruned(ansible, primary, backrest):
    # A node promoted by mistake and fenced within a second archives its history file and
    # no segment: pgBackRest's info does not show that timeline, the listing does.
    timeline = int(primary.scalar('SELECT timeline_id FROM pg_control_checkpoint()'))
    before = ansible.run('pgbackrest_info', common(backrest))
    assert before['archive']['timelines'] == [timeline], before['archive']
    assert archive_status('pgbr', ARCHIVER, 'repo', before, timeline)['newer_timeline'] is None
    abandoned = timeline + 3
    archive_as_postgres_would(primary, '%08X.history' % abandoned,
                              '%d\t0/5000000\tno recovery target specified\n' % timeline)

    info = ansible.run('pgbackrest_info', common(backrest))
    assert info['archive']['timelines'] == [timeline, abandoned]
    assert int(info['archive']['max_wal'][:8], 16) == timeline  # no segment of it
    status = archive_status('pgbr', ARCHIVER, 'repo', info, timeline)
    assert status['newer_timeline'] == abandoned
    assert "ARCHIVE HOLDS TIMELINE %d, newer than the primary's %d" % (abandoned, timeline) in status['lines'][-1]

    pruned = ansible.run('pgbackrest_prune_timelines', dict(common(backrest), timeline=timeline,
                                                            repository_path=backrest['repo']))
    assert pruned['changed'] is True and pruned['removed'] == ['%08X.history' % abandoned]
    assert pruned['timelines'] == [abandoned]
    after = ansible.run('pgbackrest_info', common(backrest))
    assert after['archive']['timelines'] == [timeline]
    assert archive_status('pgbr', ARCHIVER, 'repo', after, timeline)['newer_timeline'] is None


# -- a repository host over TLS ---------------------------------------------------------------

@pytest.fixture(scope='module')
def tls_pair(servers, ca):
    """A second primary and a repository "host" on this machine, each with its own
    configuration and its own ``pgbackrest server`` on a loopback port, as the backup role
    deploys them on two hosts (backrest_harness.RepositoryHost): the database side reaches
    the repository only over TLS with the test CA's certificate (CN localhost), and the
    repository side the database likewise. The repository is encrypted with a passphrase
    only the repository side has."""
    server = servers.primary('pgbr_tls_primary')
    site = RepositoryHost(
        os.path.join(servers.base, 'pgbackrest-tls'), ca, STANZA, cipher_pass=CIPHER,
        repo_extra={'archive-timeout': 30, 'repo1-retention-full': 2},
        # pgBackRest tries an absent repository host for twice io-timeout (default 60 s).
        db_extra={'archive-timeout': 30, 'io-timeout': 5})
    site.add_database(server)
    try:
        site.start()
        yield {'server': server, 'db_conf': site.conf_of(server), 'repo_conf': site.repo_conf,
               'repo': site.paths['repo'], 'repo_server': site.repo_server, 'repo_port': site.repo_port}
    finally:
        site.close()


def test_repository_host_over_tls(ansible, tls_pair):
    server, db_conf, repo_conf = tls_pair['server'], tls_pair['db_conf'], tls_pair['repo_conf']
    on_repo = {'stanza': STANZA, 'config': repo_conf, 'timeout': 300}
    on_db = {'stanza': STANZA, 'config': db_conf, 'timeout': 300}
    assert ansible.run('pgbackrest_stanza', on_repo)['created'] is True
    # The database host archives to the repository over TLS: check pushes a segment there.
    check = ansible.run('pgbackrest_info', dict(on_db, check=True))
    assert check['check']['passed'] is True, check['check']
    assert os.listdir(os.path.join(tls_pair['repo'], 'archive', STANZA))
    server.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g")
    backup = ansible.run('pgbackrest_backup', dict(on_repo, type='full'))
    assert backup['backup']['type'] == 'full' and backup['backup']['database_size'] > 10 * 1024 * 1024
    # Both sides read the same repository: the database host through the repository's server.
    from_db = ansible.run('pgbackrest_info', on_db)
    assert from_db['ok'] is True and from_db['latest_full']['label'] == backup['label']
    assert str(from_db['database']['system_id']) == server.system_identifier()
    assert ansible.run('pgbackrest_info', dict(on_repo, check=True))['check']['passed'] is True
    # Encrypted at rest with the passphrase only the repository host has.
    assert from_db['cipher'] == 'aes-256-cbc'
    with open(db_conf) as handle:
        assert 'cipher' not in handle.read()
    with open(os.path.join(tls_pair['repo'], 'backup', STANZA, 'backup.info'), 'rb') as handle:
        assert handle.read(8) == b'Salted__'


def test_repository_host_away_then_back(ansible, servers, tls_pair):
    """The repository host stops: the primary keeps committing and switching segments, the
    archive check fails and says why; the host comes back: the archive catches up and every
    segment can be fetched again (no hole)."""
    server, db_conf = tls_pair['server'], tls_pair['db_conf']
    on_db = {'stanza': STANZA, 'config': db_conf, 'timeout': 300}
    tls_pair['repo_server'].stop()
    failed_before = server.scalar('SELECT failed_count FROM pg_stat_archiver')
    for batch in range(3):
        started = time.time()
        server.execute('INSERT INTO t SELECT g FROM generate_series(1, 1000) g')
        server.execute('SELECT pg_switch_wal()')
        assert time.time() - started < 5  # commits do not wait for the archive
    last_written = server.scalar('SELECT pg_walfile_name(pg_current_wal_lsn() - 1)')
    away = ansible.run('pgbackrest_info', dict(on_db, check=True))
    assert away['ok'] is False and away['status']['code'] == 99
    assert away['problem'].startswith("[HostConnectError] unable to connect to 'localhost:%d'" % tls_pair['repo_port'])
    assert away['check']['passed'] is False and 'localhost' in away['check']['message'], away['check']
    assert server.wait_for('SELECT failed_count > %d FROM pg_stat_archiver' % failed_before, True, timeout=60) is True
    assert server.scalar('SELECT last_archived_wal FROM pg_stat_archiver') < last_written
    # What status.yml and the agent's pgha_archive_failing read (node_state).
    assert server.scalar('SELECT failing FROM (%s) a' % ARCHIVER_SQL) is True

    tls_pair['repo_server'].start()
    check = ansible.run('pgbackrest_info', dict(on_db, check=True))
    assert check['check']['passed'] is True, check['check']
    assert server.scalar('SELECT last_archived_wal FROM pg_stat_archiver') > last_written
    assert check['archive']['max_wal'] > last_written
    assert server.scalar('SELECT failing FROM (%s) a' % ARCHIVER_SQL) is False
    assert fetch_every_segment(db_conf, os.path.join(servers.base, 'fetched-tls')) >= 5

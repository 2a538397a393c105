"""pg_basebackup_standby against real PostgreSQL servers over TLS (verify-full).

A standby is built from a primary, started and shown to stream; a cascading standby is
built from that standby; reruns change nothing; every refusal leaves the data exactly as
it was and says why.
"""

import json
import os
import re
import shutil
import subprocess
import time

import pytest

from pgharness import (BINDIR, REPLICATION_PASSWORD, as_postgres, chown_pg, free_port, tree_snapshot)

MODULE = 'pg_basebackup_standby'
LSN_RE = re.compile(r'^[0-9A-F]{1,8}/[0-9A-F]{1,8}$')


# -- fixtures -------------------------------------------------------------------------

@pytest.fixture(scope='module')
def primary(servers):
    server = servers.primary('bb_primary')
    server.execute('CREATE TABLE t (id int PRIMARY KEY, note text)')
    server.execute("INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g")
    return server


@pytest.fixture(scope='module')
def standby(servers, primary, ansible):
    """A standby built by the module from the primary, with both password and passfile, started."""
    server = servers.new('bb_standby')
    result = ansible.run(MODULE, {
        'data_directory': server.datadir,
        'upstream': primary.upstream(password=REPLICATION_PASSWORD),
        'application_name': 'bb_standby',
    }, diff=True)
    server.build_result = result
    server.start_existing()
    return server


@pytest.fixture
def place(servers, request):
    """A fresh directory, owned by postgres, to hold one test's data directory."""
    path = os.path.join(servers.base, 'place-' + re.sub(r'[^a-z0-9]+', '-', request.node.name.lower()))
    os.makedirs(path)
    chown_pg(path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def initdb(path):
    """An unrelated cluster (its own system identifier) at ``path``, not running."""
    as_postgres([os.path.join(BINDIR, 'initdb'), '-D', path, '-U', 'postgres', '--auth=trust', '-E', 'UTF8',
                 '--locale=C.UTF-8', '--no-sync'])
    return sysid_of(path)


def sysid_of(datadir):
    out = as_postgres([os.path.join(BINDIR, 'pg_controldata'), '-D', datadir], env={'LC_ALL': 'C'}).stdout
    return re.search(r'Database system identifier:\s+(\d+)', out).group(1)


def auto_conf(datadir):
    with open(os.path.join(datadir, 'postgresql.auto.conf')) as handle:
        return handle.read()


def assert_no_password(result, datadir=None):
    text = json.dumps(result)
    assert REPLICATION_PASSWORD not in text
    assert REPLICATION_PASSWORD not in result.get('_stdout', '')
    if datadir and os.path.exists(os.path.join(datadir, 'postgresql.auto.conf')):
        assert REPLICATION_PASSWORD not in auto_conf(datadir)


def wait_streaming(server, timeout=60):
    return server.wait_for('SELECT (SELECT status FROM pg_stat_wal_receiver)', 'streaming', timeout=timeout)


def args_for(datadir, upstream, **extra):
    args = {'data_directory': datadir, 'upstream': upstream}
    args.update(extra)
    return args


# -- building standbys ----------------------------------------------------------------

def test_check_mode_predicts_a_copy_and_touches_nothing(primary, ansible, place):
    empty = os.path.join(place, 'empty')
    os.mkdir(empty, 0o700)
    chown_pg(empty)
    absent = os.path.join(place, 'absent', 'data')
    for datadir in (empty, absent):
        result = ansible.run(MODULE, args_for(datadir, primary.upstream()), check_mode=True, diff=True)
        assert result['changed'] is True
        assert result['action'] == 'copied'
        assert result['size_estimate']['source'] == 'pg_database_size'
        assert result['size_estimate']['bytes'] > 4 * 1024 * 1024
        assert result['space']['needed_bytes'] < result['space']['available_bytes']
        assert result['diff']['after']['system_identifier'] == primary.system_identifier()
        assert '-X' in result['command'] and 'stream' in result['command']
    assert os.listdir(empty) == []
    assert not os.path.exists(os.path.dirname(absent))


def test_standby_from_primary_streams_over_tls(primary, standby):
    result = standby.build_result
    assert result['changed'] is True
    assert result['action'] == 'copied'
    assert result['system_identifier'] == primary.system_identifier()
    assert result['bytes_copied'] > 4 * 1024 * 1024
    assert result['duration_seconds'] > 0
    assert LSN_RE.match(result['start_lsn'])
    assert result['timeline'] == 1
    assert result['backup_from'] == 'primary'
    assert result['upstream_in_recovery'] is False
    assert result['upstream']['password'] == '********'
    assert result['moved_aside_to'] is None
    assert 'passfile=' in result['primary_conninfo']
    assert_no_password(result, standby.datadir)
    conf = auto_conf(standby.datadir)
    assert "passfile=%s" % primary.passfile in conf
    assert 'application_name=bb_standby' in conf
    assert 'sslmode=verify-full' in conf
    assert os.path.exists(os.path.join(standby.datadir, 'standby.signal'))

    assert wait_streaming(standby) == 'streaming'
    assert standby.scalar('SELECT pg_is_in_recovery()') is True
    assert primary.scalar("SELECT ssl FROM pg_stat_ssl JOIN pg_stat_replication USING (pid) "
                          "WHERE application_name = 'bb_standby'") is True
    primary.execute("INSERT INTO t VALUES (-1, 'after the copy')")
    assert standby.wait_for('SELECT (SELECT note FROM t WHERE id = -1)', 'after the copy') == 'after the copy'
    assert primary.scalar("SELECT state FROM pg_stat_replication WHERE application_name = 'bb_standby'") == 'streaming'


def test_rerun_on_a_running_standby_is_unchanged(primary, standby, ansible):
    args = args_for(standby.datadir, primary.upstream(password=REPLICATION_PASSWORD),
                    application_name='bb_standby')
    before = auto_conf(standby.datadir)
    for existing in ('fail', 'keep', 'remove'):
        args['existing'] = existing
        result = ansible.run(MODULE, args)
        assert result['changed'] is False, result['msg']
        assert result['action'] == 'unchanged'
        assert result['system_identifier'] == primary.system_identifier()
        assert result['bytes_copied'] == 0
        assert_no_password(result)
    check = ansible.run(MODULE, args, check_mode=True)
    assert check['changed'] is False
    assert auto_conf(standby.datadir) == before
    assert standby.is_running()


def test_changed_settings_on_an_existing_standby_are_converged(primary, standby, ansible):
    args = args_for(standby.datadir, primary.upstream(), application_name='bb_standby',
                    restore_command='/bin/false %f %p')
    check = ansible.run(MODULE, args, check_mode=True, diff=True)
    assert check['changed'] is True and check['action'] == 'configured'
    assert check['settings_changed'] == ['restore_command']
    assert 'restore_command' not in auto_conf(standby.datadir)
    result = ansible.run(MODULE, args)
    assert result['action'] == 'configured'
    assert "restore_command = '/bin/false %f %p'" in auto_conf(standby.datadir)
    args.pop('restore_command')
    assert ansible.run(MODULE, args)['settings_changed'] == ['restore_command']
    assert ansible.run(MODULE, args)['changed'] is False
    assert 'restore_command' not in auto_conf(standby.datadir)


def test_cascading_standby_from_a_standby_with_a_new_slot(servers, primary, standby, ansible):
    cascade = servers.new('bb_cascade')
    args = args_for(cascade.datadir, standby.upstream(), application_name='bb_cascade',
                    slot='bb_cascade', create_slot=True)
    result = ansible.run(MODULE, args)
    assert result['changed'] is True
    assert result['backup_from'] == 'standby'
    assert result['upstream_in_recovery'] is True
    assert result['slot_created'] is True
    assert result['system_identifier'] == primary.system_identifier()
    assert "primary_slot_name = 'bb_cascade'" in auto_conf(cascade.datadir)
    assert "port=%d" % standby.port in auto_conf(cascade.datadir)
    cascade.start_existing()
    assert wait_streaming(cascade) == 'streaming'
    primary.execute("INSERT INTO t VALUES (-2, 'through the cascade')")
    assert cascade.wait_for('SELECT (SELECT note FROM t WHERE id = -2)', 'through the cascade') == 'through the cascade'
    assert standby.wait_for("SELECT bool_or(active) FROM pg_replication_slots WHERE slot_name = 'bb_cascade'",
                            True) is True

    again = ansible.run(MODULE, args)
    assert again['changed'] is False and again['action'] == 'unchanged'


# -- an existing data directory -------------------------------------------------------

def test_existing_cluster_fail_leaves_it_intact(primary, ansible, place):
    datadir = os.path.join(place, 'data')
    sysid = initdb(datadir)
    before = tree_snapshot(datadir)
    result = ansible.run(MODULE, args_for(datadir, primary.upstream()), expect_failure=True)
    assert 'not empty and existing=fail' in result['msg']
    assert 'system identifier is %s' % sysid in result['msg']
    assert result['changed'] is False
    assert tree_snapshot(datadir) == before
    assert sysid_of(datadir) == sysid


def test_existing_keep(primary, standby, ansible, place):
    # A standby of the primary that is not running, then asked to follow the standby instead.
    datadir = os.path.join(place, 'data')
    ansible.run(MODULE, args_for(datadir, primary.upstream(), application_name='bb_keep'))
    before = tree_snapshot(datadir)
    same = ansible.run(MODULE, args_for(datadir, primary.upstream(), application_name='bb_keep', existing='keep'))
    assert same['changed'] is False and same['action'] == 'unchanged'
    other = ansible.run(MODULE, args_for(datadir, standby.upstream(), application_name='bb_keep', existing='keep'),
                        expect_failure=True)
    assert 'existing=keep' in other['msg']
    assert 'port is %d, expected %d' % (primary.port, standby.port) in other['msg']
    slot = ansible.run(MODULE, args_for(datadir, primary.upstream(), application_name='bb_keep', existing='keep',
                                        slot='elsewhere', create_slot=True), expect_failure=True)
    assert "slot is unset, expected 'elsewhere'" in slot['msg']
    assert tree_snapshot(datadir) == before
    assert not primary.scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'elsewhere'")

    stranger = os.path.join(place, 'stranger')
    sysid = initdb(stranger)
    result = ansible.run(MODULE, args_for(stranger, primary.upstream(), existing='keep'), expect_failure=True)
    assert 'system identifier is %s' % sysid in result['msg']
    assert 'no standby.signal' in result['msg']
    assert sysid_of(stranger) == sysid


def test_existing_move_aside_keeps_the_old_directory(primary, ansible, place):
    datadir = os.path.join(place, 'data')
    sysid = initdb(datadir)
    before = tree_snapshot(datadir)
    result = ansible.run(MODULE, args_for(datadir, primary.upstream(), existing='move_aside'))
    moved = result['moved_aside_to']
    assert result['changed'] is True
    assert re.match(re.escape(datadir) + r'\.pgha-\d{8}T\d{6}Z$', moved)
    assert tree_snapshot(moved) == before
    assert sysid_of(moved) == sysid
    assert sysid_of(datadir) == primary.system_identifier()
    assert os.path.exists(os.path.join(datadir, 'standby.signal'))


def test_existing_remove_replaces_the_contents(primary, ansible, place):
    datadir = os.path.join(place, 'data')
    initdb(datadir)
    with open(os.path.join(datadir, 'stray-file'), 'w') as handle:
        handle.write('old')
    result = ansible.run(MODULE, args_for(datadir, primary.upstream(), existing='remove'))
    assert result['changed'] is True
    assert result['moved_aside_to'] is None
    assert result['space']['reclaimable_bytes'] > 0
    assert sysid_of(datadir) == primary.system_identifier()
    assert not os.path.exists(os.path.join(datadir, 'stray-file'))
    assert os.listdir(place) == ['data']


def test_force_rebuild_of_a_standby_of_the_same_upstream(primary, ansible, place):
    datadir = os.path.join(place, 'data')
    first = ansible.run(MODULE, args_for(datadir, primary.upstream()))
    refused = ansible.run(MODULE, args_for(datadir, primary.upstream(), force_rebuild=True), expect_failure=True)
    assert 'force_rebuild needs existing=move_aside or existing=remove' in refused['msg']
    again = ansible.run(MODULE, args_for(datadir, primary.upstream(), force_rebuild=True, existing='move_aside'))
    assert again['changed'] is True and again['moved_aside_to']
    assert again['start_lsn'] != first['start_lsn']


def test_failed_copy_puts_the_moved_aside_directory_back(primary, ansible, place):
    datadir = os.path.join(place, 'data')
    sysid = initdb(datadir)
    before = tree_snapshot(datadir)
    result = ansible.run(MODULE, args_for(datadir, primary.upstream(), existing='move_aside', max_rate='32k',
                                          timeout=3), expect_failure=True)
    assert 'timed out after 3 s' in result['msg']
    assert 'the previous data directory is back in place' in result['msg']
    assert result['moved_aside_to'] is None
    assert result['changed'] is False
    assert tree_snapshot(datadir) == before
    assert sysid_of(datadir) == sysid
    assert os.listdir(place) == ['data']


# -- refusals: each says why and changes nothing --------------------------------------

def test_wrong_password(primary, ansible, place):
    datadir = os.path.join(place, 'data')
    result = ansible.run(MODULE, args_for(datadir, primary.upstream(passfile=None, password='not-the-password')),
                         expect_failure=True)
    assert 'refused the credentials' in result['msg']
    assert 'password authentication failed' in result['msg']
    assert 'not-the-password' not in json.dumps(result) and 'not-the-password' not in result['_stdout']
    assert not os.path.exists(datadir)


def test_unreachable_upstream(primary, ansible, place):
    datadir = os.path.join(place, 'data')
    result = ansible.run(MODULE, args_for(datadir, primary.upstream(port=free_port())), expect_failure=True)
    assert 'is unreachable' in result['msg']
    assert 'Connection refused' in result['msg']
    assert not os.path.exists(datadir)


def test_tls_verify_full_with_the_wrong_ca(primary, ansible, place):
    datadir = os.path.join(place, 'data')
    result = ansible.run(MODULE, args_for(datadir, primary.upstream(sslrootcert=primary.ca.server_cert)),
                         expect_failure=True)
    assert 'TLS with upstream' in result['msg'] and 'certificate verify failed' in result['msg']
    assert not os.path.exists(datadir)


def test_non_empty_directory_that_is_not_a_cluster(primary, ansible, place):
    datadir = os.path.join(place, 'data')
    os.makedirs(os.path.join(datadir, 'notes'))
    with open(os.path.join(datadir, 'important.txt'), 'w') as handle:
        handle.write('keep me')
    chown_pg(datadir)
    before = tree_snapshot(datadir)
    result = ansible.run(MODULE, args_for(datadir, primary.upstream()), expect_failure=True)
    assert 'not empty' in result['msg'] and 'not a PostgreSQL data directory' in result['msg']
    assert 'important.txt' in result['msg']
    keep = ansible.run(MODULE, args_for(datadir, primary.upstream(), existing='keep'), expect_failure=True)
    assert 'cannot be kept' in keep['msg']
    assert tree_snapshot(datadir) == before


def test_running_server_on_the_target(servers, primary, ansible):
    victim = servers.primary('bb_victim')
    victim.execute('CREATE TABLE precious (v int)')
    victim.execute('INSERT INTO precious VALUES (42)')
    with open(os.path.join(victim.datadir, 'postmaster.pid')) as handle:
        pid = int(handle.readline())
    for existing in ('remove', 'move_aside'):
        result = ansible.run(MODULE, args_for(victim.datadir, primary.upstream(), existing=existing),
                             expect_failure=True)
        assert 'a PostgreSQL server (pid %d) is running on %s' % (pid, victim.datadir) in result['msg']
    assert victim.is_running()
    assert victim.scalar('SELECT v FROM precious') == 42
    assert victim.system_identifier() != primary.system_identifier()


@pytest.fixture
def small_fs(servers):
    if os.geteuid() != 0:
        pytest.skip('mounting a tmpfs needs root')
    path = os.path.join(servers.base, 'small-fs')
    os.makedirs(path, exist_ok=True)
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=16m,mode=0755', 'tmpfs', path], check=True)
    try:
        chown_pg(path)
        yield path
    finally:
        subprocess.run(['umount', path], check=False)


def test_not_enough_free_space(primary, ansible, small_fs):
    datadir = os.path.join(small_fs, 'data')
    result = ansible.run(MODULE, args_for(datadir, primary.upstream(), wal_headroom='0'), expect_failure=True)
    assert 'not enough free space' in result['msg']
    assert re.search(r'needed [\d.]+ MiB \(\d+ bytes', result['msg'])
    assert re.search(r'available [\d.]+ MiB \(\d+ bytes', result['msg'])
    assert 'nothing was changed' in result['msg']
    assert os.listdir(small_fs) == []
    # The default WAL headroom (the upstream's max_wal_size, 1 GB) alone does not fit either.
    default = ansible.run(MODULE, args_for(datadir, primary.upstream()), expect_failure=True)
    assert 'WAL headroom 1.0 GiB' in default['msg']


def test_missing_slot_without_create_slot(primary, ansible, place):
    datadir = os.path.join(place, 'data')
    result = ansible.run(MODULE, args_for(datadir, primary.upstream(), slot='no_such_slot'), expect_failure=True)
    assert 'slot no_such_slot does not exist' in result['msg']
    assert not os.path.exists(datadir)


@pytest.mark.parametrize('extra, message', [
    ({'data_directory': 'relative/data'}, 'must be an absolute path'),
    ({'slot': 'Bad-Slot'}, 'not a valid replication slot name'),
    ({'max_rate': 'fast'}, 'is not a rate'),
    ({'max_rate': '10k'}, 'out of range'),
    ({'create_slot': True}, 'create_slot needs slot'),
    ({'wal_headroom': 'lots'}, 'not a size'),
    ({'space_margin_percent': -5}, 'cannot be negative'),
])
def test_bad_input_fails_before_anything(primary, ansible, place, extra, message):
    args = args_for(os.path.join(place, 'data'), primary.upstream())
    args.update(extra)
    result = ansible.run(MODULE, args, expect_failure=True)
    assert message in result['msg']
    assert os.listdir(place) == []


def test_password_without_passfile_is_stored_only_in_primary_conninfo(primary, ansible, place):
    datadir = os.path.join(place, 'data')
    result = ansible.run(MODULE, args_for(datadir, primary.upstream(passfile=None, password=REPLICATION_PASSWORD)))
    assert result['changed'] is True
    assert any('upstream.password without upstream.passfile' in w for w in result.get('warnings', []))
    assert_no_password(result)
    assert 'password=********' in result['primary_conninfo']
    assert 'password=%s' % REPLICATION_PASSWORD in auto_conf(datadir)
    assert oct(os.stat(os.path.join(datadir, 'postgresql.auto.conf')).st_mode & 0o777) == '0o600'
    again = ansible.run(MODULE, args_for(datadir, primary.upstream(passfile=None, password=REPLICATION_PASSWORD)))
    assert again['changed'] is False


# -- the size estimate for a replication-only role --------------------------------------

REPLICATION_ONLY_HBA = """\
local   all          all                      trust
local   replication  all                      trust
hostssl replication  replicator 127.0.0.1/32  scram-sha-256
hostssl all          postgres   127.0.0.1/32  scram-sha-256
host    all          all        0.0.0.0/0     reject
"""


def test_size_from_the_base_backup_estimate_for_a_replication_only_role(servers, ansible, place):
    server = servers.primary('bb_replonly')
    server.execute("CREATE TABLE filler AS SELECT g, repeat('y', 500) AS pad FROM generate_series(1, 20000) g")
    with open(os.path.join(server.datadir, 'pg_hba.conf'), 'w') as handle:
        handle.write(REPLICATION_ONLY_HBA)
    server.execute('SELECT pg_reload_conf()')
    time.sleep(0.5)
    datadir = os.path.join(place, 'data')
    check = ansible.run(MODULE, args_for(datadir, server.upstream()), check_mode=True)
    estimate = check['size_estimate']
    assert estimate['source'] == 'base_backup_estimate'
    assert 'pg_hba.conf' in estimate['why']
    true_size = server.scalar('SELECT sum(pg_database_size(oid))::bigint FROM pg_database')
    assert 0.5 * true_size < estimate['bytes'] < 2 * true_size
    refused = ansible.run(MODULE, args_for(datadir, server.upstream(), size_check='sql'), expect_failure=True)
    assert 'size_check=sql' in refused['msg']
    result = ansible.run(MODULE, args_for(datadir, server.upstream()))
    assert result['changed'] is True and result['system_identifier'] == server.system_identifier()
    # The aborted estimate left no backup behind on the upstream.
    assert server.scalar('SELECT count(*) FROM pg_stat_progress_basebackup') == 0

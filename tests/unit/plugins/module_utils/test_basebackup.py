# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the pure parts of plugins/module_utils/basebackup.py.

The parts that need servers (probes, the copy, the size estimate) are exercised by
tests/integration/test_pg_basebackup_standby.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat
import sys

import pytest

from ansible_collections.pgha.multidc.plugins.module_utils import basebackup as bb

UPSTREAM = {'host': 'db1.example.net', 'port': 5432, 'user': 'replicator', 'password': 's3cr:et\\pw',
            'passfile': None, 'sslmode': 'verify-full', 'sslrootcert': '/etc/ca.crt', 'sslcert': None,
            'sslkey': None, 'connect_timeout': 5}


@pytest.mark.parametrize('text, size', [
    ('0', 0), ('8192', 8192), ('16MB', 16 << 20), ('1GB', 1 << 30), ('512kB', 512 << 10),
    ('2TB', 2 << 40), ('1.5GB', 3 << 29), ('64 MB', 64 << 20), ('100B', 100), (4096, 4096),
])
def test_parse_size(text, size):
    assert bb.parse_size(text) == size


@pytest.mark.parametrize('text', ['', 'lots', '-1MB', '1 PB', None])
def test_parse_size_rejects(text):
    with pytest.raises(bb.BasebackupError, match='not a size'):
        bb.parse_size(text)


@pytest.mark.parametrize('text, normalised', [('32', '32'), ('500k', '500k'), ('50M', '50M'), ('1024M', '1024M')])
def test_parse_max_rate(text, normalised):
    assert bb.parse_max_rate(text) == normalised


@pytest.mark.parametrize('text, message', [
    ('fast', 'is not a rate'), ('50MB', 'is not a rate'), ('10k', 'out of range'), ('1025M', 'out of range'),
])
def test_parse_max_rate_rejects(text, message):
    with pytest.raises(bb.BasebackupError, match=message):
        bb.parse_max_rate(text)


@pytest.mark.parametrize('name, ok', [
    ('dc1_pg2', True), ('a' * 63, True), ('a' * 64, False), ('Bad', False), ('x-y', False),
    ("x'; DROP", False), ('', False),
])
def test_validate_slot_name(name, ok):
    if ok:
        assert bb.validate_slot_name(name) == name
    else:
        with pytest.raises(bb.BasebackupError):
            bb.validate_slot_name(name)


def test_copy_conninfo_never_carries_a_password():
    conninfo = bb.copy_conninfo(dict(UPSTREAM, passfile='/var/lib/postgresql/.pgpass'))
    assert 'password' not in conninfo and 's3cr' not in conninfo
    assert 'passfile' not in conninfo
    assert conninfo == ('host=db1.example.net port=5432 user=replicator sslmode=verify-full '
                        'sslrootcert=/etc/ca.crt connect_timeout=5')


def test_standby_conninfo_prefers_the_passfile():
    with_passfile = bb.standby_conninfo(dict(UPSTREAM, passfile='/pg/.pgpass'), 'dc1-pg2')
    assert 'passfile=/pg/.pgpass' in with_passfile and 's3cr' not in with_passfile
    assert 'application_name=dc1-pg2' in with_passfile
    without = bb.standby_conninfo(UPSTREAM, 'dc1-pg2')
    assert "password='s3cr:et\\\\pw'" in without


def test_standby_conninfo_bounds_the_wal_receivers_connection():
    # The WAL receiver ignores connect_timeout: tcp_user_timeout carries the same bound.
    assert bb.standby_conninfo(dict(UPSTREAM, passfile='/pg/.pgpass'), 'dc1_pg2') == (
        'host=db1.example.net port=5432 user=replicator passfile=/pg/.pgpass application_name=dc1_pg2 '
        'sslmode=verify-full sslrootcert=/etc/ca.crt connect_timeout=5 tcp_user_timeout=5000')
    assert 'tcp_user_timeout' not in bb.standby_conninfo(dict(UPSTREAM, connect_timeout=None), 'dc1_pg2')


def test_basebackup_command():
    argv = bb.basebackup_command('/usr/lib/postgresql/15/bin/pg_basebackup', '/data', UPSTREAM, slot='s1',
                                 create_slot=True, max_rate='50M', checkpoint='spread')
    assert argv[:3] == ['/usr/lib/postgresql/15/bin/pg_basebackup', '-D', '/data']
    for flag in (['-X', 'stream'], ['-c', 'spread'], ['-S', 's1'], ['-r', '50M']):
        index = argv.index(flag[0])
        assert argv[index:index + 2] == flag
    assert '-R' in argv and '--no-password' in argv and '-C' in argv
    assert not any('s3cr' in part for part in argv)
    plain = bb.basebackup_command('pg_basebackup', '/data', UPSTREAM)
    assert '-S' not in plain and '-C' not in plain and '-r' not in plain


def test_password_file_is_private_and_removed(tmp_path):
    with bb.password_file('s3cr:et\\pw', directory=str(tmp_path)) as path:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        with open(path) as handle:
            assert handle.read() == '*:*:*:*:s3cr\\:et\\\\pw\n'
    assert not os.path.exists(path)
    assert os.listdir(str(tmp_path)) == []
    with bb.password_file(None) as nothing:
        assert nothing is None
    with pytest.raises(bb.BasebackupError, match='line break'):
        with bb.password_file('a\nb', directory=str(tmp_path)):
            pass


def test_password_file_is_removed_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with bb.password_file('pw', directory=str(tmp_path)):
            raise RuntimeError('boom')
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize('text, kind', [
    ('FATAL:  password authentication failed for user "replicator"', 'credentials'),
    ('fe_sendauth: no password supplied', 'credentials'),
    ('FATAL:  no pg_hba.conf entry for host "10.0.0.1", user "r", database "postgres", SSL encryption', 'access'),
    ('FATAL:  pg_hba.conf rejects connection for host "127.0.0.1"', 'access'),
    ('connection to server at "x" (127.0.0.1), port 1 failed: Connection refused', 'unreachable'),
    ('could not translate host name "nope" to address: Name or service not known', 'unreachable'),
    ('timeout expired', 'unreachable'),
    ('SSL error: certificate verify failed', 'tls'),
    ('server certificate for "x" does not match host name "y"', 'tls'),
    ('something else entirely', 'error'),
])
def test_classify_libpq_error(text, kind):
    assert bb.classify_libpq_error(text) == kind


def test_upstream_error_never_shows_the_password():
    error = bb.upstream_error(UPSTREAM, 'FATAL:  password authentication failed (s3cr:et\\pw)')
    assert error.kind == 'credentials'
    assert 's3cr' not in str(error)
    assert 'refused the credentials' in str(error)
    assert 'replicator@db1.example.net:5432' in str(error)


def test_identity_and_mismatches():
    desired = bb.upstream_identity(UPSTREAM, 'dc1_pg2')
    assert desired == {'host': 'db1.example.net', 'port': 5432, 'user': 'replicator', 'slot': 'dc1_pg2'}
    current = bb.identity_from_settings({
        'primary_conninfo': "user=replicator host=DB1.example.net passfile='/a b/.pgpass' sslmode=verify-full",
        'primary_slot_name': 'dc1_pg2'})
    assert current['port'] == 5432
    assert bb.identity_mismatches(current, desired) == []
    other = bb.identity_from_settings({'primary_conninfo': 'host=db2 port=5433 user=replicator'})
    assert bb.identity_mismatches(other, desired) == [
        "host is 'db2', expected 'db1.example.net'", 'port is 5433, expected 5432',
        "slot is unset, expected 'dc1_pg2'"]


def test_standby_mismatches():
    upstream = {'system_identifier': '7', 'major': 15}
    desired = bb.upstream_identity(UPSTREAM)
    info = {'state': bb.STATE_CLUSTER, 'system_identifier': '7', 'major': 15, 'standby_signal': True,
            'settings': {'primary_conninfo': 'host=db1.example.net user=replicator'}}
    assert bb.standby_mismatches(info, upstream, desired) == []
    info.update(system_identifier='8', standby_signal=False, major=14)
    problems = bb.standby_mismatches(info, upstream, desired)
    assert any('system identifier is 8' in p for p in problems)
    assert any('PostgreSQL 14' in p for p in problems)
    assert any('no standby.signal' in p for p in problems)


def test_parse_backup_label():
    label = bb.parse_backup_label(
        'START WAL LOCATION: 0/5000028 (file 000000010000000000000005)\n'
        'CHECKPOINT LOCATION: 0/5000060\nBACKUP METHOD: streamed\nBACKUP FROM: standby\n'
        'START TIME: 2025-01-01 00:00:00 UTC\nLABEL: x\nSTART TIMELINE: 3\n')
    assert label == {'start_lsn': '0/5000028', 'checkpoint_lsn': '0/5000060', 'backup_from': 'standby',
                     'start_time': '2025-01-01 00:00:00 UTC', 'timeline': 3}
    assert bb.parse_backup_label('') == {}


def test_space_needed_and_check(tmp_path):
    assert bb.space_needed(1000, 10, 24) == 1124
    figures = bb.check_free_space(str(tmp_path / 'a' / 'b'), 1024, 10, 0)
    assert figures['path'] == str(tmp_path)
    assert figures['needed_bytes'] == 1126
    with pytest.raises(bb.BasebackupError) as info:
        bb.check_free_space(str(tmp_path), 1 << 60, 10, 1 << 30)
    message = str(info.value)
    assert 'not enough free space' in message and 'needed' in message and 'available' in message
    assert 'nothing was changed' in message


def test_estimate_size_sources():
    sql = {'bytes': 100, 'databases': 3, 'unreadable': []}
    assert bb.estimate_size('auto', sql, None, lambda: 1 / 0)['source'] == bb.SIZE_SOURCE_SQL
    fallback = bb.estimate_size('auto', None, 'no pg_hba.conf entry', lambda: 200)
    assert fallback == {'bytes': 200, 'source': bb.SIZE_SOURCE_BASE_BACKUP, 'why': 'no pg_hba.conf entry'}
    partial = bb.estimate_size('auto', dict(sql, unreadable=['secret']), None, lambda: 300)
    assert partial['bytes'] == 300 and 'secret' in partial['why']
    with pytest.raises(bb.BasebackupError, match='size_check=sql'):
        bb.estimate_size('sql', None, 'refused', lambda: 1)
    assert bb.estimate_size('base_backup', sql, None, lambda: 400)['bytes'] == 400


def test_inspect_data_directory_states(tmp_path):
    absent = bb.inspect_data_directory(str(tmp_path / 'none'))
    assert absent['state'] == bb.STATE_ABSENT
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert bb.inspect_data_directory(str(empty))['state'] == bb.STATE_EMPTY
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'notes.txt').write_text('x')
    found = bb.inspect_data_directory(str(other))
    assert found['state'] == bb.STATE_OTHER and found['entries'] == ['notes.txt']
    cluster = tmp_path / 'cluster'
    (cluster / 'global').mkdir(parents=True)
    (cluster / 'PG_VERSION').write_text('15\n')
    (cluster / 'global' / 'pg_control').write_bytes((1234567890123).to_bytes(8, sys.byteorder) + b'\0' * 16)
    (cluster / 'standby.signal').write_text('')
    (cluster / 'postgresql.auto.conf').write_text("primary_conninfo = 'host=db1 user=r'\nwork_mem = '4MB'\n")
    (cluster / 'postmaster.pid').write_text('999999999\n')
    info = bb.inspect_data_directory(str(cluster))
    assert info['state'] == bb.STATE_CLUSTER and info['major'] == 15
    assert info['system_identifier'] == '1234567890123'
    assert info['standby_signal'] is True
    assert info['settings'] == {'primary_conninfo': 'host=db1 user=r'}
    assert info['running_pid'] is None  # stale pid file
    afile = tmp_path / 'file'
    afile.write_text('x')
    with pytest.raises(bb.BasebackupError, match='not a directory'):
        bb.inspect_data_directory(str(afile))


def test_server_running_sees_a_live_postgres_like_process(tmp_path):
    (tmp_path / 'postmaster.pid').write_text('%d\n' % os.getpid())
    # This test process is python, not postgres: a reused pid is not a server.
    assert bb.server_running(str(tmp_path)) is None


def test_aside_name_and_move(tmp_path):
    import datetime
    data = tmp_path / 'data'
    data.mkdir()
    when = datetime.datetime(2025, 1, 2, 3, 4, 5)
    first = bb.aside_name(str(data), when)
    assert first == str(data) + '.pgha-20250102T030405Z'
    os.mkdir(first)
    assert bb.aside_name(str(data), when) == first + '-2'
    moved = bb.move_aside(str(data), when)
    assert moved == first + '-2' and not data.exists()


def test_clear_directory_does_not_follow_links(tmp_path):
    outside = tmp_path / 'outside'
    outside.mkdir()
    (outside / 'keep').write_text('x')
    data = tmp_path / 'data'
    (data / 'base').mkdir(parents=True)
    (data / 'base' / 'f').write_text('x')
    os.symlink(str(outside), str(data / 'pg_wal'))
    bb.clear_directory(str(data))
    assert os.listdir(str(data)) == []
    assert (outside / 'keep').exists()


@pytest.mark.parametrize('mode, expected', [(0o700, 0o700), (0o750, 0o750), (0o755, 0o700), (0o770, 0o700),
                                            (0o751, 0o700)])
def test_fix_directory_mode(tmp_path, mode, expected):
    path = tmp_path / 'd'
    path.mkdir()
    os.chmod(str(path), mode)
    bb.fix_directory_mode(str(path))
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == expected


def test_check_tablespace_locations(tmp_path):
    busy = tmp_path / 'busy'
    busy.mkdir()
    (busy / 'x').write_text('x')
    bb.check_tablespace_locations([{'name': 'free', 'location': str(tmp_path / 'nothing')},
                                   {'name': 'inplace', 'location': 'pg_tblspc/16384'}], str(tmp_path / 'data'))
    with pytest.raises(bb.BasebackupError, match='tablespace busy'):
        bb.check_tablespace_locations([{'name': 'busy', 'location': str(busy)}], str(tmp_path / 'data'))

# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/pgbackrest.py.

The info JSON and the error texts below were printed by pgBackRest 2.45 (Debian 12);
tests/integration/test_pgbackrest.py runs the real program on real servers.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json

import pytest

from ansible_collections.pgha.multidc.plugins.module_utils import pgbackrest as br

UTC = datetime.timezone.utc
TLS = {'ca_file': '/etc/pgbackrest/tls/ca.crt', 'cert_file': '/etc/pgbackrest/tls/host.crt',
       'key_file': '/etc/pgbackrest/tls/host.key'}
REPO_HOST = {'host': 'dc2-backup1', 'client_cn': 'dc2-backup1'}
CIPHER = 'K7pY2v9Qw4Zx8Rt1Ls6Hn3Bc'


def conf_lines(text, section):
    """The option lines of one [section] of a rendered pgbackrest.conf."""
    lines, inside = [], False
    for line in text.splitlines():
        if line.startswith('['):
            inside = line == '[%s]' % section
        elif inside and line:
            lines.append(line)
    return lines


# -- configuration ---------------------------------------------------------------------

@pytest.mark.parametrize('name', ['main', 'pgha', 'cluster-1', 'a.b_c', 'X' * 64])
def test_validate_stanza_accepts(name):
    assert br.validate_stanza(name) == name


@pytest.mark.parametrize('name', ['', '-main', 'a b', 'main;rm', 'X' * 65, None, 'näme'])
def test_validate_stanza_refuses(name):
    with pytest.raises(br.PgbackrestError, match='stanza'):
        br.validate_stanza(name)


@pytest.mark.parametrize('cpus, expected', [(1, 1), (2, 2), (3, 2), (4, 2), (8, 4), (16, 8), (64, 8), (None, 1)])
def test_default_process_max(cpus, expected):
    assert br.default_process_max(cpus) == expected


def test_render_conf_skips_none_spells_booleans_and_repeats_lists():
    text = br.render_conf([('global', {'a-b': True, 'c': False, 'd': None, 'e': ['x=1', 'y=2'], 'f': 3})])
    assert text == '# Managed by pgha.multidc\n\n[global]\na-b=y\nc=n\ne=x=1\ne=y=2\nf=3\n'


@pytest.mark.parametrize('options, message', [
    ({'Bad_Name': 1}, 'not a pgBackRest option name'),
    ({'ok': 'two\nlines'}, 'cannot span lines'),
])
def test_render_conf_refuses(options, message):
    with pytest.raises(br.PgbackrestError, match=message):
        br.render_conf([('global', options)])


def test_database_host_conf_with_repository_host():
    text = br.database_host_conf('main', '/var/lib/postgresql/15/main', repo_host=REPO_HOST, tls=TLS,
                                 archive_push_queue_max='4GiB')
    assert text.startswith('# Managed by pgha.multidc\n')
    glob = conf_lines(text, 'global')
    for line in ('repo1-host=dc2-backup1', 'repo1-host-type=tls', 'repo1-host-port=8432',
                 'repo1-host-ca-file=/etc/pgbackrest/tls/ca.crt', 'repo1-host-cert-file=/etc/pgbackrest/tls/host.crt',
                 'repo1-host-key-file=/etc/pgbackrest/tls/host.key', 'archive-async=y',
                 'spool-path=/var/spool/pgbackrest', 'archive-push-queue-max=4GiB', 'process-max=2',
                 'compress-type=zst', 'tls-server-auth=dc2-backup1=main', 'tls-server-address=*'):
        assert line in glob
    assert not [line for line in glob if line.startswith('repo1-host-config')]  # the default path
    # No repository path and no cipher on a database host that has a repository host.
    assert not [line for line in glob if line.startswith(('repo1-path', 'repo1-cipher'))]
    assert conf_lines(text, 'main') == ['pg1-path=/var/lib/postgresql/15/main', 'pg1-port=5432']


def test_database_host_conf_with_local_repository_and_cipher():
    text = br.database_host_conf('main', '/srv/pg', pg_port=5433, pg_socket_path='/run/pg', repo_path='/srv/repo',
                                 cipher_pass=CIPHER, archive_async=False, compress_type='lz4', compress_level=1,
                                 process_max=4, lock_path='/tmp/lock')
    glob = conf_lines(text, 'global')
    assert 'repo1-path=/srv/repo' in glob
    assert 'repo1-cipher-type=aes-256-cbc' in glob
    assert 'repo1-cipher-pass=%s' % CIPHER in glob
    assert 'compress-type=lz4' in glob and 'compress-level=1' in glob and 'process-max=4' in glob
    assert 'lock-path=/tmp/lock' in glob
    assert not [line for line in glob if line.startswith(('archive-async', 'spool-path', 'tls-', 'repo1-host'))]
    assert conf_lines(text, 'main') == ['pg1-path=/srv/pg', 'pg1-port=5433', 'pg1-socket-path=/run/pg']


@pytest.mark.parametrize('kwargs, message', [
    ({}, 'exactly one of repo_host'),
    ({'repo_path': '/r', 'repo_host': REPO_HOST, 'tls': TLS}, 'exactly one of repo_host'),
    ({'repo_host': REPO_HOST}, 'needs tls'),
    ({'repo_path': '/r', 'cipher_pass': 'short'}, 'at least 20 characters'),
    ({'repo_path': '/r', 'compress_type': 'xz'}, "compress_type 'xz'"),
    ({'repo_path': '/r', 'process_max': 0}, 'process_max 0'),
    ({'repo_path': '/r', 'process_max': True}, 'process_max True'),
])
def test_database_host_conf_refuses(kwargs, message):
    with pytest.raises(br.PgbackrestError, match=message):
        br.database_host_conf('main', '/srv/pg', **kwargs)


DATABASES = [{'host': 'dc1-pg1', 'path': '/var/lib/postgresql/15/main', 'client_cn': 'dc1-pg1'},
             {'host': 'dc1-pg2', 'path': '/var/lib/postgresql/15/main', 'client_cn': 'dc1-pg2', 'port': 5433,
              'tls_port': 8433}]


def test_repository_host_conf():
    text = br.repository_host_conf('main', '/var/lib/pgbackrest', DATABASES, TLS, cipher_pass=CIPHER,
                                   retention_full=4, retention_diff=14)
    glob = conf_lines(text, 'global')
    for line in ('repo1-path=/var/lib/pgbackrest', 'repo1-retention-full=4', 'repo1-retention-diff=14',
                 'backup-standby=y', 'start-fast=y', 'repo1-cipher-type=aes-256-cbc',
                 'repo1-cipher-pass=%s' % CIPHER, 'tls-server-auth=dc1-pg1=main', 'tls-server-auth=dc1-pg2=main'):
        assert line in glob
    stanza = conf_lines(text, 'main')
    assert stanza[:7] == ['pg1-host=dc1-pg1', 'pg1-host-type=tls', 'pg1-host-port=8432',
                          'pg1-host-ca-file=/etc/pgbackrest/tls/ca.crt',
                          'pg1-host-cert-file=/etc/pgbackrest/tls/host.crt',
                          'pg1-host-key-file=/etc/pgbackrest/tls/host.key',
                          'pg1-path=/var/lib/postgresql/15/main']
    assert 'pg2-host=dc1-pg2' in stanza and 'pg2-host-port=8433' in stanza and 'pg2-port=5433' in stanza


def test_config_paths_of_the_other_hosts_when_not_the_default():
    database = br.database_host_conf('main', '/srv/pg', repo_host=dict(REPO_HOST, config='/srv/repo.conf'), tls=TLS)
    assert 'repo1-host-config=/srv/repo.conf' in conf_lines(database, 'global')
    repository = br.repository_host_conf('main', '/r', [dict(DATABASES[0], config='/srv/db.conf')], TLS)
    assert 'pg1-host-config=/srv/db.conf' in conf_lines(repository, 'main')


def test_repository_host_conf_one_database_backs_up_from_it():
    text = br.repository_host_conf('main', '/r', DATABASES[:1], TLS)
    assert 'backup-standby=n' in conf_lines(text, 'global')


def test_repository_host_conf_needs_a_database():
    with pytest.raises(br.PgbackrestError, match='at least one database host'):
        br.repository_host_conf('main', '/r', [], TLS)


def test_extra_options_are_merged_last():
    text = br.database_host_conf('main', '/srv/pg', repo_path='/r', extra={'process-max': 6, 'archive-timeout': 30})
    glob = conf_lines(text, 'global')
    assert 'process-max=6' in glob and 'process-max=2' not in glob and 'archive-timeout=30' in glob


# -- PostgreSQL settings ---------------------------------------------------------------

def test_archive_and_restore_commands():
    assert br.archive_command('main') == \
        'pgbackrest --config=/etc/pgbackrest/pgbackrest.conf --stanza=main archive-push %p'
    assert br.restore_command('main', config='/srv/br.conf') == \
        'pgbackrest --config=/srv/br.conf --stanza=main archive-get %f "%p"'


@pytest.mark.parametrize('config', ['/a b.conf', "/a'b", '/a%p', '/a"b'])
def test_commands_refuse_a_config_path_the_shell_or_postgres_would_change(config):
    with pytest.raises(br.PgbackrestError, match='config path'):
        br.archive_command('main', config=config)


# -- recovery targets -------------------------------------------------------------------

@pytest.mark.parametrize('text, expected', [
    ('2026-12-07 08:15:00+00', '2026-12-07 08:15:00.000000+00'),
    ('2026-12-07T08:15:00Z', '2026-12-07 08:15:00.000000+00'),
    ('2026-12-07 08:15:00 UTC', '2026-12-07 08:15:00.000000+00'),
    ('2026-12-07 09:15:00.5+01', '2026-12-07 08:15:00.500000+00'),
    ('2026-12-07 03:45:00.123456-04:30', '2026-12-07 08:15:00.123456+00'),
    ('2026-12-07 13:45:00+0530', '2026-12-07 08:15:00.000000+00'),
])
def test_target_time_is_normalised_to_utc(text, expected):
    target = br.recovery_target(target_time=text)
    assert target['type'] == 'time'
    assert target['value'] == expected
    assert target['time'].utcoffset() is not None


@pytest.mark.parametrize('text, message', [
    ('2026-12-07 08:15:00', 'has no time zone'),
    ('07/12/2026 08:15', 'expected YYYY-MM-DD HH:MM:SS'),
    ('yesterday', 'expected YYYY-MM-DD HH:MM:SS'),
    ('2026-02-30 08:15:00+00', 'not a real date and time .*day is out of range'),
    ('2026-12-07 25:00:00+00', 'not a real date and time'),
])
def test_target_time_refused(text, message):
    with pytest.raises(br.PgbackrestError, match=message):
        br.recovery_target(target_time=text)


def test_target_lsn_name_and_latest():
    assert br.recovery_target(target_lsn='0/3000060') == {'type': 'lsn', 'value': '0/3000060', 'lsn': 0x3000060}
    assert br.recovery_target(target_lsn='a/b')['value'] == 'A/B'
    assert br.recovery_target(target_name='before-migration') == {'type': 'name', 'value': 'before-migration'}
    assert br.recovery_target(latest=True) == {'type': 'latest', 'value': None}


@pytest.mark.parametrize('kwargs, message', [
    ({}, 'exactly one recovery target .* got none'),
    ({'target_time': '2026-12-07 08:15:00+00', 'latest': True}, 'got target_time, latest'),
    ({'target_lsn': '0/1', 'target_name': 'x'}, 'got target_lsn, target_name'),
    ({'target_lsn': '0/XYZ'}, 'target_lsn: not an LSN'),
    ({'target_lsn': '3000060'}, 'target_lsn: not an LSN'),
    ({'target_name': 'n' * 64}, 'at most 63 bytes'),
])
def test_recovery_target_refused(kwargs, message):
    with pytest.raises(br.PgbackrestError, match=message):
        br.recovery_target(**kwargs)


def test_empty_strings_count_as_not_given():
    assert br.recovery_target(target_time='', target_lsn='', target_name='x')['type'] == 'name'


@pytest.mark.parametrize('label', ['20261207-075615F', '20261207-075615F_20261208-010000D',
                                   '20261207-075615F_20261208-010000I'])
def test_validate_label(label):
    assert br.validate_label(label) == label


@pytest.mark.parametrize('label', ['latest', '20261207-075615', '20261207-075615D', '../x', ''])
def test_validate_label_refuses(label):
    with pytest.raises(br.PgbackrestError, match='backup label'):
        br.validate_label(label)


# -- pgbackrest info ------------------------------------------------------------------------

def backup_entry(label, kind, start, stop, lsn_start, lsn_stop, prior=None, size=22988580, repo=4520167,
                 error=False):
    return {'archive': {'start': '000000010000000000000002', 'stop': '000000010000000000000003'},
            'backrest': {'format': 5, 'version': '2.45'}, 'database': {'id': 1, 'repo-key': 1},
            'error': error, 'info': {'delta': size, 'repository': {'delta': repo, 'size': repo}, 'size': size},
            'label': label, 'lsn': {'start': lsn_start, 'stop': lsn_stop}, 'prior': prior, 'reference': None,
            'timestamp': {'start': start, 'stop': stop}, 'type': kind}


FULL_START = 1796630175   # 2026-12-07T07:56:15Z
INFO = [{
    'archive': [{'database': {'id': 1, 'repo-key': 1}, 'id': '15-1',
                 'max': '000000010000000000000009', 'min': '000000010000000000000001'}],
    'backup': [
        backup_entry('20261207-075615F_20261207-080000D', 'diff', FULL_START + 225, FULL_START + 230, '0/6000028',
                     '0/6000100', prior='20261207-075615F', size=23000000, repo=40000),
        backup_entry('20261207-075615F', 'full', FULL_START, FULL_START + 2, '0/2000028', '0/3000050'),
    ],
    'cipher': 'none', 'db': [{'id': 1, 'repo-key': 1, 'system-id': 7716467831998378698, 'version': '15'}],
    'name': 'main', 'repo': [{'cipher': 'none', 'key': 1, 'status': {'code': 0, 'message': 'ok'}}],
    'status': {'code': 0, 'lock': {'backup': {'held': False}}, 'message': 'ok'}}]
MISSING = [{'archive': [], 'backup': [], 'cipher': 'none', 'db': [], 'name': 'main',
            'repo': [{'cipher': 'none', 'key': 1, 'status': {'code': 1, 'message': 'missing stanza path'}}],
            'status': {'code': 1, 'lock': {'backup': {'held': False}}, 'message': 'missing stanza path'}}]
NOW = datetime.datetime.fromtimestamp(FULL_START + 3600, UTC)


def test_parse_info_summary():
    summary = br.parse_info(json.dumps(INFO), 'main', NOW)
    assert summary['ok'] is True
    assert summary['status'] == {'code': 0, 'message': 'ok'}
    assert summary['backup_count'] == 2
    assert [backup['label'] for backup in summary['backups']] == ['20261207-075615F',
                                                                  '20261207-075615F_20261207-080000D']
    full = summary['latest_full']
    assert full['label'] == '20261207-075615F'
    assert full['start'] == '2026-12-07T07:56:15Z' and full['stop'] == '2026-12-07T07:56:17Z'
    assert full['duration_seconds'] == 2
    assert full['age_seconds'] == 3598
    assert full['database_size'] == 22988580 and full['repository_size'] == 4520167
    assert full['lsn_stop'] == '0/3000050' and full['wal_start'] == '000000010000000000000002'
    assert summary['latest_diff']['prior'] == '20261207-075615F'
    assert summary['latest']['type'] == 'diff'
    assert summary['latest_incr'] is None
    assert summary['oldest']['label'] == '20261207-075615F'
    assert summary['archive']['min_wal'] == '000000010000000000000001'
    assert summary['archive']['max_wal'] == '000000010000000000000009'
    assert summary['archive_id'] == '15-1'
    assert summary['database'] == {'system_id': 7716467831998378698, 'version': '15'}
    assert summary['backup_in_progress'] is False
    assert summary['problem'] is None
    assert summary['repositories'] == [{'key': 1, 'cipher': 'none', 'code': 0, 'message': 'ok'}]


def test_parse_info_repository_host_down():
    down = [{'archive': [], 'backup': [], 'cipher': 'none', 'db': [], 'name': 'main',
             'repo': [{'cipher': 'none', 'key': 1, 'status': {
                 'code': 99, 'message': "[HostConnectError] unable to connect to 'localhost:1': [111] Connection refused"}}],
             'status': {'code': 99, 'lock': {'backup': {'held': False}}, 'message': 'other'}}]
    summary = br.parse_info(json.dumps(down), 'main', NOW)
    assert summary['ok'] is False and summary['status'] == {'code': 99, 'message': 'other'}
    assert summary['problem'] == "[HostConnectError] unable to connect to 'localhost:1': [111] Connection refused"


def test_parse_info_missing_stanza_path():
    summary = br.parse_info(json.dumps(MISSING), 'main', NOW)
    assert summary['ok'] is False
    assert summary['status'] == {'code': 1, 'message': 'missing stanza path'}
    assert summary['backups'] == [] and summary['latest'] is None and summary['latest_full'] is None
    assert summary['archive']['min_wal'] is None and summary['database'] is None
    assert summary['archive_id'] is None
    assert summary['problem'] == 'missing stanza path'


def test_parse_info_takes_the_newest_database_after_an_upgrade():
    info = json.loads(json.dumps(INFO))
    info[0]['db'].append({'id': 2, 'repo-key': 1, 'system-id': 1, 'version': '17'})
    info[0]['archive'].append({'database': {'id': 2, 'repo-key': 1}, 'id': '17-2',
                               'max': '000000010000000000000004', 'min': '000000010000000000000002'})
    summary = br.parse_info(json.dumps(info), 'main', NOW)
    assert summary['database']['version'] == '17'
    assert summary['archive']['max_wal'] == '000000010000000000000004'
    assert [archive['id'] for archive in summary['archive']['ids']] == ['15-1', '17-2']
    assert summary['archive_id'] == '17-2'


# An archive id's directory after timeline 25 was abandoned for timeline 24 (a DR
# promotion the cluster went back from): 25's history file and segments, 24's own, and
# timeline 26 (0x1A) beyond.
ARCHIVE_DIR = ['archive.info', 'archive.info.copy', '00000018.history', '0000001800000000', '00000019.history',
               '0000001900000000', '0000001900000001', '0000001A.history', '0000000100000000', 'lost+found']


def test_archive_timeline():
    assert br.archive_timeline('00000019.history') == 25
    assert br.archive_timeline('0000001900000001') == 25
    assert br.archive_timeline('0000001A.history') == 26
    assert br.archive_timeline('000000190000000000000031') == 25
    assert br.archive_timeline('000000180000000000000031.partial') == 24
    for name in ('archive.info', '00000019.history.tmp', '000000190000000', '0000001g00000000', 'lost+found',
                 'archive_status', '000000190000000000000031.00000028.backup', '0000001900000000000000310'):
        assert br.archive_timeline(name) is None


def test_timelines_beyond_the_primarys():
    assert br.timelines_beyond(ARCHIVE_DIR, 24) == [
        '00000019.history', '0000001900000000', '0000001900000001', '0000001A.history']
    # The history file goes before the segments: without it no standby looks for them.
    assert br.timelines_beyond(ARCHIVE_DIR, 25) == ['0000001A.history']
    assert br.timelines_beyond(ARCHIVE_DIR, 26) == []
    assert br.timelines_beyond([], 1) == []
    # A standby's pg_wal after it fetched timeline 25's history from the archive.
    pg_wal = ['000000180000000000000030', '000000180000000000000031.partial', '00000019.history',
              '000000190000000000000031', 'archive_status']
    assert br.timelines_beyond(pg_wal, 24) == ['00000019.history', '000000190000000000000031']


@pytest.mark.parametrize('timeline', [None, 0, -3])
def test_timelines_beyond_needs_the_primarys_timeline(timeline):
    with pytest.raises(br.PgbackrestError, match="primary's timeline"):
        br.timelines_beyond(ARCHIVE_DIR, timeline)


@pytest.mark.parametrize('text, message', [('not json', 'did not print JSON'), ('[]', 'has no stanza main')])
def test_parse_info_refuses(text, message):
    with pytest.raises(br.PgbackrestError, match=message):
        br.parse_info(text, 'main', NOW)


# -- restore plan -------------------------------------------------------------------------

SUMMARY = br.parse_info(json.dumps(INFO), 'main', NOW)


def at(seconds_after_full_start):
    return datetime.datetime.fromtimestamp(FULL_START + seconds_after_full_start, UTC).strftime(
        '%Y-%m-%d %H:%M:%S+00')


@pytest.mark.parametrize('target, label', [
    (br.recovery_target(target_time=at(100)), '20261207-075615F'),
    (br.recovery_target(target_time=at(230)), '20261207-075615F_20261207-080000D'),
    (br.recovery_target(target_time=at(3000)), '20261207-075615F_20261207-080000D'),
    (br.recovery_target(target_lsn='0/5000000'), '20261207-075615F'),
    (br.recovery_target(target_lsn='0/7000000'), '20261207-075615F_20261207-080000D'),
    (br.recovery_target(target_name='x'), '20261207-075615F_20261207-080000D'),
    (br.recovery_target(latest=True), '20261207-075615F_20261207-080000D'),
])
def test_plan_restore_chooses_the_newest_backup_that_ended_before_the_target(target, label):
    assert br.plan_restore(target, SUMMARY, NOW)['label'] == label


def test_plan_restore_with_a_label():
    target = br.recovery_target(target_time=at(3000))
    assert br.plan_restore(target, SUMMARY, NOW, label='20261207-075615F')['label'] == '20261207-075615F'


@pytest.mark.parametrize('target, label, message', [
    (br.recovery_target(target_time=at(1)), None,
     r'before the end of the oldest backup 20261207-075615F \(ended 2026-12-07T07:56:17Z\)'),
    (br.recovery_target(target_time=at(7200)), None, 'is in the future'),
    (br.recovery_target(target_lsn='0/2000000'), None, r'before the end of the oldest backup 20261207-075615F \(ended at 0/3000050\)'),
    (br.recovery_target(target_time=at(100)), '20261207-075615F_20261207-080000D',
     'before the end of the backup 20261207-075615F_20261207-080000D'),
    (br.recovery_target(latest=True), '20261201-000000F', r'backup 20261201-000000F is not in stanza main \(its'),
    (br.recovery_target(latest=True), 'newest', 'backup label'),
])
def test_plan_restore_refuses(target, label, message):
    with pytest.raises(br.PgbackrestError, match=message):
        br.plan_restore(target, SUMMARY, NOW, label=label)


def test_plan_restore_skips_backups_with_errors_and_needs_one():
    info = json.loads(json.dumps(INFO))
    info[0]['backup'][0]['error'] = True
    summary = br.parse_info(json.dumps(info), 'main', NOW)
    assert br.plan_restore(br.recovery_target(latest=True), summary, NOW)['label'] == '20261207-075615F'
    with pytest.raises(br.PgbackrestError, match='no usable backup'):
        br.plan_restore(br.recovery_target(latest=True), br.parse_info(json.dumps(MISSING), 'main', NOW), NOW)


def test_restore_argv_time():
    target = br.recovery_target(target_time='2026-12-07 08:15:00+00')
    assert br.restore_argv('main', '/srv/pg', target, '20261207-075615F', config='/c.conf', delta=True,
                           archive_mode='off', process_max=3) == [
        'pgbackrest', '--config=/c.conf', '--stanza=main', '--pg1-path=/srv/pg', '--set=20261207-075615F',
        '--type=time', '--target=2026-12-07 08:15:00.000000+00', '--target-action=promote', '--delta',
        '--archive-mode=off', '--process-max=3', 'restore']


def test_restore_argv_latest_and_lsn():
    latest = br.restore_argv('main', '/srv/pg', br.recovery_target(latest=True), '20261207-075615F')
    assert '--type=default' in latest and not [arg for arg in latest if arg.startswith('--target')]
    lsn = br.restore_argv('main', '/srv/pg', br.recovery_target(target_lsn='0/3000060'), '20261207-075615F',
                          target_action='pause')
    assert lsn[5:8] == ['--type=lsn', '--target=0/3000060', '--target-action=pause']


def test_restore_argv_of_a_standby():
    argv = br.restore_argv('main', '/srv/pg', br.recovery_target(latest=True), '20261207-075615F', delta=True,
                           standby=True)
    assert argv[5:] == ['--type=standby', '--delta', 'restore']
    with pytest.raises(br.PgbackrestError, match='a standby is restored to the end of the archive'):
        br.restore_argv('main', '/srv/pg', br.recovery_target(target_lsn='0/3000060'), '20261207-075615F',
                        standby=True)


@pytest.mark.parametrize('kwargs, message', [
    ({'target_action': 'stop'}, "target_action 'stop'"),
    ({'archive_mode': 'on'}, "archive_mode 'on'"),
])
def test_restore_argv_refuses(kwargs, message):
    with pytest.raises(br.PgbackrestError, match=message):
        br.restore_argv('main', '/srv/pg', br.recovery_target(latest=True), '20261207-075615F', **kwargs)


def test_backup_argv():
    assert br.backup_argv('main', 'diff', config='/c.conf') == [
        'pgbackrest', '--config=/c.conf', '--stanza=main', '--type=diff', 'backup']
    with pytest.raises(br.PgbackrestError, match="backup type 'weekly'"):
        br.backup_argv('main', 'weekly')


# -- errors ------------------------------------------------------------------------------------

CHECK_MISSING_ARCHIVE_INFO = """\
ERROR: [055]: unable to load info file '/repo/archive/main/archive.info' or '/repo/archive/main/archive.info.copy':
       FileMissingError: unable to open missing file '/repo/archive/main/archive.info' for read
       FileMissingError: unable to open missing file '/repo/archive/main/archive.info.copy' for read
       HINT: archive.info cannot be opened but is required to push/get WAL segments.
       HINT: is archive_command configured correctly in postgresql.conf?
       HINT: has a stanza-create been performed?
"""
CHECK_NO_DATABASE = """\
WARN: unable to check pg1: [DbConnectError] unable to connect to 'dbname='postgres' port=1 host='/run/pg'': \
connection to server on socket "/run/pg/.s.PGSQL.1" failed: No such file or directory
      \tIs the server running locally and accepting connections on that socket?
ERROR: [027]: no database found
       HINT: check indexed pg-path/pg-host configurations
"""
WITH_LOG_PREFIX = """\
2026-12-07 07:56:20.414 P00   INFO: check command begin 2.45: --stanza=main
2026-12-07 07:56:20.900 P00  ERROR: [087]: archive_mode must be enabled
2026-12-07 07:56:20.901 P00   INFO: check command end: aborted with exception [087]
"""


def test_parse_errors_with_hints_and_continuation_lines():
    parsed = br.parse_errors(CHECK_MISSING_ARCHIVE_INFO)
    assert parsed['warnings'] == []
    (error,) = parsed['errors']
    assert error['code'] == 55 and error['kind'] == 'missing_info_file'
    assert error['message'].startswith("unable to load info file '/repo/archive/main/archive.info'")
    assert error['message'].count('FileMissingError') == 2
    assert error['hints'] == ['archive.info cannot be opened but is required to push/get WAL segments.',
                              'is archive_command configured correctly in postgresql.conf?',
                              'has a stanza-create been performed?']


def test_parse_errors_warning_then_error():
    parsed = br.parse_errors(CHECK_NO_DATABASE)
    assert len(parsed['warnings']) == 1
    assert parsed['warnings'][0].startswith('unable to check pg1: [DbConnectError]')
    assert 'Is the server running locally' in parsed['warnings'][0]
    assert parsed['errors'] == [{'code': 27, 'kind': 'no_database', 'message': 'no database found',
                                 'hints': ['check indexed pg-path/pg-host configurations']}]


def test_parse_errors_with_log_prefix_and_unknown_code():
    assert br.parse_errors(WITH_LOG_PREFIX)['errors'] == [
        {'code': 87, 'kind': 'archive_mode_off', 'message': 'archive_mode must be enabled', 'hints': []}]
    assert br.parse_errors('ERROR: [199]: something new')['errors'][0]['kind'] == 'error'
    assert br.parse_errors('') == {'errors': [], 'warnings': []}


def test_describe_failure():
    assert br.describe_failure('check', 27, CHECK_NO_DATABASE) == \
        'pgbackrest check failed: [027] no database found (hint: check indexed pg-path/pg-host configurations)'
    assert br.describe_failure('backup', 1, 'Segmentation fault\n\n') == \
        'pgbackrest backup failed with exit status 1: Segmentation fault'
    assert br.describe_failure('backup', 1, '') == 'pgbackrest backup failed with exit status 1'


# -- archive_status ------------------------------------------------------------------------

ARCHIVER_OK = {'archive_mode': 'on', 'archived_count': 12, 'last_archived_wal': '000000030000000000000019',
               'last_archived_age': 4.2, 'failed_count': 0, 'last_failed_wal': '', 'last_failed_age': None,
               'failing': False}


def _info(**changes):
    full = {'label': '20261207-112000F', 'type': 'full', 'stop': '2026-12-07T11:20:30Z', 'age_seconds': 7300,
            'database_size': 31457280, 'repository_size': 4194304, 'duration_seconds': 6}
    info = {'ok': True, 'backup_count': 1, 'oldest': full, 'latest_full': full, 'latest_diff': None,
            'latest_incr': None, 'archive': {'min_wal': '000000010000000000000003', 'max_wal': '000000030000000000000019'}}
    info.update(changes)
    return info


def test_archive_status_of_a_healthy_archive_and_repository():
    status = br.archive_status('dc1-pg1', ARCHIVER_OK, 'dc2-backup', _info())
    assert status['failing'] is False
    assert status['lines'][0] == 'WAL archive of dc1-pg1: last archived 000000030000000000000019 4 s ago, 0 failures'
    assert status['lines'][1] == ('backups in dc2-backup: 1; restores reach back to 2026-12-07T11:20:30Z '
                                  '(end of 20261207-112000F)')
    assert status['lines'][2] == ('  latest full: 20261207-112000F, 2.0 h ago, 30.0 MiB (4.0 MiB in the repository), '
                                  'took 6 s')
    assert status['lines'][3] == '  WAL in the repository: 000000010000000000000003 to 000000030000000000000019'
    assert status['lines'][4] == '  no scheduled verification of a backup has run yet (pgha-verify-backup.timer)'
    assert status['backups']['count'] == 1 and status['backups']['verification'] is None


def test_archive_status_shows_the_last_scheduled_verification():
    finished = 1796632800  # 2026-12-07T08:40:00Z
    passed = {'passed': True, 'label': '20261207-112000F', 'finished': '2026-12-07T08:40:00Z',
              'msg': 'backup 20261207-112000F of stanza main verified'}
    status = br.archive_status('dc1-pg1', ARCHIVER_OK, 'dc2-backup', _info(), verification=passed,
                               now=finished + 5400)
    assert status['lines'][4] == ('  latest scheduled verification: backup 20261207-112000F restored and checked, '
                                  '90 min ago')
    assert status['backups']['verification'] == {
        'passed': True, 'label': '20261207-112000F', 'finished': '2026-12-07T08:40:00Z', 'age_seconds': 5400,
        'msg': 'backup 20261207-112000F of stanza main verified'}
    failed = dict(passed, passed=False, msg='public.orders has 10 rows, fewer than the minimum 1000')
    status = br.archive_status('dc1-pg1', ARCHIVER_OK, 'dc2-backup', _info(), verification=failed, now=finished + 30)
    assert status['lines'][4] == ('  SCHEDULED VERIFICATION FAILED 30 s ago: public.orders has 10 rows, '
                                  'fewer than the minimum 1000')
    assert status['backups']['verification']['passed'] is False
    unreadable = {'unreadable': 'Permission denied: /var/lib/pgbackrest-verify/last.json'}
    status = br.archive_status('dc1-pg1', ARCHIVER_OK, 'dc2-backup', _info(), verification=unreadable)
    assert status['lines'][4] == ('  SCHEDULED VERIFICATION UNKNOWN: its last result could not be read: '
                                  'Permission denied: /var/lib/pgbackrest-verify/last.json')
    assert status['backups']['verification']['passed'] is False


def test_archive_status_names_a_timeline_newer_than_the_primarys():
    # The repository's newest segment is on timeline 3; a primary on timeline 2 went back from it.
    status = br.archive_status('dc1-pg1', ARCHIVER_OK, 'dc2-backup', _info(), timeline=2)
    assert status['newer_timeline'] == 3
    assert status['lines'][-1] == ("  ARCHIVE HOLDS TIMELINE 3, newer than the primary's 2: a standby that starts "
                                   "would try to follow it and stop; remove it with playbooks/prune_timelines.yml")
    for timeline in (3, 4, None):
        status = br.archive_status('dc1-pg1', ARCHIVER_OK, 'dc2-backup', _info(), timeline=timeline)
        assert status['newer_timeline'] is None and 'TIMELINE' not in ' '.join(status['lines'])
    empty = _info(archive={'min_wal': None, 'max_wal': None})
    assert br.archive_status('dc1-pg1', ARCHIVER_OK, 'dc2-backup', empty, timeline=1)['newer_timeline'] is None


def test_archive_status_names_a_newer_timeline_of_which_only_the_history_file_was_archived():
    # Newest segment on timeline 3, the primary's; the listing has timeline 4's history file.
    wal = {'min_wal': '000000010000000000000003', 'max_wal': '000000030000000000000019', 'timelines': [1, 2, 3, 4]}
    status = br.archive_status('dc1-pg1', ARCHIVER_OK, 'dc2-backup', _info(archive=wal), timeline=3)
    assert status['newer_timeline'] == 4
    assert status['lines'][-1].startswith("  ARCHIVE HOLDS TIMELINE 4, newer than the primary's 3")
    assert status['backups']['wal']['timelines'] == [1, 2, 3, 4]
    listed = dict(wal, timelines=[1, 2, 3])
    assert br.archive_status('dc1-pg1', ARCHIVER_OK, 'dc2-backup', _info(archive=listed), timeline=3)['newer_timeline'] is None


def test_parse_repo_ls_lists_the_timelines_of_history_files_and_segment_directories():
    listing = json.dumps({'.': {'type': 'path'}, '00000001.history': {'type': 'file'}, '0000000100000000': {'type': 'path'},
                          '0000000A00000000': {'type': 'path'}, '0000000C.history': {'type': 'file'},
                          'archive.info': {'type': 'file'}, 'archive.info.copy': {'type': 'file'}})
    assert br.parse_repo_ls(listing) == [1, 10, 12]
    assert br.parse_repo_ls('{".": {"type": "path"}}') == []
    for text, message in (('not json', 'did not print JSON'), ('[]', 'printed list, not a mapping')):
        with pytest.raises(br.PgbackrestError, match=message):
            br.parse_repo_ls(text)


def test_archive_status_failing():
    row = dict(ARCHIVER_OK, failed_count=3, last_failed_wal='00000003000000000000001A', last_failed_age=1.0,
               failing=True)
    status = br.archive_status('dc1-pg1', row, 'dc2-backup', _info())
    assert status['failing'] is True
    assert 'ARCHIVE FAILING since 1 s ago on 00000003000000000000001A' in status['lines'][0]
    assert '3 failures' in status['lines'][0]


def test_archive_status_an_old_failure_is_shown_but_not_failing():
    row = dict(ARCHIVER_OK, failed_count=1, last_failed_wal='000000030000000000000010', last_failed_age=600.0)
    status = br.archive_status('dc1-pg1', row)
    assert status['failing'] is False
    assert '1 failure' in status['lines'][0] and 'FAILING' not in status['lines'][0]
    assert status['lines'][1] == 'backups: repository (none) not read'


def test_archive_status_failing_before_anything_was_archived():
    row = dict(ARCHIVER_OK, archived_count=0, last_archived_wal='', last_archived_age=None, failed_count=2,
               last_failed_wal='000000010000000000000001', last_failed_age=3.0, failing=True)
    status = br.archive_status('dc1-pg1', row)
    assert status['failing'] is True
    assert status['lines'][0].startswith('WAL archive of dc1-pg1: nothing archived yet, 2 failures; ARCHIVE FAILING')


def test_archive_status_of_a_repository_that_cannot_be_read_and_of_archive_mode_off():
    unreadable = {'ok': False, 'problem': 'HostConnectError: unable to connect', 'status': {'code': 99, 'message': 'other'}}
    status = br.archive_status('dc1-pg1', dict(ARCHIVER_OK, archive_mode='off'), 'dc2-backup', unreadable)
    assert status['lines'] == ['WAL archive: off on dc1-pg1',
                               'backups: repository dc2-backup PROBLEM: HostConnectError: unable to connect']
    assert status['failing'] is False
    assert br.archive_status('dc1-pg1', None)['lines'][0] == 'WAL archive: not read (no primary answered)'

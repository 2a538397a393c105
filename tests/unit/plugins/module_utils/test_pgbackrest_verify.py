# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/pgbackrest_verify.py (the pure parts).

The verify report and log below were printed by pgBackRest 2.45 (Debian 12), once on a
good repository and once after bytes of a backup file were overwritten;
tests/integration/test_pgbackrest_verify.py runs the whole verification on real servers.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.pgha.multidc.plugins.module_utils import pgbackrest_verify as pv

REPORT_OK = """stanza: main
status: ok
  archiveId: 15-1, total WAL checked: 3, total valid WAL: 3
    missing: 0, checksum invalid: 0, size invalid: 0, other: 0
  backup: 20261207-111413F, status: valid, total files checked: 970, total valid files: 970
    missing: 0, checksum invalid: 0, size invalid: 0, other: 0
"""

REPORT_DAMAGED = """stanza: main
status: error
  archiveId: 15-1, total WAL checked: 2, total valid WAL: 2
    missing: 0, checksum invalid: 0, size invalid: 0, other: 0
  backup: 20261207-110614F, status: invalid, total files checked: 965, total valid files: 964
    missing: 0, checksum invalid: 1, size invalid: 0, other: 0
"""

LOG_DAMAGED = """INFO: verify command begin 2.45: --config=/etc/pgbackrest/pgbackrest.conf --exec-id=31588-9a820171 \
--log-level-console=off --log-level-stderr=info --no-log-timestamp --output=text --process-max=2 --stanza=main --verbose
INFO: invalid checksum '20261207-110614F/pg_data/base/5/112.zst'
INFO: stanza: main
      status: error
        archiveId: 15-1, total WAL checked: 2, total valid WAL: 2
          missing: 0, checksum invalid: 0, size invalid: 0, other: 0
        backup: 20261207-110614F, status: invalid, total files checked: 965, total valid files: 964
          missing: 0, checksum invalid: 1, size invalid: 0, other: 0
INFO: verify command end: completed successfully
"""

PARAMS = {'stanza': 'main', 'config': '/etc/pgbackrest/pgbackrest.conf', 'executable': 'pgbackrest', 'timeout': 60,
          'set': None, 'type': 'default', 'tables': 't=10, u', 'database': 'app', 'user': 'postgres',
          'amcheck': True, 'verify_repository': True, 'scratch_dir': None, 'port': None, 'process_max': None,
          'recovery_timeout': 60, 'pg_bindir': None}


def backup(label, error=False, size=10 * 1024 * 1024):
    return {'label': label, 'type': 'full', 'error': error, 'stop': '2026-12-07T08:00:00Z', 'database_size': size}


def summary(*backups):
    return {'stanza': 'main', 'status': {'code': 0, 'message': 'ok'}, 'backups': list(backups),
            'database': {'version': '15', 'system_id': 1}}


# -- inputs ----------------------------------------------------------------------------

@pytest.mark.parametrize('value, expected', [
    (None, []),
    ('', []),
    ({}, []),
    ({'public.orders': 1000, 'customers': None, 'x': ''},
     [{'name': 'public.orders', 'minimum': 1000}, {'name': 'customers', 'minimum': None},
      {'name': 'x', 'minimum': None}]),
    ('public.orders=1000, customers', [{'name': 'public.orders', 'minimum': 1000}, {'name': 'customers', 'minimum': None}]),
    ('a=1\nb = 2 \n\n', [{'name': 'a', 'minimum': 1}, {'name': 'b', 'minimum': 2}]),
    (['a', 'b=0'], [{'name': 'a', 'minimum': None}, {'name': 'b', 'minimum': 0}]),
    ({'"Mixed Case"': '7'}, [{'name': '"Mixed Case"', 'minimum': 7}]),
])
def test_parse_tables(value, expected):
    assert pv.parse_tables(value) == expected


@pytest.mark.parametrize('value, message', [
    ('t=many', "table t: the minimum row count 'many' is not a whole number"),
    ({'t': -1}, 'table t: the minimum row count -1 is negative'),
    ({'t': True}, 'is not a whole number'),
    ('t, t=3', 't is named twice'),
    ('=3', 'an empty table name'),
    ({'bad\x01name': 1}, 'is not a table name'),
])
def test_parse_tables_refuses(value, message):
    with pytest.raises(pv.VerifyError, match=message):
        pv.parse_tables(value)


@pytest.mark.parametrize('path', ['relative/dir', '', '/', '/srv', '/tmp', '/var/lib/postgresql', '/var/lib/pgbackrest/'])
def test_scratch_path_must_be_a_dedicated_absolute_path(path):
    with pytest.raises(pv.VerifyError):
        pv.check_scratch_path(path)


def test_scratch_path_accepted_and_normalised():
    assert pv.check_scratch_path('/var/lib/postgresql/pgha-verify/') == '/var/lib/postgresql/pgha-verify'


# -- pgbackrest verify -------------------------------------------------------------------

def test_verify_argv_separates_the_report_from_the_log():
    assert pv.verify_argv('main', '/etc/pgbackrest/pgbackrest.conf', process_max=2) == [
        'pgbackrest', '--config=/etc/pgbackrest/pgbackrest.conf', '--stanza=main', '--output=text', '--verbose',
        '--log-level-console=off', '--log-level-stderr=info', '--no-log-timestamp', '--process-max=2', 'verify']


def test_parse_verify_report_ok():
    report = pv.parse_verify_report(REPORT_OK)
    assert report['stanza'] == 'main' and report['status'] == 'ok'
    assert report['archives'] == [{'archive_id': '15-1', 'wal_checked': 3, 'wal_valid': 3, 'missing': 0,
                                   'checksum_invalid': 0, 'size_invalid': 0, 'other': 0}]
    assert report['backups'] == [{'label': '20261207-111413F', 'status': 'valid', 'files_checked': 970,
                                  'files_valid': 970, 'missing': 0, 'checksum_invalid': 0, 'size_invalid': 0,
                                  'other': 0}]
    assert report['notes'] == []


def test_parse_verify_report_damaged():
    report = pv.parse_verify_report(REPORT_DAMAGED)
    assert report['status'] == 'error'
    assert report['backups'][0]['status'] == 'invalid'
    assert report['backups'][0]['checksum_invalid'] == 1 and report['backups'][0]['files_valid'] == 964


def test_parse_verify_report_short_forms():
    # Without --verbose only the counters that are not zero are printed; an empty
    # repository and unusable info files give lines of their own.
    report = pv.parse_verify_report('stanza: main\nstatus: error\n  backup: 20261207-110614F, status: manifest missing, '
                                    'total files checked: 0, total valid files: 0\n'
                                    '  archiveId: 15-1, total WAL checked: 5, total valid WAL: 4\n'
                                    '    checksum invalid: 1\n  No usable backup.info file\n  backup: none found\n')
    assert report['backups'][0]['status'] == 'manifest missing'
    assert report['archives'][0]['checksum_invalid'] == 1 and report['archives'][0]['missing'] == 0
    assert report['notes'] == ['No usable backup.info file', 'backup: none found']
    assert pv.parse_verify_report('')['status'] is None


def test_parse_verify_log_names_the_files():
    log = pv.parse_verify_log(LOG_DAMAGED, 'main')
    assert log == {'files': [{'path': 'backup/main/20261207-110614F/pg_data/base/5/112.zst',
                              'reason': 'invalid checksum', 'counted': True}], 'warnings': []}


def test_parse_verify_log_other_forms():
    text = '\n'.join([
        '2026-12-07 11:06:20.766 P01   INFO: invalid size \'20261207-110614F_20261208-010000D/pg_data/global/1260\'',
        'P02   WARN: file missing \'15-1/0000000100000000/000000010000000000000007-0123456789abcdef0123456789abcdef01234567.zst\'',
        'P01   INFO: invalid verify 20261207-110614F/pg_data/base/5/1259.zst: [29] unable to decompress',
        'WARN: archive.info.copy does not match archive.info',
    ])
    log = pv.parse_verify_log(text, 'main')
    assert log['files'] == [
        {'path': 'backup/main/20261207-110614F_20261208-010000D/pg_data/global/1260', 'reason': 'invalid size',
         'counted': True},
        {'path': 'archive/main/15-1/0000000100000000/000000010000000000000007-0123456789abcdef0123456789abcdef01234567.zst',
         'reason': 'file missing', 'counted': False},
        {'path': 'backup/main/20261207-110614F/pg_data/base/5/1259.zst', 'reason': 'unreadable: [29] unable to decompress',
         'counted': True},
    ]
    assert log['warnings'] == ['archive.info.copy does not match archive.info']


def test_verify_problems():
    good = pv.verify_problems(pv.parse_verify_report(REPORT_OK), pv.parse_verify_log('', 'main'), 'main')
    assert good == []
    bad = pv.verify_problems(pv.parse_verify_report(REPORT_DAMAGED), pv.parse_verify_log(LOG_DAMAGED, 'main'), 'main')
    assert bad == ['1 damaged file(s) in the repository: backup/main/20261207-110614F/pg_data/base/5/112.zst '
                   '(invalid checksum)', 'backup(s) 20261207-110614F invalid']
    # A missing WAL segment is only a warning of pgBackRest's; an error status without a
    # named file still fails, with what the report says.
    only_notes = pv.verify_problems(pv.parse_verify_report('stanza: main\nstatus: error\n  No usable backup.info file\n'),
                                    pv.parse_verify_log('', 'main'), 'main')
    assert only_notes == ['No usable backup.info file']
    assert pv.verify_problems(pv.parse_verify_report(''), pv.parse_verify_log('', 'main'), 'main') == [
        'pgbackrest verify printed no report (stanza main)']


# -- the backup and the restore -----------------------------------------------------------

def test_choose_backup():
    backups = summary(backup('20261201-010000F'), backup('20261202-010000F_20261203-010000D'),
                      backup('20261207-010000F', error=True))
    assert pv.choose_backup(backups)['label'] == '20261202-010000F_20261203-010000D'
    assert pv.choose_backup(backups, '20261201-010000F')['label'] == '20261201-010000F'
    # Named, a backup pgBackRest marks in error is verified all the same (it will say why).
    assert pv.choose_backup(backups, '20261207-010000F')['label'] == '20261207-010000F'
    with pytest.raises(pv.VerifyError, match='backup 20200101-000000F is not in stanza main'):
        pv.choose_backup(backups, '20200101-000000F')
    with pytest.raises(pv.PgbackrestError, match='backup label'):
        pv.choose_backup(backups, 'latest')
    with pytest.raises(pv.VerifyError, match='stanza main has no backup to verify'):
        pv.choose_backup(summary())


def test_space():
    needed = pv.space_needed(1024 ** 3)
    assert needed == int(1024 ** 3 * 1.1) + 256 * 1024 ** 2
    assert pv.space_problem(needed, needed, '/srv') is None
    assert 'not enough free space for the scratch copy at /srv' in pv.space_problem(needed, needed - 1, '/srv')


def test_restore_argv():
    layout = pv.scratch_layout('/srv/verify')
    assert pv.restore_argv('main', '/etc/pgbackrest/pgbackrest.conf', layout, '20261207-010000F') == [
        'pgbackrest', '--config=/etc/pgbackrest/pgbackrest.conf', '--stanza=main', '--reset-pg1-host',
        '--pg1-path=/srv/verify/data', '--set=20261207-010000F', '--type=default', '--archive-mode=off',
        '--tablespace-map-all=/srv/verify/tablespaces', 'restore']
    immediate = pv.restore_argv('main', '/c', layout, '20261207-010000F', 'immediate', process_max=4)
    assert immediate[-4:] == ['--tablespace-map-all=/srv/verify/tablespaces', '--target-action=promote',
                              '--process-max=4', 'restore']
    with pytest.raises(pv.VerifyError, match="type 'time'"):
        pv.restore_argv('main', '/c', layout, '20261207-010000F', 'time')


def test_scratch_restore_command_only_reads():
    command = pv.scratch_restore_command('main', '/etc/pgbackrest/pgbackrest.conf', '/srv/verify/data')
    assert command == ('pgbackrest --config=/etc/pgbackrest/pgbackrest.conf --stanza=main --reset-pg1-host '
                       '--pg1-path=/srv/verify/data --no-archive-async archive-get %f "%p"')
    with pytest.raises(pv.VerifyError, match='no spaces'):
        pv.scratch_restore_command('main', '/etc/pgbackrest/my conf', '/srv/verify/data')


def test_the_throwaway_server_never_archives_and_listens_on_no_address():
    layout = pv.scratch_layout('/srv/verify')
    settings = dict(pv.server_settings(layout, 54321, 'pgbackrest archive-get'))
    for key in ('archive_command', 'archive_library', 'recovery_end_command', 'archive_cleanup_command',
                'listen_addresses', 'synchronous_standby_names', 'primary_conninfo', 'shared_preload_libraries'):
        assert settings[key] == '', key
    assert settings['archive_mode'] == 'off' and settings['hot_standby'] == 'off'
    assert settings['unix_socket_directories'] == '/srv/verify/run' and settings['port'] == '54321'
    argv = pv.postgres_argv('/usr/lib/postgresql/15/bin', layout, 54321, 'pgbackrest archive-get')
    assert argv[:3] == ['/usr/lib/postgresql/15/bin/postgres', '-D', '/srv/verify/data']
    assert '-c' in argv and 'archive_mode=off' in argv and 'hba_file=/srv/verify/pg_hba.conf' in argv


def test_counts():
    assert pv.parse_count('1500\n') == 1500
    assert pv.parse_count('pgha-verify: no such table\n') is None
    with pytest.raises(pv.VerifyError, match='unexpected output'):
        pv.parse_count('')
    tables = pv.parse_tables('t=1501, u=42, v, nosuch')
    counts = {'t': 1500, 'u': 42, 'v': 0, 'nosuch': None}
    assert pv.count_problems(tables, counts, 'app') == [
        'table t has 1500 rows, fewer than the minimum 1501', 'table nosuch does not exist in database app']


def test_count_script_passes_the_name_as_a_literal():
    # The name is a psql variable expanded as a quoted literal, read by to_regclass.
    assert "to_regclass(:'table')" in pv.COUNT_SCRIPT
    assert 'FROM :pgha_rel' in pv.COUNT_SCRIPT


# -- the scratch directory ---------------------------------------------------------------

def test_scratch_state(tmp_path):
    path = str(tmp_path / 'scratch')
    assert pv.scratch_state(path) == pv.SCRATCH_ABSENT
    os.makedirs(path)
    assert pv.scratch_state(path) == pv.SCRATCH_EMPTY
    with open(os.path.join(path, 'precious'), 'w') as handle:
        handle.write('x')
    assert pv.scratch_state(path) == pv.SCRATCH_OTHER
    with open(os.path.join(path, pv.MARKER), 'w') as handle:
        handle.write('x')
    assert pv.scratch_state(path) == pv.SCRATCH_OURS
    link = str(tmp_path / 'link')
    os.symlink(path, link)
    assert pv.scratch_state(link) == pv.SCRATCH_OTHER


# -- the plan ------------------------------------------------------------------------------

def test_prepare_refuses_root(monkeypatch, tmp_path):
    monkeypatch.setattr(pv.os, 'geteuid', lambda: 0)
    with pytest.raises(pv.VerifyError, match='not as root'):
        pv.prepare(dict(PARAMS, scratch_dir=str(tmp_path / 's')), summary(backup('20261207-010000F')))


def test_prepare_and_describe(monkeypatch, tmp_path):
    monkeypatch.setattr(pv.os, 'geteuid', lambda: 1000)
    params = dict(PARAMS, scratch_dir=str(tmp_path / 'scratch'))
    plan = pv.prepare(params, summary(backup('20261207-010000F')), lambda major, explicit, program: '/pg/%s/bin' % major)
    assert plan['bindir'] == '/pg/15/bin'
    assert plan['tables'] == [{'name': 't', 'minimum': 10}, {'name': 'u', 'minimum': None}]
    assert plan['commands']['verify'][-1] == 'verify' and plan['commands']['restore'][-1] == 'restore'
    steps = pv.describe_plan(params, plan)
    assert steps[0].startswith('pgbackrest verify of stanza main')
    assert 'restore backup 20261207-010000F (full, ended 2026-12-07T08:00:00Z, 10.0 MiB)' in steps[1]
    assert steps[3] == 'count the rows of t (at least 10), u in database app'
    assert steps[-2:] == ['pg_amcheck --all', 'stop the server and remove %s' % params['scratch_dir']]
    assert not os.path.exists(params['scratch_dir'])  # prepare changes nothing


def test_prepare_refusals(monkeypatch, tmp_path):
    monkeypatch.setattr(pv.os, 'geteuid', lambda: 1000)

    def missing(major, explicit, program):
        raise ValueError('no postgres for PostgreSQL %s' % major)

    params = dict(PARAMS, scratch_dir=str(tmp_path / 'scratch'))
    with pytest.raises(pv.VerifyError, match='the backup is of PostgreSQL 15, whose server binaries'):
        pv.prepare(params, summary(backup('20261207-010000F')), missing)
    with pytest.raises(pv.VerifyError, match='not enough free space'):
        pv.prepare(params, summary(backup('20261207-010000F', size=1024 ** 6)), lambda *args: '/pg')
    os.makedirs(params['scratch_dir'])
    with open(os.path.join(params['scratch_dir'], 'precious'), 'w') as handle:
        handle.write('x')
    with pytest.raises(pv.VerifyError, match='is not a scratch directory of pgbackrest_verify'):
        pv.prepare(params, summary(backup('20261207-010000F')), lambda *args: '/pg')

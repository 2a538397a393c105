# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/fence.py (pgha.multidc.pg_fence)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import pwd
import stat

import pytest

from ansible_collections.pgha.multidc.plugins.module_utils.datadir import parse_controldata
from ansible_collections.pgha.multidc.plugins.module_utils.fence import (
    FenceError, command_error, controldata_summary, data_directory_owner, fence_file_state,
    missing_directories, owner_environment, parse_unit_show, pg_ctl_stop_argv, plan_steps,
    run_as_owner, unit_active, unit_masked, validate_unit_name, write_fence_file)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason='needs root (ownership root:root, privilege drop)')

SHOW_RUNNING = """LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=enabled
"""
SHOW_FENCED = """LoadState=masked
ActiveState=inactive
SubState=dead
UnitFileState=masked
"""


# -- the unit ----------------------------------------------------------------------

def test_unit_names():
    assert validate_unit_name('postgresql@15-main.service') == 'postgresql@15-main.service'
    assert validate_unit_name('postgresql@15-main') == 'postgresql@15-main'
    for bad in ('', '--now', 'a b', '../x.service', 'x\n'):
        with pytest.raises(FenceError):
            validate_unit_name(bad)


def test_parse_unit_show():
    assert parse_unit_show(SHOW_RUNNING) == {'LoadState': 'loaded', 'ActiveState': 'active',
                                             'SubState': 'running', 'UnitFileState': 'enabled'}
    # A value may hold '=' (ExecStart=...); blank and stray lines are ignored.
    assert parse_unit_show('\nnoise\nDescription=a=b\n') == {'Description': 'a=b'}
    assert parse_unit_show('') == {} and parse_unit_show(None) == {}


def test_only_a_persistent_mask_counts():
    assert unit_masked(parse_unit_show(SHOW_FENCED)) is True
    # Masked under /run only: gone after a reboot, so it is masked again persistently.
    assert unit_masked({'LoadState': 'masked', 'UnitFileState': 'masked-runtime'}) is False
    assert unit_masked(parse_unit_show(SHOW_RUNNING)) is False
    assert unit_masked({'LoadState': 'not-found', 'UnitFileState': ''}) is False


def test_active_states():
    for state in ('active', 'activating', 'deactivating', 'reloading'):
        assert unit_active({'ActiveState': state}) is True
    for state in ('inactive', 'failed', '', None):
        assert unit_active({'ActiveState': state}) is False
    assert unit_active({}) is False


# -- deciding the steps ------------------------------------------------------------

def test_plan_on_a_running_primary():
    steps = plan_steps(False, parse_unit_show(SHOW_RUNNING), 4242)
    assert steps == {'write_fence_file': True, 'mask': True, 'stop': True, 'shutdown_survivor': False}


def test_plan_of_a_handover_stops_without_masking():
    steps = plan_steps(False, parse_unit_show(SHOW_RUNNING), 4242, mask=False)
    assert steps == {'write_fence_file': True, 'mask': False, 'stop': True, 'shutdown_survivor': False}


def test_plan_on_a_fenced_host_does_nothing():
    steps = plan_steps(True, parse_unit_show(SHOW_FENCED), None)
    assert steps == {'write_fence_file': False, 'mask': False, 'stop': False, 'shutdown_survivor': False}


def test_plan_predicts_a_survivor_the_unit_does_not_know():
    # A postmaster started by hand (pg_ctl) while the unit is inactive survives the stop.
    steps = plan_steps(True, {'ActiveState': 'inactive', 'UnitFileState': 'enabled'}, 4242)
    assert steps == {'write_fence_file': False, 'mask': True, 'stop': False, 'shutdown_survivor': True}


def test_plan_stops_a_pending_automatic_restart():
    steps = plan_steps(True, {'ActiveState': 'activating', 'SubState': 'auto-restart',
                              'UnitFileState': 'enabled'}, None)
    assert steps['stop'] is True and steps['mask'] is True


# -- the fence file ----------------------------------------------------------------

def test_missing_directories_top_down(tmp_path):
    target = tmp_path / 'a' / 'b' / 'fenced'
    assert missing_directories(str(target)) == [str(tmp_path / 'a'), str(tmp_path / 'a' / 'b')]
    assert missing_directories(str(tmp_path / 'fenced')) == []


def test_fence_file_state(tmp_path):
    path = tmp_path / 'fenced'
    assert fence_file_state(str(path), 'x\n') == {'exists': False, 'current': None, 'ok': False}
    path.write_text('old\n')
    os.chmod(str(path), 0o644)
    state = fence_file_state(str(path), 'x\n')
    assert state['exists'] is True and state['current'] == 'old\n' and state['ok'] is False
    path.write_text('x\n')
    assert fence_file_state(str(path), 'x\n')['ok'] is (os.geteuid() == 0)
    os.chmod(str(path), 0o600)
    assert fence_file_state(str(path), 'x\n')['ok'] is False
    # Something that is not a regular file is replaced, never read through.
    os.unlink(str(path))
    os.symlink('/etc/hostname', str(path))
    assert fence_file_state(str(path), 'x\n') == {'exists': True, 'current': None, 'ok': False}


@needs_root
def test_write_fence_file_creates_directories_and_is_atomic(tmp_path):
    old_umask = os.umask(0o077)  # the modes do not depend on the caller's umask
    try:
        path = tmp_path / 'pgha' / 'run' / 'fenced'
        write_fence_file(str(path), u'fenced \u2013 failover\n')
    finally:
        os.umask(old_umask)
    assert path.read_text(encoding='utf-8') == u'fenced \u2013 failover\n'
    for item, mode in ((path, 0o644), (path.parent, 0o755), (path.parent.parent, 0o755)):
        st = os.stat(str(item))
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, mode)
    assert fence_file_state(str(path), u'fenced \u2013 failover\n')['ok'] is True
    # Rewritten in place of a symbolic link (the link is replaced, its target untouched).
    os.unlink(str(path))
    target = tmp_path / 'target'
    target.write_text('keep\n')
    os.symlink(str(target), str(path))
    write_fence_file(str(path), 'again\n')
    assert not os.path.islink(str(path)) and path.read_text() == 'again\n' and target.read_text() == 'keep\n'
    assert sorted(os.listdir(str(path.parent))) == ['fenced']  # no temporary file left


def test_write_fence_file_error(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('')
    with pytest.raises(FenceError, match='cannot write the fence file'):
        write_fence_file(str(blocker / 'fenced'), 'x')


# -- running pg_ctl as the owner ---------------------------------------------------

def test_pg_ctl_stop_argv():
    assert pg_ctl_stop_argv('/usr/lib/postgresql/15/bin', '/var/lib/postgresql/15/main', 30) == [
        '/usr/lib/postgresql/15/bin/pg_ctl', 'stop', '-D', '/var/lib/postgresql/15/main',
        '-m', 'immediate', '-w', '-t', '30']


def test_owner_environment_inherits_nothing(monkeypatch):
    monkeypatch.setenv('PGPASSWORD', 'secret')
    monkeypatch.setenv('PGDATA', '/elsewhere')
    env = owner_environment({'uid': 110, 'gid': 118, 'name': 'postgres', 'home': '/var/lib/postgresql'})
    assert env == {'HOME': '/var/lib/postgresql', 'USER': 'postgres', 'LOGNAME': 'postgres',
                   'PATH': '/usr/local/bin:/usr/bin:/bin', 'LC_ALL': 'C', 'LANG': 'C'}
    assert owner_environment({'uid': 5000, 'gid': 5000, 'name': None, 'home': None}) == {
        'HOME': '/', 'PATH': '/usr/local/bin:/usr/bin:/bin', 'LC_ALL': 'C', 'LANG': 'C'}


@needs_root
def test_run_as_owner_drops_root(tmp_path, monkeypatch):
    nobody = pwd.getpwnam('nobody')
    datadir = tmp_path / 'data'
    datadir.mkdir()
    os.chown(str(datadir), nobody.pw_uid, nobody.pw_gid)
    owner = data_directory_owner(str(datadir))
    assert owner == {'uid': nobody.pw_uid, 'gid': nobody.pw_gid, 'name': 'nobody', 'home': nobody.pw_dir or '/'}
    monkeypatch.setenv('PGPASSWORD', 'secret')
    rc, out, err = run_as_owner(['/bin/sh', '-c', 'id -u; id -g; id -G; pwd; env'], owner, 10)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == str(nobody.pw_uid) and lines[1] == str(nobody.pw_gid)
    assert '0' not in lines[2].split()  # root's supplementary groups are gone
    assert lines[3] == '/'
    env = dict(line.split('=', 1) for line in lines[4:] if '=' in line)
    assert 'PGPASSWORD' not in env and env['USER'] == 'nobody' and env['LC_ALL'] == 'C'


def test_run_as_owner_refuses_root():
    with pytest.raises(FenceError, match='do not run as root'):
        run_as_owner(['/bin/true'], {'uid': 0, 'gid': 0, 'name': 'root', 'home': '/root'}, 5)


@needs_root
def test_run_as_owner_timeout(tmp_path):
    nobody = pwd.getpwnam('nobody')
    owner = {'uid': nobody.pw_uid, 'gid': nobody.pw_gid, 'name': 'nobody', 'home': '/'}
    rc, _out, err = run_as_owner(['/bin/sleep', '30'], owner, 1)
    assert rc == -1 and 'timed out after 1 s' in err


def test_data_directory_owner_missing(tmp_path):
    with pytest.raises(FenceError, match='cannot read the owner'):
        data_directory_owner(str(tmp_path / 'nope'))


# -- results -----------------------------------------------------------------------

def test_controldata_summary_drops_raw():
    summary = controldata_summary(parse_controldata('Database system identifier: 7301\n'
                                                    'Database cluster state: in production\n'))
    assert 'raw' not in summary
    assert summary['system_identifier'] == '7301' and summary['state'] == 'in production'
    assert summary['clean_shutdown'] is False
    assert controldata_summary(None) == {}


def test_command_error():
    assert command_error(['systemctl', 'mask', 'x.service'], 1, '', 'Failed to mask unit: Access denied\n') == (
        'systemctl mask x.service failed (exit code 1): Failed to mask unit: Access denied')
    assert command_error(['true'], 2, '', '') == 'true failed (exit code 2)'
    long = command_error(['x'], 1, 'a' * 1000, '')
    assert long.endswith('a' * 400) and '...' in long and len(long) < 450

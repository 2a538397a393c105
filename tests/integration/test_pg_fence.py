"""pg_fence against real PostgreSQL servers, as root, with a stand-in for systemctl.

systemd does not run outside the lab containers, so a fake ``systemctl`` first on PATH
keeps the unit's state in a JSON file, records every call, and can stop the server for
real like the unit would. Everything else is real: the fence file, the postmaster that
survives the stop and is shut down by pg_ctl (run by the module as postgres), the control
file and the end of WAL read from disk; and the task file playbooks/tasks/fence_node.yml
run by ansible-playbook on localhost, to check the __pgha_op_fence it records.
"""

import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from ansible_collections.pgha.multidc.plugins.module_utils.lsn import parse_lsn
from pgharness import BINDIR, PG_USER, REPO, controldata

MODULE = os.path.join(REPO, 'plugins', 'modules', 'pg_fence.py')
SERVICE = 'postgresql@15-test.service'

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='pg_fence runs as root')

FAKE_SYSTEMCTL = textwrap.dedent('''\
    #!{python}
    # Stand-in for systemctl (tests/integration/test_pg_fence.py): the unit's state in
    # state.json next to this script, every call appended to calls.jsonl.
    import json, os, subprocess, sys
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, 'calls.jsonl'), 'a') as handle:
        handle.write(json.dumps(sys.argv[1:]) + '\\n')
    with open(os.path.join(here, 'state.json')) as handle:
        state = json.load(handle)
    verb, unit = sys.argv[1], sys.argv[-1]
    if verb == 'show':
        print('LoadState=%s' % ('masked' if state['masked'] else 'loaded'))
        print('ActiveState=%s' % ('active' if state['active'] else 'inactive'))
        print('SubState=%s' % ('running' if state['active'] else 'dead'))
        print('UnitFileState=%s' % ('masked' if state['masked'] else 'enabled'))
    elif verb == 'mask':
        if state.get('mask_fails'):
            sys.stderr.write('Failed to mask unit: File /etc/systemd/system/%s already exists.\\n' % unit)
            sys.exit(1)
        state['masked'] = True
        sys.stderr.write('Created symlink /etc/systemd/system/%s -> /dev/null.\\n' % unit)
    elif verb == 'stop':
        if state.get('stop_command'):
            subprocess.run(state['stop_command'], check=False, capture_output=True)
        state['active'] = False
    else:
        sys.stderr.write('fake systemctl: unexpected %r\\n' % sys.argv[1:])
        sys.exit(2)
    with open(os.path.join(here, 'state.json'), 'w') as handle:
        json.dump(state, handle)
''')


class FakeSystemctl:
    """A directory to put first on PATH, with the fake systemctl and its state."""

    def __init__(self, directory, **state):
        self.bindir = str(directory)
        os.makedirs(self.bindir, exist_ok=True)
        script = os.path.join(self.bindir, 'systemctl')
        with open(script, 'w') as handle:
            handle.write(FAKE_SYSTEMCTL.format(python=sys.executable))
        os.chmod(script, 0o755)
        initial = {'masked': False, 'active': False}
        initial.update(state)
        with open(os.path.join(self.bindir, 'state.json'), 'w') as handle:
            json.dump(initial, handle)
        open(os.path.join(self.bindir, 'calls.jsonl'), 'w').close()

    def calls(self):
        with open(os.path.join(self.bindir, 'calls.jsonl')) as handle:
            return [json.loads(line) for line in handle if line.strip()]

    def state(self):
        with open(os.path.join(self.bindir, 'state.json')) as handle:
            return json.load(handle)

    def env(self):
        return dict(os.environ, PATH=self.bindir + ':' + os.environ.get('PATH', '/usr/bin:/bin'),
                    PYTHONPATH=os.path.join(REPO, 'collections'))


def run_module(fake, args, workdir, check_mode=False, diff=False, expect_failure=False):
    """Run plugins/modules/pg_fence.py as Ansible would run it on the host (as root, its
    arguments in a file); return its JSON result."""
    payload = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    argsfile = os.path.join(str(workdir), 'args.json')
    with open(argsfile, 'w') as handle:
        json.dump({'ANSIBLE_MODULE_ARGS': payload}, handle)
    proc = subprocess.run([sys.executable, MODULE, argsfile], capture_output=True, text=True,
                          env=fake.env(), cwd='/', timeout=300, check=False)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError('pg_fence printed no JSON (rc %d):\n%s\n%s' % (proc.returncode, proc.stdout, proc.stderr))
    if bool(result.get('failed')) != expect_failure:
        raise AssertionError('pg_fence: expected %s, got:\n%s' % (
            'failure' if expect_failure else 'success', json.dumps(result, indent=2)))
    return result


def postmaster_alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    with open('/proc/%d/stat' % pid) as handle:  # a zombie is gone too
        return handle.read().split(')')[-1].split()[0] != 'Z'


def postmaster_pid(server):
    with open(os.path.join(server.datadir, 'postmaster.pid')) as handle:
        return int(handle.readline())


def write_rows(server, table, rows=1000):
    """Committed rows; returns the WAL position flushed with them."""
    server.execute('CREATE TABLE %s (id int, note text)' % table)
    server.execute("INSERT INTO %s SELECT g, repeat('x', 100) FROM generate_series(1, %d) g" % (table, rows))
    return server.scalar('SELECT pg_current_wal_flush_lsn()::text')


def args_for(server, fence_file, **extra):
    args = {'data_directory': server.datadir, 'service': SERVICE, 'fence_file': str(fence_file),
            'fence_text': '# Fenced by test_pg_fence.\n', 'pg_bindir': BINDIR}
    args.update(extra)
    return args


def mode_of(path):
    st = os.stat(str(path))
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def test_fence_a_postmaster_that_survives_the_stop(servers, tmp_path):
    """The unit says active but its stop does not reach the postmaster (started with
    pg_ctl here): check mode changes nothing; the real run writes the fence file, masks
    then stops the unit, shuts the postmaster down as postgres and reads where its WAL
    ends; a rerun changes nothing."""
    server = servers.primary('fence_survivor')
    flushed = write_rows(server, 'before_fence')
    pid = postmaster_pid(server)
    fake = FakeSystemctl(tmp_path / 'bin', active=True)
    fence_file = tmp_path / 'pgha' / 'state' / 'fenced'
    args = args_for(server, fence_file)

    predicted = run_module(fake, args, tmp_path, check_mode=True, diff=True)
    assert predicted['changed'] is True
    assert (predicted['fence_file_changed'], predicted['masked_changed'], predicted['stopped']) == (True, True, True)
    assert predicted['killed_survivor'] is False  # the unit is active: its stop is expected to end it
    assert predicted['was_running'] is True
    assert predicted['diff']['before'] == {'fence_file': None, 'masked': False, 'active': True, 'postmaster_pid': pid}
    assert predicted['diff']['after']['masked'] is True and predicted['diff']['after']['postmaster_pid'] is None
    assert predicted['controldata']['state'] == 'in production'
    assert predicted['wal_end'] is None and 'a server runs on' in predicted['wal_end_error']
    assert not (tmp_path / 'pgha').exists()
    assert [call[0] for call in fake.calls()] == ['show']
    assert fake.state() == {'masked': False, 'active': True}
    assert postmaster_alive(pid) and server.is_running()

    result = run_module(fake, args, tmp_path)
    assert result['changed'] is True
    assert (result['fence_file_changed'], result['masked_changed'], result['stopped']) == (True, True, True)
    assert result['killed_survivor'] is True and result['was_running'] is True
    # The fence file, and the directories it needed, root-owned.
    assert fence_file.read_text() == '# Fenced by test_pg_fence.\n'
    assert mode_of(fence_file) == (0, 0, 0o644)
    assert mode_of(fence_file.parent) == (0, 0, 0o755) and mode_of(fence_file.parent.parent) == (0, 0, 0o755)
    # Masked before it was stopped (after the check mode run's and this run's reads).
    assert fake.calls()[1:] == [['show', '--property=LoadState,ActiveState,SubState,UnitFileState', SERVICE],
                                ['mask', SERVICE], ['stop', SERVICE]]
    assert fake.state() == {'masked': True, 'active': False}
    # The survivor is gone: pg_ctl stop -m immediate worked as postgres.
    assert not postmaster_alive(pid)
    assert not server.is_running()
    # Read from disk after the immediate shutdown: no clean shutdown, everything flushed is there.
    assert result['controldata']['state'] == 'in production'
    assert result['controldata']['clean_shutdown'] is False
    assert 'raw' not in result['controldata']
    assert result['controldata']['system_identifier'] == controldata(server.datadir)['Database system identifier']
    assert result['wal_end_error'] is None
    wal_end = result['wal_end']
    assert wal_end['exact'] is True and wal_end['timeline'] == 1
    assert parse_lsn(wal_end['lsn']) >= parse_lsn(flushed)
    assert parse_lsn(wal_end['start']) == parse_lsn(result['controldata']['redo_lsn'])
    mtime = os.stat(str(fence_file)).st_mtime_ns

    again = run_module(fake, args, tmp_path)
    assert again['changed'] is False
    assert (again['fence_file_changed'], again['masked_changed'], again['stopped'],
            again['killed_survivor'], again['was_running']) == (False, False, False, False, False)
    assert again['wal_end'] == wal_end and again['controldata'] == result['controldata']
    assert fake.calls()[4:] == [['show', '--property=LoadState,ActiveState,SubState,UnitFileState', SERVICE]]
    assert os.stat(str(fence_file)).st_mtime_ns == mtime

    # Another text (a later run of the playbook): only the file is rewritten.
    retext = run_module(fake, dict(args, fence_text='# Fenced again.\n'), tmp_path)
    assert retext['changed'] is True and retext['fence_file_changed'] is True
    assert (retext['masked_changed'], retext['stopped'], retext['killed_survivor']) == (False, False, False)
    assert fence_file.read_text() == '# Fenced again.\n'


def test_the_unit_stop_ends_the_server(servers, tmp_path):
    """The usual case: systemd's stop ends the postmaster (a fast shutdown here), nothing
    survives; the WAL ends right after the shutdown checkpoint."""
    server = servers.primary('fence_unit_stop')
    flushed = write_rows(server, 'before_stop')
    pid = postmaster_pid(server)
    stop = ['runuser', '-u', PG_USER, '--', os.path.join(BINDIR, 'pg_ctl'), 'stop', '-D', server.datadir,
            '-m', 'fast', '-w']
    fake = FakeSystemctl(tmp_path / 'bin', active=True, stop_command=stop)
    fence_file = tmp_path / 'fenced'

    result = run_module(fake, args_for(server, fence_file), tmp_path)
    assert result['changed'] is True and result['stopped'] is True
    assert result['killed_survivor'] is False and result['was_running'] is True
    assert not postmaster_alive(pid)
    assert [call[0] for call in fake.calls()] == ['show', 'mask', 'stop']
    control = result['controldata']
    assert control['state'] == 'shut down' and control['clean_shutdown'] is True
    assert parse_lsn(control['checkpoint_lsn']) >= parse_lsn(flushed)
    assert result['wal_end']['exact'] is True
    assert parse_lsn(result['wal_end']['lsn']) > parse_lsn(control['checkpoint_lsn'])


def test_a_handover_stops_without_masking_and_reads_from_the_shutdown_checkpoint(servers, tmp_path):
    """mask=false (switchover.yml): the unit is stopped, not masked, so that an aborted
    handover can start it again; the WAL end is read from the shutdown checkpoint record,
    which ends right after it (nothing after a clean stop)."""
    server = servers.primary('fence_handover')
    write_rows(server, 'before_handover')
    stop = ['runuser', '-u', PG_USER, '--', os.path.join(BINDIR, 'pg_ctl'), 'stop', '-D', server.datadir,
            '-m', 'fast', '-w']
    fake = FakeSystemctl(tmp_path / 'bin', active=True, stop_command=stop)

    result = run_module(fake, args_for(server, tmp_path / 'fenced', mask=False, wal_end_start='checkpoint'), tmp_path)
    assert result['stopped'] is True and result['masked_changed'] is False
    assert [call[0] for call in fake.calls()] == ['show', 'stop']
    control = result['controldata']
    assert control['state'] == 'shut down'
    assert result['wal_end']['start'] == control['checkpoint_lsn']
    assert parse_lsn(result['wal_end']['lsn']) > parse_lsn(control['checkpoint_lsn'])
    assert (tmp_path / 'fenced').read_text() == '# Fenced by test_pg_fence.\n'


def test_an_unreadable_end_of_wal_does_not_fail_the_fence(servers, tmp_path):
    """pg_waldump that says nothing usable: the fence is done, the module succeeds with
    wal_end null and the reason in wal_end_error; the control file is still read."""
    server = servers.primary('fence_no_waldump')
    server.stop()
    bindir = tmp_path / 'pgbin'
    bindir.mkdir()
    for program in ('pg_ctl', 'pg_controldata'):
        os.symlink(os.path.join(BINDIR, program), str(bindir / program))
    waldump = bindir / 'pg_waldump'
    waldump.write_text('#!/bin/sh\nexit 1\n')
    os.chmod(str(waldump), 0o755)
    fake = FakeSystemctl(tmp_path / 'bin')

    result = run_module(fake, args_for(server, tmp_path / 'fenced', pg_bindir=str(bindir)), tmp_path)
    assert result['changed'] is True and result['fence_file_changed'] is True and result['masked_changed'] is True
    assert result['stopped'] is False and result['killed_survivor'] is False and result['was_running'] is False
    assert result['wal_end'] is None
    assert 'cannot tell where the WAL ends' in result['wal_end_error']
    assert result['controldata']['state'] == 'shut down'
    assert (tmp_path / 'fenced').exists() and fake.state()['masked'] is True

    # wal_end=false: only the control file, no error.
    plain = run_module(fake, args_for(server, tmp_path / 'fenced', pg_bindir=str(bindir), wal_end=False), tmp_path)
    assert plain['changed'] is False and plain['wal_end'] is None and plain['wal_end_error'] is None
    assert plain['controldata']['state'] == 'shut down'


def test_a_unit_that_cannot_be_masked_is_still_stopped_then_fails(servers, tmp_path):
    """A failed step does not keep the others from running: the postmaster is shut down,
    then the module fails with the mask error."""
    server = servers.primary('fence_mask_fails')
    pid = postmaster_pid(server)
    fake = FakeSystemctl(tmp_path / 'bin', mask_fails=True)
    result = run_module(fake, args_for(server, tmp_path / 'fenced'), tmp_path, expect_failure=True)
    assert 'the fence is incomplete' in result['msg'] and 'Failed to mask unit' in result['msg']
    assert result['masked_changed'] is False
    assert result['killed_survivor'] is True and not postmaster_alive(pid)
    assert result['fence_file_changed'] is True and (tmp_path / 'fenced').exists()
    assert result['wal_end']['exact'] is True  # read all the same


def test_not_a_data_directory(tmp_path):
    """Nothing runs there: the fence is done and the read error is reported, not fatal."""
    fake = FakeSystemctl(tmp_path / 'bin')
    empty = tmp_path / 'empty'
    empty.mkdir()
    result = run_module(fake, {'data_directory': str(empty), 'service': SERVICE,
                               'fence_file': str(tmp_path / 'fenced')}, tmp_path)
    assert result['changed'] is True and result['controldata'] == {} and result['wal_end'] is None
    assert 'no PG_VERSION' in result['wal_end_error']
    assert (tmp_path / 'fenced').read_text() == 'Fenced by pgha.multidc.pg_fence.\n'


def test_fence_node_tasks_record_the_fence(servers, tmp_path):
    """playbooks/tasks/fence_node.yml through ansible-playbook on localhost (as root, become
    with su: no sudo here): one pg_fence call, and __pgha_op_fence as failover.yml reads it."""
    server = servers.primary('fence_tasks')
    flushed = write_rows(server, 'before_tasks')
    pid = postmaster_pid(server)
    fake = FakeSystemctl(tmp_path / 'bin', active=True)
    out = tmp_path / 'fence.json'
    playbook = [{
        'hosts': 'localhost', 'gather_facts': False, 'connection': 'local',
        'vars': {'__pgha_pg_datadir': server.datadir, '__pgha_pg_service': SERVICE,
                 '__pgha_pg_bindir': BINDIR, '__pgha_op_fence_path': str(tmp_path / 'pgha' / 'fenced'),
                 '__pgha_op_fence_text': '# Fenced by the task file test.\n',
                 '__pgha_op_node': {'running': False}},
        'tasks': [{'name': 'Fence', 'ansible.builtin.import_tasks': os.path.join(REPO, 'playbooks', 'tasks', 'fence_node.yml')},
                  {'name': 'Emit', 'ansible.builtin.copy': {'content': '{{ __pgha_op_fence | to_json }}', 'dest': str(out)}}],
    }]
    path = tmp_path / 'play.yml'
    path.write_text(json.dumps(playbook))
    env = dict(fake.env(), ANSIBLE_CONFIG=os.path.join(REPO, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_LOCAL_TEMP=str(tmp_path / 'tmp'), ANSIBLE_REMOTE_TMP=str(tmp_path / 'tmp'))
    proc = subprocess.run([os.path.join(REPO, '.venv', 'bin', 'ansible-playbook'), '-i', 'localhost,', str(path),
                           '-e', 'ansible_become_method=su',
                           '-e', 'ansible_python_interpreter=' + os.path.join(REPO, '.venv', 'bin', 'python')],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    fence = json.loads(out.read_text())
    assert sorted(fence) == ['controldata', 'killed_survivor', 'wal_end', 'wal_end_error', 'was_running']
    assert fence['was_running'] is True and fence['killed_survivor'] is True
    assert fence['wal_end_error'] is None
    assert parse_lsn(fence['wal_end']['lsn']) >= parse_lsn(flushed)
    assert 'raw' not in fence['controldata'] and fence['controldata']['system_identifier']
    assert not postmaster_alive(pid)
    assert [call[0] for call in fake.calls()] == ['show', 'mask', 'stop']
    assert (tmp_path / 'pgha' / 'fenced').read_text() == '# Fenced by the task file test.\n'
    assert 'TASK [Fence the node' in proc.stdout and proc.stdout.count('TASK [') == 3

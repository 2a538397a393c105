"""pg_node_config on real servers: files replaced, checked and reloaded once, slots
created and dropped, idempotence, check mode, a file with an error put back without a
reload, an active slot kept, and a server that does not run."""

import glob
import os

import pytest

# The primary (nodecfg_primary) and its standby (nodecfg_standby, streaming through the
# slot nodecfg_standby) come from conftest.py.
SERVER_PREFIX = 'nodecfg'


def read(path):
    with open(path) as handle:
        return handle.read()


def slots(server):
    return dict(server.execute('SELECT slot_name, active FROM pg_replication_slots'))


@pytest.fixture
def conf(primary):
    """The primary's postgresql.conf and pg_hba.conf as they are; put back at the end."""
    paths = {name: os.path.join(primary.datadir, name) for name in ('postgresql.conf', 'pg_hba.conf')}
    saved = {name: read(path) for name, path in paths.items()}
    yield paths, saved
    for name, path in paths.items():
        with open(path, 'w') as handle:
            handle.write(saved[name])
    for backup in glob.glob(os.path.join(primary.datadir, '*.conf.*~')):
        os.unlink(backup)
    primary.execute('SELECT pg_reload_conf()')
    primary.wait_for("SELECT current_setting('work_mem')", '4MB', timeout=10)


def args(server, paths, saved, work_mem=None, hba_extra='', **extra):
    files = [{'path': paths['pg_hba.conf'], 'content': saved['pg_hba.conf'] + hba_extra}]
    if work_mem:
        files.append({'path': paths['postgresql.conf'], 'mode': '0644',
                      'content': saved['postgresql.conf'] + "work_mem = '%s'\n" % work_mem})
    return dict(server.login(), files=files, **extra)


def test_files_and_slots_in_one_call_then_nothing_to_do(ansible, primary, standby, conf):
    paths, saved = conf
    before = primary.scalar('SELECT pg_conf_load_time()')
    follower_line = 'hostssl replication all 192.0.2.7/32 scram-sha-256\n'
    request = args(primary, paths, saved, work_mem='7MB', hba_extra=follower_line, slots=['dc9_pg1'])
    result = ansible.run('pg_node_config', request)
    assert result['changed'] is True and result['reloaded'] is True
    assert sorted(result['files']) == sorted(paths.values())
    assert result['slots_created'] == ['dc9_pg1'] and result['slots_dropped'] == []
    assert len(result['backups']) == 2 and all(read(b) == saved[os.path.basename(b).split('.conf')[0] + '.conf']
                                               for b in result['backups'])
    assert primary.scalar("SELECT current_setting('work_mem')") == '7MB'
    assert primary.scalar('SELECT pg_conf_load_time()') > before
    assert primary.scalar("SELECT count(*) FROM pg_hba_file_rules WHERE address = '192.0.2.7'") == 1
    assert oct(os.stat(paths['postgresql.conf']).st_mode & 0o777) == '0o644'
    assert oct(os.stat(paths['pg_hba.conf']).st_mode & 0o777) == '0o640'
    assert slots(primary)['dc9_pg1'] is False
    assert primary.scalar("SELECT restart_lsn IS NOT NULL FROM pg_replication_slots WHERE slot_name = 'dc9_pg1'")

    loaded = primary.scalar('SELECT pg_conf_load_time()')
    again = ansible.run('pg_node_config', request)
    assert again['changed'] is False and again['reloaded'] is False
    assert again['files'] == [] and again['slots_created'] == [] and again['queries'] == []
    assert primary.scalar('SELECT pg_conf_load_time()') == loaded

    # The slot of a host that no longer follows this one goes; the standby's slot is in use.
    former = ['dc9_pg1', 'nodecfg_standby', 'dc9_pg2']
    dropped = ansible.run('pg_node_config',
                          args(primary, paths, saved, work_mem='7MB', hba_extra=follower_line, drop_slots=former))
    assert dropped['changed'] is True and dropped['slots_dropped'] == ['dc9_pg1']
    assert dropped['slots_kept_active'] == ['nodecfg_standby']
    assert any('nodecfg_standby is in use' in w for w in dropped['warnings'])
    assert 'dc9_pg1' not in slots(primary) and slots(primary)['nodecfg_standby'] is True


def test_check_mode_changes_nothing(ansible, primary, conf):
    paths, saved = conf
    result = ansible.run('pg_node_config', args(primary, paths, saved, work_mem='8MB', slots=['dc9_pg3']),
                         check_mode=True, diff=True)
    assert result['changed'] is True
    assert result['files'] == [paths['postgresql.conf']]
    assert result['queries'] == ['SELECT pg_reload_conf()', "SELECT pg_create_physical_replication_slot('dc9_pg3', true)"]
    assert "+work_mem = '8MB'" in result['_stdout']
    assert read(paths['postgresql.conf']) == saved['postgresql.conf']
    assert 'dc9_pg3' not in slots(primary)
    assert primary.scalar("SELECT current_setting('work_mem')") == '4MB'


def test_a_file_with_an_error_is_put_back_and_nothing_reloaded(ansible, primary, conf):
    paths, saved = conf
    before = primary.scalar('SELECT pg_conf_load_time()')
    result = ansible.run('pg_node_config', args(primary, paths, saved, work_mem='9MB',
                                                hba_extra='hostssl all all 10.1.2.3/40 scram-sha-256\n',
                                                slots=['dc9_pg4']),
                         expect_failure=True)
    assert any('invalid CIDR mask in address "10.1.2.3/40"' in e for e in result['hba_errors'])
    assert 'the previous files were put back' in result['msg']
    assert result['changed'] is False and result['reloaded'] is False
    assert read(paths['pg_hba.conf']) == saved['pg_hba.conf']
    assert read(paths['postgresql.conf']) == saved['postgresql.conf']
    assert primary.scalar('SELECT pg_conf_load_time()') == before
    assert primary.scalar("SELECT current_setting('work_mem')") == '4MB'
    assert 'dc9_pg4' not in slots(primary)


def test_a_server_that_does_not_run_is_refused_before_writing(ansible, servers, tmp_path):
    server = servers.primary('nodecfg_stopped')
    server.stop()
    path = os.path.join(server.datadir, 'pg_hba.conf')
    saved = read(path)
    result = ansible.run('pg_node_config', dict(server.login(), files=[{'path': path, 'content': saved + '# new\n'}]),
                         expect_failure=True)
    assert 'does not accept connections' in result['msg'] and 'nothing was written' in result['msg']
    assert read(path) == saved and result['changed'] is False

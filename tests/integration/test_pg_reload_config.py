"""pg_reload_config on real servers: a clean reload, parameters that need a restart,
files with errors (nothing reloaded: the running server keeps its settings), check mode,
and servers that do not run, are shutting down or refuse the connection."""

import os
import time

import pytest

from ansible_collections.pgha.multidc.plugins.module_utils.config_check import (
    PQPING_NO_RESPONSE, PQPING_OK, PQPING_REJECT, RELOAD_SQL, libpq_ping)

# The primary (reload_primary) and its standby (reload_standby) come from conftest.py.
SERVER_PREFIX = 'reload'


class Files:
    """The configuration files of a server: append to them; put back what they were and
    reload at the end of the test."""

    def __init__(self, server):
        self.server = server
        self.conf = os.path.join(server.datadir, 'postgresql.conf')
        self.hba = os.path.join(server.datadir, 'pg_hba.conf')
        self.extra = os.path.join(server.datadir, 'pgha_extra.conf')
        self.saved = {}
        for path in (self.conf, self.hba):
            with open(path) as handle:
                self.saved[path] = handle.read()

    def append(self, path, text):
        with open(path, 'a') as handle:
            handle.write(text)

    def line_count(self, path):
        with open(path) as handle:
            return len(handle.read().splitlines())

    def restore(self):
        for path, text in self.saved.items():
            with open(path, 'w') as handle:
                handle.write(text)
        if os.path.exists(self.extra):
            os.unlink(self.extra)
        self.server.execute('SELECT pg_reload_conf()')
        # The next test starts from a server that has processed the reload.
        assert self.server.wait_for("SELECT count(*) FROM pg_settings WHERE pending_restart OR "
                                    "(name = 'work_mem' AND setting <> '4096')", 0, timeout=10) == 0


@pytest.fixture
def files(primary):
    files = Files(primary)
    yield files
    files.restore()


def load_time(server):
    return server.scalar('SELECT pg_conf_load_time()')


def show(server, name):
    return server.scalar('SELECT current_setting(%s)', (name,))


def test_clean_reload(ansible, primary, files):
    before = load_time(primary)
    files.append(files.conf, "work_mem = '7MB'\n")
    result = ansible.run('pg_reload_config', primary.login())
    assert result['changed'] is True
    assert result['running'] is True and result['accepting'] is True and result['reloaded'] is True
    assert result['restart_needed'] == []
    assert result['file_errors'] == [] and result['hba_errors'] == [] and result['ident_errors'] == []
    assert result['queries'] == [RELOAD_SQL]
    assert not result.get('warnings')
    assert show(primary, 'work_mem') == '7MB'
    assert load_time(primary) > before


def test_postmaster_parameters_are_reported(ansible, primary, files):
    # max_connections is 40 and shared_buffers 32MB (pgharness); names are case-insensitive.
    files.append(files.conf, "include = 'pgha_extra.conf'\nwork_mem = '6MB'\n")
    files.append(files.extra, "max_connections = 41\nShared_Buffers = '48MB'\n")
    result = ansible.run('pg_reload_config', primary.login())
    assert result['changed'] is True and result['reloaded'] is True
    assert result['restart_needed'] == ['max_connections', 'shared_buffers']
    assert not result.get('warnings')
    assert show(primary, 'work_mem') == '6MB'  # the reloadable change is applied
    assert show(primary, 'max_connections') == '40'
    assert primary.scalar('SELECT array_agg(name ORDER BY name) FROM pg_settings WHERE pending_restart') == \
        ['max_connections', 'shared_buffers']

    # Already waiting for a restart: reported by the next run too, with nothing new in the files.
    again = ansible.run('pg_reload_config', primary.login())
    assert again['restart_needed'] == ['max_connections', 'shared_buffers']

    # Set back: nothing waits any more.
    os.unlink(files.extra)
    with open(files.extra, 'w') as handle:
        handle.write('max_connections = 40\n')
    assert ansible.run('pg_reload_config', primary.login())['restart_needed'] == []


def test_an_invalid_postmaster_value_is_not_a_restart(ansible, primary, files):
    files.append(files.conf, "shared_buffers = 'lots'\n")
    result = ansible.run('pg_reload_config', primary.login())
    assert result['reloaded'] is True
    assert result['restart_needed'] == []  # a restart would fail: said, not asked for
    assert any(w.startswith('shared_buffers: the server rejects the value') for w in result['warnings'])


def test_broken_hba_line_fails_without_reloading(ansible, primary, files):
    before = load_time(primary)
    files.append(files.conf, "work_mem = '9MB'\n")
    files.append(files.hba, 'hostssl all all 10.1.2.3/40 trust\n')
    line = files.line_count(files.hba)
    result = ansible.run('pg_reload_config', primary.login(), expect_failure=True)
    expected = '%s:%d: invalid CIDR mask in address "10.1.2.3/40"' % (files.hba, line)
    assert result['hba_errors'] == [expected]
    assert 'not reloaded' in result['msg'] and expected in result['msg']
    assert result['reloaded'] is False and result['changed'] is False
    # The running server kept its settings: nothing was reloaded.
    assert load_time(primary) == before
    assert show(primary, 'work_mem') == '4MB'


def test_postgresql_conf_syntax_error_fails_without_reloading(ansible, primary, files):
    before = load_time(primary)
    files.append(files.conf, "work_mem = '9MB'\nthis is not a setting\n")
    line = files.line_count(files.conf)
    result = ansible.run('pg_reload_config', primary.login(), expect_failure=True)
    expected = '%s:%d: syntax error' % (files.conf, line)
    assert result['file_errors'] == [expected]
    assert expected in result['msg'] and result['reloaded'] is False
    assert load_time(primary) == before
    assert show(primary, 'work_mem') == '4MB'


def test_unknown_parameter_fails_without_reloading(ansible, primary, files):
    before = load_time(primary)
    files.append(files.conf, "work_mem = '9MB'\nwrok_mem = '9MB'\n")
    line = files.line_count(files.conf)
    result = ansible.run('pg_reload_config', primary.login(), expect_failure=True)
    assert result['file_errors'] == ['%s:%d: wrok_mem: unrecognized configuration parameter' % (files.conf, line)]
    assert load_time(primary) == before
    assert show(primary, 'work_mem') == '4MB'


def test_check_mode_and_reload_false_reload_nothing(ansible, primary, files):
    before = load_time(primary)
    files.append(files.conf, "work_mem = '5MB'\nmax_connections = 42\n")
    checked = ansible.run('pg_reload_config', primary.login(), check_mode=True)
    assert checked['changed'] is True  # predicted
    assert checked['reloaded'] is False and checked['queries'] == [RELOAD_SQL]
    assert checked['restart_needed'] == ['max_connections']
    only = ansible.run('pg_reload_config', dict(primary.login(), reload=False))
    assert only['changed'] is False and only['reloaded'] is False and only['queries'] == []
    assert only['restart_needed'] == ['max_connections']
    assert load_time(primary) == before
    assert show(primary, 'work_mem') == '4MB'

    # Errors fail in check mode too.
    files.append(files.hba, 'bogus line\n')
    failed = ansible.run('pg_reload_config', primary.login(), check_mode=True, expect_failure=True)
    assert failed['hba_errors'] and failed['changed'] is False


def test_standby(ansible, standby):
    files = Files(standby)
    try:
        files.append(files.conf, "work_mem = '3MB'\nmax_wal_senders = 11\n")
        result = ansible.run('pg_reload_config', standby.login())
        assert result['reloaded'] is True
        assert result['restart_needed'] == ['max_wal_senders']
        assert show(standby, 'work_mem') == '3MB'
    finally:
        files.restore()


def test_stopped_server_is_reported_not_failed(ansible, servers):
    server = servers.primary('reload_stopped')
    assert libpq_ping(dict(host=server.socket_dir, port=server.port)) == PQPING_OK
    server.stop()
    result = ansible.run('pg_reload_config', server.login())
    assert result['running'] is False and result['accepting'] is False
    assert result['changed'] is False and result['reloaded'] is False
    assert result['restart_needed'] == [] and not result.get('warnings')
    assert libpq_ping(dict(host=server.socket_dir, port=server.port)) == PQPING_NO_RESPONSE
    # Check mode: the same.
    assert ansible.run('pg_reload_config', server.login(), check_mode=True)['running'] is False


def test_server_shutting_down_is_reported_not_failed(ansible, servers):
    server = servers.primary('reload_stopping')
    held = server.connect()  # a smart shutdown waits for this session
    try:
        server.pg_ctl('stop', '-m', 'smart', '-W')
        deadline = time.time() + 10
        while libpq_ping(dict(host=server.socket_dir, port=server.port)) != PQPING_REJECT and time.time() < deadline:
            time.sleep(0.1)
        result = ansible.run('pg_reload_config', server.login())
        assert result['running'] is True and result['accepting'] is False
        assert result['changed'] is False and result['reloaded'] is False
        assert any('shutting down' in w for w in result['warnings'])
    finally:
        held.close()


def test_refused_connection_fails_clearly(ansible, primary):
    result = ansible.run('pg_reload_config', dict(primary.login(), login_user='nobody'), expect_failure=True)
    assert 'answers but refuses the connection' in result['msg']
    assert 'role "nobody" does not exist' in result['msg']
    assert result['running'] is True and result['accepting'] is False and result['reloaded'] is False

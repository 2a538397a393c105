# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/config_check.py (the logic of pg_reload_config)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

import pytest

from ansible_collections.pgha.multidc.plugins.module_utils import config_check
from ansible_collections.pgha.multidc.plugins.module_utils.config_check import (
    ACCEPTING, NOT_ACCEPTING, NOT_RUNNING, PQPING_NO_ATTEMPT, PQPING_NO_RESPONSE, PQPING_OK, PQPING_REJECT,
    RELOAD_SQL, REFUSED, ConfigFileErrors, check_and_reload, classify_file_settings, connection_status,
    errors_message, format_auth_file_errors, open_local, restart_needed)
from ansible_collections.pgha.multidc.plugins.module_utils.connection import PostgresError

SOCKET = 'connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed: '
CONF = '/etc/postgresql/15/main/postgresql.conf'
HBA = '/etc/postgresql/15/main/pg_hba.conf'


# -- connection_status ------------------------------------------------------------------

@pytest.mark.parametrize('message', [
    SOCKET + 'No such file or directory\n\tIs the server running locally and accepting connections on that socket?',
    'connection to server at "127.0.0.1", port 5432 failed: Connection refused',
    'connection to server at "10.0.0.1", port 5432 failed: timeout expired',
])
def test_nobody_answered_is_not_running(message):
    assert connection_status('cannot connect to postgres@x:5432: ' + message) == NOT_RUNNING


@pytest.mark.parametrize('fatal', [
    'the database system is starting up',
    'the database system is shutting down',
    'the database system is in recovery mode',
    'the database system is not yet accepting connections\nDETAIL:  Consistent recovery state has not been yet reached.',
    'the database system is not accepting connections\nDETAIL:  Hot standby mode is disabled.',
])
def test_cannot_connect_now_is_not_accepting(fatal):
    def ping():
        raise AssertionError('a known message needs no ping')
    assert connection_status(SOCKET + 'FATAL:  ' + fatal, ping) == NOT_ACCEPTING


@pytest.mark.parametrize('fatal', [
    'role "nobody" does not exist',
    'password authentication failed for user "postgres"',
    'Peer authentication failed for user "postgres"',
    'no pg_hba.conf entry for host "[local]", user "postgres", database "postgres", no encryption',
    'sorry, too many clients already',
])
def test_other_refusals_are_refused(fatal):
    assert connection_status(SOCKET + 'FATAL:  ' + fatal) == REFUSED
    assert connection_status(SOCKET + 'FATAL:  ' + fatal, lambda: PQPING_OK) == REFUSED
    assert connection_status(SOCKET + 'FATAL:  ' + fatal, lambda: None) == REFUSED  # no libpq to ask


@pytest.mark.parametrize('answer, status', [
    (PQPING_REJECT, NOT_ACCEPTING),
    (PQPING_NO_RESPONSE, NOT_RUNNING),
    (PQPING_OK, REFUSED),
    (PQPING_NO_ATTEMPT, REFUSED),
    (None, REFUSED),
])
def test_an_unknown_message_asks_pqping(answer, status):
    # A server with translated messages ("le système de bases de données s'arrête").
    message = SOCKET + "FATAL:  le système de bases de données s'arrête"
    assert connection_status(message, lambda: answer) == status


def test_open_local_classifies_the_failure(monkeypatch):
    def refuse(params, application_name):
        raise PostgresError('cannot connect to postgres@local socket:5432: ' + SOCKET + 'FATAL:  the database system '
                            'is shutting down')
    monkeypatch.setattr(config_check, 'open_connection', refuse)
    conn, status, message = open_local({'port': 5432}, ping=lambda params: PQPING_OK)
    assert conn is None and status == NOT_ACCEPTING and 'shutting down' in message

    pings = []
    monkeypatch.setattr(config_check, 'open_connection', lambda params, application_name: 'conn')
    assert open_local({'port': 5432}, ping=pings.append) == ('conn', ACCEPTING, None)
    assert pings == []


# -- the files ---------------------------------------------------------------------------

def _row(name=None, error='setting could not be applied', context=None, line=10, sourcefile=CONF):
    return {'sourcefile': sourcefile, 'sourceline': line, 'name': name, 'error': error,
            'setting': name.lower() if name and context else None, 'context': context}


def test_no_errors():
    assert classify_file_settings([]) == ([], [])


def test_postmaster_parameters_wait_for_a_restart():
    rows = [_row('shared_buffers', context='postmaster', line=3), _row('Max_Connections', context='postmaster', line=4),
            _row('max_connections', context='postmaster', line=90, sourcefile='/etc/postgresql/15/main/conf.d/a.conf')]
    assert classify_file_settings(rows) == ([], ['max_connections', 'shared_buffers'])


def test_file_errors_and_setting_errors():
    rows = [
        _row(error='syntax error', line=12),
        _row(error='syntax error', line=12),  # the view can repeat an entry: once is enough
        _row(error='could not open file "/etc/x.conf"', line=20),
        _row('wrok_mem', error='unrecognized configuration parameter', line=13),
        _row('work_mem', context='user', line=14),          # a value it cannot take
        _row('server_version', context='internal', line=15),
        _row('shared_buffers', context='postmaster', line=16),
    ]
    errors, restart = classify_file_settings(rows)
    assert errors == [
        CONF + ':12: syntax error',
        CONF + ':20: could not open file "/etc/x.conf"',
        CONF + ':13: wrok_mem: unrecognized configuration parameter',
        CONF + ':14: work_mem: setting could not be applied',
        CONF + ':15: server_version: setting could not be applied',
    ]
    assert restart == ['shared_buffers']


def test_an_error_without_a_place():
    assert classify_file_settings([_row(error='boom', line=None, sourcefile=None)])[0] == ['(unknown file):?: boom']


def test_auth_file_errors_before_16_name_the_default_file():
    rows = [{'line_number': 7, 'error': 'invalid connection type "bogus"', 'type': None},
            {'line_number': 6, 'error': 'invalid CIDR mask in address "1.2.3.4/40"', 'type': 'host'}]
    assert format_auth_file_errors(rows, HBA) == [
        HBA + ':6: invalid CIDR mask in address "1.2.3.4/40"',
        HBA + ':7: invalid connection type "bogus"',
    ]


def test_auth_file_errors_from_16_name_their_file():
    rows = [{'file_name': '/etc/hba.d/b.conf', 'line_number': 1, 'error': 'e3'},
            {'file_name': HBA, 'line_number': 30, 'error': 'e2'},
            {'file_name': None, 'line_number': 2, 'error': 'e1'}]
    assert format_auth_file_errors(rows, HBA) == ['/etc/hba.d/b.conf:1: e3', HBA + ':2: e1', HBA + ':30: e2']
    assert format_auth_file_errors([], HBA) == []


def _state(**errors):
    state = {'file_errors': [], 'hba_errors': [], 'ident_errors': [], 'not_applied': [], 'pending_restart': [],
             'load_time': datetime.datetime(2026, 1, 1, 12, 0, 0)}
    state.update(errors)
    return state


def test_errors_message():
    assert errors_message(_state(not_applied=['shared_buffers'])) is None
    message = errors_message(_state(file_errors=['a:1: syntax error'], hba_errors=['h:2: e'], ident_errors=['i:3: e']))
    assert message == ('the configuration files have errors; PostgreSQL keeps running with the previous ones '
                       '(not reloaded): a:1: syntax error; h:2: e; i:3: e')


# -- after the reload ---------------------------------------------------------------------

def test_restart_needed_once_the_reload_is_confirmed():
    assert restart_needed([], [], True) == ([], [])
    assert restart_needed(['max_connections'], ['max_connections', 'shared_buffers'], True) == \
        (['max_connections', 'shared_buffers'], [])
    # "could not be applied" but not pending: a value the server rejects.
    assert restart_needed(['max_connections', 'shared_buffers'], ['max_connections'], True) == \
        (['max_connections'], ['shared_buffers'])


def test_restart_needed_without_confirmation_counts_everything():
    assert restart_needed(['shared_buffers', 'max_connections'], ['max_wal_senders', 'max_connections'], False) == \
        (['max_connections', 'max_wal_senders', 'shared_buffers'], [])


class FakeServer:
    """read_file_state and reload_and_read of config_check, replaced."""

    def __init__(self, monkeypatch, state, confirmed=True, pending=None):
        self.state, self.confirmed, self.pending, self.reloads = state, confirmed, pending or [], 0
        monkeypatch.setattr(config_check, 'read_file_state', lambda conn: self.state)
        monkeypatch.setattr(config_check, 'reload_and_read', self.reload)

    def reload(self, conn, before, timeout, queries):
        assert before == self.state['load_time']
        self.reloads += 1
        queries.append(RELOAD_SQL)
        return self.confirmed, self.pending


def _result():
    return {'reloaded': False, 'queries': []}


def test_errors_stop_before_the_reload(monkeypatch):
    server = FakeServer(monkeypatch, _state(hba_errors=[HBA + ':7: invalid connection type "bogus"'],
                                            not_applied=['shared_buffers']))
    result = _result()
    with pytest.raises(ConfigFileErrors, match='not reloaded.*pg_hba.conf:7: invalid connection type'):
        check_and_reload(None, result)
    assert server.reloads == 0
    assert result['reloaded'] is False and result['queries'] == []
    assert result['hba_errors'] == [HBA + ':7: invalid connection type "bogus"']
    assert result['restart_needed'] == ['shared_buffers']


@pytest.mark.parametrize('reload, check_mode, queries', [(True, True, [RELOAD_SQL]), (False, False, []),
                                                         (False, True, [])])
def test_check_only(monkeypatch, reload, check_mode, queries):
    server = FakeServer(monkeypatch, _state(not_applied=['shared_buffers'], pending_restart=['max_connections']))
    result = _result()
    assert check_and_reload(None, result, reload=reload, check_mode=check_mode) == []
    assert server.reloads == 0
    assert result == {'reloaded': False, 'queries': queries, 'file_errors': [], 'hba_errors': [], 'ident_errors': [],
                      'restart_needed': ['max_connections', 'shared_buffers']}


def test_reload(monkeypatch):
    server = FakeServer(monkeypatch, _state(not_applied=['shared_buffers'], pending_restart=['max_connections']),
                        pending=['shared_buffers'])
    result = _result()
    assert check_and_reload(None, result) == []
    assert server.reloads == 1
    # max_connections was pending before the reload and no more after it (set back in the file).
    assert result['reloaded'] is True and result['queries'] == [RELOAD_SQL]
    assert result['restart_needed'] == ['shared_buffers']


def test_reload_warns_about_invalid_and_unconfirmed(monkeypatch):
    FakeServer(monkeypatch, _state(not_applied=['shared_buffers']), confirmed=True, pending=[])
    result = _result()
    warnings = check_and_reload(None, result)
    assert result['restart_needed'] == []
    assert len(warnings) == 1 and warnings[0].startswith('shared_buffers: the server rejects the value')

    FakeServer(monkeypatch, _state(not_applied=['shared_buffers']), confirmed=False, pending=['max_connections'])
    result = _result()
    warnings = check_and_reload(None, result, timeout=2.0)
    assert result['restart_needed'] == ['max_connections', 'shared_buffers']
    assert len(warnings) == 1 and 'did not confirm the reload within 2 s' in warnings[0]

# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the pure parts of plugins/module_utils/follow.py and datadir.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pgha.multidc.plugins.module_utils.datadir import (
    parse_controldata, parse_waldump_end, segment_start)
from ansible_collections.pgha.multidc.plugins.module_utils.follow import (
    fork_check, probe_upstream_history, receiver_matches)

HISTORY_3 = [{'timeline': 1, 'switchpoint': '0/3000000', 'reason': 'x'},
             {'timeline': 2, 'switchpoint': '0/5000000', 'reason': 'y'}]

CONTROLDATA = """pg_control version number:            1300
Database system identifier:           7301234567890123456
Database cluster state:               shut down
Latest checkpoint location:           0/5000028
Latest checkpoint's REDO location:    0/5000028
Latest checkpoint's TimeLineID:       2
Latest checkpoint's PrevTimeLineID:   2
Minimum recovery ending location:     0/0
Min recovery ending loc's timeline:   0
Backup start location:                0/0
wal_log_hints setting:                on
Data page checksum version:           1
Bytes per WAL segment:                16777216
"""


def test_same_timeline_follows():
    assert fork_check(2, '0/6000000', 2, [], '0/7000000')['can_follow'] is True


def test_behind_the_fork_point_follows():
    result = fork_check(2, '0/5000000', 3, HISTORY_3)
    assert result['can_follow'] is True and result['switchpoint'] == '0/5000000'


def test_ahead_of_the_fork_point_cannot_follow():
    result = fork_check(2, '0/5000100', 3, HISTORY_3)
    assert result['can_follow'] is False and result['ahead_bytes'] == 256
    assert 'pg_rewind' in result['reason']


def test_other_branch_cannot_follow():
    assert fork_check(4, '0/1', 3, HISTORY_3)['can_follow'] is False
    assert fork_check(5, '0/1', 6, [{'timeline': 4, 'switchpoint': '0/1', 'reason': ''}])['can_follow'] is False


def test_unknown_is_none():
    assert fork_check(None, '0/1', 3, HISTORY_3)['can_follow'] is None
    assert fork_check(1, None, 3, HISTORY_3)['can_follow'] is None


def test_receiver_matches():
    receiver = {'status': 'streaming', 'sender_host': '10.0.1.12', 'sender_port': 5432, 'received_tli': 2,
                'conninfo': 'host=10.0.1.12 port=5432 user=replicator'}
    assert receiver_matches(receiver, {'host': '10.0.1.12', 'port': 5432}, 2)
    assert not receiver_matches(receiver, {'host': '10.0.1.11', 'port': 5432})
    assert not receiver_matches(receiver, {'host': '10.0.1.12', 'port': 5432}, 3)
    assert not receiver_matches(dict(receiver, status='waiting'), {'host': '10.0.1.12', 'port': 5432})
    assert not receiver_matches(None, {'host': '10.0.1.12'})


def test_parse_controldata():
    data = parse_controldata(CONTROLDATA)
    assert data['state'] == 'shut down' and data['clean_shutdown']
    assert data['checkpoint_lsn'] == '0/5000028' and data['timeline'] == 2
    assert data['min_recovery_end_lsn'] is None
    assert data['wal_log_hints'] and data['data_checksums'] and data['rewindable']
    assert data['system_identifier'] == '7301234567890123456'


def test_waldump_invalid_record_length():
    out = ('pg_waldump: error: error in WAL record at 0/1526058: invalid record length at 0/15261F0: '
           'wanted 24, got 0')
    assert parse_waldump_end(out) == ('0/15261F0', True, 'invalid record length at 0/15261F0')
    out16 = 'pg_waldump: error: error in WAL record at 0/1526058: invalid record length at 0/15261F0: expected at least 24, got 0'
    assert parse_waldump_end(out16)[0] == '0/15261F0'


def test_waldump_page_header():
    out = ('pg_waldump: error: error in WAL record at 0/3FFFF80: unexpected pageaddr 0/1000000 in log segment '
           '000000010000000000000004, offset 0')
    lsn, exact, _detail = parse_waldump_end(out)
    assert lsn == '0/4000000' and exact is False
    assert segment_start('000000010000000000000004', 16 * 1024 * 1024) == 0x4000000


def test_waldump_missing_file_and_nothing():
    out = 'pg_waldump: error: could not find file "000000010000000000000005": No such file or directory'
    assert parse_waldump_end(out)[0] == '0/5000000'
    assert parse_waldump_end('')[0] is None


def test_probe_upstream_history_when_nobody_answers():
    """The shared replication probe reports a refused connection; the follow view adds
    the (empty) history and the target, and never shows the password."""
    probe = probe_upstream_history({'host': '127.0.0.1', 'port': 1, 'user': 'replicator',
                                    'password': 's3cret', 'sslmode': 'disable', 'connect_timeout': 2})
    assert probe['answered'] is False and probe['reachable'] is False
    assert probe['history'] == [] and 'timeline_history' not in probe
    assert probe['target'] == 'replicator@127.0.0.1:1'
    assert probe['error'].startswith('cannot connect to replicator@127.0.0.1:1: ')
    assert 's3cret' not in probe['error']

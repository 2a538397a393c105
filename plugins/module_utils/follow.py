# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make a standby (running or stopped) follow a new upstream: the repointing step of
failover, switchover and rejoin (module pg_standby_follow).

Before anything changes, the new upstream is asked for its timeline and its timeline
history over a replication connection (what the standby itself will open), and the
standby's position is compared with the point where its timeline forked off the
upstream's: a standby that holds WAL beyond the fork point cannot follow (it needs
pg_rewind or a new copy) and is refused with the numbers. Then the recovery settings
are written (standby_config), a running server reloads them (primary_conninfo and
primary_slot_name are reloadable since PostgreSQL 13) and the module waits until the
WAL receiver streams from the new upstream.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time

from ansible_collections.pgha.multidc.plugins.module_utils.connection import (
    PostgresError, describe_target, probe_replication_server, query, query_one, wait_until)
from ansible_collections.pgha.multidc.plugins.module_utils.conninfo import parse_conninfo, ConninfoError, redact
from ansible_collections.pgha.multidc.plugins.module_utils.lsn import (
    lsn_diff, max_lsn, parse_lsn, pretty_bytes)
from ansible_collections.pgha.multidc.plugins.module_utils.node_state import (
    parse_timeline_history, replay_status)
from ansible_collections.pgha.multidc.plugins.module_utils.standby_config import (
    AUTO_CONF, STANDBY_SIGNAL, apply_standby_config, desired_recovery_settings, read_text, settings_changes)
from ansible_collections.pgha.multidc.plugins.module_utils import datadir as datadir_utils


class FollowError(Exception):
    """A refusal or failure; ``details`` go into the module result."""

    def __init__(self, message, **details):
        super(FollowError, self).__init__(message)
        self.changed = bool(details.pop('changed', False))
        self.details = details


# -- pure decisions -------------------------------------------------------------------

def fork_check(standby_timeline, standby_position, upstream_timeline, history, upstream_position=None):
    """Can a standby on ``standby_timeline`` at ``standby_position`` follow an upstream on
    ``upstream_timeline`` whose history (parse_timeline_history of its current timeline)
    is ``history``?

    Returns a dict: ``can_follow`` (True, False, or None when unknown), ``reason``,
    ``switchpoint`` (where the standby's timeline ends in the upstream's history, None on
    the same timeline) and ``ahead_bytes`` (WAL the standby holds beyond it).
    """
    result = {'standby_timeline': standby_timeline, 'standby_position': standby_position,
              'upstream_timeline': upstream_timeline, 'upstream_position': upstream_position,
              'switchpoint': None, 'ahead_bytes': 0, 'can_follow': None, 'reason': None}
    if standby_timeline is None or upstream_timeline is None:
        result['reason'] = 'the timeline of the standby or of the upstream is unknown'
        return result
    if standby_timeline == upstream_timeline:
        result['can_follow'] = True
        result['reason'] = 'same timeline %d' % upstream_timeline
        if standby_position and upstream_position and parse_lsn(standby_position) > parse_lsn(upstream_position):
            # Same timeline but ahead: it waits for the upstream to catch up (a standby
            # upstream that lags); harmless, reported.
            result['reason'] += ('; the standby is %s ahead of the upstream, which it waits for'
                                 % pretty_bytes(lsn_diff(standby_position, upstream_position)))
        return result
    if standby_timeline > upstream_timeline:
        result['can_follow'] = False
        result['reason'] = ('the standby is on timeline %d, newer than the upstream\'s timeline %d: the upstream '
                            'is not a descendant of it' % (standby_timeline, upstream_timeline))
        return result
    entry = [e for e in history or [] if e['timeline'] == standby_timeline]
    if not entry:
        result['can_follow'] = False
        result['reason'] = ('timeline %d of the standby is not in the history of the upstream\'s timeline %d '
                            '(they belong to different branches)' % (standby_timeline, upstream_timeline))
        return result
    switchpoint = entry[0]['switchpoint']
    result['switchpoint'] = switchpoint
    if standby_position is None:
        result['reason'] = 'the position of the standby is unknown'
        return result
    ahead = lsn_diff(standby_position, switchpoint)
    if ahead > 0:
        result['can_follow'] = False
        result['ahead_bytes'] = ahead
        result['reason'] = ('the standby holds WAL of timeline %d up to %s, %s beyond %s where the upstream\'s '
                            'timeline %d forked off: it cannot follow without pg_rewind or a new copy'
                            % (standby_timeline, standby_position, pretty_bytes(ahead), switchpoint,
                               upstream_timeline))
        return result
    result['can_follow'] = True
    result['reason'] = ('timeline %d forked off timeline %d at %s; the standby is at %s (not beyond it)'
                        % (upstream_timeline, standby_timeline, switchpoint, standby_position))
    return result


def upstream_libpq(upstream):
    """libpq keywords to reach ``upstream`` (module option dict); the password only when given."""
    keys = ('host', 'port', 'user', 'password', 'passfile', 'sslmode', 'sslrootcert', 'sslcert', 'sslkey',
            'connect_timeout')
    return dict((k, upstream[k]) for k in keys if upstream.get(k) not in (None, ''))


# -- reads ----------------------------------------------------------------------------

def probe_upstream_history(upstream):
    """IDENTIFY_SYSTEM and TIMELINE_HISTORY of ``upstream`` over a replication connection
    (connection.probe_replication_server).

    Returns ``answered``, ``reachable``, ``in_recovery``, ``system_identifier``,
    ``timeline``, ``wal_position``, ``history`` (entries), ``error`` and ``target``.
    """
    params = upstream_libpq(upstream)
    result = probe_replication_server(params, application_name='pgha.multidc-follow-probe', timeline_history=True)
    result['history'] = parse_timeline_history(result.pop('timeline_history'))
    result['target'] = describe_target(params)
    return result


_STANDBY_SQL = """
SELECT pg_is_in_recovery() AS in_recovery,
       (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,
       (SELECT timeline_id FROM pg_control_checkpoint()) AS checkpoint_timeline,
       (SELECT received_tli FROM pg_stat_wal_receiver) AS received_tli,
       current_setting('data_directory') AS data_directory
"""

_RECEIVER_SQL = """
SELECT status, received_tli, flushed_lsn::text AS flushed_lsn, sender_host, sender_port, slot_name, conninfo
FROM pg_stat_wal_receiver
"""


def local_timeline(wal_dir, *known):
    """The newest timeline this node knows: the given ones and the history files in pg_wal."""
    newest, _switch = datadir_utils.latest_timeline(wal_dir)
    values = [int(v) for v in known if v is not None] + ([newest] if newest is not None else [])
    return max(values) if values else None


def running_position(conn, settle_timeout):
    """(position, note) of a running standby: what it replayed once replay waits for WAL.

    WAL that was received but not replayed yet is replayed from pg_wal even when the
    upstream is gone, so wait (bounded) for replay to go idle; if it does not, count the
    received WAL too (the conservative answer).
    """
    ok, status, _waited = wait_until(lambda: _idle(conn), settle_timeout, interval=0.2)
    if ok:
        return status['replay_lsn'], 'replayed position (replay idle)'
    status = replay_status(conn)
    return max_lsn(status['receive_lsn'], status['replay_lsn']), 'received position (replay did not go idle)'


def _idle(conn):
    status = replay_status(conn)
    if status['paused']:
        return False
    return status if status['replay_idle'] or status['replay_gap_bytes'] == 0 else False


def receiver_matches(receiver, upstream, min_timeline=None):
    """True when the WAL receiver streams from ``upstream`` (host and port) on at least ``min_timeline``."""
    if not receiver or receiver.get('status') != 'streaming':
        return False
    host = receiver.get('sender_host')
    port = receiver.get('sender_port')
    try:
        params = parse_conninfo(receiver.get('conninfo') or '')
    except ConninfoError:
        params = {}
    hosts = set(h for h in (host, params.get('host'), params.get('hostaddr')) if h)
    if str(upstream['host']) not in hosts:
        return False
    if port and int(port) != int(upstream.get('port') or 5432):
        return False
    if min_timeline is not None and receiver.get('received_tli') is not None \
            and int(receiver['received_tli']) < int(min_timeline):
        return False
    return True


# -- the operation --------------------------------------------------------------------

def follow(opts, connect, server_running, check_mode=False):
    """Repoint the standby of ``opts['data_directory']`` to ``opts['upstream']``.

    ``connect()`` opens the local connection (raises PostgresError); ``server_running()``
    returns the postmaster pid or None. Returns the result dict; raises FollowError.
    """
    data_directory = opts['data_directory']
    upstream = opts['upstream']
    queries = []
    result = {'changed': False, 'running': False, 'streaming': False, 'queries': queries,
              'upstream': redact(dict((k, v) for k, v in upstream.items() if v is not None)),
              'settings_changed': [], 'pending_restart': [], 'fork': None, 'wal_receiver': None,
              'timeline': None, 'waited_seconds': 0.0}
    if not os.path.isdir(data_directory) or not os.path.exists(os.path.join(data_directory, 'PG_VERSION')):
        raise FollowError('%s is not a PostgreSQL data directory' % data_directory, **result)

    application_name = opts.get('application_name')
    from ansible_collections.pgha.multidc.plugins.module_utils.basebackup import standby_conninfo
    conninfo = standby_conninfo(upstream, application_name)
    desired = desired_recovery_settings(conninfo, opts.get('slot'), opts.get('restore_command'),
                                        opts.get('recovery_target_timeline') or 'latest')

    pid = server_running()
    conn = None
    wal_dir = os.path.join(data_directory, 'pg_wal')
    try:
        if pid:
            result['running'] = True
            try:
                conn = connect()
            except PostgresError as error:
                raise FollowError('the server of %s runs (pid %s) but does not accept the connection: %s'
                                  % (data_directory, pid, error), **result)
            local = query_one(conn, _STANDBY_SQL)
            if os.path.realpath(local['data_directory']) != os.path.realpath(data_directory):
                raise FollowError('the server reached through the login options serves %s, not %s'
                                  % (local['data_directory'], data_directory), **result)
            if not local['in_recovery']:
                raise FollowError(
                    'this server is a primary (not in recovery): it cannot be repointed while it runs. A former '
                    'primary must be stopped (fenced) first and rejoined with pg_rewind (playbooks/rejoin.yml)',
                    **result)
            system_identifier = local['system_identifier']
            receiver = query_one(conn, _RECEIVER_SQL)
            result['wal_receiver'] = _redact_receiver(receiver)
        else:
            if not opts.get('pg_bindir'):
                raise FollowError('the server of %s is stopped and no PostgreSQL binaries were found to read its '
                                  'control file (set pg_bindir)' % data_directory, **result)
            control = datadir_utils.read_controldata(opts['pg_bindir'], data_directory)
            system_identifier = control.get('system_identifier')
            local = {'checkpoint_timeline': control.get('timeline'), 'received_tli': None}
            receiver = None
            result['controldata'] = dict((k, v) for k, v in control.items() if k != 'raw')

        # Already streaming from this upstream with these settings: only report.
        same_settings = not settings_changes(read_text(os.path.join(data_directory, AUTO_CONF)), desired) \
            and os.path.exists(os.path.join(data_directory, STANDBY_SIGNAL))

        probe = probe_upstream_history(upstream) if opts.get('check_timeline', True) or result['running'] else None
        if probe is not None:
            result['upstream_state'] = dict((k, probe[k]) for k in (
                'answered', 'reachable', 'in_recovery', 'system_identifier', 'timeline', 'wal_position', 'error'))
        if opts.get('check_timeline', True):
            if not probe['reachable'] or probe['timeline'] is None:
                raise FollowError('cannot check the timeline of the new upstream %s: %s. Nothing was changed (is this '
                                  'host allowed to replicate from it in its pg_hba.conf?)'
                                  % (probe['target'], probe['error']), **result)
            if system_identifier and probe['system_identifier'] and str(system_identifier) != str(probe['system_identifier']):
                raise FollowError('the new upstream %s belongs to another cluster (system identifier %s, this one %s); '
                                  'nothing was changed' % (probe['target'], probe['system_identifier'], system_identifier),
                                  **result)
            if same_settings and receiver_matches(receiver, upstream, probe['timeline']):
                position = receiver.get('flushed_lsn')
                result['fork'] = {'can_follow': True, 'reason': 'already streaming from this upstream on timeline %s'
                                  % receiver.get('received_tli'), 'standby_timeline': receiver.get('received_tli'),
                                  'standby_position': position, 'upstream_timeline': probe['timeline'],
                                  'upstream_position': probe['wal_position'], 'switchpoint': None, 'ahead_bytes': 0}
            else:
                if result['running']:
                    position, how = running_position(conn, opts.get('settle_timeout', 10))
                else:
                    wal_end = datadir_utils.find_wal_end(opts['pg_bindir'], data_directory, control)
                    position, how = wal_end['lsn'], 'end of the WAL on disk (server stopped)'
                    result['wal_end'] = wal_end
                timeline = local_timeline(wal_dir, local['checkpoint_timeline'], local.get('received_tli'))
                fork = fork_check(timeline, position, probe['timeline'], probe['history'], probe['wal_position'])
                fork['position_source'] = how
                result['fork'] = fork
                if fork['can_follow'] is False:
                    raise FollowError('%s cannot follow %s: %s. Nothing was changed. Rejoin it with pg_rewind '
                                      '(playbooks/rejoin.yml) or make a new copy (playbooks/rebuild_standby.yml)'
                                      % (data_directory, probe['target'], fork['reason']), **result)
                if fork['can_follow'] is None and not opts.get('force'):
                    raise FollowError('cannot tell whether %s can follow %s: %s. Nothing was changed; set force: true '
                                      'to repoint it anyway' % (data_directory, probe['target'], fork['reason']),
                                      **result)

        changed, diff = apply_standby_config(data_directory, desired, check_mode)
        result['diff'] = _redact_diff(diff)
        result['settings_changed'] = sorted(k for k in diff['after'] if diff['before'].get(k) != diff['after'].get(k))
        result['changed'] = changed
        if check_mode or not result['running']:
            result['timeline'] = (probe or {}).get('timeline')
            return result

        if changed:
            query(conn, 'SELECT pg_reload_conf()')
            queries.append('SELECT pg_reload_conf()')
            ok, _v, _w = wait_until(lambda: _reloaded(conn, desired), 10)
            if not ok:
                result['changed'] = True
                raise FollowError('the server did not take the new primary_conninfo after pg_reload_conf() within 10 s; '
                                  'look at its log', **result)
            result['pending_restart'] = [r['name'] for r in query(
                conn, 'SELECT name FROM pg_settings WHERE pending_restart ORDER BY name')]

        if opts.get('wait', True) and not result['pending_restart']:
            min_tli = probe['timeline'] if probe and probe.get('timeline') else None
            start = time.time()
            ok, _v, waited = wait_until(
                lambda: receiver_matches(query_one(conn, _RECEIVER_SQL), upstream, min_tli),
                opts.get('timeout', 60), interval=0.2)
            receiver = query_one(conn, _RECEIVER_SQL)
            result['wal_receiver'] = _redact_receiver(receiver)
            result['waited_seconds'] = round(time.time() - start, 3)
            if not ok:
                raise FollowError(
                    'the standby does not stream from %s after %d s (WAL receiver: %s). Look at the server log of both '
                    'hosts (pg_hba.conf, TLS, password, slot %s, requested WAL removed)'
                    % (describe_target(upstream_libpq(upstream)), opts.get('timeout', 60),
                       _receiver_summary(receiver), opts.get('slot')), **result)
            result['streaming'] = True
            result['timeline'] = receiver.get('received_tli')
        else:
            receiver = query_one(conn, _RECEIVER_SQL)
            result['wal_receiver'] = _redact_receiver(receiver)
            result['streaming'] = receiver_matches(receiver, upstream)
            result['timeline'] = receiver.get('received_tli') if receiver else None
        return result
    finally:
        if conn is not None:
            conn.close()


def _reloaded(conn, desired):
    row = query_one(conn, "SELECT current_setting('primary_conninfo') AS c, current_setting('primary_slot_name') AS s")
    return row['c'] == (desired['primary_conninfo'] or '') and row['s'] == (desired['primary_slot_name'] or '')


def _redact_receiver(receiver):
    if not receiver:
        return None
    receiver = dict(receiver)
    if receiver.get('conninfo'):
        receiver['conninfo'] = redact(receiver['conninfo'])
    return receiver


def _receiver_summary(receiver):
    if not receiver:
        return 'not running'
    return '%s from %s:%s on timeline %s' % (
        receiver.get('status'), receiver.get('sender_host'), receiver.get('sender_port'), receiver.get('received_tli'))


def _redact_diff(diff):
    out = {}
    for side in ('before', 'after'):
        values = dict(diff.get(side) or {})
        if values.get('primary_conninfo'):
            values['primary_conninfo'] = redact(values['primary_conninfo'])
        out[side] = values
    return out

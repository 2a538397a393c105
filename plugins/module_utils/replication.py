# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replication operations: replication slots, replay pause/resume and promotion.

Each operation is planned first (reads only, every refusal raised as
``ReplicationError`` before anything changes) and then applied; the modules
pg_replication_slot, pg_replay_control and pg_promote are thin wrappers around
this file. Statements that change something are recorded in ``queries``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import time

from ansible_collections.pgha.multidc.plugins.module_utils.connection import (
    TERMINATE_BACKEND_SQL, psycopg2, describe_backend, describe_target, execute_recorded, is_in_recovery,
    probe_replication_server, query_one, render_query, server_version_num, terminate_backend, wait_until)
from ansible_collections.pgha.multidc.plugins.module_utils.conninfo import ConninfoError
from ansible_collections.pgha.multidc.plugins.module_utils.lsn import (
    format_lsn, lsn_diff, max_lsn, parse_lsn, pretty_bytes, InvalidLSN)
from ansible_collections.pgha.multidc.plugins.module_utils.node_state import (
    current_timeline, probe_upstream, read_slot, read_timeline_history, replay_status,
    upstream_libpq_params, read_primary_conninfo)


class ReplicationError(Exception):
    """A refusal or a failure, with a message fit for the user and result details."""

    def __init__(self, message, changed=False, **details):
        super(ReplicationError, self).__init__(message)
        self.changed = changed
        self.details = details


# -- replication slots ----------------------------------------------------------------

SLOT_NAME_MAX = 63
_SLOT_NAME_RE = re.compile(r'^[a-z0-9_]+$')
SLOT_FIELDS = ('slot_name', 'slot_type', 'plugin', 'database', 'active', 'active_pid',
               'restart_lsn', 'wal_status', 'safe_wal_size')
_OBJECT_IN_USE = '55006'


def slot_name_problem(name):
    """Why ``name`` cannot be a replication slot name, or None when it can."""
    if not name:
        return 'a replication slot name cannot be empty'
    if len(name) > SLOT_NAME_MAX:
        return 'replication slot name %r is %d characters long; the limit is %d' % (name, len(name), SLOT_NAME_MAX)
    if not _SLOT_NAME_RE.match(name):
        return ('replication slot name %r is invalid: it may contain only lower case letters, '
                'digits and underscores' % name)
    return None


def slot_view(row):
    """The returned form of a pg_replication_slots row (None stays None)."""
    if row is None:
        return None
    return dict((field, row.get(field)) for field in SLOT_FIELDS)


def _slot_summary(row):
    if row is None:
        return {'state': 'absent'}
    summary = {'state': 'present', 'slot_type': row['slot_type']}
    if row['slot_type'] == 'logical':
        summary.update(plugin=row['plugin'], database=row['database'])
    return summary


def _setting(conn, name):
    return query_one(conn, 'SELECT current_setting(%s) AS v', (name,))['v']


def plan_slot(conn, name, state, slot_type='physical', plugin=None, immediately_reserve=False, force=False):
    """Decide what ``state`` needs for slot ``name``; reads only.

    Returns a dict: ``action`` (``create``, ``drop`` or None), ``current`` (the row or
    None), ``database`` (of this connection), ``warnings`` and ``diff`` (before/after).
    Raises ReplicationError when the request cannot or must not be carried out.
    """
    current = read_slot(conn, name)
    database = query_one(conn, 'SELECT current_database() AS d')['d']
    plan = {'action': None, 'current': current, 'database': database, 'warnings': []}
    if state == 'present':
        if current is None:
            _check_can_create(conn, name, slot_type, plugin)
            plan['action'] = 'create'
        else:
            _check_matches(current, name, slot_type, plugin, database)
            if immediately_reserve and current['restart_lsn'] is None:
                plan['warnings'].append(
                    'replication slot %s exists without reserved WAL; immediately_reserve applies only '
                    'when a slot is created (WAL is reserved once a standby streams from it)' % name)
        after = {'state': 'present', 'slot_type': slot_type}
        if slot_type == 'logical':
            after.update(plugin=plugin, database=database)
    else:
        if current is not None:
            if current['slot_type'] == 'logical' and current['database'] != database:
                raise ReplicationError(
                    'logical replication slot %s belongs to database %s: it can only be dropped while '
                    'connected to that database (set login_db: %s)' % (name, current['database'], current['database']),
                    slot=slot_view(current))
            if current['active'] and not force:
                raise ReplicationError(
                    'replication slot %s is active: it is in use by %s. Dropping it would cut that consumer off '
                    'and release the WAL it still needs. Stop the consumer first, or set force: true to '
                    'terminate it and drop the slot.' % (name, describe_backend(conn, current['active_pid'])),
                    slot=slot_view(current))
            plan['action'] = 'drop'
        after = {'state': 'absent'}
    plan['diff'] = {'before': _slot_summary(current), 'after': after}
    return plan


def _check_can_create(conn, name, slot_type, plugin):
    in_use = query_one(conn, 'SELECT count(*) AS n FROM pg_replication_slots')['n']
    limit = int(_setting(conn, 'max_replication_slots'))
    if in_use >= limit:
        raise ReplicationError('cannot create replication slot %s: all %d slots are in use (max_replication_slots = %d)'
                               % (name, in_use, limit))
    if slot_type != 'logical':
        return
    wal_level = _setting(conn, 'wal_level')
    if wal_level != 'logical':
        raise ReplicationError('cannot create logical replication slot %s: wal_level is %s on this server; '
                               'logical decoding needs wal_level = logical (a restart is needed to change it)'
                               % (name, wal_level))
    if is_in_recovery(conn) and server_version_num(conn) < 160000:
        raise ReplicationError('cannot create logical replication slot %s on a standby: PostgreSQL 16 or newer is '
                               'needed for logical decoding on a standby' % name)
    if not plugin:
        raise ReplicationError('a logical replication slot needs an output plugin (plugin)')


def _check_matches(current, name, slot_type, plugin, database):
    wanted = slot_type if slot_type == 'physical' else '%s (plugin %s, database %s)' % (slot_type, plugin, database)
    found = current['slot_type']
    if found == 'logical':
        found = '%s (plugin %s, database %s)' % (found, current['plugin'], current['database'])
    if current['slot_type'] != slot_type or (slot_type == 'logical' and (
            current['plugin'] != plugin or current['database'] != database)):
        raise ReplicationError(
            'replication slot %s exists as a %s slot, not the requested %s one. It is not recreated '
            'silently (its consumer would lose its position): drop it first (state: absent) if it must change.'
            % (name, found, wanted), slot=slot_view(current))


_CREATE_LOGICAL_SQL = 'SELECT pg_create_logical_replication_slot(%s, %s)'
_CREATE_PHYSICAL_SQL = 'SELECT pg_create_physical_replication_slot(%s, %s)'
_DROP_SQL = 'SELECT pg_drop_replication_slot(%s)'


def _create_statement(name, slot_type, plugin, immediately_reserve):
    if slot_type == 'logical':
        return _CREATE_LOGICAL_SQL, (name, plugin)
    return _CREATE_PHYSICAL_SQL, (name, bool(immediately_reserve))


def create_slot(conn, name, slot_type, plugin=None, immediately_reserve=False, queries=None):
    """Create the slot and return its row."""
    sql, args = _create_statement(name, slot_type, plugin, immediately_reserve)
    execute_recorded(conn, sql, args, queries)
    return read_slot(conn, name)


def planned_queries(conn, plan, name, slot_type, plugin=None, immediately_reserve=False):
    """The statements that carrying out ``plan`` would run (for check mode)."""
    if plan['action'] == 'create':
        return [render_query(conn, *_create_statement(name, slot_type, plugin, immediately_reserve))]
    if plan['action'] == 'drop':
        queries = []
        if plan['current']['active']:
            queries.append(render_query(conn, TERMINATE_BACKEND_SQL, (plan['current']['active_pid'],)))
        return queries + [render_query(conn, _DROP_SQL, (name,))]
    return []


def drop_slot(conn, name, force=False, timeout=30, queries=None):
    """Drop slot ``name``. With ``force``, terminate the backend holding it (a walsender or
    a session decoding it), wait until the slot is released, then drop it; retried until
    ``timeout`` when the consumer reconnects in between. Returns the terminated pids."""
    deadline = time.time() + timeout
    terminated = []
    while True:
        current = read_slot(conn, name)
        if current is None:
            return terminated
        if current['active']:
            pid = current['active_pid']
            if not force:
                raise ReplicationError('replication slot %s became active (in use by %s) and was not dropped'
                                       % (name, describe_backend(conn, pid)), changed=bool(terminated))
            if time.time() >= deadline:
                raise ReplicationError('replication slot %s is still in use after %d s: its consumer keeps '
                                       'reconnecting (last pid %s)' % (name, timeout, pid),
                                       changed=True, terminated_pids=terminated)
            if pid not in terminated:
                terminate_backend(conn, pid, queries)
                terminated.append(pid)
            # Wait until this pid lets go; a reconnecting consumer may already hold the
            # slot again under a new pid, which the next round terminates in turn.
            released, _value, _waited = wait_until(
                lambda: (read_slot(conn, name) or {}).get('active_pid') != pid, max(deadline - time.time(), 0))
            if not released:
                raise ReplicationError('replication slot %s is still in use %d s after terminating pid %s'
                                       % (name, timeout, pid), changed=True, terminated_pids=terminated)
            continue
        try:
            execute_recorded(conn, _DROP_SQL, (name,), queries)
            return terminated
        except psycopg2.Error as error:
            # The consumer reconnected between the release and the drop: go round again.
            if error.pgcode != _OBJECT_IN_USE or not force or time.time() >= deadline:
                raise ReplicationError('cannot drop replication slot %s: %s' % (name, str(error).strip()),
                                       changed=bool(terminated), terminated_pids=terminated)


# -- replay pause and resume ------------------------------------------------------------

def require_standby(conn, what):
    """Raise a clear error on a server that is not in recovery."""
    status = replay_status(conn)
    if not status['in_recovery']:
        raise ReplicationError('cannot %s: this server is not in recovery (it is a primary); WAL replay '
                               'exists only on a standby' % what, **replay_view(status))
    return status


def replay_view(status):
    """The returned form of replay_status()."""
    return {
        'pause_state': status.get('pause_state'),
        'paused': status.get('paused', False),
        'in_recovery': status.get('in_recovery'),
        'receive_lsn': status.get('receive_lsn'),
        'replay_lsn': status.get('replay_lsn'),
        'replay_gap_bytes': status.get('replay_gap_bytes'),
        'startup_wait_event': status.get('startup_wait'),
        'wal_receiver_status': status.get('receiver_status'),
    }


PAUSE_SQL = 'SELECT pg_wal_replay_pause()'
RESUME_SQL = 'SELECT pg_wal_replay_resume()'


def request_pause(conn, queries=None):
    execute_recorded(conn, PAUSE_SQL, None, queries)


def request_resume(conn, queries=None):
    execute_recorded(conn, RESUME_SQL, None, queries)


def wait_for_pause(conn, timeout):
    """Wait until pg_get_wal_replay_pause_state() is 'paused': the startup process notices
    a pause request only before it replays its next WAL record. Returns (ok, status, s)."""
    ok, _value, waited = wait_until(lambda: replay_status(conn)['paused'], timeout)
    return ok, replay_status(conn), waited


def pending_pause_message(status, waited):
    """Why a pause request has not taken effect yet, for the timeout failure."""
    event = status.get('startup_wait') or 'nothing'
    hint = ''
    if status.get('replay_idle'):
        hint = ' it has replayed all WAL received so far and pauses when the next record arrives;'
    elif event.startswith('Lock:') or 'Conflict' in event:
        hint = (' replay is held up by a recovery conflict with a query on this standby (see '
                'max_standby_streaming_delay);')
    return ('replay pause requested but not in effect after %.1f s (pause_state %r, replay at %s, received up '
            'to %s): the startup process pauses before it replays the next WAL record and is waiting on %s;%s '
            'the request stays in place: rerun to wait again, or resume'
            % (waited, status.get('pause_state'), status.get('replay_lsn'), status.get('receive_lsn'), event, hint))


# -- promotion ------------------------------------------------------------------------

CHECK_PASSED = 'passed'
CHECK_SKIPPED = 'skipped'
CHECK_OVERRIDDEN = 'overridden'
CHECK_REFUSED = 'refused'
CHECK_PREDICTED = 'predicted'


class PromotionRefused(ReplicationError):
    pass


def validate_reference_lsn(text):
    """Problem with a user-given LSN, or None."""
    if text is None:
        return None
    try:
        parse_lsn(text)
    except InvalidLSN as error:
        return 'reference_lsn: %s' % error
    return None


def _verdict(check, problem, force, warnings):
    """Record a failed check: refuse, or with ``force`` go on and say so."""
    check['problem'] = problem
    if force:
        check['status'] = CHECK_OVERRIDDEN
        warnings.append('force: promoting although %s' % problem)
        return None
    check['status'] = CHECK_REFUSED
    return problem


def _judge_probe(probe, who):
    """(problem or None, note) for a server that must not be a primary."""
    if probe['reachable'] and probe['in_recovery'] is False:
        return ('split brain guard: %s still answers as a primary (timeline %s, WAL at %s, system identifier %s); '
                'promoting now would give the cluster two primaries. Stop or fence it first, or set force: true'
                % (who, probe.get('timeline'), probe.get('wal_position'), probe.get('system_identifier')), None)
    if probe['reachable'] and probe['in_recovery'] is None:
        return ('split brain guard: %s answered but did not say whether it is in recovery' % who, None)
    if probe['reachable']:
        return None, '%s answers as a standby (WAL at %s)' % (who, probe.get('wal_position'))
    if probe['answered']:
        return ('split brain guard: %s answered but its role could not be checked (%s); fix the probe '
                '(upstream_passfile, upstream_sslrootcert, pg_hba.conf) or set force: true' % (who, probe['error']), None)
    return None, '%s does not answer (%s)' % (who, probe['error'])


def check_upstream(conn, status, opts, warnings):
    """Check (a): the recorded upstream, and each of ``guard_hosts``, is not a primary;
    and a WAL receiver still streaming means the upstream is alive, whatever the probe says."""
    check = {'name': 'upstream', 'status': CHECK_PASSED, 'notes': [],
             'wal_receiver_status': status.get('receiver_status')}
    probe = probe_upstream(conn, opts.get('upstream_passfile'), opts.get('upstream_sslrootcert'),
                           opts.get('upstream_connect_timeout', 3), opts.get('upstream_tcp_timeout'))
    check['upstream'] = dict((k, probe.get(k)) for k in (
        'upstream', 'answered', 'reachable', 'in_recovery', 'system_identifier', 'timeline', 'wal_position', 'error'))
    problems = []
    if not probe['recorded']:
        check['notes'].append(probe['error'])
    else:
        problem, note = _judge_probe(probe, 'the upstream %s' % probe.get('upstream'))
        if problem:
            problems.append(problem)
        if note:
            check['notes'].append(note)
        if status.get('receiver_status') == 'streaming' and not probe['reachable'] \
                and not _receiver_stops(conn, opts.get('upstream_connect_timeout', 3)):
            problems.append('split brain guard: the WAL receiver of this standby is still streaming from its '
                            'upstream %s, which the probe could not reach (%s); the upstream is alive'
                            % (probe.get('upstream'), probe.get('error')))
    check['guard_hosts'] = []
    for target in opts.get('guard_hosts') or []:
        guard = probe_guard_host(conn, target, opts)
        check['guard_hosts'].append(guard)
        problem, note = _judge_probe(guard, guard['upstream'])
        if problem:
            problems.append(problem)
        if note:
            check['notes'].append(note)
    if not probe['recorded'] and not opts.get('guard_hosts'):
        check['status'] = CHECK_SKIPPED
    if problems:
        return check, probe, _verdict(check, '; '.join(problems), opts.get('force'), warnings)
    return check, probe, None


def _receiver_stops(conn, timeout):
    """Whether the WAL receiver stops streaming within ``timeout`` s (an upstream that has
    just gone away is noticed by the receiver a moment later than by a probe)."""
    return wait_until(lambda: replay_status(conn)['receiver_status'] != 'streaming', timeout)[0]


def probe_guard_host(conn, target, opts):
    """Probe one of guard_hosts with the upstream's user, passfile and TLS settings."""
    try:
        params = upstream_libpq_params(read_primary_conninfo(conn)) or {}
    except ConninfoError:
        params = {}
    for key in ('hostaddr', 'target_session_attrs'):
        params.pop(key, None)
    params.update(host=target['host'], port=target.get('port') or 5432,
                  connect_timeout=opts.get('upstream_connect_timeout', 3))
    for key, option in (('user', target.get('user')), ('passfile', opts.get('upstream_passfile')),
                        ('sslrootcert', opts.get('upstream_sslrootcert'))):
        if option:
            params[key] = option
    probe = probe_replication_server(params, tcp_timeout=opts.get('upstream_tcp_timeout'))
    probe['upstream'] = describe_target(params)
    return probe


def check_paused(status, opts, warnings):
    """The part of check (b) that needs no waiting: a paused standby is refused unless
    resume_replay (resumed later, after every check passed) or force."""
    check = {'name': 'replay', 'status': CHECK_PASSED, 'pause_state': status['pause_state'],
             'receive_lsn': status['receive_lsn'], 'replay_lsn': status['replay_lsn'],
             'gap_bytes_before': status['replay_gap_bytes'], 'resume_replay': False, 'notes': []}
    if status['pause_state'] in (None, 'not paused'):
        return check, None
    if opts.get('resume_replay'):
        check['resume_replay'] = True
        check['notes'].append('replay is %s: it is resumed once the other checks have passed' % status['pause_state'])
        return check, None
    problem = ('replay is %s at %s with %s received but not replayed; promotion would end the pause and replay '
               'them. Set resume_replay: true to resume and wait for replay first, or force: true'
               % (status['pause_state'], status['replay_lsn'], pretty_bytes(status['replay_gap_bytes'])))
    return check, _verdict(check, problem, opts.get('force'), warnings)


def check_lag(status, probe, opts, warnings):
    """Check (c): the node's WAL position against the reference (the most advanced of
    reference_lsn and the upstream's position when the upstream answered)."""
    position = max_lsn(status['receive_lsn'], status['replay_lsn'])
    references = {}
    if opts.get('reference_lsn'):
        references['reference_lsn'] = format_lsn(parse_lsn(opts['reference_lsn']))
    if probe and probe.get('reachable') and probe.get('wal_position'):
        references['upstream'] = probe['wal_position']
    reference = max_lsn(*references.values()) if references else None
    lag = lsn_diff(reference, position)
    check = {'name': 'lag', 'status': CHECK_PASSED, 'position': position, 'references': references,
             'reference_lsn': reference, 'lag_bytes': max(lag, 0) if lag is not None else None,
             'max_lag_bytes': opts.get('max_lag_bytes'), 'notes': []}
    bound = opts.get('max_lag_bytes')
    if bound is None:
        check['status'] = CHECK_SKIPPED
        check['notes'].append('no max_lag_bytes given')
        return check, None
    if reference is None:
        check['status'] = CHECK_SKIPPED
        check['notes'].append('no reference LSN is known (no reference_lsn, upstream not reachable)')
        warnings.append('max_lag_bytes is set but no reference LSN is known: the lag check was skipped')
        return check, None
    if position is None:
        return check, _verdict(check, 'the WAL position of this standby is unknown', opts.get('force'), warnings)
    if check['lag_bytes'] > bound:
        problem = ('this standby is at %s, %s behind the reference %s, more than max_lag_bytes (%s): promoting it '
                   'would lose that WAL' % (position, pretty_bytes(check['lag_bytes']), reference, pretty_bytes(bound)))
        return check, _verdict(check, problem, opts.get('force'), warnings)
    return check, None


def replay_caught_up(status):
    return status['replay_gap_bytes'] == 0 or status['replay_idle']


def check_replay(conn, check, opts, check_mode, warnings, queries):
    """Check (b), the waiting part: resume when asked, wait up to replay_timeout for replay to
    reach the received WAL, then compare what is left with max_unreplayed_bytes."""
    if check['resume_replay']:
        if check_mode:
            check['status'] = CHECK_PREDICTED
            check['notes'].append('check mode: replay would be resumed, the wait is not predicted')
            return check, None
        request_resume(conn, queries)
        check['resumed'] = True
    timeout = opts.get('replay_timeout', 60) if opts.get('wait_for_replay', True) else 0
    if check['pause_state'] not in (None, 'not paused') and not check['resume_replay']:
        timeout = 0  # paused and forced: replay cannot move, promotion itself ends the pause
    _ok, status, waited = (wait_until(lambda: _caught_up_status(conn), timeout))
    status = status if isinstance(status, dict) else replay_status(conn)
    remaining = 0 if status['replay_idle'] else status['replay_gap_bytes']
    check.update(waited_seconds=round(waited, 3), receive_lsn=status['receive_lsn'], replay_lsn=status['replay_lsn'],
                 gap_bytes=status['replay_gap_bytes'], unreplayed_bytes=remaining,
                 replay_idle=status['replay_idle'], max_unreplayed_bytes=opts.get('max_unreplayed_bytes', 0))
    if status['replay_idle'] and status['replay_gap_bytes']:
        check['notes'].append('replay waits for WAL; the last %d received bytes are an incomplete record'
                              % status['replay_gap_bytes'])
    if remaining > opts.get('max_unreplayed_bytes', 0):
        problem = ('%s received but not replayed after waiting %.1f s (replay at %s, received up to %s, startup '
                   'process waiting on %s), more than max_unreplayed_bytes (%s)'
                   % (pretty_bytes(remaining), waited, status['replay_lsn'], status['receive_lsn'],
                      status.get('startup_wait'), pretty_bytes(opts.get('max_unreplayed_bytes', 0))))
        return check, _verdict(check, problem, opts.get('force'), warnings)
    return check, None


def _caught_up_status(conn):
    status = replay_status(conn)
    return status if replay_caught_up(status) and not status['paused'] else False


def _write_check(conn):
    """A transaction that needs a primary: assigns a transaction id. None while impossible."""
    try:
        return query_one(conn, """
            SELECT pg_is_in_recovery() AS in_recovery, pg_current_xact_id()::text AS xid,
                   current_setting('transaction_read_only') AS transaction_read_only""")
    except psycopg2.Error:
        return None


def timeline_start(conn, timeline):
    """(previous timeline, LSN where ``timeline`` began) from its history file, or (None, None)."""
    history = read_timeline_history(conn, timeline)
    if not history:
        return None, None
    return history[-1]['timeline'], history[-1]['switchpoint']


def promote(conn, opts, check_mode=False, queries=None):
    """Promote the standby behind ``conn`` after the safety checks; see pg_promote's
    documentation. Returns the result dict; raises ReplicationError (PromotionRefused for
    a refusal, before anything changed). Statements that changed something are appended
    to ``queries`` as they succeed, so a caller can tell after any exception."""
    queries = [] if queries is None else queries
    warnings = []
    result = {'changed': False, 'promoted': False, 'queries': queries, 'warnings': warnings,
              'timeline': None, 'previous_timeline': None, 'promotion_lsn': None,
              'promotion_lsn_source': None, 'duration_seconds': None, 'checks': {}}
    if not is_in_recovery(conn):
        timeline = current_timeline(conn)
        previous, start = timeline_start(conn, timeline)
        result.update(timeline=timeline, previous_timeline=previous, promotion_lsn=start,
                      promotion_lsn_source='timeline_history' if start else None,
                      msg='already a primary on timeline %d: nothing to do' % timeline)
        return result

    checks = result['checks']
    status, waited = _status_once_at(conn, opts.get('reference_lsn'), opts.get('reference_wait') or 0)
    before_timeline = _standby_timeline(conn)

    def refuse(problem):
        raise PromotionRefused('promotion refused, nothing was changed: %s' % problem, checks=checks,
                               warnings=warnings, queries=queries)

    checks['upstream'], probe, problem = check_upstream(conn, status, opts, warnings)
    if problem:
        refuse(problem)
    checks['replay'], problem = check_paused(status, opts, warnings)
    if problem:
        refuse(problem)
    checks['lag'], problem = check_lag(status, probe, opts, warnings)
    checks['lag']['waited_seconds'] = waited
    if problem:
        refuse(problem)
    checks['replay'], problem = check_replay(conn, checks['replay'], opts, check_mode, warnings, queries)
    if problem:
        # resume_replay may have resumed replay: the only change before a refusal, asked for.
        done = 'replay was resumed, nothing else was changed' if queries else 'nothing was changed'
        raise PromotionRefused('promotion refused, %s: %s' % (done, problem), changed=bool(queries),
                               checks=checks, warnings=warnings, queries=queries)

    result['previous_timeline'] = before_timeline
    if check_mode:
        result.update(changed=True, msg='check mode: every check passed, this standby would be promoted')
        return result

    wait_seconds = opts.get('wait_seconds', 60)
    start = time.time()
    try:
        row = execute_recorded(conn, 'SELECT pg_promote(true, %s)', (wait_seconds,), queries)
    except psycopg2.Error as error:
        raise ReplicationError('pg_promote failed: %s' % str(error).strip(), changed=bool(queries[:-1]),
                               checks=checks, warnings=warnings, queries=queries)
    result['changed'] = True
    if not row[0]['pg_promote']:
        raise ReplicationError('promotion was requested but did not finish within %d s; PostgreSQL goes on with it: '
                               'check the server log, then rerun (a promoted server reports changed=false)'
                               % wait_seconds, changed=True, checks=checks, warnings=warnings, queries=queries)
    ok, write, _waited = wait_until(lambda: _write_check(conn), max(wait_seconds - (time.time() - start), 1))
    if not ok or write['in_recovery']:
        raise ReplicationError('the server left recovery but does not accept a write transaction after %d s'
                               % wait_seconds, changed=True, checks=checks, warnings=warnings, queries=queries)
    duration = round(time.time() - start, 3)
    result['duration_seconds'] = duration
    result['promoted'] = True
    checks['write'] = {'name': 'write', 'status': CHECK_PASSED, 'xid': write['xid'],
                       'transaction_read_only': write['transaction_read_only']}
    timeline = current_timeline(conn)
    previous, switchpoint = timeline_start(conn, timeline)
    if switchpoint:
        result.update(promotion_lsn=switchpoint, promotion_lsn_source='timeline_history', previous_timeline=previous)
    else:
        result.update(promotion_lsn=query_one(conn, 'SELECT pg_current_wal_lsn()::text AS l')['l'],
                      promotion_lsn_source='current_wal_lsn')
    result['timeline'] = timeline
    result['msg'] = 'promoted: timeline %s -> %s at %s in %.1f s' % (
        result['previous_timeline'], timeline, result['promotion_lsn'], duration)
    return result


def _status_once_at(conn, reference, timeout):
    """replay_status() once this standby has received (or replayed) ``reference``, waiting
    up to ``timeout`` seconds for it (a switchover: the old primary's shutdown checkpoint
    is on its way); after the timeout the current status, for the lag check to judge.
    Returns (status, seconds waited)."""
    if not reference or timeout <= 0:
        return replay_status(conn), 0

    def reached():
        status = replay_status(conn)
        gap = lsn_diff(max_lsn(status['receive_lsn'], status['replay_lsn']), reference)
        return status if gap is not None and gap >= 0 else None

    ok, status, waited = wait_until(reached, timeout)
    return (status if ok else replay_status(conn)), round(waited, 3)


def _standby_timeline(conn):
    """The timeline a standby is on: the WAL receiver's, else the last restartpoint's."""
    row = query_one(conn, """
        SELECT (SELECT received_tli FROM pg_stat_wal_receiver) AS received,
               (SELECT timeline_id FROM pg_control_checkpoint()) AS checkpoint""")
    value = row['received'] or row['checkpoint']
    return int(value) if value is not None else None

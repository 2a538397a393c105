# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgha.multidc keeper: the node's HA loop on etcd (docs/design.md, "Keeper").

Every ``loop_wait`` seconds: read this node (PostgreSQL as pgha_monitor over the socket,
the postmaster, the fence file), keep the etcd lease alive and publish what it saw, read
the cluster's keys, ask keeper.decide() what to do, do it. The decisions are the core
library's (plugins/module_utils/keeper.py, unit-tested); this file only carries them out:

- as root: the fence (fence file, PostgreSQL unit masked and stopped: fence.py);
- as the owner of the data directory (``--act`` in a child process): the promotion
  (replication.promote, with its split brain guard), the repoint (follow.follow), the
  followers' slots and synchronous_standby_names (node_config).

Every automatic decision (failover, refusal, self-fence, failsafe, standby leader change,
repoint) goes to the journal and, when configured, to a webhook (JSON POST) and/or a
command (JSON on its standard input).

Run: ``python3 pgha_keeper.py --config /etc/pgha/keeper.json`` (systemd: pgha-keeper.service).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import json
import logging
import os
import pwd
import signal
import subprocess
import sys
import threading
import time

from ansible_collections.pgha.multidc.plugins.module_utils import keeper
from ansible_collections.pgha.multidc.plugins.module_utils.connection import PostgresError, open_connection
from ansible_collections.pgha.multidc.plugins.module_utils.dcs import (
    BLOCKED, DECISION, LEADER, OPTIME, Dcs, DcsError, dc_leader_key, member_key)
from ansible_collections.pgha.multidc.plugins.module_utils.node_state import gather_node_state

try:
    import psycopg2
    DB_ERRORS = (psycopg2.Error, PostgresError)
except ImportError:  # pragma: no cover
    DB_ERRORS = (PostgresError,)

LOG = logging.getLogger('pgha-keeper')
NOTIFY_TIMEOUT = 5
# A repoint that failed is tried again after this long, not every loop.
FOLLOW_RETRY_S = 30
# After its promotion the keeper sets synchronous_standby_names while its followers arrive.
SYNC_WINDOW_S = 60
# A database peer that does not take a TCP connection within this time is taken as gone
# (the peers share a datacenter; libpq's own connect_timeout cannot go below 2 s).
PEER_TCP_TIMEOUT = 1.0
# The decisions that change the node: announced in the member key first (see announce).
CHANGING_ACTIONS = (keeper.FENCE, keeper.ELECT, keeper.FOLLOW)


def load_config(path):
    with open(path) as handle:
        config = json.load(handle)
    cfg = dict(keeper.DEFAULTS, **config['keeper'])
    problems = keeper.timing_problems(cfg['ttl'], cfg['loop_wait'], cfg['retry_timeout'])
    if problems:
        raise ValueError('; '.join(problems))
    config['keeper'] = cfg
    return config


# --------------------------------------------------------------------------------------
# Actions that run as the owner of the data directory (a child process: --act NAME)
# --------------------------------------------------------------------------------------
def _owner_connection(pg):
    return open_connection({'host': pg['socket'], 'port': pg['port'], 'user': 'postgres', 'dbname': 'postgres',
                            'connect_timeout': 5}, application_name='pgha-keeper')


def act_promote(pg, params):
    from ansible_collections.pgha.multidc.plugins.module_utils.replication import promote
    conn = _owner_connection(pg)
    try:
        return promote(conn, {'max_lag_bytes': params.get('max_lag_bytes'), 'reference_lsn': params.get('reference_lsn'),
                              'upstream_passfile': pg['replication_passfile'], 'upstream_sslrootcert': pg['sslrootcert'],
                              'upstream_connect_timeout': 2, 'upstream_tcp_timeout': PEER_TCP_TIMEOUT,
                              'replay_timeout': 60, 'wait_seconds': 60})
    finally:
        conn.close()


def act_follow(pg, params):
    from ansible_collections.pgha.multidc.plugins.module_utils.follow import follow
    from ansible_collections.pgha.multidc.plugins.module_utils.basebackup import server_running
    opts = {'data_directory': pg['data_directory'], 'pg_bindir': pg['bindir'], 'application_name': params['application_name'],
            'slot': params['application_name'], 'wait': True, 'timeout': 30, 'check_timeline': True,
            'upstream': {'host': params['host'], 'port': params['port'], 'user': pg['replication_user'],
                         'passfile': pg['replication_passfile'], 'sslmode': 'verify-full', 'sslrootcert': pg['sslrootcert']}}
    if pg.get('restore_command'):
        opts['restore_command'] = pg['restore_command']
    return follow(opts, lambda: _owner_connection(pg), lambda: server_running(pg['data_directory'], pg['bindir']))


def act_topology(pg, params):
    """The followers' slots, and synchronous_standby_names in postgresql.conf (checked by
    the server before its reload, as pg_node_config does)."""
    from ansible_collections.pgha.multidc.plugins.module_utils.node_config import (
        apply_files, apply_slots, changed_files, read_text)
    result = {'queries': [], 'changed': False}
    conn = _owner_connection(pg)
    try:
        apply_slots(conn, params.get('slots') or [], [], result, False)
        if params.get('sync_names') is not None:
            text = read_text(pg['conf_file']) or ''
            wanted = keeper_conf_line(text, 'synchronous_standby_names', params['sync_names'])
            changed = changed_files([{'path': pg['conf_file'], 'content': wanted, 'mode': '0644'}])
            apply_files(conn, changed, _write_file, result, False)
        result['changed'] = bool(result.get('files') or result.get('slots_created'))
        return result
    finally:
        conn.close()


def keeper_conf_line(text, name, value):
    """``text`` (postgresql.conf) with the line of ``name`` set to ``value`` (added when absent)."""
    line = "%s = '%s'" % (name, value.replace("'", "''"))
    out, found = [], False
    for current in text.splitlines():
        if current.split('=', 1)[0].strip() == name:
            out.append(line)
            found = True
        else:
            out.append(current)
    if not found:
        out.append(line)
    return '\n'.join(out) + '\n'


def _write_file(entry, content, backup):
    path = entry['path']
    tmp = '%s.pgha-keeper.tmp' % path
    with open(tmp, 'w') as handle:
        handle.write(content)
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


ACTIONS = {'promote': act_promote, 'follow': act_follow, 'topology': act_topology}


def run_action(config, name, params):
    """Run ``--act name`` as the owner of the data directory; (ok, result or error text).
    The child gets what it needs on its standard input: it cannot read the 0600 config."""
    owner = pwd.getpwuid(os.stat(config['postgresql']['data_directory']).st_uid)
    argv = [sys.executable, '-s', os.path.abspath(__file__), '--act', name]
    env = {'PATH': '/usr/bin:/bin', 'PYTHONPATH': os.environ.get('PYTHONPATH', ''), 'LANG': 'C.UTF-8',
           'HOME': owner.pw_dir or '/', 'PYTHONDONTWRITEBYTECODE': '1'}

    def drop():
        os.initgroups(owner.pw_name, owner.pw_gid)
        os.setgid(owner.pw_gid)
        os.setuid(owner.pw_uid)
    try:
        proc = subprocess.run(argv, input=json.dumps({'postgresql': config['postgresql'], 'params': params}),
                              capture_output=True, text=True, env=env, preexec_fn=drop, timeout=120, cwd='/',
                              check=False)
    except subprocess.TimeoutExpired:
        return False, '%s did not finish within 120 s' % name
    try:
        answer = json.loads(proc.stdout or '{}')
    except ValueError:
        answer = {'ok': False, 'error': (proc.stderr or proc.stdout or '').strip()[-800:]}
    if not answer.get('ok'):
        return False, answer.get('error') or (proc.stderr or '').strip()[-800:] or 'exit code %d' % proc.returncode
    return True, answer.get('result') or {}


def act_main(name):
    request = json.load(sys.stdin)
    try:
        result = ACTIONS[name](request['postgresql'], request['params'])
        print(json.dumps({'ok': True, 'result': result}, default=str))
    except Exception as error:  # pylint: disable=broad-except
        print(json.dumps({'ok': False, 'error': ' '.join(str(error).split())}, default=str))
    return 0


def utc_now():
    """ISO 8601 UTC with milliseconds (the order of two nodes' decisions is read from it)."""
    now = time.time()
    return time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(now)) + '.%03dZ' % int(now % 1 * 1000)


# --------------------------------------------------------------------------------------
# Notifications
# --------------------------------------------------------------------------------------
class Notifier:
    def __init__(self, settings, cluster, me):
        self.settings = settings or {}
        self.cluster = cluster
        self.me = me
        self.headers = {}
        if self.settings.get('webhook_headers_file'):
            try:
                with open(self.settings['webhook_headers_file']) as handle:
                    self.headers = json.load(handle)
            except (IOError, OSError, ValueError) as error:
                LOG.error('cannot read the webhook headers: %s', error)

    def __call__(self, event, message, **details):
        payload = dict(details, event=event, message=message, cluster=self.cluster, node=self.me, at=utc_now())
        LOG.warning('NOTIFY %s: %s', event, message)
        LOG.info('NOTIFY-JSON %s', json.dumps(payload, sort_keys=True, default=str))
        threading.Thread(target=self._send, args=(payload,), daemon=True).start()
        return payload

    def _send(self, payload):
        body = json.dumps(payload, sort_keys=True, default=str).encode('utf-8')
        url = self.settings.get('webhook_url')
        if url:
            import urllib.request
            request = urllib.request.Request(url, data=body, method='POST',
                                             headers=dict(self.headers, **{'Content-Type': 'application/json'}))
            try:
                urllib.request.urlopen(request, timeout=NOTIFY_TIMEOUT).close()
            except Exception as error:  # pylint: disable=broad-except
                LOG.error('webhook %s: %s', url.split('?')[0], error)
        command = self.settings.get('command')
        if command:
            try:
                subprocess.run(command, input=body, shell=True, timeout=NOTIFY_TIMEOUT * 2, capture_output=True,
                               check=False)
            except Exception as error:  # pylint: disable=broad-except
                LOG.error('notification command: %s', error)


# --------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------
class Keeper:
    def __init__(self, config, dcs=None):
        self.config = config
        self.cfg = config['keeper']
        self.pg = config['postgresql']
        self.me = self.cfg['me']
        self.spec = self.cfg['nodes'][self.me]
        etcd = config['etcd']
        self.dcs = dcs or Dcs(etcd['endpoints'], self.cfg['cluster'],
                              tls={'ca': etcd.get('ca'), 'cert': etcd.get('cert'), 'key': etcd.get('key')},
                              timeout=min(1.0, float(self.cfg['loop_wait'])),
                              budget=float(self.cfg['loop_wait']))
        self.notify = Notifier(config.get('notify'), self.cfg['cluster'], self.me)
        self.memory = {}
        self.lease = None
        self.conn = None
        self.stopping = threading.Event()
        self.last_said = None
        self.down_since = None
        self.follow_failed = {}
        self.sync_until = 0.0
        self.failsafe_said = False
        self.state_error = None

    # -- reading the node ----------------------------------------------------------------
    def postmaster_running(self):
        try:
            with open(os.path.join(self.pg['data_directory'], 'postmaster.pid')) as handle:
                pid = int(handle.readline().strip())
            os.kill(pid, 0)
            return True
        except (IOError, OSError, ValueError):
            return False

    def read_local(self):
        local = {'fenced': os.path.lexists(self.pg['fence_file']), 'answering': False}
        try:
            if self.conn is None or self.conn.closed:
                self.conn = open_connection({'host': self.pg['socket'], 'port': self.pg['port'],
                                             'user': self.pg['monitor_user'], 'dbname': 'postgres',
                                             'passfile': self.pg['monitor_passfile'], 'connect_timeout': 2,
                                             'options': '-c statement_timeout=2000'},
                                            application_name='pgha-keeper')
            state = gather_node_state(self.conn)
            local.update(answering=True, state=state, in_recovery=state['in_recovery'],
                         upstream_host=(state.get('upstream') or {}).get('host'))
            self.down_since = None
        except DB_ERRORS as error:
            if self.conn is not None:
                try:
                    self.conn.close()
                except Exception:  # pylint: disable=broad-except
                    pass
            self.conn = None
            local['error'] = ' '.join(str(error).split())
            local['postmaster_running'] = self.postmaster_running()
            self.down_since = self.down_since or time.monotonic()
            local['down_since'] = self.down_since
        return local

    def member_status(self, local):
        state = local.get('state') or {}
        return {'host': self.me, 'datacenter': self.spec['datacenter'], 'answering': local['answering'],
                'fenced': local['fenced'], 'role': state.get('role'), 'in_recovery': state.get('in_recovery'),
                'timeline': state.get('timeline'), 'receive_lsn': state.get('receive_lsn'),
                'replay_lsn': state.get('replay_lsn'), 'current_lsn': state.get('current_lsn'),
                'system_identifier': state.get('system_identifier'), 'upstream_host': local.get('upstream_host'),
                'streaming': state.get('streaming'), 'error': local.get('error'),
                'at': utc_now()}

    # -- etcd --------------------------------------------------------------------------------
    def keep_lease(self):
        """Refresh (or grant) the lease; the time the successful request was sent."""
        sent = time.monotonic()
        if self.lease is None or not self.dcs.refresh(self.lease):
            if self.lease is not None:
                LOG.warning('the etcd lease had expired: a new one is granted')
            self.lease = self.dcs.grant(self.cfg['ttl'])
        self.memory['last_renewed'] = sent

    def sync_with_etcd(self, local):
        try:
            self.keep_lease()
            self.dcs.put(member_key(self.me), self.member_status(local), self.lease)
            view = self.dcs.read()
        except DcsError as error:
            self._say('etcd', 'etcd: %s' % error, LOG.warning)
            return None
        self.memory['my_revision'] = view.revision(member_key(self.me))
        self.memory['held_leader'] = keeper.holder(view, LEADER) == self.me
        self.failsafe_said = False
        return view

    def ask_peers(self):
        """Whether each other database node accepts a TCP connection on its PostgreSQL port."""
        from ansible_collections.pgha.multidc.plugins.module_utils.connection import tcp_probe
        from ansible_collections.pgha.multidc.plugins.module_utils.probe import in_parallel
        peers = dict((h, (n['address'], n['port'])) for h, n in self.cfg['nodes'].items() if h != self.me)
        answers = in_parallel(lambda h: tcp_probe(peers[h][0], peers[h][1], PEER_TCP_TIMEOUT), sorted(peers))
        return dict((h, answer[0] == 'open') for h, answer in answers.items())

    def old_primary_alive(self, failed):
        """Whether the failed primary still answers as a primary (its keeper may be what died)."""
        from ansible_collections.pgha.multidc.plugins.module_utils.connection import probe_replication_server
        node = self.cfg['nodes'][failed]
        probe = probe_replication_server({'host': node['address'], 'port': node['port'], 'user': self.pg['replication_user'],
                                          'passfile': self.pg['replication_passfile'], 'sslmode': 'verify-full',
                                          'sslrootcert': self.pg['sslrootcert'], 'connect_timeout': 2},
                                         tcp_timeout=PEER_TCP_TIMEOUT)
        return bool(probe.get('reachable')) and probe.get('in_recovery') is False

    # -- one loop --------------------------------------------------------------------------
    def step(self):
        local = self.read_local()
        view = self.sync_with_etcd(local)
        # After etcd's answer (or its timeout): the time since the last renewal must count it.
        now = time.monotonic()
        role = keeper.local_role(local)
        if view is None and role == 'primary' and now - self.memory.get('last_renewed', now) >= self.cfg['retry_timeout']:
            self.memory['peer_answers'] = self.ask_peers()
        decision = keeper.decide(self.cfg, local, view, self.memory, now)
        if decision.action == keeper.ELECT and self.old_primary_alive(decision.details['failed_primary']):
            decision = keeper.Decision(keeper.WAIT, 'the leader key of %s is gone but it still answers as the primary '
                                                    '(its keeper may be down): no failover'
                                       % decision.details['failed_primary'])
        self._say('decision', '%s: %s' % (decision.action, decision.reason),
                  LOG.info if decision.action in (keeper.NOTHING, keeper.RENEW) else LOG.warning)
        acted = False
        try:
            if decision.action in CHANGING_ACTIONS and view is not None and self.announce(local, decision.action) is False:
                self._say('decision', 'maintenance began: %s not done' % decision.action, LOG.warning)
                return
            getattr(self, 'do_' + decision.action)(decision, local, view)
            acted = True
        finally:
            self.write_state(keeper.state_report(self.cfg, view, self.memory, decision, time.time(), time.monotonic(),
                                                 acted))

    def write_state(self, report):
        """The state file the health agent exports (world-readable: no secret in it),
        replaced in one rename so that a reader never sees half of it."""
        path = self.cfg.get('state_file')
        if not path:
            return
        try:
            temporary = path + '.new'
            with open(temporary, 'w') as handle:
                json.dump(report, handle, sort_keys=True, default=str)
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except (IOError, OSError) as error:
            if str(error) != self.state_error:
                LOG.warning('cannot write %s: %s', path, error)
            self.state_error = str(error)
            return
        self.state_error = None

    def announce(self, local, action):
        """Say in the member key that this keeper acts, unless maintenance began: an
        operation that takes the key waits for the announced actions to end (the next
        loop's member key, without ``acting``), and no new one starts under it. False
        under maintenance; None when etcd did not answer (the action goes on: a fence must
        not wait for etcd)."""
        try:
            return self.dcs.put_while_absent(member_key(self.me), dict(self.member_status(local), acting=action),
                                             self.lease, absent=(keeper.MAINTENANCE,))
        except DcsError as error:
            LOG.warning('cannot announce %s: %s', action, error)
            return None

    def _say(self, kind, text, log):
        if (kind, text) != self.last_said:
            log(text)
            self.last_said = (kind, text)

    # -- the actions ---------------------------------------------------------------------------
    def do_nothing(self, decision, local, view):
        key = dc_leader_key(self.spec['datacenter'])
        if view is not None and keeper.holder(view, key) == self.me:
            self._onto_my_lease(view, key)

    do_wait = do_nothing

    def _leader_value(self):
        return {'host': self.me, 'datacenter': self.spec['datacenter']}

    def _record(self, kind, decision, **details):
        payload = self.notify(kind, decision.reason, **details)
        try:
            self.dcs.put(DECISION, payload)
        except DcsError as error:
            LOG.error('cannot record the decision in etcd: %s', error)

    def _write_optime(self, local):
        state = local.get('state') or {}
        try:
            self.dcs.put(OPTIME, {'host': self.me, 'datacenter': self.spec['datacenter'], 'lsn': state.get('current_lsn'),
                                  'timeline': state.get('timeline'), 'system_identifier': state.get('system_identifier')})
        except DcsError as error:
            LOG.warning('cannot write the optime: %s', error)

    def _onto_my_lease(self, view, key):
        """A key this node holds on a lease of an earlier run of the keeper (restarted):
        moved onto the current lease before the old one ends."""
        if view.lease(key) not in (0, self.lease):
            try:
                self.dcs.replace_if(key, view.value(key), view.value(key), self.lease)
            except DcsError as error:
                LOG.warning('cannot move %s onto the current lease: %s', key, error)

    def do_renew_leader(self, decision, local, view):
        self._onto_my_lease(view, LEADER)
        self._write_optime(local)
        # The slots of new followers always (a standby datacenter's new leader streams from
        # here); synchronous_standby_names only while the followers arrive after a promotion.
        self.converge_followers(local, view, sync=time.monotonic() < self.sync_until)

    def do_acquire_leader(self, decision, local, view):
        try:
            taken = self.dcs.create(LEADER, self._leader_value(), self.lease)
            if taken and view.has(BLOCKED):
                self.dcs.delete(BLOCKED)
        except DcsError as error:
            LOG.warning('cannot take the leader key: %s', error)
            return
        if taken:
            LOG.warning('took the leader key')
            self._write_optime(local)

    def do_release_leader(self, decision, local, view):
        try:
            self.dcs.delete_if(LEADER, self._leader_value())
        except DcsError as error:
            LOG.warning('cannot give the leader key back: %s', error)

    def do_failsafe(self, decision, local, view):
        if not self.failsafe_said:
            self.notify('failsafe', decision.reason)
            self.failsafe_said = True

    def do_fence(self, decision, local, view):
        from ansible_collections.pgha.multidc.plugins.module_utils.fence import FenceError, fence_now
        text = ('# Fenced by pgha-keeper at %s: %s\n# playbooks/rejoin.yml node=%s removes this file once the host '
                'is a standby.\n' % (utc_now(), decision.reason, self.me))
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        try:
            # The stop must end before the lease can: what is left of it, less a margin.
            outcome = fence_now(self.pg['data_directory'], self.pg['service'], self.pg['fence_file'], text,
                                pg_bindir=self.pg['bindir'],
                                stop_timeout=max(1, int(self.cfg['ttl'] - self.cfg['retry_timeout'] - 2)))
            errors = outcome['errors'] + outcome['warnings']
        except FenceError as error:
            errors = [str(error)]
        if errors:
            LOG.error('the fence is incomplete: %s', '; '.join(errors))
        try:
            if view is not None or decision.details.get('release'):
                self.dcs.delete_if(LEADER, self._leader_value())
        except DcsError as error:
            LOG.warning('cannot give the leader key back after the fence: %s', error)
        self._record('self_fence', decision, errors=errors)

    def do_block(self, decision, local, view):
        payload = {'failed_primary': decision.details.get('failed_primary'), 'reason': decision.reason,
                   'decision': decision.details.get('decision'), 'by': self.me,
                   'at': utc_now()}
        try:
            created = self.dcs.create(BLOCKED, payload)
        except DcsError as error:
            LOG.warning('cannot record the refused failover: %s', error)
            return
        if created:
            self._record('failover_refused', decision, failed_primary=payload['failed_primary'],
                         candidate_decision=payload['decision'])

    def do_promote(self, decision, local, view):
        failed = decision.details['failed_primary']
        try:
            if not self.dcs.create(LEADER, self._leader_value(), self.lease, absent=(keeper.MAINTENANCE, BLOCKED)):
                LOG.warning('another node took the leader key first (or maintenance began)')
                return
        except DcsError as error:
            LOG.warning('cannot take the leader key: %s', error)
            return
        started = time.time()
        ok, result = run_action(self.config, 'promote', {'max_lag_bytes': self.cfg.get('max_lag_bytes'),
                                                         'reference_lsn': decision.details.get('reference_lsn')})
        if not ok:
            reason = 'automatic failover of %s to %s failed: %s' % (failed, self.me, result)
            try:
                self.dcs.create(BLOCKED, {'failed_primary': failed, 'reason': reason, 'by': self.me,
                                          'at': utc_now()})
                self.dcs.delete_if(LEADER, self._leader_value())
            except DcsError as error:
                LOG.error('cannot record the failed failover: %s', error)
            self._record('failover_failed', keeper.Decision(keeper.BLOCK, reason), failed_primary=failed)
            return
        local = self.read_local()
        self._write_optime(local)
        self.sync_until = time.monotonic() + SYNC_WINDOW_S
        self.converge_followers(local, view)
        self._record('failover', decision, failed_primary=failed, new_primary=self.me,
                     timeline=result.get('timeline'), promotion_lsn=result.get('promotion_lsn'),
                     duration_s=round(time.time() - started, 3), candidate_decision=decision.details.get('decision'))

    def converge_followers(self, local, view, sync=True):
        """The primary's slots for its followers and, with ``sync``, synchronous_standby_names
        from those that stream (operations.sync_standby_names, as the playbooks choose it)."""
        from ansible_collections.pgha.multidc.plugins.module_utils.operations import sync_standby_names
        nodes = self.cfg['nodes']
        leaders = keeper.current_dc_leaders(self.cfg, view)
        upstream = keeper.desired_upstreams(self.cfg, self.me, leaders)
        followers = [nodes[h]['application_name'] for h in sorted(upstream) if upstream[h] == self.me]
        state = local.get('state') or {}
        streaming = [r.get('application_name') for r in state.get('replicas') or [] if r.get('state') == 'streaming']
        sync_cfg = self.cfg.get('sync') or {}
        value, _note = sync_standby_names(sync_cfg.get('mode'), sync_cfg.get('count', 1),
                                          keeper.sync_intended(self.cfg, self.me), streaming, followers)
        current = (state.get('settings') or {}).get('synchronous_standby_names', '')
        missing_slots = [f for f in followers if f not in [s.get('slot_name') for s in state.get('slots') or []]]
        sync_names = value if sync and value != current else None
        if sync_names is None and not missing_slots:
            return
        if self.announce(local, 'topology') is False:
            return
        ok, result = run_action(self.config, 'topology', {'slots': followers, 'sync_names': sync_names})
        if ok:
            LOG.warning('followers %s: slots %s, synchronous_standby_names %s', ', '.join(followers) or 'none',
                        ', '.join(result.get('slots_created') or []) or 'in place',
                        'unchanged' if sync_names is None else repr(sync_names))
        else:
            LOG.error('cannot set the slots or synchronous_standby_names: %s', result)

    def do_follow(self, decision, local, view):
        target = decision.details['upstream']
        if time.monotonic() - self.follow_failed.get(target, -FOLLOW_RETRY_S) < FOLLOW_RETRY_S:
            return
        node = self.cfg['nodes'][target]
        ok, result = run_action(self.config, 'follow', {'host': node['address'], 'port': node['port'],
                                                        'application_name': self.spec['application_name']})
        if ok:
            self.follow_failed.pop(target, None)
            self._record('repointed', decision, upstream=target, streaming=result.get('streaming'))
        else:
            self.follow_failed[target] = time.monotonic()
            self._record('repoint_failed', keeper.Decision(keeper.FOLLOW, 'cannot follow %s: %s' % (target, result)),
                         upstream=target)

    def do_acquire_dc_leader(self, decision, local, view):
        key = dc_leader_key(self.spec['datacenter'])
        try:
            taken = self.dcs.create(key, self._leader_value(), self.lease)
        except DcsError as error:
            LOG.warning('cannot take the leader key of datacenter %s: %s', self.spec['datacenter'], error)
            return
        if taken and decision.details.get('decision'):
            self._record('standby_leader', decision, datacenter=self.spec['datacenter'])

    def do_release_dc_leader(self, decision, local, view):
        try:
            self.dcs.delete_if(dc_leader_key(self.spec['datacenter']), self._leader_value())
        except DcsError as error:
            LOG.warning('cannot give the leader key of the datacenter back: %s', error)

    def run(self):
        LOG.info('keeper of %s in datacenter %s: ttl %d s, loop %d s, retry %d s', self.me, self.spec['datacenter'],
                 self.cfg['ttl'], self.cfg['loop_wait'], self.cfg['retry_timeout'])
        notify_systemd('READY=1')
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                self.step()
            except Exception:  # pylint: disable=broad-except
                LOG.exception('keeper loop failed')
            self.stopping.wait(max(0.05, self.cfg['loop_wait'] - (time.monotonic() - started)))
        notify_systemd('STOPPING=1')

    def stop(self, *_args):
        self.stopping.set()


def notify_systemd(message):
    address = os.environ.get('NOTIFY_SOCKET')
    if not address:
        return
    import socket
    if address.startswith('@'):
        address = '\0' + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(address)
            sock.sendall(message.encode('ascii'))
        except OSError as error:
            LOG.warning('cannot notify systemd: %s', error)


def main(argv=None):
    parser = argparse.ArgumentParser(description='pgha.multidc keeper')
    parser.add_argument('--config', default='/etc/pgha/keeper.json')
    parser.add_argument('--act', choices=sorted(ACTIONS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.act:
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        return act_main(args.act)
    config = load_config(args.config)
    logging.basicConfig(level=getattr(logging, config.get('log_level', 'info').upper(), logging.INFO),
                        format='%(levelname)s %(message)s', stream=sys.stderr)
    node = Keeper(config)
    signal.signal(signal.SIGTERM, node.stop)
    signal.signal(signal.SIGINT, node.stop)
    node.run()
    return 0


if __name__ == '__main__':
    sys.exit(main())

# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgha.multidc health agent: HTTP checks for HAProxy on a PostgreSQL node.

Endpoints (200 when true, 503 when false, JSON bodies, GET and HEAD):

``/primary``          a primary that accepts writes: not in recovery,
                      ``default_transaction_read_only`` off and not fenced
``/replica``          a standby whose WAL receiver is streaming (and not fenced)
``/replica?lag=N``    the same, with a replay lag of at most N (bytes, or 16MB, 1GB, ...)
``/health``           PostgreSQL answers
``/status``           the node state from the core library (``gather_node_state``)

On its own port (``metrics_port``, 0: off), ``/metrics`` in the Prometheus text format
(the prometheus_client library): the node's state and the keeper's, which the keeper
writes to ``keeper_state_file`` every loop (plugins/module_utils/metrics.py names them).

One persistent connection over the Unix socket (re-opened when it breaks), read by one
thread on demand: at most once per ``cache_ttl_ms`` however many HAProxy checks arrive.
A check waits a little (``READ_WAIT``) for a fresh read, else gets the latest state, but
never one older than ``max_age_ms``: when the server cannot be read that fast, every check
answers 503 (see StateSource).

The node is *fenced* while the fence file exists (the failover tooling creates it on a
demoted or isolated primary): it then answers 503 to ``/primary`` and ``/replica``. The
file is looked at by every request, so a fence applies at once.

Run: ``python3 pgha_agent.py --config /etc/pgha/agent.conf`` with the core library importable
as ``ansible_collections.pgha.multidc.plugins.module_utils`` (installed next to this file).

``pgha_agent.py --config ... --start-guard`` is the PostgreSQL unit's ExecStartPre: a
server about to start as a primary (no standby.signal) asks the other database hosts
whether one of them is a primary now; if one is (a failover replaced this node while it
was down), it writes the fence file and refuses to start, so a returning old primary
never serves writes next to the new one. Peers that do not answer do not count: a whole
cluster can still be started cold. playbooks/rejoin.yml brings such a node back.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import configparser
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from ansible_collections.pgha.multidc.plugins.module_utils.connection import (
    PostgresError, is_in_recovery, open_connection)
from ansible_collections.pgha.multidc.plugins.module_utils.conninfo import REDACTED
from ansible_collections.pgha.multidc.plugins.module_utils.metrics import keeper_samples, node_samples
from ansible_collections.pgha.multidc.plugins.module_utils.node_state import (
    ROLE_PRIMARY, gather_node_state, read_settings)

try:
    import psycopg2
    DB_ERRORS = (psycopg2.Error,)
except ImportError:  # pragma: no cover - open_connection reports the missing driver
    psycopg2 = None
    DB_ERRORS = ()

VERSION = '1.0'
LOG = logging.getLogger('pgha-agent')

ENDPOINTS = ('/primary', '/replica', '/health', '/status')
# Settings that may carry credentials (an archive command with a key, for example):
# /status says whether they are set, never what they are.
SECRET_SETTINGS = ('restore_command', 'archive_command', 'archive_cleanup_command',
                   'recovery_end_command')

# How long a check waits for a fresh read before it takes the latest state (if young enough).
READ_WAIT = 0.1

_SIZE_RE = re.compile(r'^\s*([0-9]+)\s*([A-Za-z]*)\s*$')
_SIZE_UNITS = {'': 1, 'b': 1, 'kb': 1 << 10, 'mb': 1 << 20, 'gb': 1 << 30, 'tb': 1 << 40}


# --------------------------------------------------------------------------------------
# Pure decision logic (unit-tested without a server)
# --------------------------------------------------------------------------------------
class Snapshot:
    """What one read of the server found.

    ``state`` is gather_node_state()'s dict or None when PostgreSQL did not answer
    (``error`` then says why); ``read_only`` is default_transaction_read_only; ``taken_at``
    is the time.monotonic() value when the read began.
    """

    __slots__ = ('state', 'read_only', 'error', 'taken_at', 'duration_ms')

    def __init__(self, state=None, read_only=None, error=None, taken_at=0.0, duration_ms=None):
        self.state = state
        self.read_only = read_only
        self.error = error
        self.taken_at = taken_at
        self.duration_ms = duration_ms

    @property
    def answering(self):
        return self.state is not None and self.error is None


def parse_size(text):
    """Bytes of ``16777216``, ``16MB``, ``64kB``, ``1GB`` (1024 multiples, as PostgreSQL)."""
    match = _SIZE_RE.match(text or '')
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError('not a size: %r (use bytes or a unit: kB, MB, GB, TB)' % (text,))
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]


def is_truthy_setting(value):
    return str(value).strip().lower() in ('on', 'true', 'yes', '1')


def check_primary(snapshot, fenced=False):
    """(result, reason) for /primary."""
    state = snapshot.state
    if state.get('in_recovery') or state.get('role') != ROLE_PRIMARY:
        return False, 'in recovery (standby)'
    if snapshot.read_only is None:
        return False, 'default_transaction_read_only unknown'
    if snapshot.read_only:
        return False, 'default_transaction_read_only is on'
    if fenced:
        return False, 'fenced'
    return True, 'primary accepting writes'


def check_replica(snapshot, max_lag=None, fenced=False):
    """(result, reason) for /replica and /replica?lag=max_lag."""
    state = snapshot.state
    if not state.get('in_recovery'):
        return False, 'not in recovery (primary)'
    if fenced:
        return False, 'fenced'
    if not state.get('streaming'):
        receiver = state.get('wal_receiver') or {}
        return False, 'not streaming (WAL receiver: %s)' % (receiver.get('status') or 'none')
    if max_lag is not None:
        lag = state.get('replay_lag_bytes')
        if lag is None:
            return False, 'replay lag unknown'
        if lag > max_lag:
            return False, 'replay lag %d bytes > %d' % (lag, max_lag)
        return True, 'streaming, replay lag %d bytes <= %d' % (lag, max_lag)
    return True, 'streaming'


def redact_state(state):
    """The node state as /status serves it: secret-bearing settings hidden."""
    if state is None:
        return None
    state = dict(state)
    settings = dict(state.get('settings') or {})
    for name in SECRET_SETTINGS:
        if settings.get(name):
            settings[name] = REDACTED
    state['settings'] = settings
    return state


def start_guard_decision(recovery_signal, fenced, peers):
    """(allow, reason) for a PostgreSQL server about to start on this node.

    ``recovery_signal``: standby.signal or recovery.signal is in the data directory;
    ``fenced``: the fence file exists; ``peers``: {peer: 'primary' | 'standby' | error text}.
    """
    if recovery_signal:
        return True, 'starts as a standby (recovery signal file present)'
    if fenced:
        return False, ('the node is fenced (the fence file exists): it was replaced as the primary; '
                       'bring it back with playbooks/rejoin.yml')
    primaries = sorted(peer for peer, answer in peers.items() if answer == 'primary')
    if primaries:
        return False, ('%s %s a primary now: this node was replaced while it was down and must not start '
                       'as a second primary; bring it back with playbooks/rejoin.yml'
                       % (', '.join(primaries), 'is' if len(primaries) == 1 else 'are'))
    silent = sorted(peer for peer, answer in peers.items() if answer not in ('primary', 'standby'))
    if silent:
        return True, 'no other primary among the peers that answered (no answer from %s)' % ', '.join(silent)
    return True, 'no other primary among the peers'


def evaluate(path, query, snapshot, now, max_age, fenced=False):
    """HTTP status and JSON body for one request.

    ``path`` and ``query`` come from the request line, ``snapshot`` is the latest
    Snapshot (or None), ``now`` a time.monotonic() value, ``max_age`` the oldest state
    (seconds) that may still be served and ``fenced`` whether the fence file exists.
    """
    if path not in ENDPOINTS:
        return 404, {'error': 'unknown endpoint', 'endpoints': list(ENDPOINTS)}
    params = parse_qs(query or '', keep_blank_values=True)
    max_lag = None
    if path == '/replica' and 'lag' in params:
        try:
            max_lag = parse_size(params['lag'][-1])
        except ValueError as error:
            return 400, {'error': str(error)}

    body = {'check': path.lstrip('/')}
    if snapshot is None:
        result, reason = False, 'no state read yet'
    else:
        age = max(now - snapshot.taken_at, 0.0)
        body['age_ms'] = int(round(age * 1000))
        if age > max_age:
            result, reason = False, 'state older than %d ms (server not answering in time)' % int(max_age * 1000)
        elif not snapshot.answering:
            result, reason = False, 'PostgreSQL not answering: %s' % (snapshot.error or 'unknown error')
        elif path == '/health':
            result, reason = True, 'PostgreSQL answering'
        elif path == '/primary':
            result, reason = check_primary(snapshot, fenced)
        elif path == '/replica':
            result, reason = check_replica(snapshot, max_lag, fenced)
        else:
            result, reason = True, 'PostgreSQL answering'
        if snapshot.state is not None:
            body['role'] = snapshot.state.get('role')
            body['timeline'] = snapshot.state.get('timeline')
            body['replay_lag_bytes'] = snapshot.state.get('replay_lag_bytes')

    body['result'] = result
    body['reason'] = reason
    if path == '/status':
        if snapshot is not None and snapshot.state is not None:
            accepts_writes = check_primary(snapshot, fenced)[0]
        else:
            accepts_writes = False
        body.update({
            'accepts_writes': accepts_writes and result,
            'default_transaction_read_only': None if snapshot is None else snapshot.read_only,
            'fenced': fenced,
            'read_duration_ms': None if snapshot is None else snapshot.duration_ms,
            'postgresql': None if snapshot is None else redact_state(snapshot.state),
        })
    return (200 if result else 503), body


def read_keeper_state(path):
    """The keeper's state file as a dict; None when there is none (or it is being replaced)."""
    if not path:
        return None
    try:
        with open(path) as handle:
            state = json.load(handle)
    except (IOError, OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def render_metrics(samples):
    """The Prometheus text exposition of ``samples`` (metrics.Sample), one gauge family
    per name, by the prometheus_client library."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily

    class Collector:
        @staticmethod
        def collect():
            families = {}
            for sample in samples:
                names = sorted(sample.labels)
                family = families.get(sample.name)
                if family is None:
                    family = families[sample.name] = GaugeMetricFamily(sample.name, sample.help, labels=names)
                family.add_metric([str(sample.labels[name]) for name in names], sample.value)
            return list(families.values())

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    return generate_latest(registry)


def metrics_samples(snapshot, fenced, keeper_state, now):
    """Every sample the agent exports for one scrape."""
    answering = snapshot is not None and snapshot.answering
    accepts_writes = check_primary(snapshot, fenced)[0] if answering else False
    return (node_samples(snapshot.state if answering else None, answering, fenced, accepts_writes)
            + keeper_samples(keeper_state, now))


# --------------------------------------------------------------------------------------
# State source: one persistent connection, a short cache, single-flight refreshes
# --------------------------------------------------------------------------------------
class StateSource:
    """The node state, read through one connection by a reader thread, on demand.

    A check gets the last state when it is younger than cache_ttl. Otherwise it wakes the
    reader (one read at a time, none while nobody asks) and waits for the new state, but
    at most ``read_wait`` while the last state is younger than max_age: then it gets that
    one. Only when no state is young enough (the first check, or the first after a quiet
    period) does a check wait up to max_age. A quick server (reads take milliseconds) thus
    answers from a fresh read; a loaded one slows the reads, not the answers.
    """

    def __init__(self, libpq_params, fence_file=None, cache_ttl=0.2, max_age=1.0,
                 clock=time.monotonic, read_wait=READ_WAIT):
        self.libpq_params = dict(libpq_params)
        self.fence_file = fence_file
        self.cache_ttl = cache_ttl
        self.max_age = max_age
        self.read_wait = min(read_wait, max_age)
        self.clock = clock
        self.reads = 0
        self.connects = 0
        self._conn = None
        self._snapshot = None
        self._cond = threading.Condition()
        self._wanted = False
        self._stopping = False
        self._thread = None
        self._last_summary = None
        self._last_failure = None

    def start(self):
        self._thread = threading.Thread(target=self._run, name='reader', daemon=True)
        self._thread.start()
        return self

    def stop(self):
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._drop_connection()

    def is_fenced(self):
        """Checked at every request (a stat), not cached: a fence applies at once."""
        return bool(self.fence_file) and os.path.lexists(self.fence_file)

    def snapshot(self):
        """The latest state (see the class); None when there is none yet."""
        with self._cond:
            current = self._snapshot
            age = None if current is None else self.clock() - current.taken_at
            if age is not None and age < self.cache_ttl:
                return current
            self._wanted = True
            self._cond.notify_all()
            usable = age is not None and age <= self.max_age
            deadline = self.clock() + (self.read_wait if usable else self.max_age)
            while self._snapshot is current and not self._stopping:
                remaining = deadline - self.clock()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._snapshot

    def _run(self):
        while True:
            with self._cond:
                while not self._wanted and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                self._wanted = False
            try:
                snapshot = self._read()
            except Exception as error:  # pylint: disable=broad-except
                # A bug must not stop the reader: the checks would wait forever for it.
                if repr(error) != self._last_failure:
                    LOG.exception('reading the node state failed')
                    self._last_failure = repr(error)
                snapshot = Snapshot(error='internal error (see the agent log)', taken_at=self.clock())
            with self._cond:
                self._snapshot = snapshot
                # The checks that asked during the read are served by this one.
                self._wanted = False
                self._cond.notify_all()
            self._log_transition(snapshot)

    def _drop_connection(self):
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # pylint: disable=broad-except
                pass
            self._conn = None

    def _connection(self):
        if self._conn is None or self._conn.closed:
            self._conn = None
            self.connects += 1
            self._conn = open_connection(self.libpq_params, application_name='pgha-agent')
        return self._conn

    def _query(self):
        conn = self._connection()
        state = gather_node_state(conn)
        read_only = read_settings(conn, ('default_transaction_read_only',))
        return state, is_truthy_setting(read_only.get('default_transaction_read_only', 'on'))

    def _read(self):
        started = self.clock()
        self.reads += 1
        state, read_only, error = None, None, None
        for attempt in (1, 2):
            reused = self._conn is not None and not self._conn.closed
            try:
                state, read_only = self._query()
                break
            except PostgresError as exc:
                error = str(exc)
                self._drop_connection()
                break
            except DB_ERRORS as exc:
                error = ' '.join(str(exc).split()) or exc.__class__.__name__
                broken = self._conn is None or self._conn.closed
                if broken:
                    self._drop_connection()
                # A connection that was fine at the last read may have been closed by a
                # server restart meanwhile: try once more on a new one before saying no.
                if not (broken and reused and attempt == 1):
                    break
        duration_ms = round((self.clock() - started) * 1000, 2)
        return Snapshot(state=state, read_only=read_only, error=error, taken_at=started,
                        duration_ms=duration_ms)

    def _log_transition(self, snapshot):
        """One log line when the node changes (not one per check)."""
        if snapshot.answering:
            summary = 'role=%s streaming=%s read_only=%s' % (
                snapshot.state.get('role'), snapshot.state.get('streaming'), snapshot.read_only)
        else:
            summary = 'not answering: %s' % snapshot.error
        if summary != self._last_summary:
            (LOG.info if snapshot.answering else LOG.warning)('PostgreSQL %s', summary)
            self._last_summary = summary


# --------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------
class AgentHandler(BaseHTTPRequestHandler):
    server_version = 'pgha-agent/' + VERSION
    sys_version = ''
    protocol_version = 'HTTP/1.0'
    timeout = 5  # seconds to read a request: a stalled client cannot hold a thread
    # Headers and body leave in one write: HAProxy resets a check connection as soon as it
    # has read the status line, and a second write would then fail.
    wbufsize = 16384

    def do_GET(self):  # noqa: N802 (http.server naming)
        self._answer(send_body=True)

    def do_HEAD(self):  # noqa: N802
        self._answer(send_body=False)

    def _answer(self, send_body):
        agent = self.server.agent
        try:
            url = urlsplit(self.path)
            snapshot = agent.source.snapshot()
            status, body = evaluate(url.path, url.query, snapshot, agent.source.clock(),
                                    agent.source.max_age, agent.source.is_fenced())
            if url.path == '/status':
                body['agent'] = {'version': VERSION, 'reads': agent.source.reads,
                                 'connects': agent.source.connects,
                                 'uptime_s': int(time.monotonic() - agent.started)}
        except Exception:  # pylint: disable=broad-except
            LOG.exception('request %s failed', self.path)
            status, body = 500, {'error': 'internal error'}
        self._send(status, (json.dumps(body, sort_keys=True, default=str) + '\n').encode('utf-8'),
                   'application/json', send_body)

    def _send(self, status, payload, content_type, send_body):
        self.send_response(status)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(payload)))
        self.send_header('Cache-Control', 'no-store')
        self.end_headers()
        if send_body:
            self.wfile.write(payload)

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        # Several HAProxies check every second: no access log, only state transitions.
        LOG.debug('%s %s', self.address_string(), format % args)


class MetricsHandler(AgentHandler):
    """``/metrics`` on the metrics port (the firewall admits pgha_metrics_networks there)."""

    def _answer(self, send_body):
        agent = self.server.agent
        content_type = 'text/plain; charset=utf-8'
        try:
            if urlsplit(self.path).path != '/metrics':
                status, payload = 404, b'only /metrics here\n'
            else:
                from prometheus_client import CONTENT_TYPE_LATEST
                samples = metrics_samples(agent.source.snapshot(), agent.source.is_fenced(),
                                          read_keeper_state(agent.keeper_state_file), time.time())
                status, payload, content_type = 200, render_metrics(samples), CONTENT_TYPE_LATEST
        except Exception:  # pylint: disable=broad-except
            LOG.exception('request %s failed', self.path)
            status, payload = 500, b'internal error (see the agent log)\n'
        self._send(status, payload, content_type, send_body)


class AgentHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address, agent, handler=AgentHandler):
        self.address_family = socket.AF_INET6 if ':' in address[0] else socket.AF_INET
        self.agent = agent
        ThreadingHTTPServer.__init__(self, address, handler)

    def handle_error(self, request, client_address):
        """One line instead of a traceback; a client that went away is not an error."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, socket.timeout)):
            LOG.debug('client %s: %s', client_address[0], error)
        else:
            LOG.warning('request from %s failed: %r', client_address[0], error)


class Agent:
    def __init__(self, source, listen, port, metrics_port=0, keeper_state_file=None):
        self.source = source
        self.listen = listen
        self.port = port
        self.metrics_port = metrics_port
        self.keeper_state_file = keeper_state_file
        self.started = time.monotonic()
        self.servers = []
        self.stop_event = threading.Event()

    def bind(self):
        for address in self.listen:
            self.servers.append(AgentHTTPServer((address, self.port), self))
            LOG.info('listening on %s port %d', address, self.port)
            if self.metrics_port:
                self.servers.append(AgentHTTPServer((address, self.metrics_port), self, MetricsHandler))
                LOG.info('metrics on %s port %d', address, self.metrics_port)

    def serve(self):
        threads = []
        for server in self.servers:
            thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.5},
                                      name='http-%s' % server.server_address[0], daemon=True)
            thread.start()
            threads.append(thread)
        notify_systemd('READY=1')
        self.stop_event.wait()
        notify_systemd('STOPPING=1')
        for server in self.servers:
            server.shutdown()
            server.server_close()
        self.source.stop()

    def stop(self, *_args):
        self.stop_event.set()


def notify_systemd(message):
    """sd_notify() without libsystemd: for Type=notify units."""
    address = os.environ.get('NOTIFY_SOCKET')
    if not address:
        return
    if address.startswith('@'):
        address = '\0' + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode('ascii'))
    except OSError as error:
        LOG.warning('cannot notify systemd: %s', error)


# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------
DEFAULTS = {
    'agent': {'listen': '127.0.0.1', 'port': '8008', 'cache_ttl_ms': '200', 'max_age_ms': '1000',
              'fence_file': '', 'log_level': 'info', 'metrics_port': '0', 'keeper_state_file': ''},
    'postgresql': {'host': '/var/run/postgresql', 'port': '5432', 'user': 'pgha_monitor',
                   'dbname': 'postgres', 'passfile': '', 'connect_timeout': '2',
                   'statement_timeout_ms': '1000'},
    'start_guard': {'data_directory': '', 'peers': '', 'sslrootcert': ''},
}


def load_config(path):
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_dict(DEFAULTS)
    with open(path) as handle:
        parser.read_file(handle)
    agent, pg = parser['agent'], parser['postgresql']
    statement_timeout = pg.getint('statement_timeout_ms')
    libpq = {
        'host': pg.get('host'),
        'port': pg.getint('port'),
        'user': pg.get('user'),
        'dbname': pg.get('dbname'),
        'connect_timeout': pg.getint('connect_timeout'),
        # A stuck catalog lock must not hold the check: give up and answer 503.
        'options': '-c statement_timeout=%d -c lock_timeout=%d' % (statement_timeout, statement_timeout),
    }
    if pg.get('passfile'):
        libpq['passfile'] = pg.get('passfile')
    return {
        'listen': [item.strip() for item in agent.get('listen').split(',') if item.strip()],
        'port': agent.getint('port'),
        'cache_ttl': agent.getint('cache_ttl_ms') / 1000.0,
        'max_age': agent.getint('max_age_ms') / 1000.0,
        'fence_file': agent.get('fence_file') or None,
        'metrics_port': agent.getint('metrics_port'),
        'keeper_state_file': agent.get('keeper_state_file') or None,
        'log_level': agent.get('log_level').upper(),
        'libpq': libpq,
        'start_guard': start_guard_config(parser['start_guard'], libpq),
    }


def start_guard_config(section, libpq):
    """The data directory and one libpq dict per peer (host:port), TLS verify-full."""
    peers = {}
    for item in (section.get('peers') or '').split(','):
        item = item.strip()
        if not item:
            continue
        host, _sep, port = item.rpartition(':')
        params = dict(libpq, host=host or item, port=int(port) if host else 5432, sslmode='verify-full')
        if section.get('sslrootcert'):
            params['sslrootcert'] = section.get('sslrootcert')
        peers[item] = params
    return {'data_directory': section.get('data_directory') or None, 'peers': peers}


# --------------------------------------------------------------------------------------
# Start guard (ExecStartPre of the PostgreSQL unit)
# --------------------------------------------------------------------------------------
def ask_peer(params):
    """'primary', 'standby', or why the peer could not be asked."""
    try:
        conn = open_connection(params, application_name='pgha-start-guard')
    except PostgresError as error:
        return str(error)
    try:
        return 'standby' if is_in_recovery(conn) else 'primary'
    except DB_ERRORS as error:
        return 'query failed: %s' % str(error).strip()
    finally:
        conn.close()


def ask_peers(peers):
    """Ask every peer at once: a dead host costs one connect timeout, not one each."""
    answers = {}

    def ask(name, params):
        answers[name] = ask_peer(params)
    threads = [threading.Thread(target=ask, args=item, daemon=True) for item in sorted(peers.items())]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def run_start_guard(config):
    guard = config['start_guard']
    datadir = guard['data_directory']
    if not datadir:
        LOG.error('start guard: no data_directory in [start_guard]')
        return 1
    recovery_signal = any(os.path.exists(os.path.join(datadir, name))
                          for name in ('standby.signal', 'recovery.signal'))
    fence_file = config['fence_file']
    fenced = bool(fence_file) and os.path.exists(fence_file)
    peers = {} if recovery_signal or fenced else ask_peers(guard['peers'])
    for peer, answer in sorted(peers.items()):
        LOG.info('start guard: %s: %s', peer, answer)
    allow, reason = start_guard_decision(recovery_signal, fenced, peers)
    if allow:
        LOG.info('start guard: PostgreSQL may start: %s', reason)
        return 0
    if fence_file and not fenced:
        with open(fence_file, 'w') as handle:
            handle.write('fenced by the start guard at %s: %s\n' % (time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), reason))
    LOG.error('start guard: PostgreSQL must not start: %s', reason)
    return 1


def main(argv=None):
    parser = argparse.ArgumentParser(description='pgha.multidc health agent')
    parser.add_argument('--config', default='/etc/pgha/agent.conf')
    parser.add_argument('--start-guard', action='store_true',
                        help='check, before PostgreSQL starts, that no other node is the primary')
    args = parser.parse_args(argv)
    config = load_config(args.config)
    logging.basicConfig(level=getattr(logging, config['log_level'], logging.INFO),
                        format='%(levelname)s %(message)s', stream=sys.stderr)
    if args.start_guard:
        return run_start_guard(config)
    source = StateSource(config['libpq'], fence_file=config['fence_file'],
                         cache_ttl=config['cache_ttl'], max_age=config['max_age'])
    agent = Agent(source, config['listen'], config['port'], config['metrics_port'], config['keeper_state_file'])
    try:
        agent.bind()
    except OSError as error:
        LOG.error('cannot listen on %s port %d/%d: %s', ', '.join(config['listen']), config['port'],
                  config['metrics_port'], error)
        return 1
    signal.signal(signal.SIGTERM, agent.stop)
    signal.signal(signal.SIGINT, agent.stop)
    source.start()
    source.snapshot()  # connect now: the first check is then answered from the cache
    agent.serve()
    LOG.info('stopped')
    return 0


if __name__ == '__main__':
    sys.exit(main())

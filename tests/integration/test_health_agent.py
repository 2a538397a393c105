"""The real health agent (roles/health_agent/files/pgha_agent.py) against real servers.

A primary and a streaming standby from the harness; the database role ``pgha_monitor``
(member of pg_monitor) behind ``local all pgha_monitor scram-sha-256`` and a passfile, as
the roles deploy them; one agent process per server, run as the postgres user on a
loopback port. Checks the HTTP code of every endpoint on a primary, a standby, a
read-only primary, a fenced node, a standby whose replay is paused while WAL arrives, and
a stopped and restarted server, plus latency, caching and that no secret is served;
and /metrics on its own port, parsed with the prometheus_client library.
"""

import json
import os
import shutil
import statistics
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pgharness import REPLICATION_PASSWORD, REPO, chown_pg, free_port

AGENT = os.path.join(REPO, 'roles', 'health_agent', 'files', 'pgha_agent.py')
PYTHON = os.path.join(REPO, '.venv', 'bin', 'python')
MONITOR_USER = 'pgha_monitor'
MONITOR_PASSWORD = 'mon-Secret-77'
MB = 1 << 20


def timed_get(port, target, method='GET'):
    """(status, JSON body or None, seconds) of one request to the agent."""
    request = urllib.request.Request('http://127.0.0.1:%d%s' % (port, target), method=method)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    elapsed = time.monotonic() - started
    return status, (json.loads(raw) if raw else None), elapsed


def get(port, target, method='GET'):
    """(status, JSON body or None) of one request to the agent."""
    return timed_get(port, target, method)[:2]


def code(port, target):
    return get(port, target)[0]


def wait_code(port, target, expected, timeout=10.0):
    """Poll until ``target`` answers ``expected``; return the seconds it took."""
    started = time.monotonic()
    status = None
    while time.monotonic() - started < timeout:
        try:
            status = code(port, target)
        except OSError:
            status = None
        if status == expected:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError('%s answered %s, not %s, for %.0f s' % (target, status, expected, timeout))


class AgentProcess:
    """pgha_agent.py for one server, run as postgres (as the unit runs it as pgha-agent)."""

    def __init__(self, server, workdir):
        self.server = server
        self.port = free_port()
        self.metrics_port = free_port()
        self.home = os.path.join(workdir, 'agent-' + server.name)
        os.makedirs(self.home, exist_ok=True)
        self.passfile = os.path.join(self.home, 'agent.pgpass')
        self.fence_file = os.path.join(self.home, 'fenced')
        self.keeper_state_file = os.path.join(self.home, 'keeper-state.json')
        self.config = os.path.join(self.home, 'agent.conf')
        self.log = os.path.join(self.home, 'agent.log')
        with open(self.passfile, 'w') as handle:
            handle.write('*:*:*:%s:%s\n' % (MONITOR_USER, MONITOR_PASSWORD))
        os.chmod(self.passfile, 0o600)
        with open(self.config, 'w') as handle:
            handle.write('[agent]\nlisten = 127.0.0.1\nport = %d\nfence_file = %s\n'
                         'cache_ttl_ms = 200\nmax_age_ms = 1000\nmetrics_port = %d\nkeeper_state_file = %s\n'
                         '[postgresql]\nhost = %s\nport = %d\nuser = %s\ndbname = postgres\n'
                         'passfile = %s\n' % (self.port, self.fence_file, self.metrics_port, self.keeper_state_file,
                                              server.socket_dir, server.port, MONITOR_USER, self.passfile))
        chown_pg(self.home)
        self.process = None

    def start(self):
        cmd = [PYTHON, '-s', AGENT, '--config', self.config]
        if os.geteuid() == 0:
            cmd = ['runuser', '-u', 'postgres', '--'] + cmd
        env = dict(os.environ, PYTHONPATH=os.path.join(REPO, 'collections'), PYTHONDONTWRITEBYTECODE='1')
        env.pop('NOTIFY_SOCKET', None)
        self.logfh = open(self.log, 'ab')
        self.process = subprocess.Popen(cmd, env=env, stdout=self.logfh, stderr=subprocess.STDOUT, cwd='/')
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError('agent exited %s:\n%s' % (self.process.returncode, self.read_log()))
            try:
                get(self.port, '/health')
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError('agent did not listen:\n' + self.read_log())

    def read_log(self):
        with open(self.log) as handle:
            return handle.read()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process:
            self.logfh.close()


def prepend_hba_line(server, line):
    """A pg_hba line before the harness's own lines (first match wins); reload."""
    hba = os.path.join(server.datadir, 'pg_hba.conf')
    with open(hba) as handle:
        text = handle.read()
    if line not in text:
        with open(hba, 'w') as handle:
            handle.write(line + text)
        chown_pg(hba)
    server.execute('SELECT pg_reload_conf()')


def allow_monitor(server):
    """The agent's pg_hba line of design.md."""
    prepend_hba_line(server, 'local all %s scram-sha-256\n' % MONITOR_USER)


@pytest.fixture(scope='module')
def cluster(servers, workspace):
    primary = servers.primary('agent_primary')
    primary.execute("CREATE ROLE %s LOGIN PASSWORD '%s' IN ROLE pg_monitor" % (MONITOR_USER, MONITOR_PASSWORD))
    standby = servers.new('agent_standby').init_standby_of(primary)
    for server in (primary, standby):
        allow_monitor(server)
    workdir = os.path.join(workspace, 'agents')
    os.makedirs(workdir, exist_ok=True)
    agents = {'primary': AgentProcess(primary, workdir).start(),
              'standby': AgentProcess(standby, workdir).start()}
    yield {'primary': primary, 'standby': standby, 'agents': agents}
    for process in agents.values():
        process.stop()
    shutil.rmtree(workdir, ignore_errors=True)


def test_primary_answers(cluster):
    port = cluster['agents']['primary'].port
    assert code(port, '/primary') == 200
    assert code(port, '/replica') == 503
    assert code(port, '/replica?lag=16MB') == 503
    assert code(port, '/health') == 200
    status, body = get(port, '/status')
    assert status == 200
    assert body['postgresql']['role'] == 'primary' and body['accepts_writes'] is True
    assert body['default_transaction_read_only'] is False and body['fenced'] is False
    status, body = get(port, '/primary', method='HEAD')
    assert status == 200 and body is None
    assert code(port, '/nope') == 404
    assert code(port, '/replica?lag=lots') == 400


def test_standby_answers(cluster):
    port = cluster['agents']['standby'].port
    assert code(port, '/primary') == 503
    assert code(port, '/replica') == 200
    assert code(port, '/replica?lag=16777216') == 200
    assert code(port, '/replica?lag=16MB') == 200
    assert code(port, '/health') == 200
    status, body = get(port, '/status')
    assert status == 200
    state = body['postgresql']
    assert state['role'] == 'standby' and state['streaming'] is True
    assert body['accepts_writes'] is False


def scrape(agent):
    """{(name, ((label, value), ...)): value} of the agent's /metrics, by the library's parser."""
    with urllib.request.urlopen('http://127.0.0.1:%d/metrics' % agent.metrics_port, timeout=5) as response:
        assert response.status == 200
        assert response.headers['Content-Type'].startswith('text/plain; version=')
        text = response.read().decode('utf-8')
    return dict(((sample.name, tuple(sorted(sample.labels.items()))), sample.value)
                for family in text_string_to_metric_families(text) for sample in family.samples)


def test_metrics_of_a_primary_and_its_standby(cluster):
    primary = cluster['primary']
    primary.execute("SELECT pg_create_physical_replication_slot('metrics_probe', true)")
    slot = (('slot_name', 'metrics_probe'), ('slot_type', 'physical'))
    try:
        # The agent serves a state up to cache_ttl (200 ms) old: the slot shows at the next read.
        deadline = time.monotonic() + 5
        on_primary = scrape(cluster['agents']['primary'])
        while ('pgha_slot_active', slot) not in on_primary and time.monotonic() < deadline:
            time.sleep(0.1)
            on_primary = scrape(cluster['agents']['primary'])
        on_standby = scrape(cluster['agents']['standby'])
    finally:
        primary.execute("SELECT pg_drop_replication_slot('metrics_probe')")
    timeline = int(primary.scalar('SELECT timeline_id FROM pg_control_checkpoint()'))
    assert on_primary[('pgha_postgresql_up', ())] == 1 and on_primary[('pgha_primary', ())] == 1
    assert on_primary[('pgha_accepts_writes', ())] == 1 and on_primary[('pgha_fenced', ())] == 0
    assert on_primary[('pgha_timeline', ())] == timeline
    assert on_primary[('pgha_wal_current_lsn_bytes', ())] > 0
    assert on_primary[('pgha_slot_active', slot)] == 0 and on_primary[('pgha_slot_retained_wal_bytes', slot)] >= 0
    followers = [labels for name, labels in on_primary if name == 'pgha_replica_replay_lag_bytes']
    assert len(followers) == 1, followers
    assert on_standby[('pgha_primary', ())] == 0 and on_standby[('pgha_accepts_writes', ())] == 0
    assert on_standby[('pgha_wal_receiver_streaming', ())] == 1
    assert on_standby[('pgha_replay_paused', ())] == 0
    assert on_standby[('pgha_wal_replayed_lsn_bytes', ())] > 0
    # No keeper state file: no keeper metrics (absent, not zero).
    assert not [name for name, _labels in on_primary if name.startswith('pgha_keeper_')]
    # The health port does not serve metrics, the metrics port serves nothing else.
    assert code(cluster['agents']['primary'].port, '/metrics') == 404
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen('http://127.0.0.1:%d/primary' % cluster['agents']['primary'].metrics_port, timeout=5)
    assert refused.value.code == 404


def test_metrics_of_the_keeper_and_of_a_fence(cluster):
    agent = cluster['agents']['primary']
    now = time.time()
    state = {'at': now - 1, 'node': 'agent_primary', 'ttl': 10, 'etcd_reachable': True, 'lease_renewed_at': now - 3,
             'leader': 'agent_primary', 'holds_leader': True, 'maintenance': True, 'blocked': False,
             'decision': {'action': 'renew_leader', 'reason': 'primary'},
             'last_change': {'action': 'acquire_leader', 'reason': 'start', 'at': now - 60}}
    with open(agent.keeper_state_file, 'w') as handle:
        json.dump(state, handle)
    with open(agent.fence_file, 'w'):
        pass
    try:
        got = scrape(agent)
    finally:
        os.unlink(agent.fence_file)
        os.unlink(agent.keeper_state_file)
    assert got[('pgha_fenced', ())] == 1 and got[('pgha_accepts_writes', ())] == 0
    assert got[('pgha_keeper_leader', ())] == 1 and got[('pgha_keeper_maintenance', ())] == 1
    assert got[('pgha_keeper_leader_info', (('leader', 'agent_primary'),))] == 1
    assert 6 <= got[('pgha_keeper_lease_remaining_seconds', ())] <= 7
    assert got[('pgha_keeper_last_change_timestamp_seconds', (('action', 'acquire_leader'),))] == pytest.approx(now - 60)
    assert got[('pgha_keeper_state_age_seconds', ())] >= 1


def test_read_only_primary_is_not_primary(cluster):
    primary, port = cluster['primary'], cluster['agents']['primary'].port
    primary.execute('ALTER SYSTEM SET default_transaction_read_only = on')
    primary.execute('SELECT pg_reload_conf()')
    try:
        took = wait_code(port, '/primary', 503, timeout=5)
        assert took < 3.0  # a reload, then one read (cache 200 ms)
        assert 'default_transaction_read_only' in get(port, '/primary')[1]['reason']
        assert code(port, '/health') == 200
    finally:
        primary.execute('ALTER SYSTEM RESET default_transaction_read_only')
        primary.execute('SELECT pg_reload_conf()')
    wait_code(port, '/primary', 200, timeout=5)


def test_fenced_node_is_neither_primary_nor_replica(cluster):
    for name, endpoint in (('primary', '/primary'), ('standby', '/replica')):
        agent = cluster['agents'][name]
        with open(agent.fence_file, 'w'):
            pass
        try:
            assert wait_code(agent.port, endpoint, 503, timeout=3) < 0.5  # looked at per request
            assert get(agent.port, endpoint)[1]['reason'] == 'fenced'
            assert code(agent.port, '/health') == 200
        finally:
            os.unlink(agent.fence_file)
        wait_code(agent.port, endpoint, 200, timeout=3)


def test_paused_standby_falls_behind_the_lag_limit(cluster):
    primary, standby = cluster['primary'], cluster['standby']
    port = cluster['agents']['standby'].port
    standby.execute('SELECT pg_wal_replay_pause()')
    try:
        primary.execute('CREATE TABLE IF NOT EXISTS agent_lag (id int, pad text)')
        primary.execute("INSERT INTO agent_lag SELECT g, repeat('x', 500) FROM generate_series(1, 20000) g")
        deadline = time.monotonic() + 20
        lag = 0
        while time.monotonic() < deadline:
            lag = get(port, '/status')[1]['postgresql']['replay_lag_bytes'] or 0
            if lag > 4 * MB:
                break
            time.sleep(0.2)
        assert lag > 4 * MB, 'replay lag stayed at %d bytes' % lag
        assert code(port, '/replica?lag=1MB') == 503
        assert code(port, '/replica?lag=%d' % MB) == 503
        assert code(port, '/replica?lag=1GB') == 200
        assert code(port, '/replica') == 200  # still a streaming standby
        status, body = get(port, '/status')
        assert body['postgresql']['replay_paused'] is True
    finally:
        standby.execute('SELECT pg_wal_replay_resume()')
    wait_code(port, '/replica?lag=1MB', 200, timeout=20)


def test_no_secret_in_any_answer(cluster):
    standby = cluster['standby']
    port = cluster['agents']['standby'].port
    # A conninfo that carries the password and a restore_command with a "key".
    conninfo = standby.scalar("SELECT current_setting('primary_conninfo')")
    secret_conninfo = conninfo + " password=%s" % REPLICATION_PASSWORD
    standby.execute('ALTER SYSTEM SET primary_conninfo = %s', (secret_conninfo,))
    standby.execute("ALTER SYSTEM SET restore_command = 'false --key=restore-Secret-9 %f %p'")
    standby.execute('SELECT pg_reload_conf()')
    try:
        wait_code(port, '/replica', 200, timeout=20)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until the agent has read the new settings
            state = get(port, '/status')[1]['postgresql']
            if state['settings']['restore_command'] and '********' in state['upstream']['conninfo']:
                break
            time.sleep(0.1)
        secrets = (REPLICATION_PASSWORD, MONITOR_PASSWORD, 'restore-Secret-9')
        for agent in cluster['agents'].values():
            for target in ('/status', '/primary', '/replica', '/replica?lag=1MB', '/health', '/x'):
                status, body = get(agent.port, target)
                text = json.dumps(body)
                for secret in secrets:
                    assert secret not in text, '%s %s serves a secret' % (agent.server.name, target)
        state = get(port, '/status')[1]['postgresql']
        assert state['upstream']['conninfo'].count('********') == 1
        assert state['settings']['restore_command'] == '********'
        for agent in cluster['agents'].values():
            log = agent.read_log()
            for secret in secrets:
                assert secret not in log
    finally:
        standby.execute('ALTER SYSTEM SET primary_conninfo = %s', (conninfo,))
        standby.execute('ALTER SYSTEM RESET restore_command')
        standby.execute('SELECT pg_reload_conf()')
    wait_code(port, '/replica', 200, timeout=20)


def test_answers_in_milliseconds_with_one_read_per_cache_period(cluster):
    port = cluster['agents']['primary'].port
    before = get(port, '/status')[1]['agent']['reads']
    timings = []
    started = time.monotonic()
    for dummy in range(200):
        status, dummy, elapsed = timed_get(port, '/primary')
        assert status == 200
        timings.append(elapsed)
    # and several HAProxies at once
    errors = []

    def hammer():
        for dummy in range(50):
            if get(port, '/replica?lag=16MB')[0] != 503:
                errors.append('unexpected')
    threads = [threading.Thread(target=hammer) for dummy in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    duration = time.monotonic() - started
    reads = get(port, '/status')[1]['agent']['reads'] - before
    median_ms = statistics.median(timings) * 1000
    p99_ms = sorted(timings)[int(len(timings) * 0.99) - 1] * 1000
    print('agent latency: median %.2f ms, p99 %.2f ms; %d reads for %d requests in %.2f s'
          % (median_ms, p99_ms, reads, 600, duration))
    assert not errors
    assert median_ms < 50  # a few ms on an idle machine; generous for a loaded CI host
    # one read per 200 ms cache period at most (+1 for the period in progress)
    assert reads <= duration / 0.2 + 2


def test_stopped_server_then_reconnect(cluster):
    standby = cluster['standby']
    agent = cluster['agents']['standby']
    connects = get(agent.port, '/status')[1]['agent']['connects']
    standby.stop('fast')
    try:
        took = wait_code(agent.port, '/health', 503, timeout=5)
        assert took < 2.0  # never served from a state older than max_age (1 s)
        for target in ('/replica', '/replica?lag=1GB', '/primary', '/status'):
            assert code(agent.port, target) == 503
        status, body = get(agent.port, '/status')
        assert 'not answering' in body['reason'] and body['postgresql'] is None
    finally:
        standby.start()
    took = wait_code(agent.port, '/replica', 200, timeout=30)
    print('standby streaming again and /replica 200 after %.2f s' % took)
    assert get(agent.port, '/status')[1]['agent']['connects'] > connects
    assert 'not answering' in agent.read_log()


# --------------------------------------------------------------------------------------
# The start guard (pgha_agent.py --start-guard, the ExecStartPre of the PostgreSQL unit)
# asks real peers over TLS verify-full as pgha_monitor.
# --------------------------------------------------------------------------------------
def allow_monitor_over_tls(server):
    """The roles' pg_hba line for the guard: pgha_monitor from the other database hosts."""
    prepend_hba_line(server, 'hostssl postgres %s 127.0.0.1/32 scram-sha-256\n' % MONITOR_USER)


class StartGuard:
    """One guard run as postgres on a fake data directory, as the unit runs it (as root)."""

    def __init__(self, cluster, workspace, name):
        self.home = os.path.join(workspace, 'guard-' + name)
        self.datadir = os.path.join(self.home, 'data')
        os.makedirs(self.datadir, exist_ok=True)
        self.fence_file = os.path.join(self.home, 'fenced')
        self.agent = cluster['agents']['primary']
        self.ca = cluster['primary'].ca.ca_cert
        self.config = os.path.join(self.home, 'agent.conf')
        chown_pg(self.home)

    def run(self, peers):
        with open(self.config, 'w') as handle:
            handle.write('[agent]\nfence_file = %s\n[postgresql]\nuser = %s\npassfile = %s\n'
                         '[start_guard]\ndata_directory = %s\npeers = %s\nsslrootcert = %s\n'
                         % (self.fence_file, MONITOR_USER, self.agent.passfile, self.datadir,
                            ', '.join(peers), self.ca))
        cmd = [PYTHON, '-s', AGENT, '--config', self.config, '--start-guard']
        if os.geteuid() == 0:
            cmd = ['runuser', '-u', 'postgres', '--'] + cmd
        env = dict(os.environ, PYTHONPATH=os.path.join(REPO, 'collections'), PYTHONDONTWRITEBYTECODE='1')
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, cwd='/', check=False)


@pytest.fixture()
def guard(cluster, workspace):
    for server in (cluster['primary'], cluster['standby']):
        allow_monitor_over_tls(server)
    guard = StartGuard(cluster, workspace, 'node')
    yield guard
    shutil.rmtree(guard.home, ignore_errors=True)


def peer(server):
    return 'localhost:%d' % server.port


def test_start_guard_refuses_a_returning_old_primary_and_fences_it(cluster, guard):
    closed = 'localhost:%d' % free_port()
    result = guard.run([peer(cluster['standby']), peer(cluster['primary']), closed])
    assert result.returncode == 1, result.stderr
    assert '%s is a primary now' % peer(cluster['primary']) in result.stderr
    assert '%s: standby' % peer(cluster['standby']) in result.stderr
    with open(guard.fence_file) as handle:
        assert 'fenced by the start guard' in handle.read()
    # Fenced now: refused again without asking anyone.
    again = guard.run([peer(cluster['standby'])])
    assert again.returncode == 1 and 'the node is fenced' in again.stderr, again.stderr


def test_start_guard_lets_a_primary_start_when_no_peer_is_primary(cluster, guard):
    closed = 'localhost:%d' % free_port()
    result = guard.run([peer(cluster['standby']), closed])
    assert result.returncode == 0, result.stderr
    assert 'may start' in result.stderr and 'no answer from %s' % closed in result.stderr
    assert not os.path.exists(guard.fence_file)


def test_start_guard_lets_a_standby_start(cluster, guard):
    open(os.path.join(guard.datadir, 'standby.signal'), 'w').close()
    result = guard.run([peer(cluster['primary'])])
    assert result.returncode == 0, result.stderr
    assert 'starts as a standby' in result.stderr
    assert not os.path.exists(guard.fence_file)

"""The health agent's decisions: the HTTP code of each endpoint for each node state.

Pure logic only (roles/health_agent/files/pgha_agent.py: evaluate, parse_size, the
cache of StateSource); the real agent against real servers is in
tests/integration/test_health_agent.py.
"""

import importlib.util
import os
import threading
import time

import pytest

AGENT_PATH = os.path.join(os.path.dirname(__file__), '..', '..', 'roles', 'health_agent', 'files',
                          'pgha_agent.py')


def _load_agent():
    spec = importlib.util.spec_from_file_location('pgha_agent', AGENT_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


agent = _load_agent()

NOW = 1000.0
MAX_AGE = 1.0
MB = 1 << 20


def primary_state(**overrides):
    state = {'role': 'primary', 'in_recovery': False, 'streaming': False, 'wal_receiver': None,
             'timeline': 1, 'replay_lag_bytes': None, 'current_lsn': '0/3000060',
             'settings': {'restore_command': ''}}
    state.update(overrides)
    return state


def standby_state(**overrides):
    state = {'role': 'standby', 'in_recovery': True, 'streaming': True,
             'wal_receiver': {'status': 'streaming'}, 'timeline': 1, 'replay_lag_bytes': 0,
             'replay_paused': False, 'settings': {'restore_command': ''}}
    state.update(overrides)
    return state


def snap(state, read_only=False, error=None, age=0.05):
    return agent.Snapshot(state=state, read_only=read_only, error=error, taken_at=NOW - age,
                          duration_ms=1.5)


def code(path, snapshot, query='', fenced=False):
    return agent.evaluate(path, query, snapshot, NOW, MAX_AGE, fenced)[0]


DOWN = snap(None, read_only=None, error='cannot connect to pgha_monitor@/run/postgresql:5432')


class Fenced:
    """A snapshot of a node whose fence file exists."""

    def __init__(self, snapshot):
        self.snapshot = snapshot


# (description, snapshot, {endpoint(with query): expected code})
CASES = [
    ('primary', snap(primary_state()),
     {'/primary': 200, '/replica': 503, '/replica?lag=16MB': 503, '/health': 200, '/status': 200}),
    ('primary read-only (default_transaction_read_only=on)', snap(primary_state(), read_only=True),
     {'/primary': 503, '/replica': 503, '/health': 200, '/status': 200}),
    ('primary, read-only state unknown', snap(primary_state(), read_only=None),
     {'/primary': 503, '/health': 200}),
    ('fenced primary', Fenced(snap(primary_state())),
     {'/primary': 503, '/replica': 503, '/health': 200, '/status': 200}),
    ('streaming standby', snap(standby_state()),
     {'/primary': 503, '/replica': 200, '/replica?lag=0': 200, '/replica?lag=16777216': 200,
      '/health': 200, '/status': 200}),
    ('standby within lag', snap(standby_state(replay_lag_bytes=MB)),
     {'/replica': 200, '/replica?lag=1MB': 200, '/replica?lag=1048576': 200, '/replica?lag=16MB': 200}),
    ('standby over lag (replay paused, WAL arriving)',
     snap(standby_state(replay_lag_bytes=20 * MB, replay_paused=True)),
     {'/replica': 200, '/replica?lag=16MB': 503, '/replica?lag=1GB': 200, '/primary': 503}),
    ('standby with unknown lag', snap(standby_state(replay_lag_bytes=None)),
     {'/replica': 200, '/replica?lag=16MB': 503}),
    ('standby not streaming', snap(standby_state(streaming=False, wal_receiver=None)),
     {'/replica': 503, '/replica?lag=16MB': 503, '/primary': 503, '/health': 200}),
    ('standby, receiver restarting', snap(standby_state(streaming=False, wal_receiver={'status': 'starting'})),
     {'/replica': 503, '/health': 200}),
    ('fenced standby', Fenced(snap(standby_state())),
     {'/replica': 503, '/replica?lag=16MB': 503, '/health': 200}),
    ('fenced node, server down', Fenced(DOWN), {'/primary': 503, '/replica': 503, '/health': 503}),
    ('server down', DOWN,
     {'/primary': 503, '/replica': 503, '/replica?lag=16MB': 503, '/health': 503, '/status': 503}),
    ('stale primary state', snap(primary_state(), age=1.5),
     {'/primary': 503, '/replica': 503, '/health': 503, '/status': 503}),
    ('no state yet', None,
     {'/primary': 503, '/replica': 503, '/health': 503, '/status': 503}),
]


@pytest.mark.parametrize('description,snapshot,expected', CASES, ids=[c[0] for c in CASES])
def test_http_code_per_state(description, snapshot, expected):
    fenced = isinstance(snapshot, Fenced)
    if fenced:
        snapshot = snapshot.snapshot
    for target, status in expected.items():
        path, dummy, query = target.partition('?')
        assert code(path, snapshot, query, fenced) == status, '%s: %s' % (description, target)


def test_unknown_endpoint_and_bad_lag():
    primary = snap(primary_state())
    assert code('/', primary) == 404
    assert code('/master', primary) == 404
    assert code('/replica', snap(standby_state()), 'lag=banana') == 400
    assert code('/replica', snap(standby_state()), 'lag=-1') == 400
    assert code('/replica', snap(standby_state()), 'lag=16XB') == 400


def test_lag_parameter_last_value_wins_and_blank_is_invalid():
    standby = snap(standby_state(replay_lag_bytes=2 * MB))
    assert code('/replica', standby, 'lag=1MB&lag=4MB') == 200
    assert code('/replica', standby, 'lag=') == 400


@pytest.mark.parametrize('text,value', [
    ('0', 0), ('16777216', 16777216), ('16MB', 16 * MB), ('16mb', 16 * MB), ('64kB', 64 << 10),
    ('1GB', 1 << 30), ('2TB', 2 << 40), (' 5 B ', 5),
])
def test_parse_size(text, value):
    assert agent.parse_size(text) == value


@pytest.mark.parametrize('text', ['', 'MB', '1.5MB', '-1', '10PB', '1 M B'])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError):
        agent.parse_size(text)


def test_bodies_name_the_reason():
    status, body = agent.evaluate('/primary', '', snap(primary_state(), read_only=True), NOW, MAX_AGE)
    assert status == 503 and body['result'] is False
    assert 'default_transaction_read_only' in body['reason']
    status, body = agent.evaluate('/replica', 'lag=1MB', snap(standby_state(replay_lag_bytes=2 * MB)),
                                  NOW, MAX_AGE)
    assert status == 503 and '2097152 bytes > 1048576' in body['reason']
    status, body = agent.evaluate('/health', '', DOWN, NOW, MAX_AGE)
    assert status == 503 and 'not answering' in body['reason']


def test_status_hides_secret_settings():
    state = standby_state(settings={'restore_command': 'fetch --key=s3cr3t %f %p', 'archive_command': '',
                                    'wal_level': 'replica'})
    status, body = agent.evaluate('/status', '', snap(state), NOW, MAX_AGE)
    assert status == 200
    assert 's3cr3t' not in repr(body)
    settings = body['postgresql']['settings']
    assert settings['restore_command'] == agent.REDACTED
    assert settings['archive_command'] == ''
    assert settings['wal_level'] == 'replica'
    # the snapshot itself is not modified
    assert state['settings']['restore_command'].startswith('fetch')


def test_status_accepts_writes_flag():
    assert agent.evaluate('/status', '', snap(primary_state()), NOW, MAX_AGE)[1]['accepts_writes'] is True
    assert agent.evaluate('/status', '', snap(primary_state()), NOW, MAX_AGE, True)[1]['accepts_writes'] is False
    assert agent.evaluate('/status', '', snap(standby_state()), NOW, MAX_AGE)[1]['accepts_writes'] is False
    assert agent.evaluate('/status', '', snap(primary_state(), age=2), NOW, MAX_AGE)[1]['accepts_writes'] is False


class FakeSource(agent.StateSource):
    """StateSource with the database read replaced by a counter (and an optional delay)."""

    def __init__(self, clock, delay=0.0, **kwargs):
        agent.StateSource.__init__(self, {}, clock=clock, **kwargs)
        self.delay = delay

    fail = False

    def _read(self):
        self.reads += 1
        if self.fail:
            raise ValueError('a bug')
        started = self.clock()
        if self.delay:
            time.sleep(self.delay)
        return agent.Snapshot(state=primary_state(), read_only=False, taken_at=started)


def wait_until(predicate, timeout=2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def sources():
    started = []

    def make(*args, **kwargs):
        source = FakeSource(*args, **kwargs).start()
        started.append(source)
        return source
    yield make
    for source in started:
        source.stop()


def test_cache_reads_once_per_ttl(sources):
    now = [100.0]
    source = sources(lambda: now[0], cache_ttl=0.2, max_age=1.0)
    first = source.snapshot()  # nothing yet: waits for the first read
    assert first is not None and source.reads == 1
    for dummy in range(50):
        assert source.snapshot() is first
    now[0] += 0.19
    assert source.snapshot() is first
    time.sleep(0.05)
    assert source.reads == 1
    # older than the TTL: a new read, whose result the check gets (it is quick)
    now[0] += 0.02
    second = source.snapshot()
    assert second is not first and source.reads == 2
    time.sleep(0.05)
    assert source.snapshot() is second and source.reads == 2


def test_nobody_asks_nothing_is_read(sources):
    source = sources(time.monotonic, cache_ttl=0.01, max_age=1.0)
    time.sleep(0.2)
    assert source.reads == 0


def test_concurrent_checks_share_one_read(sources):
    source = sources(time.monotonic, delay=0.1, cache_ttl=0.2, max_age=1.0)
    results = []
    threads = [threading.Thread(target=lambda: results.append(source.snapshot())) for dummy in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert source.reads == 1
    assert len(results) == 20 and all(result is results[0] for result in results)


def test_slow_read_does_not_slow_the_answers(sources):
    """A read that hangs: checks get the last state after read_wait while it is young
    enough, then wait at most max_age and answer 503 rather than serve older data.
    (Bounds are generous: the test must hold on a loaded CI host.)"""
    source = sources(time.monotonic, cache_ttl=0.05, max_age=1.0, read_wait=0.2)
    first = source.snapshot()
    source.delay = 3.0
    time.sleep(0.1)
    started = time.monotonic()
    assert source.snapshot() is first  # young: a (slow) read starts, the last one is served
    assert 0.15 < time.monotonic() - started < 0.9
    while time.monotonic() - first.taken_at <= 1.05:
        time.sleep(0.05)
    started = time.monotonic()
    stale = source.snapshot()  # older than max_age: waits for the read, gives up after max_age
    waited = time.monotonic() - started
    assert 0.9 < waited < 2.5
    assert stale is first
    assert agent.evaluate('/primary', '', stale, time.monotonic(), source.max_age)[0] == 503
    assert source.reads == 2


def test_a_failing_read_does_not_stop_the_reader(sources):
    source = sources(time.monotonic, cache_ttl=0.01, max_age=1.0)
    source.fail = True
    broken = source.snapshot()
    assert broken.error and broken.state is None
    assert agent.evaluate('/health', '', broken, time.monotonic(), 1.0)[0] == 503
    source.fail = False
    time.sleep(0.02)
    assert wait_until(lambda: source.snapshot().state is not None)


def test_fence_is_looked_at_by_every_request(tmp_path):
    fence = tmp_path / 'fenced'
    source = agent.StateSource({}, fence_file=str(fence))
    assert source.is_fenced() is False
    fence.write_text('')
    assert source.is_fenced() is True
    assert agent.StateSource({}, fence_file=None).is_fenced() is False


def test_load_config(tmp_path):
    path = tmp_path / 'agent.conf'
    path.write_text('[agent]\nlisten = 127.0.0.1, 10.0.0.5\nport = 8008\nfence_file = /var/lib/pgha/fenced\n'
                    '[postgresql]\nhost = /var/run/postgresql\nport = 5433\npassfile = /etc/pgha/agent.pgpass\n')
    config = agent.load_config(str(path))
    assert config['listen'] == ['127.0.0.1', '10.0.0.5']
    assert config['cache_ttl'] == 0.2 and config['max_age'] == 1.0
    assert config['fence_file'] == '/var/lib/pgha/fenced'
    libpq = config['libpq']
    assert libpq['port'] == 5433 and libpq['user'] == 'pgha_monitor'
    assert libpq['passfile'] == '/etc/pgha/agent.pgpass'
    assert 'password' not in libpq
    assert 'statement_timeout=1000' in libpq['options']


# --------------------------------------------------------------------------------------
# Start guard: may PostgreSQL start here?
# --------------------------------------------------------------------------------------
def test_start_guard_lets_a_standby_start_whatever_the_peers_say():
    allow, reason = agent.start_guard_decision(True, True, {'10.0.0.2:5432': 'primary'})
    assert allow and 'standby' in reason


def test_start_guard_refuses_a_fenced_primary():
    allow, reason = agent.start_guard_decision(False, True, {})
    assert not allow and 'fenced' in reason and 'rejoin.yml' in reason


def test_start_guard_refuses_when_a_peer_is_the_primary():
    peers = {'10.0.0.2:5432': 'primary', '10.0.0.3:5432': 'standby', '10.0.0.4:5432': 'cannot connect to ...'}
    allow, reason = agent.start_guard_decision(False, False, peers)
    assert not allow
    assert reason.startswith('10.0.0.2:5432 is a primary now')


def test_start_guard_names_every_other_primary():
    allow, reason = agent.start_guard_decision(False, False, {'b:5432': 'primary', 'a:5432': 'primary'})
    assert not allow and reason.startswith('a:5432, b:5432 are a primary now')


def test_start_guard_lets_a_cold_cluster_start():
    # Peers that do not answer (a whole cluster booting, or a lost datacenter) do not count.
    peers = {'10.0.0.2:5432': 'cannot connect to ...', '10.0.0.3:5432': 'standby'}
    allow, reason = agent.start_guard_decision(False, False, peers)
    assert allow and 'no answer from 10.0.0.2:5432' in reason
    assert agent.start_guard_decision(False, False, {})[0]


def test_load_config_start_guard_peers(tmp_path):
    path = tmp_path / 'agent.conf'
    path.write_text('[agent]\nfence_file = /var/lib/pgha/fenced\n'
                    '[postgresql]\npassfile = /etc/pgha/agent.pgpass\n'
                    '[start_guard]\ndata_directory = /var/lib/postgresql/15/main\n'
                    'peers = 10.0.0.2:5432, 10.0.0.3:5433,, fd00::3:6432\n'
                    'sslrootcert = /etc/postgresql/tls/ca.crt\n')
    guard = agent.load_config(str(path))['start_guard']
    assert guard['data_directory'] == '/var/lib/postgresql/15/main'
    assert sorted(guard['peers']) == ['10.0.0.2:5432', '10.0.0.3:5433', 'fd00::3:6432']
    peer = guard['peers']['fd00::3:6432']
    assert peer['host'] == 'fd00::3' and peer['port'] == 6432
    assert peer['sslmode'] == 'verify-full' and peer['sslrootcert'] == '/etc/postgresql/tls/ca.crt'
    assert peer['passfile'] == '/etc/pgha/agent.pgpass' and peer['user'] == 'pgha_monitor'
    assert guard['peers']['10.0.0.3:5433']['port'] == 5433

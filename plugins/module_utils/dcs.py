# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster's keys in etcd (v3 API through its JSON gateway, with the etcd3gw library).

Leases, compare-and-swap and quorum are etcd's: this module only names the keys, encodes
their JSON values and tries the endpoints in turn. Used by the keeper (pgha-keeper on
every database node) and by the operations' maintenance lock (action plugin
pgha.multidc.pgha_dcs_lock).

Keys, under ``/pgha/<cluster>/``:

``leader``              the primary: ``{"host", "datacenter"}``, on the primary keeper's lease
``dc/<dc>/leader``      the leader of a standby datacenter, on its keeper's lease
``members/<host>``      what each keeper last saw of its node, on its lease
``optime``              the primary's last position ``{"host", "datacenter", "lsn", "timeline"}``,
                        no lease: it outlives the primary and is the failover's reference
``maintenance``         automatic decisions paused: ``{"by", "reason", "since"}``; a person's
                        (playbooks/maintenance.yml) has no lease, an operation's has one
``blocked``             an automatic failover that was refused: no retry until a person acts
``decision``            the last automatic decision (for status.yml and the notifications)
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import time

try:
    from etcd3gw.client import Etcd3Client
    from etcd3gw import exceptions as etcd_exceptions
    from etcd3gw.lease import Lease
    HAS_ETCD3GW = True
    ETCD_ERRORS = (etcd_exceptions.Etcd3Exception,)
except ImportError:  # pragma: no cover - reported by require_library()
    HAS_ETCD3GW = False
    ETCD_ERRORS = ()

try:
    import requests
    ETCD_ERRORS = ETCD_ERRORS + (requests.exceptions.RequestException,)
except ImportError:  # pragma: no cover
    pass

ETCD_ERRORS = ETCD_ERRORS + (ValueError, KeyError, OSError)

LEADER = 'leader'
OPTIME = 'optime'
MAINTENANCE = 'maintenance'
BLOCKED = 'blocked'
DECISION = 'decision'
MEMBERS = 'members/'


class DcsError(Exception):
    """etcd could not be reached or refused the request (no quorum, no answer)."""


def require_library():
    if not HAS_ETCD3GW:
        raise DcsError('the Python library etcd3gw is missing (Debian: python3-etcd3gw; pip: etcd3gw)')


def cluster_prefix(cluster):
    return '/pgha/%s/' % cluster


def dc_leader_key(datacenter):
    return 'dc/%s/leader' % datacenter


def member_key(host):
    return MEMBERS + host


def encode(value):
    return json.dumps(value, sort_keys=True, separators=(',', ':'))


def decode(raw):
    """The JSON value of a key; a value that is not JSON comes back as text."""
    text = raw.decode('utf-8', 'replace') if isinstance(raw, bytes) else (raw or '')
    try:
        return json.loads(text)
    except ValueError:
        return text


def _b64(text):
    return base64.b64encode(text.encode('utf-8')).decode('ascii')


def parse_endpoint(url):
    """(protocol, host, port) of ``https://host:port``."""
    protocol, sep, rest = url.partition('://')
    if not sep:
        protocol, rest = 'https', url
    rest = rest.rstrip('/')
    if rest.startswith('['):
        host, _sep, port = rest[1:].partition(']:')
    else:
        host, _sep, port = rest.rpartition(':')
        if not host:
            host, port = rest, ''
    return protocol, host, int(port or 2379)


class _TimedSession(requests.Session if HAS_ETCD3GW else object):
    """A requests session with a timeout on every request and nothing from the environment."""

    def __init__(self, timeout, tls):
        super(_TimedSession, self).__init__()
        self.trust_env = False
        self.request_timeout = timeout
        if tls.get('ca'):
            self.verify = tls['ca']
        if tls.get('cert') and tls.get('key'):
            self.cert = (tls['cert'], tls['key'])

    def request(self, *args, **kwargs):  # pylint: disable=arguments-differ
        kwargs.setdefault('timeout', self.request_timeout)
        return super(_TimedSession, self).request(*args, **kwargs)


class ClusterView:
    """One read of every key of the cluster: ``keys`` {relative key: (value, meta)} where
    meta carries ``mod_revision`` (int) and ``lease`` (int, 0 without)."""

    def __init__(self, keys):
        self.keys = keys

    def value(self, key, default=None):
        entry = self.keys.get(key)
        return default if entry is None else entry[0]

    def revision(self, key):
        entry = self.keys.get(key)
        return 0 if entry is None else entry[1]['mod_revision']

    def has(self, key):
        return key in self.keys

    def members(self):
        """{host: status} of the keepers whose lease is alive."""
        return dict((key[len(MEMBERS):], value) for key, (value, _meta) in self.keys.items()
                    if key.startswith(MEMBERS))

    def dc_leaders(self):
        """{datacenter: host} of the standby datacenters' leader keys held now."""
        leaders = {}
        for key, (value, _meta) in self.keys.items():
            parts = key.split('/')
            if len(parts) == 3 and parts[0] == 'dc' and parts[2] == 'leader' and isinstance(value, dict):
                leaders[parts[1]] = value.get('host')
        return leaders

    def lease(self, key):
        """The lease id of ``key`` (0 without a lease or when absent)."""
        entry = self.keys.get(key)
        return 0 if entry is None else entry[1]['lease']

    def member_revisions(self):
        return dict((key[len(MEMBERS):], meta['mod_revision']) for key, (_value, meta) in self.keys.items()
                    if key.startswith(MEMBERS))


class Dcs:
    """The cluster's keys in etcd, through the first endpoint that answers.

    ``endpoints``: ``https://host:2379`` URLs; ``tls``: {ca, cert, key} file paths;
    ``timeout``: seconds per request. Every method raises DcsError when no endpoint gives
    an answer (a member without quorum refuses: linearizable reads and writes only).
    """

    def __init__(self, endpoints, cluster, tls=None, timeout=2.0, client_factory=None, budget=None):
        if client_factory is None:
            require_library()
        if not endpoints:
            raise DcsError('no etcd endpoint configured')
        self.endpoints = list(endpoints)
        self.prefix = cluster_prefix(cluster)
        self.tls = tls or {}
        self.timeout = timeout
        # Seconds one call may spend over all endpoints (None: each tried once). The keeper
        # bounds it so that a loop never outlasts its lease arithmetic.
        self.budget = budget
        self._factory = client_factory or self._client_for
        self._clients = {}
        self._current = 0

    def _client_for(self, url):
        protocol, host, port = parse_endpoint(url)
        client = Etcd3Client(host=host, port=port, protocol=protocol, api_path='/v3/')
        # Our own session: etcd3gw's ignores its timeout (a partitioned endpoint would hang
        # the keeper) and requests lets REQUESTS_CA_BUNDLE or a proxy from the environment
        # override the cluster's CA.
        client.session = _TimedSession(self.timeout, self.tls)
        return client

    def _call(self, action):
        """action(client) on the current endpoint, then on each other one in turn."""
        errors = []
        count = len(self.endpoints)
        started = time.monotonic()
        for step in range(count):
            index = (self._current + step) % count
            if step and self.budget is not None and time.monotonic() - started >= self.budget:
                # The next call starts with the endpoint not tried yet.
                self._current = index
                errors.append('no time left to try %s' % ', '.join(
                    self.endpoints[(index + k) % count] for k in range(count - step)))
                break
            url = self.endpoints[index]
            if url not in self._clients:
                self._clients[url] = self._factory(url)
            try:
                answer = action(self._clients[url])
            except ETCD_ERRORS as error:
                errors.append('%s: %s' % (url, ' '.join(str(error).split())[:200] or error.__class__.__name__))
                continue
            self._current = index
            return answer
        raise DcsError('etcd did not answer: %s' % '; '.join(errors))

    def key(self, name):
        return self.prefix + name

    # -- reads ---------------------------------------------------------------------------
    def read(self):
        """The ClusterView of every key under the cluster's prefix, in one request."""
        def action(client):
            return client.get_prefix(self.prefix)
        keys = {}
        for raw, meta in self._call(action):
            name = meta['key']
            name = name.decode('utf-8') if isinstance(name, bytes) else name
            keys[name[len(self.prefix):]] = (decode(raw), {
                'mod_revision': int(meta.get('mod_revision', 0)), 'lease': int(meta.get('lease', 0) or 0)})
        return ClusterView(keys)

    def members_status(self):
        """[{endpoint, answered, leader, raft_term, error}] of every endpoint, and the members list."""
        report = []
        for url in self.endpoints:
            if url not in self._clients:
                self._clients[url] = self._factory(url)
            try:
                status = self._clients[url].status()
                report.append({'endpoint': url, 'answered': True, 'error': None,
                               'member_id': str(status.get('header', {}).get('member_id')),
                               'leader': str(status.get('leader')), 'raft_term': status.get('raftTerm'),
                               'version': status.get('version')})
            except ETCD_ERRORS as error:
                report.append({'endpoint': url, 'answered': False, 'error': ' '.join(str(error).split())[:200]})
        return report

    # -- leases --------------------------------------------------------------------------
    def grant(self, ttl):
        """A new lease of ``ttl`` seconds (its id)."""
        return int(self._call(lambda client: client.lease(int(ttl)).id))

    def refresh(self, lease_id):
        """Keep the lease alive; False when it has expired already (it cannot come back)."""
        return self._call(lambda client: Lease(lease_id, client).refresh()) > 0

    def time_to_live(self, lease_id):
        """Seconds left on the lease (-1 once it has ended)."""
        return self._call(lambda client: Lease(lease_id, client).ttl())

    def revoke(self, lease_id):
        """End the lease: every key on it goes at once."""
        return self._call(lambda client: Lease(lease_id, client).revoke())

    # -- writes --------------------------------------------------------------------------
    def put(self, name, value, lease_id=None):
        payload = {'key': _b64(self.key(name)), 'value': _b64(encode(value))}
        if lease_id:
            payload['lease'] = lease_id
        return self._txn([], [{'request_put': payload}], [])

    def delete(self, name):
        return self._txn([], [{'request_delete_range': {'key': _b64(self.key(name))}}], [])

    def create(self, name, value, lease_id=None, absent=()):
        """Write ``name`` only if neither it nor any of ``absent`` exists (one transaction).
        True when written."""
        compare = [self._absent(key) for key in (name,) + tuple(absent)]
        payload = {'key': _b64(self.key(name)), 'value': _b64(encode(value))}
        if lease_id:
            payload['lease'] = lease_id
        return self._txn(compare, [{'request_put': payload}], [])

    def put_while_absent(self, name, value, lease_id=None, absent=()):
        """Write ``name`` (whether it exists or not) only while none of ``absent`` exists
        (one transaction). True when written."""
        payload = {'key': _b64(self.key(name)), 'value': _b64(encode(value))}
        if lease_id:
            payload['lease'] = lease_id
        return self._txn([self._absent(key) for key in absent], [{'request_put': payload}], [])

    def replace_if(self, name, expected, value, lease_id=None):
        """Write ``name`` only while it holds ``expected`` (compared as encoded JSON)."""
        payload = {'key': _b64(self.key(name)), 'value': _b64(encode(value))}
        if lease_id:
            payload['lease'] = lease_id
        compare = [{'key': _b64(self.key(name)), 'result': 'EQUAL', 'target': 'VALUE',
                    'value': _b64(encode(expected))}]
        return self._txn(compare, [{'request_put': payload}], [])

    def delete_if(self, name, expected):
        """Delete ``name`` only while it holds ``expected``. True when deleted."""
        compare = [{'key': _b64(self.key(name)), 'result': 'EQUAL', 'target': 'VALUE',
                    'value': _b64(encode(expected))}]
        return self._txn(compare, [{'request_delete_range': {'key': _b64(self.key(name))}}], [])

    def _absent(self, name):
        # A key that does not exist has create_revision 0.
        return {'key': _b64(self.key(name)), 'result': 'EQUAL', 'target': 'CREATE', 'create_revision': '0'}

    def _txn(self, compare, success, failure):
        answer = self._call(lambda client: client.transaction(
            {'compare': compare, 'success': success, 'failure': failure}))
        return bool(answer.get('succeeded', False))

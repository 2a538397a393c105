"""Fixtures: a throwaway CA, real PostgreSQL servers and an Ansible runner."""

import os
import shutil
import subprocess
import time

import pytest

from ansible_collections.pgha.multidc.plugins.module_utils.dcs import Dcs, DcsError
from pgharness import AnsibleRunner, PgServer, TestCA, free_port, make_base, remove_base


@pytest.fixture(scope='session')
def workspace():
    base = make_base()
    yield base
    remove_base(base)


@pytest.fixture(scope='session')
def ca(workspace):
    return TestCA(os.path.join(workspace, 'ca'))


class ServerFactory:
    """Creates servers under one directory and stops them all at teardown."""

    def __init__(self, base, ca):
        self.base, self.ca, self.servers = base, ca, []

    def new(self, name):
        server = PgServer(self.base, name, self.ca)
        self.servers.append(server)
        return server

    def primary(self, name='primary'):
        return self.new(name).init_primary()

    def close(self):
        for server in reversed(self.servers):
            server.destroy()


@pytest.fixture(scope='module')
def servers(workspace, ca, request):
    base = os.path.join(workspace, request.module.__name__)
    os.makedirs(base, exist_ok=True)
    os.chmod(base, 0o755)
    factory = ServerFactory(base, ca)
    yield factory
    factory.close()


@pytest.fixture(scope='module')
def primary(servers, request):
    """A primary named ``<SERVER_PREFIX>_primary`` (SERVER_PREFIX is set by the test module).
    A module that needs more in its primary defines its own ``primary`` fixture."""
    return servers.primary('%s_primary' % request.module.SERVER_PREFIX)


@pytest.fixture(scope='module')
def standby(servers, primary, request):
    """A standby of ``primary`` named ``<SERVER_PREFIX>_standby`` that streams through a
    physical slot of the same name on the primary."""
    name = '%s_standby' % request.module.SERVER_PREFIX
    return servers.new(name).init_standby_of(primary, slot=name)


@pytest.fixture(scope='module')
def ansible(workspace, request):
    return AnsibleRunner(os.path.join(workspace, 'ansible-' + request.module.__name__))


ETCD = shutil.which('etcd') or '/usr/bin/etcd'


@pytest.fixture(scope='module')
def etcd(workspace, ca, request):
    """A one-member etcd on loopback with TLS and client certificates required, as the
    etcd role configures it; one per test module."""
    if not os.path.exists(ETCD):
        pytest.fail('etcd is missing: scripts/ensure-packages.sh installs etcd-server')
    home = os.path.join(workspace, 'etcd-' + request.module.__name__)
    os.makedirs(home, exist_ok=True)
    client, peer = free_port(), free_port()
    url = 'https://127.0.0.1:%d' % client
    log = open(os.path.join(home, 'etcd.log'), 'w')
    proc = subprocess.Popen([
        ETCD, '--name', 'test', '--data-dir', os.path.join(home, 'data'),
        '--listen-client-urls', url, '--advertise-client-urls', url,
        '--listen-peer-urls', 'http://127.0.0.1:%d' % peer,
        '--initial-advertise-peer-urls', 'http://127.0.0.1:%d' % peer,
        '--initial-cluster', 'test=http://127.0.0.1:%d' % peer,
        '--cert-file', ca.server_cert, '--key-file', ca.server_key, '--trusted-ca-file', ca.ca_cert,
        '--client-cert-auth'], stdout=log, stderr=subprocess.STDOUT)
    tls = {'ca': ca.ca_cert, 'cert': ca.server_cert, 'key': ca.server_key}
    dcs = Dcs([url], 'itest', tls=tls, timeout=2)
    deadline = time.time() + 30
    while True:
        try:
            dcs.read()
            break
        except DcsError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail('etcd did not start: %s' % open(os.path.join(home, 'etcd.log')).read()[-2000:])
            time.sleep(0.2)
    yield {'url': url, 'tls': tls, 'port': client}
    proc.terminate()
    proc.wait(10)
    log.close()

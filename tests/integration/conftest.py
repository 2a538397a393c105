"""Fixtures: a throwaway CA, real PostgreSQL servers and an Ansible runner."""

import os

import pytest

from pgharness import AnsibleRunner, PgServer, TestCA, make_base, remove_base


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

"""A pgBackRest repository host and its database hosts on this machine, for the tests and
the benchmarks (tests/integration/test_pgbackrest.py, test_pgbackrest_verify.py,
tests/bench/bench_backup.py).

Each side has its own configuration, rendered by module_utils/pgbackrest.py as the backup
role renders it, and its own ``pgbackrest server`` as postgres on a loopback port: the
database hosts reach the repository only over TLS with the test CA's certificate (CN
localhost), and the repository host the database hosts likewise.
"""

import os
import socket
import subprocess
import time

from pgharness import as_postgres, chown_pg, free_port

from ansible_collections.pgha.multidc.plugins.module_utils.pgbackrest import (
    archive_command, database_host_conf, repository_host_conf)


class TlsServer:
    """One ``pgbackrest server`` as postgres on a loopback port, stopped and started again
    by the tests (a repository host that goes away and comes back)."""

    def __init__(self, config, port):
        self.config, self.port, self.process = config, port, None

    def start(self, timeout=15):
        self.process = subprocess.Popen(['runuser', '-u', 'postgres', '--', 'pgbackrest', '--config=%s' % self.config,
                                         'server'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd='/')
        deadline = time.time() + timeout
        while time.time() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(('127.0.0.1', self.port)) == 0:
                    return
            time.sleep(0.1)
        raise AssertionError('pgbackrest server does not listen on 127.0.0.1:%d' % self.port)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class RepositoryHost:
    """A repository host in ``home`` (repository, log, lock) and the database hosts added
    to it, each a PgServer with its own configuration, spool and ``pgbackrest server``.

    ``add_database`` for each server (primary first: it is pg1), then ``start`` writes the
    repository host's configuration naming them all (with ``backup-standby`` when there are
    several), starts every ``pgbackrest server`` and has the primaries archive through
    ``archive_command``; ``close`` stops the primaries (before the servers, so that no
    archive-push waits on them) and the ``pgbackrest server`` processes.
    """

    def __init__(self, home, ca, stanza='main', cipher_pass=None, compress_type='zst', compress_level=None,
                 process_max=2, repo_extra=None, db_extra=None):
        self.home, self.stanza, self.cipher_pass = home, stanza, cipher_pass
        self.compress = {'compress_type': compress_type, 'compress_level': compress_level, 'process_max': process_max}
        self.repo_extra, self.db_extra = dict(repo_extra or {}), dict(db_extra or {})
        self.paths = dict((name, os.path.join(home, name)) for name in ('repo', 'log', 'lock-repo'))
        for path in self.paths.values():
            os.makedirs(path)
        self.repo_conf = os.path.join(home, 'repo.conf')
        self.repo_port = free_port()
        self.tls = {'ca_file': ca.ca_cert, 'cert_file': ca.server_cert, 'key_file': ca.server_key,
                    'address': '127.0.0.1'}
        self.databases = []
        self.repo_server = None
        self.daemons = []
        chown_pg(home)

    def database_conf(self, name, datadir, pg_port, socket_dir, tls_port=None):
        """Write the configuration of a database host ``name`` (spool, lock of its own) for
        the data directory ``datadir``; returns its path. Also for a restore target."""
        for sub in ('spool-' + name, 'lock-' + name):
            os.makedirs(os.path.join(self.home, sub), exist_ok=True)
        conf = os.path.join(self.home, '%s.conf' % name)
        with open(conf, 'w') as handle:
            handle.write(database_host_conf(
                self.stanza, datadir, pg_port=pg_port, pg_socket_path=socket_dir,
                repo_host={'host': 'localhost', 'port': self.repo_port, 'client_cn': 'localhost',
                           'config': self.repo_conf},
                tls=dict(self.tls, port=tls_port or free_port()), spool_path=os.path.join(self.home, 'spool-' + name),
                log_path=self.paths['log'], lock_path=os.path.join(self.home, 'lock-' + name),
                extra=self.db_extra, **self.compress))
        chown_pg(self.home)
        return conf

    def add_database(self, server, archive=True):
        """Configure ``server`` as a database host of the repository (before ``start``);
        returns its configuration path."""
        port = free_port()
        conf = self.database_conf(server.name, server.datadir, server.port, server.socket_dir, port)
        self.databases.append({'server': server, 'conf': conf, 'port': port, 'archive': archive})
        return conf

    def conf_of(self, server):
        return [db['conf'] for db in self.databases if db['server'] is server][0]

    def start(self):
        with open(self.repo_conf, 'w') as handle:
            handle.write(repository_host_conf(
                self.stanza, self.paths['repo'],
                [{'host': 'localhost', 'path': db['server'].datadir, 'port': db['server'].port,
                  'socket_path': db['server'].socket_dir, 'tls_port': db['port'], 'client_cn': 'localhost',
                  'config': db['conf']} for db in self.databases],
                dict(self.tls, port=self.repo_port), log_path=self.paths['log'], cipher_pass=self.cipher_pass,
                extra=dict({'lock-path': self.paths['lock-repo']}, **self.repo_extra), **self.compress))
        chown_pg(self.home)
        self.repo_server = TlsServer(self.repo_conf, self.repo_port)
        self.daemons = [TlsServer(db['conf'], db['port']) for db in self.databases] + [self.repo_server]
        for daemon in self.daemons:
            daemon.start()
        for db in self.databases:
            if db['archive']:
                server = db['server']
                with open(os.path.join(server.datadir, 'postgresql.conf'), 'a') as handle:
                    handle.write("archive_mode = on\narchive_command = '%s'\n"
                                 % archive_command(self.stanza, db['conf']))
                server.stop()
                server.start()
        return self

    def pgbackrest(self, *args, config=None, check=True, timeout=3600):
        """``pgbackrest`` as postgres with the repository host's configuration (or ``config``)."""
        return as_postgres(['pgbackrest', '--config=%s' % (config or self.repo_conf), '--stanza=%s' % self.stanza]
                           + list(args), check=check, timeout=timeout)

    def close(self):
        for db in self.databases:
            if db['archive']:
                db['server'].stop('immediate')
        for daemon in self.daemons:
            daemon.stop()

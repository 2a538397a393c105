"""Real PostgreSQL servers and real Ansible runs for the integration tests.

Servers are Debian's PostgreSQL binaries run as the ``postgres`` user on loopback
ports in temporary directories, with TLS from a throwaway CA. Modules run through
``ansible-playbook`` against localhost as the ``postgres`` user, exactly as a role
would run them on a database host.
"""

import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import textwrap
import time

import psycopg2

from ansible_collections.pgha.multidc.plugins.module_utils.standby_config import parse_auto_conf, update_auto_conf

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
PG_USER = 'postgres'
REPLICATION_USER = 'replicator'
REPLICATION_PASSWORD = 'repl-Secret-42'


def pg_bindir():
    root = '/usr/lib/postgresql'
    majors = sorted((int(v) for v in os.listdir(root) if v.isdigit()), reverse=True)
    for major in majors:
        candidate = os.path.join(root, str(major), 'bin')
        if os.path.exists(os.path.join(candidate, 'initdb')):
            return candidate
    raise RuntimeError('no PostgreSQL server binaries under %s (run make packages)' % root)


BINDIR = pg_bindir()


def pg_ids():
    entry = pwd.getpwnam(PG_USER)
    return entry.pw_uid, entry.pw_gid


def as_postgres(args, check=True, env=None, timeout=600, input_text=None):
    """Run a command as the postgres user; return the CompletedProcess."""
    full_env = dict(os.environ, **(env or {}))
    full_env['HOME'] = pwd.getpwnam(PG_USER).pw_dir
    cmd = ['runuser', '-u', PG_USER, '--'] + list(args) if os.geteuid() == 0 else list(args)
    # The return code is checked below, to raise with the command's output.
    result = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout,  # pylint: disable=subprocess-run-check
                            input=input_text, cwd='/')
    if check and result.returncode != 0:
        raise RuntimeError('%s failed (%d):\n%s\n%s' % (
            ' '.join(args), result.returncode, result.stdout, result.stderr))
    return result


def chown_pg(path):
    uid, gid = pg_ids()
    if not os.path.isdir(path):  # os.walk yields nothing for a file
        os.lchown(path, uid, gid)
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid)
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class TestCA:
    """A throwaway CA and server certificate for 127.0.0.1 / localhost."""

    def __init__(self, directory):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self.ca_cert = os.path.join(directory, 'ca.crt')
        self.ca_key = os.path.join(directory, 'ca.key')
        self.server_cert = os.path.join(directory, 'server.crt')
        self.server_key = os.path.join(directory, 'server.key')
        openssl = ['openssl']
        subprocess.run(openssl + ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
                                  '-nodes', '-days', '2', '-subj', '/CN=pgha test CA',
                                  '-keyout', self.ca_key, '-out', self.ca_cert], check=True, capture_output=True)
        csr = os.path.join(directory, 'server.csr')
        subprocess.run(openssl + ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
                                  '-subj', '/CN=localhost', '-keyout', self.server_key, '-out', csr],
                       check=True, capture_output=True)
        ext = os.path.join(directory, 'san.ext')
        with open(ext, 'w') as handle:
            handle.write('subjectAltName=DNS:localhost,IP:127.0.0.1\n')
        subprocess.run(openssl + ['x509', '-req', '-in', csr, '-CA', self.ca_cert, '-CAkey', self.ca_key,
                                  '-CAcreateserial', '-days', '2', '-extfile', ext, '-out', self.server_cert],
                       check=True, capture_output=True)
        chown_pg(directory)
        os.chmod(self.server_key, 0o600)
        os.chmod(self.ca_key, 0o600)


class PgServer:
    """One PostgreSQL server in ``<base>/<name>``: data directory, socket and log."""

    def __init__(self, base, name, ca, port=None):
        self.name = name
        self.ca = ca
        self.port = port or free_port()
        self.home = os.path.join(base, name)
        self.datadir = os.path.join(self.home, 'data')
        self.socket_dir = os.path.join(self.home, 'run')
        self.logfile = os.path.join(self.home, 'server.log')
        self.passfile = os.path.join(self.home, 'pgpass')
        for path in (self.home, self.socket_dir):
            os.makedirs(path, exist_ok=True)
        os.chmod(self.home, 0o700)
        chown_pg(self.home)
        with open(self.passfile, 'w') as handle:
            handle.write('*:*:*:%s:%s\n' % (REPLICATION_USER, REPLICATION_PASSWORD))
        os.chmod(self.passfile, 0o600)
        chown_pg(self.passfile)

    # -- lifecycle ---------------------------------------------------------------
    def server_settings(self):
        return {
            'listen_addresses': "'127.0.0.1'",
            'port': str(self.port),
            'unix_socket_directories': "'%s'" % self.socket_dir,
            'wal_level': 'replica',
            'max_wal_senders': '10',
            'max_replication_slots': '10',
            'hot_standby': 'on',
            'hot_standby_feedback': 'on',
            'wal_log_hints': 'on',
            'ssl': 'on',
            'ssl_cert_file': "'%s'" % self.ca.server_cert,
            'ssl_key_file': "'%s'" % self.ca.server_key,
            'ssl_ca_file': "'%s'" % self.ca.ca_cert,
            'ssl_min_protocol_version': "'TLSv1.2'",
            'password_encryption': 'scram-sha-256',
            'shared_buffers': '32MB',
            'max_connections': '40',
            'fsync': 'off',  # test servers only: speed, crash safety is not under test here
            'logging_collector': 'off',
        }

    HBA = textwrap.dedent("""\
        local   all          all                      trust
        local   replication  all                      trust
        hostssl replication  replicator 127.0.0.1/32  scram-sha-256
        hostssl all          all        127.0.0.1/32  scram-sha-256
        host    all          all        0.0.0.0/0     reject
        """)

    def init_primary(self):
        as_postgres([os.path.join(BINDIR, 'initdb'), '-D', self.datadir, '-U', PG_USER,
                     '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--locale=C.UTF-8'])
        self.write_config()
        self.start()
        self.execute("CREATE ROLE %s WITH LOGIN REPLICATION PASSWORD '%s'" % (REPLICATION_USER, REPLICATION_PASSWORD))
        return self

    def init_standby_of(self, upstream, slot=None, timeout=60):
        """Make this server a streaming standby of ``upstream`` (a running PgServer).

        Runs ``pg_basebackup -R`` as postgres over TLS (verify-full) with this server's
        passfile, so primary_conninfo carries ``passfile=`` and no password, exactly as
        the collection deploys. ``slot``: a physical slot on the upstream to stream
        from (created by pg_basebackup when it does not exist). Waits until the WAL
        receiver is streaming and returns self.
        """
        conninfo = ('host=localhost port=%d user=%s passfile=%s sslmode=verify-full sslrootcert=%s '
                    'application_name=%s' % (upstream.port, REPLICATION_USER, self.passfile,
                                             self.ca.ca_cert, self.name))
        cmd = [os.path.join(BINDIR, 'pg_basebackup'), '-D', self.datadir, '-d', conninfo,
               '-R', '-X', 'stream', '-c', 'fast', '--no-sync', '--no-password']
        if slot:
            cmd += ['-S', slot]
            if not upstream.scalar('SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s', (slot,)):
                cmd.append('-C')
        as_postgres(cmd)
        # A backup taken from a standby carries that standby's recovery settings; keep
        # the primary_conninfo that -R wrote last and only the slot asked for here.
        auto_conf = os.path.join(self.datadir, 'postgresql.auto.conf')
        with open(auto_conf) as handle:
            text = handle.read()
        current = parse_auto_conf(text)
        with open(auto_conf, 'w') as handle:
            handle.write(update_auto_conf(text, {'primary_conninfo': current['primary_conninfo'],
                                                 'primary_slot_name': slot or None}))
        self.write_config()
        self.start()
        status = self.wait_for('SELECT (SELECT status FROM pg_stat_wal_receiver)', 'streaming', timeout=timeout)
        if status != 'streaming':
            raise RuntimeError('standby %s is not streaming from %s (status %r); see %s'
                               % (self.name, upstream.name, status, self.logfile))
        return self

    def write_config(self):
        with open(os.path.join(self.datadir, 'postgresql.conf'), 'a') as handle:
            handle.write('\n# pgha test settings\n')
            for key, value in self.server_settings().items():
                handle.write('%s = %s\n' % (key, value))
        with open(os.path.join(self.datadir, 'pg_hba.conf'), 'w') as handle:
            handle.write(self.HBA)
        chown_pg(self.datadir)

    def pg_ctl(self, *args, check=True):
        return as_postgres([os.path.join(BINDIR, 'pg_ctl'), '-D', self.datadir, '-l', self.logfile] + list(args),
                           check=check)

    def start(self):
        self.pg_ctl('start', '-w', '-t', '60')

    def stop(self, mode='fast'):
        self.pg_ctl('stop', '-m', mode, '-w', check=False)

    def is_running(self):
        return self.pg_ctl('status', check=False).returncode == 0

    def destroy(self):
        if os.path.exists(self.datadir):
            self.stop('immediate')

    # -- SQL ---------------------------------------------------------------------
    def connect(self, dbname='postgres'):
        conn = psycopg2.connect(host=self.socket_dir, port=self.port, user=PG_USER, dbname=dbname)
        conn.autocommit = True
        return conn

    def execute(self, sql, params=None):
        conn = self.connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall() if cursor.description else None
        finally:
            conn.close()

    def scalar(self, sql, params=None):
        return self.execute(sql, params)[0][0]

    def wait_for(self, sql, expected, timeout=30):
        """Poll ``sql`` until it returns ``expected``; return the last value."""
        deadline = time.time() + timeout
        value = None
        while time.time() < deadline:
            try:
                value = self.scalar(sql)
            except psycopg2.Error:
                value = None
            if value == expected:
                return value
            time.sleep(0.2)
        return value

    # -- module arguments ----------------------------------------------------------
    def login(self):
        """Module options for a local socket connection as postgres."""
        return {'login_unix_socket': self.socket_dir, 'login_port': self.port}

    def upstream(self, **overrides):
        """Module ``upstream`` option: this server over TLS, verify-full, passfile."""
        params = {'host': 'localhost', 'port': self.port, 'user': REPLICATION_USER,
                  'passfile': self.passfile, 'sslmode': 'verify-full', 'sslrootcert': self.ca.ca_cert}
        params.update(overrides)
        return params

    def start_existing(self):
        """Start the data directory that someone else made (a module, pg_basebackup) as this
        server: this server's settings (port, socket, TLS) are appended, then pg_ctl start."""
        self.write_config()
        self.start()
        return self

    def system_identifier(self):
        """The system identifier of this server's data directory, from pg_controldata."""
        return controldata(self.datadir).get('Database system identifier')


class AnsibleRunner:
    """Runs one module as a task through ansible-playbook, as the postgres user."""

    def __init__(self, workdir):
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        chown_pg(workdir)

    def run(self, module, args, check_mode=False, diff=False, expect_failure=False):
        playbook = [{
            'hosts': 'localhost', 'gather_facts': False, 'connection': 'local',
            'tasks': [{'name': 'run', 'pgha.multidc.' + module: args, 'register': 'result',
                       'ignore_errors': True},
                      {'name': 'emit', 'check_mode': False, 'ansible.builtin.copy': {
                          'content': '{{ result | to_json }}', 'dest': os.path.join(self.workdir, 'result.json')}}],
        }]
        path = os.path.join(self.workdir, 'play.yml')
        with open(path, 'w') as handle:
            json.dump(playbook, handle)
        chown_pg(self.workdir)
        cmd = [os.path.join(REPO, '.venv', 'bin', 'ansible-playbook'), '-i', 'localhost,', path]
        if check_mode:
            cmd.append('--check')
        if diff:
            cmd.append('--diff')
        env = {'ANSIBLE_CONFIG': os.path.join(REPO, 'ansible.cfg'),
               'ANSIBLE_PYTHON_INTERPRETER': os.path.join(REPO, '.venv', 'bin', 'python'),
               'ANSIBLE_LOCAL_TEMP': os.path.join(self.workdir, 'tmp'),
               'ANSIBLE_REMOTE_TMP': os.path.join(self.workdir, 'tmp'),
               'ANSIBLE_NOCOLOR': '1'}
        proc = as_postgres(cmd, check=False, env=env)
        result_file = os.path.join(self.workdir, 'result.json')
        if not os.path.exists(result_file):
            raise RuntimeError('ansible-playbook did not run the module:\n%s\n%s' % (proc.stdout, proc.stderr))
        with open(result_file) as handle:
            result = json.load(handle)
        os.unlink(result_file)
        result['_stdout'] = proc.stdout
        failed = bool(result.get('failed'))
        if failed != expect_failure:
            raise AssertionError('%s %s: expected %s, got %s:\n%s' % (
                module, 'check mode' if check_mode else '', 'failure' if expect_failure else 'success',
                json.dumps(result, indent=2, default=str), proc.stdout[-3000:]))
        return result


def make_base(prefix='pgha-it-'):
    base = tempfile.mkdtemp(prefix=prefix, dir='/var/tmp')
    os.chmod(base, 0o755)
    return base


def remove_base(base):
    shutil.rmtree(base, ignore_errors=True)


def controldata(datadir):
    """pg_controldata of ``datadir`` as a dict (C locale labels); {} when there is none."""
    result = as_postgres([os.path.join(BINDIR, 'pg_controldata'), '-D', datadir], check=False,
                         env={'LC_ALL': 'C'})
    data = {}
    for line in result.stdout.splitlines():
        if ':' in line:
            key, value = line.split(':', 1)
            data[key.strip()] = value.strip()
    return data


def tree_snapshot(path):
    """(relative path, size, mtime) of everything under ``path``: compare before and after
    to show that a directory was left exactly as it was."""
    entries = []
    for root, dirs, files in os.walk(path):
        for name in sorted(dirs + files):
            full = os.path.join(root, name)
            st = os.lstat(full)
            entries.append((os.path.relpath(full, path), st.st_size, st.st_mtime_ns))
    return sorted(entries)

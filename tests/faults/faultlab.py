# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers of the fault tests: a deployed docker lab topology, its inventory, the
operations playbooks, the writer, and faults (kill a postmaster, stop a container).

Everything is found from environment variables, so the same tests run against any
deployed lab topology:

PGHA_FAULT_INVENTORY   inventory directory of a deployed lab (required; unset: tests skip)
PGHA_FAULT_ROOT        repository root (default: two levels above this file)
PGHA_FAULT_DATACENTER  datacenter whose VIP the writer uses (default: the one with a VIP)
PGHA_FAULT_APP_USER / PGHA_FAULT_APP_PASSWORD / PGHA_FAULT_APP_DB
                       writer credentials (default: the first of pgha_app_users)
PGHA_FAULT_LOG_DIR     where writer logs and playbook outputs go (default: a temp dir)
PGHA_FAULT_ROUTER      the router container between the datacenters (default: pgha-router)

The lab convention is that a container is named like its inventory host.
"""

from __future__ import absolute_import, division, print_function

import atexit
import calendar
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.environ.get('PGHA_FAULT_ROOT') or os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
# Creating the table first makes its deletion valid whether it existed or not.
NO_FAULT_TABLE = 'table inet pgha_fault\ndelete table inet pgha_fault\n'
RECAP_RE = re.compile(r'^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)', re.M)


# The SSH master connections (ControlPersist) of the playbooks these tests run: in a
# directory of their own, so that closing them never cuts the connections of another lab's
# tests running beside (make test runs the role tests beside the fault tests).
SSH_CONTROL_DIR = tempfile.mkdtemp(prefix='pgha-faults-ssh-')


def close_ssh_masters(directory=SSH_CONTROL_DIR):
    """Ask every SSH master connection kept in ``directory`` to exit; the next
    connection opens a fresh one."""
    for name in (os.listdir(directory) if os.path.isdir(directory) else []):
        subprocess.run(['ssh', '-o', 'ControlPath=' + os.path.join(directory, name), '-O', 'exit', 'pgha-lab'],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10, check=False)


@atexit.register
def _remove_ssh_control_dir():
    close_ssh_masters()
    shutil.rmtree(SSH_CONTROL_DIR, ignore_errors=True)


def venv_bin(name):
    candidate = os.path.join(ROOT, '.venv', 'bin', name)
    return candidate if os.path.exists(candidate) else name


# Every "[WARNING]" line of every playbook run (conftest.py fails the test that added one:
# a playbook must run without warnings, whatever state the faults left), except those our
# own modules give on purpose about the cluster on a bad day, which the operator must see:
# a lag check that could not run (the old primary's host is gone, no reference position),
# a promotion forced past a refusal.
ANSIBLE_WARNINGS = []
INTENDED_WARNINGS = ('max_lag_bytes is set but no reference LSN is known: the lag check was skipped',
                     'force: promoting although ')


class Lab:
    """The deployed topology behind PGHA_FAULT_INVENTORY."""

    def __init__(self, inventory, log_dir=None):
        self.inventory = inventory
        self.log_dir = log_dir or tempfile.mkdtemp(prefix='pgha-faults-')
        os.makedirs(self.log_dir, exist_ok=True)
        data = json.loads(subprocess.check_output(
            [venv_bin('ansible-inventory'), '-i', inventory, '--list'], cwd=ROOT, env=self.env()))
        self.hostvars = data['_meta']['hostvars']
        self.groups = dict((k, v.get('hosts', [])) for k, v in data.items() if k != '_meta')
        self.db_hosts = sorted(self._members('pgha_database'))
        anyhost = self.hostvars[self.db_hosts[0]]
        self.datacenters = anyhost['pgha_datacenters']
        dc = os.environ.get('PGHA_FAULT_DATACENTER') or [
            name for name, cfg in sorted(self.datacenters.items()) if (cfg or {}).get('vip')][0]
        self.vip = self.datacenters[dc]['vip']
        app = (anyhost.get('pgha_app_users') or [{}])[0]
        self.app_user = os.environ.get('PGHA_FAULT_APP_USER') or app.get('name', 'app')
        self.app_password = os.environ.get('PGHA_FAULT_APP_PASSWORD') or app.get('password')
        self.app_db = os.environ.get('PGHA_FAULT_APP_DB') or app.get('database') or self.app_user
        self.pki = self._pki_dir(anyhost.get('pgha_pki_dir'), inventory)
        self.rw_port = int(anyhost.get('pgha_haproxy_rw_port', 5000))

    @staticmethod
    def _pki_dir(configured, inventory):
        # ansible-inventory --list does not template: the lab's "{{ pgha_lab_dir }}/pki"
        # is resolved here the way inventories/lab resolves it.
        if not configured:
            return os.path.join(os.path.abspath(inventory), 'pki')
        lab_dir = os.environ.get('PGHA_LAB_DIR') or os.path.join(ROOT, '.lab')
        return re.sub(r'\{\{\s*pgha_lab_dir\s*\}\}', lambda _m: lab_dir, configured)

    def _members(self, group):
        return set(self.groups.get(group, []))

    @staticmethod
    def env():
        env = dict(os.environ)
        env['ANSIBLE_CONFIG'] = os.path.join(ROOT, 'ansible.cfg')
        env['PATH'] = os.path.join(ROOT, '.venv', 'bin') + os.pathsep + env.get('PATH', '')
        env['ANSIBLE_SSH_CONTROL_PATH_DIR'] = SSH_CONTROL_DIR
        env.setdefault('ANSIBLE_FORCE_COLOR', '0')
        return env

    def address(self, host):
        return self.hostvars[host].get('ansible_host', host)

    def datacenter(self, host):
        return self.hostvars[host].get('pgha_datacenter')

    def dsn(self):
        return ('host=%s port=%d dbname=%s user=%s password=%s sslmode=verify-ca sslrootcert=%s'
                % (self.vip, self.rw_port, self.app_db, self.app_user, self.app_password,
                   os.path.join(self.pki, 'ca.crt')))

    # -- playbooks ------------------------------------------------------------------

    def playbook(self, name, timeout=900, when_output=None, check=False, **extra_vars):
        """Run playbooks/NAME.yml (``check``: with --check); returns a PlaybookRun.
        ``when_output``: (text, action), action() is called once, as soon as a line of the
        output contains text (a fault injected at a given step of the playbook)."""
        log = os.path.join(self.log_dir, '%s-%d.log' % (name, int(time.time() * 1000)))
        argv = [venv_bin('ansible-playbook'), '-i', self.inventory, os.path.join('playbooks', name + '.yml')]
        if check:
            argv.append('--check')
        if extra_vars:
            argv += ['-e', json.dumps(extra_vars)]
        start = time.time()
        text, action = when_output or (None, None)
        with open(log, 'w') as handle:
            with subprocess.Popen(argv, cwd=ROOT, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  universal_newlines=True) as proc:
                timer = threading.Timer(timeout, proc.kill)
                timer.start()
                try:
                    for line in proc.stdout:
                        handle.write(line)
                        if text is not None and text in line:
                            text = None
                            action()
                finally:
                    timer.cancel()
                    proc.wait()
        duration = time.time() - start
        with open(log) as handle:
            output = handle.read()
        ANSIBLE_WARNINGS.extend('%s.yml: %s' % (name, line.strip()) for line in output.splitlines()
                                if '[WARNING]' in line and not any(text in line for text in INTENDED_WARNINGS))
        return PlaybookRun(name, proc.returncode, output, duration, log)

    # -- nodes ------------------------------------------------------------------------

    def docker(self, *args, **kwargs):
        return subprocess.run(['docker'] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=kwargs.get('timeout', 60), check=False)

    def sql(self, host, statement, database='postgres'):
        """Run SQL on a node as postgres (docker exec, local socket); returns stdout or None."""
        proc = self.docker('exec', '-u', 'postgres', host, 'psql', '-XAtq', '-h', '/var/run/postgresql',
                           '-d', database, '-c', statement, timeout=20)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def alter_system(self, host, name, value, until):
        """ALTER SYSTEM SET ``name`` = ``value`` (RESET when value is None) on ``host``,
        reloaded; waits until ``until(SHOW name)`` holds."""
        statement = ('ALTER SYSTEM RESET %s' % name if value is None
                     else 'ALTER SYSTEM SET %s = %s' % (name, value))
        # ALTER SYSTEM cannot share psql's implicit transaction: one statement per call.
        assert self.sql(host, statement) is not None, statement
        assert self.sql(host, 'SELECT pg_reload_conf()') == 't'
        assert wait_for(lambda: until(self.sql(host, 'SHOW %s' % name)), timeout=10), \
            '%s on %s: %s' % (name, host, self.sql(host, 'SHOW %s' % name))

    def role(self, host):
        out = self.sql(host, 'SELECT pg_is_in_recovery()')
        return None if out is None else ('standby' if out == 't' else 'primary')

    def primaries(self):
        return [h for h in self.db_hosts if self.role(h) == 'primary']

    def receiver(self, host):
        """(status, sender_host, received_tli) of the WAL receiver of ``host``."""
        out = self.sql(host, "SELECT status, sender_host, received_tli FROM pg_stat_wal_receiver")
        if not out:
            return None
        status, sender, tli = out.split('|')
        return status, sender, int(tli) if tli else None

    def current_timeline(self, host):
        out = self.sql(host, "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int")
        return int(out) if out else None

    def kill_postmaster(self, host):
        """kill -9 the postmaster of ``host`` (its pid from postmaster.pid); returns the time."""
        script = ("pid=$(head -1 $(ls -d /var/lib/postgresql/*/main)/postmaster.pid) && kill -9 \"$pid\" "
                  "&& echo $pid")
        now = time.time()
        proc = self.docker('exec', host, 'sh', '-c', script)
        if proc.returncode != 0:
            raise RuntimeError('cannot kill the postmaster of %s: %s' % (host, proc.stderr))
        return now

    def unit_state(self, host):
        """{'ActiveState': ..., 'LoadState': ...} of the PostgreSQL unit of ``host``."""
        proc = self.docker('exec', host, 'sh', '-c', 'v=$(ls /etc/postgresql | head -1); '
                           'systemctl show --property=ActiveState,LoadState "postgresql@$v-main.service"')
        return dict(line.split('=', 1) for line in proc.stdout.splitlines() if '=' in line)

    def block(self, host, address, port=5432, inbound=False, new_only=False):
        """Drop what ``host`` sends to ``address``:``port`` (its own nftables table), or with
        ``inbound`` what it receives from there; with ``new_only`` only new connections."""
        hook, match = ('input', 'ip saddr %s tcp sport %d' % (address, port)) if inbound else \
            ('output', 'ip daddr %s tcp dport %d' % (address, port))
        if new_only:
            match += ' ct state new'
        self.fault_rules(host, ' chain %s {\n  type filter hook %s priority -10; policy accept;\n  %s drop\n }\n'
                         % (hook, hook, match))

    def fault_rules(self, host, chains):
        """Load ``chains`` (nft text) as the table pgha_fault of ``host``, in place of any
        earlier one; returns the epoch time just before they took effect."""
        at = time.time()
        proc = self._nft(host, NO_FAULT_TABLE + 'table inet pgha_fault {\n%s}\n' % chains)
        if proc.returncode != 0:
            raise RuntimeError('cannot load the fault rules on %s: %s\n%s' % (host, proc.stderr, chains))
        return at

    def unblock(self, host):
        """Remove the fault rules of ``host`` (quietly: the host may be gone), and close the
        SSH connections Ansible keeps open (ControlPersist): one opened before the cut sits
        in TCP retransmission backoff for seconds after it heals, and the next playbook's
        sudo on that host times out through it ("Timeout waiting for privilege escalation
        prompt")."""
        self._nft(host, NO_FAULT_TABLE)
        close_ssh_masters()

    @staticmethod
    def _nft(host, text):
        return subprocess.run(['docker', 'exec', '-i', host, 'nft', '-f', '-'], input=text, universal_newlines=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, check=False)

    def through(self, host, port, statement, timeout=5):
        """Run ``statement`` as the application user through HAProxy ``host:port``; the rows,
        or the psycopg2 error."""
        import psycopg2
        try:
            conn = psycopg2.connect(host=host, port=port, dbname=self.app_db, user=self.app_user,
                                    password=self.app_password, sslmode='verify-ca',
                                    sslrootcert=os.path.join(self.pki, 'ca.crt'), connect_timeout=timeout)
        except psycopg2.Error as error:
            return error
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(statement)
                return cur.fetchall() if cur.description else []
        except psycopg2.Error as error:
            return error
        finally:
            conn.close()

    @staticmethod
    def link(action):
        """lab/link.sh cut|restore|status at the router between the datacenters."""
        router = os.environ.get('PGHA_FAULT_ROUTER', 'pgha-router')
        proc = subprocess.run([os.path.join(ROOT, 'lab', 'link.sh'), action, router], check=False,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError('lab/link.sh %s %s: %s' % (action, router, proc.stderr))
        return proc.stdout.strip()

    def lsn(self, host, expression):
        return self.sql(host, 'SELECT %s' % expression)

    def rows(self, host, numbers):
        """The writer's rows among ``numbers`` that ``host`` has (in the application database)."""
        out = self.sql(host, 'SELECT n FROM pgha_writer WHERE n = ANY(ARRAY[%s]::bigint[])'
                       % ','.join(str(int(n)) for n in numbers), database=self.app_db)
        if out is None:
            raise RuntimeError('cannot read the writer table on %s' % host)
        return sorted(int(x) for x in out.split())

    def pg_log(self, host, lines=200):
        """The last ``lines`` lines of the PostgreSQL server log of ``host`` ('' when unreadable)."""
        proc = self.docker('exec', host, 'sh', '-c', 'tail -q -n %d /var/log/postgresql/postgresql-*-main.log'
                           % lines, timeout=20)
        return proc.stdout if proc.returncode == 0 else ''

    def file_exists(self, host, path):
        return self.docker('exec', host, 'test', '-e', path).returncode == 0

    def wait_streaming(self, host, sender_host, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            rec = self.receiver(host)
            if rec and rec[0] == 'streaming' and rec[1] == sender_host:
                return rec
            time.sleep(0.5)
        return self.receiver(host)

    # -- the keepers and etcd -------------------------------------------------------------
    @property
    def cluster(self):
        return self.hostvars[self.db_hosts[0]].get('pgha_cluster_name', 'pgha')

    def etcd_get(self, key):
        """The JSON value of /pgha/<cluster>/<key> (etcdctl on an etcd member), or None."""
        for member in sorted(self._members('pgha_dcs')):
            proc = self.docker('exec', member, 'etcdctl', '--endpoints', 'https://127.0.0.1:2379',
                               '--cacert', '/etc/etcd/pgha/ca.crt', '--cert', '/etc/etcd/pgha/member.crt',
                               '--key', '/etc/etcd/pgha/member.key', '--command-timeout', '3s',
                               'get', '--print-value-only', '/pgha/%s/%s' % (self.cluster, key), timeout=20)
            if proc.returncode == 0:
                return json.loads(proc.stdout) if proc.stdout.strip() else None
        raise RuntimeError('no etcd member answered')

    def leader_key(self):
        return (self.etcd_get('leader') or {}).get('host')

    def keeper(self, host, action):
        """systemctl ACTION pgha-keeper.service on ``host``."""
        proc = self.docker('exec', host, 'systemctl', action, 'pgha-keeper.service')
        if proc.returncode != 0 and action != 'is-active':
            raise RuntimeError('systemctl %s pgha-keeper on %s: %s' % (action, host, proc.stderr))
        return proc.stdout.strip()

    def journal(self, host, unit, *selection):
        """The journal of ``unit`` on ``host`` (message text only), journalctl's ``selection``
        of it (``'-n', '20'``, ``'--since', '@EPOCH'``)."""
        return self.docker('exec', host, 'journalctl', '-u', unit, '-o', 'cat', '--no-pager',
                           *selection, timeout=30).stdout

    def keeper_journal(self, host, *selection):
        """The keeper's journal on ``host`` (see journal)."""
        return self.journal(host, 'pgha-keeper.service', *selection)

    def keeper_events(self, host, since):
        """The notifications (NOTIFY-JSON lines of its journal) of the keeper of ``host``
        since the epoch time ``since``."""
        journal = self.keeper_journal(host, '--since', '@%d' % int(since))
        events = []
        for line in journal.splitlines():
            if line.startswith('INFO NOTIFY-JSON '):
                events.append(json.loads(line[len('INFO NOTIFY-JSON '):]))
        return events

    def keeper_events_of(self, hosts, since):
        """The notifications of the keepers of ``hosts`` since ``since``, host after host."""
        return [e for host in hosts for e in self.keeper_events(host, since)]

    def in_datacenter(self, host):
        """The database hosts in the datacenter of ``host``."""
        return [h for h in self.db_hosts if self.datacenter(h) == self.datacenter(host)]

    def maintenance(self, state, reason='fault test'):
        run = self.playbook('maintenance', state=state, reason=reason)
        if run.rc != 0:
            raise RuntimeError('maintenance %s failed: %s' % (state, run.tail()))
        return run


def wait_for(predicate, timeout=60, interval=0.5):
    """predicate()'s first true value within ``timeout`` seconds, else its last value."""
    deadline = time.time() + timeout
    value = predicate()
    while not value and time.time() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


class WebhookReceiver:
    """An HTTP server on the control node at the address and port of the keepers'
    webhook URL (``pgha_keeper_webhook_url``): it answers 204 to every POST and keeps what
    came, with its headers (names in lower case), in ``received``."""

    def __init__(self, url):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit
        parts = urlsplit(url)
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
                headers = dict((name.lower(), value) for name, value in self.headers.items())
                received.append({'path': self.path, 'headers': headers, 'payload': json.loads(body.decode('utf-8')),
                                 'at': time.time()})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.path = parts.path
        self.server = ThreadingHTTPServer((parts.hostname, parts.port or 80), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, event, since=0):
        return [r for r in self.received if r['payload'].get('event') == event and r['at'] >= since]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class PlaybookRun:
    def __init__(self, name, rc, output, duration, log):
        self.name, self.rc, self.output, self.duration, self.log = name, rc, output, duration, log
        self.recap = dict((m.group(1), {'ok': int(m.group(2)), 'changed': int(m.group(3)),
                                        'unreachable': int(m.group(4)), 'failed': int(m.group(5))})
                          for m in RECAP_RE.finditer(output))

    @property
    def changed(self):
        return sum(v['changed'] for v in self.recap.values())

    def tail(self, lines=60):
        return '\n'.join(self.output.splitlines()[-lines:])

    def __repr__(self):
        return '<%s rc=%s changed=%s %.1fs log=%s>' % (self.name, self.rc, self.changed, self.duration, self.log)


class Writer:
    """tools/pgha_writer.py in the background, through the VIP."""

    def __init__(self, lab, name, seconds=600):
        self.lab = lab
        self.log = os.path.join(lab.log_dir, 'writer-%s-%d.jsonl' % (name, int(time.time())))
        self.stop_file = self.log + '.stop'
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, 'tools', 'pgha_writer.py'), 'run', '--dsn', lab.dsn(),
             '--log', self.log, '--seconds', str(seconds), '--stop-file', self.stop_file],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def events(self):
        try:
            with open(self.log) as handle:
                return [json.loads(line) for line in handle if line.strip()]
        except (IOError, ValueError):
            return []

    def acks_after(self, since):
        return [e for e in self.events() if e['event'] == 'ack' and e['t'] >= since]

    def wait_acks(self, since, count=5, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(self.acks_after(since)) >= count:
                return True
            time.sleep(0.2)
        return False

    def stop(self):
        open(self.stop_file, 'w').close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def analyse(self, since=None):
        argv = [sys.executable, os.path.join(ROOT, 'tools', 'pgha_writer.py'), 'analyse', '--log', self.log,
                '--dsn', self.lab.dsn()]
        if since is not None:
            argv += ['--since', str(since)]
        # The endpoint may drop a session while the cluster settles: try a few times.
        for attempt in range(6):
            proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                                  timeout=60, check=False)
            if proc.stdout.strip():
                return json.loads(proc.stdout)
            time.sleep(5)
        raise RuntimeError('writer analyse failed: %s' % proc.stderr)

    def window_around(self, start, end):
        """Longest gap between acknowledged writes that overlaps [start, end]."""
        acks = [e['t'] for e in self.events() if e['event'] == 'ack']
        gaps = [(b - a, a, b) for a, b in zip(acks, acks[1:]) if b >= start and a <= end]
        return round(max(gaps)[0], 3) if gaps else None


# -- autorecovery scenarios (tests/faults/test_autorecovery.py, tests/bench) ----------------

def epoch(at):
    """Epoch seconds of a keeper event's ``at`` (UTC, 2026-12-06T10:11:12.345Z)."""
    whole, _dot, rest = at.rstrip('Z').partition('.')
    return calendar.timegm(time.strptime(whole, '%Y-%m-%dT%H:%M:%S')) + (float('0.' + rest) if rest else 0.0)


def back_to_the_initial_primary(lab, start):
    """rejoin.yml of ``start['primary']`` after the keepers failed it over to
    ``start['standby']``, then switchover.yml back to it; the keepers quiet meanwhile."""
    old, new = start['primary'], start['standby']
    # The keepers first finish what the fault asked of them: the other datacenters' leaders
    # stream from the new primary (a repoint's record lands a moment after its effect).
    for leader in start['leaders']:
        rec = lab.wait_streaming(leader, lab.address(new), timeout=90)
        assert rec and rec[0] == 'streaming', rec
    time.sleep(2)
    began = time.time()
    rejoin = lab.playbook('rejoin', node=old)
    assert rejoin.rc == 0, rejoin.tail(80)
    rec = lab.wait_streaming(old, lab.address(new), timeout=60)
    assert rec and rec[0] == 'streaming', rec
    switch = lab.playbook('switchover', candidate=old)
    assert switch.rc == 0, switch.tail(80)
    assert lab.primaries() == [old]
    ended = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(time.time() - 1))
    # The operations held the maintenance key: no automatic decision was taken meanwhile.
    # journalctl --since has whole seconds: the events of the second before ``began`` are cut here.
    since = time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(began)) + '.%03dZ' % int(began % 1 * 1000)
    during = [e for e in lab.keeper_events_of(lab.db_hosts, began) if since <= e['at'] < ended]
    assert during == [], during
    assert lab.etcd_get('maintenance') is None
    assert wait_for(lambda: lab.leader_key() == old, timeout=30), lab.etcd_get('leader')
    rec = lab.wait_streaming(new, lab.address(old), timeout=60)
    assert rec and rec[0] == 'streaming', rec
    for leader in start['leaders']:
        rec = lab.wait_streaming(leader, lab.address(old), timeout=60)
        assert rec and rec[0] == 'streaming', rec
    return rejoin, switch


def kill_and_measure(lab, start, name, before_kill=None, until_promoted=None, fault=None, lossless=True):
    """``fault`` (default: kill -9 of the primary's postmaster) under the writer, nobody
    running a playbook; (report, gap, killed_at). ``until_promoted(killed_at)`` returns once
    the cluster should take writes again (a fault that lets the old primary take writes for
    a while); writes must resume after it. ``lossless``: no acknowledged row may be missing
    afterwards (not so with asynchronous replication)."""
    old, new = start['primary'], start['standby']
    writer = Writer(lab, name)
    try:
        assert writer.wait_acks(0, count=20, timeout=30), 'the writer does not write through the VIP'
        if before_kill:
            before_kill()
        killed_at = (fault or lab.kill_postmaster)(old)
        resumed_after = killed_at
        if until_promoted:
            until_promoted(killed_at)
            # The old primary may have taken writes until it fenced itself: count only
            # what the new one acknowledged.
            resumed_after = time.time()
        assert writer.wait_acks(resumed_after, count=20, timeout=120), 'writes did not resume through the VIP'
        time.sleep(1)
    finally:
        writer.stop()
    report = writer.analyse(since=killed_at)
    # The outage: the longest pause between two acknowledgements after the kill.
    gap = writer.window_around(killed_at, killed_at + 60)
    if lossless:
        assert report['lost'] == [], 'acknowledged rows lost: %s' % report['lost'][:20]
    assert lab.primaries() == [new]
    return report, gap, killed_at

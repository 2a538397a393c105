# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""make bench-peer: our cluster and Patroni side by side, the same writer and faults.

For each system (``ours``: the lab `make lab` deployed, through tests/faults/faultlab.py;
``patroni``: the peer lab of tests/bench/peer, once per profile of topology.yml) and each
fault, ``--runs`` runs (5) of:

- kill9: kill -9 of the primary's postmaster (faultlab's Lab.kill_postmaster);
- host_loss: the primary's container killed (docker kill), started again afterwards;
- switchover: playbooks/switchover.yml for ours, ``patronictl switchover --force`` for Patroni;

with tools/pgha_writer.py writing through the VIP's read-write port. Per run: the write gap
(the longest pause between two acknowledged writes from the fault on), the time from the
fault to the first write after that pause, and the acknowledged rows missing afterwards.
Between runs the cluster is restored (ours: rejoin.yml and switchover.yml back to the first
primary; Patroni: the killed container started, both members back, a synchronous standby).
Medians and ranges go to LOG_DIR/bench-peer.json (rewritten after every run) and a table
with the ratio ours/Patroni is printed. The load average is recorded with each run: on a
small shared machine the figures are noisy.

The Patroni lab is brought up if it is not running and removed at the end unless it was
running before (or --keep-peer). Our lab must be deployed already; it is left with its
first primary.

    bench_peer.py [--systems ours,patroni] [--profiles defaults,fast]
                  [--faults kill9,host_loss,switchover] [--runs 5] [--log-dir DIR]
"""

from __future__ import absolute_import, division, print_function

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..', '..'))
sys.path[:0] = [os.path.join(ROOT, 'tests', 'faults'), os.path.join(ROOT, 'tests', 'bench')]

from faultlab import Lab, Writer, back_to_the_initial_primary, venv_bin, wait_for  # noqa: E402
from bench_autorecovery import boot_the_host  # noqa: E402

FAULTS = ('kill9', 'host_loss', 'switchover')
STATE_DIR = os.path.join(ROOT, '.cache', 'pgha-peer')


def loadavg():
    return [round(x, 2) for x in os.getloadavg()]


def ansible_playbook(playbook, log_dir, **extra_vars):
    """ansible-playbook -i localhost, PLAYBOOK (a file of this directory); output to a log."""
    log = os.path.join(log_dir, '%s-%d.log' % (os.path.splitext(playbook)[0], int(time.time())))
    argv = [venv_bin('ansible-playbook'), '-i', 'localhost,', os.path.join(HERE, playbook)]
    if extra_vars:
        argv += ['-e', json.dumps(extra_vars)]
    with open(log, 'w') as handle:
        proc = subprocess.run(argv, cwd=ROOT, env=Lab.env(), stdout=handle, stderr=subprocess.STDOUT,
                              timeout=1200, check=False)
    if proc.returncode != 0:
        raise RuntimeError('%s failed (rc %d), see %s' % (playbook, proc.returncode, log))
    return log


class PeerLab(Lab):
    """The Patroni peer lab through faultlab.Lab's node helpers (sql, role, primaries,
    kill_postmaster, docker), which only need container names and a local socket."""

    def __init__(self, topology, log_dir):  # pylint: disable=super-init-not-called
        # Lab.__init__ reads an inventory of our collection: the peer lab has none.
        self.topology = topology
        self.log_dir = log_dir
        self.db_hosts = sorted(h for h, node in topology['nodes'].items() if 'patroni' in node['roles'])
        self.vip = topology['vip']
        self.rw_port = 5000
        self.app_user = topology['app']['user']
        self.app_db = topology['app']['database']
        self.app_password = None

    def dsn(self):
        # No password: libpq reads it from PGPASSFILE (a 0600 file that up.yml writes), so
        # it appears in no command line or log.
        return ('host=%s port=%d dbname=%s user=%s sslmode=require'
                % (self.vip, self.rw_port, self.app_db, self.app_user))

    def address(self, host):
        return self.topology['nodes'][host]['ip']

    def members(self):
        """Patroni's GET /cluster from the first member that answers, or None."""
        for host in self.db_hosts:
            try:
                with urllib.request.urlopen('http://%s:8008/cluster' % self.address(host), timeout=3) as answer:
                    return json.loads(answer.read().decode('utf-8'))['members']
            except (OSError, ValueError):
                continue
        return None

    def healthy(self):
        """(leader, sync standby) once both members run, the standby synchronous and
        caught up; None before."""
        members = self.members() or []
        leader = [m for m in members if m['role'] == 'leader' and m['state'] == 'running']
        sync = [m for m in members if m['role'] == 'sync_standby' and m['state'] in ('running', 'streaming')
                and isinstance(m.get('lag'), int) and m['lag'] < 1024 * 1024]
        if len(members) != 2 or len(leader) != 1 or len(sync) != 1:
            return None
        return leader[0]['name'], sync[0]['name']


class Ours:
    """Our cluster on the lab `make lab` deployed (tests/faults/faultlab.py)."""

    name = 'ours'

    def __init__(self, inventory, log_dir):
        self.lab = Lab(inventory, log_dir)
        self.first = None

    def setup(self):
        primaries = self.lab.primaries()
        if len(primaries) != 1:
            raise RuntimeError('our lab has no single primary: %s' % primaries)
        self.first = primaries[0]

    def start(self):
        lab, primary = self.lab, self.first
        return {'primary': primary,
                'standby': [h for h in lab.db_hosts
                            if h != primary and lab.datacenter(h) == lab.datacenter(primary)][0],
                'leaders': [c['leader'] for _n, c in sorted(lab.datacenters.items()) if (c or {}).get('leader')]}

    def fault(self, kind, start):
        if kind == 'kill9':
            at = self.lab.kill_postmaster(start['primary'])
            return at, at
        if kind == 'host_loss':
            at = time.time()
            if self.lab.docker('kill', start['primary']).returncode != 0:
                raise RuntimeError('docker kill %s failed' % start['primary'])
            return at, at
        began = time.time()
        run = self.lab.playbook('switchover', candidate=start['standby'])
        if run.rc != 0:
            raise RuntimeError('switchover.yml failed: %s' % run.tail(20))
        return began, time.time()

    def restore(self, kind, start):
        if kind == 'switchover':
            run = self.lab.playbook('switchover', candidate=start['primary'])
            if run.rc != 0:
                raise RuntimeError('switchover.yml back failed: %s' % run.tail(20))
            return
        if kind == 'host_loss':
            boot_the_host(self.lab, start)
        back_to_the_initial_primary(self.lab, start)

    def teardown(self):
        if self.lab.primaries() != [self.first]:
            raise RuntimeError('our lab was not left with its first primary %s' % self.first)


class Patroni:
    """The Patroni peer lab, with one profile of topology.yml at a time."""

    def __init__(self, log_dir, keep):
        with open(os.path.join(HERE, 'topology.yml')) as handle:
            topology = yaml.safe_load(handle)
        self.profile = None
        self.keep = keep
        self.lab = PeerLab(topology, log_dir)
        self.was_up = None

    @property
    def name(self):
        return 'patroni-%s' % self.profile

    def setup(self):
        running = self.lab.docker('ps', '-q', '--filter', 'label=pgha.lab=%s' % self.lab.topology['lab'])
        if self.was_up is None:
            self.was_up = bool(running.stdout.strip())
        # Brings the lab up, or only applies the profile to a running one.
        ansible_playbook('up.yml', self.lab.log_dir, peer_profile=self.profile)
        os.environ['PGPASSFILE'] = os.path.join(STATE_DIR, 'pgpass')

    def start(self):
        pair = wait_for(self.lab.healthy, timeout=180)
        if not pair:
            raise RuntimeError('the Patroni cluster is not healthy: %s' % self.lab.members())
        return {'primary': pair[0], 'standby': pair[1]}

    def fault(self, kind, start):
        lab = self.lab
        if kind == 'kill9':
            at = lab.kill_postmaster(start['primary'])
            return at, at
        if kind == 'host_loss':
            at = time.time()
            if lab.docker('kill', start['primary']).returncode != 0:
                raise RuntimeError('docker kill %s failed' % start['primary'])
            return at, at
        began = time.time()
        proc = lab.docker('exec', start['primary'], 'patronictl', '-c', '/etc/patroni/config.yml', 'switchover',
                          '--leader', start['primary'], '--candidate', start['standby'], '--force', timeout=120)
        if proc.returncode != 0:
            raise RuntimeError('patronictl switchover failed: %s' % (proc.stdout + proc.stderr))
        return began, time.time()

    def restore(self, kind, start):
        if kind == 'host_loss':
            if self.lab.docker('start', start['primary']).returncode != 0:
                raise RuntimeError('docker start %s failed' % start['primary'])
        # Patroni starts at boot and rejoins the member (pg_rewind when needed).
        self.start()

    def journals(self, name, since):
        """Patroni's and HAProxy's journals since ``since`` into the log directory: where
        the time went (a killed container's journal is gone: it lives in /run)."""
        hosts = self.lab.db_hosts + sorted(h for h, node in self.lab.topology['nodes'].items()
                                           if 'haproxy' in node['roles'])
        with open(os.path.join(self.lab.log_dir, 'journal-%s.log' % name), 'w') as handle:
            for host in hosts:
                proc = self.lab.docker('exec', host, 'journalctl', '-u', 'patroni', '-u', 'haproxy', '-u', 'keepalived',
                                       '-o', 'short-precise', '--no-pager', '--since', '@%d' % int(since - 2))
                handle.write('== %s\n%s' % (host, proc.stdout))

    def teardown(self):
        if self.was_up is False and not self.keep:
            ansible_playbook('down.yml', self.lab.log_dir)


def outage(writer, began, until):
    """(longest pause between two acknowledged writes overlapping [began, until], seconds
    from ``began`` to the write that ended it); (None, None) without writes after it."""
    acks = [e['t'] for e in writer.events() if e['event'] == 'ack']
    gaps = [(b - a, b) for a, b in zip(acks, acks[1:]) if b >= began and a <= until]
    if not gaps:
        return None, None
    gap, end = max(gaps)
    return round(gap, 3), round(end - began, 3)


def measure(system, kind, number, start):
    """One run of ``kind`` on ``system`` from ``start``: the figures of the run."""
    writer = Writer(system.lab, '%s-%s-%d' % (system.name, kind, number))
    result = {'primary': start['primary'], 'loadavg_before': loadavg()}
    try:
        if not writer.wait_acks(0, count=20, timeout=60):
            raise RuntimeError('the writer does not write through the VIP')
        began, ended = system.fault(kind, start)
        resumed = writer.wait_acks(ended, count=20, timeout=240)
        time.sleep(1)
    finally:
        writer.stop()
    report = writer.analyse(since=began)
    gap, first_write = outage(writer, began, ended + 60)
    result.update({'began': round(began, 3), 'write_gap_s': gap if resumed else None,
                   'first_write_after_s': first_write if resumed else None,
                   'fault_command_s': round(ended - began, 3), 'acknowledged': report['acknowledged'],
                   'lost': len(report['lost']), 'loadavg_after': loadavg(), 'new_primary': system.lab.primaries()})
    if not resumed:
        result['error'] = 'writes did not resume within 240 s'
    return result


def summarize(runs):
    gaps = [r['write_gap_s'] for r in runs if r.get('write_gap_s') is not None]
    firsts = [r['first_write_after_s'] for r in runs if r.get('first_write_after_s') is not None]
    return {'runs': runs, 'measured': len(gaps), 'failed': len(runs) - len(gaps),
            'median_s': round(statistics.median(gaps), 2) if gaps else None,
            'min_s': min(gaps) if gaps else None, 'max_s': max(gaps) if gaps else None,
            'first_write_median_s': round(statistics.median(firsts), 2) if firsts else None,
            'lost': sum(r.get('lost', 0) for r in runs)}


def run_system(system, faults, runs, results, save):
    """Every fault ``runs`` times on ``system``, into results[system.name]."""
    figures = results['systems'].setdefault(system.name, {})
    system.setup()
    for kind in faults:
        done = []
        for number in range(runs):
            start = system.start()
            try:
                outcome = measure(system, kind, number, start)
            except (RuntimeError, AssertionError, subprocess.SubprocessError) as error:
                outcome = {'primary': start['primary'], 'error': str(error)[:500], 'loadavg_after': loadavg()}
            if hasattr(system, 'journals'):
                system.journals('%s-%s-%d' % (system.name, kind, number), outcome.get('began', time.time() - 60))
            done.append(outcome)
            figures[kind] = summarize(done)
            save()
            print('%-16s %-10s run %d: gap %s s, first write after %s s, %s lost, load %s%s'
                  % (system.name, kind, number + 1, outcome.get('write_gap_s'), outcome.get('first_write_after_s'),
                     outcome.get('lost'), outcome.get('loadavg_after'),
                     ' ERROR ' + outcome['error'] if 'error' in outcome else ''), flush=True)
            # A cluster that cannot be restored ends the bench (save() kept the runs so far).
            system.restore(kind, start)
    return figures


def cell(figure):
    if not figure or figure.get('median_s') is None:
        return '-'
    return '%.2f [%.2f-%.2f] lost %d' % (figure['median_s'], figure['min_s'], figure['max_s'], figure['lost'])


def table(results, faults):
    systems = list(results['systems'])
    peers = [s for s in systems if s.startswith('patroni')]
    head = ['fault'] + systems + ['ours/%s' % p[len('patroni-'):] for p in peers if 'ours' in systems]
    rows = [head]
    for kind in faults:
        row = [kind] + [cell(results['systems'][s].get(kind)) for s in systems]
        if 'ours' in systems:
            ours = (results['systems']['ours'].get(kind) or {}).get('median_s')
            for peer in peers:
                theirs = (results['systems'][peer].get(kind) or {}).get('median_s')
                row.append('%.2f' % (ours / theirs) if ours and theirs else '-')
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return '\n'.join('  '.join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    parser.add_argument('--systems', default='ours,patroni', help='ours,patroni (default both)')
    parser.add_argument('--profiles', default='defaults,fast', help='Patroni profiles of topology.yml')
    parser.add_argument('--faults', default=','.join(FAULTS))
    parser.add_argument('--runs', type=int, default=int(os.environ.get('PGHA_BENCH_RUNS', '5')))
    parser.add_argument('--inventory', default=os.path.join(ROOT, 'inventories', 'lab'), help='our deployed lab')
    parser.add_argument('--log-dir', default=os.environ.get('BENCH_LOG_DIR', '/tmp/pgha-bench-peer'))
    parser.add_argument('--keep-peer', action='store_true', help='leave the Patroni lab up at the end')
    args = parser.parse_args(argv)
    systems = args.systems.split(',')
    faults = args.faults.split(',')
    if set(systems) - {'ours', 'patroni'} or set(faults) - set(FAULTS):
        parser.error('unknown system or fault')
    os.makedirs(args.log_dir, exist_ok=True)
    results = {'started': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), 'host': platform.node(),
               'cpus': os.cpu_count(), 'kernel': platform.release(), 'runs': args.runs,
               'loadavg_start': loadavg(), 'systems': {}}
    out = os.path.join(args.log_dir, 'bench-peer.json')

    def save():
        results['loadavg_last'] = loadavg()
        with open(out, 'w') as handle:
            json.dump(results, handle, indent=2, sort_keys=True)

    started = time.time()
    peer = None
    try:
        if 'ours' in systems:
            ours = Ours(args.inventory, args.log_dir)
            run_system(ours, faults, args.runs, results, save)
            ours.teardown()
        if 'patroni' in systems:
            for profile in args.profiles.split(','):
                peer = peer or Patroni(args.log_dir, args.keep_peer)
                peer.profile = profile
                run_system(peer, faults, args.runs, results, save)
    finally:
        if peer is not None:
            peer.teardown()
        results['duration_s'] = round(time.time() - started)
        save()
    print(table(results, faults))
    print('load average at start %s, at end %s (2 shared cores: the figures are noisy); %s'
          % (results['loadavg_start'], results['loadavg_last'], out))
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""pg_basebackup_standby against plain pg_basebackup, on the same primary, same TLS settings.

Starts a primary with the integration harness (PostgreSQL as postgres on loopback, TLS
verify-full, scram), loads about 1 GB with ``pgbench -i``, then copies it alternately with

- plain: ``pg_basebackup -X stream -c fast`` with the same connection string and passfile;
- module: ``pgha.multidc.pg_basebackup_standby`` through ``ansible-playbook`` (one task),

``--runs`` times each, and prints the median wall time per method and the module's
overhead. It also times a no-op ``ansible.builtin.ping`` play, the fixed cost of starting
Ansible, so the overhead of the module itself can be told apart from that of Ansible.
Results go to ``bench/results/basebackup-<UTC time>.json``.

Run with ``make bench-basebackup`` (as root: servers run as postgres through runuser).
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..'))
sys.path[:0] = [os.path.join(REPO, 'tests', 'integration'), os.path.join(REPO, 'collections')]

from pgharness import (BINDIR, PgServer, TestCA, as_postgres, chown_pg, make_base,  # noqa: E402
                       remove_base)


def ansible_env(workdir):
    return {'ANSIBLE_CONFIG': os.path.join(REPO, 'ansible.cfg'),
            'ANSIBLE_PYTHON_INTERPRETER': os.path.join(REPO, '.venv', 'bin', 'python'),
            'ANSIBLE_LOCAL_TEMP': os.path.join(workdir, 'tmp'),
            'ANSIBLE_REMOTE_TMP': os.path.join(workdir, 'tmp'),
            'ANSIBLE_STDOUT_CALLBACK': 'ansible.posix.json',
            'ANSIBLE_NOCOLOR': '1'}


def play(workdir, name, task):
    path = os.path.join(workdir, name + '.yml')
    with open(path, 'w') as handle:
        json.dump([{'hosts': 'localhost', 'gather_facts': False, 'connection': 'local',
                    'tasks': [dict(task, name=name)]}], handle)
    chown_pg(path)
    return path


def run_playbook(workdir, path):
    """Run a playbook as postgres; return (seconds, result of its one task)."""
    cmd = [os.path.join(REPO, '.venv', 'bin', 'ansible-playbook'), '-i', 'localhost,', path]
    start = time.monotonic()
    proc = as_postgres(cmd, check=False, env=ansible_env(workdir), timeout=3600)
    elapsed = time.monotonic() - start
    try:
        output = json.loads(proc.stdout)
        result = output['plays'][0]['tasks'][0]['hosts']['localhost']
    except (ValueError, KeyError, IndexError):
        raise RuntimeError('ansible-playbook output not understood:\n%s\n%s' % (proc.stdout[-3000:], proc.stderr))
    if proc.returncode != 0 or result.get('failed'):
        raise RuntimeError('the play failed: %s' % result.get('msg'))
    return elapsed, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--scale', type=int, default=70, help='pgbench scale (70 is about 1 GB)')
    parser.add_argument('--runs', type=int, default=3, help='copies per method')
    parser.add_argument('--keep', action='store_true', help='keep the servers and directories')
    parser.add_argument('--results', default=os.path.join(REPO, 'bench', 'results'))
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit('run as root (the servers run as postgres through runuser)')

    base = make_base('pgha-bench-')
    primary = None
    try:
        ca = TestCA(os.path.join(base, 'ca'))
        primary = PgServer(base, 'primary', ca)
        primary.init_primary()
        print('loading pgbench scale %d into %s ...' % (args.scale, primary.datadir), flush=True)
        start = time.monotonic()
        as_postgres([os.path.join(BINDIR, 'pgbench'), '-i', '-q', '-s', str(args.scale),
                     '-h', primary.socket_dir, '-p', str(primary.port), 'postgres'], timeout=3600)
        load_seconds = time.monotonic() - start
        primary.execute('CHECKPOINT')
        size = primary.scalar('SELECT sum(pg_database_size(oid))::bigint FROM pg_database')
        print('loaded %.2f GiB in %.0f s' % (size / 2.0 ** 30, load_seconds), flush=True)

        workdir = os.path.join(base, 'ansible')
        os.makedirs(os.path.join(workdir, 'tmp'))
        chown_pg(workdir)
        target = os.path.join(base, 'copies')
        os.makedirs(target)
        chown_pg(target)
        upstream = primary.upstream()
        datadir = os.path.join(target, 'data')
        conninfo = ('host=%(host)s port=%(port)d user=%(user)s sslmode=%(sslmode)s '
                    'sslrootcert=%(sslrootcert)s' % upstream)
        plain_cmd = [os.path.join(BINDIR, 'pg_basebackup'), '-D', datadir, '-d', conninfo,
                     '-X', 'stream', '-c', 'fast', '--no-password']
        module_play = play(workdir, 'module', {'pgha.multidc.pg_basebackup_standby': {
            'data_directory': datadir, 'upstream': upstream, 'application_name': 'bench'}})
        ping_play = play(workdir, 'ping', {'ansible.builtin.ping': {}})

        runs = {'plain': [], 'module': [], 'module_copy': [], 'ansible_ping': []}
        load_at_start = os.getloadavg()
        details = []
        for index in range(args.runs):
            order = ('plain', 'module') if index % 2 == 0 else ('module', 'plain')
            for method in order:
                shutil.rmtree(datadir, ignore_errors=True)
                if method == 'plain':
                    start = time.monotonic()
                    as_postgres(plain_cmd, env={'PGPASSFILE': primary.passfile}, timeout=3600)
                    elapsed = time.monotonic() - start
                    copied = None
                else:
                    elapsed, result = run_playbook(workdir, module_play)
                    runs['module_copy'].append(result['duration_seconds'])
                    copied = result['bytes_copied']
                runs[method].append(elapsed)
                details.append({'run': index + 1, 'method': method, 'seconds': round(elapsed, 3),
                                'bytes_copied': copied})
                print('run %d %-6s %7.2f s' % (index + 1, method, elapsed), flush=True)
            elapsed = run_playbook(workdir, ping_play)[0]
            runs['ansible_ping'].append(elapsed)
        shutil.rmtree(datadir, ignore_errors=True)

        # What the module does besides the copy (probes, checks, configuration, size walk)
        # and besides starting Ansible: per module run, its wall time minus its own copy time,
        # minus the median no-op play.
        runs['module_checks'] = [total - copy for total, copy in zip(runs['module'], runs['module_copy'])]
        median = dict((name, statistics.median(values)) for name, values in runs.items())
        median['module_checks'] = max(median['module_checks'] - median['ansible_ping'], 0.0)
        overhead = (median['module'] / median['plain'] - 1) * 100
        net = (median['module'] - median['ansible_ping']) / median['plain'] * 100 - 100
        inside = (median['module_copy'] / median['plain'] - 1) * 100
        checks = median['module_checks'] / median['plain'] * 100
        summary = {
            'when': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
            'host': platform.node(), 'cpus': os.cpu_count(),
            'load_average_at_start': load_at_start, 'load_average_at_end': os.getloadavg(),
            'postgresql': primary.scalar('SHOW server_version'),
            'pgbench_scale': args.scale, 'database_bytes': int(size), 'runs_per_method': args.runs,
            'median_seconds': dict((k, round(v, 3)) for k, v in median.items()),
            'overhead_percent': round(overhead, 1),
            'overhead_without_ansible_startup_percent': round(net, 1),
            'pg_basebackup_inside_module_vs_plain_percent': round(inside, 1),
            'module_checks_and_configuration_percent': round(checks, 1),
            'runs': details, 'all_seconds': dict((k, [round(x, 3) for x in v]) for k, v in runs.items()),
        }
        print()
        print('database size           %.2f GiB (pgbench scale %d)' % (size / 2.0 ** 30, args.scale))
        print('plain pg_basebackup     median %.2f s' % median['plain'])
        print('pg_basebackup_standby   median %.2f s (ansible-playbook, end to end)' % median['module'])
        print('  of which the copy     median %.2f s (pg_basebackup inside the module)' % median['module_copy'])
        print('ansible no-op play      median %.2f s (fixed cost of starting Ansible)' % median['ansible_ping'])
        print("module's own work       median %.2f s (checks, probes, configuration: %.1f %% of plain)"
              % (median['module_checks'], checks))
        print('load average            %.1f at start, %.1f at end (%d CPUs)'
              % (load_at_start[0], os.getloadavg()[0], os.cpu_count()))
        print('overhead                %+.1f %% end to end, %+.1f %% without Ansible start-up'
              % (overhead, net))
        os.makedirs(args.results, exist_ok=True)
        path = os.path.join(args.results, 'basebackup-%s.json' % summary['when'].replace(':', ''))
        with open(path, 'w') as handle:
            json.dump(summary, handle, indent=2)
        print('results: %s' % os.path.relpath(path, REPO))
    finally:
        if primary is not None and not args.keep:
            primary.destroy()
        if args.keep:
            print('kept: %s' % base)
        else:
            remove_base(base)


if __name__ == '__main__':
    main()

"""pgBackRest backup, restore and point-in-time recovery of ~1 GB, against plain pg_basebackup.

The integration harness's servers (PostgreSQL as postgres on loopback, TLS, scram) and its
repository host (tests/integration/backrest_harness.py: each side its own configuration and
``pgbackrest server``, reached over TLS, as the backup role deploys them): a primary, a
streaming standby, and a repository host with both as database hosts (``backup-standby``).
The database is loaded with ``pgbench -i`` (the same scale as ``make bench-basebackup``),
then each of ``--runs`` runs does, the first two in alternating order:

- pg_basebackup: plain ``pg_basebackup -X stream -c fast`` of the primary over TLS, into a
  directory (plain format, no compression), as in ``make bench-basebackup``;
- backup: ``pgbackrest --type=full backup`` on the repository host, the files copied from
  the standby, the role's defaults (``process-max`` 2, zst level 3, no encryption);
- pgbench writes for ``--write-seconds``, the time is noted, 3 s more writes, the archive
  is checked (``pgbackrest check``);
- restore: ``pgbackrest restore`` of that backup onto a new data directory as a database
  host does it (its own configuration, the files fetched through the repository host's TLS
  server), ``archive-mode=off``, then the server is started: the seconds of the restore,
  until it accepts connections (consistent, hot standby) and until it has replayed the
  archive to its end and promoted;
- pitr: the same to the noted time (``--type=time``, promote), and the restored copy must
  have no pgbench_history row after the noted time.

Medians per step, the load average before and after each run, and the figures of every run
go to ``bench/results/backup-<UTC time>.json``. The issue's targets: the backup no slower
than pg_basebackup; the restore plus recovery of ~1 GB under 60 s.

Run with ``make bench-backup`` (as root: servers run as postgres through runuser).
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..'))
sys.path[:0] = [os.path.join(REPO, 'tests', 'integration'), os.path.join(REPO, 'collections')]

from backrest_harness import RepositoryHost  # noqa: E402
from pgharness import (BINDIR, PgServer, TestCA, as_postgres, chown_pg, make_base,  # noqa: E402
                       remove_base)

STANZA = 'main'
# The backup role's defaults (roles/backup/defaults/main.yml): zst level 3; process-max 2
# on a 2-core machine (half the cores, at least two).
COMPRESS_TYPE, COMPRESS_LEVEL, PROCESS_MAX = 'zst', 3, 2


def uptime():
    return subprocess.run(['uptime'], capture_output=True, text=True, check=False).stdout.strip()


def timed(step, *args, **kwargs):
    start = time.monotonic()
    result = step(*args, **kwargs)
    return time.monotonic() - start, result


class Bench:
    def __init__(self, args, base):
        self.args, self.base = args, base
        self.ca = TestCA(os.path.join(base, 'ca'))
        self.primary = PgServer(base, 'primary', self.ca)
        self.standby = PgServer(base, 'standby', self.ca)
        self.site = None
        self.restored = []

    # -- set-up --
    def pgbench(self, *args, timeout=3600):
        return as_postgres([os.path.join(BINDIR, 'pgbench'), '-h', self.primary.socket_dir, '-p',
                            str(self.primary.port)] + list(args) + ['postgres'], timeout=timeout)

    def setup(self):
        self.primary.init_primary()
        self.standby.init_standby_of(self.primary, slot='standby')
        print('loading pgbench scale %d ...' % self.args.scale, flush=True)
        load_seconds = timed(self.pgbench, '-i', '-q', '-s', str(self.args.scale))[0]
        self.primary.execute('CHECKPOINT')
        size = self.primary.scalar('SELECT sum(pg_database_size(oid))::bigint FROM pg_database')
        print('loaded %.2f GiB in %.0f s' % (size / 2.0 ** 30, load_seconds), flush=True)
        self.site = RepositoryHost(os.path.join(self.base, 'pgbackrest'), self.ca, STANZA,
                                   compress_type=self.args.compress_type, compress_level=self.args.compress_level,
                                   process_max=self.args.process_max,
                                   repo_extra={'archive-timeout': 120}, db_extra={'archive-timeout': 120})
        self.site.add_database(self.primary)
        self.site.add_database(self.standby, archive=False)
        self.site.start()
        self.site.pgbackrest('stanza-create')
        self.site.pgbackrest('check')
        return size, load_seconds

    def wait_standby(self, timeout=600):
        lsn = self.primary.scalar('SELECT pg_current_wal_lsn()::text')
        value = self.standby.wait_for("SELECT pg_last_wal_replay_lsn() >= '%s'::pg_lsn" % lsn, True, timeout=timeout)
        if value is not True:
            raise RuntimeError('the standby did not replay up to %s' % lsn)

    # -- the steps --
    def basebackup(self):
        target = os.path.join(self.base, 'basebackup')
        shutil.rmtree(target, ignore_errors=True)
        upstream = self.primary.upstream()
        conninfo = ('host=%(host)s port=%(port)d user=%(user)s sslmode=%(sslmode)s sslrootcert=%(sslrootcert)s' % upstream)
        os.makedirs(target)
        chown_pg(target)
        seconds = timed(as_postgres, [os.path.join(BINDIR, 'pg_basebackup'), '-D', os.path.join(target, 'data'), '-d',
                                      conninfo, '-X', 'stream', '-c', 'fast', '--no-password'],
                        env={'PGPASSFILE': self.primary.passfile}, timeout=3600)[0]
        copied = sum(os.path.getsize(os.path.join(root, name)) for root, dirs, files in os.walk(target) for name in files)
        shutil.rmtree(target)
        return seconds, copied

    def backup(self):
        self.wait_standby()
        seconds = timed(self.site.pgbackrest, '--type=full', 'backup')[0]
        info = json.loads(self.site.pgbackrest('--output=json', 'info').stdout)[0]
        latest = info['backup'][-1]
        if not latest['label'].endswith('F'):
            raise RuntimeError('the latest backup %s is not a full one' % latest['label'])
        return seconds, {'label': latest['label'], 'database_bytes': latest['info']['size'],
                         'repository_bytes': latest['info']['repository']['size']}

    def writes(self):
        """pgbench writes, the time noted near the end, a little more; the archive checked."""
        self.pgbench('-n', '-c', '2', '-j', '2', '-T', str(self.args.write_seconds))
        noted = self.primary.scalar("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', "
                                    "'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
        time.sleep(0.5)
        self.pgbench('-n', '-c', '2', '-j', '2', '-T', '3')
        self.site.pgbackrest('check', config=self.site.conf_of(self.primary))
        return noted

    def restore(self, name, label, target=None):
        """Restore ``label`` as a database host does (to the end of the archive, or to the
        time ``target``), start it: (restore, until connections, until promoted) seconds."""
        server = PgServer(self.base, name, self.ca)
        self.restored.append(server)
        conf = self.site.database_conf(name, server.datadir, server.port, server.socket_dir)
        os.makedirs(server.datadir, 0o700)
        chown_pg(server.datadir)
        argv = ['--set=%s' % label, '--archive-mode=off']
        argv += ['--type=time', '--target=%s' % target, '--target-action=promote'] if target else ['--type=default']
        restore_seconds = timed(self.site.pgbackrest, *(argv + ['restore']), config=conf)[0]
        start = time.monotonic()
        server.write_config()
        server.pg_ctl('start', '-w', '-t', '3600')
        ready = time.monotonic() - start
        if server.wait_for('SELECT NOT pg_is_in_recovery()', True, timeout=3600) is not True:
            raise RuntimeError('the restored server %s did not promote; see %s' % (name, server.logfile))
        promoted = time.monotonic() - start
        facts = {'archive_mode': server.scalar('SHOW archive_mode'),
                 'history_rows': server.scalar('SELECT count(*) FROM pgbench_history'),
                 'last_history': server.scalar("SELECT to_char(max(mtime), 'YYYY-MM-DD HH24:MI:SS.US') || '+00' "
                                               "FROM pgbench_history")}
        if facts['archive_mode'] != 'off':
            raise RuntimeError('the restored server %s archives (archive_mode %s)' % (name, facts['archive_mode']))
        server.stop('immediate')
        shutil.rmtree(server.home)
        self.restored.remove(server)
        return restore_seconds, ready, promoted, facts

    def close(self):
        for server in self.restored:
            server.destroy()
        if self.site is not None:
            self.site.close()
        self.standby.destroy()
        self.primary.destroy()


def median(values):
    return round(statistics.median(values), 2) if values else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--scale', type=int, default=70, help='pgbench scale (70 is about 1 GB)')
    parser.add_argument('--runs', type=int, default=3, help='runs of every step')
    parser.add_argument('--write-seconds', type=int, default=15, help='pgbench writes after each backup')
    parser.add_argument('--compress-type', default=COMPRESS_TYPE, help="the repository's (the role's default: zst)")
    parser.add_argument('--compress-level', type=int, default=COMPRESS_LEVEL, help="(the role's default: 3)")
    parser.add_argument('--process-max', type=int, default=PROCESS_MAX, help='(2, as the role on 2 cores)')
    parser.add_argument('--keep', action='store_true', help='keep the servers and directories')
    parser.add_argument('--results', default=os.path.join(REPO, 'bench', 'results'))
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit('run as root (the servers run as postgres through runuser)')

    base = make_base('pgha-bench-backup-')
    bench = Bench(args, base)
    try:
        uptime_at_start = uptime()
        print(uptime_at_start, flush=True)
        size, load_seconds = bench.setup()
        runs, details = dict((key, []) for key in ('pg_basebackup', 'backup', 'restore', 'restore_ready',
                                                   'restore_promoted', 'pitr', 'pitr_ready', 'pitr_promoted')), []
        for index in range(args.runs):
            run = {'run': index + 1, 'load_average_before': os.getloadavg()}
            order = ('pg_basebackup', 'backup') if index % 2 == 0 else ('backup', 'pg_basebackup')
            for step in order:
                if step == 'pg_basebackup':
                    seconds, copied = bench.basebackup()
                    run['pg_basebackup'] = {'seconds': round(seconds, 2), 'bytes': copied}
                else:
                    seconds, taken = bench.backup()
                    run['backup'] = dict(taken, seconds=round(seconds, 2))
                runs[step].append(seconds)
                print('run %d %-14s %7.2f s' % (index + 1, step, seconds), flush=True)
            noted = bench.writes()
            label = run['backup']['label']
            for step, target in (('restore', None), ('pitr', noted)):
                restore_seconds, ready, promoted, facts = bench.restore('%s%d' % (step, index + 1), label, target)
                if target and facts['last_history'] > noted:
                    raise RuntimeError('the point-in-time recovery to %s kept a row of %s' % (noted, facts['last_history']))
                runs[step].append(restore_seconds)
                runs[step + '_ready'].append(ready)
                runs[step + '_promoted'].append(promoted)
                run[step] = dict(facts, restore_seconds=round(restore_seconds, 2), ready_seconds=round(ready, 2),
                                 promoted_seconds=round(promoted, 2), total_seconds=round(restore_seconds + promoted, 2),
                                 target=target)
                print('run %d %-14s %7.2f s restore + %.2f s to connections / %.2f s to promotion%s' % (
                    index + 1, step, restore_seconds, ready, promoted, ' (target %s)' % target if target else ''),
                    flush=True)
            run['load_average_after'] = os.getloadavg()
            details.append(run)

        medians = dict((key, median(values)) for key, values in runs.items())
        medians['restore_total'] = median([a + b for a, b in zip(runs['restore'], runs['restore_promoted'])])
        medians['pitr_total'] = median([a + b for a, b in zip(runs['pitr'], runs['pitr_promoted'])])
        summary = {
            'when': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
            'host': platform.node(), 'cpus': os.cpu_count(),
            'uptime_at_start': uptime_at_start, 'uptime_at_end': uptime(),
            'postgresql': bench.primary.scalar('SHOW server_version'),
            'pgbackrest': as_postgres(['pgbackrest', 'version']).stdout.strip(),
            'settings': {'compress_type': args.compress_type, 'compress_level': args.compress_level,
                         'process_max': args.process_max,
                         'backup_standby': True, 'repository_over_tls': True, 'fsync': 'off (test servers)'},
            'pgbench_scale': args.scale, 'database_bytes': int(size), 'load_seconds': round(load_seconds, 1),
            'runs_per_step': args.runs, 'write_seconds': args.write_seconds,
            'median_seconds': medians,
            'targets': {
                'backup_no_slower_than_pg_basebackup': medians['backup'] <= medians['pg_basebackup'],
                'restore_plus_recovery_under_60_s': medians['restore_total'] < 60,
            },
            'runs': details, 'all_seconds': dict((k, [round(x, 2) for x in v]) for k, v in runs.items()),
        }
        print()
        print('database size              %.2f GiB (pgbench scale %d)' % (size / 2.0 ** 30, args.scale))
        print('pg_basebackup (primary)    median %.2f s' % medians['pg_basebackup'])
        print('pgBackRest full (standby)  median %.2f s (%s %d, process-max %d)'
              % (medians['backup'], args.compress_type, args.compress_level, args.process_max))
        print('restore, end of archive    median %.2f s restore + %.2f s to connections, %.2f s to promotion '
              '(total %.2f s)' % (medians['restore'], medians['restore_ready'], medians['restore_promoted'],
                                  medians['restore_total']))
        print('PITR to a time near end    median %.2f s restore + %.2f s to connections, %.2f s to promotion '
              '(total %.2f s)' % (medians['pitr'], medians['pitr_ready'], medians['pitr_promoted'], medians['pitr_total']))
        print('targets                    %s' % summary['targets'])
        print('uptime                     %s / %s' % (uptime_at_start, summary['uptime_at_end']))
        os.makedirs(args.results, exist_ok=True)
        path = os.path.join(args.results, 'backup-%s.json' % summary['when'].replace(':', ''))
        with open(path, 'w') as handle:
            json.dump(summary, handle, indent=2)
        print('results: %s' % os.path.relpath(path, REPO))
    finally:
        if args.keep:
            print('kept: %s' % base)
        else:
            bench.close()
            remove_base(base)


if __name__ == '__main__':
    main()

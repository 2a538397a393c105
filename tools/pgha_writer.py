#!/usr/bin/env python
"""A writer that proves (or disproves) zero data loss across a failover.

It commits numbered rows through an endpoint (HAProxy's read-write port on the VIP)
with synchronous_commit on, and records every acknowledged number and every error
with a timestamp, one JSON line each. An acknowledged number must exist on the new
primary afterwards; ``analyse`` compares the log with the rows found and measures the
longest window without a successful write.

    pgha_writer.py run --dsn 'host=172.30.1.100 port=5000 ...' --log writes.jsonl --seconds 60
    pgha_writer.py analyse --log writes.jsonl --dsn '...'      # prints a JSON report

The run stops after --seconds, on SIGTERM/SIGINT, or when --stop-file appears; its
loop is bounded by both a count and a time.
"""

import argparse
import json
import os
import signal
import sys
import time

import psycopg2

TABLE = 'pgha_writer'


def _now():
    return time.time()


class Writer:
    def __init__(self, dsn, log_path, interval, connect_timeout):
        self.dsn = dsn
        self.interval = interval
        self.connect_timeout = connect_timeout
        self.log = open(log_path, 'a', buffering=1)
        self.conn = None
        self.stopping = False

    def _record(self, **event):
        event['t'] = round(_now(), 4)
        self.log.write(json.dumps(event) + '\n')

    def _connect(self):
        conn = psycopg2.connect(self.dsn, connect_timeout=self.connect_timeout,
                                application_name='pgha_writer')
        conn.autocommit = False
        with conn.cursor() as cur:
            cur.execute("SET synchronous_commit = 'on'")
            cur.execute('CREATE TABLE IF NOT EXISTS %s (n bigint PRIMARY KEY, '
                        'written_at timestamptz NOT NULL DEFAULT clock_timestamp())' % TABLE)
            cur.execute('SELECT coalesce(max(n), 0) FROM %s' % TABLE)
            top = cur.fetchone()[0]
        conn.commit()
        return conn, top

    def _drop(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except psycopg2.Error:
                pass
        self.conn = None

    def run(self, seconds, max_rows, stop_file, start_at):
        deadline = _now() + seconds
        n = start_at
        written = 0
        while not self.stopping and _now() < deadline and written < max_rows:
            if stop_file and os.path.exists(stop_file):
                break
            if self.conn is None:
                try:
                    self.conn, top = self._connect()
                    # Never reuse a number that may already exist after a failover.
                    n = max(n, top)
                    self._record(event='connected')
                except psycopg2.Error as error:
                    self._record(event='error', n=None, phase='connect', error=str(error).strip()[:300])
                    time.sleep(self.interval)
                    continue
            n += 1
            try:
                with self.conn.cursor() as cur:
                    cur.execute('INSERT INTO %s (n) VALUES (%%s)' % TABLE, (n,))
                self.conn.commit()
                self._record(event='ack', n=n)
                written += 1
            except psycopg2.Error as error:
                # The commit may or may not have happened: the number is "in doubt",
                # never counted as acknowledged.
                self._record(event='error', n=n, phase='write', error=str(error).strip()[:300])
                self._drop()
            time.sleep(self.interval)
        self._drop()
        self.log.close()
        return written


def read_log(path):
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_windows(events, since=None):
    """Gaps between consecutive acknowledged writes, longest first (seconds)."""
    acks = [e['t'] for e in events if e['event'] == 'ack' and (since is None or e['t'] >= since)]
    gaps = [(round(b - a, 3), a, b) for a, b in zip(acks, acks[1:])]
    return sorted(gaps, reverse=True)


def analyse(events, present, since=None):
    """Report acknowledged rows missing from ``present`` and the longest write gap."""
    acked = set(e['n'] for e in events if e['event'] == 'ack')
    errors = [e for e in events if e['event'] == 'error']
    first_ack_after = None
    if since is not None:
        later = [e['t'] for e in events if e['event'] == 'ack' and e['t'] >= since]
        first_ack_after = round(min(later) - since, 3) if later else None
    windows = write_windows(events)
    return {
        'acknowledged': len(acked),
        'errors': len(errors),
        'lost': sorted(acked - set(present)),
        'longest_window_s': windows[0][0] if windows else None,
        'first_ack_after_s': first_ack_after,
    }


def fetch_present(dsn):
    conn = psycopg2.connect(dsn, connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute('SELECT n FROM %s' % TABLE)
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    sub = parser.add_subparsers(dest='command', required=True)
    run = sub.add_parser('run', help='write numbered rows and log acknowledgements')
    run.add_argument('--dsn', required=True)
    run.add_argument('--log', required=True)
    run.add_argument('--seconds', type=float, default=60)
    run.add_argument('--max-rows', type=int, default=1000000)
    run.add_argument('--interval', type=float, default=0.02)
    run.add_argument('--connect-timeout', type=int, default=1)
    run.add_argument('--stop-file')
    ana = sub.add_parser('analyse', help='compare the log with the rows on a server')
    ana.add_argument('--log', required=True)
    ana.add_argument('--dsn', required=True)
    ana.add_argument('--since', type=float, help='epoch seconds of the fault, for first_ack_after_s')
    args = parser.parse_args(argv)

    if args.command == 'run':
        writer = Writer(args.dsn, args.log, args.interval, args.connect_timeout)

        def stop(signum, frame):
            writer.stopping = True
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        written = writer.run(args.seconds, args.max_rows, args.stop_file, start_at=0)
        print(json.dumps({'written': written}))
        return 0
    report = analyse(read_log(args.log), fetch_present(args.dsn), args.since)
    print(json.dumps(report))
    return 1 if report['lost'] else 0


if __name__ == '__main__':
    sys.exit(main())

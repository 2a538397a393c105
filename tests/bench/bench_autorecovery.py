# -*- coding: utf-8 -*-
# Copyright: pgha.multidc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""make bench-autorecovery: on the lab `make lab` deployed, PGHA_BENCH_RUNS (5) runs each
of kill -9 of the primary's postmaster and the loss of the primary's host (its container
killed), with the writer through the VIP and nobody running a playbook; after each run
rejoin.yml and switchover.yml put the initial primary back. Write gap (the longest pause
between two acknowledgements after the fault: median, min, max) and acknowledged rows
lost, in PGHA_FAULT_LOG_DIR/bench-autorecovery.json."""

from __future__ import absolute_import, division, print_function

import json
import os
import statistics
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'faults'))
from faultlab import Lab, back_to_the_initial_primary, kill_and_measure, wait_for  # noqa: E402

INVENTORY = os.environ.get('PGHA_FAULT_INVENTORY')
RUNS = int(os.environ.get('PGHA_BENCH_RUNS', '5'))
pytestmark = pytest.mark.skipif(not INVENTORY, reason='PGHA_FAULT_INVENTORY is not set (no deployed lab)')


def kill_the_host(lab):
    def fault(host):
        lost_at = time.time()
        assert lab.docker('kill', host).returncode == 0
        return lost_at
    return fault


def boot_the_host(lab, start):
    assert lab.docker('start', start['primary']).returncode == 0
    assert wait_for(lambda: lab.unit_state(start['primary']).get('ActiveState') == 'failed', timeout=120)


def test_autorecovery_write_gaps():
    lab = Lab(INVENTORY, os.environ.get('PGHA_FAULT_LOG_DIR'))
    primary = lab.primaries()[0]
    start = {'primary': primary,
             'standby': [h for h in lab.db_hosts if h != primary and lab.datacenter(h) == lab.datacenter(primary)][0],
             'leaders': [c['leader'] for _n, c in sorted(lab.datacenters.items()) if (c or {}).get('leader')]}
    results = {}
    for scenario in ('kill9', 'host_loss'):
        runs = []
        for number in range(RUNS):
            fault = kill_the_host(lab) if scenario == 'host_loss' else None
            report, gap, _at = kill_and_measure(lab, start, 'bench-%s-%d' % (scenario, number), fault=fault)
            runs.append({'write_gap_s': gap, 'acknowledged': report['acknowledged'], 'lost': len(report['lost'])})
            print('%s run %d: gap %.2f s, %d acknowledged, %d lost'
                  % (scenario, number + 1, gap, report['acknowledged'], len(report['lost'])))
            if scenario == 'host_loss':
                boot_the_host(lab, start)
            back_to_the_initial_primary(lab, start)
        gaps = [r['write_gap_s'] for r in runs]
        results[scenario] = {'runs': runs, 'median_s': round(statistics.median(gaps), 2),
                             'min_s': min(gaps), 'max_s': max(gaps), 'lost': sum(r['lost'] for r in runs)}
    with open(os.path.join(lab.log_dir, 'bench-autorecovery.json'), 'w') as handle:
        json.dump(results, handle, indent=2, sort_keys=True)
    print(json.dumps(dict((k, dict((x, v[x]) for x in ('median_s', 'min_s', 'max_s', 'lost')))
                          for k, v in results.items()), indent=2))
    assert all(v['lost'] == 0 for v in results.values()), results

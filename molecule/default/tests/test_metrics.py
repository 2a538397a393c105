"""The health agents' /metrics as Prometheus scrapes it: from the control node (in the
lab's pgha_metrics_networks) through the firewall, parsed with the prometheus_client
library's own parser; closed to the other hosts."""

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from labcheck import wait_until

METRICS_PORT = 9188


def scrape(lab, node):
    """{(name, ((label, value), ...)): value} of one node's /metrics."""
    url = 'http://%s:%d/metrics' % (lab.address[node], METRICS_PORT)
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200, node
        text = response.read().decode('utf-8')
    return dict(((sample.name, tuple(sorted(sample.labels.items()))), sample.value)
                for family in text_string_to_metric_families(text) for sample in family.samples)


def one(metrics, name):
    return metrics.get((name, ()))


def test_every_node_exports_its_role_and_its_keeper(lab):
    scraped = dict((node, scrape(lab, node)) for node in lab.database_hosts)
    primaries = sorted(node for node, metrics in scraped.items() if one(metrics, 'pgha_primary') == 1)
    assert primaries == [lab.primary]
    leaders = sorted(node for node, metrics in scraped.items() if one(metrics, 'pgha_keeper_leader') == 1)
    assert leaders == [lab.primary]
    for node, metrics in scraped.items():
        assert one(metrics, 'pgha_postgresql_up') == 1, node
        assert one(metrics, 'pgha_fenced') == 0, node
        assert one(metrics, 'pgha_keeper_etcd_reachable') == 1, node
        assert one(metrics, 'pgha_keeper_maintenance') == 0, node
        assert metrics[('pgha_keeper_leader_info', (('leader', lab.primary),))] == 1, node
        # The keeper writes its state every loop (1 s): a stale file would mean it stopped.
        assert one(metrics, 'pgha_keeper_state_age_seconds') < lab.vars.get('pgha_keeper_ttl', 10), node
        if node == lab.primary:
            assert one(metrics, 'pgha_accepts_writes') == 1
            assert one(metrics, 'pgha_keeper_lease_remaining_seconds') > 0
        else:
            assert one(metrics, 'pgha_accepts_writes') == 0, node
            assert one(metrics, 'pgha_wal_receiver_streaming') == 1, node
    # The primary's slots: one per follower, each used.
    slots = [labels for name, labels in scraped[lab.primary] if name == 'pgha_slot_active']
    assert slots and all(scraped[lab.primary][('pgha_slot_active', labels)] == 1 for labels in slots), slots


def test_a_write_moves_the_primary_wal_position_and_its_standbys_follow(lab):
    before = one(scrape(lab, lab.primary), 'pgha_wal_current_lsn_bytes')
    lab.sql(lab.primary, 'SELECT pg_switch_wal()')
    lab.sql(lab.primary, 'CHECKPOINT')
    assert wait_until(lambda: one(scrape(lab, lab.primary), 'pgha_wal_current_lsn_bytes') > before)
    target = one(scrape(lab, lab.primary), 'pgha_wal_current_lsn_bytes')
    for node in lab.database_hosts:
        if node != lab.primary:
            assert wait_until(lambda n=node: one(scrape(lab, n), 'pgha_wal_replayed_lsn_bytes') >= target,
                              timeout=30), node


def test_metrics_are_closed_to_other_hosts(lab):
    # dc1-lb1 is an HAProxy host, not in pgha_metrics_networks: the firewall drops it.
    cmd = lab.host('dc1-lb1').run("curl -s -o /dev/null -w '%%{http_code}' --max-time 3 http://%s:%d/metrics"
                                  % (lab.address[lab.primary], METRICS_PORT))
    assert cmd.stdout.strip() in ('000', ''), cmd.stdout

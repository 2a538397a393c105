"""playbooks/status.yml as a script or AWX reads it: the JSON document (status_format=json,
through the ansible.posix.json callback) and the SVG of the replication tree, each checked
against what the servers, keepalived and HAProxy say themselves."""

from xml.etree import ElementTree

import pytest

from labcheck import run_status, status_document

SVG = '{http://www.w3.org/2000/svg}'


@pytest.fixture(scope='module')
def status(lab, tmp_path_factory):
    """(the JSON document, the SVG's root element) of one status.yml run."""
    svg = str(tmp_path_factory.mktemp('status') / 'cluster.svg')
    return status_document(lab, 'status_svg=%s' % svg), ElementTree.parse(svg).getroot()


def upstream_of(lab, node):
    """The database host a standby streams from, as its WAL receiver says."""
    sender = lab.sql(node, 'SELECT sender_host FROM pg_stat_wal_receiver')
    return next(host for host, address in lab.address.items() if address == sender)


def test_the_nodes_and_the_tree_are_the_cluster(lab, status):
    document, _svg = status
    nodes = dict((row['host'], row) for row in document['nodes'])
    assert sorted(nodes) == sorted(lab.database_hosts)
    assert [host for host, row in nodes.items() if row['role'] == 'primary'] == [lab.primary]
    for host in lab.database_hosts:
        if host != lab.primary:
            assert nodes[host]['upstream'] == upstream_of(lab, host), host
            assert nodes[host]['streaming'] is True and nodes[host]['fenced'] is False, host
    assert document['tree'][0].startswith(lab.primary + ' (')
    assert len(document['tree']) == len(lab.database_hosts)


def test_the_vip_holder_is_the_host_that_carries_the_vip(lab, status):
    document, _svg = status
    vip = lab.vip('dc1')
    carrying = [lb for lb in lab.groups['pgha_keepalived']
                if ' %s/' % vip in lab.host(lb).run('ip -o address show').stdout]
    assert len(carrying) == 1 and document['vip_holders']['dc1'] == carrying


def test_haproxy_routes_writes_to_the_primary_only(lab, status):
    document, _svg = status
    assert sorted(document['haproxy']) == sorted(lab.groups['pgha_haproxy'])
    for lb, proxies in document['haproxy'].items():
        up = [server['name'] for server in proxies['pgha_rw']['servers'] if server['status'] == 'UP']
        assert up == [lab.primary], lb


def test_the_keepers_view_names_the_primary(lab, status):
    document, _svg = status
    assert document['keeper']['leader']['host'] == lab.primary


def test_the_svg_draws_every_host_and_every_stream(lab, status):
    _document, svg = status
    titles = dict((group.get('class'), []) for group in svg.iter(SVG + 'g'))
    for group in svg.iter(SVG + 'g'):
        titles[group.get('class')].append(group.find(SVG + 'title').text)
    assert sorted(titles['node']) == sorted(lab.database_hosts)
    assert sorted(titles['cluster']) == sorted('cluster_' + dc for dc in lab.vars['pgha_datacenters'])
    streams = sorted('%s->%s' % (upstream_of(lab, host), host) for host in lab.database_hosts if host != lab.primary)
    assert sorted(titles['edge']) == streams


def test_an_haproxy_that_is_down_is_part_of_the_picture(lab):
    lb = lab.groups['pgha_haproxy'][-1]
    assert lab.host(lb).run('sudo systemctl stop haproxy').rc == 0
    try:
        out = run_status(lab, 'default')
    finally:
        assert lab.host(lb).run('sudo systemctl start haproxy').rc == 0
    assert '%s: HAProxy not read (cannot read the HAProxy stats socket' % lb in out, out[-3000:]

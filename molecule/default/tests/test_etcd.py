"""The etcd cluster of the keepers after `site.yml`: three members with a quorum, TLS
with client certificates required, the ports closed to other hosts, the keepers running
and holding their keys."""

import json

from labcheck import wait_until

TLS_DIR = '/etc/etcd/pgha'
CLIENT_DIR = '/etc/pgha/etcd'


def _etcdctl(lab, member, *args):
    return lab.host(member).run(
        'sudo etcdctl --endpoints https://127.0.0.1:2379 --cacert %s/ca.crt --cert %s/member.crt --key %s/member.key '
        '--command-timeout 5s %s' % (TLS_DIR, TLS_DIR, TLS_DIR, ' '.join(args)))


def test_every_member_is_in_one_cluster_with_a_leader(lab):
    members = lab.groups['pgha_dcs']
    assert len(members) == 3
    listing = _etcdctl(lab, members[0], 'member', 'list', '-w', 'json')
    assert listing.rc == 0, listing.stderr
    names = sorted(m['name'] for m in json.loads(listing.stdout)['members'])
    assert names == sorted(members)
    endpoints = ','.join('https://%s:2379' % lab.address[m] for m in members)
    status = _etcdctl(lab, members[0], '--endpoints', endpoints, 'endpoint', 'status', '-w', 'json')
    assert status.rc == 0, status.stderr
    leaders = set(s['Status']['leader'] for s in json.loads(status.stdout))
    assert len(leaders) == 1 and 0 not in leaders


def test_a_client_without_a_certificate_is_refused(lab):
    member = lab.groups['pgha_dcs'][0]
    # TLS with the cluster's CA but no client certificate: the handshake or the request fails.
    cmd = lab.host(member).run("curl -s -o /dev/null -w '%%{http_code}' --max-time 5 --cacert %s/ca.crt "
                               "https://127.0.0.1:2379/health" % TLS_DIR)
    assert cmd.stdout.strip() in ('000', ''), cmd.stdout
    with_cert = lab.host(member).run('sudo curl -s --max-time 5 --cacert {0}/ca.crt --cert {0}/member.crt '
                                     '--key {0}/member.key https://127.0.0.1:2379/health'.format(TLS_DIR))
    assert json.loads(with_cert.stdout)['health'] == 'true'


def test_the_keepers_client_certificate_works_and_its_key_is_private(lab):
    node = lab.primary
    # The directory is closed to the admin user: stat through sudo.
    key = lab.host(node).run("sudo stat -c '%%U %%a' %s/client.key" % CLIENT_DIR)
    assert key.stdout.split() == ['root', '600'], key.stdout + key.stderr
    member = lab.groups['pgha_dcs'][0]
    cmd = lab.host(node).run('sudo curl -s --max-time 5 --cacert {0}/ca.crt --cert {0}/client.crt --key {0}/client.key '
                             'https://{1}:2379/health'.format(CLIENT_DIR, lab.address[member]))
    assert json.loads(cmd.stdout)['health'] == 'true', cmd.stdout + cmd.stderr


def test_etcd_ports_are_closed_to_other_hosts(lab):
    member = lab.groups['pgha_dcs'][0]
    for port in (2379, 2380):
        cmd = lab.host('dc2-pg2').run('timeout 3 bash -c "echo > /dev/tcp/%s/%d" && echo open || echo closed'
                                      % (lab.address[member], port))
        # A database host may reach the client port (its keeper), never the peer port.
        assert cmd.stdout.strip() == ('open' if port == 2379 else 'closed'), (port, cmd.stdout)


def test_the_keepers_run_and_the_primary_holds_the_leader_key(lab):
    for node in lab.database_hosts:
        assert lab.host(node).service('pgha-keeper').is_running, node
    member = lab.groups['pgha_dcs'][0]
    cluster = lab.vars.get('pgha_cluster_name', 'pgha')

    def leader():
        out = _etcdctl(lab, member, 'get', '--print-value-only', '/pgha/%s/leader' % cluster)
        return out.stdout.strip() and json.loads(out.stdout)['host'] == lab.primary
    assert wait_until(leader, timeout=20)
    config = lab.host(lab.primary).run("sudo stat -c '%U %a' /etc/pgha/keeper.json")
    assert config.stdout.split() == ['root', '600'], config.stdout + config.stderr

"""A rerun of site.yml converges to the inventory when a host has left a group: HAProxy
running on a host that is no longer an HAProxy host is stopped and disabled; an etcd
member on a host that is no longer in pgha_dcs stops the run before any change, naming
what to clean up. (The lab's image carries every package on every host, so a database
host has the units: starting them there is what a host moved between groups looks like.)"""

import os
import subprocess

from labcheck import PROJECT


def site(lab):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(PROJECT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1')
    proc = subprocess.run([os.path.join(PROJECT, '.venv', 'bin', 'ansible-playbook'), '-i', lab.inventory, 'site.yml'],
                          cwd=PROJECT, env=env, capture_output=True, text=True, timeout=900, check=False)
    return proc.returncode, ' '.join(proc.stdout.split())


def unit(lab, host, name):
    out = lab.host(host).run('systemctl show --property=ActiveState,UnitFileState %s.service' % name).stdout
    return dict(line.split('=', 1) for line in out.splitlines() if '=' in line)


def standby(lab):
    return next(h for h in lab.database_hosts if h != lab.primary)


def test_haproxy_on_a_host_that_left_pgha_haproxy_is_stopped_and_disabled(lab):
    host = standby(lab)
    assert lab.host(host).run('sudo systemctl enable --now haproxy.service').rc == 0
    assert unit(lab, host, 'haproxy') == {'ActiveState': 'active', 'UnitFileState': 'enabled'}
    rc, out = site(lab)
    assert rc == 0, out[-3000:]
    assert unit(lab, host, 'haproxy') == {'ActiveState': 'inactive', 'UnitFileState': 'disabled'}
    assert 'Stop and disable HAProxy and keepalived where the inventory no longer has them' in out
    assert 'changed: [%s] => (item=haproxy)' % host in out


def test_an_etcd_member_on_a_host_that_left_pgha_dcs_stops_the_run(lab):
    host = standby(lab)
    assert lab.host(host).run('sudo systemctl start etcd.service').rc == 0
    try:
        before = lab.host(host).run('sudo sha256sum /etc/ssh/sshd_config /etc/nftables.conf').stdout
        rc, out = site(lab)
        after = lab.host(host).run('sudo sha256sum /etc/ssh/sshd_config /etc/nftables.conf').stdout
    finally:
        assert lab.host(host).run('sudo systemctl stop etcd.service').rc == 0
    assert rc != 0
    assert ('%s runs an etcd member but is not in the group pgha_dcs. Remove it from the etcd cluster first' % host) in out
    assert 'Nothing was changed' in out
    assert before == after
    assert 'Harden SSH and close the hosts with a firewall' not in out

"""pgha.multidc.ssh_hardening and pgha.multidc.firewall against real systemd containers.

The tests run in file order and build on each other (one lab, hardened once).
"""

import re
import socket
import time

import pytest

PLAY2 = re.compile(r'play2 (\S+) user=(\S+) sudo_user=(\S*) port=(\d+)')


def sshd_effective(lab, node):
    """`sshd -T` as a dict (multi-valued keys such as hostkey as lists)."""
    out = lab.sh(node, '/usr/sbin/sshd -T').stdout
    settings = {}
    for line in out.splitlines():
        key, dummy, value = line.partition(' ')
        settings.setdefault(key, []).append(value)
    return {k: v if len(v) > 1 or k == 'hostkey' else v[0] for k, v in settings.items()}


def controller_probe(lab, node, port):
    """TCP connect from the control node (the docker gateway, an admin address)."""
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((lab.ip[node], port))
        return 'open'
    except socket.timeout:
        return 'filtered'
    except ConnectionRefusedError:
        return 'refused'
    finally:
        s.close()


def play2_ports(out):
    return {host: (user, sudo_user, int(port)) for host, user, sudo_user, port in PLAY2.findall(out)}


def file_md5(lab, node, path):
    return lab.sh(node, 'md5sum %s' % path).stdout.split()[0]


def test_harden_then_new_connection_in_the_same_run(lab):
    rc, out, recap = lab.harden()
    assert rc == 0, out[-4000:]
    for host in lab.hosts:
        assert recap[host]['failed'] == 0 and recap[host]['unreachable'] == 0, recap
    # Play 2 logged in again (new connection, sudo) on every host.
    assert play2_ports(out) == {h: ('root', 'remote', 22) for h in lab.hosts}, out[-3000:]


def test_rerun_changes_nothing(lab):
    rc, out, recap = lab.harden()
    assert rc == 0, out[-4000:]
    assert {h: recap[h]['changed'] for h in lab.hosts} == {h: 0 for h in lab.hosts}, out[-6000:]


@pytest.mark.parametrize('role', ['pg1', 'lb1'])
def test_sshd_effective_settings(lab, role):
    node = getattr(lab, role)
    s = sshd_effective(lab, node)
    assert s['port'] == '22'
    assert int(s['maxauthtries']) <= 3
    expected = {
        'permitrootlogin': 'no', 'passwordauthentication': 'no',
        'kbdinteractiveauthentication': 'no', 'pubkeyauthentication': 'yes',
        'authenticationmethods': 'publickey', 'allowusers': 'remote',
        'allowtcpforwarding': 'no', 'allowagentforwarding': 'no',
        'allowstreamlocalforwarding': 'no', 'x11forwarding': 'no', 'permittunnel': 'no',
        'disableforwarding': 'yes', 'gatewayports': 'no', 'permituserenvironment': 'no',
        'clientaliveinterval': '300', 'logingracetime': '30', 'usedns': 'no',
        'hostbasedauthentication': 'no', 'permitemptypasswords': 'no',
    }
    assert {k: s.get(k) for k in expected} == expected
    assert sorted(s['hostkey']) == ['/etc/ssh/ssh_host_ed25519_key', '/etc/ssh/ssh_host_rsa_key']
    ciphers = s['ciphers'].split(',')
    assert ciphers[0] == 'chacha20-poly1305@openssh.com'
    assert set(ciphers) <= {'chacha20-poly1305@openssh.com', 'aes256-gcm@openssh.com',
                            'aes128-gcm@openssh.com', 'aes256-ctr', 'aes192-ctr', 'aes128-ctr'}
    assert all('-etm@openssh.com' in mac for mac in s['macs'].split(','))
    kex = s['kexalgorithms'].split(',')
    assert set(kex) <= {'mlkem768x25519-sha256', 'sntrup761x25519-sha512',
                        'sntrup761x25519-sha512@openssh.com', 'curve25519-sha256',
                        'curve25519-sha256@libssh.org'}
    assert 'curve25519-sha256' in kex
    if lab.release == 'trixie':
        assert kex[0] == 'mlkem768x25519-sha256'   # OpenSSH 10: post-quantum first
    for option in ('hostkeyalgorithms', 'pubkeyacceptedalgorithms'):
        algorithms = s[option].split(',')
        assert not [a for a in algorithms if 'ecdsa' in a or a.startswith('ssh-rsa') or 'dss' in a]


def test_key_login_as_admin_user_with_sudo(lab):
    proc = lab.ssh('remote', lab.pg1, 'sudo -n id -un')
    assert proc.returncode == 0 and proc.stdout.strip() == 'root', proc.stderr


def test_root_login_refused_even_with_a_key(lab):
    # Give root the admin's key: only sshd's PermitRootLogin/AllowUsers can refuse it now.
    lab.sh(lab.pg1, 'install -d -m 0700 /root/.ssh && '
                    'cp /home/remote/.ssh/authorized_keys /root/.ssh/authorized_keys')
    try:
        proc = lab.ssh('root', lab.pg1, 'true')
        assert proc.returncode == 255
        assert 'Permission denied' in proc.stderr, proc.stderr
    finally:
        lab.sh(lab.pg1, 'rm -f /root/.ssh/authorized_keys')


def test_password_login_refused(lab):
    # Give remote a password: sshd must still offer nothing but publickey.
    shadow = lab.sh(lab.pg1, 'getent shadow remote | cut -d: -f2').stdout.strip()
    lab.sh(lab.pg1, 'echo "remote:Lab-Password-1" | chpasswd')
    try:
        proc = lab.ssh('remote', lab.pg1, 'true', key=None, options=(
            'PreferredAuthentications=password,keyboard-interactive',
            'PubkeyAuthentication=no'))
        assert proc.returncode == 255
        assert 'Permission denied (publickey)' in proc.stderr, proc.stderr
    finally:
        lab.sh(lab.pg1, "usermod -p '%s' remote" % shadow.replace("'", ''))


def test_user_not_in_allowusers_refused_even_with_a_key(lab):
    lab.sh(lab.pg1, 'useradd -m -s /bin/sh intruder && install -d -m 0700 -o intruder '
                    '/home/intruder/.ssh && install -m 0600 -o intruder '
                    '/home/remote/.ssh/authorized_keys /home/intruder/.ssh/authorized_keys')
    try:
        proc = lab.ssh('intruder', lab.pg1, 'true')
        assert proc.returncode == 255 and 'Permission denied' in proc.stderr, proc.stderr
    finally:
        lab.sh(lab.pg1, 'userdel -r intruder')


def test_firewall_who_talks_to_whom(lab):
    # Stand-ins for PostgreSQL, the health agent and HAProxy (the service roles do not
    # run here); 5432 also on lb2, which is no database host, so it must stay closed there.
    lab.listen(lab.pg1, [5432, 8008])
    lab.listen(lab.lb2, [5000, 5001, 5432])
    cases = [
        (lab.lb2, lab.pg1, 5432, 'open'),        # HAProxy host -> PostgreSQL
        (lab.pg2, lab.pg1, 5432, 'open'),        # database host of dc2 (via the router)
        (lab.stranger, lab.pg1, 5432, 'filtered'),
        (lab.lb2, lab.pg1, 8008, 'open'),        # HAProxy host -> health agent
        (lab.pg2, lab.pg1, 8008, 'filtered'),    # a database host is no HAProxy host
        (lab.stranger, lab.pg1, 8008, 'filtered'),
        (lab.lb1, lab.lb2, 5000, 'open'),        # admin address -> HAProxy
        (lab.lb1, lab.lb2, 5001, 'open'),
        (lab.pg1, lab.lb2, 5000, 'filtered'),    # not a client/admin address
        (lab.stranger, lab.lb2, 5001, 'filtered'),
        (lab.lb1, lab.lb2, 5432, 'filtered'),    # no PostgreSQL rule on an HAProxy host
        (lab.lb1, lab.pg1, 22, 'open'),          # admin address -> SSH
        (lab.lb2, lab.pg1, 22, 'filtered'),      # not an admin address
        (lab.pg1, lab.pg2, 22, 'filtered'),
        (lab.stranger, lab.pg1, 22, 'filtered'),
    ]
    got = [(src, dst, port, lab.probe(src, dst, port)) for src, dst, port, dummy in cases]
    assert got == cases
    # The control node: SSH, PostgreSQL and HAProxy (admin and client networks).
    assert controller_probe(lab, lab.pg1, 22) == 'open'
    assert controller_probe(lab, lab.pg1, 5432) == 'open'
    assert controller_probe(lab, lab.pg1, 8008) == 'filtered'
    assert controller_probe(lab, lab.lb2, 5000) == 'open'
    # Localhost is always allowed (the agent is read by HAProxy checks and locally).
    assert lab.sh(lab.pg1, 'python3 -c "import socket; socket.create_connection((\'127.0.0.1\', 8008), 3)"'
                  ).returncode == 0


def test_vrrp_only_from_the_keepalived_peer(lab):
    assert lab.vrrp(lab.lb2, lab.lb1) is True      # peer of the same datacenter
    assert lab.vrrp(lab.pg1, lab.lb1) is False     # same network, not a keepalived peer


def test_ruleset_is_ours_only(lab):
    conf = lab.sh(lab.pg1, 'cat /etc/nftables.conf').stdout
    statements = [line.strip() for line in conf.splitlines() if not line.strip().startswith('#')]
    assert not [line for line in statements if line.startswith('flush')]
    # Only our table is created or deleted.
    assert {line for line in statements if line.startswith(('table', 'delete'))} == {
        'table inet pgha_filter', 'delete table inet pgha_filter', 'table inet pgha_filter {'}
    assert lab.sh(lab.pg1, 'systemctl is-enabled nftables; systemctl is-active nftables'
                  ).stdout.split() == ['enabled', 'active']
    assert 'policy drop' in lab.sh(lab.pg1, 'nft list chain inet pgha_filter input').stdout
    # docker's own table in the container (embedded DNS) is still there.
    assert 'table ip nat' in lab.sh(lab.pg1, 'nft list tables').stdout


def test_fail2ban_bans_an_address_for_real(lab):
    status = lab.sh(lab.pg1, 'fail2ban-client status sshd').stdout
    assert 'Journal matches' in status and 'ssh.service' in status
    # lb1 is an admin address (the firewall lets it reach sshd) that is not trusted.
    banned = False
    for dummy in range(20):
        lab.sh(lab.lb1, 'ssh -o BatchMode=yes -o ConnectTimeout=3 -o StrictHostKeyChecking=no '
                        '-o UserKnownHostsFile=/dev/null nosuchuser@%s true' % lab.ip[lab.pg1],
               check=False)
        status = lab.sh(lab.pg1, 'fail2ban-client status sshd').stdout
        if lab.ip[lab.lb1] in status:
            banned = True
            break
        time.sleep(1)
    assert banned, status
    try:
        assert lab.probe(lab.lb1, lab.pg1, 22) in ('refused', 'filtered')
        tables = lab.sh(lab.pg1, 'nft list tables').stdout
        assert 'table inet f2b-table' in tables and 'table inet pgha_filter' in tables
        # The controller is trusted: never banned, still gets in.
        assert lab.ssh('remote', lab.pg1, 'true').returncode == 0
    finally:
        lab.sh(lab.pg1, 'fail2ban-client set sshd unbanip %s' % lab.ip[lab.lb1], check=False)
    assert lab.probe(lab.lb1, lab.pg1, 22) == 'open'


def test_broken_sshd_config_stops_at_validation(lab):
    before = file_md5(lab, lab.pg1, '/etc/ssh/sshd_config')
    pid = lab.sh(lab.pg1, 'systemctl show -p MainPID --value ssh').stdout.strip()
    rc, out, recap = lab.harden('--limit', lab.pg1, '-e',
                                '{"pgha_ssh_extra_settings": {"NoSuchOption": "yes"}}')
    assert rc != 0 and recap[lab.pg1]['failed'] == 1
    assert re.search(r'Write sshd_config.*\n(.*\n){0,3}fatal: \[%s\]' % lab.pg1, out), out[-3000:]
    assert 'NoSuchOption' in out or 'Bad configuration option' in out, out[-3000:]
    # Nothing changed: same file, same sshd process, logins work.
    assert file_md5(lab, lab.pg1, '/etc/ssh/sshd_config') == before
    assert lab.sh(lab.pg1, 'systemctl is-active ssh').stdout.strip() == 'active'
    assert lab.sh(lab.pg1, 'systemctl show -p MainPID --value ssh').stdout.strip() == pid
    assert lab.ssh('remote', lab.pg1, 'true').returncode == 0


def test_no_key_for_a_new_admin_user_stops_before_sshd(lab):
    before = file_md5(lab, lab.pg1, '/etc/ssh/sshd_config')
    try:
        rc, out, recap = lab.harden('--limit', lab.pg1, '-e', '{"pgha_ssh_admin_keys": [], '
                                    '"pgha_ssh_admin_user": "pghaadmin", "pgha_ssh_allow_users": ["remote"]}')
        assert rc != 0 and recap[lab.pg1]['failed'] == 1
        assert 'pghaadmin on %s has no authorized_keys' % lab.pg1 in re.sub(r'\s+', ' ', out), out[-3000:]
        assert file_md5(lab, lab.pg1, '/etc/ssh/sshd_config') == before
    finally:
        lab.sh(lab.pg1, 'userdel -r pghaadmin 2>/dev/null || true')


def test_port_move_to_2222_and_back_without_lockout(lab):
    nft_ports = "nft list set inet pgha_filter ssh_ports | tr -d '\\n\\t ' | sed 's/.*elements={\\([^}]*\\)}.*/\\1/'"
    # Inventory says 22; the role moves sshd, follows it, and the firewall closes 22.
    rc, out, recap = lab.harden('--limit', lab.pg1, '-e', 'pgha_ssh_port=2222')
    assert rc == 0, out[-4000:]
    assert play2_ports(out)[lab.pg1][2] == 2222
    assert sshd_effective(lab, lab.pg1)['port'] == '2222'
    assert lab.sh(lab.pg1, nft_ports).stdout.strip() == '2222'
    assert controller_probe(lab, lab.pg1, 2222) == 'open'
    assert controller_probe(lab, lab.pg1, 22) == 'filtered'
    assert lab.ssh('remote', lab.pg1, 'true', port=2222).returncode == 0
    assert 'port         = 2222' in lab.sh(lab.pg1, 'cat /etc/fail2ban/jail.d/pgha-sshd.local').stdout

    # A rerun whose inventory still says 22 finds sshd on 2222 and changes nothing.
    rc, out, recap = lab.harden('--limit', lab.pg1, '-e', 'pgha_ssh_port=2222')
    assert rc == 0, out[-4000:]
    assert recap[lab.pg1]['changed'] == 0 and recap[lab.pg1]['rescued'] >= 1, out[-4000:]
    assert play2_ports(out)[lab.pg1][2] == 2222

    # And back to 22, the inventory now saying 2222.
    rc, out, recap = lab.harden('--limit', lab.pg1, '-e', 'pgha_ssh_port=22', '-e', 'lab_ssh_port=2222')
    assert rc == 0, out[-4000:]
    assert play2_ports(out)[lab.pg1][2] == 22
    assert sshd_effective(lab, lab.pg1)['port'] == '22'
    assert lab.sh(lab.pg1, nft_ports).stdout.strip() == '22'
    assert controller_probe(lab, lab.pg1, 22) == 'open'
    assert controller_probe(lab, lab.pg1, 2222) == 'filtered'


def test_wrong_admin_networks_cannot_cut_ansible_off(lab):
    # No admin network at all: the controller is still admitted (its SSH_CONNECTION),
    # play 2 gets in; lb1, no longer an admin address, does not.
    rc, out, recap = lab.harden('--limit', lab.pg1, '-e', '{"pgha_admin_networks": []}')
    assert rc == 0, out[-4000:]
    assert play2_ports(out)[lab.pg1][2] == 22
    assert lab.probe(lab.lb1, lab.pg1, 22) == 'filtered'
    rc, out, recap = lab.harden('--limit', lab.pg1)
    assert rc == 0, out[-4000:]
    assert lab.probe(lab.lb1, lab.pg1, 22) == 'open'


def test_final_rerun_changes_nothing(lab):
    rc, out, recap = lab.harden()
    assert rc == 0, out[-4000:]
    assert {h: recap[h]['changed'] for h in lab.hosts} == {h: 0 for h in lab.hosts}, out[-6000:]

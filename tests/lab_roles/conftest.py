"""A small docker lab of its own for pgha.multidc.ssh_hardening and pgha.multidc.firewall.

It never touches the default lab (dc1-*, dc2-*): its own topology (networks pgha-b1/pgha-b2
for bookworm, pgha-b3/pgha-b4 for trixie), its own inventory, brought up with lab/up.yml
and taken down with lab/down.yml at the end (PGHA_ROLES_LAB_KEEP=1 keeps it).

    PGHA_ROLES_LAB_RELEASE=bookworm|trixie pytest tests/lab_roles
"""

import json
import os
import re
import shlex
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
VENV_BIN = os.path.join(ROOT, '.venv', 'bin')
KEY = os.path.join(ROOT, '.lab', 'ssh', 'id_ed25519')

# Per release: its own names and subnets, so both can run next to every other lab.
LABS = {
    'bookworm': {'a': 'b1', 'b': 'b2', 'net_a': '172.30.31', 'net_b': '172.30.32'},
    'trixie': {'a': 'b3', 'b': 'b4', 'net_a': '172.30.33', 'net_b': '172.30.34'},
}


class Lab:
    """Names and addresses of the lab, and helpers to act on it."""

    def __init__(self, release, workdir):
        cfg = LABS[release]
        self.release = release
        self.workdir = workdir
        a, b, na, nb = cfg['a'], cfg['b'], cfg['net_a'], cfg['net_b']
        self.net_a, self.net_b = 'pgha-' + a, 'pgha-' + b
        self.gw_a, self.gw_b = na + '.1', nb + '.1'
        # Database hosts in both datacenters, two HAProxy+keepalived hosts in the first,
        # and a stranger (in no group, in no admin network).
        self.pg1, self.lb1, self.lb2 = a + '-pg1', a + '-lb1', a + '-lb2'
        self.pg2, self.stranger = b + '-pg1', b + '-x1'
        self.ip = {
            self.pg1: na + '.11', self.lb1: na + '.21', self.lb2: na + '.22',
            self.pg2: nb + '.11', self.stranger: nb + '.50',
        }
        self.router = 'pgha-%s%s-router' % (a, b)
        self.router_ip = {self.net_a: na + '.254', self.net_b: nb + '.254'}
        self.topology = os.path.join(workdir, 'topology.yml')
        self.inventory = os.path.join(workdir, 'inventory')
        self.hosts = [self.pg1, self.pg2, self.lb1, self.lb2]

    # -- files ---------------------------------------------------------------------------
    def write_files(self):
        nodes = {
            self.pg1: self.net_a, self.lb1: self.net_a, self.lb2: self.net_a,
            self.pg2: self.net_b, self.stranger: self.net_b,
        }
        topo = {
            'image': 'pgha-lab:' + self.release,
            'networks': {
                self.net_a: {'subnet': self.gw_a.rsplit('.', 1)[0] + '.0/24', 'gateway': self.gw_a},
                self.net_b: {'subnet': self.gw_b.rsplit('.', 1)[0] + '.0/24', 'gateway': self.gw_b},
            },
            'router': {'name': self.router, 'addresses': self.router_ip},
            'nodes': {n: {'network': net, 'ip': self.ip[n]} for n, net in nodes.items()},
        }
        with open(self.topology, 'w') as handle:
            json.dump(topo, handle, indent=1)   # JSON is YAML

        inv = {'all': {'children': {
            'pgha_database': {'hosts': {
                self.pg1: {'ansible_host': self.ip[self.pg1], 'pgha_datacenter': 'dc1',
                           'pgha_initial_primary': True},
                self.pg2: {'ansible_host': self.ip[self.pg2], 'pgha_datacenter': 'dc2'},
            }},
            'pgha_haproxy': {'hosts': {
                self.lb1: {'ansible_host': self.ip[self.lb1], 'pgha_datacenter': 'dc1'},
                self.lb2: {'ansible_host': self.ip[self.lb2], 'pgha_datacenter': 'dc1'},
            }},
            'pgha_keepalived': {'hosts': {
                self.lb1: {'pgha_keepalived_priority': 150},
                self.lb2: {'pgha_keepalived_priority': 100},
            }},
        }}}
        group_vars = {
            'ansible_user': 'remote',
            'ansible_ssh_private_key_file': KEY,
            'ansible_ssh_common_args': '-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null',
            # The inventory's port; a test moves sshd and follows it with lab_ssh_port.
            'ansible_port': '{{ lab_ssh_port | default(22) }}',
            # The lab's key, as inventories/lab should give it.
            'pgha_ssh_admin_keys': ["{{ lookup('ansible.builtin.file', '%s.pub') }}" % KEY],
            'pgha_datacenters': {
                'dc1': {'network': self.gw_a.rsplit('.', 1)[0] + '.0/24'},
                'dc2': {'network': self.gw_b.rsplit('.', 1)[0] + '.0/24', 'leader': self.pg2},
            },
            # The control node (docker gateways) and, to prove fail2ban for real, lb1: an
            # admin address that is not trusted (fail2ban may ban it).
            'pgha_admin_networks': [self.gw_a + '/32', self.gw_b + '/32', self.ip[self.lb1] + '/32'],
            'pgha_ssh_trusted_networks': [self.gw_a + '/32', self.gw_b + '/32'],
            'pgha_client_networks': [self.gw_a + '/32', self.gw_b + '/32'],
        }
        os.makedirs(os.path.join(self.inventory, 'group_vars', 'all'), exist_ok=True)
        with open(os.path.join(self.inventory, 'hosts.yml'), 'w') as handle:
            json.dump(inv, handle, indent=1)
        with open(os.path.join(self.inventory, 'group_vars', 'all', 'main.yml'), 'w') as handle:
            json.dump(group_vars, handle, indent=1)

    # -- running things ------------------------------------------------------------------
    @staticmethod
    def env():
        env = dict(os.environ)
        env['PATH'] = VENV_BIN + os.pathsep + env.get('PATH', '')
        env['ANSIBLE_CONFIG'] = os.path.join(ROOT, 'ansible.cfg')
        env['ANSIBLE_FORCE_COLOR'] = '0'
        env['ANSIBLE_NOCOLOR'] = '1'
        return env

    def playbook(self, playbook, *args, inventory=None, timeout=1800):
        """Run ansible-playbook; return (rc, output, recap {host: {ok, changed, ...}})."""
        cmd = [os.path.join(VENV_BIN, 'ansible-playbook'), '-i', inventory or self.inventory,
               playbook] + list(args)
        proc = subprocess.run(cmd, cwd=ROOT, env=self.env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)
        log = os.path.join(self.workdir, 'ansible-%d.log' % time.monotonic_ns())
        with open(log, 'w') as handle:
            handle.write(' '.join(shlex.quote(c) for c in cmd) + '\n' + proc.stdout)
        recap = {}
        for host, stats in re.findall(r'^(\S+)\s+:\s+(ok=.*)$', proc.stdout, re.M):
            recap[host] = {k: int(v) for k, v in re.findall(r'(\w+)=(\d+)', stats)}
        return proc.returncode, proc.stdout, recap

    def harden(self, *args, **kwargs):
        return self.playbook(os.path.join(HERE, 'harden.yml'), *args, **kwargs)

    @staticmethod
    def docker(*args, check=True, timeout=60):
        proc = subprocess.run(['docker'] + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError('docker %s: %s%s' % (' '.join(args), proc.stdout, proc.stderr))
        return proc

    def sh(self, node, script, check=True, timeout=60):
        """Run a shell script as root inside a node (docker exec, not SSH)."""
        return self.docker('exec', node, 'sh', '-c', script, check=check, timeout=timeout)

    def ssh(self, user, node, command='true', port=22, options=(), key=KEY, timeout=60):
        """ssh from the control node (the docker gateway); returns the CompletedProcess."""
        cmd = ['ssh', '-F', '/dev/null', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=5',
               '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
               '-o', 'IdentitiesOnly=yes', '-p', str(port)]
        if key:
            cmd += ['-i', key]
        for option in options:
            cmd += ['-o', option]
        cmd += ['%s@%s' % (user, self.ip[node]), command]
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=timeout, check=False)

    def probe(self, src, dst, port):
        """TCP connect from inside node src to node dst: open, filtered, refused or error."""
        code = ('import socket,sys\n'
                's=socket.socket(); s.settimeout(3)\n'
                'try:\n'
                '    s.connect((sys.argv[1], int(sys.argv[2]))); print("open")\n'
                'except socket.timeout: print("filtered")\n'
                'except ConnectionRefusedError: print("refused")\n'
                'except OSError as e: print("error", e)\n')
        proc = self.docker('exec', src, 'python3', '-c', code, self.ip[dst], str(port))
        return proc.stdout.strip()

    def listen(self, node, ports, seconds=1800):
        """Start TCP listeners (accept and close) inside a node, as the services would."""
        code = ('import socket,sys,threading,time\n'
                'def serve(s):\n'
                '    while True:\n'
                '        c, _ = s.accept(); c.close()\n'
                'for p in sys.argv[1:]:\n'
                '    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n'
                '    s.bind(("0.0.0.0", int(p))); s.listen(64)\n'
                '    threading.Thread(target=serve, args=(s,), daemon=True).start()\n'
                'time.sleep(%d)\n' % seconds)
        self.docker('exec', '-d', node, 'python3', '-c', code, *[str(p) for p in ports])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            out = self.sh(node, 'ss -Hltn').stdout
            if all(re.search(r':%d\s' % p, out) for p in ports):
                return
            time.sleep(0.5)
        raise AssertionError('listeners on %s did not start: %s' % (node, out))

    def vrrp(self, src, dst):
        """Send an IP protocol 112 packet from src to dst; True if a raw socket on dst got it."""
        recv = ('import socket,sys\n'
                's=socket.socket(socket.AF_INET, socket.SOCK_RAW, 112); s.settimeout(6)\n'
                'try:\n'
                '    while True:\n'
                '        data, addr = s.recvfrom(2048)\n'
                '        if addr[0] == sys.argv[1]: print("got", addr[0]); break\n'
                'except socket.timeout: print("none")\n')
        send = ('import socket,sys,time\n'
                's=socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)\n'
                'for _ in range(3):\n'
                '    s.sendto(b"pgha-vrrp-test" * 2, (sys.argv[1], 0)); time.sleep(0.5)\n')
        receiver = subprocess.Popen(['docker', 'exec', dst, 'python3', '-c', recv, self.ip[src]],
                                    stdout=subprocess.PIPE, text=True)
        time.sleep(1.5)
        self.docker('exec', src, 'python3', '-c', send, self.ip[dst])
        out = receiver.communicate(timeout=30)[0]
        return out.strip().startswith('got')


@pytest.fixture(scope='session')
def lab(tmp_path_factory):
    release = os.environ.get('PGHA_ROLES_LAB_RELEASE', 'bookworm')
    if release not in LABS:
        pytest.fail('PGHA_ROLES_LAB_RELEASE must be one of %s' % ', '.join(LABS))
    if subprocess.run(['docker', 'image', 'inspect', 'pgha-lab:' + release], check=False,
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
        pytest.skip('image pgha-lab:%s not built (lab/build-image.sh %s)' % (release, release))
    lab = Lab(release, str(tmp_path_factory.mktemp('roles-lab-' + release)))
    lab.write_files()
    try:
        rc, out, dummy = lab.playbook('lab/up.yml', '-e', 'lab_topology=' + lab.topology,
                                      inventory='localhost,')
        assert rc == 0, out[-3000:]
        yield lab
    finally:
        # Also when the bring-up failed: no container of a half-started lab is left behind.
        if os.environ.get('PGHA_ROLES_LAB_KEEP') != '1':
            lab.playbook('lab/down.yml', '-e', 'lab_topology=' + lab.topology, inventory='localhost,')

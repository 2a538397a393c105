"""A fingerprint of what the roles put on the lab's hosts, to prove that a run changed
nothing: the sha256 of every file they manage, the state of every service they run, and
each database server's role, timeline and upstream.

One `docker exec` per host (a lab container is named like its inventory host), all hosts at
once: about a second for the whole lab.
"""

import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor

# The files the roles write (a pattern that matches nothing is left out).
MANAGED_FILES = (
    # postgresql, primary, standby: the configuration, what ALTER SYSTEM wrote, the standby
    # signal, TLS, the replication password file, the unit drop-ins.
    '/etc/postgresql/*/main/*', '/etc/postgresql/*/main/conf.d/*', '/etc/postgresql/tls/*',
    '/etc/postgresql-common/createcluster.d/*', '/var/lib/postgresql/*/main/postgresql.auto.conf',
    '/var/lib/postgresql/*/main/standby.signal', '/var/lib/postgresql/.pgha_replication.pgpass',
    '/etc/systemd/system/postgresql@*.d/*', '/usr/local/sbin/pgha-*',
    # haproxy, keepalived
    '/etc/haproxy/haproxy.cfg', '/etc/sysctl.d/60-pgha-*', '/etc/keepalived/keepalived.conf',
    # firewall, ssh_hardening (with their last good copies)
    '/etc/nftables.conf', '/etc/systemd/system/nftables.service.d/*', '/var/lib/pgha/firewall/*',
    '/etc/ssh/sshd_config', '/etc/ssh/sshd_config.d/*', '/var/lib/pgha/ssh/*', '/etc/sudoers.d/pgha-*',
    '/etc/fail2ban/jail.d/pgha-*', '/home/*/.ssh/authorized_keys',
    # etcd
    '/etc/default/etcd', '/etc/systemd/system/etcd.service.d/*', '/etc/etcd/pgha/*',
    # health agent and keeper: configuration, code, units, the fence file
    '/etc/pgha/*', '/etc/pgha/etcd/*', '/usr/local/lib/pgha/*', '/etc/systemd/system/pgha-*',
    '/var/lib/pgha/fenced',
    # backup (pgBackRest)
    '/etc/pgbackrest.conf', '/etc/pgbackrest/*', '/etc/pgbackrest/conf.d/*', '/etc/systemd/system/pgbackrest*',
)

# The services the roles run (a unit the host does not have shows as inactive).
SERVICES = ('haproxy', 'keepalived', 'etcd', 'nftables', 'ssh', 'fail2ban', 'pgha-agent', 'pgha-keeper',
            'pgbackrest', 'pgbackrest-backup-full.timer', 'pgbackrest-backup-diff.timer')

# A database server: recovery or not, timeline of its last checkpoint, its upstream.
SERVER_QUERY = ("SELECT pg_is_in_recovery(), (pg_control_checkpoint()).timeline_id, "
                "current_setting('primary_conninfo')")

_SCRIPT = r'''
for f in %(files)s; do
  [ -f "$f" ] && printf 'file %%s %%s\n' "$f" "$(sha256sum < "$f" | cut -d' ' -f1)"
done
units="%(services)s"
for d in /etc/postgresql/*/main; do
  [ -d "$d" ] && v="${d#/etc/postgresql/}" && units="$units postgresql@${v%%/main}-main"
done
for u in $units; do
  printf 'unit %%s %%s %%s\n' "$u" "$(systemctl is-active "$u")" "$(systemctl is-enabled "$u" 2>/dev/null || true)"
done
'''

_SERVER = r'''
printf 'server %%s\n' "$(runuser -u postgres -- psql -XAtq -h /var/run/postgresql -d postgres -c %(query)s 2>&1)"
'''


def _script(database):
    script = _SCRIPT % {'files': ' '.join(MANAGED_FILES), 'services': ' '.join(SERVICES)}
    return script + (_SERVER % {'query': shlex.quote(SERVER_QUERY)} if database else '')


def _host_fingerprint(host, database):
    proc = subprocess.run(['docker', 'exec', host, 'sh', '-c', _script(database)], capture_output=True, text=True,
                          timeout=60, check=False)
    if proc.returncode != 0:
        return {'docker exec': 'failed (%d): %s' % (proc.returncode, proc.stderr.strip())}
    facts = {}
    for line in proc.stdout.splitlines():
        kind, _sep, rest = line.partition(' ')
        if kind in ('file', 'unit'):
            name, _sep, value = rest.partition(' ')
            facts['%s %s' % (kind, name)] = value
        elif kind == 'server':
            facts['server'] = rest
    return facts


def cluster_fingerprint(hosts, database_hosts):
    """{host: {'file PATH': sha256, 'unit NAME': 'ACTIVE ENABLED', 'server': 'recovery|timeline|conninfo'}}
    of every host of ``hosts``; 'server' on those of ``database_hosts`` only."""
    hosts = sorted(hosts)
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        facts = pool.map(lambda host: _host_fingerprint(host, host in database_hosts), hosts)
        return dict(zip(hosts, facts))


def fingerprint_differences(before, after):
    """Every difference between two fingerprints, one line each ('' when they are equal)."""
    lines = []
    for host in sorted(set(before) | set(after)):
        old, new = before.get(host, {}), after.get(host, {})
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                lines.append('%s: %s: %s -> %s' % (host, key, old.get(key, '(none)'), new.get(key, '(none)')))
    return '\n'.join(lines)

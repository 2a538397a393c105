#!/usr/bin/env bash
# Build the lab's systemd base image pgha-lab:RELEASE from Debian with debootstrap and
# `docker import` (no registry is reachable here). The packages the roles install are
# baked in so that converge is fast, but no service is enabled and no PostgreSQL cluster
# exists: the roles still declare, install and enable what they need.
# Rebuilds only when this recipe (this file, which holds the package lists) changed;
# FORCE=1 rebuilds anyway.
set -euo pipefail

release=${1:?usage: $0 bookworm|trixie}
case "$release" in
  bookworm|trixie) ;;   # PostgreSQL 15 / 17, the distros' default majors
  *) echo "unsupported release: $release" >&2; exit 2 ;;
esac
image="pgha-lab:$release"

# Installed by debootstrap: just enough to run apt in the chroot with systemd tooling.
base_pkgs=systemd,systemd-sysv,dbus
# Installed with apt in the chroot (after createcluster.d is written, see below).
# acl: Ansible's become_user to an unprivileged user (postgres) needs setfacl.
pkgs=(python3 python3-psycopg2 python3-apt python3-systemd python3-cryptography acl
      openssh-server sudo iproute2 iputils-ping procps less curl ca-certificates openssl
      nftables fail2ban haproxy keepalived rsync gnupg locales postgresql
      etcd-server etcd-client python3-etcd3gw python3-prometheus-client pgbackrest)
# Units the image must not start on its own; roles enable what they use.
disabled_units=(haproxy keepalived postgresql fail2ban nftables etcd pgbackrest)

recipe=$( { cat "$0"; echo "$release"; } | sha256sum | cut -c1-16)
current=$(docker image inspect -f '{{ index .Config.Labels "pgha.recipe" }}' "$image" 2>/dev/null || true)
if [ "$current" = "$recipe" ] && [ "${FORCE:-0}" != 1 ]; then
  echo "$image is up to date (recipe $recipe)"
  exit 0
fi

start=$SECONDS
dir=$(mktemp -d "/var/tmp/pgha-lab-$release.XXXXXX")
chmod 0755 "$dir"   # it becomes /: mktemp's 0700 would lock out postgres & co in the chroot
cleanup() {
  # debootstrap bind-mounts /dev when run inside a container: unmount everything under
  # the chroot before deleting it, and never cross into another filesystem.
  findmnt -rn -o TARGET | grep -F "$dir/" | sort -r | xargs -r -n1 umount -l || true
  rm -rf --one-file-system "$dir"; rm -f "$dir.log"
}
trap cleanup EXIT

echo "debootstrap $release into $dir"
debootstrap --variant=minbase --include="$base_pkgs" "$release" "$dir" >"$dir.log" 2>&1 \
  || { tail -n 30 "$dir.log" >&2; exit 1; }

# Keep package scripts from starting daemons in the chroot (invoke-rc.d would run the
# init.d scripts, as no systemd runs there).
printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
chmod 0755 "$dir/usr/sbin/policy-rc.d"
# The image must not contain a pre-made cluster (the roles write the same file on hosts).
mkdir -p "$dir/etc/postgresql-common/createcluster.d"
echo 'create_main_cluster = false' >"$dir/etc/postgresql-common/createcluster.d/pgha.conf"

# Package scripts want /proc and real device nodes (debootstrap in a container leaves
# /dev empty after unmounting its bind mount).
mount -t proc proc "$dir/proc"
mount --bind /dev "$dir/dev"   # not --rbind: no submounts whose unmount could propagate
echo "apt-get install ${pkgs[*]}"
chroot "$dir" env DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 sh -euc '
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  sed -i "s/^# *en_US.UTF-8 UTF-8/en_US.UTF-8 UTF-8/" /etc/locale.gen
  locale-gen >/dev/null
  echo LANG=C.UTF-8 >/etc/default/locale
  # Admin user of design.md: key login, passwordless sudo.
  useradd -m -u 1000 -s /bin/bash -G sudo remote
  install -d -m 0700 -o remote -g remote /home/remote/.ssh
  echo "remote ALL=(ALL) NOPASSWD: ALL" >/etc/sudoers.d/remote
  chmod 0440 /etc/sudoers.d/remote
  visudo -cq
  apt-get clean
' sh "${pkgs[@]}" >"$dir.log" 2>&1 || { tail -n 30 "$dir.log" >&2; exit 1; }
umount "$dir/dev"
umount "$dir/proc"
rm -f "$dir/usr/sbin/policy-rc.d"

# Host keys and machine-id are per container, generated at first boot.
rm -f "$dir"/etc/ssh/ssh_host_*
: >"$dir/etc/machine-id"
rm -f "$dir/var/lib/dbus/machine-id"

cat >"$dir/etc/systemd/system/pgha-lab-ssh-keygen.service" <<'EOF'
[Unit]
Description=Generate SSH host keys at first boot (the image carries none)
Before=ssh.service ssh.socket
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target ssh.service
EOF

# Docker resets the routing table at every start: reapply the lab's routes from a file
# (written by lab/up.yml) so that a restarted node still reaches the other datacenter.
mkdir -p "$dir/etc/pgha-lab"
cat >"$dir/usr/local/sbin/pgha-lab-routes" <<'EOF'
#!/bin/sh
# Apply /etc/pgha-lab/routes: one "CIDR via GATEWAY" per line; # starts a comment.
set -eu
[ -r /etc/pgha-lab/routes ] || exit 0
grep -v '^[[:space:]]*\(#\|$\)' /etc/pgha-lab/routes | while read -r cidr via gw; do
  [ "$via" = via ] || { echo "bad line: $cidr $via $gw" >&2; exit 1; }
  ip route replace "$cidr" via "$gw"
done
EOF
chmod 0755 "$dir/usr/local/sbin/pgha-lab-routes"
cat >"$dir/etc/systemd/system/pgha-lab-routes.service" <<'EOF'
[Unit]
Description=Routes to the other lab datacenter (/etc/pgha-lab/routes)
DefaultDependencies=no
After=local-fs.target
Before=network-online.target ssh.service multi-user.target
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/pgha-lab-routes

[Install]
WantedBy=multi-user.target
EOF

systemctl --root="$dir" enable pgha-lab-ssh-keygen.service pgha-lab-routes.service >/dev/null 2>&1
systemctl --root="$dir" disable "${disabled_units[@]}" >/dev/null 2>&1
# Nothing to do in a container, and they fail or wait there.
systemctl --root="$dir" mask getty@tty1.service serial-getty@.service console-getty.service \
  systemd-remount-fs.service sys-kernel-debug.mount sys-kernel-tracing.mount >/dev/null 2>&1

# Keep the image small.
rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/log/*.log \
  "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/tmp/*

rootfs=$(tar -C "$dir" --numeric-owner --xattrs --xattrs-include='security.capability' -c . |
  docker import \
    -c 'CMD ["/lib/systemd/systemd"]' \
    -c 'ENV container=docker' \
    -c "LABEL pgha.recipe=$recipe" \
    -c "LABEL pgha.release=$release" -)
# This docker's import rejects STOPSIGNAL; systemd needs SIGRTMIN+3 to shut down cleanly
# (Molecule and plain `docker stop` use the image's signal), so add it in a config-only build.
old=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
printf 'FROM %s\nSTOPSIGNAL SIGRTMIN+3\n' "$rootfs" |
  DOCKER_BUILDKIT=0 docker build -q -t "$image" - >/dev/null 2>"$dir.log" \
  || { cat "$dir.log" >&2; exit 1; }
# The previous build is now untagged: drop it (and its rootfs layer).
[ -z "$old" ] || docker image rm "$old" >/dev/null 2>&1 || true

echo "built $image (recipe $recipe, $(docker image inspect -f '{{.Size}}' "$image" | numfmt --to=iec)) in $((SECONDS - start))s"

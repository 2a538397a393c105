#!/usr/bin/env bash
# Make sure a docker engine answers and debootstrap is available (the lab builds its
# images locally: no registry is reachable). Idempotent; there is no systemd on the
# control machine, so dockerd is started by hand, detached so it outlives `make`.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
apt_updated=0
apt_install() {
  [ "$apt_updated" = 1 ] || { apt-get update -qq; apt_updated=1; }
  apt-get install -y -qq "$@" >/dev/null
}

command -v debootstrap >/dev/null || { echo "installing debootstrap"; apt_install debootstrap; }

# Every systemd container (PID 1, journald, logind, dbus...) takes inotify instances from
# one shared per-uid budget (128 by default): past it, systemd fails to boot (exit 255)
# or units fail with "Too many open files". Raise the limits, never lower them.
raise_sysctl() {
  [ "$(sysctl -n "$1")" -ge "$2" ] || sysctl -qw "$1=$2" || echo "warning: could not raise $1 to $2" >&2
}
raise_sysctl fs.inotify.max_user_instances 8192
raise_sysctl fs.inotify.max_user_watches 1048576

if docker info >/dev/null 2>&1; then
  exit 0
fi

if ! command -v dockerd >/dev/null; then
  echo "installing docker.io"
  apt_install docker.io
fi

if ! pgrep -x dockerd >/dev/null; then
  echo "starting dockerd (log: /var/log/dockerd.log)"
  # setsid + nohup: a new session, so make's exit or a terminal hangup does not kill it.
  setsid nohup dockerd >/var/log/dockerd.log 2>&1 </dev/null &
fi

timeout=${DOCKER_START_TIMEOUT:-60}
for _ in $(seq "$timeout"); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 1
done
echo "ERROR: docker info does not answer after ${timeout}s; see /var/log/dockerd.log" >&2
tail -n 20 /var/log/dockerd.log >&2 || true
exit 1

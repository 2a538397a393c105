#!/usr/bin/env bash
# Smoke test of a running docker lab (make lab-smoke): what the deploy relies on. Checks
# ssh + sudo as remote on every node, routing between datacenters through the router,
# lab/link.sh cut/restore, routes surviving a container restart, and an extra (VIP-like)
# address reachable from the control node. Leaves the lab as it found it.
#   tests/lab/smoke.sh [lab/topology-default.yml]
set -euo pipefail
cd "$(dirname "$0")/../.."
topology=${1:-lab/topology-default.yml}
key=.lab/ssh/id_ed25519
ssh_opts=(-i "$key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
          -o LogLevel=ERROR -o BatchMode=yes -o ConnectTimeout=5)

# router=NAME; nodes=(NAME:NETWORK:IP ...) from the topology (venv python has PyYAML).
router=; nodes=()
eval "$(python3 - "$topology" <<'PY'
import sys, yaml
t = yaml.safe_load(open(sys.argv[1]))
print("router=%s" % t["router"]["name"])
print("nodes=(%s)" % " ".join("%s:%s:%s" % (n, v["network"], v["ip"]) for n, v in t["nodes"].items()))
PY
)"

fail() { echo "FAIL: $*" >&2; exit 1; }
reach() { docker exec "$1" ping -c1 -W2 "$2" >/dev/null 2>&1; }
wait_ssh() { for _ in $(seq 60); do ssh "${ssh_opts[@]}" "remote@$1" true 2>/dev/null && return 0; sleep 1; done; return 1; }

for n in "${nodes[@]}"; do
  IFS=: read -r name _ ip <<<"$n"
  [ "$(ssh "${ssh_opts[@]}" "remote@$ip" 'sudo -n hostname')" = "$name" ] || fail "ssh/sudo on $name"
done
echo "ok: ssh + sudo as remote on ${#nodes[@]} nodes"

# The first node, a node of another datacenter, and another node of the first one.
IFS=: read -r a net_a _ <<<"${nodes[0]}"
for n in "${nodes[@]}"; do
  IFS=: read -r name net ip <<<"$n"
  if [ "$net" != "$net_a" ] && [ -z "${b:-}" ]; then b=$name; ip_b=$ip; fi
  if [ "$net" = "$net_a" ] && [ "$name" != "$a" ] && [ -z "${c:-}" ]; then c=$name; ip_c=$ip; fi
done
if [ -z "${b:-}" ] || [ -z "${c:-}" ]; then fail "topology needs 2 nodes in $net_a and one elsewhere"; fi

reach "$a" "$ip_b" || fail "$a does not reach $b ($ip_b) through $router"
echo "ok: $a reaches $b through $router"
trap 'lab/link.sh restore "$router" >/dev/null' EXIT
lab/link.sh cut "$router" >/dev/null
! reach "$a" "$ip_b" || fail "$a still reaches $b with the link cut"
[ "$(lab/link.sh status "$router")" = cut ] || fail "link status after cut"
lab/link.sh restore "$router" >/dev/null
reach "$a" "$ip_b" || fail "$a does not reach $b after restore"
echo "ok: lab/link.sh cut/restore"

docker restart "$c" >/dev/null
wait_ssh "$ip_c" || fail "no ssh on $c after restart"
reach "$c" "$ip_b" || fail "$c lost its route to $b after restart"
echo "ok: $c keeps its routes across docker restart"

# .200: a free address (the deploy's VIP is .100); keepalived adds addresses this way.
extra=${ip_c%.*}.200
docker exec "$c" ip addr add "$extra/24" dev eth0
timeout 5 bash -c "</dev/tcp/$extra/22" || { docker exec "$c" ip addr del "$extra/24" dev eth0; fail "extra address $extra unreachable"; }
docker exec "$c" ip addr del "$extra/24" dev eth0
echo "ok: extra address $extra on $c reachable from the control node"
echo "lab smoke test passed ($topology)"

#!/usr/bin/env bash
# make bench-deploy: wall time of site.yml on a fresh lab and of the rerun, with the
# changed counts. Destroys the running lab first (it is a fresh-deploy benchmark).
#   scripts/bench-deploy.sh [INVENTORY] [TOPOLOGY]
set -euo pipefail
cd "$(dirname "$0")/.."
inventory=${1:-inventories/lab}
topology=${2:-lab/topology-default.yml}
out=$(mktemp -d /tmp/pgha-bench-deploy.XXXXXX)
# Per-task and per-role times in the logs: where the deploy spends its time.
export ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks,ansible.posix.profile_roles

changed_total() {
    # Sum of changed= over the PLAY RECAP lines of one ansible-playbook output.
    sed -n '/^PLAY RECAP/,$p' "$1" | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^changed=/) {split($i, kv, "="); s += kv[2]}} END {print s + 0}'
}

run_site() {
    local name=$1 start
    start=$(date +%s.%N)
    ansible-playbook site.yml -i "$inventory" >"$out/$name.log" 2>&1 || {
        echo "site.yml failed ($name): see $out/$name.log" >&2
        exit 1
    }
    awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {print b - a}'
}

make --no-print-directory lab-down LAB_TOPOLOGY="$topology" >"$out/down.log" 2>&1
make --no-print-directory lab-up LAB_TOPOLOGY="$topology" >"$out/up.log" 2>&1
fresh=$(run_site fresh)
rerun=$(run_site rerun)
os_name=$(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release)
printf 'machine: %s, %s cores, %s\n' "$(uname -m)" "$(nproc)" "$os_name"
printf 'site.yml fresh: %.0f s, changed=%s\n' "$fresh" "$(changed_total "$out/fresh.log")"
printf 'site.yml rerun: %.0f s, changed=%s\n' "$rerun" "$(changed_total "$out/rerun.log")"
echo "logs: $out"

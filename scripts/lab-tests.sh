#!/usr/bin/env bash
# make test's tests on docker labs. Molecule's default scenario (the whole lab, its
# deploy checks, then every fault test) runs in the foreground. Once its fault tests begin
# - they mostly wait for detection, failovers and timeouts, and leave about half of the
# CPU idle - the other targets run beside them, one after the other: the roles' own lab,
# the validation matrix on the lowest ansible-core, the trixie scenario, the integration
# tests (on one worker, INTEGRATION_WORKERS). Their labs have names and subnets of their
# own; the integration tests' servers run on loopback. Their output goes to a log each, printed once the
# default scenario ended, so that the two streams do not interleave; the last lines name
# every failed target and test.
#
# Usage: scripts/lab-tests.sh [TARGET ...]   (the targets beside; default below)
set -uo pipefail

make_cmd="${MAKE:-make}"
beside=("$@")
[ ${#beside[@]} -gt 0 ] || beside=(test-roles test-core-min molecule-trixie integration)
export INTEGRATION_WORKERS="${INTEGRATION_WORKERS:-1}"
logs="$(mktemp -d "${TMPDIR:-/tmp}/pgha-lab-tests.XXXXXX")"
export PGHA_FAULT_TESTS_BEGAN_FILE="$logs/fault-tests-began"

(set -o pipefail; "$make_cmd" --no-print-directory molecule-default 2>&1 | tee "$logs/molecule-default.log") &
default=$!
while [ ! -e "$PGHA_FAULT_TESTS_BEGAN_FILE" ] && kill -0 "$default" 2>/dev/null; do
  sleep 5
done

declare -A outcome
for target in "${beside[@]}"; do
  began=$SECONDS
  if "$make_cmd" --no-print-directory "$target" >"$logs/$target.log" 2>&1; then
    outcome[$target]="passed in $((SECONDS - began)) s"
  else
    outcome[$target]="FAILED after $((SECONDS - began)) s"
  fi
done

wait "$default"
default_rc=$?

for target in "${beside[@]}"; do
  echo
  echo "======== make $target (beside the default scenario's fault tests): ${outcome[$target]}"
  cat "$logs/$target.log"
done

echo
echo "======== lab tests (logs in $logs)"
failed=0
if [ "$default_rc" -eq 0 ]; then
  echo "molecule-default: passed"
else
  echo "molecule-default: FAILED"
  failed=1
fi
for target in "${beside[@]}"; do
  echo "$target: ${outcome[$target]}"
  case "${outcome[$target]}" in FAILED*) failed=1 ;; esac
done
# The failed tests of every log: pytest's short summary, and molecule-test.sh's.
sed -e 's/\x1b\[[0-9;]*m//g' "$logs"/*.log | grep -E '^(FAILED|ERROR) [^ ]+::' | sort -u || true
exit "$failed"

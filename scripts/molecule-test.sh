#!/usr/bin/env bash
# `molecule test -s SCENARIO`, and when it fails, the failed tests named again at the very
# end: Molecule's destroy step prints after pytest's summary, and a CI log that keeps only
# its tail would otherwise say "Verifier tests failed" and nothing about which.
#
# Usage: scripts/molecule-test.sh SCENARIO
set -euo pipefail

scenario="$1"
log="$(mktemp "${TMPDIR:-/tmp}/pgha-molecule-$scenario.XXXXXX")"
if molecule test -s "$scenario" 2>&1 | tee "$log"; then
  rm -f "$log"
  exit 0
fi
echo
echo "molecule test -s $scenario failed (its whole output: $log). Failed tests:"
# pytest's short summary, out of the frame Molecule draws around the verifier's output
# (colours, a left border, lines folded at 80 columns): one line for each failed test.
sed -e 's/\x1b\[[0-9;]*m//g' "$log" | awk '
  /short test summary info/ { summary = 1; next }
  summary && / in [0-9.]+s / { summary = 0 }
  !summary { next }
  { line = $0; sub(/^[[:space:]]*│ ?/, "", line) }
  line ~ /^(FAILED|ERROR)/ { if (entry != "") print entry; entry = line; next }
  line ~ /^[A-Z]+ / { if (entry != "") print entry; entry = ""; next }
  entry != "" {
    sub(/^ +/, "", line)
    # A test id folds mid-word; its reason folds between words.
    entry = entry ((entry ~ /^(FAILED|ERROR)$/ || entry ~ / - /) ? " " : "") line
  }
  END { if (entry != "") print entry }
' | grep . || echo "(none: it failed before or outside its tests)"
exit 1

#!/usr/bin/env bash
# Build the collection the way it is released and check what a user would install:
#   1. `ansible-galaxy collection build` into a temporary directory;
#   2. the tarball carries no work-tree state (.venv, .lab, collections/, .git, caches);
#   3. it installs offline (--offline --no-deps: Galaxy is not reachable) into an empty
#      collections path;
#   4. from that installed copy, and only from it, `ansible-doc` renders every module
#      under plugins/modules and every role that has meta/argument_specs.yml.
# Modules and roles are discovered from the checkout, so new ones are checked as they land.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VENV:-$root/.venv}"
export PATH="$venv/bin:$PATH"
for tool in ansible-galaxy ansible-doc; do
  command -v "$tool" >/dev/null || { echo "$tool not found: run 'make venv' first" >&2; exit 2; }
done

read -r namespace name version < <("$venv/bin/python" - "$root/galaxy.yml" <<'EOF'
import sys
import yaml
with open(sys.argv[1]) as handle:
    meta = yaml.safe_load(handle)
print(meta['namespace'], meta['name'], meta['version'])
EOF
)

work="$(mktemp -d "${TMPDIR:-/tmp}/pgha-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# Run every ansible command from the temp dir, without the checkout's ansible.cfg (which
# would put the checkout itself on the collections path).
unset ANSIBLE_CONFIG ANSIBLE_COLLECTIONS_PATH ANSIBLE_COLLECTIONS_PATHS
cd "$work"
start=$SECONDS
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

echo "== build $namespace.$name $version"
ansible-galaxy collection build --output-path "$work/dist" "$root" >/dev/null
tarball="$work/dist/$namespace-$name-$version.tar.gz"
[ -f "$tarball" ] || { echo "FAIL: $tarball was not built" >&2; exit 1; }
echo "built $(basename "$tarball"): $(du -h "$tarball" | cut -f1), $(tar -tzf "$tarball" | wc -l) entries"

echo "== tarball contents"
tar -tzf "$tarball" | sed 's#^\./##' > "$work/contents.txt"
for required in MANIFEST.json FILES.json galaxy.yml meta/runtime.yml; do
  grep -qxF "$required" "$work/contents.txt" || [ "$required" = galaxy.yml ] ||
    fail "tarball lacks $required"
done
# Work-tree state that must never ship: virtualenv, lab secrets, the self-referencing
# symlink, git metadata, test output and caches.
forbidden='^(\.venv|\.lab|collections|\.git|\.cache|\.ansible|tests/output)(/|$)|(^|/)(__pycache__|\.pytest_cache)(/|$)|\.pyc$|\.tar\.gz$'
if grep -E "$forbidden" "$work/contents.txt" > "$work/forbidden.txt"; then
  fail "tarball contains work-tree files (add them to build_ignore in galaxy.yml):"
  head -20 "$work/forbidden.txt" | sed 's/^/  /' >&2
else
  echo "no .venv, .lab, collections/, .git, caches or archives in the tarball"
fi
# More generally: nothing git ignores (lab PKI, bench results, caches, ...) may ship.
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
  grep -v -e '/$' -e '^MANIFEST.json$' -e '^FILES.json$' "$work/contents.txt" |
    git -C "$root" check-ignore --stdin > "$work/ignored.txt" || true
  if [ -s "$work/ignored.txt" ]; then
    fail "tarball contains files git ignores (add them to build_ignore in galaxy.yml):"
    head -20 "$work/ignored.txt" | sed 's/^/  /' >&2
  else
    echo "no git-ignored file in the tarball"
  fi
fi

echo "== offline install into an empty collections path"
install_path="$work/collections"
mkdir -p "$install_path"
ansible-galaxy collection install --offline --no-deps -p "$install_path" "$tarball" >/dev/null 2>"$work/install.err" || {
  cat "$work/install.err" >&2
  echo "FAIL: offline install of the tarball" >&2
  exit 1
}
installed="$install_path/ansible_collections/$namespace/$name"
[ -f "$installed/MANIFEST.json" ] || { echo "FAIL: nothing installed at $installed" >&2; exit 1; }
echo "installed at $installed"

export ANSIBLE_COLLECTIONS_PATH="$install_path"
# The collection must resolve from the installed copy, not from anywhere else.
found="$(ansible-galaxy collection list "$namespace.$name" --format json 2>/dev/null |
  "$venv/bin/python" -c 'import json, sys; print(" ".join(sorted(json.load(sys.stdin))))')"
[ "$found" = "$install_path/ansible_collections" ] ||
  fail "$namespace.$name resolves from '$found', expected only $install_path/ansible_collections"

doc_check() {  # doc_check TYPE FQCN
  local type="$1" fqcn="$2" out="$work/doc.out" err="$work/doc.err"
  if ! ansible-doc -t "$type" "$fqcn" >"$out" 2>"$err"; then
    fail "ansible-doc -t $type $fqcn exited non-zero"
    sed 's/^/  /' "$err" >&2
    return
  fi
  # ansible-doc reports some problems (not found, unparsable docs) as warnings with exit 0.
  if grep -qE '\[(ERROR|WARNING)\]' "$err"; then
    fail "ansible-doc -t $type $fqcn reported problems"
    sed 's/^/  /' "$err" >&2
    return
  fi
  if ! grep -qF "$fqcn" "$out" || [ "$(wc -l < "$out")" -lt 5 ]; then
    fail "ansible-doc -t $type $fqcn rendered no documentation"
    sed 's/^/  /' "$out" "$err" >&2
    return
  fi
  echo "ok: $type $fqcn ($(wc -l < "$out") lines)"
}

echo "== ansible-doc from the installed collection"
shopt -s nullglob
modules=()
for path in "$root"/plugins/modules/*.py; do
  module="$(basename "$path" .py)"
  [ "$module" = __init__ ] && continue
  modules+=("$module")
  [ -f "$installed/plugins/modules/$module.py" ] || fail "module $module is not in the tarball"
  doc_check module "$namespace.$name.$module"
done
roles=()
for spec in "$root"/roles/*/meta/argument_specs.yml "$root"/roles/*/meta/argument_specs.yaml; do
  role="$(basename "$(dirname "$(dirname "$spec")")")"
  roles+=("$role")
  doc_check role "$namespace.$name.$role"
done
[ ${#modules[@]} -gt 0 ] || echo "note: no modules under plugins/modules yet"

echo "build-check: ${#modules[@]} module(s), ${#roles[@]} role(s) documented, $failures failure(s), $((SECONDS - start)) s"
[ "$failures" -eq 0 ]

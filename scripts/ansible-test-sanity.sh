#!/usr/bin/env bash
# Run `ansible-test sanity` on the collection without docker.
#
# ansible-test needs the collection at .../ansible_collections/<namespace>/<name> and, to
# know which files belong to it, a git repository there. So the collection's files (tracked
# plus untracked-but-not-ignored, i.e. what the next commit would carry; not the
# `collections/` symlink that points back to the checkout) are copied to a temporary
# ansible_collections/pgha/multidc, committed to a throw-away repository and tested there.
#
# The tests run with the controller's Python (the one of .venv, --local); the tests that
# need tools (pylint, pep8, yamllint, validate-modules, changelog, ...) get virtual
# environments that ansible-test creates once under ~/.ansible/test/venv (PyPI needed the
# first time only).
#
# Usage: scripts/ansible-test-sanity.sh [extra ansible-test sanity arguments]
#   e.g. scripts/ansible-test-sanity.sh --test pylint
# Environment: PYTHON_VERSION (default 3.11), KEEP_SANITY_TREE=1 keeps the temporary copy.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VENV:-$root/.venv}"
python_version="${PYTHON_VERSION:-3.11}"
ansible_test="$venv/bin/ansible-test"
[ -x "$ansible_test" ] || ansible_test="$(command -v ansible-test)" || {
  echo "ansible-test not found: run 'make venv' first" >&2
  exit 2
}
export PATH="$venv/bin:$PATH"

# Read namespace and name from galaxy.yml so the copy lands where ansible-test expects it.
read -r namespace name < <("$venv/bin/python" - "$root/galaxy.yml" <<'EOF'
import sys
import yaml
with open(sys.argv[1]) as handle:
    meta = yaml.safe_load(handle)
print(meta['namespace'], meta['name'])
EOF
)

work="$(mktemp -d "${TMPDIR:-/tmp}/pgha-sanity.XXXXXX")"
if [ "${KEEP_SANITY_TREE:-0}" = 1 ]; then
  trap 'echo "kept: $work" >&2' EXIT
else
  trap 'rm -rf "$work"' EXIT
fi

dest="$work/ansible_collections/$namespace/$name"
mkdir -p "$dest"

# What the collection is made of: tracked and untracked non-ignored files that exist
# (a tracked file deleted in the work tree is left out), never the collections/ symlink.
(
  cd "$root"
  git ls-files -co --exclude-standard -z |
    while IFS= read -r -d '' path; do
      case "$path" in
        collections|collections/*) continue ;;
      esac
      if [ -e "$path" ] || [ -L "$path" ]; then
        printf '%s\0' "$path"
      fi
    done
) > "$work/files.lst"

tar -C "$root" --null --no-recursion -T "$work/files.lst" -cf - | tar -C "$dest" -xf -

(
  cd "$dest"
  git init -q
  git add -A
  git -c user.name=sanity -c user.email=sanity@localhost.invalid \
    -c commit.gpgsign=false commit -q -m sanity
)

# ansible-test bootstraps pip into each sanity virtual environment with a get-pip script it
# downloads from its own CI file server, which is not reachable from here. Its documented
# workaround is to put that script in its cache; we put a stand-in there that does the same
# job with the interpreter's own ensurepip and then pip-installs the pinned pip from PyPI.
pip_version="$("$venv/bin/python" - <<'EOF'
import os
import re
import ansible_test
path = os.path.join(os.path.dirname(ansible_test.__file__), '_internal', 'python_requirements.py')
with open(path) as handle:
    print(re.search(r"pip='([0-9.]+)'", handle.read()).group(1))
EOF
)"
get_pip="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if [ ! -s "$get_pip" ]; then
  mkdir -p "$(dirname "$get_pip")"
  cat > "$get_pip.tmp" <<'EOF'
# Stand-in for get-pip.py written by pgha.multidc scripts/ansible-test-sanity.sh:
# ansible-test runs it as `python get_pip.py [pip options] PACKAGE==VERSION ...
# [--no-setuptools] [--no-wheel]` inside a fresh virtual environment without pip.
import subprocess
import sys

args = sys.argv[1:]
no_setuptools = '--no-setuptools' in args
no_wheel = '--no-wheel' in args
args = [arg for arg in args if arg not in ('--no-setuptools', '--no-wheel')]
subprocess.check_call([sys.executable, '-m', 'ensurepip', '--default-pip'],
                      stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, '-m', 'pip', 'install', '--quiet'] + args)
unwanted = [name for name, drop in (('setuptools', no_setuptools), ('wheel', no_wheel)) if drop]
if unwanted:
    subprocess.check_call([sys.executable, '-m', 'pip', 'uninstall', '--quiet', '--yes'] + unwanted)
EOF
  mv "$get_pip.tmp" "$get_pip"
fi

# The shellcheck program is optional: ansible-test skips that test (with a warning) without it.
command -v shellcheck >/dev/null || echo "note: shellcheck not installed, its sanity test is skipped" >&2

echo "ansible-test sanity on $namespace.$name ($(wc -l < <(tr '\0' '\n' < "$work/files.lst")) files), Python $python_version"
start=$SECONDS
status=0
(
  cd "$dest"
  # The checkout's ansible.cfg (exported by the Makefile) points at the checkout; the
  # copy is tested on its own.
  env -u ANSIBLE_CONFIG "$ansible_test" sanity --local --python "$python_version" --color no "$@"
) || status=$?
echo "ansible-test sanity finished in $((SECONDS - start)) s with exit status $status"
exit "$status"

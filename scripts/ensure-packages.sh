#!/usr/bin/env bash
# Install the Debian packages the tests need when they are missing. Idempotent, no prompts.
set -euo pipefail
missing=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v openssl >/dev/null || missing+=(openssl)
/usr/bin/python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v runuser >/dev/null || missing+=(util-linux)
# tests/integration/test_dcs.py runs a real etcd on loopback.
command -v etcd >/dev/null || missing+=(etcd-server)
# status.yml -e status_svg=PATH draws the replication tree with Graphviz.
command -v dot >/dev/null || missing+=(graphviz)
# tests/integration/test_pgbackrest.py archives, backs up and restores with it.
command -v pgbackrest >/dev/null || missing+=(pgbackrest)
# ansible-test sanity skips its shellcheck test without it.
command -v shellcheck >/dev/null || missing+=(shellcheck)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

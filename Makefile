# pgha.multidc: `make test` sets up what is missing and runs every check and test;
# `make lab` brings up the two-datacenter docker lab and deploys it.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV ?= $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PYTHONDONTWRITEBYTECODE := 1
PYTEST ?= $(VENV)/bin/pytest

.PHONY: help venv packages test check lint sanity unit integration build-check \
        bench-basebackup bench-backup bench-backup-trixie

help:
	@echo "make test               install what is missing, run every check and test"
	@echo "make test-core-min      the validation matrix and playbook syntax on the lowest ansible-core"
	@echo "make lab                bring up the two-datacenter docker lab and deploy it"
	@echo "make lab-down           remove everything the lab created"
	@echo "make bench-basebackup   pg_basebackup_standby vs plain pg_basebackup (~1 GB)"
	@echo "make bench-backup       pgBackRest backup (from a standby) vs pg_basebackup, restore, PITR (~1 GB)"
	@echo "make bench-backup-trixie  the same in the Debian 13 lab image (pgBackRest 2.55, PostgreSQL 17)"
	@echo "make bench-deploy       site.yml on a fresh lab and its rerun (destroys the lab)"
	@echo "make bench-failover     failover, rejoin, switchover x3 with the writer on the deployed lab"
	@echo "make bench-autorecovery kill -9 and host loss x5, the keepers failing over, on the deployed lab"
	@echo "make bench-peer         ours vs Patroni (defaults, fastest): kill -9, host loss, switchover x5"
	@echo "make test-faults        every fault test (failover ... DR promotion) on the deployed lab"

# The system Python, not a per-user one: the integration tests run Ansible from this
# virtualenv as the postgres user, who cannot enter root's home.
SYSTEM_PYTHON ?= /usr/bin/python3

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt requirements-test.txt | packages
	$(SYSTEM_PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements-test.txt
	touch $@

packages:
	scripts/ensure-packages.sh

# Tests on docker containers of our own image: the full topology (Debian 12) and a
# smaller one on Debian 13 (PostgreSQL 17), each with create, converge, verify (and
# idempotence for trixie; the default scenario's verify reruns site.yml as an AWX job).
# The default scenario's verify step also runs every fault test of the operations
# (tests/faults/). test-roles: ssh_hardening and firewall on a small lab of their own (the
# paths a deploy never takes: moving the SSH port and back, a broken sshd_config, fail2ban
# banning for real, a firewall that must not cut Ansible off).
# lab-tests runs test-roles, test-core-min, the trixie scenario and the integration tests
# beside the default scenario's fault tests, which leave half of the CPU idle
# (scripts/lab-tests.sh); `make test LAB_TESTS="integration test-core-min"` runs no lab.
LAB_TESTS ?= lab-tests
test: venv packages check unit $(LAB_TESTS)
	@echo "make test: all checks and tests passed"

.PHONY: test-lab test-roles lab-tests
test-lab: test-roles molecule-default molecule-trixie

lab-tests: venv packages lab-docker lab-image lab-image-trixie core-min-venv
	scripts/lab-tests.sh test-roles test-core-min molecule-trixie integration

test-roles: venv lab-image
	PGHA_ROLES_LAB_RELEASE=bookworm $(PYTEST) -v -p no:cacheprovider tests/lab_roles

check: lint sanity build-check ee-check

lint: venv
	ansible-lint --profile production --offline

sanity: venv packages
	scripts/ansible-test-sanity.sh

build-check: venv
	scripts/build-check.sh

.PHONY: ee-check
# The execution environment: ansible-builder writes the build context of
# execution-environment.yml into a temporary directory (no image is built or pulled) and
# tests/ee checks that it installs exactly what requirements.txt, requirements.yml,
# galaxy.yml and bindep.txt declare, as does the collection's meta/execution-environment.yml.
ee-check: venv
	context="$$(mktemp -d "$${TMPDIR:-/tmp}/pgha-ee.XXXXXX")"; trap 'rm -rf "$$context"' EXIT; \
	  ansible-builder create -f execution-environment.yml -c "$$context/context" --output-filename Containerfile; \
	  PGHA_EE_CONTEXT="$$context/context" $(PYTEST) -q -p no:cacheprovider tests/ee

unit: venv
	$(PYTEST) -q tests/unit

# Each test file on one of INTEGRATION_WORKERS workers: the tests are CPU-bound Ansible
# runs and most of them keep their servers for the whole file (make test runs them beside
# the fault tests, on one worker: scripts/lab-tests.sh).
INTEGRATION_WORKERS ?= 2
integration: venv packages
	$(PYTEST) -q -n $(INTEGRATION_WORKERS) --dist loadfile tests/integration

# The lowest ansible-core that requirements.txt and meta/runtime.yml admit, in a virtualenv
# of its own: the validation matrix (every bad input refused, with its message) and the
# syntax of site.yml and of every playbook, with no Ansible warning. The `ansible` bundle of
# that core brings the community collections (no Galaxy); pytest stays the main venv's,
# only ansible-playbook is the old one. Bump both pins with meta/runtime.yml.
CORE_MIN_VENV ?= $(CURDIR)/.venv-core-min
CORE_MIN := 2.16
# The `ansible` release whose ansible-core is $(CORE_MIN) (ansible 9 pins ansible-core 2.16).
CORE_MIN_BUNDLE := 9
# ansible-core 2.16.20 deprecates the mapping form of `action` but still writes the task that
# validates a role's meta/argument_specs.yml in that form (ansible/ansible#85399, fixed from
# 2.19 on): one deprecation per run that no file of ours causes. It is let through only while
# our own files use no `action:` mapping, which the grep after the syntax check makes sure of.
CORE_OWN_DEPRECATION := DEPRECATION WARNING\]: Using a mapping for .action. is deprecated

.PHONY: core-min-venv test-core-min
core-min-venv: $(CORE_MIN_VENV)/.installed
$(CORE_MIN_VENV)/.installed: requirements.txt meta/runtime.yml | packages
	grep -qx 'ansible-core>=$(CORE_MIN)' requirements.txt
	grep -qx 'requires_ansible: ">=$(CORE_MIN).0"' meta/runtime.yml
	$(SYSTEM_PYTHON) -m venv $(CORE_MIN_VENV)
	$(CORE_MIN_VENV)/bin/pip install -q --upgrade pip
	$(CORE_MIN_VENV)/bin/pip install -q -r requirements.txt 'ansible-core==$(CORE_MIN).*' \
	  'ansible==$(CORE_MIN_BUNDLE).*'
	touch $@

test-core-min: venv core-min-venv
	PATH=$(CORE_MIN_VENV)/bin:$$PATH ansible --version | grep '^ansible \[core $(CORE_MIN)\.'
	out="$$(PATH=$(CORE_MIN_VENV)/bin:$$PATH ansible-playbook --syntax-check -i inventories/prod \
	  site.yml playbooks/*.yml 2>&1)" || { echo "$$out"; exit 1; }; \
	  if grep 'WARNING' <<<"$$out" | grep -vq "$(CORE_OWN_DEPRECATION)"; then \
	    echo "$$out"; echo "ansible-core $(CORE_MIN) warned"; exit 1; fi
	! grep -rnE '^\s*(- )?(local_)?action:\s*(\{.*)?$$' site.yml playbooks roles molecule
	PATH=$(CORE_MIN_VENV)/bin:$$PATH PGHA_TEST_ANSIBLE_PLAYBOOK=$(CORE_MIN_VENV)/bin/ansible-playbook \
	  $(PYTEST) -q -p no:cacheprovider -n 2 tests/integration/test_validation_matrix.py

bench-basebackup: venv packages
	$(VENV)/bin/python tests/bench/bench_basebackup.py

# The same ~1 GB database: a full pgBackRest backup taken from a standby (process-max 2,
# zst 3: the backup role's defaults) against plain pg_basebackup, the restore of that backup
# until the server accepts connections and promotes, a PITR to a time near the end; x3,
# medians in bench/results/backup-<UTC time>.json.
bench-backup: venv packages
	$(VENV)/bin/python tests/bench/bench_backup.py $(BENCH_BACKUP_ARGS)

# The same on Debian 13 (pgBackRest 2.55, PostgreSQL 17), in the lab's trixie image with the
# checkout mounted: Debian 12's pgBackRest 2.45 sleeps 100 ms before reading the answer to
# each of its ~30 queries, which newer releases wait for on the socket.
bench-backup-trixie: lab-image-trixie
	mkdir -p bench/results
	docker run --rm -v $(CURDIR):$(CURDIR):ro -v $(CURDIR)/bench/results:$(CURDIR)/bench/results \
	  -w $(CURDIR) --entrypoint python3 pgha-lab:trixie tests/bench/bench_backup.py $(BENCH_BACKUP_ARGS)

.PHONY: bench-deploy bench-failover
# On the lab `make lab` deployed: one kill -9 failover, its rerun, rejoin and three
# switchovers with the writer running; figures in $(BENCH_LOG_DIR)/results.json.
BENCH_LOG_DIR ?= /tmp/pgha-bench-failover
bench-failover: venv
	mkdir -p $(BENCH_LOG_DIR)
	ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks \
	  PGHA_FAULT_INVENTORY=$(LAB_INVENTORY) PGHA_FAULT_LOG_DIR=$(BENCH_LOG_DIR) \
	  $(PYTEST) -s -p no:cacheprovider tests/faults/test_failover.py -k TestOperations

# On the lab `make lab` deployed: kill -9 of the primary and the loss of its host, each
# PGHA_BENCH_RUNS times (5), the keepers failing over with nobody running a playbook.
.PHONY: bench-autorecovery
bench-autorecovery: venv
	mkdir -p $(BENCH_LOG_DIR)
	PGHA_FAULT_INVENTORY=$(LAB_INVENTORY) PGHA_FAULT_LOG_DIR=$(BENCH_LOG_DIR) \
	  $(PYTEST) -s -p no:cacheprovider tests/bench/bench_autorecovery.py

# Our cluster and Patroni side by side (tests/bench/peer/bench_peer.py): kill -9 of the
# primary's postmaster, its container killed and a switchover, PGHA_BENCH_RUNS (5) times
# each, with the writer through the VIP; Patroni with its defaults and with its documented
# minimums, on a Patroni lab of its own that it brings up and removes. Our side needs the
# lab `make lab` deployed and leaves it with its first primary.
# BENCH_PEER_SYSTEMS=patroni measures Patroni alone; BENCH_PEER_ARGS='--faults kill9 --runs 1'.
.PHONY: bench-peer
BENCH_PEER_SYSTEMS ?= ours,patroni
bench-peer: venv lab-image
	mkdir -p $(BENCH_LOG_DIR)
	$(VENV)/bin/python tests/bench/peer/bench_peer.py --systems $(BENCH_PEER_SYSTEMS) \
	  --inventory $(LAB_INVENTORY) --log-dir $(BENCH_LOG_DIR) $(BENCH_PEER_ARGS)

bench-deploy: venv lab-docker
	scripts/bench-deploy.sh $(LAB_INVENTORY) $(LAB_TOPOLOGY)

LAB_INVENTORY ?= inventories/lab

.PHONY: test-faults
# The fault tests of `make test` (Molecule verify) against the lab `make lab` deployed:
# failover, rejoin, switchover, fast forward, host loss, lag bound, rebuilds,
# pause/resume, autorecovery (the keepers acting alone), the link cut and DR promotion (it
# stops datacenter 1, then restores the lab).
test-faults: venv
	PGHA_FAULT_INVENTORY=$(LAB_INVENTORY) $(PYTEST) -v -p no:cacheprovider \
	  tests/faults/test_failover.py tests/faults/test_lag_bound.py \
	  tests/faults/test_rebuild_replication.py tests/faults/test_autorecovery.py \
	  tests/faults/test_backup.py tests/faults/test_dr_promote.py

.PHONY: molecule-default molecule-trixie
molecule-default: venv lab-docker
	scripts/molecule-test.sh default

molecule-trixie: venv lab-docker
	scripts/molecule-test.sh trixie

.PHONY: lab deploy-lab lab-status
# The main job: bring the lab up, deploy the whole topology, print the endpoints.
lab: venv lab-up deploy-lab lab-status

deploy-lab: venv
	ansible-playbook site.yml -i $(LAB_INVENTORY)

lab-status: venv
	ansible-playbook playbooks/status.yml -i $(LAB_INVENTORY)

-include lab/lab.mk

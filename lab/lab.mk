# Docker lab targets, included by the main Makefile (-include lab/lab.mk).
# `make lab` (lab-up + deploy) is defined by the deploy side, not here.
#   make lab-up [LAB_TOPOLOGY=lab/topology-trixie.yml]   # or: make lab-up-trixie
#   make lab-cut-link / lab-restore-link [LAB_ROUTER=pgha-t-router]
LAB_TOPOLOGY ?= lab/topology-default.yml
LAB_ROUTER ?= pgha-router
# The topology's image is pgha-lab:RELEASE; lab-up builds it when its recipe changed.
LAB_RELEASE = $(shell sed -n 's/^image: *pgha-lab://p' $(LAB_TOPOLOGY))

.PHONY: lab-docker lab-image lab-image-trixie lab-up lab-down lab-up-trixie lab-down-trixie \
        lab-cut-link lab-restore-link lab-smoke

lab-docker:
	scripts/ensure-docker.sh

lab-image: lab-docker
	lab/build-image.sh bookworm

lab-image-trixie: lab-docker
	lab/build-image.sh trixie

lab-up: venv lab-docker
	lab/build-image.sh $(LAB_RELEASE)
	@start=$$SECONDS; ansible-playbook -i localhost, lab/up.yml -e lab_topology=$(LAB_TOPOLOGY); \
	  echo "lab up ($(LAB_TOPOLOGY)) in $$((SECONDS - start))s"

lab-down: venv lab-docker
	ansible-playbook -i localhost, lab/down.yml -e lab_topology=$(LAB_TOPOLOGY)

lab-up-trixie:
	$(MAKE) lab-up LAB_TOPOLOGY=lab/topology-trixie.yml

lab-down-trixie:
	$(MAKE) lab-down LAB_TOPOLOGY=lab/topology-trixie.yml

lab-cut-link: lab-docker
	lab/link.sh cut $(LAB_ROUTER)

lab-restore-link: lab-docker
	lab/link.sh restore $(LAB_ROUTER)

# Checks of the running lab itself (ssh, sudo, routing, link cut, restart); no deploy needed.
lab-smoke: lab-up
	tests/lab/smoke.sh $(LAB_TOPOLOGY)

# dkrzspawner: every target is idempotent and runs as root on a fresh Debian 12.
PREFIX ?= /opt/dkrzspawner
VENV   := $(PREFIX)/venv
PY     := $(VENV)/bin/python

.PHONY: env cluster cluster-down demo test test-unit docs bench

env:            ## one world-readable virtualenv: hub, proxy, job side, test tools
	PREFIX=$(PREFIX) bash ci/make-env

cluster:        ## start the local single-node Slurm (munge, MariaDB, slurmdbd, slurmctld, slurmd)
	bash ci/slurm-up

cluster-down:   ## stop it (state kept); `bash ci/slurm-down --purge` also removes state
	bash ci/slurm-down

demo: env cluster  ## demo hub on http://127.0.0.1:8000 (users alice, bob, carol, admin; any password)
	bash ci/demo

test: env cluster  ## the whole suite: unit, integration (real Slurm), end to end (real hub, proxy, browser)
	$(PY) -m pytest

bench: env cluster  ## dkrzspawner vs batchspawner 1.3.0 on the local cluster: benchmarks/results/, README table
	PREFIX=$(PREFIX) bash benchmarks/run

test-unit: env
	$(PY) -m pytest tests/unit

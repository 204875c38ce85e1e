# dkrzspawner: every target is idempotent and runs as root on a fresh Debian 12.
# Where the env goes: `make test PREFIX=DIR` builds everything into DIR instead (CI uses a new one every run).
PREFIX ?= /opt/dkrzspawner
VENV   := $(PREFIX)/venv
PY     := $(VENV)/bin/python
# `make test-hub5`: the newest JupyterHub 5 in a venv of its own (every other package as in $(VENV)), and the tests
# it runs: the unit tests and the core end-to-end ones (first spawn and refusals, hub restart, the services)
HUB5_VENV  := $(PREFIX)/hub5-venv
# (of the services' tests, those that log in through the hub, use its tokens and its pages; not the ones that wait
# for an expiry, for sacct's usage or for a service restart, the same on either hub, so it keeps in its time budget)
HUB5_TESTS := tests/unit tests/e2e/test_first_spawn.py \
              tests/e2e/test_lifecycle.py::test_hub_restart_recovers_a_running_and_a_pending_server \
              $(addprefix tests/e2e/test_services.py::test_,alice_sees_only_bb1234_and_carol_both the_accounts_page \
                the_spawn_form_shows_the_budget_and_warns other_users_may_not_write bad_input_is_refused)

.PHONY: env cluster cluster-down demo test test-hub5 test-unit docs screenshots bench

env:            ## one world-readable virtualenv: hub, proxy, job side, test tools
	PREFIX=$(PREFIX) bash ci/make-env

cluster:        ## start the local Slurm: munge, MariaDB, slurmdbd, slurmctld; compute nodes in namespaces (SLURM_NODES=2)
	PREFIX=$(PREFIX) bash ci/slurm-up

cluster-down:   ## stop it, remove the nodes' namespaces (state kept; `bash ci/slurm-down --purge` removes it)
	bash ci/slurm-down

demo: env cluster  ## demo hub on http://127.0.0.1:8000 (users alice, bob, carol, admin; any password)
	PREFIX=$(PREFIX) bash ci/demo

test: env cluster  ## the whole suite: unit, integration (real Slurm), end to end (real hub, proxy, browser)
	$(PY) -m pytest

test-hub5: env cluster  ## the unit and the core end-to-end tests on JupyterHub 5 (hub and jobs from $(PREFIX)/hub5-venv)
	PREFIX=$(PREFIX) VENV=$(HUB5_VENV) JUPYTERHUB='jupyterhub>=5.4.3,<6' bash ci/make-env
	$(HUB5_VENV)/bin/python -m pytest $(HUB5_TESTS)

bench: env cluster  ## dkrzspawner vs batchspawner 1.3.0, and vs Jülich's kernel provisioner: benchmarks/results/, README
	PREFIX=$(PREFIX) bash benchmarks/run

test-unit: env
	$(PY) -m pytest tests/unit

docs:           ## the HTML docs in docs/_build/html: the env plus the docs extra (Sphinx); warnings are errors
	PREFIX=$(PREFIX) DOCS=1 bash ci/make-env
	$(PY) -m sphinx -E -W --keep-going -n -q -b html docs docs/_build/html
	@echo "docs: docs/_build/html/index.html"

screenshots:    ## copy the browser tests' screenshots (written by `make test`) into the docs
	@ls test-artifacts/screenshots/*.png >/dev/null 2>&1 || \
	  { echo "no screenshots in test-artifacts/screenshots/: run make test first" >&2; exit 1; }
	install -m 0644 test-artifacts/screenshots/*.png docs/_static/screenshots/

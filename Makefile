# One entry point for everything. The venv is built from the two locks on first use and reused
# afterwards (its stamp depends on them and pyproject.toml): requirements.txt (runtime, what the
# Docker image installs) and requirements-dev.txt (tests, lint, sandbox, embedded PostgreSQL).
PYTHON      ?= python3.11
VENV        := .venv
BIN         := $(VENV)/bin
STAMP       := $(VENV)/.installed
UV_VERSION  := 0.13.9
PYTEST_ARGS ?=
# make test runs on this many pytest-xdist workers (docs/development.md); 0 = in this process.
TEST_WORKERS ?= 2

.PHONY: help test test-clock-edges test-fast faults lint lock demo sandbox receiver airflow env bench migrate clean-local venv data-dictionary compose-test

help:
	@echo "make demo      run the main job end to end on embedded defaults"
	@echo "make test      run the test suite (unit + integration, real PostgreSQL and sandbox)"
	@echo "make test-clock-edges  the clock-sensitive tests just before 00:00 UTC on a month's last day and 16:00 UTC"
	@echo "make lint      ruff"
	@echo "make lock      regenerate requirements.txt and requirements-dev.txt from their .in files"
	@echo "make sandbox   run the vendor sandbox (NXCLOUD + AccuAuth) on its own"
	@echo "make receiver  run the webhook receiver on its own"
	@echo "make airflow   airflow standalone with the project's DAGs and connections wired"
	@echo "make bench     benchmarks (not part of make test)"
	@echo "make compose-test  docker-compose.yaml run for real: images, stack, a check through it (root)"
	@echo 'eval "$$(make -s env)"   this shell: the airflow CLI as make airflow sees it (docs/getting-started.md)'

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -r requirements.txt -r requirements-dev.txt
	$(BIN)/uv pip install --python $(BIN)/python --quiet --no-deps -e .
	@# the editable build leaves <dist>.egg-info here; with the repo root on sys.path (python -m ...)
	@# Airflow would find the distribution twice ("Plugin 'telco_webhooks' already registered")
	@rm -rf telco_phonecheck.egg-info
	@touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# libfaketime over each test process and all it starts (docs/development.md); not part of make test.
test-clock-edges: $(STAMP)
	$(BIN)/python -m tests.clock_edges $(ARGS)

faults: $(STAMP)
	$(BIN)/python -m pytest -m faults $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check --diff dags plugins include tools tests bench || (echo "run: $(BIN)/ruff format ." && false)

# The dev lock is constrained by the runtime lock (-c requirements.txt in requirements-dev.in), so
# the runtime one is compiled first and both agree on every package they share.
LOCK_ARGS := --python-version 3.11 --python-platform x86_64-manylinux_2_28 --no-header --no-annotate

lock: $(STAMP)
	$(BIN)/uv pip compile requirements.in $(LOCK_ARGS) -o requirements.txt
	$(BIN)/uv pip compile requirements-dev.in $(LOCK_ARGS) -o requirements-dev.txt

demo: $(STAMP)
	$(BIN)/python -m phonecheck_dev.demo $(ARGS)

migrate: $(STAMP)
	$(BIN)/python -m phonecheck.cli migrate

sandbox: $(STAMP)
	$(BIN)/python -m phonecheck.sandbox

receiver: $(STAMP)
	$(BIN)/python -m phonecheck.receiver

airflow: $(STAMP)
	$(BIN)/python -m phonecheck_dev.local standalone

env: $(STAMP)
	@$(BIN)/python -m phonecheck_dev.local env

bench: $(STAMP)
	$(BIN)/python -m bench

# docker-compose.yaml run for real (docs/deployment.md, "Running the stack for real"): as root;
# installs Docker/Compose/debootstrap when missing, builds the images, runs a check through the
# stack, removes it all. ARGS=--keep-images keeps the images for the next run.
compose-test: $(STAMP)
	$(BIN)/python -m tests.deploy.compose_run $(ARGS)

data-dictionary: $(STAMP)
	$(BIN)/python -m phonecheck.quality.dictionary > docs/data-dictionary.md.tmp && mv docs/data-dictionary.md.tmp docs/data-dictionary.md

clean-local:
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m phonecheck_dev.local drop-metadata; fi
	rm -rf .local

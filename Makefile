# Quick start: `make run` (default sweep and its report), `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
UI_PORT ?= 5000
SERVER_PORT ?= 5050
SERVER_HOST ?= 127.0.0.1
SERVER_WORKERS ?= 2
# A local PostgreSQL for trying a PostgreSQL-backed server (`make postgres`); under /tmp because
# the postgres user must reach it (home directories are often 0700).
PG_DIR ?= /tmp/mcgrad-bench-postgres
STORE ?= sqlite:///$(CURDIR)/mlflow.db
# MLflow's usage telemetry, off for `make ui` and `make server` as in the suite's own processes.
export MLFLOW_DISABLE_TELEMETRY ?= true

.PHONY: install run test bench ui server postgres postgres-stop clean

install: $(STAMP)

# constraints.txt pins the versions the suite was last verified with; pyproject.toml keeps ranges.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --constraint constraints.txt --config-settings editable_mode=compat --editable '.[test,postgres]'
	@touch $@

run: $(STAMP)
	$(PY) -m experiments.run --multirun
	$(PY) -m experiments.report
	@echo
	@echo "Runs are in $(STORE) (experiment mcgrad-bench), or in MLFLOW_TRACKING_URI's store if it is set."
	@echo "Review them with: make ui   (then open the links below)"
	-@$(PY) -m experiments.ui --port $(UI_PORT)

# Installs PostgreSQL, SLURM and MariaDB where it can (root, apt-get); the tests start and stop them.
test: $(STAMP)
	./scripts/install-test-services
	$(PY) -m pytest

# Ratios of where a sweep's time goes; not part of `make test` (timings depend on the machine).
bench: $(STAMP)
	$(PY) benchmarks/bench_suite.py
	$(PY) benchmarks/bench_report.py
	$(PY) benchmarks/bench_families.py
	$(PY) benchmarks/bench_vae.py
	$(PY) benchmarks/bench_server.py

# Prints the links to the latest sweep's runs and parent run first (MLflow 3 opens an experiment
# on a GenAI overview page, not on its runs).
ui: $(STAMP)
	-@$(PY) -m experiments.ui tracking.uri=$(STORE) --port $(UI_PORT)
	$(VENV)/bin/mlflow ui --backend-store-uri $(STORE) --host 127.0.0.1 --port $(UI_PORT)

# A tracking server over the same store (or STORE=postgresql://...), for parallel jobs or several
# machines: point runs at it with tracking.uri=http://127.0.0.1:$(SERVER_PORT). MLflow's background
# job executor is off: the suite does not use it, and it costs about 2 GB and 8 processes.
server: $(STAMP)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow server --backend-store-uri $(STORE) \
		--artifacts-destination $(CURDIR)/mlartifacts --host $(SERVER_HOST) --port $(SERVER_PORT) --workers $(SERVER_WORKERS)

# A local PostgreSQL on 127.0.0.1 (data in PG_DIR); prints the STORE to give `make server`.
postgres: $(STAMP)
	$(PY) -m tests.services.postgres start $(PG_DIR)

postgres-stop: $(STAMP)
	$(PY) -m tests.services.postgres stop $(PG_DIR)

clean:
	rm -rf outputs multirun reports .pytest_cache

# Quick start: `make run` (default sweep and its report), `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
UI_PORT ?= 5000
SERVER_PORT ?= 5050
STORE ?= sqlite:///$(CURDIR)/mlflow.db
# MLflow's usage telemetry, off for `make ui` and `make server` as in the suite's own processes.
export MLFLOW_DISABLE_TELEMETRY ?= true

.PHONY: install run test bench ui server clean

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
	@echo "Review them with: make ui   (then open http://127.0.0.1:$(UI_PORT))"

test: $(STAMP)
	$(PY) -m pytest

# Ratios of where a sweep's time goes; not part of `make test` (timings depend on the machine).
bench: $(STAMP)
	$(PY) benchmarks/bench_suite.py
	$(PY) benchmarks/bench_report.py
	$(PY) benchmarks/bench_families.py

ui: $(STAMP)
	$(VENV)/bin/mlflow ui --backend-store-uri $(STORE) --host 127.0.0.1 --port $(UI_PORT)

# A tracking server over the same store, for parallel jobs or several machines:
# point runs at it with tracking.uri=http://127.0.0.1:$(SERVER_PORT).
server: $(STAMP)
	$(VENV)/bin/mlflow server --backend-store-uri $(STORE) --artifacts-destination $(CURDIR)/mlartifacts \
		--host 127.0.0.1 --port $(SERVER_PORT)

clean:
	rm -rf outputs multirun reports .pytest_cache

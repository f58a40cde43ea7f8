# Quick start: `make run` (default sweep + report), `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
UI_PORT ?= 5000
STORE ?= sqlite:///$(CURDIR)/mlflow.db

.PHONY: install run test ui clean

install: $(STAMP)

# constraints.txt pins the versions the suite was last verified with; pyproject.toml keeps ranges.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --constraint constraints.txt --config-settings editable_mode=compat --editable '.[test]'
	@touch $@

run: $(STAMP)
	$(PY) -m experiments.run --multirun
	@echo
	@echo "Runs are in $(STORE) (experiment mcgrad-bench)."
	@echo "Review them with: make ui   (then open http://127.0.0.1:$(UI_PORT))"

test: $(STAMP)
	$(PY) -m pytest

ui: $(STAMP)
	$(VENV)/bin/mlflow ui --backend-store-uri $(STORE) --host 127.0.0.1 --port $(UI_PORT)

clean:
	rm -rf outputs multirun reports .pytest_cache

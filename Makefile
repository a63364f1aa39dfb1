# Two commands set up everything: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.9
export CHECKUP_RISK_HOME ?= $(CURDIR)/.checkup-risk
export GX_ANALYTICS_ENABLED := false
export MLFLOW_DISABLE_TELEMETRY := true
export BENTOML_DO_NOT_TRACK := true

.PHONY: venv run test test-fast bench lock clean

# The lock file pins the whole dependency set; the venv is rebuilt when it or pyproject changes.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync -q --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

run: venv
	$(BIN)/checkup-risk serve

test: venv
	$(BIN)/python -m pytest -q tests

test-fast: venv
	$(BIN)/python -m pytest -q tests -m "not slow"

bench: venv
	@command -v wrk >/dev/null || (apt-get update -q && apt-get install -y -q wrk) || true
	$(BIN)/python bench/bench_foundation.py
	$(BIN)/python bench/bench_training.py
	$(BIN)/python bench/bench_explain.py
	$(BIN)/python bench/bench_service.py
	$(BIN)/python bench/bench_batch.py
	$(BIN)/python bench/bench_cds.py

# Regenerate the lock file after changing dependencies in pyproject.toml.
lock:
	$(BIN)/uv pip compile -q pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache

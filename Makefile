# Two commands set up everything: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SYSDEPS := $(VENV)/.sysdeps
# Debian packages: system-packages.txt is the one list (the Bento image reads its runtime ones).
DEB_PACKAGES := $(shell sed -e 's/\#.*//' system-packages.txt | awk 'NF {print $$1}')
UV_VERSION := 0.13.9
export CHECKUP_RISK_HOME ?= $(CURDIR)/.checkup-risk
export GX_ANALYTICS_ENABLED := false
export MLFLOW_DISABLE_TELEMETRY := true
export BENTOML_DO_NOT_TRACK := true

.PHONY: venv sysdeps run lint test test-fast bench lock clean

# The lock file pins the whole dependency set; the venv is rebuilt when it or pyproject changes.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	# Bytecode is compiled once here: these machines set PYTHONDONTWRITEBYTECODE, so otherwise every
	# process (CLI call, server worker, test subprocess) would compile the dependency tree from source.
	$(BIN)/uv pip sync -q --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

# Installs only the packages that are missing (apt-get as root, else through sudo where it exists).
$(SYSDEPS): Makefile system-packages.txt
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then sudo=; elif command -v sudo >/dev/null; then sudo=sudo; \
		else echo "need root or sudo to install: $$missing" >&2; exit 1; fi; \
		echo "installing system packages: $$missing"; \
		$$sudo apt-get update -q && $$sudo apt-get install -y -q --no-install-recommends $$missing; \
	fi
	mkdir -p $(VENV) && touch $@

sysdeps: $(SYSDEPS)

run: venv sysdeps
	$(BIN)/checkup-risk serve

# The layers (features <- models <- training; serving uses features and models), lint, format and the
# types of the public modules: all part of `make test`.
lint: venv
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy features models training serving checkup_risk_cli.py

test: venv sysdeps lint
	$(BIN)/python -m pytest -q -n logical --maxprocesses 4 tests

test-fast: venv sysdeps
	$(BIN)/python -m pytest -q -n logical --maxprocesses 4 tests -m "not slow"

bench: venv sysdeps
	@command -v wrk >/dev/null || (apt-get update -q && apt-get install -y -q wrk) || true
	$(BIN)/python bench/bench_foundation.py
	$(BIN)/python bench/bench_training.py
	$(BIN)/python bench/bench_explain.py
	$(BIN)/python bench/bench_service.py
	$(BIN)/python bench/bench_batch.py
	$(BIN)/python bench/bench_report.py
	$(BIN)/python bench/bench_cds.py

# Regenerate the lock file after changing dependencies in pyproject.toml.
lock:
	$(BIN)/uv pip compile -q pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache

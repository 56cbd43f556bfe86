# Switchboard developer commands. `make run` and `make test` are the two that matter.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint gen check-gen bench clean

# Create the virtualenv and install the project with its server and dev extras.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11+); set PYTHON=..." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[server,dev]'
	@touch $@

# Run the service on its embedded default: SQLite file, in-process queue and bus, offline agent.
# Authentication is off, so it listens on loopback only (see docs/security.md).
run: $(STAMP)
	$(BIN)/switchboard serve --address localhost:50051

# The whole test suite: staleness of generated code, lint, types, then every test
# (PostgreSQL and Redis must answer: each is started when it is installed but not running;
# node_modules and the Prometheus tools are installed; see scripts/test-services.sh),
# then the container image stage: build it with podman and check it (scripts/image-check.sh).
test: $(STAMP)
	scripts/test-services.sh
	$(BIN)/python scripts/gen_protos.py --check
	scripts/buf.sh lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest
	scripts/image-check.sh

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy && scripts/buf.sh lint

# Regenerate gen/python from protos/.
gen: $(STAMP)
	$(BIN)/python scripts/gen_protos.py

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache

# One task runner; CI calls `make test` through .ci/run, exactly as the README says.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# legato alone (what `make demo` needs): no test or benchmark tools.
BASE_STAMP := $(VENV)/.installed-base

.PHONY: install demo test lint typecheck unit services bench bench-quick bench-profile bench-ingress bench-history chaos clean

$(BASE_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(BASE_STAMP)

# The dev and benchmark extras (ruff, mypy, pytest, Playwright, Celery, DBOS, ...) on top.
$(STAMP): $(BASE_STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

# Only legato itself: the demo needs nothing else (under a minute from a fresh clone).
demo: $(BASE_STAMP)
	$(BIN)/legato --log-level warning demo

# ruff's rules include C90: no function over cyclomatic complexity 15 (pyproject.toml),
# checked a second time ignoring `# noqa`, so that no function can be exempted.
lint: install
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff check --select C90 --ignore-noqa src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks

typecheck: install
	$(BIN)/mypy

# The unit tier: pure, no server needed (Postgres and RabbitMQ may be stopped).
unit: install
	$(BIN)/pytest tests/unit -q

# Every tier: unit, and contract, integration, browser and outages against the real
# Postgres and RabbitMQ (tests/shared_servers.py), which `services` starts.
test: install services lint typecheck
	$(BIN)/pytest -q

services:
	@bash .ci/services.sh

# legato beside Celery, Dramatiq, DBOS and a bare aio-pika + asyncpg loop (benchmarks/README.md).
bench: install services
	$(BIN)/python -m benchmarks

bench-quick: install services
	$(BIN)/python -m benchmarks --quick

# Where a legato worker spends its time on workload b (py-spy; benchmarks/README.md).
bench-profile: install services
	$(BIN)/python -m benchmarks.profile

# Events through the HTTP ingress beside the same events published to RabbitMQ (benchmarks/README.md).
bench-ingress: install services
	$(BIN)/python -m benchmarks.ingress

# Partitioned history and search attributes (10 M history rows, 1 M runs), then workload b
# with history partitioned beside unpartitioned, five interleaved rounds (benchmarks/README.md).
bench-history: install services
	$(BIN)/python -m benchmarks.history
	$(BIN)/python -m benchmarks --systems legato,legato-flat --workloads b --repeat 5 --out benchmarks/results/history-b

clean:
	rm -rf $(VENV) .legato .pytest_cache .mypy_cache .ruff_cache

# legato's chaos suite on a Postgres and a RabbitMQ of its own: 10,000 events, every fault
# (docs/operations.md). CHAOS="--scenario storm" for the session-kill storm, --events N to size it.
chaos: install
	$(BIN)/python -m tests.chaos $(CHAOS)

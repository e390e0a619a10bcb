# One task runner; CI calls `make test` through .ci/run, exactly as the README says.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck unit services bench bench-quick soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/legato --log-level warning demo

lint: install
	$(BIN)/ruff check src tests examples
	$(BIN)/ruff format --check src tests examples

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest tests/unit -q

# The whole suite against the real Postgres and RabbitMQ (see tests/conftest.py).
test: install services lint typecheck
	$(BIN)/pytest -q

services:
	@bash .ci/services.sh

clean:
	rm -rf $(VENV) .legato .pytest_cache .mypy_cache .ruff_cache

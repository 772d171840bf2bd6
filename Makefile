# Everything a fresh machine needs goes through these targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install services demo up down status test test-unit test-integration lint format bench bench-accuracy clean

install: $(STAMP)

$(STAMP): pyproject.toml scripts/install-system-packages.sh
	bash scripts/install-system-packages.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# PostgreSQL, Redis and RabbitMQ are machine services; start any that is down.
services:
	bash scripts/ensure-services.sh

demo: install services
	$(BIN)/heimdall demo

up: install services
	$(BIN)/heimdall up

down:
	$(BIN)/heimdall down

status:
	$(BIN)/heimdall status

test: install services
	$(BIN)/pytest

test-unit: install
	$(BIN)/pytest tests/unit

test-integration: install services
	$(BIN)/pytest tests/integration

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

# bench_stack.py starts a stack of its own on the machine's services.
bench: install services
	@for script in benchmarks/bench_*.py; do \
	  [ "$$script" = benchmarks/bench_accuracy.py ] && continue; \
	  echo "== $$script"; $(PY) $$script || exit 1; done

bench-accuracy: install
	$(PY) benchmarks/bench_accuracy.py

clean:
	rm -rf $(VENV) .heimdall .pytest_cache .mypy_cache .ruff_cache

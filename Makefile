# Everything a fresh machine needs goes through these targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The operator page's libraries and map data, copied into the package from npm.
WEB_STAMP := src/heimdall/web/static/vendor/BUILD.json

.PHONY: install web services demo up down status test test-unit test-integration lint format bench bench-accuracy bench-openwebrx bench-hf clean

install: $(STAMP) $(WEB_STAMP)

$(STAMP): pyproject.toml scripts/install-system-packages.sh
	bash scripts/install-system-packages.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

web: $(WEB_STAMP)

# --ignore-scripts: no package's install script runs (one would send telemetry).
$(WEB_STAMP): web/package.json web/package-lock.json web/build.mjs web/data/admin1-boundaries.topo.json
	cd web && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	cd web && node build.mjs

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
	  case "$$script" in benchmarks/bench_accuracy.py|benchmarks/bench_openwebrx.py|benchmarks/bench_hf.py) continue;; esac; \
	  echo "== $$script"; $(PY) $$script || exit 1; done

bench-accuracy: install
	$(PY) benchmarks/bench_accuracy.py
	$(PY) benchmarks/bench_accuracy.py --world realistic --ablation 40

# Power-only accuracy on the simulated OpenWebRX network (~8 min on 2 cores).
bench-openwebrx: install
	$(PY) benchmarks/bench_openwebrx.py

# TDOA at HF on seeded ground-wave networks anywhere (~11-25 min on 2 cores for 400);
# ARGS=--impairments renders them in the realism issue's realistic world.
bench-hf: install
	$(PY) benchmarks/bench_hf.py $(ARGS)

clean:
	rm -rf $(VENV) .heimdall .pytest_cache .mypy_cache .ruff_cache web/node_modules src/heimdall/web/static/vendor test-artifacts

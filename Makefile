# streetneeds — the Makefile is the interface: CI calls exactly these targets.
# `make help` lists them. Everything is installed into .venv/ and .local/ (both git-ignored).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STREETNEEDS := $(VENV)/bin/streetneeds
# CI must not hang on a prompt or a stuck test run.
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev,bench]"
	@touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create the virtualenv and install dependencies

.PHONY: stack
stack: venv ## Start Kafka (KRaft, from Maven Central) and PostgreSQL locally
	$(PY) deploy/local/stack.py up

.PHONY: setup
setup: stack ## Stack + topics + migrations + the Camden gazetteer (each step safe to re-run)
	set -a && . .local/stack.env && set +a && \
	$(STREETNEEDS) topics create && \
	$(STREETNEEDS) migrate && \
	$(STREETNEEDS) gazetteer import data/camden/camden.osm.pbf \
	    --wards data/camden/wards-2022.geojson --lsoas data/camden/lsoa-2021.geojson \
	    --boundary data/camden/boundary.geojson

.PHONY: run
run: setup ## Set up everything, start every service, load demo signals; Ctrl-C stops all
	$(PY) deploy/local/run.py

.PHONY: browser
browser: ## Install Debian's chromium + chromium-driver for the browser tests (as root, when missing)
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver; \
	  else echo "chromium/chromedriver missing and not root: browser tests will be skipped"; fi; \
	fi

.PHONY: test
test: setup browser ## Set up everything and run the whole test suite against real Kafka and PostgreSQL
	set -a && . .local/stack.env && set +a && \
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$rc

.PHONY: screenshots
screenshots: setup browser ## PNGs of every resident page at desktop and phone sizes in .local/screenshots/
	set -a && . .local/stack.env && set +a && \
	$(PY) -m pytest tests/browser/test_screenshots.py -q -p no:cacheprovider $(PYTEST_ARGS)

.PHONY: fuzz
fuzz: setup ## Fuzz every service's OpenAPI with schemathesis, longer than make test does (FUZZ_EXAMPLES=200)
	set -a && . .local/stack.env && set +a && \
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-200} FUZZ_SEED=$${FUZZ_SEED:-$$RANDOM} FUZZ_TIMEOUT=3600 \
	$(PY) -m pytest tests/fuzz -p no:cacheprovider $(PYTEST_ARGS)

.PHONY: chaos
chaos: venv ## Chaos suite, long form, on a broker and database of its own (CHAOS_SIGNALS, CHAOS_TRIALS, CHAOS_SEED)
	CHAOS_SIGNALS=$${CHAOS_SIGNALS:-100000} CHAOS_TRIALS=$${CHAOS_TRIALS:-5} \
	$(PY) -m pytest tests/chaos -s -p no:cacheprovider $(PYTEST_ARGS)

.PHONY: bench
bench: setup bench-tools ## Run the benchmarks and print figures for the README
	set -a && . .local/stack.env && set +a && $(PY) -m bench

.PHONY: bench-tools
bench-tools: ## Install Debian's wrk, the feeds bench's HTTP load generator (as root, when missing)
	@if ! command -v wrk >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk; \
	  else echo "wrk missing and not root: install it (apt-get install wrk) or the feeds bench fails"; fi; \
	fi

.PHONY: lint
lint: venv ## Lint with ruff (check + format) and mypy (strict; config in pyproject.toml)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

.PHONY: docs
docs: venv ## Regenerate docs/ (AsyncAPI, OpenAPI, JSON Schema) from the code
	$(PY) -m services.docs write

.PHONY: stop
stop: ## Stop services started by `make run`, then Kafka and PostgreSQL
	-@test -x $(PY) && $(PY) deploy/local/run.py --stop
	-@test -x $(PY) && $(PY) deploy/local/stack.py down

.PHONY: clean
clean: stop ## Stop everything and delete .venv/ and .local/ (Kafka jars, data)
	if [ -L .local/postgres ]; then rm -rf "$$(readlink -f .local/postgres)"; fi  # data kept elsewhere (stack.py)
	rm -rf $(VENV) .local .pytest_cache .ruff_cache .hypothesis

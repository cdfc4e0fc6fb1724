# thingstash tasks. `make help` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test lint format bench bench-cluster clean browser

help: ## List the tasks
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install thingstash with its test tools

run: $(STAMP) ## Start the service on http://127.0.0.1:8080 with an embedded Redis
	$(BIN)/thingstash serve

test: $(STAMP) browser ## Lint, check imports and types, then run every test against real Redis
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest

# The console's browser test drives Debian's Chromium (a test tool's own browser download cannot
# work here); installed once, as root (or through sudo).
CHROMEDRIVER := /usr/bin/chromedriver
$(CHROMEDRIVER):
	$(if $(filter 0,$(shell id -u)),,sudo) sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver'

browser: $(CHROMEDRIVER) ## Install Chromium and its driver for the web console's test

bench: $(STAMP) ## Measure speed and memory against the prototype and the floor, queries, Firebase pushes, the rules and live streams (minutes)
	$(BIN)/pip install --quiet -e '.[bench]'
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/queries.py
	$(BIN)/python bench/firebase_push.py
	$(BIN)/python bench/rules.py
	$(BIN)/python bench/realtime.py

lint: $(STAMP) ## Check style only
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: $(STAMP) ## Reformat the code
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

bench-cluster: $(STAMP) ## PUT/GET req/s on one Redis vs a local Redis Cluster, 1 and 2 processes
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/cluster.py

clean: ## Remove the virtualenv and caches (not your data in .thingstash/)
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .import_linter_cache .hypothesis src/*.egg-info

# Datastore: the two commands are `make demo` and `make test`; everything else is a step of them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export UV_PYTHON ?= python3.11
export UV_PYTHON_DOWNLOADS ?= never
VENV := .venv
PY := $(VENV)/bin/python
# Feature makefiles (one per area) append to these lists.
BENCH_TARGETS :=
-include mk/*.mk

.PHONY: help setup up down demo test test-unit test-integration test-e2e chaos scale bench lint

help:
	@echo "make demo   - install, start the local stack, run the seed workflow"
	@echo "make test   - install, start what the tests need, run the whole suite"
	@echo "make test-unit | test-integration | test-e2e - one tier of the suite (no lint)"
	@echo "make chaos  - the fault scenarios at full size (bench/results/chaos.json)"
	@echo "make scale  - 10,000 files and 4 x 20 GB in one dataset each (needs 84 GB free)"
	@echo "make up-cluster | down-cluster | cluster-status - a three-node RabbitMQ cluster (opt-in)"
	@echo "make setup | up | down | bench | lint | asyncapi"

setup: ## system packages (apt) + uv + the workspace virtualenv from the lock file
	@bash deploy/local/setup.sh

up: setup
	@bash deploy/local/up.sh

down:
	@bash deploy/local/down.sh

demo: setup up
	@DATASTORE_CONFIG=$${DATASTORE_VAR:-var}/config.yaml $(PY) deploy/local/demo.py

test: setup
	@bash deploy/local/test.sh

# One tier each, without lint: unit needs nothing running and takes well under a minute.
test-unit: setup
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/unit

test-integration: setup
	@bash deploy/local/test.sh --no-lint tests/contract tests/integration

test-e2e: setup
	@bash deploy/local/test.sh --no-lint tests/e2e

# The fault scenarios at full size (1,000 datasets each; 300 for the broker node stopped on the
# three-node cluster, which this starts and stops again unless `make up-cluster` already did);
# `make test` runs them reduced (100; the cluster's only when it is up). Figures in
# bench/results/chaos.json.
chaos: setup
	@CHAOS_FULL=1 bash deploy/local/test.sh --no-lint tests/chaos

# 10,000 files and 4 x SCALE_FILE_GB (20) GB in one dataset each, while other archives run.
# Needs 4 x SCALE_FILE_GB of free disk for the tape copies; `make test` runs 2,500 files.
scale: setup
	@bash deploy/local/test.sh --no-lint -s tests/scale

bench: setup $(BENCH_TARGETS)
	@ls -1 bench/results/*.json

# ruff check, ruff format --check, mypy --strict on every package; `make test` runs the same script.
lint: setup
	@bash deploy/local/lint.sh

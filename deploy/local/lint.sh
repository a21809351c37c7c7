#!/usr/bin/env bash
# `make lint`, and the lint step of `make test` (deploy/local/test.sh): the one list of checks.
# mypy takes its packages (libs/common, services/*, emulators/*) and --strict from [tool.mypy]
# in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy

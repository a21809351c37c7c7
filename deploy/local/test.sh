#!/usr/bin/env bash
# `make test`: lint, start what the tests need, run the whole suite.
# The fixtures also start anything missing themselves; this just does it once, up front.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/local/rabbitmq.sh
TAPE_MIGRATION_SECONDS=1 TAPE_EVICTION_SECONDS=4 TAPE_STAGE_SECONDS=1 \
  bash deploy/local/xrootd.sh start
bash deploy/local/certs.sh >/dev/null

echo "== lint"
.venv/bin/ruff check .
.venv/bin/mypy libs/common/src

echo "== tests"
.venv/bin/pytest -q -p no:cacheprovider "$@"

#!/usr/bin/env bash
# `make test`: lint, start what the tests need, run the whole suite.
# `test.sh --no-lint PATH...` runs one tier (make test-integration, test-e2e).
# The fixtures also start anything missing themselves; this just does it once, up front.
set -euo pipefail
cd "$(dirname "$0")/../.."
lint=1
if [[ ${1:-} == --no-lint ]]; then lint=0; shift; fi
bash deploy/local/rabbitmq.sh
TAPE_MIGRATION_SECONDS=1 TAPE_EVICTION_SECONDS=4 TAPE_STAGE_SECONDS=1 \
  bash deploy/local/xrootd.sh start
bash deploy/local/certs.sh >/dev/null

if ((lint)); then
  echo "== lint"
  bash deploy/local/lint.sh
fi

echo "== tests"
.venv/bin/pytest -q -p no:cacheprovider "$@"

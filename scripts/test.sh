#!/usr/bin/env bash
# The test command: set up (idempotent), lint, then every test layer against real services.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export PATH="$PATH:/usr/local/go/bin" SPARK_LOCAL_IP=127.0.0.1
.venv/bin/ruff check iot_pipeline iot_pipeline_tests benchmarks deploy
.venv/bin/dagster definitions validate -w workspace.yaml
exec .venv/bin/pytest "$@"

#!/usr/bin/env bash
# The run command: set up (idempotent), then Kafka + Dagster + the stream + the simulator, until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export SPARK_LOCAL_IP=127.0.0.1
exec .venv/bin/iot-pipeline local up "$@"

#!/usr/bin/env bash
# The test command: set up (idempotent), lint, then every test layer against real services.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export PATH="$PATH:/usr/local/go/bin" SPARK_LOCAL_IP=127.0.0.1

# Scratch space. Everything a run writes outside the repository goes under one directory of its own:
# pytest's tmp dirs and every tempfile user (TMPDIR), the Spark drivers' shuffle and spill files
# (SPARK_LOCAL_DIRS), the brokers', MinIO's and Dagster instances' state (they live in pytest's tmp
# dirs). It is removed when the run ends, so a machine that runs the suite again and again (a CI
# runner's shared /tmp) keeps nothing of it; a local run that fails keeps it for a look, until the
# next run. Directories of earlier runs whose process is gone are removed first.
root=${TMPDIR:-/tmp}
for old in "$root"/iot-pipeline-tests.*; do
  [[ -d "$old" ]] || continue
  owner=$(cat "$old/.owner" 2>/dev/null || true)
  [[ -n "$owner" ]] && kill -0 "$owner" 2>/dev/null && continue
  rm -rf "$old"
done
# Spark's scratch directories of JVMs that were killed (their shutdown hook never ran) hold a copy of
# every connector jar of their session, 755 MB with S3A; earlier versions of this script left them in
# /tmp. They are garbage once no Spark JVM runs on the machine.
uuid='????????-????-????-????-????????????'
if ! pgrep -f org.apache.spark >/dev/null; then
  rm -rf "$root"/spark-$uuid "$root"/blockmgr-$uuid
fi
scratch=$(mktemp -d "$root/iot-pipeline-tests.XXXXXX")
chmod 711 "$scratch"  # services that run as their own user (PostgreSQL) reach their dirs under it
echo $$ > "$scratch/.owner"
export TMPDIR="$scratch" SPARK_LOCAL_DIRS="$scratch"

.venv/bin/ruff check iot_pipeline iot_pipeline_tests benchmarks deploy
.venv/bin/dagster definitions validate -w workspace.yaml
status=0
.venv/bin/pytest "$@" || status=$?
if [[ $status -eq 0 || "${CI:-}" == "true" ]]; then
  rm -rf "$scratch"
else
  echo "test scratch kept for a look (removed by the next run): $scratch" >&2
fi
exit $status

"""Benchmark: one busy hour of ``silver/events`` (Spark) against the same dedup + sort + write in DuckDB.

What it does (``--help`` for sizes):

1. Writes one hour of bronze as the stream lands it: ``--rows`` events (default 7.2M, i.e. 2,000
   events/s) in ``--files`` micro-batch directories, ~1 % duplicates that reach Kafka later with a
   different duration, 0.5 % late rows, 10 device types x 2,000 devices, and the stream's commit
   marker saying the batches were validated under the contract's current rules, so silver skips
   re-checking them (``--no-commit-marker``: without it, silver re-checks every row).
2. Materialises ``silver/events`` for that hour through ``dg.materialize`` with the production
   resource settings (driver memory ``--driver-memory``, default 2g as in production), the Spark
   session already up (its start is a per-run cost, see ``benchmarks/small_runs.py``). It reports the
   run, the asset's own seconds, and a profile from Spark's monitoring API: per job and stage, wall
   time, task time, shuffle written and spill.
3. Runs the same work in DuckDB (``--duckdb-threads``, default 2) on the same bronze files: the
   first copy per event_id by (kafka_timestamp, kafka_partition, kafka_offset, ingest_time), sorted by
   (device_type, device_id, event_timestamp), written as Parquet. This is the baseline; the ratio
   Spark/DuckDB is printed.
4. Checks that both outputs hold the same rows (count, distinct event ids, the sum of durations: a
   kept duplicate would add 1e6 to it), and that each silver file is sorted.

Run from the repository root: ``.venv/bin/python benchmarks/hourly_compaction.py``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import urllib.request
import warnings
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import duckdb

from iot_pipeline.assets.external import EXTERNAL_ASSETS
from iot_pipeline.assets.keys import SILVER_EVENTS
from iot_pipeline.assets.silver_events import events
from iot_pipeline.contract.rules import rules_fingerprint
from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import SparkResource
from iot_pipeline.storage.commits import commit_document
from iot_pipeline.storage.layout import LakeLayout
from iot_pipeline.testing.bronze import write_busy_hour
from iot_pipeline.testing.spark_conf import add_conf_option, conf_settings

HOUR = datetime(2026, 4, 1, 12, tzinfo=timezone.utc)
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

DUCKDB_COMPACT = """
COPY (
    SELECT * EXCLUDE (ingest_batch)
    FROM read_parquet('{bronze}/*/*.parquet', hive_partitioning = true)
    QUALIFY row_number() OVER (
        PARTITION BY event_id
        ORDER BY kafka_timestamp NULLS LAST, kafka_partition NULLS LAST, kafka_offset NULLS LAST,
                 ingest_time NULLS LAST) = 1
    ORDER BY device_type, device_id, event_timestamp
) TO '{out}' (FORMAT parquet, COMPRESSION snappy)
"""
SUMMARY = (
    "SELECT count(*), count(DISTINCT event_id), round(sum(event_duration), 3) FROM read_parquet('{glob}')"
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def spark_profile(ui: str, app: str) -> tuple[list[dict], list[dict]]:
    """Jobs and stages of the session so far, from Spark's monitoring REST API."""

    def get(path: str) -> list[dict]:
        with urllib.request.urlopen(f"{ui}/api/v1/applications/{app}/{path}", timeout=10) as r:
            return json.load(r)

    return get("jobs"), get("stages?status=complete")


def print_profile(jobs: list[dict], stages: list[dict], since_job: int) -> None:
    def secs(a: str | None, b: str | None) -> float:
        if not a or not b:
            return 0.0
        f = "%Y-%m-%dT%H:%M:%S.%fGMT"
        return (datetime.strptime(b, f) - datetime.strptime(a, f)).total_seconds()

    print("\nSpark profile of the last run (jobs in order; wall s / task s / shuffle write MB / spill MB):")
    by_stage = {s["stageId"]: s for s in stages}
    for j in sorted(jobs, key=lambda j: j["jobId"]):
        if j["jobId"] < since_job:
            continue
        own = [by_stage[s] for s in j.get("stageIds", []) if s in by_stage]
        task = sum(s.get("executorRunTime", 0) for s in own) / 1000
        shuffle = sum(s.get("shuffleWriteBytes", 0) for s in own) / 1e6
        spill = sum(s.get("diskBytesSpilled", 0) for s in own) / 1e6
        name = j["name"].split(" at ")[0][:60]
        desc = (j.get("description") or "").replace("\n", " ")[:70]
        print(
            f"  job {j['jobId']:>3} {secs(j.get('submissionTime'), j.get('completionTime')):6.2f}s "
            f"task {task:6.2f}s shuffle {shuffle:7.1f} spill {spill:6.1f}  {name} {desc}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="/tmp/iot-bench-hour", help="lake root (wiped unless --reuse)")
    p.add_argument("--rows", type=int, default=7_200_000)
    p.add_argument("--files", type=int, default=8, help="bronze micro-batch files in the hour")
    p.add_argument("--driver-memory", default="2g", help="Spark driver memory (production default: 2g)")
    p.add_argument("--duckdb-threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=2, help="Spark runs of the hour (best is compared)")
    p.add_argument("--reuse", action="store_true", help="keep the bronze hour of a previous run")
    add_conf_option(p)
    p.add_argument(
        "--no-commit-marker",
        action="store_true",
        help="no stream commit marker: silver re-checks every row against the contract",
    )
    args = p.parse_args()
    warnings.filterwarnings("ignore")

    root = Path(args.root)
    bronze_hour = root / "bronze" / "events" / f"event_date={HOUR:%Y-%m-%d}" / f"event_hour={HOUR.hour}"
    if not (args.reuse and bronze_hour.exists()):
        shutil.rmtree(root, ignore_errors=True)
        t = time.perf_counter()
        n, dups = write_busy_hour(root / "bronze" / "events", HOUR, args.rows, args.files)
        log(
            f"bronze hour written: {n:,} rows ({dups:,} duplicates), {args.files} files in {time.perf_counter() - t:.1f}s"
        )
    bronze_bytes = sum(f.stat().st_size for f in bronze_hour.rglob("*.parquet"))
    marker = Path(LakeLayout(str(root)).bronze_commit)
    marker.unlink(missing_ok=True)
    if not args.no_commit_marker:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(commit_document(args.files - 1, rules_fingerprint(), 0))

    spark = SparkResource(
        driver_memory=args.driver_memory,
        stop_on_teardown=False,
        spark_config=conf_settings(args),
    )
    t = time.perf_counter()
    session = spark.build_session()
    log(f"Spark session up in {time.perf_counter() - t:.1f}s (not counted)")
    ui, app = session.sparkContext.uiWebUrl, session.sparkContext.applicationId
    res = {"spark": spark, "lake": LakeResource(root=str(root)), "kafka": KafkaResource()}
    key = f"{HOUR:%Y-%m-%d-%H}:00"

    spark_times, profile_from = [], 0
    for attempt in range(1, args.repeat + 1):
        profile_from = max([j["jobId"] for j in spark_profile(ui, app)[0]], default=-1) + 1 if ui else 0
        t = time.perf_counter()
        r = dg.materialize([*EXTERNAL_ASSETS, events], resources=res, run_config=QUIET, partition_key=key)
        took = time.perf_counter() - t
        mat = next(
            e.materialization for e in r.get_asset_materialization_events() if e.asset_key == SILVER_EVENTS
        )
        m = {k: v.value for k, v in mat.metadata.items()}
        spark_times.append(took)
        log(
            f"Spark silver/events #{attempt}: {took:.1f}s (asset {m['seconds']:.1f}s) for {m['rows_read']:,} rows "
            f"({m['rows_read'] / took:,.0f} rows/s); {m['rows_written']:,} written, {m['duplicates_removed']:,} "
            f"duplicates removed, {m['files_written']} files, {m['bytes_written'] / 1e6:.0f} MB, {m['late_rows']:,} late"
        )
    if ui:
        print_profile(*spark_profile(ui, app), since_job=profile_from)

    out = root / "duckdb" / "hour.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SET threads = {args.duckdb_threads}")
    con.execute("SET preserve_insertion_order = true")
    t = time.perf_counter()
    con.execute(DUCKDB_COMPACT.format(bronze=bronze_hour, out=out))
    duck = time.perf_counter() - t
    log(f"DuckDB dedup + sort + write ({args.duckdb_threads} threads): {duck:.1f}s")

    silver_hour = root / "silver" / "events" / bronze_hour.relative_to(root / "bronze" / "events")
    silver_files = sorted(silver_hour.glob("*.parquet"))
    spark_sum = con.execute(SUMMARY.format(glob=f"{silver_hour}/*.parquet")).fetchone()
    duck_sum = con.execute(SUMMARY.format(glob=out)).fetchone()
    if spark_sum != duck_sum:
        raise SystemExit(f"outputs differ: Spark (rows, ids, sum) {spark_sum} vs DuckDB {duck_sum}")
    for f in silver_files:
        unsorted = con.execute(
            f"SELECT count(*) FROM (SELECT device_type, device_id, event_timestamp, "
            f"lag(struct_pack(device_type, device_id, event_timestamp)) OVER () AS prev "
            f"FROM read_parquet('{f}')) WHERE prev > struct_pack(device_type, device_id, event_timestamp)"
        ).fetchone()[0]
        if unsorted:
            raise SystemExit(f"{f.name} is not sorted ({unsorted} rows out of order)")
    log(
        f"outputs identical: {spark_sum[0]:,} rows, {spark_sum[1]:,} event ids; {len(silver_files)} sorted silver files"
    )

    best = min(spark_times)
    print(
        f"\nRESULT hourly silver/events, {args.rows:,} rows in {args.files} files ({bronze_bytes / 1e6:.0f} MB): "
        f"Spark {best:.1f}s best of {len(spark_times)} ({', '.join(f'{x:.1f}' for x in spark_times)}), "
        f"driver {args.driver_memory}, {'no commit marker' if args.no_commit_marker else 'stream commit marker'}; DuckDB {duck:.1f}s ({args.duckdb_threads} threads); "
        f"ratio Spark/DuckDB {best / duck:.2f}x",
        flush=True,
    )
    session.stop()


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the daily p95 asset (Spark, single-run backfill) against the same query in DuckDB.

What it does, in order (``--help`` for sizes and paths):

1. Generates ``--days`` x ``--events-per-day`` events directly as bronze Parquet (vectorised numpy /
   pyarrow, 1 % duplicates, 1 % outliers, 10 device types), Hive-partitioned by event hour.
2. Materialises ``silver/events`` for all those hours as ONE single-run backfill (timed, reported,
   not part of the comparison).
3. Times ``gold/daily_event_duration_p95`` for all days as ONE single-run backfill over the
   pre-built silver files (through ``dg.materialize``, Spark session already up: the JVM start is
   not counted), then the same rule as one DuckDB SQL query over the same silver files. Both are
   compared row by row (all columns, 1e-9 relative) and the times and their ratio printed.
   The comparison is over pre-built silver because that is what the daily asset reads; silver's
   cost is an hourly cost, measured separately. Silver writes ``silver/event_id_index`` with its
   files, and the daily asset uses it to prove that no event_id is in two hours of a day; DuckDB
   gets no such help. So the script also times the asset once with the index moved aside (how a
   day written before the index existed runs) and prints that ratio too.
The hourly cost at 2,000 events/s has its own benchmark: ``benchmarks/hourly_compaction.py``.

Run from the repository root: ``.venv/bin/python benchmarks/daily_p95_vs_duckdb.py``.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import time
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq

from iot_pipeline.assets.daily_event_duration_p95 import daily_event_duration_p95
from iot_pipeline.assets.external import EXTERNAL_ASSETS
from iot_pipeline.assets.gold_logic import P95_COLUMNS
from iot_pipeline.assets.keys import GOLD_DAILY_EVENT_DURATION_P95, SILVER_EVENTS
from iot_pipeline.assets.silver_events import events
from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import SparkResource
from iot_pipeline.storage.s3 import s3_resource
from iot_pipeline.testing.bronze import write_days
from iot_pipeline.testing.spark_conf import add_conf_option, conf_settings

RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

DUCKDB_P95 = """
WITH ev AS (
    SELECT event_date, device_type, event_duration
    FROM read_parquet('{silver}/*/*/*.parquet', hive_partitioning = true,
                      hive_types = {{'event_date': VARCHAR, 'event_hour': INTEGER}})
    WHERE event_date BETWEEN '{first}' AND '{last}'
    QUALIFY row_number() OVER (
        PARTITION BY event_date, event_id
        ORDER BY kafka_timestamp NULLS LAST, kafka_partition, kafka_offset) = 1
), stats AS (
    SELECT event_date, device_type, count(*) AS events_total, avg(event_duration) AS mean,
           stddev_samp(event_duration) AS stddev
    FROM ev GROUP BY event_date, device_type
)
SELECT e.event_date, e.device_type, s.events_total, count(*) AS events_kept,
       s.events_total - count(*) AS outliers_removed, s.mean, s.stddev,
       quantile_cont(e.event_duration, 0.95) AS p95_event_duration,
       min(e.event_duration) AS min_kept_event_duration, max(e.event_duration) AS max_kept_event_duration
FROM ev e JOIN stats s USING (event_date, device_type)
WHERE s.events_total >= 500 AND abs(e.event_duration - s.mean) <= 3 * s.stddev
GROUP BY e.event_date, e.device_type, s.events_total, s.mean, s.stddev
ORDER BY e.event_date, e.device_type
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def meta(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict:
    mats = [e.materialization for e in result.get_asset_materialization_events() if e.asset_key == key]
    return {k: v.value for k, v in mats[-1].metadata.items()}


def read_gold(root: Path) -> list[dict]:
    gold = pq.read_table(root / "gold" / "daily_event_duration_p95").to_pylist()
    return sorted(gold, key=lambda r: (str(r["event_date"]), r["device_type"]))


def compare(spark_rows: list[dict], duck_rows: list[tuple]) -> None:
    assert len(spark_rows) == len(duck_rows), (len(spark_rows), len(duck_rows))
    for s, d in zip(spark_rows, duck_rows, strict=True):
        d = dict(zip(P95_COLUMNS, d, strict=True))
        assert (str(s["event_date"]), s["device_type"]) == (d["event_date"], d["device_type"]), (s, d)
        for c in ("events_total", "events_kept", "outliers_removed"):
            assert s[c] == d[c], (c, s, d)
        for c in (
            "mean",
            "stddev",
            "p95_event_duration",
            "min_kept_event_duration",
            "max_kept_event_duration",
        ):
            assert math.isclose(s[c], d[c], rel_tol=1e-9), (c, s[c], d[c])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="/tmp/iot-bench-lake", help="lake root (wiped unless --reuse)")
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--events-per-day", type=int, default=400_000)
    p.add_argument("--driver-memory", default="8g")
    p.add_argument("--reuse", action="store_true", help="keep generated bronze/silver from a previous run")
    add_conf_option(p)
    args = p.parse_args()
    warnings.filterwarnings("ignore")

    root = Path(args.root)
    bronze = root / "bronze" / "events"
    start = datetime(2026, 3, 1, tzinfo=timezone.utc)
    first, last = f"{start:%Y-%m-%d}", f"{start + timedelta(days=args.days - 1):%Y-%m-%d}"
    fresh = not (args.reuse and bronze.exists())
    if fresh:
        shutil.rmtree(root, ignore_errors=True)
        t = time.perf_counter()
        n = write_days(bronze, start, args.days, args.events_per_day)
        log(f"generated {n:,} bronze rows for {args.days} days in {time.perf_counter() - t:.1f}s")

    spark = SparkResource(
        master="local[*]",
        driver_memory=args.driver_memory,
        shuffle_partitions=16,
        stop_on_teardown=False,
        spark_config={"spark.pyspark.python": sys.executable, **conf_settings(args)},
    )
    t = time.perf_counter()
    spark.build_session()
    log(f"Spark session up in {time.perf_counter() - t:.1f}s (not counted)")
    res = {
        "spark": spark,
        "lake": LakeResource(root=str(root)),
        "kafka": KafkaResource(),
        "s3": s3_resource(),
    }

    if fresh:
        t = time.perf_counter()
        r = dg.materialize(
            [*EXTERNAL_ASSETS, events],
            resources=res,
            run_config=QUIET,
            tags=dict(zip(RANGE, (f"{start:%Y-%m-%d}-00:00", f"{last}-23:00"), strict=True)),
        )
        m = meta(r, SILVER_EVENTS)
        log(
            f"silver/events backfill, {args.days * 24} hours in one run: {time.perf_counter() - t:.1f}s "
            f"({m['rows_read']:,} rows read, {m['duplicates_removed']:,} duplicates removed, "
            f"{m['files_written']} files)"
        )

    def gold_backfill() -> tuple[float, dict]:
        t = time.perf_counter()
        r = dg.materialize(
            [*EXTERNAL_ASSETS, daily_event_duration_p95],
            resources=res,
            run_config=QUIET,
            tags=dict(zip(RANGE, (first, last), strict=True)),
        )
        return time.perf_counter() - t, meta(r, GOLD_DAILY_EVENT_DURATION_P95)

    spark_times = []
    for attempt in (1, 2):
        took, m = gold_backfill()
        spark_times.append(took)
        log(
            f"Spark gold p95 backfill #{attempt} ({args.days} days, one run): {spark_times[-1]:.2f}s "
            f"(asset body {m['seconds']:.2f}s, {m['rows']} rows)"
        )
    gold_indexed = read_gold(root)
    if m["days_checked_by_event_id_index"] != args.days:
        raise SystemExit(f"expected the event-id index to decide all {args.days} days: {m}")
    index = root / "silver" / "event_id_index"
    aside = index.with_name("event_id_index.aside")
    index.rename(aside)
    try:
        without_index, m = gold_backfill()
    finally:
        aside.rename(index)
    log(
        f"Spark gold p95 backfill without the event-id index ({m['days_checked_by_event_id_index']} days "
        f"decided by it): {without_index:.2f}s (asset body {m['seconds']:.2f}s, {m['rows']} rows)"
    )
    gold = read_gold(root)

    con = duckdb.connect()
    sql = DUCKDB_P95.format(silver=root / "silver" / "events", first=first, last=last)
    duck_times = []
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    for attempt in (1, 2):
        t = time.perf_counter()
        duck = con.execute(sql).fetchall()
        duck_times.append(time.perf_counter() - t)
        log(f"DuckDB same query #{attempt}: {duck_times[-1]:.2f}s ({len(duck)} rows, {threads} threads)")
    compare(gold_indexed, duck)
    compare(gold, duck)
    log(
        f"results identical (all columns, rel 1e-9) for {len(gold)} (day, device type) rows, "
        "with and without the index"
    )
    print(
        f"\nRESULT daily p95, {args.days} days x {args.events_per_day:,} events: "
        f"Spark {min(spark_times):.2f}s (first {spark_times[0]:.2f}s), DuckDB {min(duck_times):.2f}s, "
        f"ratio Spark/DuckDB {min(spark_times) / min(duck_times):.2f}x (best of two each); "
        f"without the event-id index {without_index:.2f}s, {without_index / min(duck_times):.2f}x",
        flush=True,
    )


if __name__ == "__main__":
    main()

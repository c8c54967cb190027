"""The event-id index that ``silver/events`` writes with every hour, and the daily check it makes cheap.

Why it exists: a daily asset counts distinct ``event_id`` over the day's 24 hours. Silver is unique
within each hour, so a day can only hold a repeat if one id landed in two hours; proving that from
the rows means hashing every event_id of the day into one set, which was the largest cost of the
daily p95 (docs/assets.md, "How the daily p95 is computed"). Silver reads every id of an hour when it
writes the hour anyway, so it also stores, per silver file, the file's name, its row count and the
64-bit hashes of its ids as one array (about 8 bytes per event, one file per day under
``silver/event_id_index``). The day's check is then the distinct count of a few dozen arrays
instead of millions of rows.

An index row is trusted only for the exact file it names. A day whose silver listing differs from its
index in any hour (an hour written before the index existed, by hand, or left half-written by a
failed run) gets no verdict here and is checked from its rows as before. A repeated hash proves no
duplicate by itself (it may be a collision): such a day is deduplicated on the actual event_id by
the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from iot_pipeline.assets.windows import day_dirs, partition_filter_sql
from iot_pipeline.contract.spark_schema import PARTITION_COLUMNS, PARTITION_FIELDS
from iot_pipeline.storage import parquet_io as pio

FILE = "file"
ROWS = "rows"
HASHES = "id_hashes"

# One file per day (partitioned by event_date only): the daily check opens a file per day, not per hour.
SCHEMA = T.StructType(
    [
        T.StructField(FILE, T.StringType(), False),
        T.StructField(ROWS, T.LongType(), False),
        T.StructField(HASHES, T.ArrayType(T.LongType(), False), False),
        *PARTITION_FIELDS[1:],
        *PARTITION_FIELDS[:1],
    ]
)
COLUMNS = SCHEMA.fieldNames()

# (event_date, event_hour) -> names of the silver files of that hour.
HourFiles = Mapping[tuple[str, int], frozenset[str]]


def id_hash() -> Column:
    """A silver row's event_id as 64 bits, within its day (the repeat checks compare these)."""
    return F.xxhash64("event_date", "event_id")


def per_file(silver: DataFrame, *more: Column) -> DataFrame:
    """One index row per silver file, plus the aggregates ``more`` (the writer's per-file stats in the
    same read). ``silver`` must be a plain read of silver files (it needs ``_metadata``)."""
    return silver.groupBy(*PARTITION_COLUMNS, F.col("_metadata.file_name").alias(FILE)).agg(
        F.count(F.lit(1)).alias(ROWS), F.collect_list(id_hash()).alias(HASHES), *more
    )


def replace_hours(spark: SparkSession, index: str, fresh: DataFrame | None, hours: list[datetime]) -> None:
    """Make the index rows of ``hours`` exactly ``fresh`` (``per_file`` of what the run wrote; None:
    nothing); the other hours of those days keep theirs.

    Two runs writing hours of the same day at the same time can drop each other's rows: that only
    leaves those hours unindexed, and their day checked from its rows.
    """
    dirs = day_dirs(index, sorted({f"{h:%Y-%m-%d}" for h in hours}))
    present = [d for d in dirs.values() if pio.data_files(spark, d)]
    parts = [] if fresh is None else [fresh.select(*COLUMNS)]
    if present:
        parts.append(_read(spark, index, present).filter(~F.expr(partition_filter_sql(hours))))
    if not parts:
        return
    rows = parts[0] if len(parts) == 1 else parts[0].unionByName(parts[1])
    # Eager: the files read above are replaced by the write below.
    rows = rows.repartition("event_date").localCheckpoint()
    kept_days = {r["event_date"] for r in rows.select("event_date").distinct().collect()}
    pio.overwrite_partitions(rows, index, ["event_date"])
    pio.delete_partitions(spark, [d for day, d in dirs.items() if day not in kept_days])


def distinct_ids_by_day(spark: SparkSession, index: str, silver_files: HourFiles) -> dict[str, bool]:
    """For each day the index covers exactly (every hour, every file): are its event_id hashes distinct?

    Days missing from the result have no usable index; the caller checks their rows.
    """
    days = sorted({day for day, _ in silver_files})
    present = [d for d in day_dirs(index, days).values() if pio.data_files(spark, d)]
    if not present:
        return {}
    per_day = (
        _read(spark, index, present)
        .groupBy("event_date")
        .agg(
            F.collect_list(F.struct("event_hour", FILE)).alias("files"),
            F.sum(ROWS).alias(ROWS),
            F.size(F.array_distinct(F.flatten(F.collect_list(HASHES)))).alias("ids"),
        )
        .collect()
    )
    verdicts = {}
    for r in per_day:
        indexed: dict[tuple[str, int], set[str]] = {}
        for f in r["files"]:
            indexed.setdefault((r["event_date"], f["event_hour"]), set()).add(f[FILE])
        listed = {k: set(v) for k, v in silver_files.items() if k[0] == r["event_date"]}
        if indexed == listed:
            verdicts[r["event_date"]] = r[ROWS] == r["ids"]
    return verdicts


def _read(spark: SparkSession, index: str, day_dirs_: list[str]) -> DataFrame:
    return spark.read.schema(SCHEMA).option("basePath", index).parquet(*day_dirs_)

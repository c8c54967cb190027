"""The event-id index that ``silver/events`` writes with every hour, and the daily check it makes cheap.

Why it exists: a daily asset counts distinct ``event_id`` over the day's 24 hours. Silver is unique
within each hour, so a day can only hold a repeat if one id landed in two hours; proving that from
the rows means hashing every event_id of the day into one set. Silver reads every id of an hour when
it writes the hour anyway, so it also stores, per silver file, the file's name, its row count and the
64-bit hashes of its ids as one array, one index file per hour under
``silver/event_id_index/event_date=D/event_hour=H``. The day's check is then the distinct count of a
few dozen arrays instead of millions of rows.

One file per hour, not per day: a run writes exactly its own hours' index partitions and never reads
or rewrites another hour's, so runs of different hours of the same day cannot break each other.
Files of an earlier one-file-per-day layout are removed when one of their day's hours is written
(that day is then checked from its rows until its hours are indexed again). The history and the
figures behind these choices are in docs/assets.md and docs/performance.md.

An index row is trusted only for the exact file it names. A day whose silver listing differs from its
index in any hour (an hour written before the index existed, by hand, or left half-written by a
failed run) gets no verdict here and is checked from its rows as before. A repeated hash proves no
duplicate by itself (it may be a collision): such a day is deduplicated on the actual event_id by
the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow.compute as pc
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from iot_pipeline.contract.spark_schema import PARTITION_COLUMNS, PARTITION_FIELDS
from iot_pipeline.storage import parquet_io as pio
from iot_pipeline.storage.datasets import HourlyDataset

FILE = "file"
ROWS = "rows"
HASHES = "id_hashes"

# Partitioned like silver (event_date, event_hour): each run replaces exactly its own hours.
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
# Days with more indexed ids than this are left to the row check in Spark: 8 bytes each, twice over
# while numpy sorts them, in the run's own process.
MAX_DRIVER_IDS = 32_000_000

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


def replace_hours(
    index: str, fresh: DataFrame | None, hours: list[datetime], written: set[tuple[str, int]]
) -> None:
    """Make the index partitions of ``hours`` exactly ``fresh`` (``per_file`` of what the run wrote;
    None: nothing). ``written``: the (event_date, event_hour) partitions ``fresh`` has rows in, which
    the caller has from its stats over the same rows (empty with None). Other hours are never read
    nor touched, so concurrent runs of other hours are safe."""
    dataset = HourlyDataset(index)
    dataset.delete_day_level_files(hours)  # the earlier one-file-per-day layout, if any
    if fresh is not None and written:
        dataset.write(fresh.select(*COLUMNS))  # the caller persists it (silver reads the fresh files once)
    dataset.delete_emptied(hours, written)


def distinct_ids_by_day(
    index: str, silver_files: HourFiles, max_ids: int = MAX_DRIVER_IDS
) -> dict[str, bool]:
    """For each day the index covers exactly (every hour, every file): are its event_id hashes distinct?

    Read in the run's process with pyarrow and numpy, one day at a time, not as Spark jobs: the
    index holds about 8 bytes per event, and Spark jobs over many small index files cost more than
    the rest of the daily p95. Days missing from the result have no usable index, or more than
    ``max_ids`` ids (kept out of the process's memory); the caller checks their rows in Spark.
    """
    dataset = HourlyDataset(index)
    verdicts = {}
    for day in sorted({day for day, _ in silver_files}):
        indexed: dict[tuple[str, int], set[str]] = {}
        hashes: list[np.ndarray] = []
        ids = 0
        for hour, path in dataset.hour_files(day):
            table = pio.read_table(path, [FILE, ROWS, HASHES])
            ids += pc.sum(table[ROWS]).as_py() or 0
            if ids > max_ids:
                break
            indexed.setdefault((day, hour), set()).update(table[FILE].to_pylist())
            hashes.append(pc.list_flatten(table[HASHES]).to_numpy())
        listed = {k: set(v) for k, v in silver_files.items() if k[0] == day}
        if ids > max_ids or not indexed or indexed != listed:
            continue
        day_hashes = np.concatenate(hashes)
        # pandas' hash table: faster than sorting and comparing neighbours, which beats np.unique.
        verdicts[day] = day_hashes.size == ids and pd.unique(day_hashes).size == ids
    return verdicts

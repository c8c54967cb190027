"""A dataset of the lake, Hive-partitioned by event hour or by event day, and how runs replace its partitions.

The assets read and write their partitioned datasets through these objects: the partition
directories of a run's hours or days, the data files under them (by hour, for an hourly dataset),
a read of exactly those partitions, and replacing them, which is two steps because the writers
learn which partitions got rows in different ways (an observation of the write, rows they already
hold): :meth:`PartitionedDataset.write` overwrites the partitions the data has rows for (Spark's
dynamic partition overwrite; :meth:`DailyDataset.write_table` does the same for a small Arrow
table without Spark), :meth:`delete_emptied` removes the run's partitions that got none, so
stale files never survive and partitions outside the run are never touched. File work goes through
:mod:`iot_pipeline.storage.parquet_io` (local or S3, no JVM); only the Parquet dataset reads and
writes go through Spark.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from iot_pipeline.storage import parquet_io as pio
from iot_pipeline.storage.layout import (
    day_partition_dir,
    hour_of_file,
    hour_partition_dir,
    is_day_level_file,
)


def partition_values(hour: datetime) -> tuple[str, int]:
    """An hour start as its Hive partition values ``(event_date, event_hour)``."""
    hour = hour.astimezone(timezone.utc)
    return f"{hour:%Y-%m-%d}", hour.hour


@dataclass(frozen=True)
class PartitionedDataset:
    """The dataset at ``root``; a partition is named by an hour start or a ``YYYY-MM-DD`` day (``Part``)."""

    root: str

    @property
    def columns(self) -> tuple[str, ...]:
        raise NotImplementedError

    def dir(self, part: Any) -> str:
        raise NotImplementedError

    def key(self, part: Any) -> Hashable:
        """The partition's column values, as the writers report the partitions they produced."""
        raise NotImplementedError

    def dirs(self, parts: Iterable[Any]) -> dict[Any, str]:
        return {p: self.dir(p) for p in parts}

    def files(self, part: Any) -> list[tuple[str, int]]:
        """(path, size) of the partition's data files."""
        return pio.data_files(self.dir(part))

    def stats(self, part: Any) -> pio.FileStats:
        return pio.file_stats(self.dir(part))

    def read(
        self, spark: SparkSession, parts: Iterable[Any], schema: StructType | None = None
    ) -> DataFrame | None:
        """Exactly the given partitions (those that hold files), partition columns included; None if none."""
        present = [d for d in self.dirs(parts).values() if pio.data_files(d)]
        return self.read_paths(spark, present, schema) if present else None

    def read_present(
        self, spark: SparkSession, parts: Sequence[Any], schema: StructType | None = None
    ) -> DataFrame:
        """Exactly the given partitions, which the caller knows hold files (it listed or just wrote
        them): no listing here, and Spark fails on a partition that does not exist."""
        return self.read_paths(spark, list(self.dirs(parts).values()), schema)

    def read_paths(
        self, spark: SparkSession, paths: Sequence[str], schema: StructType | None = None
    ) -> DataFrame:
        """Some of the dataset's partition directories or data files, with the partition columns their
        paths name (``basePath`` is the dataset's root)."""
        reader = spark.read if schema is None else spark.read.schema(schema)
        return reader.option("basePath", self.root).parquet(*paths)

    def write(
        self, df: DataFrame, *below: str, keep_order: bool = False, plain_columns: Iterable[str] = ()
    ) -> None:
        """Overwrite the partitions ``df`` has rows for; every other partition keeps its files.

        ``below``: partition columns under the dataset's own (bronze's ``ingest_batch``);
        ``keep_order``, ``plain_columns``: see :func:`~iot_pipeline.storage.parquet_io.overwrite_partitions`.
        """
        pio.overwrite_partitions(
            df, self.root, [*self.columns, *below], keep_order=keep_order, plain_columns=plain_columns
        )

    def delete_emptied(self, parts: Iterable[Any], produced: set[Hashable]) -> list[str]:
        """Delete the partitions of ``parts`` whose key is not in ``produced``; returns those that existed."""
        return pio.delete_partitions(d for p, d in self.dirs(parts).items() if self.key(p) not in produced)


@dataclass(frozen=True)
class HourlyDataset(PartitionedDataset):
    @property
    def columns(self) -> tuple[str, ...]:
        return ("event_date", "event_hour")

    def dir(self, part: datetime) -> str:
        return hour_partition_dir(self.root, part)

    def key(self, part: datetime) -> tuple[str, int]:
        return partition_values(part)

    def hour_files(self, day: str) -> list[tuple[int, str]]:
        """(hour, path) of every data file in the hour partitions of ``day``, sorted by path (one
        listing of the day); files directly in the day directory are left out."""
        files = pio.data_files(day_partition_dir(self.root, day))
        return [(hour, path) for path, _ in files if (hour := hour_of_file(path)) is not None]

    def delete_day_level_files(self, hours: Iterable[datetime]) -> list[str]:
        """Delete the data files lying directly in the day directories of ``hours``, outside any hour
        partition (what a dataset once written one file per day left); returns those deleted."""
        deleted = []
        for day in sorted({partition_values(h)[0] for h in hours}):
            for path, _ in pio.data_files(day_partition_dir(self.root, day)):
                if is_day_level_file(path) and pio.delete(path):
                    deleted.append(path)
        return deleted


@dataclass(frozen=True)
class DailyDataset(PartitionedDataset):
    """Partitioned by a ``YYYY-MM-DD`` column: ``event_date``, or ``kafka_date`` for the quarantine."""

    column: str = "event_date"

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.column,)

    def dir(self, part: str) -> str:
        return day_partition_dir(self.root, part, self.column)

    def key(self, part: str) -> str:
        return part

    def write_table(self, table: pa.Table) -> list[str]:
        """Replace the partitions ``table`` has rows for, one Parquet file each, from this process
        (no Spark job: for a result of a few hundred rows); returns the files written."""
        column = table[self.column]
        return [
            pio.replace_data_files(
                self.dir(day), table.filter(pc.equal(column, day)).drop_columns([self.column])
            )
            for day in sorted(pc.unique(column).to_pylist())
        ]


def hours_where_sql(hours: Iterable[datetime]) -> str:
    """SQL predicate on (event_date, event_hour) selecting exactly ``hours`` (prunes partitions)."""
    by_day: dict[str, list[int]] = {}
    for h in hours:
        day, hour = partition_values(h)
        by_day.setdefault(day, []).append(hour)
    terms = []
    for day, hs in sorted(by_day.items()):
        if len(hs) == 24:
            terms.append(f"(event_date = '{day}')")
        else:
            terms.append(f"(event_date = '{day}' AND event_hour IN ({', '.join(map(str, sorted(hs)))}))")
    return " OR ".join(terms) if terms else "false"

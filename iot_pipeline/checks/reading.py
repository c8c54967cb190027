"""Read exactly the partitions a check looks at, with the types the files really have.

No schema is imposed on the read (that would hide a wrong type from the schema check); only the Hive
partition columns, whose values live in directory names, are normalised to the layout's types
(Spark infers ``event_date=2026-01-05`` as a date).
"""

from __future__ import annotations

from datetime import datetime

import dagster as dg
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from iot_pipeline.assets.windows import days_in, hours_in
from iot_pipeline.storage.datasets import DailyDataset, HourlyDataset, PartitionedDataset


def _normalise_partition_columns(df: DataFrame) -> DataFrame:
    types = {f.name: f.dataType for f in df.schema.fields}
    if isinstance(types.get("event_date"), T.DateType):
        df = df.withColumn("event_date", F.date_format("event_date", "yyyy-MM-dd"))
    if "event_hour" in types and not isinstance(types["event_hour"], T.IntegerType):
        df = df.withColumn("event_hour", F.col("event_hour").cast("int"))
    return df


def _read(spark: SparkSession, dataset: PartitionedDataset, parts: list) -> DataFrame | None:
    """The window's partitions that hold files, as the files type them; None when none does."""
    df = dataset.read(spark, parts)
    return None if df is None else _normalise_partition_columns(df)


def read_hours(spark: SparkSession, dataset: str, window: dg.TimeWindow) -> DataFrame | None:
    return _read(spark, HourlyDataset(dataset), hours_in(window))


def read_days(spark: SparkSession, dataset: str, window: dg.TimeWindow) -> DataFrame | None:
    return _read(spark, DailyDataset(dataset), days_in(window))


def window_label(window: dg.TimeWindow) -> str:
    start: datetime = window.start
    end: datetime = window.end
    return f"[{start:%Y-%m-%dT%H:%M}Z, {end:%Y-%m-%dT%H:%M}Z)"

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
from iot_pipeline.storage import parquet_io as pio
from iot_pipeline.storage.datasets import DailyDataset, HourlyDataset


def _normalise_partition_columns(df: DataFrame) -> DataFrame:
    types = {f.name: f.dataType for f in df.schema.fields}
    if isinstance(types.get("event_date"), T.DateType):
        df = df.withColumn("event_date", F.date_format("event_date", "yyyy-MM-dd"))
    if "event_hour" in types and not isinstance(types["event_hour"], T.IntegerType):
        df = df.withColumn("event_hour", F.col("event_hour").cast("int"))
    return df


def read_dirs(spark: SparkSession, dataset: str, dirs: list[str]) -> DataFrame | None:
    """The data under the partition directories that hold files; None when none does."""
    present = [d for d in dirs if pio.data_files(d)]
    if not present:
        return None
    return _normalise_partition_columns(spark.read.option("basePath", dataset).parquet(*present))


def read_hours(spark: SparkSession, dataset: str, window: dg.TimeWindow) -> DataFrame | None:
    return read_dirs(spark, dataset, list(HourlyDataset(dataset).dirs(hours_in(window)).values()))


def read_days(spark: SparkSession, dataset: str, window: dg.TimeWindow) -> DataFrame | None:
    return read_dirs(spark, dataset, list(DailyDataset(dataset).dirs(days_in(window)).values()))


def window_label(window: dg.TimeWindow) -> str:
    start: datetime = window.start
    end: datetime = window.end
    return f"[{start:%Y-%m-%dT%H:%M}Z, {end:%Y-%m-%dT%H:%M}Z)"

"""Provisional per-minute statistics per device type, for live views.

A stateful streaming aggregation with an event-time watermark, appended once a minute window can no
longer change. Records later than the watermark are not in it, by design: the live view is
provisional and the hourly assets, which include every late event, are authoritative. Its watermark
is also the stream's notion of "this hour is closed" for the partition sensor.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from iot_pipeline.streaming.validation import classify, valid_rows


def device_type_minute_stats(
    kafka_records: DataFrame, watermark_minutes: int, max_record_bytes: int
) -> DataFrame:
    events = valid_rows(classify(kafka_records, max_record_bytes))
    return (
        events.withWatermark("event_timestamp", f"{watermark_minutes} minutes")
        .groupBy(F.window("event_timestamp", "1 minute").alias("window"), "device_type")
        .agg(
            F.count(F.lit(1)).alias("events"),
            F.avg("event_duration").alias("duration_avg"),
            F.min("event_duration").alias("duration_min"),
            F.max("event_duration").alias("duration_max"),
            F.avg("value").alias("value_avg"),
            F.min("value").alias("value_min"),
            F.max("value").alias("value_max"),
        )
        .select(
            F.col("window.start").alias("window_start"),
            F.col("window.end").alias("window_end"),
            "device_type",
            "events",
            "duration_avg",
            "duration_min",
            "duration_max",
            "value_avg",
            "value_min",
            "value_max",
            F.date_format("window.start", "yyyy-MM-dd").alias("event_date"),
        )
    )

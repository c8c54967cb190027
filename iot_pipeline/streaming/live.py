"""Provisional per-minute statistics per device type, written by the bronze micro-batch itself.

Each batch appends, next to its bronze files, its own partial aggregates per device type and
1-minute event-time window (count, and sum/min/max of ``event_duration`` and ``value``) under
``live/device_type_minute_stats/event_date=D/ingest_batch=N``. A window that several batches touched
has one row per batch; :func:`live_view` combines them (counts and sums add, extremes take the
extreme, averages are sum / count). Written per batch id with dynamic overwrite like bronze, a
replayed batch replaces its own rows, so the view counts every valid record once with no state store.

Why not a second streaming query with a watermarked aggregation: it would read and parse every Kafka
record a second time and run a stateful operator on the same cores as the bronze batch (measured in
docs/streaming.md, "Benchmark"; docs/decisions.md). Late events are included in their own minute; the
view is provisional all the same, and the hourly assets are authoritative. The stream's event-time
watermark (newest event time landed minus ``live_watermark_minutes``) is published separately for the
partition sensor (:mod:`iot_pipeline.streaming.state`).
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def minute_partials(valid: DataFrame) -> DataFrame:
    """One batch's bronze rows -> one row per (1-minute window, device type) it touched."""
    return (
        valid.groupBy(F.window("event_timestamp", "1 minute").alias("window"), "device_type")
        .agg(
            F.count(F.lit(1)).alias("events"),
            F.sum("event_duration").alias("duration_sum"),
            F.min("event_duration").alias("duration_min"),
            F.max("event_duration").alias("duration_max"),
            F.sum("value").alias("value_sum"),
            F.min("value").alias("value_min"),
            F.max("value").alias("value_max"),
        )
        .select(
            F.col("window.start").alias("window_start"),
            F.col("window.end").alias("window_end"),
            "device_type",
            "events",
            "duration_sum",
            "duration_min",
            "duration_max",
            "value_sum",
            "value_min",
            "value_max",
            F.date_format("window.start", "yyyy-MM-dd").alias("event_date"),
        )
    )


def live_view(partials: DataFrame) -> DataFrame:
    """The per-minute statistics so far: the batches' partial rows combined per window and type."""
    return partials.groupBy("event_date", "window_start", "window_end", "device_type").agg(
        F.sum("events").alias("events"),
        (F.sum("duration_sum") / F.sum("events")).alias("duration_avg"),
        F.min("duration_min").alias("duration_min"),
        F.max("duration_max").alias("duration_max"),
        (F.sum("value_sum") / F.sum("events")).alias("value_avg"),
        F.min("value_min").alias("value_min"),
        F.max("value_max").alias("value_max"),
    )

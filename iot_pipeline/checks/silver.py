"""Blocking quality checks of the hourly silver assets (pandera models, counted in Spark)."""

from collections.abc import Iterator

import dagster as dg

from iot_pipeline.assets.keys import SILVER_DEVICE_MINUTE_STATS, SILVER_EVENTS
from iot_pipeline.assets.partitions import HOURLY
from iot_pipeline.checks.models import device_minute_stats_model, silver_events_model
from iot_pipeline.checks.reading import read_hours, window_label
from iot_pipeline.checks.results import result_for
from iot_pipeline.checks.specs import check_spec
from iot_pipeline.checks.validation import validate
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import SparkResource

EVENTS_UNIQUE = "event_id:unique"
STATS_UNIQUE = "device_id+device_type+window_start:unique"


@dg.multi_asset_check(
    name="silver_events_quality",
    specs=[
        check_spec(
            "contract",
            SILVER_EVENTS,
            HOURLY,
            blocking=True,
            description="Pandera model from the event contract: columns and Spark types, required fields "
            "not null, ranges, allowed status values, non-empty ids, finite numbers, event time inside "
            "the row's hour partition.",
        ),
        check_spec(
            "unique_event_id",
            SILVER_EVENTS,
            HOURLY,
            blocking=True,
            description="No event_id appears twice in the partition (silver promises exact deduplication).",
        ),
    ],
)
def silver_events_quality(
    context: dg.AssetCheckExecutionContext, spark: SparkResource, lake: LakeResource
) -> Iterator[dg.AssetCheckResult]:
    window = context.partition_time_window
    df = read_hours(spark.spark_session, lake.layout.silver_events, window)
    report = validate(df, silver_events_model()) if df is not None else None
    label = window_label(window)
    keys = ["event_id", "device_id", "event_timestamp"]
    rules = None if report is None else [r for r in report.failures if r != EVENTS_UNIQUE]
    yield result_for("contract", report, rules, include_schema=True, window=label, key_columns=keys)
    yield result_for("unique_event_id", report, [EVENTS_UNIQUE], include_schema=False, window=label)


@dg.multi_asset_check(
    name="device_minute_stats_quality",
    specs=[
        check_spec(
            "schema",
            SILVER_DEVICE_MINUTE_STATS,
            HOURLY,
            blocking=True,
            description="Pandera model: columns and types, non-null keys and counts, battery/signal ranges, "
            "aligned one-minute windows inside the partition hour, min <= avg/p50 <= p95 <= max.",
        ),
        check_spec(
            "unique_device_minute",
            SILVER_DEVICE_MINUTE_STATS,
            HOURLY,
            blocking=True,
            description="One row per (device_id, device_type, window_start): the statistics' grouping key "
            "(a device whose events name two types gets one series per type).",
        ),
    ],
)
def device_minute_stats_quality(
    context: dg.AssetCheckExecutionContext, spark: SparkResource, lake: LakeResource
) -> Iterator[dg.AssetCheckResult]:
    window = context.partition_time_window
    df = read_hours(spark.spark_session, lake.layout.silver_device_minute_stats, window)
    report = validate(df, device_minute_stats_model()) if df is not None else None
    label = window_label(window)
    keys = ["device_id", "window_start"]
    rules = None if report is None else [r for r in report.failures if r != STATS_UNIQUE]
    yield result_for("schema", report, rules, include_schema=True, window=label, key_columns=keys)
    yield result_for("unique_device_minute", report, [STATS_UNIQUE], include_schema=False, window=label)

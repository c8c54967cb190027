"""Blocking quality checks of the daily gold assets."""

from collections.abc import Iterator

import dagster as dg

from iot_pipeline.assets.keys import GOLD_DAILY_DEVICE_TYPE_SUMMARY, GOLD_DAILY_EVENT_DURATION_P95
from iot_pipeline.assets.partitions import DAILY
from iot_pipeline.checks.models import daily_device_type_summary_model, daily_p95_model
from iot_pipeline.checks.reading import read_days, window_label
from iot_pipeline.checks.results import result_for
from iot_pipeline.checks.specs import check_spec
from iot_pipeline.checks.validation import validate
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import SparkResource

P95_RANGE = "p95_within_kept_range"
MIN_EVENTS = "events_total:greater_than_or_equal_to"
P95_KEYS = ["event_date", "device_type"]


@dg.multi_asset_check(
    name="daily_p95_quality",
    specs=[
        check_spec(
            "schema",
            GOLD_DAILY_EVENT_DURATION_P95,
            DAILY,
            blocking=True,
            description="Pandera model: columns and types, no nulls, one row per (event_date, device_type), "
            "events_kept + outliers_removed = events_total.",
        ),
        check_spec(
            P95_RANGE,
            GOLD_DAILY_EVENT_DURATION_P95,
            DAILY,
            blocking=True,
            description="p95_event_duration lies within [min_kept_event_duration, max_kept_event_duration].",
        ),
        check_spec(
            "min_distinct_events",
            GOLD_DAILY_EVENT_DURATION_P95,
            DAILY,
            blocking=True,
            description="Every device type in the output has events_total >= 500 distinct events.",
        ),
    ],
)
def daily_p95_quality(
    context: dg.AssetCheckExecutionContext, spark: SparkResource, lake: LakeResource
) -> Iterator[dg.AssetCheckResult]:
    window = context.partition_time_window
    df = read_days(spark.spark_session, lake.layout.gold_daily_event_duration_p95, window)
    report = validate(df, daily_p95_model()) if df is not None else None
    label = window_label(window)
    rules = None if report is None else [r for r in report.failures if r not in (P95_RANGE, MIN_EVENTS)]
    yield result_for("schema", report, rules, include_schema=True, window=label, key_columns=P95_KEYS)
    yield result_for(P95_RANGE, report, [P95_RANGE], include_schema=False, window=label, key_columns=P95_KEYS)
    yield result_for(
        "min_distinct_events", report, [MIN_EVENTS], include_schema=False, window=label, key_columns=P95_KEYS
    )


@dg.multi_asset_check(
    name="daily_summary_quality",
    specs=[
        check_spec(
            "schema",
            GOLD_DAILY_DEVICE_TYPE_SUMMARY,
            DAILY,
            blocking=True,
            description="Pandera model of the keys: event_date and device_type present, not null, unique.",
        )
    ],
)
def daily_summary_quality(
    context: dg.AssetCheckExecutionContext, spark: SparkResource, lake: LakeResource
) -> Iterator[dg.AssetCheckResult]:
    window = context.partition_time_window
    df = read_days(spark.spark_session, lake.layout.gold_daily_device_type_summary, window)
    report = validate(df, daily_device_type_summary_model()) if df is not None else None
    yield result_for(
        "schema", report, None, include_schema=True, window=window_label(window), key_columns=P95_KEYS
    )

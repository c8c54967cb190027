"""Blocking quality checks of the daily gold assets."""

from iot_pipeline.assets.keys import GOLD_DAILY_DEVICE_TYPE_SUMMARY, GOLD_DAILY_EVENT_DURATION_P95
from iot_pipeline.assets.models import daily_device_type_summary_model, daily_p95_model
from iot_pipeline.checks.model_checks import RuleCheck, model_checks

P95_RANGE = "p95_within_kept_range"
MIN_EVENTS = "events_total:greater_than_or_equal_to"
P95_KEYS = ["event_date", "device_type"]

daily_p95_quality = model_checks(
    "daily_p95_quality",
    GOLD_DAILY_EVENT_DURATION_P95,
    lambda layout: layout.gold_daily_event_duration_p95,
    daily_p95_model,
    [
        RuleCheck(
            "schema",
            "Pandera model: columns and types, no nulls, one row per (event_date, device_type), "
            "events_kept + outliers_removed = events_total.",
        ),
        RuleCheck(
            P95_RANGE,
            "p95_event_duration lies within [min_kept_event_duration, max_kept_event_duration].",
            (P95_RANGE,),
        ),
        RuleCheck(
            "min_distinct_events",
            "Every device type in the output has events_total >= 500 distinct events.",
            (MIN_EVENTS,),
        ),
    ],
    key_columns=P95_KEYS,
)

daily_summary_quality = model_checks(
    "daily_summary_quality",
    GOLD_DAILY_DEVICE_TYPE_SUMMARY,
    lambda layout: layout.gold_daily_device_type_summary,
    daily_device_type_summary_model,
    [RuleCheck("schema", "Pandera model of the keys: event_date and device_type present, not null, unique.")],
    key_columns=P95_KEYS,
)

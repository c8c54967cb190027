"""Blocking quality checks of the hourly silver assets (pandera models, counted in Spark)."""

from iot_pipeline.assets.keys import SILVER_DEVICE_MINUTE_STATS, SILVER_EVENTS
from iot_pipeline.assets.models import device_minute_stats_model, silver_events_model
from iot_pipeline.checks.model_checks import RuleCheck, model_checks

EVENTS_UNIQUE = "event_id:unique"
STATS_UNIQUE = "device_id+device_type+window_start:unique"

silver_events_quality = model_checks(
    "silver_events_quality",
    SILVER_EVENTS,
    lambda layout: layout.silver_events,
    silver_events_model,
    [
        RuleCheck(
            "contract",
            "Pandera model from the event contract: columns and Spark types, required fields not null, "
            "ranges, allowed status values, non-empty ids, finite numbers, event time inside the row's "
            "hour partition.",
        ),
        RuleCheck(
            "unique_event_id",
            "No event_id appears twice in the partition (silver promises exact deduplication).",
            (EVENTS_UNIQUE,),
        ),
    ],
    key_columns=["event_id", "device_id", "event_timestamp"],
)

device_minute_stats_quality = model_checks(
    "device_minute_stats_quality",
    SILVER_DEVICE_MINUTE_STATS,
    lambda layout: layout.silver_device_minute_stats,
    device_minute_stats_model,
    [
        RuleCheck(
            "schema",
            "Pandera model: columns and types, non-null keys and counts, battery/signal ranges, aligned "
            "one-minute windows inside the partition hour, min <= avg/p50 <= p95 <= max.",
        ),
        RuleCheck(
            "unique_device_minute",
            "One row per (device_id, device_type, window_start): the statistics' grouping key (a device "
            "whose events name two types gets one series per type).",
            (STATS_UNIQUE,),
        ),
    ],
    key_columns=["device_id", "window_start"],
)

"""Asset keys, defined once so checks, sensors and jobs refer to assets without importing them."""

from __future__ import annotations

import dagster as dg

KAFKA_IOT_EVENTS = dg.AssetKey(["kafka", "iot_events"])
BRONZE_EVENTS = dg.AssetKey(["bronze", "events"])
BRONZE_QUARANTINE = dg.AssetKey(["bronze", "quarantine"])
LIVE_DEVICE_TYPE_MINUTE_STATS = dg.AssetKey(["live", "device_type_minute_stats"])
SILVER_EVENTS = dg.AssetKey(["silver", "events"])
SILVER_EVENT_ID_INDEX = dg.AssetKey(["silver", "event_id_index"])
SILVER_DEVICE_MINUTE_STATS = dg.AssetKey(["silver", "device_minute_stats"])
GOLD_DAILY_EVENT_DURATION_P95 = dg.AssetKey(["gold", "daily_event_duration_p95"])
GOLD_DAILY_DEVICE_TYPE_SUMMARY = dg.AssetKey(["gold", "daily_device_type_summary"])

GROUP_INGESTION = "ingestion"
GROUP_SILVER = "silver"
GROUP_GOLD = "gold"
OWNERS = ["team:data-platform"]

DAILY_KEYS = (GOLD_DAILY_EVENT_DURATION_P95, GOLD_DAILY_DEVICE_TYPE_SUMMARY)

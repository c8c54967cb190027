"""When a partition counts as closed, and how much a sensor tick may do: one resource, set from the environment."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Any

import dagster as dg

from iot_pipeline.storage.layout import LakeLayout
from iot_pipeline.storage.listing import LakeListing

DEFAULT_GRACE_MINUTES = 15


def watermark_path(layout: LakeLayout) -> str:
    """Where the streaming job publishes its event-time watermark as ``{"watermark": ISO-8601}``."""
    return layout.path("_state", "stream", "watermark.json")


def parse_watermark(doc: Any) -> datetime | None:
    if not isinstance(doc, dict) or not isinstance(doc.get("watermark"), str):
        return None
    try:
        value = datetime.fromisoformat(doc["watermark"].replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


class SensorSettingsResource(dg.ConfigurableResource):
    """Closing rule and tick budget of the partition sensors.

    A partition is closed once its end is at or before either the stream's watermark (rows older than
    it are no longer expected) or the wall clock minus ``grace_minutes`` (so a stopped stream does not
    hold partitions open forever). Late rows that still arrive make the sensor run the hour again.
    """

    grace_minutes: int = DEFAULT_GRACE_MINUTES
    # Hours older than this are not re-fingerprinted on every tick (rows later than this need a manual run).
    late_lookback_hours: int = 7 * 24
    # Caps one tick's work; the remaining partitions are picked up on the next tick.
    max_runs_per_tick: int = 48

    def closed_until(self, layout: LakeLayout, listing: LakeListing, now: datetime | None = None) -> datetime:
        """Every partition that ends at or before the returned instant is closed."""
        now = now or datetime.now(timezone.utc)
        by_clock = now - timedelta(minutes=self.grace_minutes)
        watermark = parse_watermark(listing.read_json(watermark_path(layout)))
        return max(by_clock, watermark) if watermark else by_clock


def default_sensor_settings() -> SensorSettingsResource:
    """Bound by the code location; ``IOT_HOUR_GRACE_MINUTES`` sets the grace period."""
    if os.environ.get("IOT_HOUR_GRACE_MINUTES"):
        return SensorSettingsResource(grace_minutes=dg.EnvVar.int("IOT_HOUR_GRACE_MINUTES"))
    return SensorSettingsResource()

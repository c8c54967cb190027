"""When a partition counts as closed, and how much a sensor tick may do: one resource, set from the environment."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg

from iot_pipeline.assets.silver_events import LATE_MARGIN_MINUTES
from iot_pipeline.resources.env import bound, env_int
from iot_pipeline.storage.layout import LakeLayout
from iot_pipeline.storage.listing import LakeListing
from iot_pipeline.storage.watermark import trusted_watermark

DEFAULT_GRACE_MINUTES = LATE_MARGIN_MINUTES  # an hour's first run comes after the rows silver calls on time
DEFAULT_SETTLE_MINUTES = 10


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
    # Debounce: a partition that keeps changing (late rows) is requested again at most once per this
    # interval after its previous request; the last change is picked up one interval later at most.
    settle_minutes: int = DEFAULT_SETTLE_MINUTES
    # A request whose run (after Dagster's own run retries) failed is requested again after this long,
    # or at once when its bronze hours change (someone fixed the data).
    failed_retry_minutes: int = 30
    # Due partitions in a contiguous range of at least this many become one single-run backfill.
    backfill_min_partitions: int = 2
    # Longest range one catch-up backfill covers (a year of hours becomes weekly backfills, not one run).
    backfill_max_hours: int = 7 * 24
    # Days of bronze history older than the lookback checked per tick (catch-up over an old lake).
    history_days_per_tick: int = 31
    # A request with no run or backfill in the instance after this long is considered lost and re-made.
    lost_request_minutes: int = 10
    # Pending days whose hours are checked in the instance per daily tick (in turn, newest first).
    max_days_per_tick: int = 7

    def closed_until(
        self,
        layout: LakeLayout,
        listing: LakeListing,
        now: datetime | None = None,
        notes: list[str] | None = None,
    ) -> datetime:
        """Every partition that ends at or before the returned instant is closed; never later than ``now``.

        A watermark later than the clock is ignored (see :mod:`iot_pipeline.storage.watermark`), and
        the reason is appended to ``notes`` for the tick's log.
        """
        now = now or datetime.now(timezone.utc)
        by_clock = now - timedelta(minutes=self.grace_minutes)
        watermark = trusted_watermark(listing.read_json(layout.stream_watermark), now, notes)
        return min(now, max(by_clock, watermark)) if watermark else by_clock


def default_sensor_settings() -> SensorSettingsResource:
    """Bound by the code location; ``IOT_HOUR_GRACE_MINUTES`` sets the grace period, ``IOT_SETTLE_MINUTES``
    the debounce interval of late data."""
    return SensorSettingsResource(
        **bound(
            grace_minutes=env_int("IOT_HOUR_GRACE_MINUTES", minimum=0),
            settle_minutes=env_int("IOT_SETTLE_MINUTES", minimum=0),
        )
    )

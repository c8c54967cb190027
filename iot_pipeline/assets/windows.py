"""Turn a run's partition time window into the hours and days it covers.

Asset bodies never assume a single partition key: a single-run backfill hands them a window of many
hours (or days), and everything below works on that window.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def _utc(ts: datetime) -> datetime:
    return ts.astimezone(timezone.utc)


def hours_in(window: dg.TimeWindow) -> list[datetime]:
    """Start of every UTC hour in ``[window.start, window.end)``."""
    start, end = _utc(window.start), _utc(window.end)
    out = []
    while start < end:
        out.append(start)
        start += HOUR
    return out


def days_in(window: dg.TimeWindow) -> list[str]:
    """Every UTC day (``YYYY-MM-DD``) that ``[window.start, window.end)`` touches: an hourly window's
    days too, one that crosses midnight included."""
    start, end = _utc(window.start).replace(hour=0, minute=0, second=0, microsecond=0), _utc(window.end)
    out = []
    while start < end:
        out.append(f"{start:%Y-%m-%d}")
        start += DAY
    return out


def hour_label(hour: datetime) -> str:
    """The hourly partition key of an hour start (``YYYY-MM-DD-HH:00``)."""
    return f"{_utc(hour):%Y-%m-%d-%H:00}"

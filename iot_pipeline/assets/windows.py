"""Turn a run's partition time window into the hours and days it covers.

Asset bodies never assume a single partition key: a single-run backfill hands them a window of many
hours (or days), and everything below works on that window.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg

from iot_pipeline.storage.layout import day_partition_dir, hour_partition_dir

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
    """Every UTC day (``YYYY-MM-DD``) in ``[window.start, window.end)``."""
    start, end = _utc(window.start), _utc(window.end)
    out = []
    while start < end:
        out.append(f"{start:%Y-%m-%d}")
        start += DAY
    return out


def hour_label(hour: datetime) -> str:
    """The hourly partition key of an hour start (``YYYY-MM-DD-HH:00``)."""
    return f"{_utc(hour):%Y-%m-%d-%H:00}"


def partition_values(hour: datetime) -> tuple[str, int]:
    """An hour start as its Hive partition values ``(event_date, event_hour)``."""
    hour = _utc(hour)
    return f"{hour:%Y-%m-%d}", hour.hour


def hour_dirs(dataset: str, hours: list[datetime]) -> dict[datetime, str]:
    return {h: hour_partition_dir(dataset, h) for h in hours}


def day_dirs(dataset: str, days: list[str]) -> dict[str, str]:
    return {d: day_partition_dir(dataset, d) for d in days}


def partition_filter_sql(hours: list[datetime]) -> str:
    """SQL predicate on (event_date, event_hour) selecting exactly ``hours`` (prunes partitions)."""
    by_day: dict[str, list[int]] = {}
    for h in hours:
        h = _utc(h)
        by_day.setdefault(f"{h:%Y-%m-%d}", []).append(h.hour)
    terms = []
    for day, hs in sorted(by_day.items()):
        if len(hs) == 24:
            terms.append(f"(event_date = '{day}')")
        else:
            terms.append(
                f"(event_date = '{day}' AND event_hour IN ({', '.join(str(x) for x in sorted(hs))}))"
            )
    return " OR ".join(terms) if terms else "false"

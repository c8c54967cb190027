"""Sensor: run the hourly silver assets for every closed bronze hour that is new or received late rows.

Each tick (docs/checks-and-sensors.md has the whole rule):

1. asks the instance what became of the sensor's open requests (``requests.py``): an hour is recorded
   as done, at the bronze fingerprint the request was made for, only when its run or backfill
   succeeded; a failed one (after Dagster's run retries) is made again after ``failed_retry_minutes``,
   or at once when the hour's bronze files change (the data was fixed);
2. lists and fingerprints the bronze hours of the last ``late_lookback_hours`` only, so its cost does
   not grow with the lake's age; older history is checked ``history_days_per_tick`` days at a time
   (``scan`` in the cursor) for hours that were never materialised (a new instance over an old lake);
3. requests an hour whose fingerprint differs from the done one, unless a request or any run for it
   (or a daily run of its day) is still in flight: at most one run per partition, late rows coalesce;
   and not sooner than ``settle_minutes`` after the previous request (debounce);
4. turns the due hours into one run per lone hour and one single-run backfill per contiguous range.

The cursor holds only recent hours and open requests: bounded, whatever the lake's age.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import dagster as dg
from dagster import DagsterEventType

from iot_pipeline.assets.keys import (
    GOLD_DAILY_DEVICE_TYPE_SUMMARY,
    GOLD_DAILY_EVENT_DURATION_P95,
    SILVER_DEVICE_MINUTE_STATS,
    SILVER_EVENT_ID_INDEX,
    SILVER_EVENTS,
)
from iot_pipeline.assets.partitions import HOURLY, HOURLY_FORMAT
from iot_pipeline.sensors.catchup import make_request, request_groups
from iot_pipeline.sensors.cursor import cursor_fields, dump_cursor, load_cursor, load_marks
from iot_pipeline.sensors.history import latest_materializations
from iot_pipeline.sensors.lake_sensor import Tick, lake_sensor
from iot_pipeline.sensors.requests import Request, busy_partitions, load_requests, outcomes, settle
from iot_pipeline.sensors.settings import SensorSettingsResource
from iot_pipeline.storage.commits import committed_batch
from iot_pipeline.storage.listing import (
    HourFingerprint,
    fingerprints_by_day,
    hours_of_days,
    listing_for,
    partition_days,
)

HOURLY_ASSETS = (SILVER_EVENTS, SILVER_EVENT_ID_INDEX, SILVER_DEVICE_MINUTE_STATS)
HOURLY_TARGET = dg.AssetSelection.assets(*HOURLY_ASSETS)
HOUR = timedelta(hours=1)
CURSOR_VERSION = 2


def hour_key(hour_start: datetime) -> str:
    return hour_start.astimezone(timezone.utc).strftime(HOURLY_FORMAT)


def hour_of(key: str) -> datetime:
    return datetime.strptime(key, HOURLY_FORMAT).replace(tzinfo=timezone.utc)


@dataclass
class HourCursor:
    """``hours``: recent hour -> [fingerprint done, time of the last request]; ``requests``: open ones;
    ``scan``: the first day of older history not checked yet."""

    hours: dict[str, list] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    scan: str | None = None

    @classmethod
    def parse(cls, raw: str | None) -> HourCursor:
        doc = load_cursor(raw, CURSOR_VERSION)
        return cls(load_marks(doc.get("hours")), load_requests(doc.get("requests")), doc.get("scan"))

    def dump(self) -> str:
        return dump_cursor(CURSOR_VERSION, **cursor_fields(self))

    def done(self, key: str) -> str:
        return self.hours.get(key, ["", 0.0])[0]

    def last_request(self, key: str) -> float:
        return self.hours.get(key, ["", 0.0])[1]


def _history(
    context: dg.SensorEvaluationContext,
    listing,
    dataset: str,
    cursor: HourCursor,
    settings: SensorSettingsResource,
    lookback_start: datetime,
    closed_until: datetime,
    skipped: list[str],
) -> list[datetime]:
    """Closed hours before the lookback that were never materialised, ``history_days_per_tick`` days
    of history per tick; advances ``cursor.scan``."""
    first_day = f"{HOURLY.start.astimezone(timezone.utc):%Y-%m-%d}"
    limit_day = f"{lookback_start:%Y-%m-%d}"
    start_day = max(cursor.scan or first_day, first_day)
    if start_day >= limit_day:
        return []
    days = [d for d in partition_days(listing, dataset) if start_day <= d < limit_day]
    batch = days[: max(1, settings.history_days_per_tick)]
    more = len(days) > len(batch)
    cursor.scan = (
        f"{datetime.strptime(batch[-1], '%Y-%m-%d') + timedelta(days=1):%Y-%m-%d}" if more else limit_day
    )
    first = HOURLY.start.astimezone(timezone.utc)
    hours = [
        h
        for h in hours_of_days(listing, dataset, batch, skipped)
        if first <= h < lookback_start and h + HOUR <= closed_until
    ]
    if not hours:
        return []
    keys = {hour_key(h) for h in hours}
    materialised = context.instance.get_latest_storage_id_by_partition(
        SILVER_EVENTS, DagsterEventType.ASSET_MATERIALIZATION, keys
    )
    return [h for h in hours if hour_key(h) not in materialised]


def evaluate_bronze_hours(context: dg.SensorEvaluationContext, tick: Tick) -> dg.SensorResult:
    lake, settings, now, s3 = tick.lake, tick.settings, tick.now, tick.s3
    t = now.timestamp()
    layout = lake.layout
    dataset = layout.bronze_events
    listing = listing_for(layout.root, s3)
    instance = context.instance
    cursor = HourCursor.parse(context.cursor)
    notes: list[str] = []
    skipped: list[str] = []

    # 1. What became of the open requests.
    results = outcomes(instance, cursor.requests, t, settings.lost_request_minutes * 60)
    for req in settle(cursor.requests, results, t):
        for key, token in req.tokens.items():
            cursor.hours[key] = [token, cursor.last_request(key) or req.at]

    # 2. Recent hours (fingerprinted) and a slice of older history (never materialised).
    closed_until = settings.closed_until(layout, listing, now, notes)
    first = HOURLY.start.astimezone(timezone.utc)
    lookback_start = (now - timedelta(hours=settings.late_lookback_hours)).replace(
        minute=0, second=0, microsecond=0
    )
    recent_days = []
    day = lookback_start
    while day.date() <= now.date():
        recent_days.append(f"{day:%Y-%m-%d}")
        day += timedelta(days=1)
    listed = [
        h for h in hours_of_days(listing, dataset, recent_days, skipped) if h >= max(first, lookback_start)
    ]
    closed = [h for h in listed if h + HOUR <= closed_until]
    # Batches the stream is still committing do not count yet (storage/commits.py).
    committed = committed_batch(listing.read_json(layout.bronze_commit))
    fingerprints = fingerprints_by_day(listing, dataset, closed, committed)
    old_due = _history(context, listing, dataset, cursor, settings, lookback_start, closed_until, skipped)

    # 3. Which recent hours are due now.
    busy = busy_partitions(
        instance, (*HOURLY_ASSETS, GOLD_DAILY_EVENT_DURATION_P95, GOLD_DAILY_DEVICE_TYPE_SUMMARY)
    )
    unseen = [fp for fp in fingerprints.values() if hour_key(fp.hour_start) not in cursor.hours]
    mats = latest_materializations(instance, SILVER_EVENTS, [hour_key(fp.hour_start) for fp in unseen])
    due: dict[datetime, HourFingerprint | None] = {}
    counts = {"in_flight": 0, "settling": 0, "adopted": 0, "failed": 0}
    for h, fp in sorted(fingerprints.items()):
        key = hour_key(h)
        if any(r.covers(key) for r in cursor.requests) or busy.covers(key) or busy.day_run(key[:10]):
            counts["in_flight"] += 1
            continue
        if cursor.done(key) == fp.token:
            continue
        if key not in cursor.hours and (m := mats.get(key)) and m.timestamp >= fp.newest_mtime:
            cursor.hours[key] = [fp.token, 0.0]  # materialised after its last write (backfill, cursor reset)
            counts["adopted"] += 1
            continue
        if t - cursor.last_request(key) < settings.settle_minutes * 60:
            counts["settling"] += 1
            continue
        due[h] = fp
    for h in old_due:
        due.setdefault(h, None)

    # 4. Failed requests: again after the back-off, or at once when their hours' data changed.
    for req in [r for r in cursor.requests if r.failed_at]:
        changed = any(
            (fp := fingerprints.get(hour_of(k))) and fp.token != tok for k, tok in req.tokens.items()
        )
        if not changed and t - req.failed_at < settings.failed_retry_minutes * 60:
            counts["failed"] += 1
            notes.append(
                f"{req.first}..{req.last} failed; again in {settings.failed_retry_minutes} min or when it changes"
            )
            continue
        cursor.requests.remove(req)
        h = hour_of(req.first)
        while h <= hour_of(req.last):
            due[h] = fingerprints.get(h)
            h += HOUR

    # 5. One run per lone hour, one single-run backfill per contiguous range.
    run_requests = []
    groups = request_groups(due, HOUR, settings.backfill_max_hours, settings.backfill_min_partitions)
    for group in groups[: max(1, settings.max_runs_per_tick)]:
        keys = [hour_key(h) for h in group]
        tokens = {hour_key(h): fp.token for h in group if (fp := due[h]) is not None}
        req = Request(f"h:{keys[0]}:{keys[-1]}:{int(t)}", keys[0], keys[-1], t, tokens)
        as_backfill = len(group) > 1
        extra = {}
        if len(group) == 1 and (fp := due[group[0]]) is not None:
            extra = {
                "iot/bronze_fingerprint": fp.token,
                "iot/bronze_files": str(fp.files),
                "iot/bronze_bytes": str(fp.total_bytes),
            }
        run_requests.append(make_request(req, keys, HOURLY, HOURLY_ASSETS, "hourly", as_backfill, extra))
        cursor.requests.append(req)
        for key in tokens:
            cursor.hours[key] = [cursor.done(key), t]

    # The cursor keeps recent hours only (bounded), plus whatever open requests name.
    floor = hour_key(lookback_start)
    cursor.hours = {k: v for k, v in cursor.hours.items() if k >= floor}
    if skipped:
        notes.append(f"skipped unusable directories: {', '.join(sorted(skipped)[:5])}")
    summary = (
        f"bronze hours closed={len(closed)} closed_until={closed_until:%Y-%m-%dT%H:%M}Z "
        f"history_due={len(old_due)} scan={cursor.scan} due={len(due)} requests={len(run_requests)} "
        + " ".join(f"{k}={v}" for k, v in counts.items())
    )
    context.log.info(summary + ("; " + "; ".join(notes) if notes else ""))
    if not run_requests:
        return dg.SensorResult(skip_reason=f"No closed bronze hour is due: {summary}", cursor=cursor.dump())
    return dg.SensorResult(run_requests=run_requests, cursor=cursor.dump())


bronze_hours_sensor = lake_sensor(
    evaluate_bronze_hours,
    name="bronze_hours_sensor",
    description="Materialises silver/events (with its event-id index) and silver/device_minute_stats for "
    "each closed bronze hour "
    "that is new or received late rows (fingerprint = files, bytes, newest write): at most one request "
    "per hour in flight, late rows debounced, failed runs requested again, ranges as one backfill.",
    asset_selection=HOURLY_TARGET,
    minimum_interval_seconds=30,
)

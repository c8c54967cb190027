"""Sensor: run the daily gold assets for a day once its hours are materialised, and again when one changes.

Why a sensor and not ``AutomationCondition.eager()`` (see docs/checks-and-sensors.md): eager() only
considers the latest day, and it waits for all 24 hourly parents to exist, so a day with an hour
without any event (a quiet night, a stream started at 10:00) would never run, and a late row in the
day before yesterday would not re-run that day.

Each tick reads, from the instance's event log, the hourly partitions materialised since the cursor's
storage id and marks their days pending. A pending day is requested when it is closed, every hour that
has bronze data (plus every hour materialised before) has its latest materialisation of each hourly
asset, and the runs that produced those finished successfully: a failed blocking check fails its run,
so a day never builds on an hour that failed one. The run key is ``<day>:<newest hourly storage id>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import dagster as dg

from iot_pipeline.assets.keys import (
    GOLD_DAILY_DEVICE_TYPE_SUMMARY,
    GOLD_DAILY_EVENT_DURATION_P95,
    SILVER_DEVICE_MINUTE_STATS,
    SILVER_EVENTS,
)
from iot_pipeline.assets.partitions import DAILY
from iot_pipeline.sensors.catchup import make_request, request_groups
from iot_pipeline.sensors.cursor import cursor_fields, dump_cursor, load_cursor, load_marks
from iot_pipeline.sensors.history import (
    FINISHED_BAD,
    FINISHED_OK,
    latest_materializations,
    new_materialized_partitions,
    run_statuses,
)
from iot_pipeline.sensors.hourly import hour_key
from iot_pipeline.sensors.lake_sensor import Tick, lake_sensor
from iot_pipeline.sensors.requests import Request, busy_partitions, load_requests, outcomes, settle
from iot_pipeline.storage.listing import hours_of_days, listing_for

DAILY_ASSETS = (GOLD_DAILY_EVENT_DURATION_P95, GOLD_DAILY_DEVICE_TYPE_SUMMARY)
DAILY_TARGET = dg.AssetSelection.assets(*DAILY_ASSETS)
HOURLY_PARENTS = (SILVER_EVENTS, SILVER_DEVICE_MINUTE_STATS)
CURSOR_VERSION = 2
DAY = timedelta(days=1)


@dataclass
class DayCursor:
    """Newest hourly storage id already read, days waiting for their hours, open requests, and per
    recent day the hourly storage id it was last built from and when it was last requested."""

    after: int | None = None
    pending: set[str] = field(default_factory=set)
    requests: list[Request] = field(default_factory=list)
    days: dict[str, list] = field(default_factory=dict)
    # The last pending day checked: the next tick continues below it, so every day gets its turn.
    rotate: str = ""

    @classmethod
    def parse(cls, raw: str | None) -> DayCursor:
        doc = load_cursor(raw, CURSOR_VERSION)
        pending, requests = set(doc.get("pending") or []), load_requests(doc.get("requests"))
        return cls(
            doc.get("after"), pending, requests, load_marks(doc.get("days")), str(doc.get("rotate") or "")
        )

    def dump(self) -> str:
        return dump_cursor(CURSOR_VERSION, **cursor_fields(self))


def day_of(hour_partition: str) -> str:
    return hour_partition[:10]


def day_readiness(
    instance: dg.DagsterInstance, day: str, bronze_hours: list[datetime]
) -> tuple[str, int | None, str]:
    """("ready"|"wait"|"blocked", newest hourly storage id, reason) for one closed day."""
    start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    day_hours = [hour_key(start + timedelta(hours=i)) for i in range(24)]
    with_data = {hour_key(h) for h in bronze_hours if start <= h < start + DAY}
    latest = {key: latest_materializations(instance, key, day_hours) for key in HOURLY_PARENTS}
    required = with_data.union(*[set(m) for m in latest.values()])
    if not required:
        return "wait", None, "no hour of the day has data"
    mats = [m for k in HOURLY_PARENTS for h in sorted(required) if (m := latest[k].get(h))]
    statuses = run_statuses(instance, [m.run_id for m in mats])
    failed = sorted({m.partition for m in mats if statuses.get(m.run_id) in FINISHED_BAD})
    if failed:
        return "blocked", None, f"latest run of hour(s) {', '.join(failed)} failed (e.g. a blocking check)"
    missing = sorted(
        f"{k.to_user_string()}[{h}]" for k in HOURLY_PARENTS for h in required if h not in latest[k]
    )
    if missing:
        return (
            "wait",
            None,
            f"not materialised yet: {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}",
        )
    running = [m for m in mats if m.run_id in statuses and statuses[m.run_id] not in FINISHED_OK]
    if running:
        return "wait", None, "hourly runs still in progress"
    return "ready", max(m.storage_id for m in mats), f"{len(required)} hour(s) with data"


def evaluate_days(context: dg.SensorEvaluationContext, tick: Tick) -> dg.SensorResult:
    lake, settings, now, s3 = tick.lake, tick.settings, tick.now, tick.s3
    t = now.timestamp()
    instance = context.instance
    cursor = DayCursor.parse(context.cursor)

    # What became of the open requests: a day is built (at a storage id) only when its run succeeded.
    results = outcomes(instance, cursor.requests, t, settings.lost_request_minutes * 60)
    for req in settle(cursor.requests, results, t):
        for day, token in req.tokens.items():
            cursor.days[day] = [token, cursor.days.get(day, ["", req.at])[1]]

    newest = cursor.after
    for key in HOURLY_PARENTS:
        for partition, storage_id in new_materialized_partitions(instance, key, cursor.after).items():
            cursor.pending.add(day_of(partition))
            newest = max(newest or 0, storage_id)
    cursor.after = newest

    layout = lake.layout
    listing = listing_for(layout.root, s3)
    notes: list[str] = []
    closed_until = settings.closed_until(layout, listing, now, notes)
    first_day = DAILY.start.astimezone(timezone.utc).strftime("%Y-%m-%d")
    # Failed requests: their days are evaluated again after the back-off, or at once when one of the
    # day's hours was materialised since (the pending loop below sees a newer storage id).
    for req in [r for r in cursor.requests if r.failed_at]:
        if t - req.failed_at >= settings.failed_retry_minutes * 60:
            cursor.requests.remove(req)
            cursor.pending.update(req.tokens)
            notes.append(f"{req.first}..{req.last}: failed, evaluated again")
        else:
            notes.append(f"{req.first}..{req.last}: failed, again in {settings.failed_retry_minutes} min")

    busy = busy_partitions(instance, (*HOURLY_PARENTS, *DAILY_ASSETS))
    due: dict[datetime, str] = {}
    pending = sorted(cursor.pending)
    checked, deferred = 0, 0
    # Newest first (yesterday's gold before last year's), continuing below the day checked last.
    newest_first = pending[::-1]
    order = [d for d in newest_first if cursor.rotate and d < cursor.rotate]
    for day in order + [d for d in newest_first if d not in order]:
        start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc)
        if day < first_day:
            cursor.pending.discard(day)
            continue
        if start + DAY > closed_until:
            notes.append(f"{day}: open")
            continue
        if any(r.covers(day) and not r.failed_at for r in cursor.requests) or busy.day_run(day):
            notes.append(f"{day}: run in flight")
            continue
        if busy.hour_runs(day):
            notes.append(f"{day}: wait (hourly runs in flight)")
            continue
        if checked >= max(1, settings.max_days_per_tick):
            deferred += 1  # bounded tick: the other pending days are checked on the next ticks
            continue
        checked += 1
        cursor.rotate = day
        state, storage_id, reason = day_readiness(
            instance, day, hours_of_days(listing, layout.bronze_events, [day])
        )
        notes.append(f"{day}: {state} ({reason})")
        if state != "ready":
            continue  # stays pending: re-evaluated every tick until its hours are fixed
        failed = [r for r in cursor.requests if r.failed_at and r.covers(day)]
        if any(r.tokens.get(day) == str(storage_id) for r in failed):
            continue  # its hours have not changed since the failed run: the back-off below decides
        for req in failed:  # an hour changed since: the day is due again now
            cursor.requests.remove(req)
            cursor.pending.update(k for k in req.tokens if k != day)
        built, last = cursor.days.get(day, ["", 0.0])
        if built == str(storage_id):
            cursor.pending.discard(day)
            continue
        if t - last < settings.settle_minutes * 60:
            notes.append(f"{day}: settling")
            continue
        due[start] = str(storage_id)

    requests: list[dg.RunRequest] = []
    groups = request_groups(
        due, DAY, max(1, settings.backfill_max_hours // 24), settings.backfill_min_partitions
    )
    for group in groups[: max(1, settings.max_runs_per_tick)]:
        keys = [f"{d:%Y-%m-%d}" for d in group]
        tokens = {f"{d:%Y-%m-%d}": due[d] for d in group}
        req = Request(f"d:{keys[0]}:{keys[-1]}:{int(t)}", keys[0], keys[-1], t, tokens)
        as_backfill = len(group) > 1
        requests.append(make_request(req, keys, DAILY, DAILY_ASSETS, "daily", as_backfill))
        cursor.requests.append(req)
        for key in keys:
            cursor.pending.discard(key)
            cursor.days[key] = [cursor.days.get(key, ["", 0.0])[0], t]

    # Bounded cursor: built days are kept for the late-data lookback only.
    floor = f"{now - timedelta(hours=settings.late_lookback_hours) - DAY:%Y-%m-%d}"
    cursor.days = {k: v for k, v in cursor.days.items() if k >= floor or k in cursor.pending}
    if deferred:
        notes.append(f"{deferred} more pending day(s) checked on the next ticks")
    if len(notes) > 40:  # a catch-up can leave hundreds of days pending: keep the log readable
        notes = [*notes[:20], f"... {len(notes) - 30} more ...", *notes[-10:]]
    if notes:
        context.log.info("; ".join(notes))
    if not requests:
        return dg.SensorResult(
            skip_reason="No day ready: " + ("; ".join(notes) or "nothing new"), cursor=cursor.dump()
        )
    return dg.SensorResult(run_requests=requests, cursor=cursor.dump())


daily_rollup_sensor = lake_sensor(
    evaluate_days,
    name="daily_rollup_sensor",
    description="Materialises the daily gold assets of a closed day once its hours are materialised "
    "(and their runs, blocking checks included, succeeded), and again whenever one of its hours changes.",
    asset_selection=DAILY_TARGET,
    minimum_interval_seconds=60,
)

"""Sensor: tell Dagster which bronze hours exist, so the UI's partition bar of ``bronze/events`` is true.

The streaming job lands bronze outside Dagster, so nothing else records a bronze hour. Each tick this
sensor lists the bronze hours of the last ``late_lookback_hours`` (the same listing and fingerprints as
``bronze_hours_sensor``: directory names, then files, bytes and newest write per hour) and reports a
runless ``AssetMaterialization`` of ``bronze/events`` for every hour whose state changed since it last
reported it: new rows landed, late rows arrived, or the hour closed. Older history (a new instance
over an old lake) is reported ``history_days_per_tick`` days per tick, once.

Cheap and idempotent: no Spark and no data read; on a local lake the row count, the newest event
time and the Kafka offsets come from the Parquet footers of the hour's files (a few KB each). The
cursor keeps one short token per recent hour, so an unchanged hour is never reported twice, and it
is bounded whatever the lake's age. The sensor requests no runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.parquet as pq
from dagster_aws.s3 import S3Resource

from iot_pipeline.assets.keys import BRONZE_EVENTS
from iot_pipeline.assets.partitions import HOURLY, HOURLY_FORMAT
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.sensors.settings import SensorSettingsResource
from iot_pipeline.storage.layout import hour_partition_dir, is_local, local_path
from iot_pipeline.storage.listing import (
    HourFingerprint,
    LakeListing,
    hours_of_days,
    listing_for,
    partition_days,
)

HOUR = timedelta(hours=1)
CURSOR_VERSION = 1
MAX_REPORTS_PER_TICK = 400  # a tick stays short; the rest is reported on the next one


def _key(hour: datetime) -> str:
    return hour.astimezone(timezone.utc).strftime(HOURLY_FORMAT)


def footer_summary(hour_dir: str) -> dict[str, Any]:
    """Rows, newest event time and Kafka offsets of a local hour directory, from Parquet footers only.

    Offsets are reported per Kafka partition for files that hold a single partition (the stream
    writes one file per Kafka partition and micro-batch); files mixing partitions only add rows.
    """
    rows = 0
    newest: float | None = None
    offsets: dict[int, list[int]] = {}
    for path in sorted(Path(local_path(hour_dir)).rglob("*.parquet")):
        if any(part.startswith(("_", ".")) for part in path.relative_to(local_path(hour_dir)).parts):
            continue
        try:
            meta = pq.ParquetFile(path).metadata
        except (OSError, ValueError):  # being written or removed: the next change reports it again
            continue
        rows += meta.num_rows
        names = [meta.schema.column(i).name for i in range(meta.num_columns)]
        stats: dict[str, list[tuple[Any, Any]]] = {}
        for rg in range(meta.num_row_groups):
            group = meta.row_group(rg)
            for name in ("event_timestamp", "kafka_partition", "kafka_offset"):
                if name in names:
                    s = group.column(names.index(name)).statistics
                    if s is not None and s.has_min_max:
                        stats.setdefault(name, []).append((s.min, s.max))
        if ts := stats.get("event_timestamp"):
            top = max(hi for _, hi in ts)
            top_s = top.timestamp() if isinstance(top, datetime) else float(top) / 1e6
            newest = top_s if newest is None else max(newest, top_s)
        parts, offs = stats.get("kafka_partition"), stats.get("kafka_offset")
        if parts and offs and min(lo for lo, _ in parts) == max(hi for _, hi in parts):
            p = int(parts[0][0])
            lo, hi = int(min(lo for lo, _ in offs)), int(max(hi for _, hi in offs))
            cur = offsets.get(p)
            offsets[p] = [min(cur[0], lo), max(cur[1], hi)] if cur else [lo, hi]
    return {"rows": rows, "newest_event": newest, "offsets": offsets}


def hour_metadata(dataset: str, fp: HourFingerprint, closed: bool, local: bool) -> dict[str, Any]:
    """What the UI shows (and plots) for one bronze hour."""
    meta: dict[str, Any] = {
        "files": fp.files,
        "bytes": fp.total_bytes,
        "newest_file_written": dg.MetadataValue.timestamp(fp.newest_mtime),
        "closed": closed,
        "fingerprint": fp.token,
        "reported_by": "bronze_report_sensor",
    }
    if local:
        summary = footer_summary(hour_partition_dir(dataset, fp.hour_start))
        meta["dagster/row_count"] = summary["rows"]
        meta["rows"] = summary["rows"]
        if summary["newest_event"] is not None:
            meta["newest_event_time"] = dg.MetadataValue.timestamp(summary["newest_event"])
        if summary["offsets"]:
            meta["kafka_offsets"] = dg.MetadataValue.json(
                {str(p): {"first": lo, "last": hi} for p, (lo, hi) in sorted(summary["offsets"].items())}
            )
    return meta


def _state(fp: HourFingerprint, closed: bool) -> str:
    return f"{fp.token}{'c' if closed else 'o'}"


def evaluate_bronze_report(
    context: dg.SensorEvaluationContext,
    lake: LakeResource,
    settings: SensorSettingsResource,
    now: datetime | None = None,
    s3: S3Resource | None = None,
) -> dg.SensorResult:
    now = now or datetime.now(timezone.utc)
    layout = lake.layout
    dataset = layout.bronze_events
    listing: LakeListing = listing_for(layout.root, s3)
    local = is_local(layout.root)
    try:
        doc = json.loads(context.cursor) if context.cursor else {}
    except json.JSONDecodeError:
        doc = {}
    if not isinstance(doc, dict) or doc.get("v") != CURSOR_VERSION:
        doc = {}
    reported: dict[str, str] = {str(k): str(v) for k, v in (doc.get("hours") or {}).items()}
    notes: list[str] = []
    skipped: list[str] = []

    closed_until = settings.closed_until(layout, listing, now, notes)
    first = HOURLY.start.astimezone(timezone.utc)
    lookback_start = max(
        first,
        (now - timedelta(hours=settings.late_lookback_hours)).replace(minute=0, second=0, microsecond=0),
    )
    recent_days = sorted(
        {f"{lookback_start + timedelta(days=i):%Y-%m-%d}" for i in range((now - lookback_start).days + 2)}
    )
    recent_days = [d for d in recent_days if d <= f"{now:%Y-%m-%d}"]
    recent = [h for h in hours_of_days(listing, dataset, recent_days, skipped) if h >= lookback_start]

    # Older history, a slice per tick: hours before the lookback are reported once (their state is final).
    scan = doc.get("scan") or f"{first:%Y-%m-%d}"
    limit_day = f"{lookback_start:%Y-%m-%d}"
    old: list[datetime] = []
    if scan < limit_day:
        days = [d for d in partition_days(listing, dataset) if scan <= d < limit_day]
        batch = days[: max(1, settings.history_days_per_tick)]
        old = [h for h in hours_of_days(listing, dataset, batch, skipped) if first <= h < lookback_start]
        scan = (
            f"{datetime.strptime(batch[-1], '%Y-%m-%d') + timedelta(days=1):%Y-%m-%d}"
            if len(days) > len(batch)
            else limit_day
        )

    fingerprints = listing.fingerprints(dataset, _unique([*old, *recent]))
    reports = 0
    for hour, fp in sorted(fingerprints.items()):
        key = _key(hour)
        closed = hour + HOUR <= closed_until
        state = _state(fp, closed)
        if reported.get(key) == state:
            continue
        if reports >= MAX_REPORTS_PER_TICK:
            if hour < lookback_start:  # come back to this day on the next tick
                scan = min(scan, f"{hour:%Y-%m-%d}")
            continue
        context.instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=BRONZE_EVENTS,
                partition=key,
                description="Bronze hour as the streaming job landed it (reported by bronze_report_sensor).",
                metadata=hour_metadata(dataset, fp, closed, local),
            )
        )
        reports += 1
        if hour >= lookback_start:
            reported[key] = state

    floor = _key(lookback_start)
    cursor = {
        "v": CURSOR_VERSION,
        "scan": scan,
        "hours": {k: v for k, v in sorted(reported.items()) if k >= floor},
    }
    if skipped:
        notes.append(f"skipped unusable directories: {', '.join(sorted(skipped)[:5])}")
    summary = f"bronze hours listed={len(fingerprints)} reported={reports} scan={scan}"
    context.log.info(summary + ("; " + "; ".join(notes) if notes else ""))
    return dg.SensorResult(
        skip_reason=None if reports else f"No bronze hour changed: {summary}",
        cursor=json.dumps(cursor, separators=(",", ":")),
    )


def _unique(hours: Iterable[datetime]) -> list[datetime]:
    return sorted(set(hours))


@dg.sensor(
    name="bronze_report_sensor",
    description="Records every bronze/events hour the streaming job lands (new rows, late rows, closed) "
    "as a runless materialisation with its files, bytes, rows, newest event time and Kafka offsets, "
    "so the UI's partitions and freshness of bronze reflect the lake. Requests no runs.",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def bronze_report_sensor(
    context: dg.SensorEvaluationContext,
    lake: LakeResource,
    sensor_settings: SensorSettingsResource,
    s3: S3Resource,
) -> dg.SensorResult:
    return evaluate_bronze_report(context, lake, sensor_settings, s3=s3)

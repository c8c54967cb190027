"""Sensor: run the hourly silver assets for every closed bronze hour that is new or received late rows.

Each tick lists the bronze hour directories (names only), fingerprints the closed hours that may still
change (never seen, or within ``late_lookback_hours``), and requests one run per hour whose fingerprint
differs from the one recorded in the cursor. The run key is ``<hour>:<fingerprint>``, so a repeated tick
or a restored cursor never launches the same work twice, while late rows (a new fingerprint) do launch
a new run. Hours the cursor does not know but that were already materialised after their newest bronze
file (by a backfill, or before a cursor reset) are adopted without a run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import dagster as dg
from dagster_aws.s3 import S3Resource

from iot_pipeline.assets.keys import SILVER_DEVICE_MINUTE_STATS, SILVER_EVENTS
from iot_pipeline.assets.partitions import HOURLY, HOURLY_FORMAT
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import SPARK_RUN_TAG
from iot_pipeline.sensors.history import latest_materializations
from iot_pipeline.sensors.settings import SensorSettingsResource
from iot_pipeline.storage.listing import HourFingerprint, listing_for

HOURLY_TARGET = dg.AssetSelection.assets(SILVER_EVENTS, SILVER_DEVICE_MINUTE_STATS)
HOUR = timedelta(hours=1)
CURSOR_VERSION = 1


def hour_key(hour_start: datetime) -> str:
    return hour_start.astimezone(timezone.utc).strftime(HOURLY_FORMAT)


@dataclass
class HourCursor:
    """Fingerprint token of every bronze hour a run was requested for (or adopted), by partition key."""

    hours: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: str | None) -> HourCursor:
        if not raw:
            return cls()
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError:
            return cls()
        if not isinstance(doc, dict) or doc.get("v") != CURSOR_VERSION:
            return cls()
        return cls(hours={str(k): str(v) for k, v in (doc.get("hours") or {}).items()})

    def dump(self) -> str:
        return json.dumps(
            {"v": CURSOR_VERSION, "hours": dict(sorted(self.hours.items()))}, separators=(",", ":")
        )


def hour_run_request(fp: HourFingerprint) -> dg.RunRequest:
    key = hour_key(fp.hour_start)
    return dg.RunRequest(
        partition_key=key,
        run_key=f"{key}:{fp.token}",
        tags={
            "iot/bronze_fingerprint": fp.token,
            "iot/bronze_files": str(fp.files),
            "iot/bronze_bytes": str(fp.total_bytes),
            SPARK_RUN_TAG: "hourly",
        },
    )


def evaluate_bronze_hours(
    context: dg.SensorEvaluationContext,
    lake: LakeResource,
    settings: SensorSettingsResource,
    now: datetime | None = None,
    s3: S3Resource | None = None,
) -> dg.SensorResult:
    now = now or datetime.now(timezone.utc)
    layout = lake.layout
    listing = listing_for(layout.root, s3)
    cursor = HourCursor.parse(context.cursor)

    closed_until = settings.closed_until(layout, listing, now)
    first = HOURLY.start.astimezone(timezone.utc)
    listed = [h for h in listing.hours(layout.bronze_events) if h >= first]
    hours = [h for h in listed if h + HOUR <= closed_until]
    recent = now - timedelta(hours=settings.late_lookback_hours)
    candidates = [h for h in hours if hour_key(h) not in cursor.hours or h >= recent]
    fingerprints = listing.fingerprints(layout.bronze_events, candidates)
    changed = [fp for h, fp in sorted(fingerprints.items()) if cursor.hours.get(hour_key(h)) != fp.token]

    # Adopt hours the cursor has never seen but that a run already materialised after their last write.
    unseen = [fp for fp in changed if hour_key(fp.hour_start) not in cursor.hours]
    done = latest_materializations(
        context.instance, SILVER_EVENTS, [hour_key(fp.hour_start) for fp in unseen]
    )
    adopted = [
        fp for fp in unseen if (m := done.get(hour_key(fp.hour_start))) and m.timestamp >= fp.newest_mtime
    ]
    for fp in adopted:
        cursor.hours[hour_key(fp.hour_start)] = fp.token
    todo = [fp for fp in changed if fp not in adopted][: settings.max_runs_per_tick]
    for fp in todo:
        cursor.hours[hour_key(fp.hour_start)] = fp.token

    open_hours = len(listed) - len(hours)
    context.log.info(
        f"bronze hours listed={len(hours)} closed_until={closed_until:%Y-%m-%dT%H:%M}Z "
        f"fingerprinted={len(candidates)} changed={len(changed)} adopted={len(adopted)} requested={len(todo)}"
    )
    if not todo:
        return dg.SensorResult(
            skip_reason=f"No closed bronze hour is new or changed (open hours: {open_hours}).",
            cursor=cursor.dump(),
        )
    return dg.SensorResult(run_requests=[hour_run_request(fp) for fp in todo], cursor=cursor.dump())


@dg.sensor(
    name="bronze_hours_sensor",
    description="Materialises silver/events and silver/device_minute_stats for each closed bronze hour "
    "that is new or received late rows (fingerprint = files, bytes, newest write).",
    target=HOURLY_TARGET,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def bronze_hours_sensor(
    context: dg.SensorEvaluationContext,
    lake: LakeResource,
    sensor_settings: SensorSettingsResource,
    s3: S3Resource,
) -> dg.SensorResult:
    return evaluate_bronze_hours(context, lake, sensor_settings, s3=s3)

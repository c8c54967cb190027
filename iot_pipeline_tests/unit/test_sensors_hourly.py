"""The bronze-hours sensor on real directories and a real (ephemeral) Dagster instance."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest
from dagster_aws.s3 import S3Resource

from iot_pipeline.assets.keys import SILVER_EVENTS
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.sensors import SENSORS
from iot_pipeline.sensors.hourly import HourCursor, bronze_hours_sensor
from iot_pipeline.sensors.settings import SensorSettingsResource
from iot_pipeline.storage.layout import LakeLayout, hour_partition_dir

HOUR = datetime(2026, 1, 5, 7, tzinfo=timezone.utc)


def land(
    root: Path, hour: datetime, name: str = "part-0000.parquet", size: int = 100, mtime: float | None = None
) -> Path:
    path = Path(hour_partition_dir(LakeLayout(str(root)).bronze_events, hour)) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def tick(root: Path, instance: dg.DagsterInstance, cursor: str | None = None, **settings) -> dg.SensorResult:
    context = dg.build_sensor_context(
        cursor=cursor,
        instance=instance,
        resources={
            "lake": LakeResource(root=str(root)),
            "sensor_settings": SensorSettingsResource(**settings),
            "s3": S3Resource(),  # unused: the lake is a local directory
        },
    )
    return bronze_hours_sensor(context)


@pytest.fixture()
def instance():
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def test_new_closed_hour_is_requested_once(tmp_path: Path, instance) -> None:
    land(tmp_path, HOUR)
    land(tmp_path, HOUR, "_SUCCESS")  # side files do not count
    land(tmp_path, HOUR + timedelta(hours=1), "part-0001.parquet")
    result = tick(tmp_path, instance)
    assert [r.partition_key for r in result.run_requests] == ["2026-01-05-07:00", "2026-01-05-08:00"]
    first = result.run_requests[0]
    token = HourCursor.parse(result.cursor).hours["2026-01-05-07:00"]
    assert first.run_key == f"2026-01-05-07:00:{token}"
    assert first.tags["iot/bronze_files"] == "1"


def test_nothing_new_keeps_the_cursor_stable(tmp_path: Path, instance) -> None:
    land(tmp_path, HOUR)
    cursor = tick(tmp_path, instance).cursor
    again = tick(tmp_path, instance, cursor)
    assert again.run_requests == []
    assert again.cursor == cursor
    assert "No closed bronze hour" in again.skip_reason.skip_message


def test_open_hour_waits_for_clock_or_watermark(tmp_path: Path, instance) -> None:
    previous = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    land(tmp_path, previous)
    # a grace so long that only the stream's watermark can close the hour
    assert tick(tmp_path, instance, grace_minutes=10**7).run_requests == []
    state = Path(LakeLayout(str(tmp_path)).stream_watermark)
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"watermark": (previous + timedelta(hours=1)).isoformat()}))
    result = tick(tmp_path, instance, grace_minutes=10**7)
    assert [r.partition_key for r in result.run_requests] == [previous.strftime("%Y-%m-%d-%H:%M")]


def test_a_watermark_ahead_of_the_clock_closes_nothing(tmp_path: Path, instance) -> None:
    current = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    land(tmp_path, current)
    assert tick(tmp_path, instance).run_requests == []  # wall clock: still open
    state = Path(LakeLayout(str(tmp_path)).stream_watermark)
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"watermark": (current + timedelta(hours=3)).isoformat()}))
    assert tick(tmp_path, instance).run_requests == []


def test_late_rows_request_the_hour_again_with_a_new_run_key(tmp_path: Path, instance) -> None:
    recent = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    land(tmp_path, recent, mtime=time.time() - 600)
    first = tick(tmp_path, instance)
    land(tmp_path, recent, "part-0007.parquet", size=40)  # the stream appends late rows as a new file
    second = tick(tmp_path, instance, first.cursor)
    assert [r.partition_key for r in second.run_requests] == [recent.strftime("%Y-%m-%d-%H:%M")]
    assert second.run_requests[0].run_key != first.run_requests[0].run_key
    assert second.run_requests[0].tags["iot/bronze_files"] == "2"
    assert tick(tmp_path, instance, second.cursor).run_requests == []


def test_hours_older_than_the_lookback_are_not_rescanned(tmp_path: Path, instance) -> None:
    land(tmp_path, HOUR)
    first = tick(tmp_path, instance)
    land(tmp_path, HOUR, "part-0007.parquet")
    assert tick(tmp_path, instance, first.cursor, late_lookback_hours=24).run_requests == []
    assert len(tick(tmp_path, instance, first.cursor, late_lookback_hours=10**6).run_requests) == 1


def test_restart_with_saved_cursor_requests_nothing_twice(tmp_path: Path, instance) -> None:
    land(tmp_path, HOUR)
    saved = tick(tmp_path, instance).cursor
    with dg.DagsterInstance.ephemeral() as restarted:
        assert tick(tmp_path, restarted, saved).run_requests == []


def test_lost_cursor_adopts_hours_already_materialised(tmp_path: Path, instance) -> None:
    land(tmp_path, HOUR, mtime=time.time() - 3600)
    land(tmp_path, HOUR + timedelta(hours=1), mtime=time.time() - 3600)
    instance.report_runless_asset_event(dg.AssetMaterialization(SILVER_EVENTS, partition="2026-01-05-07:00"))
    result = tick(tmp_path, instance, cursor=None)
    assert [r.partition_key for r in result.run_requests] == ["2026-01-05-08:00"]
    assert "2026-01-05-07:00" in HourCursor.parse(result.cursor).hours


def test_hours_before_the_partitions_start_and_garbage_dirs_are_ignored(tmp_path: Path, instance) -> None:
    land(tmp_path, datetime(2025, 12, 31, 23, tzinfo=timezone.utc))
    (tmp_path / "bronze" / "events" / "event_date=2026-01-05" / "not_an_hour").mkdir(parents=True)
    assert tick(tmp_path, instance).run_requests == []


def test_tick_budget_caps_requests_and_resumes(tmp_path: Path, instance) -> None:
    for i in range(5):
        land(tmp_path, HOUR + timedelta(hours=i))
    first = tick(tmp_path, instance, max_runs_per_tick=3)
    second = tick(tmp_path, instance, first.cursor, max_runs_per_tick=3)
    assert len(first.run_requests) == 3 and len(second.run_requests) == 2


def test_a_month_of_hours_ticks_fast(tmp_path: Path, instance) -> None:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for i in range(30 * 24):
        for n in range(3):
            land(tmp_path, start + timedelta(hours=i), f"part-{n}.parquet")
    began = time.perf_counter()
    cursor = tick(tmp_path, instance, max_runs_per_tick=1000).cursor
    first_tick = time.perf_counter() - began
    began = time.perf_counter()
    assert tick(tmp_path, instance, cursor).run_requests == []
    steady_tick = time.perf_counter() - began
    print(f"720 hours: first tick {first_tick:.2f}s, steady tick {steady_tick:.2f}s")
    assert first_tick < 10 and steady_tick < 5


def test_sensors_load_in_definitions() -> None:
    names = {s.name for s in SENSORS}
    assert {"bronze_hours_sensor", "daily_rollup_sensor"} <= names
    assert bronze_hours_sensor.minimum_interval_seconds == 30

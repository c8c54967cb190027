"""The daily roll-up sensor against real runs in an ephemeral Dagster instance and real bronze directories."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest
from dagster_aws.s3 import S3Resource

from iot_pipeline.assets.keys import SILVER_DEVICE_MINUTE_STATS, SILVER_EVENTS
from iot_pipeline.assets.partitions import HOURLY
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.sensors.daily import DayCursor, daily_rollup_sensor
from iot_pipeline.sensors.settings import SensorSettingsResource
from iot_pipeline.storage.layout import LakeLayout, hour_partition_dir

DAY = datetime(2026, 1, 5, tzinfo=timezone.utc)
FAIL_CHECK = {"on": False}


@dg.asset(key=SILVER_EVENTS, partitions_def=HOURLY)
def stub_events() -> None:
    """Stands in for the real asset: the sensor only reads the instance's event log."""


@dg.asset(key=SILVER_DEVICE_MINUTE_STATS, partitions_def=HOURLY, deps=[stub_events])
def stub_stats() -> None:
    pass


@dg.asset_check(asset=SILVER_EVENTS, blocking=True)
def stub_unique_event_id() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=not FAIL_CHECK["on"])


def hour(i: int) -> datetime:
    return DAY + timedelta(hours=i)


def key(h: datetime) -> str:
    return h.strftime("%Y-%m-%d-%H:%M")


def land(root: Path, h: datetime) -> None:
    d = Path(hour_partition_dir(LakeLayout(str(root)).bronze_events, h))
    d.mkdir(parents=True, exist_ok=True)
    (d / "part-0.parquet").write_bytes(b"x")


def run_hour(instance: dg.DagsterInstance, h: datetime, *, fail: bool = False) -> bool:
    FAIL_CHECK["on"] = fail
    result = dg.materialize(
        [stub_events, stub_stats, stub_unique_event_id],
        partition_key=key(h),
        instance=instance,
        raise_on_error=False,
    )
    return result.success


def tick(root: Path, instance: dg.DagsterInstance, cursor: str | None = None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        cursor=cursor,
        instance=instance,
        resources={
            "lake": LakeResource(root=str(root)),
            "sensor_settings": SensorSettingsResource(),
            "s3": S3Resource(),
        },
    )
    return daily_rollup_sensor(context)


@pytest.fixture()
def instance():
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def test_day_runs_once_every_hour_with_data_is_materialised(tmp_path: Path, instance) -> None:
    for i in (0, 1, 5):  # a stream with quiet hours: only these hours have bronze data
        land(tmp_path, hour(i))
    run_hour(instance, hour(0))
    run_hour(instance, hour(1))
    waiting = tick(tmp_path, instance)
    assert waiting.run_requests == []
    assert "2026-01-05-05:00" in waiting.skip_reason.skip_message
    assert DayCursor.parse(waiting.cursor).pending == {"2026-01-05"}

    run_hour(instance, hour(5))
    ready = tick(tmp_path, instance, waiting.cursor)
    assert [r.partition_key for r in ready.run_requests] == ["2026-01-05"]
    assert ready.run_requests[0].run_key.startswith("2026-01-05:")

    quiet = tick(tmp_path, instance, ready.cursor)
    assert quiet.run_requests == [] and quiet.cursor == ready.cursor


def test_rematerialised_hour_reruns_its_day_with_a_new_run_key(tmp_path: Path, instance) -> None:
    land(tmp_path, hour(3))
    run_hour(instance, hour(3))
    first = tick(tmp_path, instance)
    run_hour(instance, hour(3))  # late rows arrived; the hourly sensor re-ran the hour
    second = tick(tmp_path, instance, first.cursor)
    assert [r.partition_key for r in second.run_requests] == ["2026-01-05"]
    assert second.run_requests[0].run_key != first.run_requests[0].run_key


def test_failed_blocking_check_in_an_hour_holds_the_day(tmp_path: Path, instance) -> None:
    land(tmp_path, hour(0))
    land(tmp_path, hour(1))
    assert run_hour(instance, hour(0))
    assert not run_hour(instance, hour(1), fail=True)
    blocked = tick(tmp_path, instance)
    assert blocked.run_requests == []
    assert "2026-01-05-01:00" in blocked.skip_reason.skip_message
    assert run_hour(instance, hour(1))  # the hour is fixed and re-run: the day follows
    assert [r.partition_key for r in tick(tmp_path, instance, blocked.cursor).run_requests] == ["2026-01-05"]


def test_open_day_is_not_requested(tmp_path: Path, instance) -> None:
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    land(tmp_path, today)
    run_hour(instance, today)
    result = tick(tmp_path, instance)
    assert result.run_requests == []
    assert DayCursor.parse(result.cursor).pending == {today.strftime("%Y-%m-%d")}

"""The daily roll-up sensor against real runs in an ephemeral Dagster instance and real bronze directories."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest
from dagster import DagsterRunStatus
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from dagster_aws.s3 import S3Resource

from iot_pipeline.assets.keys import (
    GOLD_DAILY_DEVICE_TYPE_SUMMARY,
    GOLD_DAILY_EVENT_DURATION_P95,
    SILVER_DEVICE_MINUTE_STATS,
    SILVER_EVENTS,
)
from iot_pipeline.assets.partitions import DAILY, HOURLY
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.sensors.daily import DayCursor, daily_rollup_sensor, evaluate_days
from iot_pipeline.sensors.lake_sensor import Tick
from iot_pipeline.sensors.requests import DAY_TAG, REQUEST_TAG
from iot_pipeline.sensors.settings import SensorSettingsResource
from iot_pipeline.storage.layout import LakeLayout, hour_partition_dir

DAY = datetime(2026, 1, 5, tzinfo=timezone.utc)
NOW = datetime.now(timezone.utc)
FAIL_CHECK = {"on": False}
FAIL_DAY = {"on": False}


@dg.asset(key=SILVER_EVENTS, partitions_def=HOURLY)
def stub_events() -> None:
    """Stands in for the real asset: the sensor only reads the instance's event log."""


@dg.asset(key=SILVER_DEVICE_MINUTE_STATS, partitions_def=HOURLY, deps=[stub_events])
def stub_stats() -> None:
    pass


@dg.asset_check(asset=SILVER_EVENTS, blocking=True)
def stub_unique_event_id() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=not FAIL_CHECK["on"])


@dg.asset(
    key=GOLD_DAILY_EVENT_DURATION_P95,
    partitions_def=DAILY,
    deps=[stub_events],
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def stub_p95() -> None:
    if FAIL_DAY["on"]:
        raise RuntimeError("the day's run failed")


@dg.asset(
    key=GOLD_DAILY_DEVICE_TYPE_SUMMARY,
    partitions_def=DAILY,
    deps=[stub_events],
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def stub_summary() -> None:
    pass


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


def partitions(request: dg.RunRequest) -> list[str]:
    if request.asset_graph_subset is None:
        return [request.partition_key]
    subset = request.asset_graph_subset.partitions_subsets_by_asset_key[GOLD_DAILY_EVENT_DURATION_P95]
    return sorted(subset.get_partition_keys())


def run_day(instance: dg.DagsterInstance, request: dg.RunRequest, *, fail: bool = False) -> bool:
    """Execute the sensor's request in the instance with the tags the daemon would give its run."""
    FAIL_DAY["on"] = fail
    keys = partitions(request)
    tags = dict(request.tags)
    if len(keys) > 1:
        tags |= {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}
    result = dg.materialize(
        [stub_events.to_source_asset(), stub_p95, stub_summary],
        partition_key=keys[0] if len(keys) == 1 else None,
        tags=tags,
        instance=instance,
        raise_on_error=False,
    )
    return result.success


def tick(
    root: Path, instance: dg.DagsterInstance, cursor: str | None = None, now: datetime | None = None
) -> dg.SensorResult:
    context = dg.build_sensor_context(
        cursor=cursor,
        instance=instance,
        resources={
            "lake": LakeResource(root=str(root)),
            "sensor_settings": SensorSettingsResource(),
            "s3": S3Resource(),
        },
    )
    if now is not None:
        return evaluate_days(context, Tick(LakeResource(root=str(root)), SensorSettingsResource(), now))
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
    request = ready.run_requests[0]
    assert request.run_key == request.tags[REQUEST_TAG] and request.tags[DAY_TAG] == "2026-01-05"

    in_flight = tick(tmp_path, instance, ready.cursor)
    assert in_flight.run_requests == []
    assert run_day(instance, request)
    done = tick(tmp_path, instance, in_flight.cursor)
    quiet = tick(tmp_path, instance, done.cursor)
    assert done.run_requests == quiet.run_requests == [] and quiet.cursor == done.cursor
    assert DayCursor.parse(quiet.cursor).requests == []


def test_rematerialised_hour_reruns_its_day_after_the_settle_interval(tmp_path: Path, instance) -> None:
    land(tmp_path, hour(3))
    run_hour(instance, hour(3))
    first = tick(tmp_path, instance, now=NOW)
    assert run_day(instance, first.run_requests[0])
    run_hour(instance, hour(3))  # late rows arrived; the hourly sensor re-ran the hour
    settling = tick(tmp_path, instance, first.cursor, now=NOW + timedelta(minutes=1))
    assert settling.run_requests == [] and "settling" in settling.skip_reason.skip_message
    second = tick(tmp_path, instance, settling.cursor, now=NOW + timedelta(minutes=11))
    assert [r.partition_key for r in second.run_requests] == ["2026-01-05"]
    assert second.run_requests[0].run_key != first.run_requests[0].run_key


def test_failed_blocking_check_in_an_hour_holds_the_day_until_it_is_fixed(tmp_path: Path, instance) -> None:
    land(tmp_path, hour(0))
    land(tmp_path, hour(1))
    assert run_hour(instance, hour(0))
    assert not run_hour(instance, hour(1), fail=True)
    blocked = tick(tmp_path, instance)
    assert blocked.run_requests == []
    assert "2026-01-05-01:00" in blocked.skip_reason.skip_message
    still = tick(tmp_path, instance, blocked.cursor)  # the day is kept, not dropped
    assert DayCursor.parse(still.cursor).pending == {"2026-01-05"}
    assert run_hour(instance, hour(1))  # the hour is fixed and re-run: the day follows
    assert [r.partition_key for r in tick(tmp_path, instance, still.cursor).run_requests] == ["2026-01-05"]


def test_a_failed_day_run_is_requested_again(tmp_path: Path, instance) -> None:
    land(tmp_path, hour(2))
    run_hour(instance, hour(2))
    first = tick(tmp_path, instance, now=NOW)
    assert not run_day(instance, first.run_requests[0], fail=True)
    failed = tick(tmp_path, instance, first.cursor, now=NOW + timedelta(minutes=1))
    assert failed.run_requests == [] and "failed" in failed.skip_reason.skip_message
    back = tick(tmp_path, instance, failed.cursor, now=NOW + timedelta(minutes=31))
    again = tick(tmp_path, instance, back.cursor, now=NOW + timedelta(minutes=32))
    requested = [r.partition_key for r in (back.run_requests or []) + (again.run_requests or [])]
    assert requested == ["2026-01-05"]


def test_an_hourly_run_in_flight_holds_its_day(tmp_path: Path, instance) -> None:
    land(tmp_path, hour(4))
    run_hour(instance, hour(4))
    job = dg.Definitions(assets=[stub_events, stub_stats]).resolve_implicit_global_asset_job_def()
    late = instance.create_run_for_job(
        job, status=DagsterRunStatus.NOT_STARTED, tags={"dagster/partition": key(hour(4))}
    )
    held = tick(tmp_path, instance)
    assert held.run_requests == [] and "hourly runs in flight" in held.skip_reason.skip_message
    instance.report_run_canceled(late)
    assert [r.partition_key for r in tick(tmp_path, instance, held.cursor).run_requests] == ["2026-01-05"]


def test_days_ready_together_are_one_backfill(tmp_path: Path, instance) -> None:
    for d in range(3):
        land(tmp_path, hour(24 * d))
        run_hour(instance, hour(24 * d))
    (request,) = tick(tmp_path, instance).run_requests
    assert request.asset_graph_subset is not None
    assert partitions(request) == ["2026-01-05", "2026-01-06", "2026-01-07"]
    assert set(request.asset_graph_subset.asset_keys) == {
        GOLD_DAILY_EVENT_DURATION_P95,
        GOLD_DAILY_DEVICE_TYPE_SUMMARY,
    }


def test_open_day_is_not_requested(tmp_path: Path, instance) -> None:
    # A fixed clock three hours into the day: with the real one, the day's first hour is still open
    # (not yet a partition) during the first hour of every UTC day.
    land(tmp_path, hour(0))
    run_hour(instance, hour(0))
    result = tick(tmp_path, instance, now=hour(3))
    assert result.run_requests == []
    assert DayCursor.parse(result.cursor).pending == {DAY.strftime("%Y-%m-%d")}


def test_a_failed_day_run_follows_a_fixed_hour_at_once(tmp_path: Path, instance) -> None:
    land(tmp_path, hour(2))
    run_hour(instance, hour(2))
    first = tick(tmp_path, instance, now=NOW)
    assert not run_day(instance, first.run_requests[0], fail=True)
    failed = tick(tmp_path, instance, first.cursor, now=NOW + timedelta(minutes=1))
    assert failed.run_requests == []
    run_hour(instance, hour(2))  # the hour was re-run (fixed): no need to wait for the back-off
    fixed = tick(tmp_path, instance, failed.cursor, now=NOW + timedelta(minutes=12))
    assert [r.partition_key for r in fixed.run_requests] == ["2026-01-05"]


def test_a_tick_checks_a_bounded_number_of_pending_days_in_turn(tmp_path: Path, instance) -> None:
    for d in range(5):
        land(tmp_path, hour(24 * d))
        land(tmp_path, hour(24 * d + 1))  # never materialised: every day waits
        run_hour(instance, hour(24 * d))
    context = dg.build_sensor_context(instance=instance, resources={"s3": S3Resource()})
    settings = SensorSettingsResource(max_days_per_tick=2)
    seen: list[str] = []
    cursor = None
    for _ in range(3):
        context = dg.build_sensor_context(instance=instance, cursor=cursor)
        result = evaluate_days(context, Tick(LakeResource(root=str(tmp_path)), settings))
        cursor = result.cursor
        seen.append(DayCursor.parse(cursor).rotate)
        assert "more pending day(s)" in result.skip_reason.skip_message
    assert seen == ["2026-01-08", "2026-01-06", "2026-01-09"]  # two per tick, newest first, wrapping

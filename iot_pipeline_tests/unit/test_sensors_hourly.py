"""The bronze-hours sensor on real directories and a real (ephemeral) Dagster instance.

The runs a tick requests are executed for real in the instance (stub assets with the silver keys, so
no Spark): the sensor learns their outcome only from the instance, as it does under the daemon.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest
from dagster import DagsterRunStatus
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from dagster_aws.s3 import S3Resource

from iot_pipeline.assets.keys import (
    GOLD_DAILY_EVENT_DURATION_P95,
    SILVER_DEVICE_MINUTE_STATS,
    SILVER_EVENT_ID_INDEX,
    SILVER_EVENTS,
)
from iot_pipeline.assets.partitions import DAILY, HOURLY
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.sensors import SENSORS
from iot_pipeline.sensors.hourly import HourCursor, bronze_hours_sensor, evaluate_bronze_hours
from iot_pipeline.sensors.lake_sensor import Tick
from iot_pipeline.sensors.requests import DAY_TAG, REQUEST_TAG
from iot_pipeline.sensors.settings import SensorSettingsResource
from iot_pipeline.storage.layout import LakeLayout, hour_partition_dir

NOW = datetime.now(timezone.utc).replace(minute=30, second=0, microsecond=0)
RECENT = NOW.replace(minute=0) - timedelta(hours=5)  # closed, inside the late-data lookback
OLD = datetime(2026, 1, 5, 7, tzinfo=timezone.utc)  # older than the lookback
FAIL = {"on": False}


@dg.asset(key=SILVER_EVENTS, partitions_def=HOURLY, backfill_policy=dg.BackfillPolicy.single_run())
def stub_events() -> None:
    """Stands in for the real asset: the sensor only reads the instance."""


@dg.asset(
    key=SILVER_DEVICE_MINUTE_STATS,
    partitions_def=HOURLY,
    deps=[stub_events],
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def stub_stats() -> None:
    pass


@dg.asset_check(asset=SILVER_EVENTS, blocking=True)
def stub_contract() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=not FAIL["on"])


def key(h: datetime) -> str:
    return h.strftime("%Y-%m-%d-%H:%M")


def land(
    root: Path, hour: datetime, name: str = "part-0000.parquet", size: int = 100, mtime: float | None = None
) -> Path:
    path = Path(hour_partition_dir(LakeLayout(str(root)).bronze_events, hour)) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def context(root: Path, instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorEvaluationContext:
    return dg.build_sensor_context(
        cursor=cursor,
        instance=instance,
        resources={
            "lake": LakeResource(root=str(root)),
            "sensor_settings": SensorSettingsResource(),
            "s3": S3Resource(),  # unused: the lake is a local directory
        },
    )


def tick(root: Path, instance: dg.DagsterInstance, cursor: str | None = None, **settings) -> dg.SensorResult:
    if "now" in settings:
        now = settings.pop("now")
        ctx = context(root, instance, cursor)
        return evaluate_bronze_hours(
            ctx, Tick(LakeResource(root=str(root)), SensorSettingsResource(**settings), now)
        )
    ctx = dg.build_sensor_context(
        cursor=cursor,
        instance=instance,
        resources={
            "lake": LakeResource(root=str(root)),
            "sensor_settings": SensorSettingsResource(**settings),
            "s3": S3Resource(),
        },
    )
    return bronze_hours_sensor(ctx)


def partitions(request: dg.RunRequest) -> list[str]:
    if request.asset_graph_subset is None:
        return [request.partition_key]
    subset = request.asset_graph_subset.partitions_subsets_by_asset_key[SILVER_EVENTS]
    return sorted(subset.get_partition_keys())


def execute(instance: dg.DagsterInstance, request: dg.RunRequest, *, fail: bool = False) -> bool:
    """Run what the sensor asked for in the instance, with the tags the daemon would give the run."""
    FAIL["on"] = fail
    keys = partitions(request)
    tags = dict(request.tags)
    if request.asset_graph_subset is not None:  # one run over the range, as a single-run backfill does
        tags |= {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}
    result = dg.materialize(
        [stub_events, stub_stats, stub_contract],
        partition_key=keys[0] if request.asset_graph_subset is None else None,
        tags=tags,
        instance=instance,
        raise_on_error=False,
    )
    return result.success


@pytest.fixture()
def instance():
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def test_lone_closed_hours_are_runs_and_a_range_is_one_backfill(tmp_path: Path, instance) -> None:
    for h in (RECENT - timedelta(hours=3), RECENT - timedelta(hours=1), RECENT):
        land(tmp_path, h)
    land(tmp_path, RECENT, "_SUCCESS")  # side files do not count
    result = tick(tmp_path, instance)
    assert [partitions(r) for r in result.run_requests] == [
        [key(RECENT - timedelta(hours=3))],
        [key(RECENT - timedelta(hours=1)), key(RECENT)],
    ]
    lone, ranged = result.run_requests
    assert lone.run_key == lone.tags[REQUEST_TAG] and lone.tags["iot/bronze_files"] == "1"
    assert not lone.run_config  # the code location's in-process executor: one Spark session per run
    assert lone.tags[DAY_TAG] == key(RECENT - timedelta(hours=3))[:10]
    assert ranged.asset_graph_subset is not None and ranged.run_key is None
    assert set(ranged.asset_graph_subset.asset_keys) == {
        SILVER_EVENTS,
        SILVER_EVENT_ID_INDEX,
        SILVER_DEVICE_MINUTE_STATS,
    }


def test_nothing_new_keeps_the_cursor_stable(tmp_path: Path, instance) -> None:
    land(tmp_path, RECENT)
    first = tick(tmp_path, instance)
    assert execute(instance, first.run_requests[0])
    done = tick(tmp_path, instance, first.cursor)
    again = tick(tmp_path, instance, done.cursor)
    assert done.run_requests == again.run_requests == []
    assert again.cursor == done.cursor
    assert "No closed bronze hour is due" in again.skip_reason.skip_message


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


def test_late_rows_wait_for_the_run_in_flight_then_settle(tmp_path: Path, instance) -> None:
    """At most one request per hour in flight; late rows re-run it once per settle interval."""
    land(tmp_path, RECENT, mtime=time.time() - 600)
    first = tick(tmp_path, instance, now=NOW)
    land(tmp_path, RECENT, "part-0007.parquet", size=40)  # the stream appends late rows as a new file
    while_queued = tick(tmp_path, instance, first.cursor, now=NOW + timedelta(minutes=1))
    assert while_queued.run_requests == []  # its run has not even started: coalesced
    assert "in_flight=1" in while_queued.skip_reason.skip_message

    assert execute(instance, first.run_requests[0])  # the run read the hour before the late file
    settling = tick(tmp_path, instance, while_queued.cursor, now=NOW + timedelta(minutes=2))
    assert settling.run_requests == [] and "settling=1" in settling.skip_reason.skip_message

    settled = tick(tmp_path, instance, settling.cursor, now=NOW + timedelta(minutes=11))
    assert [r.partition_key for r in settled.run_requests] == [key(RECENT)]
    assert settled.run_requests[0].tags["iot/bronze_files"] == "2"
    assert settled.run_requests[0].run_key != first.run_requests[0].run_key


def test_a_run_elsewhere_on_the_hour_or_its_day_holds_the_request(tmp_path: Path, instance) -> None:
    """Runs launched from the UI or the CLI count too: an unfinished run of the hour, or of its day."""
    land(tmp_path, RECENT)

    @dg.asset(key=GOLD_DAILY_EVENT_DURATION_P95, partitions_def=DAILY, deps=[stub_events])
    def stub_day() -> None:
        pass

    defs = dg.Definitions(
        assets=[stub_events, stub_stats, stub_day],
        jobs=[
            dg.define_asset_job("hour", [SILVER_EVENTS], partitions_def=HOURLY),
            dg.define_asset_job("day", [GOLD_DAILY_EVENT_DURATION_P95], partitions_def=DAILY),
        ],
    )
    for job, partition in (("hour", key(RECENT)), ("day", key(RECENT)[:10])):
        elsewhere = instance.create_run_for_job(
            defs.resolve_job_def(job),
            status=DagsterRunStatus.NOT_STARTED,
            tags={"dagster/partition": partition},
        )
        held = tick(tmp_path, instance)
        assert held.run_requests == [] and "in_flight=1" in held.skip_reason.skip_message
        instance.report_run_canceled(elsewhere)
    assert [r.partition_key for r in tick(tmp_path, instance).run_requests] == [key(RECENT)]


def test_an_hour_is_done_only_when_its_run_succeeded(tmp_path: Path, instance) -> None:
    land(tmp_path, RECENT, mtime=time.time() - 600)
    first = tick(tmp_path, instance, now=NOW)
    assert not execute(instance, first.run_requests[0], fail=True)  # a blocking check failed the run
    failed = tick(tmp_path, instance, first.cursor, now=NOW + timedelta(minutes=1))
    assert failed.run_requests == [] and "failed=1" in failed.skip_reason.skip_message
    assert HourCursor.parse(failed.cursor).done(key(RECENT)) == ""

    retried = tick(tmp_path, instance, failed.cursor, now=NOW + timedelta(minutes=31))
    assert [r.partition_key for r in retried.run_requests] == [key(RECENT)]
    assert execute(instance, retried.run_requests[0])
    done = tick(tmp_path, instance, retried.cursor, now=NOW + timedelta(minutes=32))
    assert done.run_requests == [] and HourCursor.parse(done.cursor).done(key(RECENT)) != ""
    assert HourCursor.parse(done.cursor).requests == []


def test_a_failed_hour_is_requested_at_once_when_its_data_is_fixed(tmp_path: Path, instance) -> None:
    bad = land(tmp_path, RECENT, mtime=time.time() - 600)
    first = tick(tmp_path, instance, now=NOW)
    assert not execute(instance, first.run_requests[0], fail=True)
    bad.unlink()
    land(tmp_path, RECENT, "part-fixed.parquet", size=77)
    fixed = tick(tmp_path, instance, first.cursor, now=NOW + timedelta(minutes=1))
    assert [r.partition_key for r in fixed.run_requests] == [key(RECENT)]


def test_a_retry_by_dagster_keeps_the_request_in_flight(tmp_path: Path, instance) -> None:
    land(tmp_path, RECENT)
    first = tick(tmp_path, instance)
    assert not execute(instance, first.run_requests[0], fail=True)
    (run,) = instance.get_runs(dg.RunsFilter(tags={REQUEST_TAG: first.run_requests[0].tags[REQUEST_TAG]}))
    instance.add_run_tags(run.run_id, {"dagster/will_retry": "true"})
    nothing = tick(tmp_path, instance, first.cursor)
    assert nothing.run_requests == [] and "in_flight=1" in nothing.skip_reason.skip_message


def test_history_is_caught_up_in_slices_as_backfills(tmp_path: Path, instance) -> None:
    """A new instance over an old lake: never-materialised old hours become ranged backfills."""
    for day in range(3):
        for h in range(24):
            land(tmp_path, OLD.replace(hour=0) + timedelta(days=day, hours=h))
    instance.report_runless_asset_event(dg.AssetMaterialization(SILVER_EVENTS, partition="2026-01-06-05:00"))
    requested: list[list[str]] = []
    cursor = None
    for _ in range(4):
        result = tick(tmp_path, instance, cursor, history_days_per_tick=2)
        requested += [partitions(r) for r in result.run_requests]
        cursor = result.cursor
    assert [(r[0], r[-1]) for r in requested] == [
        ("2026-01-05-00:00", "2026-01-06-04:00"),
        ("2026-01-06-06:00", "2026-01-06-23:00"),
        ("2026-01-07-00:00", "2026-01-07-23:00"),
    ]
    assert HourCursor.parse(cursor).scan >= f"{NOW - timedelta(days=7):%Y-%m-%d}"


def test_restart_with_saved_cursor_requests_nothing_twice(tmp_path: Path, instance) -> None:
    land(tmp_path, RECENT)
    first = tick(tmp_path, instance)
    assert execute(instance, first.run_requests[0])
    saved = tick(tmp_path, instance, first.cursor).cursor
    with dg.DagsterInstance.ephemeral() as restarted:
        assert tick(tmp_path, restarted, saved).run_requests == []


def test_lost_cursor_adopts_hours_already_materialised(tmp_path: Path, instance) -> None:
    land(tmp_path, RECENT, mtime=time.time() - 3600)
    land(tmp_path, RECENT + timedelta(hours=2), mtime=time.time() - 3600)
    instance.report_runless_asset_event(dg.AssetMaterialization(SILVER_EVENTS, partition=key(RECENT)))
    result = tick(tmp_path, instance, cursor=None)
    assert [r.partition_key for r in result.run_requests] == [key(RECENT + timedelta(hours=2))]
    assert HourCursor.parse(result.cursor).done(key(RECENT)) != ""


def test_hours_before_the_partitions_start_and_garbage_dirs_are_ignored(tmp_path: Path, instance) -> None:
    land(tmp_path, datetime(2025, 12, 31, 23, tzinfo=timezone.utc))
    (tmp_path / "bronze" / "events" / f"event_date={RECENT:%Y-%m-%d}" / "not_an_hour").mkdir(parents=True)
    assert tick(tmp_path, instance).run_requests == []


def test_tick_budget_caps_requests_and_resumes(tmp_path: Path, instance) -> None:
    for i in range(5):
        land(tmp_path, RECENT - timedelta(hours=2 * i))  # five lone hours: five runs
    first = tick(tmp_path, instance, max_runs_per_tick=3)
    second = tick(tmp_path, instance, first.cursor, max_runs_per_tick=3)
    assert len(first.run_requests) == 3 and len(second.run_requests) == 2


def test_tick_cost_and_cursor_stay_bounded_over_two_months(tmp_path: Path, instance) -> None:
    start = (NOW - timedelta(days=60)).replace(minute=0)
    hours = [start + timedelta(hours=i) for i in range(60 * 24) if start + timedelta(hours=i) < RECENT]
    for h in hours:
        for n in range(3):
            land(tmp_path, h, f"part-{n}.parquet", mtime=time.time() - 3600)
    cursor, ticks = None, []
    for _ in range(4):
        began = time.perf_counter()
        result = tick(tmp_path, instance, cursor)
        ticks.append(time.perf_counter() - began)
        for request in result.run_requests:
            assert execute(instance, request)
        cursor = result.cursor
    began = time.perf_counter()
    steady = tick(tmp_path, instance, cursor)
    steady_s = time.perf_counter() - began
    print(
        f"{len(hours)} hours: ticks {[round(x, 2) for x in ticks]}s, steady {steady_s:.2f}s, cursor {len(steady.cursor)} B"
    )
    assert steady.run_requests == []
    # Seconds are the benchmark's to measure (benchmarks/sensor_tick.py): on a loaded CI machine a
    # timed assertion fails for reasons that are not the sensor's. The cursor's bound is exact.
    assert len(steady.cursor) < 16_000


def test_sensors_load_in_definitions() -> None:
    names = {s.name for s in SENSORS}
    assert {"bronze_hours_sensor", "daily_rollup_sensor"} <= names
    assert bronze_hours_sensor.minimum_interval_seconds == 30

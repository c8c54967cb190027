"""The bronze report sensor on real Parquet hours and a real (ephemeral) Dagster instance.

What the UI shows for ``bronze/events`` is what the instance holds, so every assertion reads the
instance: which hour partitions are materialised, and with what metadata.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from dagster_aws.s3 import S3Resource

from iot_pipeline.assets.keys import BRONZE_EVENTS
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.sensors import SENSORS
from iot_pipeline.sensors.bronze_report import bronze_report_sensor, evaluate_bronze_report
from iot_pipeline.sensors.lake_sensor import Tick
from iot_pipeline.sensors.settings import SensorSettingsResource
from iot_pipeline.storage.layout import LakeLayout, hour_partition_dir

NOW = datetime.now(timezone.utc).replace(minute=30, second=0, microsecond=0)
RECENT = NOW.replace(minute=0) - timedelta(hours=3)  # closed (grace 15 min), inside the lookback
OPEN = NOW.replace(minute=0)  # the current hour: not closed yet
OLD = datetime(2026, 1, 5, 7, tzinfo=timezone.utc)  # older than the lookback: history


def key(h: datetime) -> str:
    return h.strftime("%Y-%m-%d-%H:%M")


def land(root: Path, hour: datetime, batch: int, kafka_partition: int, offsets: range) -> None:
    """One micro-batch file as the stream writes it (one Kafka partition per file)."""
    n = len(offsets)
    base = hour + timedelta(minutes=1)
    table = pa.table(
        {
            "event_id": [f"e{batch}-{i}" for i in range(n)],
            "event_timestamp": pa.array(
                [base + timedelta(seconds=i) for i in range(n)], pa.timestamp("us", tz="UTC")
            ),
            "kafka_partition": pa.array([kafka_partition] * n, pa.int32()),
            "kafka_offset": pa.array(list(offsets), pa.int64()),
        }
    )
    directory = Path(hour_partition_dir(LakeLayout(str(root)).bronze_events, hour)) / f"ingest_batch={batch}"
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, directory / f"part-{kafka_partition:05d}.snappy.parquet")


def tick(root: Path, instance: dg.DagsterInstance, cursor: str | None, now: datetime = NOW) -> str:
    ctx = dg.build_sensor_context(
        cursor=cursor,
        instance=instance,
        resources={
            "lake": LakeResource(root=str(root)),
            "sensor_settings": SensorSettingsResource(),
            "s3": S3Resource(),  # unused: local lake
        },
    )
    result = evaluate_bronze_report(ctx, Tick(LakeResource(root=str(root)), SensorSettingsResource(), now))
    assert not result.run_requests
    return result.cursor


def reports(instance: dg.DagsterInstance) -> list[dg.AssetMaterialization]:
    records = instance.fetch_materializations(BRONZE_EVENTS, limit=1000).records
    return [r.asset_materialization for r in reversed(records)]


def test_hours_are_reported_once_per_change_with_footer_metadata(tmp_path: Path) -> None:
    land(tmp_path, RECENT, 0, 0, range(100, 150))
    land(tmp_path, RECENT, 0, 1, range(7, 17))
    land(tmp_path, OPEN, 0, 2, range(0, 5))
    land(tmp_path, OLD, 0, 0, range(0, 20))
    with dg.instance_for_test() as instance:
        cursor = tick(tmp_path, instance, None)
        first = reports(instance)
        assert sorted(m.partition for m in first) == sorted([key(OLD), key(RECENT), key(OPEN)])
        assert instance.get_materialized_partitions(BRONZE_EVENTS) == {key(OLD), key(RECENT), key(OPEN)}
        recent = next(m for m in first if m.partition == key(RECENT))
        meta = {k: v.value for k, v in recent.metadata.items()}
        assert meta["rows"] == meta["dagster/row_count"] == 60
        assert meta["files"] == 2
        assert meta["closed"] is True
        assert meta["kafka_offsets"] == {"0": {"first": 100, "last": 149}, "1": {"first": 7, "last": 16}}
        newest = (RECENT + timedelta(minutes=1, seconds=49)).timestamp()
        assert meta["newest_event_time"] == newest
        assert {k: v.value for k, v in next(m for m in first if m.partition == key(OPEN)).metadata.items()}[
            "closed"
        ] is False

        # Nothing changed: nothing reported (idempotent), and history is not scanned again.
        cursor = tick(tmp_path, instance, cursor)
        assert len(reports(instance)) == 3
        assert json.loads(cursor)["scan"] == f"{NOW - timedelta(hours=168):%Y-%m-%d}"

        # Late rows in a closed hour, and the open hour closing: each reported once more.
        land(tmp_path, RECENT, 1, 0, range(150, 160))
        later = NOW + timedelta(hours=1)
        cursor = tick(tmp_path, instance, cursor, now=later)
        new = reports(instance)[3:]
        assert sorted(m.partition for m in new) == sorted([key(RECENT), key(OPEN)])
        late = next(m for m in new if m.partition == key(RECENT))
        assert late.metadata["rows"].value == 70
        assert late.metadata["kafka_offsets"].value["0"] == {"first": 100, "last": 159}
        assert next(m for m in new if m.partition == key(OPEN)).metadata["closed"].value is True
        tick(tmp_path, instance, cursor, now=later)
        assert len(reports(instance)) == 5


def test_a_lost_cursor_reports_recent_hours_again_but_an_empty_lake_nothing(tmp_path: Path) -> None:
    with dg.instance_for_test() as instance:
        tick(tmp_path, instance, None)  # no bronze directory at all
        assert reports(instance) == []
        land(tmp_path, RECENT, 0, 0, range(3))
        tick(tmp_path, instance, "not json")
        assert [m.partition for m in reports(instance)] == [key(RECENT)]


def test_sensor_is_registered_and_requests_no_runs() -> None:
    assert bronze_report_sensor in SENSORS
    assert bronze_report_sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert not bronze_report_sensor.targets


def test_bronze_silver_and_the_daily_p95_carry_freshness_policies() -> None:
    """The UI shows these; bronze's window is what a running stream keeps fresh through the reports."""
    from datetime import timedelta as td

    from iot_pipeline.assets.keys import GOLD_DAILY_EVENT_DURATION_P95, SILVER_EVENTS
    from iot_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    bronze = graph.get(BRONZE_EVENTS).freshness_policy
    p95 = graph.get(GOLD_DAILY_EVENT_DURATION_P95).freshness_policy
    assert (bronze.fail_window.to_timedelta(), bronze.warn_window.to_timedelta()) == (
        td(minutes=30),
        td(minutes=10),
    )
    assert (p95.deadline_cron, p95.lower_bound_delta) == ("0 2 * * *", td(hours=2))
    silver = graph.get(SILVER_EVENTS).freshness_policy
    assert (silver.deadline_cron, silver.lower_bound_delta) == ("45 * * * *", td(minutes=45))


def test_a_growing_hour_reads_only_new_footers_and_follows_the_commit_marker(
    tmp_path: Path, monkeypatch
) -> None:
    import iot_pipeline.sensors.bronze_report as report

    read: list[str] = []
    footer = report._footer
    monkeypatch.setattr(report, "_footer", lambda fs, path: read.append(path) or footer(fs, path))
    commit = Path(LakeLayout(str(tmp_path)).bronze_commit)
    commit.parent.mkdir(parents=True, exist_ok=True)

    def rows_of_open_hour() -> int:
        return next(m for m in reversed(reports(instance)) if m.partition == key(OPEN)).metadata["rows"].value

    with dg.instance_for_test() as instance:
        land(tmp_path, OPEN, 0, 0, range(0, 10))
        land(tmp_path, OPEN, 1, 0, range(10, 30))
        commit.write_text(json.dumps({"committed_batch": 0}))
        cursor = tick(tmp_path, instance, None)
        assert rows_of_open_hour() == 10 and len(read) == 1  # batch 1 is not committed yet

        commit.write_text(json.dumps({"committed_batch": 1}))
        land(tmp_path, OPEN, -1, 0, range(1000, 1005))  # a replayed slice: read every time
        read.clear()
        cursor = tick(tmp_path, instance, cursor)
        assert rows_of_open_hour() == 35
        assert sorted(Path(p).parent.name for p in read) == ["ingest_batch=-1", "ingest_batch=1"]

        # A removed file (an hour moved aside and rebuilt): every footer is read again.
        for f in (
            Path(hour_partition_dir(LakeLayout(str(tmp_path)).bronze_events, OPEN)) / "ingest_batch=0"
        ).glob("*.parquet"):
            f.unlink()
        read.clear()
        cursor = tick(tmp_path, instance, cursor)
        assert rows_of_open_hour() == 25 and len(read) == 2
        assert len(cursor) < 64 * 1024

"""silver/events and silver/device_minute_stats on real Spark, through ``dg.materialize``."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from iot_pipeline.assets.device_minute_stats import device_minute_stats
from iot_pipeline.assets.external import EXTERNAL_ASSETS
from iot_pipeline.assets.silver_events import events
from iot_pipeline.contract.rules import rules_fingerprint
from iot_pipeline.contract.spark_schema import PER_EVENT_COLUMNS
from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import SparkResource
from iot_pipeline.storage.commits import commit_document
from iot_pipeline.storage.layout import LakeLayout
from iot_pipeline.testing.bronze import generate_bronze, write_bronze

pytestmark = pytest.mark.spark

HOUR = datetime(2026, 2, 3, 10, tzinfo=timezone.utc)
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
NO_REPLAY = {"ops": {"silver__events": {"config": {"replay_missing_hours": False}}}}


def resources(spark_resource: SparkResource, root: Path) -> dict:
    # No broker here: replay is switched off (or never needed) in these tests.
    return {"spark": spark_resource, "lake": LakeResource(root=str(root)), "kafka": KafkaResource()}


def materialize(
    assets: list,
    res: dict,
    *,
    partition: str | None = None,
    rng: tuple[str, str] | None = None,
    run_config: dict | None = None,
) -> dg.ExecuteInProcessResult:
    tags = dict(zip(RANGE_TAGS, rng, strict=True)) if rng else None
    return dg.materialize(
        [*EXTERNAL_ASSETS, *assets], partition_key=partition, tags=tags, resources=res, run_config=run_config
    )


def meta(result: dg.ExecuteInProcessResult, key: str) -> dict:
    mats = [m for m in result.get_asset_materialization_events() if m.asset_key.to_user_string() == key]
    assert mats, f"no materialisation of {key}"
    return {k: v.value for k, v in mats[-1].materialization.metadata.items()}


def silver_hour(root: Path, day: str, hour: int) -> tuple[list[Path], pa.Table]:
    files = sorted(
        (root / "silver" / "events" / f"event_date={day}" / f"event_hour={hour}").glob("*.parquet")
    )
    return files, pa.concat_tables([pq.read_table(f) for f in files]) if files else None


def assert_sorted(silver: pa.Table) -> None:
    """Sorted for the queries that follow: (device_type, device_id, event_timestamp)."""
    columns = ("device_type", "device_id", "event_timestamp")
    keys = list(zip(*(silver[c].to_pylist() for c in columns), strict=True))
    assert keys == sorted(keys)


def test_hour_is_deduplicated_validated_compacted_and_sorted(spark_resource, tmp_path: Path) -> None:
    batch = generate_bronze(
        HOUR, 1, {"temperature": 1500, "co2": 700}, duplicate_fraction=0.05, late_fraction=0.03
    )
    rows = batch.rows
    # One invalid row (null device_id) that slipped into bronze: dropped and counted.
    bad = rows.slice(0, 1).set_column(1, "device_id", pa.array([None], pa.string()))
    bad = bad.set_column(0, "event_id", pa.array(["bad-row"], pa.string()))
    # Two rows whose event time is not their partition's: the hour before, and the same hour a day
    # before. Both are earlier than their Kafka time, so no value rule catches them: the partition
    # check alone must.
    ts = rows.schema.field("event_timestamp").type
    misplaced = pa.concat_tables(
        [
            rows.slice(1, 1).set_column(
                rows.schema.get_field_index("event_timestamp"),
                "event_timestamp",
                pa.array([HOUR + shift + timedelta(minutes=5)], ts),
            )
            for shift in (timedelta(hours=-1), timedelta(days=-1))
        ]
    )
    misplaced = misplaced.set_column(
        0, "event_id", pa.array([str(uuid.uuid4()) for _ in range(2)], pa.string())
    )
    write_bronze(pa.concat_tables([rows, bad, misplaced]), tmp_path / "bronze" / "events", files_per_hour=4)

    res = resources(spark_resource, tmp_path)
    result = materialize([events, device_minute_stats], res, partition="2026-02-03-10:00")
    assert result.success
    m = meta(result, "silver/events")
    assert m["rows_read"] == rows.num_rows + 3
    assert m["invalid_rows"] == 3
    assert m["duplicates_removed"] == batch.duplicates > 0
    assert m["rows_written"] == batch.unique.num_rows == 2200
    assert m["late_rows"] == batch.late > 0
    assert m["replayed_from_kafka"] is False
    assert m["files_written"] == 1 and m["bytes_written"] > 0
    assert m["min_event_time"] >= HOUR.timestamp() and m["max_event_time"] < HOUR.timestamp() + 3600

    files, silver = silver_hour(tmp_path, "2026-02-03", 10)
    assert len(files) == 1
    # Columns unique per event are written without a dictionary; the repeating ones keep theirs.
    chunks = pq.ParquetFile(files[0]).metadata.row_group(0)
    dictionary = {
        chunks.column(i).path_in_schema: chunks.column(i).has_dictionary_page
        for i in range(chunks.num_columns)
    }
    assert not any(dictionary[c] for c in PER_EVENT_COLUMNS), dictionary
    assert dictionary["device_id"] and dictionary["device_type"], dictionary
    assert silver.num_rows == 2200
    assert len(set(silver["event_id"].to_pylist())) == 2200
    # The copy kept is the first to reach Kafka: duplicates carry +1e6 ms, so none may survive.
    assert pc.max(silver["event_duration"]).as_py() < 1_000_000
    expected = dict(
        zip(batch.unique["event_id"].to_pylist(), batch.unique["event_duration"].to_pylist(), strict=True)
    )
    got = dict(zip(silver["event_id"].to_pylist(), silver["event_duration"].to_pylist(), strict=True))
    assert got == expected
    assert_sorted(silver)

    # Minute stats: one device-minute recomputed with numpy, percentiles exact.
    stats_m = meta(result, "silver/device_minute_stats")
    assert stats_m["events"] == 2200
    stats = pq.read_table(
        tmp_path / "silver" / "device_minute_stats" / "event_date=2026-02-03" / "event_hour=10"
    )
    assert sum(stats["events"].to_pylist()) == 2200
    best = int(np.argmax(stats["events"].to_numpy()))
    row = {c: stats[c][best].as_py() for c in stats.column_names}
    assert row["events"] >= 3
    ws = row["window_start"]
    sel = silver.filter(
        pc.and_(
            pc.equal(silver["device_id"], row["device_id"]),
            pc.and_(
                pc.greater_equal(silver["event_timestamp"], pa.scalar(ws, silver["event_timestamp"].type)),
                pc.less(
                    silver["event_timestamp"], pa.scalar(row["window_end"], silver["event_timestamp"].type)
                ),
            ),
        )
    )
    d = sel["event_duration"].to_numpy()
    assert len(d) == row["events"]
    assert row["duration_p50"] == pytest.approx(np.percentile(d, 50), rel=1e-12)
    assert row["duration_p95"] == pytest.approx(np.percentile(d, 95), rel=1e-12)
    assert row["duration_stddev"] == pytest.approx(np.std(d, ddof=1), rel=1e-9)
    battery = sel["battery_level"].to_numpy(zero_copy_only=False)
    assert row["low_battery_events"] == int(np.sum(battery[~np.isnan(battery)] < 20))
    assert (row["window_end"] - ws).total_seconds() == 60


def test_multi_hour_range_is_one_run_and_overwrites_only_its_hours(spark_resource, tmp_path: Path) -> None:
    start = datetime(2026, 2, 3, 22, tzinfo=timezone.utc)  # 22:00, 23:00 and next day 00:00
    batch = generate_bronze(start, 3, {"temperature": 900, "humidity": 600}, seed=11)
    bronze = tmp_path / "bronze" / "events"
    write_bronze(batch.rows, bronze)
    res = resources(spark_resource, tmp_path)
    # A stale hour of an earlier run outside the range must survive untouched.
    outside = tmp_path / "silver" / "events" / "event_date=2026-02-03" / "event_hour=5"
    outside.mkdir(parents=True)
    pq.write_table(pa.table({"x": [1]}), outside / "old.parquet")

    result = materialize([events], res, rng=("2026-02-03-22:00", "2026-02-04-00:00"))
    assert result.success
    mats = [m.asset_key.to_user_string() for m in result.get_asset_materialization_events()]
    # one run, three partitions of silver and of its event-id index
    assert sorted(mats) == ["silver/event_id_index"] * 3 + ["silver/events"] * 3
    m = meta(result, "silver/events")
    assert m["hours"] == 3 and m["rows_written"] == 1500 and m["duplicates_removed"] == batch.duplicates
    per_hour = {}
    for day, hour in (("2026-02-03", 22), ("2026-02-03", 23), ("2026-02-04", 0)):
        files, t = silver_hour(tmp_path, day, hour)
        assert len(files) == 1
        per_hour[(day, hour)] = t.num_rows
    truth = batch.unique
    for (day, hour), n in per_hour.items():
        mask = pc.and_(pc.equal(truth["event_date"], day), pc.equal(truth["event_hour"], hour))
        assert n == pc.sum(mask).as_py()
    assert (outside / "old.parquet").exists()

    # Bronze of 23:00 removed, replay off, emptying allowed: re-running the range empties exactly that hour.
    import shutil

    shutil.rmtree(bronze / "event_date=2026-02-03" / "event_hour=23")
    empty_on_purpose = {
        "ops": {"silver__events": {"config": {"replay_missing_hours": False, "allow_emptying_hours": True}}}
    }
    result = materialize(
        [events], res, rng=("2026-02-03-22:00", "2026-02-04-00:00"), run_config=empty_on_purpose
    )
    assert result.success
    m = meta(result, "silver/events")
    assert m["emptied_hours"] == 1 and m["replayed_from_kafka"] is False
    assert not (tmp_path / "silver" / "events" / "event_date=2026-02-03" / "event_hour=23").exists()
    assert silver_hour(tmp_path, "2026-02-03", 22)[1].num_rows == per_hour[("2026-02-03", 22)]
    assert silver_hour(tmp_path, "2026-02-04", 0)[1].num_rows == per_hour[("2026-02-04", 0)]
    assert (outside / "old.parquet").exists()


def test_task_ids_mirror_sparks_hash_partitioning(spark) -> None:
    from pyspark.sql import functions as F

    from iot_pipeline.assets.silver_logic import murmur3_int, task_ids

    values = [0, 1, -1, 7, 123_456, 2**31 - 1, -(2**31)]
    df = spark.createDataFrame([(v,) for v in values], "v int").select(F.hash("v").alias("h"))
    assert [r["h"] for r in df.collect()] == [murmur3_int(v) for v in values]
    for n in (2, 3, 7, 25):
        ids = task_ids(n)
        assert sorted(murmur3_int(v) % n for v in ids) == list(range(n))


def test_an_hour_needing_k_files_gets_k_files_and_each_device_one(spark_resource, tmp_path: Path) -> None:
    # Hashing bucket numbers into k shuffle partitions may put two buckets of an hour into one task,
    # hence one file: with a tiny target size each of two hours must get exactly its own file count.
    # These two hours are such a collision under plain hash partitioning of (date, hour, bucket).
    start = datetime(2026, 4, 1, 11, tzinfo=timezone.utc)
    batch = generate_bronze(start, 2, {"temperature": 40_000, "co2": 20_000}, seed=5, devices_per_type=60)
    write_bronze(batch.rows, tmp_path / "bronze" / "events", files_per_hour=3)
    bronze_bytes = {
        h: sum(
            f.stat().st_size
            for f in (tmp_path / "bronze" / "events" / "event_date=2026-04-01").glob(
                f"event_hour={h}/*/*.parquet"
            )
        )
        for h in (11, 12)
    }
    target_mb = 1
    config = {
        "ops": {"silver__events": {"config": {"target_file_mb": target_mb, "replay_missing_hours": False}}}
    }
    result = materialize(
        [events],
        resources(spark_resource, tmp_path),
        rng=("2026-04-01-11:00", "2026-04-01-12:00"),
        run_config=config,
    )
    assert result.success
    for h in (11, 12):
        want = -(-bronze_bytes[h] // (target_mb * 1024 * 1024))
        files, _ = silver_hour(tmp_path, "2026-04-01", h)
        assert want >= 2 and len(files) == want, (h, want, files)
        devices = [set(pq.read_table(f, columns=["device_id"])["device_id"].to_pylist()) for f in files]
        assert sum(len(d) for d in devices) == len(set().union(*devices))  # no device in two files
        for f in files:
            assert_sorted(pq.read_table(f))
    m = meta(result, "silver/events")
    assert m["rows_written"] == batch.unique.num_rows and m["duplicates_removed"] == batch.duplicates


def test_copies_that_disagree_on_device_or_time_are_still_one_event(spark_resource, tmp_path: Path) -> None:
    # The one-shuffle plan dedups copies that share device and event time; others fall back to the
    # exact plan, found through the event-id index. Every copy here disagrees with its first copy.
    batch = generate_bronze(HOUR, 1, {"temperature": 1200}, seed=23, duplicate_fraction=0.05)
    rows = batch.rows
    first = set(batch.unique["event_id"].to_pylist())
    is_copy = pa.array([o >= batch.unique.num_rows for o in rows["kafka_offset"].to_pylist()])
    moved_device = pc.if_else(
        is_copy, pc.binary_join_element_wise(rows["device_id"], "x", ""), rows["device_id"]
    )
    rows = rows.set_column(rows.schema.get_field_index("device_id"), "device_id", moved_device)
    write_bronze(rows, tmp_path / "bronze" / "events", files_per_hour=2)

    result = materialize([events], resources(spark_resource, tmp_path), partition="2026-02-03-10:00")
    assert result.success
    m = meta(result, "silver/events")
    assert m["rows_written"] == len(first) and m["duplicates_removed"] == batch.duplicates > 0
    _, silver = silver_hour(tmp_path, "2026-02-03", 10)
    assert sorted(silver["event_id"].to_pylist()) == sorted(first)
    assert pc.max(silver["event_duration"]).as_py() < 1_000_000  # the first to reach Kafka was kept
    assert not any(d.endswith("x") for d in silver["device_id"].to_pylist())
    assert_sorted(silver)


def _variant(rows: pa.Table, i: int, **values: object) -> pa.Table:
    """Row ``i`` of ``rows`` as a new event (its own id) with some fields changed."""
    row = rows.slice(i, 1).set_column(0, "event_id", pa.array([str(uuid.uuid4())], pa.string()))
    for name, value in values.items():
        at = row.schema.get_field_index(name)
        row = row.set_column(at, name, pa.array([value], row.schema.field(name).type))
    return row.drop_columns(["event_date", "event_hour"])


def test_batches_validated_by_the_stream_under_the_same_rules_skip_only_the_value_rules(
    spark_resource, tmp_path: Path
) -> None:
    batch = generate_bronze(HOUR, 1, {"temperature": 600}, seed=31)
    rows = batch.unique
    bronze = tmp_path / "bronze" / "events"
    write_bronze(rows, bronze, files_per_hour=2)  # batches 0 and 1
    hour_dir = bronze / "event_date=2026-02-03" / "event_hour=10"
    # A negative duration in each batch, and in batch 1 a row of another hour (it is not in its partition).
    pq.write_table(_variant(rows, 0, event_duration=-1.0), hour_dir / "ingest_batch=0" / "part-1-bad.parquet")
    pq.write_table(_variant(rows, 1, event_duration=-2.0), hour_dir / "ingest_batch=1" / "part-1-bad.parquet")
    elsewhere = rows["event_timestamp"][2].as_py() + timedelta(hours=2)
    pq.write_table(
        _variant(rows, 2, event_timestamp=elsewhere), hour_dir / "ingest_batch=1" / "part-2-bad.parquet"
    )
    marker = Path(LakeLayout(str(tmp_path)).bronze_commit)
    marker.parent.mkdir(parents=True)
    res = resources(spark_resource, tmp_path)

    # The stream validated batch 1 (not batch 0) under the rules silver applies: batch 1's negative
    # duration is trusted, the misplaced row is not.
    marker.write_text(commit_document(1, rules_fingerprint(), 1))
    m = meta(materialize([events], res, partition="2026-02-03-10:00"), "silver/events")
    assert (m["rows_read"], m["invalid_rows"], m["rows_written"]) == (rows.num_rows + 3, 2, rows.num_rows + 1)
    _, silver = silver_hour(tmp_path, "2026-02-03", 10)
    assert sorted(d for d in silver["event_duration"].to_pylist() if d < 0) == [-2.0]

    # Other rules (another version, other event-time settings): every row is checked again.
    marker.write_text(commit_document(1, "0123456789abcdef", 0))
    m = meta(materialize([events], res, partition="2026-02-03-10:00"), "silver/events")
    assert (m["invalid_rows"], m["rows_written"]) == (3, rows.num_rows)
    _, silver = silver_hour(tmp_path, "2026-02-03", 10)
    assert pc.min(silver["event_duration"]).as_py() >= 0
    assert_sorted(silver)

"""silver/events against lost inputs: a missing bronze hour rebuilt from a real Kafka broker into bronze,
an hour never emptied by accident, only committed micro-batches read."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from iot_pipeline.assets.external import EXTERNAL_ASSETS
from iot_pipeline.assets.keys import SILVER_EVENTS
from iot_pipeline.assets.silver_events import events
from iot_pipeline.contract.event import FIELD_NAMES
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.storage.commits import commit_document
from iot_pipeline.storage.layout import LakeLayout
from iot_pipeline.storage.listing import LocalLakeListing
from iot_pipeline.testing.bronze import generate_bronze, write_bronze

pytestmark = [pytest.mark.spark, pytest.mark.kafka]

HOUR = datetime(2026, 2, 5, 10, tzinfo=timezone.utc)
MARGIN = timedelta(minutes=60)


def _payload(row: dict) -> bytes:
    event = {k: row[k] for k in FIELD_NAMES if row[k] is not None and row[k] == row[k]}  # drop null/NaN
    event["event_timestamp"] = row["event_timestamp"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps(event).encode()


def _load_topic(kafka_resource, batch) -> None:
    # The records are dated February while the broker's clock may be months later: keep them
    # (default retention would delete them within minutes, and a replay can only read what is retained).
    keep = ConfigResource(
        "topic",
        kafka_resource.topic,
        incremental_configs=[ConfigEntry("retention.ms", "-1", incremental_operation=AlterConfigOpType.SET)],
    )
    admin = kafka_resource.admin()
    admin.incremental_alter_configs([keep])[keep].result(timeout=30)
    producer = kafka_resource.producer()
    # In Kafka timestamp order, as a live producer sends them (CreateTime = send time).
    for row in sorted(batch.rows.to_pylist(), key=lambda r: r["kafka_timestamp"]):
        producer.produce(
            kafka_resource.topic,
            key=row["device_id"].encode(),
            value=_payload(row),
            timestamp=int(row["kafka_timestamp"].timestamp() * 1000),
        )
    producer.produce(
        kafka_resource.topic, key=b"x", value=b"{not json", timestamp=int(HOUR.timestamp() * 1000) + 5
    )
    assert producer.flush(30) == 0


def _meta(result: dg.ExecuteInProcessResult) -> dict:
    mat = next(
        e.materialization for e in result.get_asset_materialization_events() if e.asset_key == SILVER_EVENTS
    )
    return {k: v.value for k, v in mat.metadata.items()}


def _silver(tmp_path: Path, hour: int) -> dict[str, float]:
    hour_dir = tmp_path / "silver" / "events" / "event_date=2026-02-05" / f"event_hour={hour}"
    silver = pa.concat_tables([pq.read_table(f) for f in hour_dir.glob("*.parquet")])
    return dict(zip(silver["event_id"].to_pylist(), silver["event_duration"].to_pylist(), strict=True))


def _expected(batch, hour: datetime, lateness: timedelta | None) -> pa.Table:
    """Distinct events of ``hour`` that reached Kafka from MARGIN before it to ``lateness`` after it."""
    u = batch.unique
    kts = u["kafka_timestamp"]
    in_hour = pc.and_(pc.equal(u["event_date"], f"{hour:%Y-%m-%d}"), pc.equal(u["event_hour"], hour.hour))
    cond = pc.and_(in_hour, pc.greater_equal(kts, pa.scalar(hour - MARGIN, kts.type)))
    if lateness is not None:
        cond = pc.and_(cond, pc.less(kts, pa.scalar(hour + timedelta(hours=1) + lateness, kts.type)))
    return u.filter(cond)


def test_missing_hour_is_replayed_from_kafka_into_bronze(
    spark_resource, kafka_resource, tmp_path: Path
) -> None:
    # Hours 09..11 on the topic (with duplicates and records 30-90 minutes late); bronze is empty.
    batch = generate_bronze(
        HOUR - timedelta(hours=1),
        3,
        {"temperature": 600, "co2": 300},
        seed=31,
        duplicate_fraction=0.05,
        late_fraction=0.05,
    )
    _load_topic(kafka_resource, batch)
    lake = LakeResource(root=str(tmp_path))
    res = {"spark": spark_resource, "lake": lake, "kafka": kafka_resource}

    # 10:00 with the default window: every late record is recovered (it accepts 7 days of lateness).
    result = dg.materialize([*EXTERNAL_ASSETS, events], partition_key="2026-02-05-10:00", resources=res)
    assert result.success
    m = _meta(result)
    assert m["replayed_from_kafka"] is True and m["replayed_hours"] == ["2026-02-05-10:00"]
    assert "replayed from Kafka" in m["per_hour"]
    expected = _expected(batch, HOUR, None)
    kts = expected["kafka_timestamp"]
    late = pc.sum(pc.greater(kts, pa.scalar(HOUR + timedelta(minutes=75), kts.type))).as_py()
    assert late > 0 and pc.max(kts).as_py() > HOUR + timedelta(hours=2), "records later than an hour after"
    assert m["rows_written"] == expected.num_rows and m["late_rows"] == late
    assert m["duplicates_removed"] > 0 and m["invalid_rows"] == 0
    assert _silver(tmp_path, 10) == dict(
        zip(expected["event_id"].to_pylist(), expected["event_duration"].to_pylist(), strict=True)
    )
    # ... and landed in bronze as its own batch, so bronze stays the single source.
    replay_dir = (
        tmp_path / "bronze" / "events" / "event_date=2026-02-05" / "event_hour=10" / "ingest_batch=-1"
    )
    assert pq.read_table(replay_dir).num_rows >= expected.num_rows

    # 11:00 with a one-hour lateness window: records later than that are not read.
    one_hour = {"ops": {"silver__events": {"config": {"replay_lateness_minutes": 60}}}}
    result = dg.materialize(
        [*EXTERNAL_ASSETS, events], partition_key="2026-02-05-11:00", resources=res, run_config=one_hour
    )
    assert result.success
    eleven = HOUR + timedelta(hours=1)
    bounded = _expected(batch, eleven, timedelta(minutes=60))
    assert _expected(batch, eleven, None).num_rows > bounded.num_rows
    assert set(_silver(tmp_path, 11)) == set(bounded["event_id"].to_pylist())

    # The stream lands a late batch in 10:00 afterwards: the replayed rows stay, the new ones join.
    extra = generate_bronze(HOUR, 1, {"temperature": 40}, seed=77)
    hour_rows = extra.rows.filter(pc.equal(extra.rows["event_hour"], 10))
    late_dir = replay_dir.parent / "ingest_batch=7"
    late_dir.mkdir()
    pq.write_table(hour_rows.drop_columns(["event_date", "event_hour"]), late_dir / "part-0.parquet")
    result = dg.materialize([*EXTERNAL_ASSETS, events], partition_key="2026-02-05-10:00", resources=res)
    assert result.success and _meta(result)["replayed_from_kafka"] is False
    assert set(_silver(tmp_path, 10)) == set(expected["event_id"].to_pylist()) | set(
        hour_rows["event_id"].to_pylist()
    )


def test_an_hour_is_never_emptied_because_its_inputs_vanished(
    spark_resource, kafka_resource, tmp_path: Path
) -> None:
    batch = generate_bronze(HOUR, 1, {"temperature": 200}, seed=5)
    write_bronze(batch.rows, tmp_path / "bronze" / "events")
    res = {"spark": spark_resource, "lake": LakeResource(root=str(tmp_path)), "kafka": kafka_resource}
    key = "2026-02-05-10:00"
    assert dg.materialize([*EXTERNAL_ASSETS, events], partition_key=key, resources=res).success
    before = _silver(tmp_path, 10)
    assert before

    shutil.rmtree(tmp_path / "bronze" / "events" / "event_date=2026-02-05")  # and Kafka has nothing
    result = dg.materialize(
        [*EXTERNAL_ASSETS, events], partition_key=key, resources=res, raise_on_error=False
    )
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "allow_emptying_hours" in failure.message and "2026-02-05-10:00" in str(failure)
    assert _silver(tmp_path, 10) == before  # untouched

    on_purpose = {"ops": {"silver__events": {"config": {"allow_emptying_hours": True}}}}
    result = dg.materialize(
        [*EXTERNAL_ASSETS, events], partition_key=key, resources=res, run_config=on_purpose
    )
    assert result.success and _meta(result)["emptied_hours"] == 1
    assert not (tmp_path / "silver" / "events" / "event_date=2026-02-05" / "event_hour=10").exists()


def test_silver_reads_only_committed_micro_batches(spark_resource, kafka_resource, tmp_path: Path) -> None:
    batch = generate_bronze(HOUR, 1, {"temperature": 300}, seed=9, duplicate_fraction=0.0)
    paths = write_bronze(batch.rows, tmp_path / "bronze" / "events", files_per_hour=3)  # batches 0, 1, 2
    layout = LakeLayout(str(tmp_path))
    marker = Path(layout.bronze_commit)
    marker.parent.mkdir(parents=True)
    marker.write_text(commit_document(1))  # batch 2 is still being committed
    res = {"spark": spark_resource, "lake": LakeResource(root=str(tmp_path)), "kafka": kafka_resource}
    key = "2026-02-05-10:00"
    assert dg.materialize([*EXTERNAL_ASSETS, events], partition_key=key, resources=res).success
    committed_ids = set(pa.concat_tables([pq.read_table(p) for p in paths[:2]])["event_id"].to_pylist())
    assert set(_silver(tmp_path, 10)) == committed_ids

    # The sensors' fingerprint does not count batch 2 either, until it is committed.
    listing = LocalLakeListing()
    partial = listing.fingerprints(layout.bronze_events, [HOUR], committed=1)[HOUR]
    whole = listing.fingerprints(layout.bronze_events, [HOUR], committed=2)[HOUR]
    assert (partial.files, whole.files) == (2, 3)

    marker.write_text(commit_document(2))
    assert dg.materialize([*EXTERNAL_ASSETS, events], partition_key=key, resources=res).success
    assert set(_silver(tmp_path, 10)) == set(batch.rows["event_id"].to_pylist())

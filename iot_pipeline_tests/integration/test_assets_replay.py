"""A missing bronze hour is rebuilt from a real Kafka broker by silver/events (batch replay)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from iot_pipeline.assets.external import EXTERNAL_ASSETS
from iot_pipeline.assets.silver_events import events
from iot_pipeline.contract.event import FIELD_NAMES
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline_tests.unit.test_assets_reference import generate_bronze

pytestmark = [pytest.mark.spark, pytest.mark.kafka]

HOUR = datetime(2026, 2, 5, 10, tzinfo=timezone.utc)
MARGIN = timedelta(minutes=60)


def _payload(row: dict) -> bytes:
    event = {k: row[k] for k in FIELD_NAMES if row[k] is not None and row[k] == row[k]}  # drop null/NaN
    event["event_timestamp"] = row["event_timestamp"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps(event).encode()


def test_missing_hour_is_replayed_from_kafka(spark_resource, kafka_resource, tmp_path: Path) -> None:
    # Hours 09..11 on the topic (with duplicates and late records); bronze is empty; replay 10:00.
    batch = generate_bronze(
        HOUR - timedelta(hours=1),
        3,
        {"temperature": 600, "co2": 300},
        seed=31,
        duplicate_fraction=0.05,
        late_fraction=0.05,
    )
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

    res = {"spark": spark_resource, "lake": LakeResource(root=str(tmp_path)), "kafka": kafka_resource}
    result = dg.materialize([*EXTERNAL_ASSETS, events], partition_key="2026-02-05-10:00", resources=res)
    assert result.success
    m = {k: v.value for k, v in result.get_asset_materialization_events()[0].materialization.metadata.items()}
    assert m["replayed_from_kafka"] is True and m["replayed_hours"] == ["2026-02-05-10:00"]
    assert "kafka replay" in m["per_hour"]

    # Expected: events of 10:00 whose record reached Kafka within the hour +- the replay margin.
    u = batch.unique
    kts = u["kafka_timestamp"]
    in_hour = pc.and_(pc.equal(u["event_date"], "2026-02-05"), pc.equal(u["event_hour"], 10))
    in_range = pc.and_(
        pc.greater_equal(kts, pa.scalar(HOUR - MARGIN, kts.type)),
        pc.less(kts, pa.scalar(HOUR + timedelta(hours=1) + MARGIN, kts.type)),
    )
    expected = u.filter(pc.and_(in_hour, in_range))
    too_late = u.filter(pc.and_(in_hour, pc.invert(in_range))).num_rows
    assert too_late > 0, "test data must include records later than the replay margin"
    late = pc.sum(pc.greater(expected["kafka_timestamp"], pa.scalar(HOUR + timedelta(minutes=75), kts.type)))
    assert m["replay_records_scanned"] >= expected.num_rows, m
    assert m["rows_written"] == expected.num_rows and m["late_rows"] == late.as_py() > 0
    assert m["duplicates_removed"] > 0 and m["invalid_rows"] == 0

    files = list(
        (tmp_path / "silver" / "events" / "event_date=2026-02-05" / "event_hour=10").glob("*.parquet")
    )
    silver = pa.concat_tables([pq.read_table(f) for f in files])
    got = dict(zip(silver["event_id"].to_pylist(), silver["event_duration"].to_pylist(), strict=True))
    assert got == dict(
        zip(expected["event_id"].to_pylist(), expected["event_duration"].to_pylist(), strict=True)
    )
    assert set(silver["kafka_topic"].to_pylist()) == {kafka_resource.topic}
    assert not (tmp_path / "bronze").exists()  # replays never write into the stream's bronze

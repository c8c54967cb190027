"""The streaming job against a real Kafka broker and real Spark: exactly-once landing, resume, crash, continuous."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from iot_pipeline.contract.rules import rules_fingerprint
from iot_pipeline.ingestion.faults import FaultRates
from iot_pipeline.ingestion.generator import SimRecord, generate
from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import SparkResource
from iot_pipeline.storage.commits import validated_batches
from iot_pipeline.storage.layout import LakeLayout
from iot_pipeline.streaming.live import live_view
from iot_pipeline.streaming.resource import SparkStreamingResource, StreamMode

pytestmark = [pytest.mark.kafka, pytest.mark.spark]

FAULTS = FaultRates(anomaly=0.02, duplicate=0.05, malformed=0.05, late=0.05)
START = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)

HANDMADE = [
    (b"{not json", "malformed_json"),
    (b'{"event_id": "5d0c6f0e-3a43-4c53-9a2f-6b1f0e1f6a10", "device_id": "d"}', "missing_field:device_type"),
    (b"x" * 20_000, "oversized"),
]


def produce(
    kafka: KafkaResource, records: list[SimRecord], extra: list[bytes] = ()
) -> dict[tuple[int, int], bytes]:
    """Produce and return what landed where: (partition, offset) -> value, from the delivery reports."""
    landed: dict[tuple[int, int], bytes] = {}

    def on_delivery(err, msg) -> None:
        assert err is None, err
        landed[(msg.partition(), msg.offset())] = msg.value()

    producer = kafka.producer(**{"enable.idempotence": True, "acks": "all", "linger.ms": 5})
    for r in records:
        producer.produce(kafka.topic, key=r.key, value=r.value, on_delivery=on_delivery)
        producer.poll(0)
    for i, value in enumerate(extra):
        producer.produce(kafka.topic, key=f"handmade-{i}", value=value, on_delivery=on_delivery)
    assert producer.flush(30) == 0
    return landed


def streaming_resource(
    spark_resource: SparkResource, kafka: KafkaResource, lake_root: Path, **overrides
) -> SparkStreamingResource:
    settings = {"metrics_port": 0, "max_offsets_per_trigger": 1500, "trigger_seconds": 1.0, **overrides}
    return SparkStreamingResource(
        spark=spark_resource, kafka=kafka, lake=LakeResource(root=str(lake_root)), **settings
    )


def read_bronze(spark: SparkSession, layout: LakeLayout):
    return spark.read.parquet(layout.bronze_events)


def assert_exactly_once(
    spark: SparkSession, layout: LakeLayout, landed: dict[tuple[int, int], bytes]
) -> None:
    bronze = read_bronze(spark, layout).select("kafka_partition", "kafka_offset").collect()
    quarantine = (
        spark.read.parquet(layout.quarantine_events).select("kafka_partition", "kafka_offset").collect()
    )
    seen = Counter((r[0], r[1]) for r in [*bronze, *quarantine])
    assert [k for k, n in seen.items() if n > 1] == [], "records landed twice"
    assert set(seen) == set(landed), f"missing: {sorted(set(landed) - set(seen))[:5]}"


def test_available_now_lands_each_record_once_in_its_hour(
    spark: SparkSession, spark_resource: SparkResource, kafka_resource: KafkaResource, tmp_path: Path
) -> None:
    records = generate(4000, seed=7, start=START, faults=FAULTS, events_per_second=2.0)
    landed = produce(kafka_resource, records, [value for value, _ in HANDMADE])
    # Batches of 1,500 records over the topic's partitions: each partition's range is split in tasks.
    resource = streaming_resource(spark_resource, kafka_resource, tmp_path / "lake", max_records_per_task=200)
    started = time.time()
    totals = resource.run(StreamMode.AVAILABLE_NOW, log=lambda _: None)
    finished = time.time()
    layout = resource.lake.layout

    assert totals.batches >= 3, "maxOffsetsPerTrigger should split the backlog into several batches"
    assert totals.input_rows == len(landed)
    assert_exactly_once(spark, layout, landed)
    # More tasks than Kafka partitions wrote a batch's hour: one file per task.
    batch_dirs = Path(layout.bronze_events).glob("event_date=*/event_hour=*/ingest_batch=*")
    assert max(len(list(d.glob("*.parquet"))) for d in batch_dirs) > kafka_resource.partitions

    bronze = read_bronze(spark, layout)
    # Each valid event sits in the partition of its own (UTC) event hour, late ones included.
    misplaced = bronze.where(
        (F.col("event_date") != F.date_format("event_timestamp", "yyyy-MM-dd"))
        | (F.col("event_hour") != F.hour("event_timestamp"))
    ).count()
    assert misplaced == 0
    valid_sent = [r for r in records if r.kind != "malformed"]
    assert bronze.count() == len(valid_sent), "duplicates stay in bronze: one row per valid Kafka record"
    expected_hours = {
        (e["event_timestamp"][:10], int(e["event_timestamp"][11:13])) for e in (r.event for r in valid_sent)
    }
    got_hours = {(str(r[0]), r[1]) for r in bronze.select("event_date", "event_hour").distinct().collect()}
    assert got_hours == expected_hours
    late = [r.event for r in records if r.kind == "late"]
    assert late, "the generator should have produced late events"
    late_ids = [e["event_id"] for e in late]
    assert bronze.where(F.col("event_id").isin(late_ids)).count() >= len(set(late_ids))

    quarantine = spark.read.parquet(layout.quarantine_events)
    reasons = Counter(r["reason"] for r in quarantine.select("reason").collect())
    expected = Counter(r.malformed_kind for r in records if r.kind == "malformed")
    expected.update(reason for _, reason in HANDMADE)
    assert reasons == expected
    row = quarantine.where(F.col("reason") == "oversized").first()
    assert row["raw_payload"] == "x" * 20_000 and row["kafka_topic"] == kafka_resource.topic
    assert totals.quarantined == dict(expected)

    # One ingest time per batch, shared by its bronze and quarantine rows, taken during the run.
    assert dict(bronze.dtypes)["ingest_time"] == dict(quarantine.dtypes)["ingest_time"] == "timestamp"
    stamps = (
        bronze.select("ingest_batch", "ingest_time")
        .unionByName(quarantine.select("ingest_batch", "ingest_time"))
        .groupBy("ingest_batch")
        .agg(F.count_distinct("ingest_time").alias("n"), F.min(F.unix_micros("ingest_time")).alias("t"))
        .collect()
    )
    assert len(stamps) == totals.batches and {r["n"] for r in stamps} == {1}
    assert all(started * 1e6 <= r["t"] <= finished * 1e6 for r in stamps)

    # The live view counts every valid record once, late ones included, whatever the batches.
    view = live_view(spark.read.parquet(layout.live_device_type_minute))
    assert view.agg(F.sum("events")).first()[0] == len(valid_sent)
    by_type = Counter(r.event["device_type"] for r in valid_sent)
    assert {
        r["device_type"]: r["n"]
        for r in view.groupBy("device_type").agg(F.sum("events").alias("n")).collect()
    } == by_type
    assert published_watermark(layout) == newest_event(valid_sent) - timedelta(minutes=10)
    # The commit marker says which batches were validated under which rules (silver trusts those).
    marker = (Path(layout.root) / "_state" / "stream" / "bronze_commit.json").read_text()
    assert validated_batches(marker, rules_fingerprint()) == (0, totals.batches - 1)
    assert validated_batches(marker, "other rules") is None


def newest_event(records: list[SimRecord]) -> datetime:
    return max(
        datetime.fromisoformat(r.event["event_timestamp"].replace("Z", "+00:00"))
        for r in records
        if r.kind != "malformed"
    )


def published_watermark(layout: LakeLayout) -> datetime:
    doc = json.loads((Path(layout.root) / "_state" / "stream" / "watermark.json").read_text())
    return datetime.fromisoformat(doc["watermark"])


def test_restart_resumes_where_it_stopped(
    spark: SparkSession, spark_resource: SparkResource, kafka_resource: KafkaResource, tmp_path: Path
) -> None:
    early, late = (
        generate(1500, seed=1, start=START, faults=FAULTS),
        generate(700, seed=2, start=START, faults=FAULTS),
    )
    assert newest_event(late) < newest_event(early), "the second run must bring only older events"
    first = produce(kafka_resource, early)
    resource = streaming_resource(spark_resource, kafka_resource, tmp_path / "lake", live_stats=False)
    assert resource.run(StreamMode.AVAILABLE_NOW, log=lambda _: None).input_rows == len(first)
    second = produce(kafka_resource, late)
    assert resource.run(StreamMode.AVAILABLE_NOW, log=lambda _: None).input_rows == len(second)
    assert_exactly_once(spark, resource.lake.layout, {**first, **second})
    assert resource.run(StreamMode.AVAILABLE_NOW, log=lambda _: None).input_rows == 0
    # Published with the live statistics off too, and a restart never moves it back.
    assert published_watermark(resource.lake.layout) == newest_event(early) - timedelta(minutes=10)


def _commits(checkpoint: Path) -> int:
    commits = checkpoint / "commits"
    return len([p for p in commits.iterdir() if p.name.isdigit()]) if commits.exists() else 0


@pytest.mark.slow
def test_sigkill_mid_run_then_restart_loses_and_duplicates_nothing(
    spark: SparkSession, spark_resource: SparkResource, kafka_resource: KafkaResource, tmp_path: Path
) -> None:
    landed = produce(kafka_resource, generate(12_000, seed=3, start=START, faults=FAULTS))
    lake = tmp_path / "lake"
    cmd = [
        sys.executable, "-m", "iot_pipeline.streaming", "--mode", "available-now",
        "--bootstrap-servers", kafka_resource.bootstrap_servers, "--topic", kafka_resource.topic,
        "--lake-root", str(lake), "--master", "local[2]", "--max-offsets-per-trigger", "500",
        "--metrics-port", "0", "--no-live-stats",
    ]  # fmt: skip
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    log = (tmp_path / "stream.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    checkpoint = lake / "_state" / "checkpoints" / "bronze"
    deadline = time.monotonic() + 240
    while _commits(checkpoint) < 2:
        assert proc.poll() is None, (tmp_path / "stream.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "stream committed no batch in time"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert _commits(checkpoint) < 24, "the kill should land mid-run, before all 24 batches committed"

    resource = streaming_resource(
        spark_resource, kafka_resource, lake, live_stats=False, max_offsets_per_trigger=500
    )
    resource.run(StreamMode.AVAILABLE_NOW, log=lambda _: None)
    assert_exactly_once(spark, resource.lake.layout, landed)


def test_continuous_mode_picks_up_new_records_and_stops_on_request(
    spark: SparkSession, spark_resource: SparkResource, kafka_resource: KafkaResource, tmp_path: Path
) -> None:
    resource = streaming_resource(spark_resource, kafka_resource, tmp_path / "lake", live_stats=False)
    stop = threading.Event()
    outcome: dict[str, object] = {}
    runner = threading.Thread(
        target=lambda: outcome.update(
            totals=resource.run(StreamMode.CONTINUOUS, log=lambda _: None, stop=stop)
        )
    )
    runner.start()
    try:
        time.sleep(3)  # the query is running before the records arrive
        landed = produce(kafka_resource, generate(500, seed=4, start=START, faults=FaultRates.none()))
        bronze_dir = Path(resource.lake.layout.bronze_events)
        deadline = time.monotonic() + 120
        while True:
            if any(bronze_dir.glob("event_date=*/event_hour=*/ingest_batch=*/*.parquet")):
                count = spark.read.parquet(str(bronze_dir)).count()
                if count == len(landed):
                    break
            assert runner.is_alive(), "the continuous stream ended on its own"
            assert time.monotonic() < deadline, "records produced while running never reached bronze"
            time.sleep(1)
    finally:
        stop.set()
        runner.join(60)
    assert not runner.is_alive(), "stop request not honoured"
    assert not any(q.isActive for q in spark.streams.active)
    assert outcome["totals"].bronze_rows == len(landed)

"""Fuzz: 10,000+ untrusted records through real Kafka, the stream, the hourly and daily assets, a sensor tick.

Every class of bad input the contract names, valid events with resends, and random mutations of valid
events. The promises checked: the stream never stops; every Kafka record (by partition and offset)
lands in exactly one of bronze or quarantine; every named class gets its own reason and every
quarantine row has one; every valid event is in silver exactly once; the assets' blocking checks pass
on what the stream accepted; a sensor tick evaluated by Dagster's own CLI completes afterwards.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pyarrow.dataset as pads
import pytest

from iot_pipeline.assets import ASSETS
from iot_pipeline.checks import CHECKS
from iot_pipeline.ingestion.fuzz import ANY, fuzz_corpus, ledger, produce_corpus
from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import SparkResource
from iot_pipeline.sensors import sensor_resources
from iot_pipeline.streaming.resource import SparkStreamingResource, StreamMode

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.spark, pytest.mark.slow]

RECORDS = 10_000
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
REPO = Path(__file__).resolve().parents[2]


def read_rows(path: Path, columns: list[str]) -> list[dict]:
    if not path.exists():
        return []
    return pads.dataset(str(path), partitioning="hive").to_table(columns=columns).to_pylist()


def test_fuzz_corpus_through_the_whole_pipeline(
    spark_resource: SparkResource, kafka_resource: KafkaResource, tmp_path: Path
) -> None:
    day = (datetime.now(timezone.utc) - timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)
    hours = [day + timedelta(hours=i) for i in range(3)]
    corpus = fuzz_corpus(RECORDS, hours, seed=11)
    assert len(corpus) >= RECORDS
    producer = kafka_resource.producer(**{"enable.idempotence": True, "acks": "all", "linger.ms": 20})
    stored = produce_corpus(producer, kafka_resource.topic, corpus)
    assert len(stored) == len(corpus)

    lake = LakeResource(root=str(tmp_path / "lake"))
    stream = SparkStreamingResource(
        spark=spark_resource, kafka=kafka_resource, lake=lake, metrics_port=0, max_offsets_per_trigger=4000
    )
    totals = stream.run(StreamMode.AVAILABLE_NOW, log=lambda _: None)
    assert totals.batches >= 3, "several micro-batches: the stream kept going after bad records"
    assert totals.input_rows == len(corpus)

    # Every record in exactly one of bronze or quarantine, by Kafka coordinates.
    coords = ["kafka_partition", "kafka_offset"]
    bronze = read_rows(
        tmp_path / "lake" / "bronze" / "events", [*coords, "event_id", "event_date", "event_hour"]
    )
    quarantine = read_rows(tmp_path / "lake" / "quarantine" / "events", [*coords, "reason", "raw_payload"])
    book = ledger(
        stored,
        [(r["kafka_partition"], r["kafka_offset"]) for r in bronze],
        [(r["kafka_partition"], r["kafka_offset"], r["reason"]) for r in quarantine],
    )
    assert (book.missing, book.duplicated, book.in_both, book.unreasoned) == (0, 0, 0, 0), book
    assert book.bronze + book.quarantined == len(corpus)
    assert not book.wrong_reason, book.wrong_reason[:10]
    named = {r.expected for r in corpus if r.expected not in (None, ANY)}
    assert named <= set(book.by_reason), named - set(book.by_reason)
    print("\nquarantined per reason:", book.by_reason)
    print("mutations:", dict(Counter(r.kind for r in corpus if r.expected is ANY)))

    # Every accepted event sits in one of the fuzzed hours.
    labels = {(h.strftime("%Y-%m-%d"), h.hour) for h in hours}
    assert {(str(r["event_date"]), int(r["event_hour"])) for r in bronze} <= labels

    # Hourly (as one single-run backfill of the three hours) and daily assets, checks included.
    instance = dg.DagsterInstance.ephemeral()
    resources = {"spark": spark_resource, "lake": lake, "kafka": kafka_resource, **sensor_resources()}
    fmt = "%Y-%m-%d-%H:%M"
    result = dg.materialize(
        [*ASSETS, *CHECKS],
        selection=dg.AssetSelection.assets(["silver", "events"], ["silver", "device_minute_stats"]),
        tags=dict(zip(RANGE_TAGS, (hours[0].strftime(fmt), hours[-1].strftime(fmt)), strict=True)),
        instance=instance,
        resources=resources,
    )
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks), [c.check_name for c in checks if not c.passed]
    daily = dg.materialize(
        [*ASSETS, *CHECKS],
        selection=dg.AssetSelection.assets(
            ["gold", "daily_event_duration_p95"], ["gold", "daily_device_type_summary"]
        ),
        partition_key=day.strftime("%Y-%m-%d"),
        instance=instance,
        resources=resources,
    )
    assert daily.success

    # Every valid event (by event_id, over resends) is in silver exactly once.
    silver = read_rows(tmp_path / "lake" / "silver" / "events", ["event_id"])
    silver_ids = Counter(r["event_id"] for r in silver)
    assert max(silver_ids.values()) == 1
    assert set(silver_ids) == {r["event_id"] for r in bronze}
    assert {r.event_id for r in corpus if r.expected is None} <= set(silver_ids)
    gold = read_rows(tmp_path / "lake" / "gold" / "daily_event_duration_p95", ["device_type"])
    assert gold, "the fuzzed day has enough distinct events per type for a p95"

    # A sensor tick, evaluated by Dagster itself, completes on the lake the fuzz left behind.
    env = {
        **os.environ,
        "IOT_LAKE_ROOT": str(tmp_path / "lake"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }
    (tmp_path / "dagster_home").mkdir()
    outputs = {}
    dagster = str(Path(sys.executable).parent / "dagster")
    for sensor in ("bronze_hours_sensor", "daily_rollup_sensor"):
        tick = subprocess.run(
            [dagster, "sensor", "preview", sensor, "-m", "iot_pipeline.definitions"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        # `sensor preview` exits 0 even when the evaluation raised: read what it printed.
        assert tick.returncode == 0, tick.stdout[-2000:] + tick.stderr[-2000:]
        assert "Error" not in tick.stdout + tick.stderr, tick.stdout[-3000:] + tick.stderr[-3000:]
        outputs[sensor] = tick.stdout
    # This instance has no runs yet: the hourly sensor asks for the fuzzed hours (one backfill of the
    # range, or one run per hour), and for nothing else.
    requested = re.search(r"Sensor returning run requests for (\d+) run", outputs["bronze_hours_sensor"])
    assert requested and 1 <= int(requested.group(1)) <= len(hours), outputs["bronze_hours_sensor"][-2000:]

"""The commands of docs/operations.md marked "(tested)", run as an operator runs them.

Lag, checkpoint show and reset run as ``iot-pipeline`` subprocesses against a lake the stream wrote
(real Kafka, real Spark); the reset is then proven safe: after it, the stream continues where the old
checkpoint committed, every Kafka record is in bronze or quarantine exactly once, and no batch of
the old checkpoint was overwritten. The quarantine query is the runbook's DuckDB snippet.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from iot_pipeline.ingestion.generator import generate
from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.resources.spark import SparkResource
from iot_pipeline.streaming.resource import StreamMode
from iot_pipeline_tests.integration.test_streaming import (
    FAULTS,
    START,
    assert_exactly_once,
    produce,
    streaming_resource,
)

pytestmark = [pytest.mark.kafka, pytest.mark.spark]

REPO = Path(__file__).resolve().parents[2]
RUNBOOK = REPO / "docs" / "operations.md"
CLI = str(Path(sys.executable).parent / "iot-pipeline")


def cli(args: list[str], lake: Path, kafka: KafkaResource, ok: tuple[int, ...] = (0,)) -> str:
    env = {
        **os.environ,
        "IOT_LAKE_ROOT": str(lake),
        "IOT_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "IOT_KAFKA_TOPIC": kafka.topic,
    }
    proc = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode in ok, (
        f"iot-pipeline {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    )
    return proc.stdout


def total_lag(output: str) -> int:
    return int(re.search(r"total lag (\d+)", output).group(1))


def batch_dirs(dataset: Path) -> set[str]:
    return {str(p.relative_to(dataset)) for p in dataset.rglob("ingest_batch=*") if p.is_dir()}


def test_runbook_commands_are_documented() -> None:
    text = RUNBOOK.read_text()
    for command in (
        "iot-pipeline checkpoint show",
        "iot-pipeline checkpoint lag --max-lag 100000",
        "iot-pipeline checkpoint reset",
        "iot-pipeline checkpoint reset --from earliest",
        "--select silver/events,silver/event_id_index,silver/device_minute_stats",
        "--partition-range 2026-11-20-00:00...2026-11-20-23:00",
        "--select gold/daily_event_duration_p95,gold/daily_device_type_summary --partition 2026-11-20",
    ):
        assert command in text, command


def test_lag_show_and_a_safe_checkpoint_reset(
    spark: SparkSession, spark_resource: SparkResource, kafka_resource: KafkaResource, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    first = produce(kafka_resource, generate(1200, seed=11, start=START, faults=FAULTS))
    resource = streaming_resource(spark_resource, kafka_resource, lake, live_stats=False)
    resource.run(StreamMode.AVAILABLE_NOW, log=lambda _: None)

    shown = json.loads(cli(["checkpoint", "show"], lake, kafka_resource))
    last = shown["last_committed_batch"]
    assert last >= 0 and shown["batch_base"] == 0
    assert sum(shown["committed_offsets"][kafka_resource.topic].values()) == len(first)
    assert total_lag(cli(["checkpoint", "lag", "--max-lag", "0"], lake, kafka_resource)) == 0

    second = produce(kafka_resource, generate(500, seed=12, start=START, faults=FAULTS))
    lagging = cli(["checkpoint", "lag", "--max-lag", "100"], lake, kafka_resource, ok=(1,))
    assert total_lag(lagging) == len(second)
    assert len(re.findall(r"\[\d+\] lag \d+", lagging)) == 3  # one line per partition

    bronze, quarantine = lake / "bronze" / "events", lake / "quarantine" / "events"
    before = {p: (bronze / p).stat().st_mtime_ns for p in batch_dirs(bronze)}
    cli(["checkpoint", "reset"], lake, kafka_resource)
    checkpoints = lake / "_state" / "checkpoints"
    assert not (checkpoints / "bronze").exists()
    assert [p.name.startswith("bronze.reset-") for p in checkpoints.iterdir()] == [True]
    resume = json.loads((lake / "_state" / "stream" / "resume.json").read_text())
    assert resume["batch_base"] == last + 1
    assert resume["starting_offsets"] == shown["committed_offsets"]

    # The restarted stream reads exactly the records produced after the old checkpoint's commit.
    totals = resource.run(StreamMode.AVAILABLE_NOW, log=lambda _: None)
    assert totals.input_rows == len(second)
    assert_exactly_once(spark, resource.lake.layout, {**first, **second})
    after = batch_dirs(bronze)
    assert all((bronze / p).stat().st_mtime_ns == t for p, t in before.items()), "an old batch was rewritten"
    new = {int(p.rsplit("=", 1)[1]) for p in after - set(before)}
    assert new and min(new) == last + 1
    assert batch_dirs(quarantine)
    assert total_lag(cli(["checkpoint", "lag", "--max-lag", "0"], lake, kafka_resource)) == 0

    # A second reset from "earliest" re-reads the whole topic on top, under fresh batch ids.
    cli(["checkpoint", "reset", "--from", "earliest"], lake, kafka_resource)
    totals = resource.run(StreamMode.AVAILABLE_NOW, log=lambda _: None)
    assert totals.input_rows == len(first) + len(second)


def test_runbook_quarantine_query(
    spark_resource: SparkResource, kafka_resource: KafkaResource, tmp_path: Path
) -> None:
    records = generate(800, seed=13, start=START, faults=FAULTS)
    produce(kafka_resource, records, [b"{not json"])
    streaming_resource(spark_resource, kafka_resource, tmp_path / ".local" / "lake", live_stats=False).run(
        StreamMode.AVAILABLE_NOW, log=lambda _: None
    )
    snippet = RUNBOOK.read_text().split('.venv/bin/python -c "', 1)[1].split('"', 1)[0]
    proc = subprocess.run(
        [sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "malformed_json" in proc.stdout
    malformed = sum(1 for r in records if r.kind == "malformed") + 1
    counts = dict(re.findall(r"│\s*(\S+)\s*│\s*(\d+)\s*│", proc.stdout))
    assert sum(int(n) for n in counts.values()) == malformed

"""End to end on a real broker, real Spark and a real Dagster instance.

Simulator history (with duplicates, late and malformed records) plus a rare device type -> Kafka ->
stream (available-now) -> hourly sensor tick -> hourly runs -> daily sensor tick -> daily run; then the
daily p95 is compared with an independent numpy computation over exactly the records the test produced.
"""

from __future__ import annotations

import csv
import json
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow.dataset as pads
import pytest

from iot_pipeline.assets import ASSETS
from iot_pipeline.checks import CHECKS
from iot_pipeline.ingestion.faults import FaultRates
from iot_pipeline.ingestion.generator import EventGenerator, SimRecord
from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import SparkResource
from iot_pipeline.sensors import sensor_resources
from iot_pipeline.sensors.catchup import requested_partitions
from iot_pipeline.sensors.daily import daily_rollup_sensor
from iot_pipeline.sensors.hourly import bronze_hours_sensor
from iot_pipeline.streaming.resource import SparkStreamingResource, StreamMode

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.spark, pytest.mark.slow]

DAY = "2026-11-10"
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
RARE_TYPE, RARE_EVENTS = "seismic", 150


def rare_events() -> list[SimRecord]:
    """A device type far below the 500-events rule: it must be excluded from the day's result."""
    start = datetime.fromisoformat(f"{DAY}T00:00:00+00:00")
    records = []
    for i in range(RARE_EVENTS):
        event = {
            "event_id": str(uuid.UUID(int=i + 1)),
            "device_id": "seis-1",
            "device_type": RARE_TYPE,
            "event_timestamp": (start + timedelta(minutes=9 * i)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "event_duration": 100.0 + i,
            "value": 0.01 * i,
        }
        records.append(SimRecord("seis-1", json.dumps(event).encode(), "valid", None, RARE_TYPE, "normal"))
    return records


def produce(kafka: KafkaResource, records: list[SimRecord]) -> None:
    producer = kafka.producer(**{"enable.idempotence": True, "acks": "all", "linger.ms": 5})
    for r in records:
        producer.produce(kafka.topic, key=r.key, value=r.value)
        producer.poll(0)
    assert producer.flush(60) == 0


def expected_p95(records: list[SimRecord], day: str) -> dict[str, dict[str, float]]:
    """The spec's rule, computed independently: distinct events >= 500, 3 sample sigma, numpy p95."""
    by_id: dict[str, dict] = {}
    for r in records:
        if r.kind != "malformed":
            event = r.event
            ts = datetime.fromisoformat(event["event_timestamp"].replace("Z", "+00:00")).astimezone(
                timezone.utc
            )
            if ts.strftime("%Y-%m-%d") == day:
                by_id.setdefault(event["event_id"], event)
    durations: dict[str, list[float]] = {}
    for event in by_id.values():
        durations.setdefault(event["device_type"], []).append(float(event["event_duration"]))
    out = {}
    for device_type, values in durations.items():
        d = np.array(values)
        if len(d) < 500:
            continue
        mean, std = d.mean(), d.std(ddof=1)
        kept = d[np.abs(d - mean) <= 3 * std]
        out[device_type] = {
            "events_total": len(d),
            "events_kept": len(kept),
            "p95": float(np.percentile(kept, 95)),
            "mean": float(mean),
            "stddev": float(std),
        }
    return out


def contiguous_ranges(keys: list[str]) -> list[tuple[str, str]]:
    fmt = "%Y-%m-%d-%H:%M"
    hours = sorted(datetime.strptime(k, fmt) for k in keys)
    ranges, start, prev = [], hours[0], hours[0]
    for h in hours[1:]:
        if h - prev != timedelta(hours=1):
            ranges.append((start, prev))
            start = h
        prev = h
    ranges.append((start, prev))
    return [(a.strftime(fmt), b.strftime(fmt)) for a, b in ranges]


def test_simulated_history_flows_to_the_daily_p95(
    spark_resource: SparkResource, kafka_resource: KafkaResource, tmp_path: Path
) -> None:
    generator = EventGenerator(
        seed=42,
        start=datetime.fromisoformat(f"{DAY}T00:00:00+00:00"),
        faults=FaultRates(anomaly=0.02, duplicate=0.03, malformed=0.01, late=0.02),
    )
    records = [*generator.history(1, 600), *rare_events()]
    kinds = Counter(r.kind for r in records)
    assert kinds["duplicate"] and kinds["late"] and kinds["malformed"] and kinds["anomaly"]
    produce(kafka_resource, records)

    lake = LakeResource(root=str(tmp_path / "lake"))
    stream = SparkStreamingResource(spark=spark_resource, kafka=kafka_resource, lake=lake, metrics_port=0)
    totals = stream.run(StreamMode.AVAILABLE_NOW, log=lambda _: None)
    assert totals.input_rows == len(records)
    assert sum(totals.quarantined.values()) == kinds["malformed"]

    instance = dg.DagsterInstance.ephemeral()
    resources = {"spark": spark_resource, "lake": lake, "kafka": kafka_resource, **sensor_resources()}
    sensor_res = {"lake": lake, **sensor_resources()}

    # Hourly: one tick requests every closed hour with data, late hours of the day before included.
    with dg.build_sensor_context(instance=instance, resources=sensor_res) as context:
        hourly = bronze_hours_sensor(context)
    keys = [k for r in hourly.run_requests for k in requested_partitions(r)]  # runs and backfills
    event_hours = {
        datetime.fromisoformat(r.event["event_timestamp"].replace("Z", "+00:00")).strftime("%Y-%m-%d-%H:00")
        for r in records
        if r.kind != "malformed"
    }
    assert set(keys) == event_hours
    for start, end in contiguous_ranges(keys):  # single-run backfills, as the UI would launch them
        result = dg.materialize(
            [*ASSETS, *CHECKS],
            selection=dg.AssetSelection.assets(["silver", "events"], ["silver", "device_minute_stats"]),
            tags=dict(zip(RANGE_TAGS, (start, end), strict=True)),
            instance=instance,
            resources=resources,
        )
        assert result.success
    with dg.build_sensor_context(instance=instance, resources=sensor_res, cursor=hourly.cursor) as context:
        again = bronze_hours_sensor(context)
    assert not again.run_requests, "nothing new: the next tick requests nothing"

    # Daily: the day is requested once its hours are materialised.
    with dg.build_sensor_context(instance=instance, resources=sensor_res) as context:
        daily = daily_rollup_sensor(context)
    days = sorted(k for r in daily.run_requests for k in requested_partitions(r))
    assert DAY in days
    result = dg.materialize(
        [*ASSETS, *CHECKS],
        selection=dg.AssetSelection.assets(
            ["gold", "daily_event_duration_p95"], ["gold", "daily_device_type_summary"]
        ),
        partition_key=DAY,
        instance=instance,
        resources=resources,
    )
    assert result.success

    # Silver: duplicates removed, late events in their own hour.
    silver = (
        pads.dataset(str(tmp_path / "lake" / "silver" / "events"), partitioning="hive").to_table().to_pylist()
    )
    ids = [row["event_id"] for row in silver]
    assert len(ids) == len(set(ids))
    valid_ids = {r.event["event_id"] for r in records if r.kind != "malformed"}
    assert set(ids) == valid_ids
    by_id = {row["event_id"]: row for row in silver}
    for r in records:
        if r.kind == "late":
            ts = datetime.fromisoformat(r.event["event_timestamp"].replace("Z", "+00:00"))
            row = by_id[r.event["event_id"]]
            assert (str(row["event_date"]), int(row["event_hour"])) == (ts.strftime("%Y-%m-%d"), ts.hour)

    # Gold: the spec's p95, per device type, to 1e-9 relative; the rare type is excluded.
    expected = expected_p95(records, DAY)
    assert RARE_TYPE not in expected and len(expected) == len(generator.device_types)
    gold = pads.dataset(str(tmp_path / "lake" / "gold" / "daily_event_duration_p95"), partitioning="hive")
    rows = {r["device_type"]: r for r in gold.to_table().to_pylist() if str(r["event_date"]) == DAY}
    assert set(rows) == set(expected)
    for device_type, want in expected.items():
        got = rows[device_type]
        assert got["events_total"] == want["events_total"]
        assert got["events_kept"] == want["events_kept"]
        assert got["outliers_removed"] == want["events_total"] - want["events_kept"]
        assert got["p95_event_duration"] == pytest.approx(want["p95"], rel=1e-9)
        assert got["mean"] == pytest.approx(want["mean"], rel=1e-9)
        assert got["stddev"] == pytest.approx(want["stddev"], rel=1e-9)
    assert any(w["events_kept"] < w["events_total"] for w in expected.values()), "anomalies should be removed"

    csv_path = tmp_path / "lake" / "exports" / "daily_event_duration_p95" / f"event_date={DAY}.csv"
    with csv_path.open() as fh:
        exported = {row["device_type"]: row for row in csv.DictReader(fh)}
    assert set(exported) == set(expected)
    for device_type, want in expected.items():
        assert float(exported[device_type]["p95_event_duration"]) == pytest.approx(want["p95"], rel=1e-9)

    mats = [
        m
        for m in result.get_asset_materialization_events()
        if m.asset_key == dg.AssetKey(["gold", "daily_event_duration_p95"])
    ]
    excluded_note = str(mats[-1].materialization.metadata)
    assert RARE_TYPE in excluded_note

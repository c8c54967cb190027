"""The stream's parse-and-validate step on real Spark: every rule of the contract, one record each."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import pytest
from pyspark.sql import SparkSession

from iot_pipeline.contract.spark_schema import bronze_schema
from iot_pipeline.streaming.validation import QUARANTINE_COLUMNS, classify, parse_and_validate

GOOD = {
    "event_id": "0b7f5a52-4f3c-4a8e-9a51-0c1c2b7d9e01",
    "device_id": "dev-001",
    "device_type": "temperature",
    "event_timestamp": "2026-11-20T13:45:12.123Z",
    "event_duration": 123.5,
    "value": 21.25,
    "unit": "celsius",
    "status": "normal",
    "battery_level": 88,
    "signal_strength": -71.5,
    "location": "plant-a",
    "firmware_version": "1.4.2",
}


def _with(**changes):
    event = dict(GOOD)
    for key, value in changes.items():
        if value is _DROP:
            event.pop(key)
        else:
            event[key] = value
    return json.dumps(event, allow_nan=True)


_DROP = object()

CASES: list[tuple[str, str | None]] = [
    (_with(), None),
    (_with(extra_field="ignored", nested={"a": 1}), None),
    (_with(event_timestamp="2026-11-20T14:45:12+01:00"), None),
    (_with(event_timestamp="2026-11-20T13:45:12.123456789Z"), None),
    (_with(unit=_DROP, status=_DROP, battery_level=_DROP, signal_strength=_DROP), None),
    (_with(status=None), None),
    ("{broken json", "malformed_json"),
    ("[1, 2, 3]", "malformed_json"),
    ('"just a string"', "malformed_json"),
    ("", "malformed_json"),
    (_with(device_id=_DROP), "missing_field:device_id"),
    (_with(event_id=None), "missing_field:event_id"),
    (_with(event_duration="fast"), "wrong_type:event_duration"),
    (_with(value="12.5"), "wrong_type:value"),
    (_with(battery_level="full"), "wrong_type:battery_level"),
    (_with(device_type={"kind": "temperature"}), "wrong_type:device_type"),
    (_with(device_id="  "), "empty_field:device_id"),
    (_with(event_id="not-a-uuid"), "invalid_uuid:event_id"),
    (_with(event_timestamp="2026-11-20 13:45:12"), "invalid_timestamp"),
    (_with(event_timestamp="2026-11-20T13:45:12"), "invalid_timestamp"),
    (_with(event_timestamp="yesterday"), "invalid_timestamp"),
    (_with(value=math.nan), "non_finite:value"),
    (_with(event_duration=math.inf), "non_finite:event_duration"),
    (_with(event_duration=-5), "negative_duration"),
    (_with(battery_level=101), "out_of_range:battery_level"),
    (_with(signal_strength=-131), "out_of_range:signal_strength"),
    (_with(status="exploded"), "invalid_status"),
    ('{"event_id": "0b7f5a52-4f3c-4a8e-9a51-0c1c2b7d9e01", ' + '"pad": "' + "x" * 20000 + '"}', "oversized"),
]


def _kafka_frame(spark: SparkSession, payloads: list[str | None]):
    ts = datetime(2026, 11, 20, 13, 50, tzinfo=timezone.utc)
    rows = [
        (b"dev-001", p.encode() if p is not None else None, "iot-events", 0, i, ts)
        for i, p in enumerate(payloads)
    ]
    schema = "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"
    return spark.createDataFrame(rows, schema)


@pytest.mark.spark
def test_each_rule_gives_its_reason(spark: SparkSession) -> None:
    raw = _kafka_frame(spark, [payload for payload, _ in CASES])
    got = {r["kafka_offset"]: r["reason"] for r in classify(raw).select("kafka_offset", "reason").collect()}
    expected = {i: reason for i, (_, reason) in enumerate(CASES)}
    assert got == expected


@pytest.mark.spark
def test_split_keeps_every_record_and_shapes_both_sides(spark: SparkSession) -> None:
    raw = _kafka_frame(spark, [payload for payload, _ in CASES])
    valid, quarantine = parse_and_validate(raw)
    n_valid = sum(1 for _, reason in CASES if reason is None)
    assert valid.count() == n_valid
    assert quarantine.count() == len(CASES) - n_valid
    assert valid.columns == bronze_schema().fieldNames()
    assert tuple(quarantine.columns) == QUARANTINE_COLUMNS
    first = valid.where("kafka_offset = 0").first()
    assert first["event_timestamp"] == datetime(2026, 11, 20, 13, 45, 12, 123000)
    assert (first["event_date"], first["event_hour"]) == ("2026-11-20", 13)
    offset_tz = valid.where("kafka_offset = 2").first()
    assert (offset_tz["event_date"], offset_tz["event_hour"]) == ("2026-11-20", 13)
    bad = quarantine.where("kafka_offset = 6").first()
    assert bad["raw_payload"] == "{broken json"
    assert bad["kafka_topic"] == "iot-events" and bad["kafka_partition"] == 0

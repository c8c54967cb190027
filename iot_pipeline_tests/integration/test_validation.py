"""The stream's parse-and-validate step on real Spark: every rule of the contract, one record each."""

from __future__ import annotations

import base64
import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession

from iot_pipeline.contract.rules import EventTimeRules
from iot_pipeline.contract.spark_schema import bronze_schema
from iot_pipeline.streaming.validation import (
    QUARANTINE_COLUMNS,
    classify,
    parse_and_validate,
    quarantine_for_kafka,
)

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
    # untrusted input beyond the field rules
    (_with(location="cafe").encode().replace(b'"cafe"', b'"caf\xe9"'), "invalid_utf8"),  # Latin-1 é
    (b"\xff\xfe" + _with().encode(), "invalid_utf8"),
    ('{"device_id": "other", ' + _with()[1:], "duplicate_key"),
    # a repeat among keys that fill no field: a null, an unknown key, one that also fills a field
    ('{"location": null, ' + _with(location=None)[1:], "duplicate_key"),
    ('{"x": 1, "x": 2, ' + _with(unit=_DROP)[1:], "duplicate_key"),
    ('{"extra": 1, "device_id": "dev-001", ' + _with(location=None)[1:], "duplicate_key"),
    ('{"location": null, "extra": 1, ' + _with(location=_DROP)[1:], None),
    (_with(device_id="\t\t"), "empty_field:device_id"),
    (_with(device_type="\u00a0"), "empty_field:device_type"),
    (_with(device_id="dev\u0000x"), "control_character:device_id"),
    (_with(event_id="0b7f5a52-4f3c-4a8e-9a51-0c1c2b7d9e01\n"), "control_character:event_id"),
    (_with(location="a\u0000b"), "control_character:location"),
    (_with(location="line 1\nline 2"), None),  # free text may hold line breaks, not NUL
    (_with(value=10**30), None),
    (_with(value="__V__").replace('"__V__"', "1e400"), "non_finite:value"),
    (
        '{"event_id": "0b7f5a52-4f3c-4a8e-9a51-0c1c2b7d9e01", "x": ' + "[" * 5000 + "]" * 5000 + "}",
        "malformed_json",
    ),
    # event time against the record's Kafka timestamp (13:50 below) and the first partition
    (_with(event_timestamp="2026-11-20T13:54:00Z"), None),  # within the 5-minute clock-skew tolerance
    (_with(event_timestamp="2026-11-20T14:00:00Z"), "future_timestamp"),
    (_with(event_timestamp="9999-12-31T23:30:00Z"), "future_timestamp"),
    (_with(event_timestamp="2025-12-31T23:59:59Z"), "before_partitions_start"),
    (_with(event_timestamp="1970-01-01T00:00:00Z"), "before_partitions_start"),
]


def _kafka_frame(spark: SparkSession, payloads: list[str | bytes | None]):
    ts = datetime(2026, 11, 20, 13, 50, tzinfo=timezone.utc)
    rows = [
        (b"dev-001", p.encode() if isinstance(p, str) else p, "iot-events", 0, i, ts)
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


@pytest.mark.spark
def test_too_old_needs_a_horizon(spark: SparkSession) -> None:
    old = _with(event_timestamp="2026-01-02T00:00:00Z")
    raw = _kafka_frame(spark, [old])
    assert classify(raw).first()["reason"] is None
    rules = EventTimeRules(not_before=datetime(2026, 1, 1, tzinfo=timezone.utc), max_age=timedelta(days=30))
    assert classify(raw, time_rules=rules).first()["reason"] == "too_old"


@pytest.mark.spark
def test_quarantine_stays_readable_and_keeps_the_exact_bytes(spark: SparkSession, tmp_path: Path) -> None:
    payloads = [payload for payload, _ in CASES]
    _, quarantine = parse_and_validate(_kafka_frame(spark, payloads))
    out = str(tmp_path / "quarantine")
    quarantine.write.parquet(out)
    by_offset = {r["kafka_offset"]: r for r in pq.read_table(out).to_pylist()}  # pyarrow validates UTF-8
    for offset, (payload, reason) in enumerate(CASES):
        if reason is None:
            assert offset not in by_offset
            continue
        row = by_offset[offset]
        assert row["reason"] == reason
        if reason == "invalid_utf8":
            assert base64.b64decode(row["raw_payload_base64"]) == payload
            assert "\ufffd" in row["raw_payload"]
        else:
            assert row["raw_payload_base64"] is None
    rows = duckdb.sql(f"SELECT reason, raw_payload FROM read_parquet('{out}/*.parquet')").fetchall()
    assert len(rows) == len(by_offset)
    assert spark.read.parquet(out).count() == len(by_offset)


@pytest.mark.spark
def test_quarantine_for_kafka_truncates_what_would_not_fit(spark: SparkSession) -> None:
    huge = '{"pad": "' + "x" * 200_000 + '"}'
    _, quarantine = parse_and_validate(_kafka_frame(spark, [huge, b"\xff" * 50_000, "{broken"]))
    rows = {r["kafka_offset"]: r for r in quarantine_for_kafka(quarantine, 16 * 1024).collect()}
    assert rows[0]["raw_payload_truncated"] and len(rows[0]["raw_payload"].encode()) <= 16 * 1024
    assert len(rows[1]["raw_payload_base64"]) <= 4 * (16 * 1024 // 3 + 1)
    assert not rows[2]["raw_payload_truncated"] and rows[2]["raw_payload"] == "{broken"

"""The counted rules agree with pandera's own PySpark validation of the same model."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest
from pandera.config import ValidationDepth, config_context
from pyspark.sql import types as T

from iot_pipeline.assets.models import silver_events_model
from iot_pipeline.checks.validation import sql_literal, validate
from iot_pipeline.contract.spark_schema import bronze_schema

pytestmark = pytest.mark.spark
TS = datetime(2026, 1, 5, 7, 30, tzinfo=timezone.utc)


def event(i: int, **overrides) -> dict:
    row = dict(
        event_id=str(uuid.UUID(int=i)), device_id="d1", device_type="co2", event_timestamp=TS, event_duration=10.0,
        value=1.0, unit="ppm", status="normal", battery_level=50.0, signal_strength=-50.0, location="x",
        firmware_version="1", kafka_topic="t", kafka_partition=0, kafka_offset=i, kafka_timestamp=TS,
        ingest_time=TS, event_date="2026-01-05", event_hour=7,
    )  # fmt: skip
    row.update(overrides)
    return row


def test_counts_match_pandera_verdicts(spark, tmp_path) -> None:
    nullable = T.StructType([T.StructField(f.name, f.dataType, True) for f in bronze_schema().fields])
    rows = [event(i) for i in range(6)] + [
        event(1),  # duplicate id
        event(10, device_id=None),
        event(11, status="broken", battery_level=float("nan")),
        event(12, event_duration=float("inf"), device_type=""),
        event(13, event_hour=8),
    ]
    # through Parquet, as the checks read it (and Spark jobs on Python-built rows are slow)
    spark.createDataFrame(rows, nullable).coalesce(1).write.parquet(str(tmp_path / "t"))
    df = spark.read.parquet(str(tmp_path / "t"))
    model = silver_events_model()
    report = validate(df, model)
    assert report.failed() == {
        "device_id:not_null": 1,
        "device_type:str_length": 1,
        "event_duration:in_range": 1,
        "status:isin": 1,
        "battery_level:in_range": 1,
        "event_time_in_partition": 1,
        "event_id:unique": 2,
        "contract_rules": 3,  # events 10, 11 and 12 break value rules of the contract
    }
    assert report.rows == len(rows)
    with config_context(validation_depth=ValidationDepth.SCHEMA_AND_DATA):
        errors = model.validate(df, lazy=True).pandera.errors
    pandera_failed = {
        (e.get("column") or e.get("schema"), e["check"])
        for cat in errors.values()
        for items in cat.values()
        for e in items
    }
    pandera_columns = {c for c, _ in pandera_failed}
    ours = {name.split(":")[0] for name in report.failed()}
    assert {"device_id", "device_type", "event_duration", "status", "battery_level"} <= pandera_columns
    assert ours - {"event_time_in_partition", "event_id", "contract_rules"} <= pandera_columns
    # pandera runs the same SQL as a dataframe check, reported by its description
    assert any("value rule of the event contract" in check for _, check in pandera_failed)


def test_wrong_type_and_missing_column_are_schema_errors(spark) -> None:
    df = spark.createDataFrame([event(1)], bronze_schema()).drop("unit")
    df = df.withColumn("kafka_offset", df.kafka_offset.cast("int"))
    report = validate(df, silver_events_model())
    joined = " ".join(report.schema_errors)
    assert "unit" in joined and "kafka_offset" in joined
    assert "kafka_offset:greater_than_or_equal_to" not in report.failures  # rules of mistyped columns skipped


def test_unique_key_counted_in_the_one_aggregation(spark) -> None:
    """A passing frame reports the key as checked (0); repeated nulls are one key value, as groupBy has it."""
    report = validate(
        spark.createDataFrame([event(i) for i in range(3)], bronze_schema()), silver_events_model()
    )
    assert report.failures["event_id:unique"] == 0 and report.failed() == {}
    nullable = T.StructType([T.StructField(f.name, f.dataType, True) for f in bronze_schema().fields])
    rows = [event(1), event(2, event_id=None), event(3, event_id=None)]
    report = validate(spark.createDataFrame(rows, nullable), silver_events_model())
    assert report.failed(["event_id:unique", "event_id:not_null"]) == {
        "event_id:unique": 2,
        "event_id:not_null": 2,
    }
    assert report.duplicate_keys["event_id:unique"] == [{"event_id": None, "count": 2}]


def test_sql_literals_read_back_as_the_values(spark) -> None:
    values = [
        "^\\d{4}-\\d{2}$",
        "it's",
        "back\\slash",
        -130,
        0,
        2**40,
        1.5,
        -0.1,
        float("inf"),
        float("-inf"),
        True,
    ]
    row = spark.sql("SELECT " + ", ".join(f"{sql_literal(v)} AS c{i}" for i, v in enumerate(values))).first()
    assert list(row) == values
    assert spark.sql(f"SELECT {sql_literal(float('nan'))} AS v").first().v != 0  # NaN

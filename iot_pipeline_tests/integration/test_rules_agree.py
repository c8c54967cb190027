"""One rule set: the stream, silver's re-validation and the Pandera check agree on a shared corpus.

The fuzz corpus (every named class of bad input, valid events, random mutations) goes through the
stream's classifier; every record that parses into the contract's typed fields is then judged again,
as a bronze-shaped row, by silver's ``valid_event`` and by the ``contract_rules`` check of the silver
Pandera model. A row the stream accepted must pass both; a row the stream rejected for a value rule
must fail both.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from iot_pipeline.assets.models import silver_events_model
from iot_pipeline.assets.silver_logic import valid_event
from iot_pipeline.checks.validation import validate
from iot_pipeline.contract.event import EVENT_FIELDS, FieldType
from iot_pipeline.contract.rules import value_rules
from iot_pipeline.contract.spark_schema import bronze_schema
from iot_pipeline.ingestion.fuzz import fuzz_corpus
from iot_pipeline.streaming.validation import classify

pytestmark = pytest.mark.spark


def test_stream_silver_and_pandera_apply_the_same_rules(spark: SparkSession) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    hours = [(now - timedelta(days=1)).replace(minute=0, second=0) + timedelta(hours=i) for i in range(3)]
    corpus = fuzz_corpus(3_000, hours, seed=5, now=now)
    kafka_time = now.replace(tzinfo=None)
    raw = spark.createDataFrame(
        [(r.key, r.value, "t", 0, i, kafka_time) for i, r in enumerate(corpus)],
        "key binary, value binary, topic string, partition int, offset long, timestamp timestamp",
    )
    judged = {r.reason for r in value_rules()}
    classified = classify(raw)
    # Records that reached the typed fields: accepted, or rejected by a value rule.
    typed = classified.where(F.col("reason").isNull() | F.col("reason").isin(*judged))
    rows = typed.select(
        *[
            (F.col("event_time") if f.type is FieldType.TIMESTAMP else F.col(f"parsed.{f.name}")).alias(
                f.name
            )
            for f in EVENT_FIELDS
        ],
        "kafka_topic",
        "kafka_partition",
        "kafka_offset",
        "kafka_timestamp",
        (F.col("kafka_timestamp") + F.expr("INTERVAL 1 SECOND")).alias("ingest_time"),
        F.coalesce(F.date_format("event_time", "yyyy-MM-dd"), F.lit("2026-01-01")).alias("event_date"),
        F.coalesce(F.hour("event_time"), F.lit(0)).alias("event_hour"),
        F.col("reason").alias("stream_reason"),
    ).withColumn("silver_ok", valid_event())
    verdicts = rows.groupBy((F.col("stream_reason").isNull()).alias("stream_ok"), "silver_ok").count()
    table = {(r["stream_ok"], r["silver_ok"]): r["count"] for r in verdicts.collect()}
    accepted, rejected = table.get((True, True), 0), table.get((False, False), 0)
    assert accepted > 1_000 and rejected > 300, table
    assert table.get((True, False), 0) == 0 and table.get((False, True), 0) == 0, table

    bronze_cols = [f.name for f in bronze_schema().fields]
    report = validate(rows.select(*bronze_cols), silver_events_model())
    assert report.failures["contract_rules"] == rejected

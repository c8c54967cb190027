"""One rule set: the stream, silver's re-validation and the Pandera model agree, row by row, on a corpus.

The fuzz corpus (every named class of bad input, valid events, random mutations) goes through the
stream's classifier; every record that parses into the contract's typed fields is then judged again,
as a bronze-shaped row, by silver's ``valid_event`` and by each rule of the silver Pandera model (the
per-column checks derived from the contract and the ``contract_rules`` row check), as the asset check
counts them. For every row, identified by its Kafka offset:

* the three reject exactly the same rows (a row the stream accepted passes both others, a row the
  stream rejected for a value rule fails both);
* the reasons agree: the stream's quarantine reason is one of the contract rules the row breaks, and
  each failing Pandera column check is the column-level form of a contract rule the row breaks (and,
  where the column check is exact, is failing whenever that rule is broken).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from iot_pipeline.assets.models import silver_events_model
from iot_pipeline.assets.silver_logic import valid_event
from iot_pipeline.checks.validation import model_rules, validate
from iot_pipeline.contract.event import EVENT_FIELDS, FIELDS_BY_NAME, FieldType
from iot_pipeline.contract.rules import value_rules
from iot_pipeline.contract.spark_schema import bronze_schema
from iot_pipeline.ingestion.fuzz import fuzz_corpus
from iot_pipeline.streaming.validation import classify

pytestmark = pytest.mark.spark

CONTRACT_CHECK = "contract_rules"
# Column checks whose failure is exactly "one of these contract rules is broken"; ``str_length`` is
# weaker than ``empty_field`` (a blank but non-empty id passes it), so it is only checked one way.
EXACT_CHECKS = ("not_null", "in_range", "isin")


def contract_reasons_of(check: str) -> set[str] | None:
    """The contract rules whose column-level form is the Pandera check ``<column>:<check>``; None for
    a check that is not on a contract field (lineage, partition columns, row checks)."""
    column, _, kind = check.partition(":")
    field = FIELDS_BY_NAME.get(column)
    if field is None or not kind:
        return None
    if kind == "not_null":
        return {"invalid_timestamp" if field.type is FieldType.TIMESTAMP else f"missing_field:{column}"}
    if kind == "in_range":
        return {f"out_of_range:{column}", f"non_finite:{column}"} | (
            {"negative_duration"} if column == "event_duration" else set()
        )
    if kind == "isin":
        return {f"invalid_{column}"}
    if kind == "str_length":
        return {f"empty_field:{column}"}
    raise AssertionError(f"no contract rule known for the Pandera check {check}")


def names_where(conditions: list[tuple[Any, str]]) -> Any:
    """An array column of the names whose condition holds on the row, in order."""
    return F.filter(F.array(*[F.when(c, F.lit(n)) for c, n in conditions]), lambda x: x.isNotNull())


def judged_rows(spark: SparkSession) -> tuple[DataFrame, list[str]]:
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
    )
    bronze_cols = [f.name for f in bronze_schema().fields]
    return rows, bronze_cols


def test_stream_silver_and_pandera_reject_the_same_rows_for_the_same_reasons(spark: SparkSession) -> None:
    rows, bronze_cols = judged_rows(spark)
    bronze = rows.select(*bronze_cols)
    model = silver_events_model()
    present = {f.name: f.dataType.simpleString() for f in bronze.schema.fields}
    expected = {name: col.dtype.type.simpleString() for name, col in model.columns.items()}
    # The very rules (and Spark SQL) the asset check counts, evaluated per row here.
    pandera_rules = model_rules(model, present, expected)
    assert CONTRACT_CHECK in {r.name for r in pandera_rules}
    verdicts = rows.select(
        "kafka_offset",
        "stream_reason",
        valid_event().alias("silver_ok"),
        names_where([(F.expr(r.violation), r.name) for r in pandera_rules]).alias("pandera_failed"),
        names_where([(F.expr(r.violation), r.reason) for r in value_rules()]).alias("broken"),
    ).collect()

    stream = {r["kafka_offset"] for r in verdicts if r["stream_reason"] is not None}
    silver = {r["kafka_offset"] for r in verdicts if not r["silver_ok"]}
    pandera = {r["kafka_offset"] for r in verdicts if r["pandera_failed"]}
    pandera_contract = {r["kafka_offset"] for r in verdicts if CONTRACT_CHECK in r["pandera_failed"]}
    assert len(verdicts) - len(stream) > 1_000 and len(stream) > 300, (len(verdicts), len(stream))
    assert silver == stream, {"silver only": sorted(silver - stream), "stream only": sorted(stream - silver)}
    assert pandera == stream, {
        "pandera only": sorted(pandera - stream),
        "stream only": sorted(stream - pandera),
    }
    assert pandera_contract == stream

    disagreements = []
    for row in verdicts:
        broken = set(row["broken"])
        if row["stream_reason"] is not None and row["stream_reason"] not in broken:
            disagreements.append((row["kafka_offset"], "stream", row["stream_reason"], sorted(broken)))
        failed = set(row["pandera_failed"])
        for check in failed:
            reasons = contract_reasons_of(check)
            if reasons is not None and not reasons & broken:
                disagreements.append((row["kafka_offset"], "pandera", check, sorted(broken)))
        for rule in pandera_rules:
            reasons = contract_reasons_of(rule.name)
            exact = rule.name.partition(":")[2] in EXACT_CHECKS
            if reasons is not None and exact and reasons & broken and rule.name not in failed:
                disagreements.append((row["kafka_offset"], "pandera misses", rule.name, sorted(broken)))
    assert not disagreements, disagreements[:20]

    # The column checks do catch rows (else the reason comparison above would prove nothing).
    column_failures = {c for r in verdicts for c in r["pandera_failed"] if contract_reasons_of(c) is not None}
    assert {c.partition(":")[2] for c in column_failures} >= {"in_range", "isin"}, column_failures

    # The asset check's own counting agrees with the per-row verdicts.
    report = validate(bronze, model)
    assert report.failures[CONTRACT_CHECK] == len(stream)

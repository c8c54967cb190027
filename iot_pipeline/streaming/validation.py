"""Parse Kafka records against the event contract and split them into bronze rows and quarantine rows.

The same function serves the streaming job and the batch replay of an hour from Kafka, so a record
is judged the same way whichever path reads it. Everything is built-in Spark SQL (no Python UDFs):

* one ``from_json`` with the typed contract schema and a corrupt-record column, so a number sent as a
  string (or any other JSON the typed parser cannot read) is flagged without a second parse;
* one ``reason`` column, a ``CASE WHEN`` chain derived from the contract that names the first rule a
  record breaks (``missing_field:device_id``, ``wrong_type:event_duration``, ``invalid_timestamp``...);
  valid records have no reason. The expensive probes (``get_json_object``, ``json_object_keys``) sit
  in branches only bad records reach.

Scalar JSON values in string fields (``"device_id": 123``) are read as their text, the JSON parser's
standard coercion; objects and arrays there are rejected as ``wrong_type``.

Before parsing, a payload that is not valid UTF-8 is ``invalid_utf8`` (quarantine keeps it readable:
``raw_payload`` with U+FFFD for the bad bytes, ``raw_payload_base64`` with the exact bytes), and an
object that names a key twice is ``duplicate_key`` (parsers disagree on which value wins, so the event
is ambiguous). After parsing, the value rules of :mod:`iot_pipeline.contract.rules` apply, event time
against the record's Kafka timestamp included.
"""

from __future__ import annotations

import functools

from pyspark import SparkContext
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from iot_pipeline.contract.event import EVENT_FIELDS, MAX_RECORD_BYTES_DEFAULT, EventField, FieldType
from iot_pipeline.contract.rules import EventTimeRules, value_rules
from iot_pipeline.contract.spark_schema import event_schema

# ISO-8601 with a mandatory zone ('Z' or +hh:mm) and 0-9 fraction digits.
TIMESTAMP_PATTERN = "yyyy-MM-dd'T'HH:mm:ss[.SSSSSSSSS]XXX"
_CORRUPT = "_corrupt_record"

QUARANTINE_COLUMNS: tuple[str, ...] = (
    "raw_payload",
    "raw_payload_base64",
    "kafka_key",
    "reason",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "kafka_timestamp",
    "ingest_time",
    "kafka_date",
)


def _parse_schema() -> T.StructType:
    fields = [
        T.StructField(f.name, T.StringType() if f.type is FieldType.TIMESTAMP else f_type.dataType, True)
        for f, f_type in zip(EVENT_FIELDS, event_schema().fields, strict=True)
    ]
    return T.StructType([*fields, T.StructField(_CORRUPT, T.StringType(), True)])


def _present(field: EventField) -> Column:
    """The key exists with a non-null JSON value (only evaluated for records that failed to parse)."""
    return F.get_json_object(F.col("raw_payload"), f"$.{field.name}").isNotNull()


def _is_container(col: Column) -> Column:
    """The JSON reader hands an object or array in a string field over as its compact JSON text."""
    return col.startswith("{") | col.startswith("[")


def _stream_column(name: str) -> str:
    """SQL for a typed field of a parsed record, as :func:`~iot_pipeline.contract.rules.value_rules` asks.

    Arrival is the Kafka timestamp alone here (Kafka 4 stamps every record): the batch time would be
    a new literal in the generated code of every micro-batch (see :func:`classify`). A producer that
    stamps records in the future is bounded by the watermark's cap at the wall clock, and silver's
    re-validation, which has each row's ingest time, applies the full rule.
    """
    if name == "event_timestamp":
        return "event_time"
    if name == "kafka_timestamp":
        return "kafka_timestamp"
    if name == "ingest_time":
        return "CAST(NULL AS TIMESTAMP)"
    return f"parsed.{name}"


def reason_column(
    max_record_bytes: int = MAX_RECORD_BYTES_DEFAULT, time_rules: EventTimeRules | None = None
) -> Column:
    """First broken rule of each record, or null for a valid one; order matters and is tested.

    Built once per JVM, size limit and event-time rules: building it takes a few hundred py4j calls
    on the driver, which every micro-batch of the stream would otherwise pay (docs/streaming.md).
    """
    return _reason_column(max_record_bytes, time_rules or EventTimeRules.from_env(), id(SparkContext._jvm))


def _repeats_a_key(keys: Column) -> Column:
    """The object names a key twice. A repeated key fills a field another occurrence already filled,
    so an object whose keys each fill a different non-null field repeats none: only the other records
    (a null or unknown key, or a repeat) pay for the distinct count (its cost: docs/streaming.md)."""
    filled = sum((F.col(f"parsed.{f.name}").isNotNull().cast("int") for f in EVENT_FIELDS), F.lit(0))
    return (F.size(keys) != filled) & (F.size(keys) != F.size(F.array_distinct(keys)))


@functools.lru_cache(maxsize=8)
def _reason_column(max_record_bytes: int, time_rules: EventTimeRules, _jvm_id: int) -> Column:
    p = lambda name: F.col(f"parsed.{name}")  # noqa: E731
    corrupt = F.col(f"parsed.{_CORRUPT}").isNotNull()
    # A JSON text that is not an object parses to a struct of nulls (possibly flagged corrupt); the
    # probe that tells it from an object with missing fields only runs for such records.
    keys = F.json_object_keys(F.col("raw_payload"))
    not_an_object = keys.isNull()
    rules: list[tuple[Column, Column | str]] = [
        (F.col("payload_bytes") > F.lit(max_record_bytes), "oversized"),
        (~F.col("payload_utf8"), "invalid_utf8"),
        (F.col("parsed").isNull(), "malformed_json"),
        ((corrupt | p("event_id").isNull()) & not_an_object, "malformed_json"),
        (_repeats_a_key(keys), "duplicate_key"),
    ]
    for f in EVENT_FIELDS:
        value = p(f.name)
        if f.required:
            wrong = F.lit(f"wrong_type:{f.name}")
            missing = F.lit(f"missing_field:{f.name}")
            rules.append((value.isNull(), F.when(corrupt & _present(f), wrong).otherwise(missing)))
        elif f.type is FieldType.NUMBER:
            rules.append((value.isNull() & corrupt & _present(f), f"wrong_type:{f.name}"))
        if f.type is not FieldType.NUMBER:
            rules.append((value.isNotNull() & _is_container(value), f"wrong_type:{f.name}"))
    rules += [(F.expr(r.violation), r.reason) for r in value_rules(time_rules, _stream_column)]
    rules.append((corrupt, "malformed_record"))

    expr: Column | None = None
    for condition, reason in rules:
        outcome = reason if isinstance(reason, Column) else F.lit(reason)
        expr = F.when(condition, outcome) if expr is None else expr.when(condition, outcome)
    assert expr is not None
    return expr.otherwise(F.lit(None).cast("string"))


def classify(
    raw: DataFrame,
    max_record_bytes: int = MAX_RECORD_BYTES_DEFAULT,
    ingest_time: Column | None = None,
    time_rules: EventTimeRules | None = None,
) -> DataFrame:
    """Kafka source columns -> one row per record with parsed fields, lineage and ``reason``.

    ``ingest_time`` defaults to the query's current timestamp. The stream passes its batch time as an
    ISO-8601 *string* literal instead: Spark compiles timestamp literals into the generated code, so a
    new value per micro-batch meant new classes for the whole validation (compiled by Janino, then
    interpreted until the JIT caught up) in every batch; a string literal is a reference and the code
    stays the same. :func:`valid_rows` and :func:`quarantine_rows` cast it back.
    """
    text = F.col("value").cast("string")
    key = F.col("key").cast("string")
    parsed = raw.select(
        F.when(F.is_valid_utf8(key), key).otherwise(F.make_valid_utf8(key)).alias("kafka_key"),
        text.alias("raw_payload"),
        F.is_valid_utf8(text).alias("payload_utf8"),
        F.when(~F.is_valid_utf8(text), F.base64("value")).alias("raw_payload_base64"),
        F.octet_length("value").alias("payload_bytes"),
        F.col("topic").alias("kafka_topic"),
        F.col("partition").cast("int").alias("kafka_partition"),
        F.col("offset").cast("long").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        (F.current_timestamp() if ingest_time is None else ingest_time).alias("ingest_time"),
    ).withColumn(
        "parsed",
        F.when(
            F.col("payload_bytes") <= F.lit(max_record_bytes),
            F.from_json("raw_payload", _parse_schema(), {"columnNameOfCorruptRecord": _CORRUPT}),
        ),
    )
    parsed = parsed.withColumn(
        "event_time", F.try_to_timestamp(F.col("parsed.event_timestamp"), F.lit(TIMESTAMP_PATTERN))
    )
    parsed = parsed.withColumn(
        "raw_payload",
        F.when(F.col("payload_utf8"), F.col("raw_payload")).otherwise(F.make_valid_utf8("raw_payload")),
    )
    return parsed.withColumn("reason", reason_column(max_record_bytes, time_rules))


def _ingest_time() -> Column:
    """A timestamp already, or the stream's string literal (see :func:`classify`)."""
    return F.col("ingest_time").cast("timestamp")


def valid_rows(classified: DataFrame) -> DataFrame:
    """Bronze-shaped rows (see ``contract.spark_schema.bronze_schema``) of the records with no reason."""
    event_cols = [
        F.col("event_time").alias(f.name)
        if f.type is FieldType.TIMESTAMP
        else F.col(f"parsed.{f.name}").alias(f.name)
        for f in EVENT_FIELDS
    ]
    return classified.where(F.col("reason").isNull()).select(
        *event_cols,
        "kafka_topic",
        "kafka_partition",
        "kafka_offset",
        "kafka_timestamp",
        _ingest_time().alias("ingest_time"),
        F.date_format("event_time", "yyyy-MM-dd").alias("event_date"),
        F.hour("event_time").alias("event_hour"),
    )


def quarantine_rows(classified: DataFrame) -> DataFrame:
    """The rejected records as ``QUARANTINE_COLUMNS``."""
    computed = {
        "ingest_time": _ingest_time(),
        # Partition by the day the record reached Kafka, not the ingest day: a replayed batch then
        # lands in the same partition it overwrites (see streaming/sink.py).
        "kafka_date": F.date_format(F.coalesce("kafka_timestamp", _ingest_time()), "yyyy-MM-dd"),
    }
    return classified.where(F.col("reason").isNotNull()).select(
        *(computed[c].alias(c) if c in computed else F.col(c) for c in QUARANTINE_COLUMNS)
    )


def quarantine_for_kafka(bad: DataFrame, max_record_bytes: int) -> DataFrame:
    """Quarantine rows cut to fit a Kafka message: payloads beyond ``max_record_bytes`` are truncated.

    An oversized record can be as large as the broker accepts; republished whole, with its lineage and
    (for invalid UTF-8) its base64 copy, it would exceed the producer's size limit, fail the batch and
    crash-loop the stream. The lake's quarantine keeps the full payload; the Kafka copy says
    ``raw_payload_truncated`` and points to it by topic, partition and offset.
    """
    limit = F.lit(max_record_bytes)
    truncated = F.coalesce(F.octet_length("raw_payload") > limit, F.lit(False))
    return bad.select(
        *[
            F.when(truncated, F.substring("raw_payload", 1, max_record_bytes)).otherwise(F.col(c)).alias(c)
            if c == "raw_payload"
            else F.substring(c, 1, 4 * (max_record_bytes // 3 + 1)).alias(c)
            if c == "raw_payload_base64"
            else F.col(c)
            for c in bad.columns
        ],
        truncated.alias("raw_payload_truncated"),
    )


def parse_and_validate(
    raw: DataFrame,
    max_record_bytes: int = MAX_RECORD_BYTES_DEFAULT,
    time_rules: EventTimeRules | None = None,
) -> tuple[DataFrame, DataFrame]:
    """Split Kafka records (key, value, topic, partition, offset, timestamp) into (valid, quarantine)."""
    classified = classify(raw, max_record_bytes, time_rules=time_rules)
    return valid_rows(classified), quarantine_rows(classified)

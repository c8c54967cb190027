"""Spark schemas derived from the event contract.

``wire_schema`` parses the JSON value with every field as a string, so that presence and the JSON
type of each field can be checked separately (see :mod:`iot_pipeline.streaming.validation`);
``event_schema`` is the typed form of a valid event; ``bronze_schema`` adds the Kafka lineage
columns and the Hive partition columns that the stream lands.
"""

from __future__ import annotations

from pyspark.sql import types as T

from iot_pipeline.contract.event import EVENT_FIELDS, FieldType

_SPARK_TYPES: dict[FieldType, T.DataType] = {
    FieldType.STRING: T.StringType(),
    FieldType.UUID: T.StringType(),
    FieldType.TIMESTAMP: T.TimestampType(),
    FieldType.NUMBER: T.DoubleType(),
}

# Columns the stream adds to every landed row: where it came from in Kafka and when it was ingested.
KAFKA_LINEAGE_FIELDS: tuple[T.StructField, ...] = (
    T.StructField("kafka_topic", T.StringType(), False),
    T.StructField("kafka_partition", T.IntegerType(), False),
    T.StructField("kafka_offset", T.LongType(), False),
    T.StructField("kafka_timestamp", T.TimestampType(), True),
    T.StructField("ingest_time", T.TimestampType(), False),
)

# Hive partition columns of bronze and silver: UTC date and hour of event time.
PARTITION_FIELDS: tuple[T.StructField, ...] = (
    T.StructField("event_date", T.StringType(), False),
    T.StructField("event_hour", T.IntegerType(), False),
)
PARTITION_COLUMNS: tuple[str, ...] = tuple(f.name for f in PARTITION_FIELDS)

# Columns whose values are (nearly) unique per event: a Parquet dictionary of them fills up and falls
# back to plain encoding in every column chunk, after paying for the hashing (docs/performance.md).
PER_EVENT_COLUMNS: tuple[str, ...] = (
    "event_id",
    "event_timestamp",
    "kafka_offset",
    "kafka_timestamp",
    "ingest_time",
)


def spark_type(field_type: FieldType) -> T.DataType:
    return _SPARK_TYPES[field_type]


def event_schema() -> T.StructType:
    return T.StructType([T.StructField(f.name, spark_type(f.type), not f.required) for f in EVENT_FIELDS])


def wire_schema() -> T.StructType:
    return T.StructType([T.StructField(f.name, T.StringType(), True) for f in EVENT_FIELDS])


def bronze_schema() -> T.StructType:
    return T.StructType([*event_schema().fields, *KAFKA_LINEAGE_FIELDS, *PARTITION_FIELDS])

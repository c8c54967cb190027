"""Rebuild missing bronze hours from Kafka in batch mode.

When an hour has no bronze files (fresh deployment, data removed), ``silver/events`` reads the hour
straight from the topic: Kafka records whose *record timestamp* lies between ``replay_margin_minutes``
before the hour and ``replay_lateness_minutes`` after its end (default 7 days: the lateness the
hourly sensor still re-runs an hour for), parsed and validated by exactly the code the stream uses,
then filtered by *event time* to the hour. Offsets are looked up per partition with
``offsets_for_times`` so the Spark read is bounded on both ends. The bounds assume record timestamps
that follow production (Kafka's default CreateTime set at send time); for history loaded into Kafka
long after it happened, a negative margin scans the whole retained topic instead. Quarantined records
are not written anywhere by a replay (the stream's quarantine is authoritative); the valid rows are
written into bronze as ``ingest_batch=-1`` by ``silver/events``, so bronze stays the single source.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from confluent_kafka import TopicPartition
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from iot_pipeline.assets.windows import HOUR
from iot_pipeline.contract.event import MAX_RECORD_BYTES_DEFAULT
from iot_pipeline.resources.kafka import KafkaConfigError, KafkaResource
from iot_pipeline.storage.datasets import hours_where_sql


@dataclass(frozen=True)
class OffsetRange:
    starting: dict[str, dict[str, int]]
    ending: dict[str, dict[str, int]]
    records: int


def contiguous(hours: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Group hour starts into [start, end) runs of consecutive hours."""
    runs: list[tuple[datetime, datetime]] = []
    for h in sorted(hours):
        if runs and runs[-1][1] == h:
            runs[-1] = (runs[-1][0], h + HOUR)
        else:
            runs.append((h, h + HOUR))
    return runs


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def offsets_between(
    kafka: KafkaResource, start: datetime | None, end: datetime | None, timeout_s: float = 15.0
) -> OffsetRange:
    """Per partition, the offsets of the first records with timestamp >= ``start`` and >= ``end``
    (``None``: the partition's first retained record / its end)."""
    kafka.check_reachable()
    marks = kafka.watermarks(timeout_s, purpose="cannot replay missing bronze hours")
    partitions = sorted(marks)
    consumer = kafka.consumer(group_id="iot-pipeline-replay")
    try:

        def lookup(bound: datetime | None, default: int) -> dict[str, int]:
            if bound is None:
                return {str(p): marks[p][default] for p in partitions}
            found = consumer.offsets_for_times(
                [TopicPartition(kafka.topic, p, _ms(bound)) for p in partitions], timeout=timeout_s
            )
            for tp in found:
                if tp.error is not None:
                    raise KafkaConfigError(
                        f"Offset lookup in {kafka.topic}[{tp.partition}] failed: {tp.error}"
                    )
            # -1: no record at or after the bound, i.e. up to the end of the partition.
            return {
                str(tp.partition): tp.offset if tp.offset >= 0 else marks[tp.partition][1] for tp in found
            }

        starting, ending = lookup(start, 0), lookup(end, 1)
        ending = {p: max(ending[p], starting[p]) for p in starting}
        records = sum(ending[p] - starting[p] for p in starting)
        return OffsetRange({kafka.topic: starting}, {kafka.topic: ending}, records)
    finally:
        consumer.close()


def read_kafka_range(spark: SparkSession, kafka: KafkaResource, offsets: OffsetRange) -> DataFrame:
    # The same connection, security and Java client tuning as the stream's source.
    reader = (
        spark.read.format("kafka")
        .options(**kafka.spark_options())
        .option("subscribe", kafka.topic)
        .option("startingOffsets", json.dumps(offsets.starting))
        .option("endingOffsets", json.dumps(offsets.ending))
    )
    return reader.load()


def with_partition_columns(df: DataFrame) -> DataFrame:
    """Add event_date/event_hour from event time when the parser does not (bronze rows carry them)."""
    if "event_date" not in df.columns:
        df = df.withColumn("event_date", F.date_format("event_timestamp", "yyyy-MM-dd"))
    if "event_hour" not in df.columns:
        df = df.withColumn("event_hour", F.hour("event_timestamp"))
    return df


def replay_hours(
    spark: SparkSession,
    kafka: KafkaResource,
    hours: list[datetime],
    margin: timedelta | None,
    columns: list[str],
    max_record_bytes: int = MAX_RECORD_BYTES_DEFAULT,
    lateness: timedelta | None = None,
) -> tuple[DataFrame | None, int]:
    """Bronze-shaped valid rows of ``hours`` rebuilt from Kafka, and the number of records scanned.

    Records are read from ``margin`` before each run of hours until ``lateness`` (default: ``margin``)
    after its end, in Kafka time; ``margin=None`` scans everything the topic retains. Rows are then
    kept by event time.
    """
    from iot_pipeline.streaming.validation import parse_and_validate  # the stream's own parser

    frames: list[DataFrame] = []
    scanned = 0
    runs = contiguous(hours) if margin is not None else [(None, None)]
    for start, end in runs:
        offsets = (
            offsets_between(kafka, start - margin, end + (margin if lateness is None else lateness))
            if margin is not None
            else offsets_between(kafka, None, None)
        )
        scanned += offsets.records
        if offsets.records == 0:
            continue
        valid, _quarantine = parse_and_validate(read_kafka_range(spark, kafka, offsets), max_record_bytes)
        frames.append(with_partition_columns(valid).filter(F.expr(hours_where_sql(hours))).select(*columns))
    if not frames:
        return None, scanned
    out = frames[0]
    for f in frames[1:]:
        out = out.unionByName(f)
    return out, scanned

"""Exactly-once landing of each micro-batch into bronze and quarantine.

``foreachBatch`` lets one Kafka read and one parse feed both outputs, but unlike Spark's file sink it
has no commit log of its own. Exactly-once comes from making every batch write idempotent instead:
each batch writes its own Hive partitions, keyed by the batch id (``.../event_hour=H/ingest_batch=N``),
with dynamic partition overwrite. Spark replays a batch after a crash with the same id and the same
offsets (they are logged before the batch runs), so the replay overwrites exactly what the failed
attempt may have left, and an uncommitted attempt never shows because dynamic overwrite stages its
files under a hidden ``.spark-staging-*`` directory until the job commits. Any reader (Spark, DuckDB,
pyarrow) therefore sees every Kafka record once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from iot_pipeline.storage.layout import LakeLayout
from iot_pipeline.streaming.validation import classify, quarantine_rows, valid_rows

BATCH_COLUMN = "ingest_batch"


@dataclass
class BatchResult:
    batch_id: int
    input_rows: int
    bronze_rows: int
    quarantined: dict[str, int]
    hours: list[tuple[str, int]]
    kafka_ts_histogram: list[tuple[float, int]]
    committed_at: float
    seconds: float


@dataclass
class BronzeBatchWriter:
    """The ``foreachBatch`` function of the bronze query."""

    layout: LakeLayout
    max_record_bytes: int
    quarantine_to_kafka: Callable[[DataFrame], None] | None = None
    on_batch: list[Callable[[BatchResult], None]] = field(default_factory=list)

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        started = time.time()
        classified = classify(batch, self.max_record_bytes).persist()
        try:
            result = self._write(classified, batch_id, started)
        finally:
            classified.unpersist()
        for callback in self.on_batch:
            callback(result)

    def _write(self, classified: DataFrame, batch_id: int, started: float) -> BatchResult:
        # The batch's shape (reasons, touched hours) and a 100 ms histogram of Kafka timestamps, for
        # end-to-end latency once the batch is committed: two small aggregates of the cached batch.
        shape = classified.groupBy(
            "reason", F.date_format("event_time", "yyyy-MM-dd").alias("d"), F.hour("event_time").alias("h")
        ).count()
        quarantined: dict[str, int] = {}
        hours: set[tuple[str, int]] = set()
        bronze_rows = 0
        for row in shape.collect():
            if row["reason"] is None:
                bronze_rows += row["count"]
                hours.add((row["d"], row["h"]))
            else:
                quarantined[row["reason"]] = quarantined.get(row["reason"], 0) + row["count"]
        histogram = [
            (row["ts"], row["count"])
            for row in classified.groupBy(
                (F.floor(F.unix_micros("kafka_timestamp") / 100_000) / 10).alias("ts")
            ).count().collect()
        ]

        if bronze_rows:
            (
                valid_rows(classified)
                .withColumn(BATCH_COLUMN, F.lit(batch_id).cast("long"))
                .write.mode("overwrite")
                .option("partitionOverwriteMode", "dynamic")
                .partitionBy("event_date", "event_hour", BATCH_COLUMN)
                .parquet(self.layout.bronze_events)
            )
        if quarantined:
            bad = quarantine_rows(classified)
            (
                bad.withColumn(BATCH_COLUMN, F.lit(batch_id).cast("long"))
                .write.mode("overwrite")
                .option("partitionOverwriteMode", "dynamic")
                .partitionBy("kafka_date", BATCH_COLUMN)
                .parquet(self.layout.quarantine_events)
            )
            if self.quarantine_to_kafka is not None:
                self.quarantine_to_kafka(bad)
        committed = time.time()
        return BatchResult(
            batch_id=batch_id,
            input_rows=bronze_rows + sum(quarantined.values()),
            bronze_rows=bronze_rows,
            quarantined=quarantined,
            hours=sorted(hours),
            kafka_ts_histogram=sorted(histogram),
            committed_at=committed,
            seconds=committed - started,
        )

"""Exactly-once landing of each micro-batch into bronze, quarantine and the live statistics.

``foreachBatch`` lets one Kafka read and one parse feed every output, but unlike Spark's file sink it
has no commit log of its own. Exactly-once comes from making every batch write idempotent instead:
each batch writes its own Hive partitions, keyed by the batch id (``.../event_hour=H/ingest_batch=N``),
with dynamic partition overwrite. Spark replays a batch after a crash with the same id and the same
offsets (they are logged before the batch runs), so the replay overwrites exactly what the failed
attempt may have left, and an uncommitted attempt never shows because dynamic overwrite stages its
files under a hidden ``.spark-staging-*`` directory until the job commits. Once all three writes have
committed, the batch id is recorded as the bronze commit marker (``storage.commits``): a batch's files
appear hour by hour (file by file on S3), and readers that follow the marker never use a batch that
is still appearing. Any reader therefore sees every Kafka record once.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from itertools import pairwise

from pyspark.sql import DataFrame, Observation
from pyspark.sql import functions as F

from iot_pipeline.contract.rules import rules_fingerprint
from iot_pipeline.contract.spark_schema import PER_EVENT_COLUMNS
from iot_pipeline.storage import parquet_io as pio
from iot_pipeline.storage.commits import BATCH_COLUMN, parse_commit, validated_batches
from iot_pipeline.storage.datasets import DailyDataset, HourlyDataset
from iot_pipeline.storage.layout import LakeLayout
from iot_pipeline.streaming.live import minute_partials
from iot_pipeline.streaming.state import write_bronze_commit
from iot_pipeline.streaming.validation import classify, quarantine_for_kafka, quarantine_rows, valid_rows

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass
class BatchResult:
    batch_id: int
    input_rows: int
    bronze_rows: int
    quarantined: dict[str, int]
    hours: list[tuple[str, int]]
    kafka_ts_histogram: list[tuple[float, float]]
    max_event_time: datetime | None  # the newest event landed, for the watermark
    committed_at: float
    seconds: float


@dataclass
class BronzeBatchWriter:
    """The ``foreachBatch`` function of the bronze query."""

    layout: LakeLayout
    max_record_bytes: int
    live_stats: bool = True
    quarantine_to_kafka: Callable[[DataFrame], None] | None = None
    on_batch: list[Callable[[BatchResult], None]] = field(default_factory=list)
    # Added to Spark's batch id in the partition value, so batches of a reset checkpoint (which
    # restart at 0) never overwrite earlier ones; see iot_pipeline.streaming.checkpoint.
    batch_base: int = 0
    # The value rules classify applies (from this process's environment), recorded with each commit.
    rules: str = field(default_factory=rules_fingerprint)
    _rules_since: int | None = field(default=None, init=False)

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        started = time.time()
        if self._rules_since is None:
            # Spark runs batch N only once every batch before it is committed: on a lake without a
            # commit marker, record that before anything of batch N becomes visible. The batches
            # validated under this process's rules start here unless the marker's range continues.
            first = batch_id + self.batch_base
            marker = pio.read_text(self.layout.bronze_commit)
            same_rules = validated_batches(marker, self.rules)
            self._rules_since = same_rules[0] if same_rules else first
            if parse_commit(marker) is None:
                write_bronze_commit(self.layout, first - 1)
        # Cache what every write needs; the raw payload is kept for quarantined records only.
        ingest_time = datetime.fromtimestamp(started, timezone.utc).isoformat()
        classified = classify(batch, self.max_record_bytes, ingest_time=F.lit(ingest_time))
        classified = classified.withColumn(
            "raw_payload", F.when(F.col("reason").isNotNull(), F.col("raw_payload"))
        ).persist()
        try:
            result = self._write(classified, batch_id, started)
        finally:
            classified.unpersist()
        for callback in self.on_batch:
            callback(result)

    def _write(self, classified: DataFrame, batch_id: int, started: float) -> BatchResult:
        # The batch's shape comes from observations of the writes themselves: no extra Spark jobs.
        # The batch id as a string literal: the same generated code for every batch (see classify).
        partition_value = F.lit(str(batch_id + self.batch_base))
        landed = Observation("bronze")
        valid = valid_rows(classified)
        bronze = valid.observe(
            landed,
            F.count(F.lit(1)).alias("rows"),
            F.collect_set(F.struct("event_date", "event_hour")).alias("hours"),
            F.max(F.unix_micros("event_timestamp")).alias("max_event_micros"),
            F.percentile_approx(
                F.unix_micros("kafka_timestamp") / 1e6, F.array(*[F.lit(q / 100) for q in range(101)]), 10_000
            ).alias("kafka_ts_percentiles"),
        )
        # A batch's rows span one hour or a few: open a file per hour as rows come instead of
        # sorting the batch by its partition columns first.
        HourlyDataset(self.layout.bronze_events).write(
            bronze.withColumn(BATCH_COLUMN, partition_value),
            BATCH_COLUMN,
            keep_order=True,
            plain_columns=PER_EVENT_COLUMNS,
        )
        rejected = Observation("quarantine")
        bad = quarantine_rows(classified).observe(rejected, F.collect_list("reason").alias("reasons"))
        quarantine = DailyDataset(self.layout.quarantine_events, column="kafka_date")
        quarantine.write(bad.withColumn(BATCH_COLUMN, partition_value), BATCH_COLUMN)
        quarantined = dict(Counter(rejected.get["reasons"]))
        if quarantined and self.quarantine_to_kafka is not None:
            self.quarantine_to_kafka(quarantine_for_kafka(bad, self.max_record_bytes))
        if self.live_stats:
            # One task, no shuffle: a batch's partials are a few rows per minute and type.
            partials = minute_partials(valid.coalesce(1)).withColumn(BATCH_COLUMN, partition_value)
            DailyDataset(self.layout.live_device_type_minute).write(partials, BATCH_COLUMN)
        write_bronze_commit(self.layout, batch_id + self.batch_base, self.rules, self._rules_since)
        committed = time.time()
        stats = landed.get
        quantiles = stats["kafka_ts_percentiles"] or []
        # 101 quantiles of the Kafka timestamps: each of the 100 gaps holds 1% of the landed rows.
        share = stats["rows"] / 100 if quantiles else 0
        histogram = [((lo + hi) / 2, share) for lo, hi in pairwise(quantiles)]
        return BatchResult(
            batch_id=batch_id,
            input_rows=stats["rows"] + sum(quarantined.values()),
            bronze_rows=stats["rows"],
            quarantined=quarantined,
            hours=sorted((h["event_date"], h["event_hour"]) for h in stats["hours"]),
            kafka_ts_histogram=histogram,
            max_event_time=None
            if stats["max_event_micros"] is None
            else EPOCH + timedelta(microseconds=stats["max_event_micros"]),
            committed_at=committed,
            seconds=committed - started,
        )

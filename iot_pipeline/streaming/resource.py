"""The long-running Spark Structured Streaming job, owned by a Dagster resource.

One query reads the Kafka topic: ``bronze`` lands every record, valid ones in bronze and the rest in
quarantine, and writes provisional per-minute statistics from the same batch (see
:mod:`iot_pipeline.streaming.sink` and :mod:`iot_pipeline.streaming.live`). It checkpoints under the
lake's state area, so a restart resumes exactly where the last committed batch ended. After each
batch the event-time watermark (newest event time landed minus ``live_watermark_minutes``, never
moving back) is published for the partition sensor.

Modes, same code: ``continuous`` runs micro-batches every ``trigger_seconds`` until stopped;
``available_now`` drains what Kafka holds when it starts, then stops (CI, catch-up, tests).
"""

from __future__ import annotations

import enum
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import dagster as dg
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from iot_pipeline.contract.event import MAX_RECORD_BYTES_DEFAULT
from iot_pipeline.resources.env import bound, env_float, env_int, env_str
from iot_pipeline.resources.kafka import KafkaConfigError, KafkaResource
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import SparkResource
from iot_pipeline.storage.layout import LakeLayout, is_local
from iot_pipeline.storage.s3 import check_bucket
from iot_pipeline.streaming.checkpoint import BRONZE_QUERY, Resume, read_resume
from iot_pipeline.streaming.lock import StreamLock, StreamLockError, clean_staging
from iot_pipeline.streaming.metrics import ProgressListener, StreamMetrics
from iot_pipeline.streaming.sink import BatchResult, BronzeBatchWriter
from iot_pipeline.streaming.state import WatermarkPublisher


class StreamMode(str, enum.Enum):
    CONTINUOUS = "continuous"
    AVAILABLE_NOW = "available_now"


@dataclass
class StreamTotals:
    batches: int = 0
    input_rows: int = 0
    bronze_rows: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    hours: set[tuple[str, int]] = field(default_factory=set)

    def add(self, result: BatchResult) -> None:
        self.batches += 1
        self.input_rows += result.input_rows
        self.bronze_rows += result.bronze_rows
        self.hours.update(result.hours)
        for reason, count in result.quarantined.items():
            self.quarantined[reason] = self.quarantined.get(reason, 0) + count


@dataclass
class StreamHandle:
    """Running queries of one stream; ``stop`` leaves the checkpoints consistent."""

    spark: SparkSession
    queries: list[StreamingQuery]
    metrics: StreamMetrics
    listener: ProgressListener
    totals: StreamTotals
    _stopped: bool = False
    lock: StreamLock | None = None  # the checkpoint's single-writer lease (iot_pipeline.streaming.lock)

    @property
    def active(self) -> bool:
        return any(q.isActive for q in self.queries)

    def raise_if_failed(self) -> None:
        for query in self.queries:
            error = query.exception()
            if error is not None:
                raise RuntimeError(f"Streaming query {query.name!r} failed: {error}") from None

    def wait(self, stop: threading.Event | None = None, poll_s: float = 1.0) -> None:
        """Block until every query ends (available-now) or ``stop`` is set (continuous)."""
        while self.active and not (stop is not None and stop.is_set()):
            # Sleep in Python, not in a py4j call: Dagster turns a run's termination (SIGTERM) into an
            # exception wherever the op is, and one raised inside a py4j call leaves that connection
            # out of step, so stopping the queries afterwards would fail.
            time.sleep(poll_s)
            self.raise_if_failed()
        self.raise_if_failed()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        # If stopping a query fails it may still run in the JVM: the lease then stays (its heartbeat
        # goes on while this process lives, and it is stale as soon as the process is gone).
        for query in self.queries:
            if query.isActive:
                query.stop()
        if self.lock is not None:
            self.lock.release()
        self.spark.streams.removeListener(self.listener)
        self.metrics.shutdown()


class SparkStreamingResource(dg.ConfigurableResource):
    """Owns the streaming job: builds its Spark session, starts, monitors and stops its queries."""

    spark: SparkResource
    kafka: KafkaResource
    lake: LakeResource
    trigger_seconds: float = 10.0
    starting_offsets: str = "earliest"
    max_offsets_per_trigger: int | None = None
    # Spark's maxRecordsPerPartition: a Kafka partition's range beyond this is read by several tasks.
    # One task per Kafka partition leaves cores idle through a backlog's batch (3 partitions on 2
    # cores: the third task runs alone); steady-state batches are smaller and keep one task, hence
    # one bronze file per hour, per Kafka partition (docs/streaming.md).
    max_records_per_task: int | None = 500_000
    fail_on_data_loss: bool = True
    max_record_bytes: int = MAX_RECORD_BYTES_DEFAULT
    live_watermark_minutes: int = 10
    live_stats: bool = True
    quarantine_to_kafka: bool = False
    metrics_port: int = 9109
    metrics_host: str = "127.0.0.1"
    # The checkpoint's lease (iot_pipeline.streaming.lock): a holder silent this long is presumed dead.
    lock_stale_seconds: float = 90.0
    lock_heartbeat_seconds: float = 10.0
    # Staging directories of killed writes untouched this long are removed (at start, then periodically).
    staging_grace_seconds: float = 600.0

    def _session(self) -> SparkSession:
        # A driver of its own, even when the batch runs use a Spark Connect server (``spark.remote``).
        return self.spark.build_session()

    def _kafka_source(self, spark: SparkSession, starting_offsets: str) -> DataFrame:
        reader = (
            spark.readStream.format("kafka")
            .options(**self.kafka.spark_options())
            .option("subscribe", self.kafka.topic)
            .option("startingOffsets", starting_offsets)
            .option("failOnDataLoss", str(self.fail_on_data_loss).lower())
        )
        if self.max_offsets_per_trigger:
            reader = reader.option("maxOffsetsPerTrigger", str(self.max_offsets_per_trigger))
        if self.max_records_per_task:
            reader = reader.option("maxRecordsPerPartition", str(self.max_records_per_task))
        return reader.load()

    def _bronze_starting_offsets(self, resume: Resume) -> str:
        """Where a fresh bronze checkpoint starts (Spark ignores this once the checkpoint has offsets).

        After a checkpoint reset it is the reset's position; partitions added to the topic since then
        start at their earliest offset (Spark wants every partition named).
        """
        start = resume.starting_offsets
        if start is None:
            return self.starting_offsets
        if isinstance(start, str):
            return start
        topic = self.kafka.topic
        partitions = self.kafka.admin().list_topics(topic, timeout=10).topics[topic].partitions
        known = start.get(topic, {})
        return json.dumps({topic: {str(p): known.get(str(p), -2) for p in sorted(partitions)}})

    def _check_lake(self) -> None:
        """An S3 lake's bucket and credentials, checked before Spark starts (S3A's errors name no setting)."""
        root = self.lake.layout.root
        if not is_local(root):
            check_bucket(root, self.spark.s3_endpoint or None, self.spark.s3_region, self.spark.s3_path_style)

    def _check_topic(self) -> None:
        self.kafka.check_reachable()
        topics = self.kafka.admin().list_topics(timeout=10).topics
        if self.kafka.topic not in topics:
            raise KafkaConfigError(
                f"Kafka topic {self.kafka.topic!r} does not exist on {self.kafka.bootstrap_servers}: create it "
                "with `iot-pipeline kafka topics` or set IOT_KAFKA_TOPIC to an existing topic."
            )

    def _quarantine_publisher(self) -> Callable[[DataFrame], None]:
        def publish(bad: DataFrame) -> None:
            (
                bad.selectExpr("kafka_key AS key", "to_json(struct(*)) AS value")
                .write.format("kafka")
                .options(**self.kafka.spark_options())
                .option("topic", self.kafka.quarantine_topic)
                .save()
            )

        return publish

    def start(
        self,
        mode: StreamMode | str = StreamMode.CONTINUOUS,
        log: Callable[[str], None] = print,
        on_batch: Callable[[BatchResult], None] | None = None,
        run_id: str | None = None,
    ) -> StreamHandle:
        """Take the checkpoint's lease (a second stream fails here, naming the first), remove old
        staging leftovers while holding it, then start the query; the lease is kept by a heartbeat."""
        mode = StreamMode(mode)
        self._check_topic()
        self._check_lake()
        spark = self._session()
        layout: LakeLayout = self.lake.layout
        lock = StreamLock.acquire(
            spark,
            layout,
            BRONZE_QUERY,
            dagster_run_id=run_id,
            stale_after_seconds=self.lock_stale_seconds,
            heartbeat_seconds=self.lock_heartbeat_seconds,
            log=log,
        )
        try:
            clean_staging(spark, layout, self.staging_grace_seconds, log)
            handle = self._start_queries(spark, layout, mode, log, on_batch)
        except BaseException:
            lock.release()
            raise
        handle.lock = lock
        last_clean = [time.monotonic()]

        def clean_periodically() -> None:
            if time.monotonic() - last_clean[0] >= max(self.staging_grace_seconds, 60.0):
                last_clean[0] = time.monotonic()
                clean_staging(spark, layout, self.staging_grace_seconds, log)

        lock.start_heartbeat(on_lost=lambda _: handle.stop(), every=clean_periodically)
        return handle

    def _start_queries(
        self,
        spark: SparkSession,
        layout: LakeLayout,
        mode: StreamMode,
        log: Callable[[str], None],
        on_batch: Callable[[BatchResult], None] | None,
    ) -> StreamHandle:
        metrics = StreamMetrics()
        if self.metrics_port:
            metrics.serve(self.metrics_port, self.metrics_host)
        totals = StreamTotals()
        watermark = WatermarkPublisher(
            layout,
            timedelta(minutes=self.live_watermark_minutes),
            on_change=lambda w: metrics.watermark.set(w.timestamp()),
            warn=log,
        )

        def report_batch(result: BatchResult) -> None:
            totals.add(result)
            metrics.record_batch(result)
            watermark.observe(result.max_event_time)
            bad = ", ".join(f"{r}={n}" for r, n in sorted(result.quarantined.items())) or "none"
            log(
                f"batch {result.batch_id}: {result.input_rows} records, {result.bronze_rows} to bronze "
                f"in {len(result.hours)} hour(s), quarantined: {bad} ({result.seconds:.1f}s)"
            )

        def report_progress(progress: dict[str, Any]) -> None:
            if progress.get("numInputRows"):
                log(
                    f"{progress.get('name')}: batch {progress.get('batchId')} "
                    f"{progress.get('numInputRows')} rows, {progress.get('processedRowsPerSecond') or 0:.0f} rows/s"
                    + (f", watermark {watermark.current.isoformat()}" if watermark.current else "")
                )

        resume = read_resume(layout)
        writer = BronzeBatchWriter(
            layout=layout,
            batch_base=resume.batch_base,
            max_record_bytes=self.max_record_bytes,
            live_stats=self.live_stats,
            quarantine_to_kafka=self._quarantine_publisher() if self.quarantine_to_kafka else None,
            on_batch=[report_batch, *([on_batch] if on_batch else [])],
        )
        listener = ProgressListener(metrics, [report_progress], time.time)
        spark.streams.addListener(listener)
        trigger: dict[str, Any] = (
            {"availableNow": True}
            if mode is StreamMode.AVAILABLE_NOW
            else {"processingTime": f"{self.trigger_seconds} seconds"}
        )
        queries = [
            self._kafka_source(spark, self._bronze_starting_offsets(resume))
            .writeStream.queryName(BRONZE_QUERY)
            .foreachBatch(writer)
            .option("checkpointLocation", layout.checkpoint(BRONZE_QUERY))
            .trigger(**trigger)
            .start()
        ]
        log(
            f"stream started ({mode.value}): {self.kafka.topic}@{self.kafka.bootstrap_servers} -> {layout.root}"
            + (f", metrics on :{self.metrics_port}" if self.metrics_port else "")
        )
        return StreamHandle(spark, queries, metrics, listener, totals)

    def run(
        self,
        mode: StreamMode | str = StreamMode.CONTINUOUS,
        log: Callable[[str], None] = print,
        stop: threading.Event | None = None,
        run_id: str | None = None,
    ) -> StreamTotals:
        """Start, wait until done or ``stop`` is set, and always stop the queries on the way out."""
        handle = self.start(mode, log, run_id=run_id)
        try:
            handle.wait(stop)
        finally:
            handle.stop()
        if handle.lock is not None and handle.lock.lost:
            raise StreamLockError(f"The stream stopped because {handle.lock.lost}.")
        return handle.totals


def bound_streaming(spark: SparkResource, kafka: KafkaResource, lake: LakeResource) -> SparkStreamingResource:
    """The streaming resource over ``spark``, ``kafka`` and ``lake``, its own settings bound to the
    environment (``resources/env.py``)."""
    return SparkStreamingResource(
        spark=spark,
        kafka=kafka,
        lake=lake,
        **bound(
            trigger_seconds=env_float("IOT_STREAM_TRIGGER_SECONDS", minimum=0.1),
            metrics_port=env_int("IOT_STREAM_METRICS_PORT", minimum=0),
            metrics_host=env_str("IOT_METRICS_HOST"),
        ),
    )

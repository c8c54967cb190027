"""Prometheus metrics of the streaming process, fed by a ``StreamingQueryListener`` and the batch writer.

Metric names are part of the operator contract (deploy/prometheus and the Grafana dashboard use
them): change them only together.
"""

from __future__ import annotations

import bisect
import functools
import json
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.core import HistogramMetricFamily
from pyspark.sql.streaming import StreamingQueryListener

from iot_pipeline.streaming.sink import BatchResult

LATENCY_BUCKETS: tuple[float, ...] = (
    0.25,
    0.5,
    1,
    2,
    3,
    5,
    7.5,
    10,
    15,
    20,
    30,
    60,
    120,
    300,
    600,
    1800,
    3600,
)
BATCH_BUCKETS: tuple[float, ...] = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)


class WeightedHistogram:
    """A histogram that takes (value, count) pairs, since a batch reports thousands of rows at once.

    prometheus_client's Histogram observes one value per call; this keeps cumulative buckets itself
    and also retains the raw pairs (bounded) so benchmarks can read exact percentiles.
    """

    def __init__(self, name: str, doc: str, buckets: Iterable[float], keep_samples: int = 200_000) -> None:
        self.name, self.doc = name, doc
        self.bounds = sorted(buckets)
        self.counts: list[float] = [0] * (len(self.bounds) + 1)
        self.total = 0.0
        self.samples: list[tuple[float, float]] = []
        self.keep_samples = keep_samples
        self._lock = threading.Lock()

    def observe(self, value: float, count: float = 1) -> None:
        with self._lock:
            self.counts[bisect.bisect_left(self.bounds, value)] += count
            self.total += value * count
            if len(self.samples) < self.keep_samples:
                self.samples.append((value, count))

    def percentile(self, q: float) -> float | None:
        """Exact weighted percentile (nearest rank) of the retained samples."""
        with self._lock:
            ordered = sorted(self.samples)
        n = sum(c for _, c in ordered)
        if n == 0:
            return None
        rank, seen = q / 100 * n, 0
        for value, count in ordered:
            seen += count
            if seen >= rank:
                return value
        return ordered[-1][0]

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            cumulative, buckets = 0, []
            for bound, count in zip([*map(str, self.bounds), "+Inf"], self.counts, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            total = self.total
        yield HistogramMetricFamily(self.name, self.doc, buckets=buckets, sum_value=total)


# Every metric of the stream is named iot_stream_<name>.
NAMESPACE = "iot_stream"


class StreamMetrics:
    """All metrics of one streaming process, on a registry of its own (tests start several)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        counter = functools.partial(Counter, namespace=NAMESPACE, registry=r)
        gauge = functools.partial(Gauge, namespace=NAMESPACE, registry=r)
        self.input_rows = counter("input_rows", "Kafka records read by the stream.")
        self.bronze_rows = counter("bronze_rows", "Valid events landed in bronze.")
        self.quarantined = counter("quarantined_rows", "Records quarantined, by reason.", ["reason"])
        self.input_rate = gauge("input_rows_per_second", "Input rate of the last micro-batch.", ["query"])
        self.processed_rate = gauge(
            "processed_rows_per_second", "Processing rate of the last batch.", ["query"]
        )
        self.watermark = gauge(
            "watermark_timestamp_seconds", "Event-time watermark (newest event landed minus the delay)."
        )
        self.lag = gauge(
            "consumer_lag", "Latest Kafka offset minus processed offset.", ["topic", "partition"]
        )
        self.latest_hour = gauge(
            "latest_event_hour_timestamp_seconds", "Start of the newest event hour landed."
        )
        self.last_progress = gauge("last_progress_timestamp_seconds", "Wall time of the last query progress.")
        self.batch_duration = WeightedHistogram(
            f"{NAMESPACE}_batch_duration_seconds", "Micro-batch duration.", BATCH_BUCKETS
        )
        self.latency = WeightedHistogram(
            f"{NAMESPACE}_end_to_end_latency_seconds", "Kafka timestamp to batch commit.", LATENCY_BUCKETS
        )
        r.register(self.batch_duration)
        r.register(self.latency)
        self._server: Any = None
        self._latest_hour = 0.0

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        self._server, _ = start_http_server(port, addr=host, registry=self.registry)

    def shutdown(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def record_batch(self, result: BatchResult) -> None:
        self.input_rows.inc(result.input_rows)
        self.bronze_rows.inc(result.bronze_rows)
        for reason, count in result.quarantined.items():
            self.quarantined.labels(reason=reason).inc(count)
        for kafka_ts, count in result.kafka_ts_histogram:
            if kafka_ts is not None:
                self.latency.observe(max(0.0, result.committed_at - kafka_ts), count)
        if result.hours:
            newest = max(datetime.fromisoformat(f"{d}T{h:02d}:00:00+00:00") for d, h in result.hours)
            self._latest_hour = max(self._latest_hour, newest.timestamp())
            self.latest_hour.set(self._latest_hour)

    def record_progress(self, progress: dict[str, Any], now: float) -> None:
        query = progress.get("name") or "unnamed"
        self.last_progress.set(now)
        self.input_rate.labels(query=query).set(progress.get("inputRowsPerSecond") or 0.0)
        self.processed_rate.labels(query=query).set(progress.get("processedRowsPerSecond") or 0.0)
        trigger_ms = (progress.get("durationMs") or {}).get("triggerExecution")
        if trigger_ms is not None and progress.get("numInputRows"):
            self.batch_duration.observe(trigger_ms / 1000)
        for source in progress.get("sources") or []:
            for (topic, partition), lag in consumer_lag(source).items():
                self.lag.labels(topic=topic, partition=str(partition)).set(lag)


def _offsets(raw: Any) -> dict[str, dict[str, int]]:
    if not raw:
        return {}
    return json.loads(raw) if isinstance(raw, str) else raw


def consumer_lag(source: dict[str, Any]) -> dict[tuple[str, int], int]:
    """Per Kafka partition: the latest offset the source saw minus the offset it has processed to."""
    latest, end = _offsets(source.get("latestOffset")), _offsets(source.get("endOffset"))
    lag: dict[tuple[str, int], int] = {}
    for topic, partitions in latest.items():
        for partition, offset in partitions.items():
            done = end.get(topic, {}).get(partition)
            if done is not None:
                lag[(topic, int(partition))] = max(0, int(offset) - int(done))
    return lag


class ProgressListener(StreamingQueryListener):
    """Bridges Spark's query events to the metrics, the Dagster log and the watermark file."""

    def __init__(self, metrics: StreamMetrics, on_progress: list[Any], clock: Any) -> None:
        self.metrics, self.on_progress, self.clock = metrics, on_progress, clock

    def onQueryStarted(self, event: Any) -> None:
        pass

    def onQueryProgress(self, event: Any) -> None:
        progress = json.loads(event.progress.json)
        self.metrics.record_progress(progress, self.clock())
        for callback in self.on_progress:
            callback(progress)

    def onQueryIdle(self, event: Any) -> None:
        self.metrics.last_progress.set(self.clock())

    def onQueryTerminated(self, event: Any) -> None:
        pass

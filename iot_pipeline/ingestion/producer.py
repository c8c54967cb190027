"""Sending records to Kafka with confluent-kafka, fast and without losing track of failures.

Why these settings: ``enable.idempotence`` + ``acks=all`` so librdkafka's internal retries never write a
record twice or reorder a partition; ``murmur2_random`` so a device lands on the partition Java clients
(and Spark) would pick for the same key; lz4/zstd and a generous ``linger.ms``/``batch.size`` so records
travel in large compressed batches. Delivery reports are requested for failures only
(``delivery.report.only.error``): a callback per successful record would halve the throughput. A record
therefore counts as sent once librdkafka accepted it; every failure is counted and reported, and records
still queued when the final flush times out count as failures too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter
from typing import IO, Any

from confluent_kafka import KafkaError, KafkaException, Message

from iot_pipeline.ingestion.generator import SimRecord
from iot_pipeline.ingestion.metrics import SimStats
from iot_pipeline.resources.kafka import KafkaResource

COMPRESSIONS = ("lz4", "zstd", "snappy", "gzip", "none")


@dataclass(frozen=True)
class ProducerSettings:
    compression: str = "lz4"
    linger_ms: int = 20
    batch_size: int = 1_000_000  # bytes per partition batch
    queue_max_messages: int = 1_000_000
    delivery_timeout_ms: int = 120_000

    def config(self) -> dict[str, Any]:
        return {
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": self.compression,
            "linger.ms": self.linger_ms,
            "batch.size": self.batch_size,
            "batch.num.messages": 100_000,
            "queue.buffering.max.messages": self.queue_max_messages,
            "queue.buffering.max.kbytes": 1_048_576,
            "message.timeout.ms": self.delivery_timeout_ms,
            "partitioner": "murmur2_random",
            "delivery.report.only.error": True,
        }


class Pacer:
    """Holds the send loop to ``rate`` records/s on average (0 = as fast as Kafka takes them)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.t0 = time.monotonic()

    def wait(self, sent: int, stop: threading.Event) -> None:
        if self.rate > 0:
            ahead = sent / self.rate - (time.monotonic() - self.t0)
            if ahead > 0:
                stop.wait(ahead)


@dataclass
class SendResult:
    records: int
    bytes: int
    seconds: float
    delivery_errors: int
    interrupted: bool

    @property
    def rate_eps(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


def take(blocks: Iterable[list[SimRecord]], limit: int | None) -> Iterator[list[SimRecord]]:
    """The first ``limit`` records of a stream of blocks, still in blocks."""
    left = limit
    for block in blocks:
        if left is None:
            yield block
            continue
        if left <= 0:
            return
        yield block[:left]
        left -= len(block)


def in_blocks(records: Iterable[SimRecord], size: int = 1024) -> Iterator[list[SimRecord]]:
    it = iter(records)
    while block := list(islice(it, size)):
        yield block


_LABELS = itemgetter(4, 5)
_KIND = itemgetter(2)
_VALUE = itemgetter(1)


def send_records(
    blocks: Iterable[list[SimRecord]],
    *,
    sink: KafkaSink | FileSink,
    stats: SimStats,
    stop: threading.Event,
    rate: float = 0.0,
    duration_s: float | None = None,
    progress: Any = None,
) -> SendResult:
    """Push records into ``sink`` until exhausted, ``duration_s`` passes or ``stop`` is set.

    Work is done per chunk (a whole block when unpaced, about 1/20 s of records when paced): counting
    for the metrics then runs in C (``Counter.update`` over ``map``) instead of per record in Python.
    """
    pacer = Pacer(rate)
    chunk = max(1, min(1024, int(rate / 20))) if rate > 0 else None
    sent = nbytes = last_sent = 0
    counts, kinds = stats.sent, stats.by_kind
    put_many, service = sink.put_many, sink.service
    t0 = last_t = time.monotonic()
    deadline = t0 + duration_s if duration_s is not None else None
    stats.state = "running"
    done = False
    for block in blocks:
        parts = [block] if chunk is None or len(block) <= chunk else [
            block[lo : lo + chunk] for lo in range(0, len(block), chunk)
        ]  # fmt: skip
        for part in parts:
            put_many(part)
            sent += len(part)
            nbytes += sum(map(len, map(_VALUE, part)))
            counts.update(map(_LABELS, part))
            kinds.update(map(_KIND, part))
            stats.bytes_sent = nbytes
            service()
            now = time.monotonic()
            if now - last_t >= 1.0:
                stats.current_rate_eps = (sent - last_sent) / (now - last_t)
                last_t, last_sent = now, sent
                if progress is not None:
                    progress.update(sent - progress.n)
            if stop.is_set() or (deadline is not None and now >= deadline):
                done = True
                break
            pacer.wait(sent, stop)
        if done:
            break
    seconds = time.monotonic() - t0
    if progress is not None:
        if progress.total is not None and sent > progress.total:  # the total was an estimate
            progress.total = sent
        progress.update(sent - progress.n)
    return SendResult(sent, nbytes, seconds, stats.delivery_errors, stop.is_set())


class KafkaSink:
    """A confluent-kafka producer whose failures land in :class:`SimStats`."""

    def __init__(
        self,
        kafka: KafkaResource,
        topic: str,
        stats: SimStats,
        settings: ProducerSettings,
        stop: threading.Event | None = None,
    ) -> None:
        self.topic = topic
        self.stats = stats
        self._stop = stop or threading.Event()

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                stats.record_error(f"{msg.topic()}[{msg.partition()}] key={msg.key()!r}: {err.str()}")

        self._producer = kafka.producer(on_delivery=on_delivery, **settings.config())
        self._produce = self._producer.produce
        self._poll = self._producer.poll

    def put_many(self, records: list[SimRecord]) -> None:
        produce, topic = self._produce, self.topic
        for rec in records:
            try:
                produce(topic, rec[1], rec[0])
            except BufferError:
                self._put_when_queue_drains(rec)
            except KafkaException as exc:  # e.g. record too large: rejected before it is queued
                self.stats.record_error(f"produce rejected key={rec[0]!r}: {exc.args[0]}")

    def _put_when_queue_drains(self, rec: SimRecord) -> None:
        """The local queue is full: serve delivery reports until there is room (or we are stopping)."""
        while True:
            self._poll(0.05)
            if self._stop.is_set():
                self.stats.record_error(f"not queued (stopping while the queue was full) key={rec[0]!r}")
                return
            try:
                self._produce(self.topic, rec[1], rec[0])
                return
            except BufferError:
                continue

    def service(self) -> None:
        self._poll(0)

    def close(self, timeout_s: float = 60.0) -> int:
        """Flush; records not delivered by then are counted as delivery errors. Returns that count."""
        remaining = self._producer.flush(timeout_s)
        self._poll(0)
        for _ in range(remaining):
            self.stats.record_error(f"not delivered within the {timeout_s:.0f}s final flush")
        return remaining


class FileSink:
    """Writes record values as JSON lines instead of sending them (``--output``): a replayable file."""

    def __init__(self, out: IO[bytes]) -> None:
        self._write = out.write
        self._out = out

    def put_many(self, records: list[SimRecord]) -> None:
        self._write(b"\n".join(map(_VALUE, records)) + b"\n")

    def service(self) -> None:
        pass

    def close(self, timeout_s: float = 0.0) -> int:
        self._out.flush()
        return 0

"""One simulator run: pick the record source for the mode, send, flush, report.

Kept apart from the CLI so tests, benchmarks and the ``run`` command drive the same code in-process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from iot_pipeline.ingestion.devices import DEVICE_TYPES, DEVICE_TYPES_BY_NAME
from iot_pipeline.ingestion.faults import FaultRates
from iot_pipeline.ingestion.generator import DEFAULT_EVENTS_PER_TYPE_PER_DAY, EventGenerator, SimRecord
from iot_pipeline.ingestion.metrics import MetricsServer, SimStats
from iot_pipeline.ingestion.producer import (
    FileSink,
    KafkaSink,
    ProducerSettings,
    in_blocks,
    send_records,
    take,
)
from iot_pipeline.ingestion.replay import ReplayFormat, read_replay
from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.resources.kafka_settings import DEFAULT_BOOTSTRAP_SERVERS, DEFAULT_TOPIC

log = logging.getLogger(__name__)

DEFAULT_RATE = 500.0  # continuous mode: events/s
UNPACED_TIME_RATE = 1000.0  # event-time spacing (events/s) when sending unpaced (--rate 0)


@dataclass
class SimulationConfig:
    seed: int
    bootstrap_servers: str = DEFAULT_BOOTSTRAP_SERVERS
    topic: str = DEFAULT_TOPIC
    ensure_topics: bool = True
    connect_timeout_s: float = 10.0  # fail fast when the broker is unreachable
    num_devices: int = 50
    device_types: tuple[str, ...] = tuple(t.name for t in DEVICE_TYPES)
    start: datetime | None = None  # event time of the first event; None = now (history: N days ago)
    faults: FaultRates = field(default_factory=FaultRates)
    rate: float | None = None  # None = mode default (continuous: DEFAULT_RATE; history/replay: unpaced)
    max_events: int | None = None
    duration_s: float | None = None
    history_days: int | None = None
    history_events_per_type: int = DEFAULT_EVENTS_PER_TYPE_PER_DAY
    replay: Path | None = None
    replay_format: ReplayFormat = "auto"
    output: Path | None = None  # write JSON lines here instead of Kafka
    producer: ProducerSettings = field(default_factory=ProducerSettings)
    metrics_port: int | None = 9108  # None = no endpoint, 0 = any free port
    metrics_host: str = "127.0.0.1"
    progress: bool = True

    @property
    def mode(self) -> str:
        if self.replay is not None:
            return "replay"
        if self.history_days is not None:
            return "history"
        return "bounded" if self.max_events is not None or self.duration_s is not None else "continuous"

    @property
    def effective_rate(self) -> float:
        if self.rate is not None:
            return self.rate
        return 0.0 if self.mode in ("history", "replay") else DEFAULT_RATE

    def resolved_start(self, now: datetime | None = None) -> datetime:
        if self.start is not None:
            return self.start
        now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
        if self.mode == "history":
            return now.replace(hour=0, minute=0, second=0) - timedelta(days=self.history_days or 0)
        return now

    def generator(self) -> EventGenerator:
        rate = self.effective_rate
        return EventGenerator(
            seed=self.seed,
            start=self.resolved_start(),
            num_devices=self.num_devices,
            device_types=[DEVICE_TYPES_BY_NAME[n] for n in self.device_types],
            faults=self.faults,
            events_per_second=rate if rate > 0 else UNPACED_TIME_RATE,
        )


@dataclass
class RunSummary:
    mode: str
    seed: int
    start: str | None
    records: int
    bytes: int
    seconds: float
    delivery_errors: int
    interrupted: bool
    by_kind: dict[str, int]
    error_samples: list[str]

    @property
    def rate_eps(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "rate_eps": round(self.rate_eps, 1)}


class Simulation:
    """A configured run; ``stop()`` (any thread, or a signal handler) ends it with a clean flush."""

    def __init__(self, config: SimulationConfig, kafka: KafkaResource | None = None) -> None:
        self.config = config
        self.kafka = kafka or KafkaResource(bootstrap_servers=config.bootstrap_servers, topic=config.topic)
        self.stats = SimStats()
        self.stop_event = threading.Event()
        self.metrics: MetricsServer | None = None

    def stop(self) -> None:
        self.stop_event.set()

    def _blocks(self) -> tuple[Iterator[list[SimRecord]], int | None, str | None]:
        cfg = self.config
        if cfg.replay is not None:
            blocks: Iterator[list[SimRecord]] = in_blocks(read_replay(cfg.replay, cfg.replay_format))
            total, start = None, None
        else:
            gen = cfg.generator()
            self.stats.active_devices = len(gen.devices)
            start = gen.start.isoformat().replace("+00:00", "Z")
            if cfg.history_days is not None:
                blocks = gen.history_blocks(cfg.history_days, cfg.history_events_per_type)
                slots = gen.history_slot_count(cfg.history_days, cfg.history_events_per_type)
                total = round(slots / (1.0 - cfg.faults.duplicate))  # duplicates come on top of the slots
            else:
                blocks, total = gen.blocks(), None
        if cfg.max_events is not None:
            blocks = take(blocks, cfg.max_events)
            total = cfg.max_events if total is None else min(total, cfg.max_events)
        return blocks, total, start

    def run(self) -> RunSummary:
        cfg = self.config
        blocks, total, start = self._blocks()
        if cfg.output is None:
            self.kafka.check_reachable(cfg.connect_timeout_s)
            if cfg.ensure_topics:
                created = self.kafka.ensure_topics()
                if created:
                    log.info("created topics %s", created)
        if cfg.metrics_port is not None:
            self.metrics = MetricsServer(self.stats, cfg.metrics_host, cfg.metrics_port).start()
            log.info("metrics on %s/metrics, health on %s/healthz", self.metrics.url, self.metrics.url)
        progress = None
        if cfg.progress and cfg.mode in ("history", "replay", "bounded") and cfg.max_events != 0:
            from tqdm import tqdm

            progress = tqdm(
                total=total, unit="ev", unit_scale=True, desc=f"simulate {cfg.mode}", mininterval=0.5
            )
        out = None
        t0 = time.monotonic()
        try:
            if cfg.output is not None:
                out = cfg.output.open("wb")
                sink: KafkaSink | FileSink = FileSink(out)
            else:
                sink = KafkaSink(self.kafka, cfg.topic, self.stats, cfg.producer, self.stop_event)
            try:
                result = send_records(
                    blocks,
                    sink=sink,
                    stats=self.stats,
                    stop=self.stop_event,
                    rate=cfg.effective_rate,
                    duration_s=cfg.duration_s,
                    progress=progress,
                )
            finally:
                self.stats.state = "stopping"
                sink.close()
            seconds = time.monotonic() - t0  # includes the final flush: the records are in Kafka now
        except BaseException:
            self.stats.state = "failed"
            raise
        finally:
            if progress is not None:
                progress.close()
            if out is not None:
                out.close()
            if self.metrics is not None:
                self.metrics.close()
        self.stats.state = "stopped"
        return RunSummary(
            mode=cfg.mode,
            seed=cfg.seed,
            start=start,
            records=result.records,
            bytes=result.bytes,
            seconds=round(seconds, 3),
            delivery_errors=self.stats.delivery_errors,
            interrupted=result.interrupted,
            by_kind=dict(self.stats.by_kind),
            error_samples=list(self.stats.error_samples),
        )

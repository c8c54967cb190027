"""Producer throughput: how many simulated events per second one Python process gets into Kafka.

Starts its own single-node broker (``KafkaBroker``, free ports, temporary directory) unless
``--bootstrap-servers`` is given, then measures on a fresh 3-partition topic:

1. generation only (``EventGenerator.stream``, no Kafka): the ceiling of the Python side;
2. the simulator's send path (``Simulation``, unpaced, lz4, idempotent, acks=all), including the final
   flush, i.e. until every record is acknowledged;
3. a naive baseline: a dict per event, ``json.dumps``, ``uuid.uuid4()``, a delivery callback per record
   and librdkafka's default batching, the way a first version usually looks.

Prints events/s and MB/s of each, the CPU seconds the process used, and the load average (the machine's
other processes share the cores with the broker). ``--json`` prints one machine-readable line.

    .venv/bin/python benchmarks/producer_throughput.py --events 500000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path

from iot_pipeline.ingestion.generator import EventGenerator, format_timestamp
from iot_pipeline.ingestion.runner import Simulation, SimulationConfig
from iot_pipeline.resources.kafka import KafkaResource

START = datetime(2026, 1, 1, tzinfo=timezone.utc)


@contextlib.contextmanager
def broker(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    from iot_pipeline.services.kafka_broker import KafkaBroker
    from iot_pipeline.services.processes import free_port

    with tempfile.TemporaryDirectory(prefix="iot-bench-kafka-") as tmp:
        b = KafkaBroker(state_dir=Path(tmp), port=free_port(), controller_port=free_port(), heap="1g")
        t0 = time.monotonic()
        b.start(timeout_s=300)
        print(f"broker {b.bootstrap_servers} started in {time.monotonic() - t0:.1f}s", file=sys.stderr)
        try:
            yield b.bootstrap_servers
        finally:
            b.stop()


def measure(fn) -> tuple[float, float, object]:  # type: ignore[no-untyped-def]
    wall0, cpu0 = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall0, time.process_time() - cpu0, result


def generation_only(n: int) -> int:
    total = 0
    for rec in islice(EventGenerator(seed=1, start=START).stream(), n):
        total += len(rec.value)
    return total


def simulator(bootstrap: str, topic: str, n: int, compression: str) -> int:
    from iot_pipeline.ingestion.producer import ProducerSettings

    cfg = SimulationConfig(
        seed=1, bootstrap_servers=bootstrap, topic=topic, ensure_topics=False, start=START, rate=0, max_events=n,
        producer=ProducerSettings(compression=compression), metrics_port=None, progress=False,
    )  # fmt: skip
    summary = Simulation(cfg).run()
    if summary.delivery_errors or summary.records != n:
        raise SystemExit(f"simulator run failed: {summary.as_dict()}")
    return summary.bytes


def naive(bootstrap: str, topic: str, n: int) -> int:
    kafka = KafkaResource(bootstrap_servers=bootstrap)
    producer = kafka.producer(**{"enable.idempotence": True, "acks": "all"})
    errors = []
    rng = random.Random(1)
    devices = [(f"dev-{i:04d}", ("temperature", "humidity", "co2")[i % 3]) for i in range(50)]
    total = 0

    def on_delivery(err, msg) -> None:  # type: ignore[no-untyped-def]
        if err is not None:
            errors.append(err)

    t_ms = int(START.timestamp() * 1000)
    for i in range(n):
        device_id, device_type = devices[rng.randrange(50)]
        event = {
            "event_id": str(uuid.uuid4()),
            "device_id": device_id,
            "device_type": device_type,
            "event_timestamp": format_timestamp(t_ms + i),
            "event_duration": round(rng.lognormvariate(4.8, 0.4), 1),
            "value": round(rng.gauss(21.0, 0.5), 2),
            "unit": "celsius",
            "status": "normal",
            "battery_level": round(rng.uniform(20, 100), 1),
            "signal_strength": rng.randint(-95, -45),
            "location": "plant-a/floor-1/room-01",
            "firmware_version": "2.3.1",
        }
        value = json.dumps(event).encode()
        total += len(value)
        while True:
            try:
                producer.produce(topic, value, device_id, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(120) or errors:
        raise SystemExit(f"naive baseline lost records: {errors[:3]}")
    return total


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bootstrap-servers", default=None, help="use this broker instead of starting one")
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--baseline-events", type=int, default=200_000)
    parser.add_argument("--compression", default="lz4", choices=("lz4", "zstd", "snappy", "gzip", "none"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    results: dict[str, dict[str, float]] = {}

    def report(name: str, n: int, wall: float, cpu: float, nbytes: int) -> None:
        results[name] = {
            "events": n, "seconds": round(wall, 3), "cpu_seconds": round(cpu, 3),
            "events_per_s": round(n / wall), "mb_per_s": round(nbytes / wall / 1e6, 1),
        }  # fmt: skip
        print(
            f"{name:<16} {n:>9,} events in {wall:6.2f}s  {n / wall:>10,.0f} events/s  "
            f"{nbytes / wall / 1e6:6.1f} MB/s  (process CPU {cpu:.2f}s)"
        )

    wall, cpu, nbytes = measure(lambda: generation_only(args.events))
    report("generation-only", args.events, wall, cpu, nbytes)  # type: ignore[arg-type]
    with broker(args.bootstrap_servers) as bootstrap:
        run_id = uuid.uuid4().hex[:8]
        kafka = KafkaResource(bootstrap_servers=bootstrap, topic=f"bench-{run_id}", quarantine_topic="")
        kafka.ensure_topics()
        kafka_naive = KafkaResource(
            bootstrap_servers=bootstrap, topic=f"bench-naive-{run_id}", quarantine_topic=""
        )
        kafka_naive.ensure_topics()
        wall, cpu, nbytes = measure(lambda: simulator(bootstrap, kafka.topic, args.events, args.compression))
        report("simulator", args.events, wall, cpu, nbytes)  # type: ignore[arg-type]
        wall, cpu, nbytes = measure(lambda: naive(bootstrap, kafka_naive.topic, args.baseline_events))
        report("naive-baseline", args.baseline_events, wall, cpu, nbytes)  # type: ignore[arg-type]
        with contextlib.suppress(Exception):
            kafka.admin().delete_topics([kafka.topic, kafka_naive.topic], operation_timeout=10)
    speedup = results["simulator"]["events_per_s"] / results["naive-baseline"]["events_per_s"]
    load = os.getloadavg()
    print(f"simulator vs naive baseline: {speedup:.1f}x; cores={os.cpu_count()} load average={load[0]:.1f}")
    if args.json:
        print(
            json.dumps(
                {"results": results, "speedup": round(speedup, 2), "cpus": os.cpu_count(), "load": load}
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

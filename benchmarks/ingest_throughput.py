"""Ingest benchmark: the simulator and the streaming job on the same machine, both for real.

Phases (each on a fresh topic and lake, with its own broker unless ``--bootstrap-servers`` is given):

1. **throughput**: the simulator (``iot-pipeline simulate`` in its own process) produces at
   ``--rate`` events/s while the stream runs continuously. A warm-up run of the simulator comes first
   (``--warmup`` seconds at the same rate, default 120: a long-running stream is JIT-compiled and
   warm, and on 2 cores the JIT needs about that long) and is landed completely; then a second run
   produces for ``--seconds`` and the script prints the sustained rate into the lake (records of that
   run / time from its start until the commit that landed the last of them) and the latency from
   Kafka timestamp to micro-batch commit (p50/p95/p99), with the median and maximum bronze batch time.
2. **latency**: the same at ``--latency-rate`` events/s (default 2,000) with a short trigger, after
   ``--latency-warmup`` seconds of warm-up (default 120).
3. **baseline**: the stream draining phase 1's whole topic as a backlog (available-now, fresh
   checkpoint), with no producer competing for the cores: the ceiling the sustained rate compares to.

    .venv/bin/python benchmarks/ingest_throughput.py --rate 45000 --seconds 60
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import SparkResource
from iot_pipeline.services.kafka_broker import broker_for_benchmark
from iot_pipeline.streaming.metrics import WeightedHistogram
from iot_pipeline.streaming.resource import SparkStreamingResource, StreamMode
from iot_pipeline.streaming.sink import BatchResult


def simulate(bootstrap: str, topic: str, rate: float, seconds: float, seed: int) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable, "-m", "iot_pipeline.ingestion", "--bootstrap-servers", bootstrap, "--topic", topic,
        "--rate", str(rate), "--duration", str(seconds), "--seed", str(seed), "--no-metrics", "--no-progress",
    ]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(producer: subprocess.Popen[bytes], timeout: float) -> None:
    _, err = producer.communicate(timeout=timeout)
    if producer.returncode != 0:
        raise RuntimeError(f"simulator failed: {err.decode()[-2000:]}")


def end_offsets(kafka: KafkaResource) -> int:
    """Records the topic holds."""
    return sum(high - low for low, high in kafka.watermarks(10).values())


def percentiles(hist: WeightedHistogram) -> str:
    return " ".join(f"p{q}={hist.percentile(q):.2f}s" for q in (50, 95, 99))


def streaming(
    spark: SparkResource, kafka: KafkaResource, lake: Path, trigger: float, live_stats: bool
) -> SparkStreamingResource:
    return SparkStreamingResource(
        spark=spark, kafka=kafka, lake=LakeResource(root=str(lake)), trigger_seconds=trigger,
        metrics_port=0, live_stats=live_stats,
    )  # fmt: skip


def live_phase(
    name: str,
    spark: SparkResource,
    kafka: KafkaResource,
    lake: Path,
    rate: float,
    seconds: float,
    trigger: float,
    warmup: float,
    live_stats: bool,
) -> dict[str, float]:
    kafka.ensure_topics()
    landed: list[tuple[float, int]] = []
    batch_seconds: list[float] = []
    lock = threading.Lock()

    def on_batch(result: BatchResult) -> None:
        with lock:
            landed.append((result.committed_at, result.input_rows))
            batch_seconds.append(result.seconds)

    handle = streaming(spark, kafka, lake, trigger, live_stats).start(
        StreamMode.CONTINUOUS, log=lambda _: None, on_batch=on_batch
    )

    def wait_caught_up(everything: int) -> float:
        deadline = time.time() + 900
        while sum(n for _, n in landed) < everything:
            handle.raise_if_failed()
            if time.time() > deadline:
                raise RuntimeError(f"stream did not catch up: {sum(n for _, n in landed)} of {everything}")
            time.sleep(0.5)
        return max(t for t, _ in landed)

    try:
        time.sleep(2 * trigger + 5)  # queries started on an empty topic
        # A long-running stream is JIT-compiled and its caches are warm: measure it that way. The
        # warm-up's backlog is landed before the measured run starts, so that run starts caught up.
        finish(simulate(kafka.bootstrap_servers, kafka.topic, rate, warmup, seed=1), warmup + 600)
        wait_caught_up(end_offsets(kafka))
        with lock:
            batch_seconds.clear()
        handle.metrics.latency.samples.clear()
        warm_offsets = end_offsets(kafka)
        t0 = time.time()
        finish(simulate(kafka.bootstrap_servers, kafka.topic, rate, seconds, seed=2), seconds + 600)
        produced_seconds = time.time() - t0
        everything = end_offsets(kafka)
        produced = everything - warm_offsets
        caught_up = wait_caught_up(everything)
    finally:
        handle.stop()
    # Records produced in the measured run over the time until the last of them was committed.
    total = produced
    sustained = total / (caught_up - t0)
    print(
        f"{name}: produced {produced:,} records in {produced_seconds:.1f}s ({produced / produced_seconds:,.0f}/s); "
        f"stream landed {total:,} in {caught_up - t0:.1f}s -> sustained {sustained:,.0f} events/s; "
        f"latency {percentiles(handle.metrics.latency)} over {len(batch_seconds)} batches "
        f"(bronze batch median {statistics.median(batch_seconds):.2f}s, max {max(batch_seconds):.2f}s)",
        flush=True,
    )
    return {"sustained": sustained, "p95": handle.metrics.latency.percentile(95) or 0.0}


def baseline_phase(spark: SparkResource, kafka: KafkaResource, lake: Path, live_stats: bool) -> float:
    records = end_offsets(kafka)
    t0 = time.time()
    totals = streaming(spark, kafka, lake, 10, live_stats).run(StreamMode.AVAILABLE_NOW, log=lambda _: None)
    seconds = time.time() - t0
    print(
        f"baseline (drain {totals.input_rows:,} backlog records, no producer): {records / seconds:,.0f} events/s"
    )
    return records / seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bootstrap-servers", help="use this broker instead of starting one")
    parser.add_argument("--rate", type=float, default=30_000, help="throughput phase rate, events/s")
    parser.add_argument("--seconds", type=float, default=60, help="measured producer duration of each phase")
    parser.add_argument(
        "--warmup", type=float, default=120, help="seconds the throughput phase produces before measuring"
    )
    parser.add_argument(
        "--latency-warmup",
        type=float,
        default=120,
        help="seconds the latency phase produces before measuring (small batches warm the JIT slowly)",
    )
    parser.add_argument(
        "--trigger", type=float, default=5, help="trigger interval of the throughput phase, s"
    )
    parser.add_argument("--latency-rate", type=float, default=2_000, help="latency phase rate, events/s")
    parser.add_argument(
        "--latency-trigger", type=float, default=1, help="trigger interval of the latency phase, s"
    )
    parser.add_argument(
        "--latency-only", action="store_true", help="run only the latency phase (quick check of a change)"
    )
    parser.add_argument(
        "--no-live-stats", action="store_true", help="do not write the live statistics (what they cost)"
    )
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="4g")
    args = parser.parse_args()
    live_stats = not args.no_live_stats

    spark = SparkResource(master=args.master, driver_memory=args.driver_memory, shuffle_partitions=4,
                          stop_on_teardown=False, spark_config={"spark.ui.enabled": "false"})  # fmt: skip
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; spark {args.master}",
        flush=True,
    )
    with (
        broker_for_benchmark(args.bootstrap_servers) as bootstrap,
        tempfile.TemporaryDirectory(prefix="iot-bench-lake-") as tmp,
    ):
        run_id = str(int(time.time()))
        throughput_kafka = KafkaResource(
            bootstrap_servers=bootstrap, topic=f"bench-tp-{run_id}", quarantine_topic=""
        )
        if not args.latency_only:
            tp = live_phase(
                "throughput",
                spark,
                throughput_kafka,
                Path(tmp) / "tp",
                args.rate,
                args.seconds,
                args.trigger,
                args.warmup,
                live_stats,
            )
            base = baseline_phase(spark, throughput_kafka, Path(tmp) / "baseline", live_stats)
        latency_kafka = KafkaResource(
            bootstrap_servers=bootstrap, topic=f"bench-lat-{run_id}", quarantine_topic=""
        )
        lat = live_phase(
            "latency",
            spark,
            latency_kafka,
            Path(tmp) / "lat",
            args.latency_rate,
            args.seconds,
            args.latency_trigger,
            args.latency_warmup,
            live_stats,
        )
    if args.latency_only:
        print(f"summary: p95 latency at {args.latency_rate:,.0f}/s: {lat['p95']:.2f}s (target <= 2s)")
        return
    print(
        f"summary: sustained {tp['sustained']:,.0f} events/s (target >= 40,000 at --rate 45000; "
        f"{tp['sustained'] / base:.0%} of the {base:,.0f}/s drain baseline, target >= 100,000); "
        f"p95 latency at {args.latency_rate:,.0f}/s: {lat['p95']:.2f}s (target <= 2s)"
    )


if __name__ == "__main__":
    main()

"""Fuzz benchmark: a large untrusted corpus through real Kafka and the stream, against a clean baseline.

Produces ``--records`` fuzz records (``iot_pipeline.ingestion.fuzz``: every named class of bad input,
valid events with resends, random mutations) to one topic and the same number of valid events to
another, drains each with the stream in available-now mode into its own lake (after a small warm-up
drain, so that neither pays for starting Spark), and prints:

* the ledger of the fuzz run, counted by Kafka partition and offset: produced, bronze, quarantined,
  missing, duplicated, in both, without a reason, given a reason other than the expected one, and the
  count per quarantine reason;
* records/s of each drain and their ratio (the cost of bad input against the clean baseline).

It exits non-zero if the ledger is not exact. The pytest form is ``iot_pipeline_tests/e2e/test_fuzz.py``
(10,000 records, plus the hourly and daily assets and a sensor tick).

    .venv/bin/python benchmarks/fuzz_stream.py --records 100000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.dataset as pads

from iot_pipeline.ingestion.fuzz import ANY, FuzzRecord, fuzz_corpus, ledger, produce_corpus
from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import SparkResource
from iot_pipeline.services.kafka_broker import broker_for_benchmark
from iot_pipeline.streaming.resource import SparkStreamingResource, StreamMode

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


def drain(spark: SparkResource, kafka: KafkaResource, root: Path) -> tuple[float, int]:
    stream = SparkStreamingResource(
        spark=spark, kafka=kafka, lake=LakeResource(root=str(root)), metrics_port=0
    )
    started = time.perf_counter()
    totals = stream.run(StreamMode.AVAILABLE_NOW, log=lambda _: None)
    return time.perf_counter() - started, totals.input_rows


def coordinates(path: Path, with_reason: bool) -> list[tuple]:
    if not path.exists():
        return []
    cols = ["kafka_partition", "kafka_offset", *(["reason"] if with_reason else [])]
    return [
        tuple(r.values())
        for r in pads.dataset(str(path), partitioning="hive").to_table(columns=cols).to_pylist()
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000, help="fuzz records (default %(default)s)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--bootstrap-servers", default=None, help="use a running broker instead of starting one"
    )
    args = parser.parse_args()

    hours = [
        (datetime.now(timezone.utc) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
        + timedelta(hours=i)
        for i in range(3)
    ]
    corpus = fuzz_corpus(args.records, hours, seed=args.seed)
    clean = fuzz_corpus(len(corpus), hours, seed=args.seed + 1, valid_share=1.0, resend_share=0.0)
    spark = SparkResource(master="local[2]", shuffle_partitions=4, driver_memory="4g", stop_on_teardown=False)
    with (
        broker_for_benchmark(args.bootstrap_servers) as bootstrap,
        tempfile.TemporaryDirectory(prefix="iot-fuzz-") as tmp,
    ):
        runs: dict[str, tuple[float, int]] = {}
        stored: dict[tuple[int, int], FuzzRecord] = {}
        warmup = fuzz_corpus(5_000, hours, seed=args.seed + 2)
        for name, records in (("warm-up", warmup), ("baseline (valid only)", clean), ("fuzz", corpus)):
            suffix = name.split(" ")[0]
            kafka = KafkaResource(
                bootstrap_servers=bootstrap, topic=f"iot-{suffix}", quarantine_topic=f"iot-{suffix}-q"
            )
            kafka.ensure_topics()
            producer = kafka.producer(**{"enable.idempotence": True, "acks": "all", "linger.ms": 20})
            t0 = time.perf_counter()
            stored = produce_corpus(producer, kafka.topic, records)
            print(f"{name}: produced {len(stored):,} records in {time.perf_counter() - t0:.1f}s")
            runs[name] = drain(spark, kafka, Path(tmp) / suffix)
        lake = Path(tmp) / "fuzz"
        book = ledger(
            stored,
            coordinates(lake / "bronze" / "events", False),
            coordinates(lake / "quarantine" / "events", True),
        )

    print("\n== ledger (fuzz run, by Kafka partition/offset) ==")
    for field in ("produced", "bronze", "quarantined", "missing", "duplicated", "in_both", "unreasoned"):
        print(f"  {field:<12} {getattr(book, field):>10,}")
    print(f"  {'wrong reason':<12} {len(book.wrong_reason):>10,}  {book.wrong_reason[:5]}")
    print("  per reason:")
    for reason, count in book.by_reason.items():
        print(f"    {reason:<36} {count:>8,}")
    mutations = Counter(r.kind for r in corpus if r.expected is ANY)
    print(
        "  mutations produced: " + ", ".join(f"{k.split(':')[1]}={v:,}" for k, v in sorted(mutations.items()))
    )

    print("\n== drain, available-now, local[2], after a 5,000-record warm-up drain ==")
    for name, (seconds, rows) in runs.items():
        if name == "warm-up":
            continue
        print(f"  {name:<22} {rows:>9,} records in {seconds:6.1f}s = {rows / seconds:>9,.0f} records/s")
    runs.pop("warm-up")
    (base_s, base_n), (fuzz_s, fuzz_n) = runs.values()
    print(f"  fuzz / baseline throughput: {(fuzz_n / fuzz_s) / (base_n / base_s):.2f}")
    print(f"\nledger exact: {book.ok}")
    return 0 if book.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

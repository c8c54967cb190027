"""``iot-pipeline stream``: the streaming job from a shell, without a Dagster run around it.

The Dagster job ``stream_to_bronze_job`` is the way to run the stream in operation (it shows in the
UI and is stopped by terminating the run); this command runs the same resource for debugging and
for the crash tests. SIGTERM or Ctrl-C stops it gracefully. Defaults come from the environment.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import SparkResource
from iot_pipeline.streaming.resource import SparkStreamingResource, StreamMode


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument(
        "--mode",
        choices=["continuous", "available-now"],
        default="continuous",
        help="continuous: micro-batches until stopped; available-now: drain the topic, then exit (default: %(default)s)",
    )
    parser.add_argument(
        "--bootstrap-servers",
        default=env("IOT_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        help="Kafka bootstrap servers (env IOT_KAFKA_BOOTSTRAP_SERVERS, default %(default)s)",
    )
    parser.add_argument(
        "--topic", default=env("IOT_KAFKA_TOPIC", "iot-events"), help="topic to read (env IOT_KAFKA_TOPIC)"
    )
    parser.add_argument(
        "--lake-root",
        default=env("IOT_LAKE_ROOT", ".local/lake"),
        help="lake root: directory or s3a://bucket/prefix (env IOT_LAKE_ROOT, default %(default)s)",
    )
    parser.add_argument(
        "--master", default=env("IOT_SPARK_MASTER", "local[*]"), help="spark.master (env IOT_SPARK_MASTER)"
    )
    parser.add_argument(
        "--trigger-seconds",
        type=float,
        default=float(env("IOT_STREAM_TRIGGER_SECONDS", "10")),
        help="micro-batch interval in continuous mode (env IOT_STREAM_TRIGGER_SECONDS, default %(default)s)",
    )
    parser.add_argument(
        "--max-offsets-per-trigger", type=int, default=None, help="cap on Kafka records per micro-batch"
    )
    parser.add_argument(
        "--starting-offsets",
        default="earliest",
        help="where a fresh checkpoint starts: earliest, latest or Spark's JSON form (default %(default)s)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(env("IOT_STREAM_METRICS_PORT", "9109")),
        help="Prometheus port, 0 to disable (env IOT_STREAM_METRICS_PORT, default %(default)s)",
    )
    parser.add_argument(
        "--no-live-stats", action="store_true", help="do not write the live per-minute statistics"
    )


def build_resource(args: argparse.Namespace) -> SparkStreamingResource:
    return SparkStreamingResource(
        spark=SparkResource(master=args.master, app_name="iot-pipeline-stream"),
        kafka=KafkaResource(bootstrap_servers=args.bootstrap_servers, topic=args.topic),
        lake=LakeResource(root=args.lake_root),
        trigger_seconds=args.trigger_seconds,
        max_offsets_per_trigger=args.max_offsets_per_trigger,
        starting_offsets=args.starting_offsets,
        metrics_port=args.metrics_port,
        metrics_host=os.environ.get("IOT_METRICS_HOST", "127.0.0.1"),
        live_stats=not args.no_live_stats,
    )


def run(args: argparse.Namespace) -> int:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    mode = StreamMode.AVAILABLE_NOW if args.mode == "available-now" else StreamMode.CONTINUOUS
    log = lambda message: print(message, flush=True)  # noqa: E731
    try:
        totals = build_resource(args).run(mode, log=log, stop=stop)
    except Exception as exc:  # a configuration error must reach the operator as one clear line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log(
        f"stopped: {totals.batches} batches, {totals.input_rows} records, {totals.bronze_rows} to bronze, "
        f"quarantined {sum(totals.quarantined.values())}"
    )
    return 0


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "stream",
        help="run the Kafka -> bronze stream outside Dagster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m iot_pipeline.streaming", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))

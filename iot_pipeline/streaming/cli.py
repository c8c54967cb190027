"""``iot-pipeline stream``: the streaming job from a shell, without a Dagster run around it.

The Dagster job ``stream_to_bronze_job`` is the way to run the stream in operation (it shows in the
UI and is stopped by terminating the run); this command runs the same resource for debugging and
for the crash tests. SIGTERM or Ctrl-C stops it gracefully. Defaults come from the environment.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from iot_pipeline.command import Command
from iot_pipeline.resources.bound import bound_resources
from iot_pipeline.resources.env import resolved, with_settings
from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.resources.kafka_settings import ENV_BOOTSTRAP, ENV_TOPIC
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import SparkResource
from iot_pipeline.storage.layout import ROOT_ENV
from iot_pipeline.streaming.resource import SparkStreamingResource, StreamMode, bound_streaming

# Options that override a setting the code location binds from the environment (resources/bound.py):
# flag -> (variable, resource, field, type, help). Unset, they keep the bound value, else the field default.
BOUND_OPTIONS: dict[str, tuple[str, type, str, type, str]] = {
    "--bootstrap-servers": (ENV_BOOTSTRAP, KafkaResource, "bootstrap_servers", str, "Kafka bootstrap servers"),
    "--topic": (ENV_TOPIC, KafkaResource, "topic", str, "topic to read"),
    "--lake-root": (ROOT_ENV, LakeResource, "root", str, "lake root: directory or s3a://bucket/prefix"),
    "--master": ("IOT_SPARK_MASTER", SparkResource, "master", str, "spark.master"),
    "--trigger-seconds": (
        "IOT_STREAM_TRIGGER_SECONDS", SparkStreamingResource, "trigger_seconds", float, "micro-batch interval in continuous mode",
    ),
    "--metrics-port": ("IOT_STREAM_METRICS_PORT", SparkStreamingResource, "metrics_port", int, "Prometheus port, 0 to disable"),
}  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mode",
        choices=["continuous", "available-now"],
        default="continuous",
        help="continuous: micro-batches until stopped; available-now: drain the topic, then exit (default: %(default)s)",
    )
    for flag, (variable, resource, field, type_, help_) in BOUND_OPTIONS.items():
        default = resource.model_fields[field].default
        parser.add_argument(
            flag, type=type_, default=None, help=f"{help_} (default: {variable}, else {default})"
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
        "--no-live-stats", action="store_true", help="do not write the live per-minute statistics"
    )


def build_resource(args: argparse.Namespace) -> SparkStreamingResource:
    """The code location's streaming resource, its environment read now, with the options given."""
    parts = bound_resources()
    base = resolved(bound_streaming(parts["spark"], parts["kafka"], parts["lake"]))
    lake_on_s3 = (args.lake_root or "").startswith("s3a://")
    return with_settings(
        base,
        spark=with_settings(
            base.spark, master=args.master, app_name="iot-pipeline-stream", s3=base.spark.s3 or lake_on_s3
        ),
        kafka=with_settings(base.kafka, bootstrap_servers=args.bootstrap_servers, topic=args.topic),
        lake=with_settings(base.lake, root=args.lake_root),
        trigger_seconds=args.trigger_seconds,
        max_offsets_per_trigger=args.max_offsets_per_trigger,
        starting_offsets=args.starting_offsets,
        metrics_port=args.metrics_port,
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


COMMAND = Command(
    "stream",
    "run the Kafka -> bronze stream outside Dagster",
    __doc__,
    "iot_pipeline.streaming",
    add_arguments,
    run,
)
register, main = COMMAND.register, COMMAND.main

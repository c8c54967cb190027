"""``iot-pipeline simulate``: the device simulator's command line (also ``python -m iot_pipeline.ingestion``).

Environment defaults are read when the parser is built (at run time, not import time):
IOT_KAFKA_BOOTSTRAP_SERVERS, IOT_KAFKA_TOPIC, IOT_SIM_METRICS_PORT. Kafka security (SASL, TLS) comes
only from the environment (IOT_KAFKA_SECURITY_PROTOCOL, IOT_KAFKA_SASL_*, IOT_KAFKA_SSL_*), never from
flags, so passwords do not show in process listings.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from iot_pipeline.command import Command
from iot_pipeline.ingestion.devices import DEVICE_TYPES_BY_NAME
from iot_pipeline.ingestion.faults import FaultRates
from iot_pipeline.ingestion.generator import DEFAULT_EVENTS_PER_TYPE_PER_DAY, parse_start
from iot_pipeline.ingestion.producer import COMPRESSIONS, ProducerSettings
from iot_pipeline.ingestion.replay import ReplayError
from iot_pipeline.ingestion.runner import DEFAULT_RATE, UNPACED_TIME_RATE, Simulation, SimulationConfig
from iot_pipeline.resources.kafka import KafkaConfigError
from iot_pipeline.resources.kafka_settings import (
    DEFAULT_BOOTSTRAP_SERVERS,
    DEFAULT_TOPIC,
    ENV_BOOTSTRAP,
    ENV_TOPIC,
)

EXIT_DELIVERY_ERRORS = 1
EXIT_CONFIG = 3

HELP = "Simulate IoT devices and produce their events to Kafka."
DESCRIPTION = f"""{HELP}

Modes: continuous at --rate events/s (default {DEFAULT_RATE:g}) until Ctrl-C; bounded with --max-events
and/or --duration; history with --history-days N (N whole past UTC days, sent as fast as Kafka takes
them); replay of a JSONL or CSV file with --replay FILE. Event time is virtual and starts at --start
(default: now; history: N days ago at 00:00 UTC), so --seed plus --start reproduce a run exactly. With
--rate 0 records are sent unpaced and event times advance at {UNPACED_TIME_RATE:g} events/s."""


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1 (0.02 = 2%), got {text}")
    return value


def _int_at_least(minimum: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0.0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _timestamp(text: str) -> Any:
    try:
        return parse_start(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO-8601 timestamp such as 2026-01-01T00:00:00Z, got {text!r}"
        ) from None


def _device_types(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in DEVICE_TYPES_BY_NAME]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown device type(s) {unknown or text!r}; choose from {', '.join(DEVICE_TYPES_BY_NAME)}"
        )
    return names


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.set_defaults(simulate_parser=p)  # run() reports usage errors against it
    env = os.environ
    kafka = p.add_argument_group("kafka")
    kafka.add_argument(
        "--bootstrap-servers",
        default=env.get(ENV_BOOTSTRAP, DEFAULT_BOOTSTRAP_SERVERS),
        help=f"Kafka bootstrap servers (env {ENV_BOOTSTRAP}; default %(default)s)",
    )
    kafka.add_argument("--topic", default=env.get(ENV_TOPIC, DEFAULT_TOPIC), help=f"(env {ENV_TOPIC})")
    kafka.add_argument(
        "--connect-timeout",
        type=_positive_float,
        default=10.0,
        help="seconds to reach the broker (%(default)s)",
    )
    kafka.add_argument("--no-create-topics", action="store_true", help="do not create missing topics")
    kafka.add_argument("--compression", choices=COMPRESSIONS, default="lz4")
    kafka.add_argument("--linger-ms", type=_int_at_least(0), default=20)
    kafka.add_argument("--batch-size", type=_int_at_least(1), default=1_000_000, help="bytes per batch")

    fleet = p.add_argument_group("devices and faults")
    fleet.add_argument("--devices", type=_int_at_least(1), default=50, help="number of devices (%(default)s)")
    fleet.add_argument(
        "--device-types",
        type=_device_types,
        default=tuple(DEVICE_TYPES_BY_NAME),
        help="comma-separated subset of: " + ", ".join(DEVICE_TYPES_BY_NAME),
    )
    fleet.add_argument("--seed", type=int, default=None, help="RNG seed (default: random, printed)")
    fleet.add_argument(
        "--start", type=_timestamp, default=None, help="event time of the first event (ISO-8601)"
    )
    defaults = FaultRates()
    for name in ("anomaly", "duplicate", "malformed", "late"):
        fleet.add_argument(
            f"--{name}-rate",
            type=_fraction,
            default=getattr(defaults, name),
            help="fraction of records (default %(default)s)",
        )

    mode = p.add_argument_group("mode")
    mode.add_argument(
        "--rate",
        type=_non_negative_float,
        default=None,
        help=f"events/s; 0 = as fast as Kafka takes them (default {DEFAULT_RATE:g}, "
        "unpaced for history and replay)",
    )
    mode.add_argument(
        "--max-events", type=_int_at_least(0), default=None, help="stop after this many records"
    )
    mode.add_argument("--duration", type=_positive_float, default=None, help="stop after this many seconds")
    exclusive = mode.add_mutually_exclusive_group()
    exclusive.add_argument("--history-days", type=_int_at_least(1), default=None, help="send N past days")
    exclusive.add_argument(
        "--replay", type=Path, default=None, metavar="FILE", help="replay a JSONL/CSV file"
    )
    mode.add_argument(
        "--history-events-per-type",
        type=_int_at_least(1),
        default=DEFAULT_EVENTS_PER_TYPE_PER_DAY,
        help="new events per device type and day in history mode (%(default)s; the daily p95 needs >= 500)",
    )
    mode.add_argument("--replay-format", choices=("auto", "jsonl", "csv"), default="auto")
    mode.add_argument(
        "--output",
        type=Path,
        default=None,
        metavar="FILE",
        help="write JSON lines to FILE instead of Kafka (a replayable file)",
    )

    ops = p.add_argument_group("operations")
    ops.add_argument(
        "--metrics-port",
        type=_int_at_least(0),
        default=int(env.get("IOT_SIM_METRICS_PORT", "9108")),
        help="Prometheus /metrics and /healthz port (env IOT_SIM_METRICS_PORT; 0 = any free port)",
    )
    ops.add_argument("--no-metrics", action="store_true", help="do not serve metrics")
    ops.add_argument("--no-progress", action="store_true", help="no progress bar")
    ops.add_argument("--json", action="store_true", help="print the final summary as JSON")
    ops.add_argument("-v", "--verbose", action="store_true")


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> SimulationConfig:
    """Cross-argument checks end in ``parser.error`` (exit 2 with usage), like single-argument ones."""
    try:
        faults = FaultRates(args.anomaly_rate, args.duplicate_rate, args.malformed_rate, args.late_rate)
    except ValueError as exc:
        parser.error(str(exc))
    if args.replay is not None and not args.replay.is_file():
        parser.error(f"--replay: file not found: {args.replay}")
    if args.history_days is not None and args.duration is not None:
        parser.error("--duration cannot be combined with --history-days (history mode ends by itself)")
    if args.history_days is not None and len(args.device_types) > args.devices:
        parser.error(f"--devices {args.devices} is fewer than the {len(args.device_types)} device types")
    if args.output is not None and args.output.parent and not args.output.parent.is_dir():
        parser.error(f"--output: directory does not exist: {args.output.parent}")
    return SimulationConfig(
        seed=args.seed if args.seed is not None else secrets.randbelow(2**31),
        bootstrap_servers=args.bootstrap_servers,
        topic=args.topic,
        ensure_topics=not args.no_create_topics,
        connect_timeout_s=args.connect_timeout,
        num_devices=args.devices,
        device_types=args.device_types,
        start=args.start,
        faults=faults,
        rate=args.rate,
        max_events=args.max_events,
        duration_s=args.duration,
        history_days=args.history_days,
        history_events_per_type=args.history_events_per_type,
        replay=args.replay,
        replay_format=args.replay_format,
        output=args.output,
        producer=ProducerSettings(
            compression=args.compression, linger_ms=args.linger_ms, batch_size=args.batch_size
        ),
        metrics_port=None if args.no_metrics else args.metrics_port,
        progress=not args.no_progress,
    )


def run(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.simulate_parser
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    config = config_from_args(args, parser)
    sim = Simulation(config)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logging.getLogger(__name__).info(
            "signal %s: stopping after a final flush", signal.Signals(signum).name
        )
        sim.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C aborts

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    logging.getLogger(__name__).info(
        "simulating: mode=%s seed=%d devices=%d rate=%s target=%s",
        config.mode,
        config.seed,
        config.num_devices,
        config.effective_rate or "unpaced",
        config.output or f"{config.bootstrap_servers}/{config.topic}",
    )
    try:
        summary = sim.run()
    except (KafkaConfigError, ReplayError, OSError) as exc:
        print(f"iot-pipeline simulate: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if args.json:
        print(json.dumps(summary.as_dict()))
    else:
        kinds = ", ".join(f"{k}={v}" for k, v in sorted(summary.by_kind.items()))
        print(
            f"sent {summary.records:,} records ({summary.bytes / 1e6:.1f} MB) in {summary.seconds:.2f}s = "
            f"{summary.rate_eps:,.0f} events/s; seed={summary.seed} start={summary.start}; {kinds}; "
            f"delivery errors: {summary.delivery_errors}"
        )
    if summary.delivery_errors:
        for sample in summary.error_samples:
            print(f"delivery error: {sample}", file=sys.stderr)
        print(
            f"iot-pipeline simulate: {summary.delivery_errors} record(s) were not delivered", file=sys.stderr
        )
        return EXIT_DELIVERY_ERRORS
    return 0


COMMAND = Command("simulate", HELP, DESCRIPTION, "iot_pipeline.ingestion", add_arguments, run)
register, main = COMMAND.register, COMMAND.main

"""``iot-pipeline kafka fetch|start|stop|status|topics``: the local broker and its topics from a shell.

Also runnable as ``python -m iot_pipeline.services.kafka_cli <command>``. Defaults come from the
environment when the parser is built (never at import time); ``topics`` connects with the security
settings of ``IOT_KAFKA_SECURITY_PROTOCOL``/``IOT_KAFKA_SASL_*``/``IOT_KAFKA_SSL_*``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from confluent_kafka import KafkaException

from iot_pipeline.resources.kafka_settings import (
    DEFAULT_BOOTSTRAP_SERVERS,
    DEFAULT_PARTITIONS,
    DEFAULT_QUARANTINE_TOPIC,
    DEFAULT_TOPIC,
    ENV_BOOTSTRAP,
    ENV_QUARANTINE_TOPIC,
    ENV_TOPIC,
)
from iot_pipeline.services.kafka_broker import KafkaBroker
from iot_pipeline.services.paths import state_dir


def _port_of(bootstrap_servers: str) -> int:
    first = bootstrap_servers.split(",")[0].strip()
    _, _, port = first.rpartition(":")
    if not port.isdigit():
        raise SystemExit(
            f"error: cannot read a port from IOT_KAFKA_BOOTSTRAP_SERVERS={bootstrap_servers!r}; "
            "expected host:port, e.g. 127.0.0.1:9092 (or pass --port)"
        )
    return int(port)


def _broker(args: argparse.Namespace) -> KafkaBroker:
    return KafkaBroker(
        state_dir=Path(args.state_dir) if args.state_dir else state_dir() / "kafka",
        port=args.port,
        controller_port=args.controller_port if args.controller_port else args.port + 1,
        heap=args.heap,
    )


def _fetch(args: argparse.Namespace) -> int:
    broker = _broker(args)
    started = time.monotonic()
    jars = broker.fetch()
    print(f"Kafka {broker.version}: {len(jars)} jars ready in {time.monotonic() - started:.1f}s")
    return 0


def _start(args: argparse.Namespace) -> int:
    broker = _broker(args)
    started = time.monotonic()
    fresh = broker.start(timeout_s=args.timeout)
    verb = "started" if fresh else "already running"
    print(
        f"Kafka {broker.version} broker {verb} and healthy in {time.monotonic() - started:.1f}s "
        f"(pid {broker.pid()}, state {broker.state_dir}, log {broker.log_file})"
    )
    print(f"IOT_KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    broker = _broker(args)
    print("Kafka broker stopped" if broker.stop(timeout_s=args.timeout) else "Kafka broker was not running")
    return 0


def _status(args: argparse.Namespace) -> int:
    status = _broker(args).status()
    if not status.running:
        print(f"Kafka broker not running (state {status.state_dir})")
        return 3
    health = "healthy" if status.healthy else "NOT answering"
    print(
        f"Kafka broker running (pid {status.pid}), {health} at {status.bootstrap_servers}; log {status.log_file}"
    )
    return 0 if status.healthy else 1


def _topics(args: argparse.Namespace) -> int:
    # Imports Dagster: kept out of start/stop/status, which must stay quick.
    from iot_pipeline.resources.bound import bound_resources
    from iot_pipeline.resources.env import resolved, with_settings

    resource = with_settings(
        resolved(bound_resources()["kafka"]),
        bootstrap_servers=args.bootstrap_servers,
        topic=args.topic,
        quarantine_topic=args.quarantine_topic,
        partitions=args.partitions,
    )
    created = set(resource.ensure_topics())
    metadata = resource.admin().list_topics(timeout=10)
    for name in (resource.topic, resource.quarantine_topic):
        partitions = len(metadata.topics[name].partitions) if name in metadata.topics else 0
        print(f"{name}: {'created' if name in created else 'exists'}, {partitions} partitions")
    return 0


def _add_commands(parser: argparse.ArgumentParser) -> None:
    env = os.environ
    bootstrap = env.get(ENV_BOOTSTRAP, DEFAULT_BOOTSTRAP_SERVERS)
    commands = parser.add_subparsers(dest="kafka_command", required=True, metavar="COMMAND")

    def broker_command(
        name: str, handler: Callable[[argparse.Namespace], int], help_: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_, description=help_)
        sub.add_argument(
            "--port",
            type=int,
            default=None,
            help=f"broker port on 127.0.0.1 (default: the port of IOT_KAFKA_BOOTSTRAP_SERVERS, now {bootstrap})",
        )
        sub.add_argument(
            "--controller-port",
            type=int,
            default=int(env["IOT_KAFKA_CONTROLLER_PORT"]) if env.get("IOT_KAFKA_CONTROLLER_PORT") else None,
            help="KRaft controller port on 127.0.0.1 (default: IOT_KAFKA_CONTROLLER_PORT, else broker port + 1)",
        )
        sub.add_argument(
            "--heap",
            default=env.get("IOT_KAFKA_HEAP", "512m"),
            help="broker JVM max heap, e.g. 512m or 1g (default: IOT_KAFKA_HEAP, else 512m)",
        )
        sub.add_argument(
            "--state-dir",
            default=None,
            help="data, config, logs and pid file (default: $IOT_PIPELINE_STATE/kafka, else ./.local/kafka)",
        )
        sub.set_defaults(func=_guarded(handler), bootstrap_env=bootstrap)
        return sub

    broker_command("fetch", _fetch, "download the Kafka jars from Maven Central into the cache (once)")
    start = broker_command("start", _start, "start the local broker in the background and wait until healthy")
    start.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for health (default 120)"
    )
    stop = broker_command("stop", _stop, "stop the local broker (SIGTERM, then SIGKILL after --timeout)")
    stop.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds before SIGKILL (default 30; 90 more once, while a first broker writes its class-data archive)",
    )
    broker_command(
        "status",
        _status,
        "show whether the local broker runs and answers (exit 0 healthy, 1 not answering, 3 stopped)",
    )

    topics = commands.add_parser(
        "topics",
        help="create the event and quarantine topics if missing (idempotent)",
        description="Create the event and quarantine topics through the AdminClient if they do not exist.",
    )
    # Unset, each is what the code location binds (resources/bound.py): its variable, else the
    # KafkaResource field's default.
    for flag, variable, type_, default, help_ in (
        ("--bootstrap-servers", ENV_BOOTSTRAP, str, DEFAULT_BOOTSTRAP_SERVERS, "Kafka bootstrap servers"),
        ("--topic", ENV_TOPIC, str, DEFAULT_TOPIC, "event topic"),
        ("--quarantine-topic", ENV_QUARANTINE_TOPIC, str, DEFAULT_QUARANTINE_TOPIC, "quarantine topic"),
        ("--partitions", "IOT_KAFKA_PARTITIONS", int, DEFAULT_PARTITIONS, "partitions of new topics (others keep theirs)"),
    ):  # fmt: skip
        topics.add_argument(
            flag, type=type_, default=None, help=f"{help_} (default: {variable}, else {default})"
        )
    topics.set_defaults(func=_guarded(_topics))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``kafka`` command group to the top-level ``iot-pipeline`` parser."""
    parser = subparsers.add_parser(
        "kafka", help="local Kafka 4.x broker (KRaft, no Docker) and topics", description=__doc__
    )
    _add_commands(parser)


def _guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Resolve env-derived defaults, and turn expected failures into one clear line and exit code 2."""

    def call(args: argparse.Namespace) -> int:
        if getattr(args, "port", 0) is None:
            args.port = _port_of(args.bootstrap_env)
        try:
            return handler(args)
        except (RuntimeError, KafkaException) as exc:  # broker, Maven, missing tool, unreachable Kafka
            print(f"error: {exc}", file=sys.stderr)
            return 2

    return call


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m iot_pipeline.services.kafka_cli", description=__doc__)
    _add_commands(parser)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

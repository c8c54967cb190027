"""``iot-pipeline checkpoint show|lag|reset|unlock``: the stream's Kafka position, seen and moved from a shell.

``show`` prints the committed batch and offsets; ``lag`` compares them with Kafka's end offsets (exit
1 when the total lag exceeds ``--max-lag``, for health checks); ``reset`` moves the checkpoint aside
and writes the resume file so the next start continues the lake's batch ids (see
:mod:`iot_pipeline.streaming.checkpoint`). Stop the streaming job before ``reset``. Defaults come from
the environment (``IOT_LAKE_ROOT``, ``IOT_KAFKA_BOOTSTRAP_SERVERS``, ``IOT_KAFKA_TOPIC``); Kafka security
from the ``IOT_KAFKA_SECURITY_PROTOCOL``/``IOT_KAFKA_SASL_*``/``IOT_KAFKA_SSL_*`` variables.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from iot_pipeline.resources.kafka import KafkaConfigError, KafkaResource
from iot_pipeline.resources.kafka_settings import (
    DEFAULT_BOOTSTRAP_SERVERS,
    DEFAULT_TOPIC,
    ENV_BOOTSTRAP,
    ENV_TOPIC,
)
from iot_pipeline.storage.layout import DEFAULT_LAKE_ROOT, ROOT_ENV, LakeLayout, normalize_root
from iot_pipeline.streaming.checkpoint import (
    BRONZE_QUERY,
    RESET_FROM,
    CheckpointError,
    consumer_lag,
    end_offsets,
    read_state,
    reset_checkpoint,
)
from iot_pipeline.streaming.lock import force_unlock, live_holder


def _layout(args: argparse.Namespace) -> LakeLayout:
    return LakeLayout(normalize_root(args.lake_root))


def show(args: argparse.Namespace) -> int:
    state = read_state(_layout(args))
    print(
        json.dumps(
            {
                "checkpoint": state.location,
                "last_committed_batch": state.last_committed_batch,
                "committed_offsets": state.committed_offsets,
                "batch_base": state.resume.batch_base,
                "next_ingest_batch": state.next_partition_batch,
            },
            indent=2,
        )
    )
    return 0


def lag(args: argparse.Namespace) -> int:
    kafka = KafkaResource(bootstrap_servers=args.bootstrap_servers, topic=args.topic)
    state = read_state(_layout(args))
    kafka.check_reachable()  # a refused login or a wrong address fails here, naming the variable
    per_partition = consumer_lag(state, args.topic, end_offsets(kafka))
    total = sum(per_partition.values())
    for partition, n in per_partition.items():
        print(f"{args.topic}[{partition}] lag {n}")
    print(f"total lag {total} (committed batch {state.last_committed_batch})")
    return 1 if args.max_lag is not None and total > args.max_lag else 0


def reset(args: argparse.Namespace) -> int:
    holder = live_holder(_layout(args), BRONZE_QUERY)
    if holder is not None:  # a running query would keep writing to the moved directory
        raise CheckpointError(
            f"a stream is running on this checkpoint ({holder.describe(time.time())}): stop it first"
        )
    moved, resume = reset_checkpoint(_layout(args), args.start_from)
    print(f"checkpoint moved to {moved}")
    print(
        f"next start: ingest_batch from {resume.batch_base}, starting offsets "
        f"{json.dumps(resume.starting_offsets) if resume.starting_offsets else 'as configured'}"
    )
    return 0


def unlock(args: argparse.Namespace) -> int:
    holder = force_unlock(_layout(args), BRONZE_QUERY)
    if holder is None:
        print("no stream lease: nothing to remove")
    else:
        print(f"removed the stream lease of pid {holder.pid} on {holder.host} (run {holder.dagster_run_id})")
    return 0


def _guarded(func: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (CheckpointError, KafkaConfigError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    return run


def register(subparsers: Any) -> argparse.ArgumentParser:
    env = os.environ.get
    parser = subparsers.add_parser(
        "checkpoint",
        help="the stream's committed Kafka offsets, its lag, and a safe checkpoint reset",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--lake-root",
        default=env(ROOT_ENV, DEFAULT_LAKE_ROOT),
        help=f"lake root (env {ROOT_ENV}, default %(default)s)",
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("show", help="committed batch and offsets").set_defaults(func=_guarded(show))
    lag_parser = sub.add_parser("lag", help="records in Kafka beyond the committed offsets, per partition")
    lag_parser.add_argument(
        "--bootstrap-servers",
        default=env(ENV_BOOTSTRAP, DEFAULT_BOOTSTRAP_SERVERS),
        help=f"(env {ENV_BOOTSTRAP}, default %(default)s)",
    )
    lag_parser.add_argument(
        "--topic",
        default=env(ENV_TOPIC, DEFAULT_TOPIC),
        help=f"(env {ENV_TOPIC}, default %(default)s)",
    )
    lag_parser.add_argument("--max-lag", type=int, default=None, help="exit 1 if the total lag is above this")
    lag_parser.set_defaults(func=_guarded(lag))
    reset_parser = sub.add_parser("reset", help="move the checkpoint aside; the next start resumes safely")
    reset_parser.add_argument(
        "--from",
        dest="start_from",
        choices=RESET_FROM,
        default="committed",
        help="committed: continue at the old checkpoint's offsets (default); earliest: re-read the "
        "topic (silver removes the repeats); latest: skip what Kafka holds now",
    )
    reset_parser.set_defaults(func=_guarded(reset))
    sub.add_parser(
        "unlock",
        help="remove the stream's checkpoint lease at once (only when sure no stream runs on this lake)",
    ).set_defaults(func=_guarded(unlock))
    return parser

"""``iot-pipeline``: one command line for the local services, the simulator and the stream."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from iot_pipeline.ingestion import cli as simulate_cli
from iot_pipeline.services import (
    freshness_metrics,
    kafka_cli,
    local_cli,
    minio_cli,
    spark_cluster,
    spark_connect,
)
from iot_pipeline.streaming import checkpoint_cli
from iot_pipeline.streaming import cli as stream_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iot-pipeline",
        description="IoT streaming ETL: Kafka -> Spark Structured Streaming -> Parquet -> Dagster assets.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (
        local_cli,
        kafka_cli,
        minio_cli,
        spark_cluster,
        spark_connect,
        simulate_cli,
        stream_cli,
        checkpoint_cli,
        freshness_metrics,
    ):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

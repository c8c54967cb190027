"""The resources every Definitions object of this project binds, configured from the environment.

A setting whose environment variable is set is bound as ``dg.EnvVar`` (the UI then shows where the
value comes from and secrets never land in run config); otherwise the local default applies, so a
fresh checkout runs with no configuration at all. Every variable is listed in ``.env.example``.
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource

from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import SparkResource
from iot_pipeline.storage.s3 import DEFAULT_REGION
from iot_pipeline.streaming.resource import SparkStreamingResource


def env_or(name: str, default: Any) -> Any:
    return dg.EnvVar(name) if os.environ.get(name) else default


def env_int_or(name: str, default: int) -> Any:
    return dg.EnvVar.int(name) if os.environ.get(name) else default


def s3_resource() -> S3Resource:
    """dagster-aws's S3 client for what Spark does not do: partition listings, bucket setup, CSV exports.

    Unused while the lake is local. Credentials come from boto3's chain (AWS_* variables, profile, role).
    """
    return S3Resource(
        endpoint_url=env_or("IOT_S3_ENDPOINT", None),
        region_name=env_or("AWS_REGION", DEFAULT_REGION),
        max_attempts=3,
    )


def default_resources() -> dict[str, Any]:
    kafka = KafkaResource(
        bootstrap_servers=env_or("IOT_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        topic=env_or("IOT_KAFKA_TOPIC", "iot-events"),
        quarantine_topic=env_or("IOT_KAFKA_QUARANTINE_TOPIC", "iot-events-quarantine"),
    )
    lake = LakeResource(root=env_or("IOT_LAKE_ROOT", ".local/lake"))
    s3_lake = os.environ.get("IOT_LAKE_ROOT", "").startswith("s3a://")
    spark = SparkResource(
        master=env_or("IOT_SPARK_MASTER", "local[*]"),
        s3=s3_lake,
        s3_endpoint=env_or("IOT_S3_ENDPOINT", ""),
        s3_region=env_or("AWS_REGION", "us-east-1"),
        # A custom endpoint (MinIO and most S3-compatible stores) wants path-style addressing.
        s3_path_style=bool(os.environ.get("IOT_S3_ENDPOINT")),
    )
    streaming = SparkStreamingResource(
        spark=spark,
        kafka=kafka,
        lake=lake,
        trigger_seconds=env_or("IOT_STREAM_TRIGGER_SECONDS", 10.0),
        metrics_port=env_int_or("IOT_STREAM_METRICS_PORT", 9109),
        metrics_host=env_or("IOT_METRICS_HOST", "127.0.0.1"),
    )
    return {"kafka": kafka, "lake": lake, "spark": spark, "streaming": streaming, "s3": s3_resource()}

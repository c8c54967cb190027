"""The resources every Definitions object of this project binds, configured from the environment.

It sits above ``resources`` and ``streaming`` because it binds both (the streaming job's resource
wraps the Spark, Kafka and lake resources); the binding rules themselves are in
``iot_pipeline/resources/defaults.py``.
"""

from __future__ import annotations

import os
from typing import Any

from iot_pipeline.resources.defaults import env_float_or, env_int_or, env_or, s3_resource
from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.resources.kafka_settings import KafkaSettings
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import REMOTE_ENV, SparkResource
from iot_pipeline.streaming.resource import SparkStreamingResource


def default_resources() -> dict[str, Any]:
    # The Kafka connection (security included) is read and checked now, so a code location whose
    # Kafka variables cannot work does not load; the clients read it again when they connect.
    KafkaSettings.from_env()
    kafka = KafkaResource(
        bootstrap_servers=env_or("IOT_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        topic=env_or("IOT_KAFKA_TOPIC", "iot-events"),
        quarantine_topic=env_or("IOT_KAFKA_QUARANTINE_TOPIC", "iot-events-quarantine"),
        partitions=env_int_or("IOT_KAFKA_PARTITIONS", 3, minimum=1),
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
        remote=env_or(REMOTE_ENV, ""),
    )
    streaming = SparkStreamingResource(
        spark=spark,
        kafka=kafka,
        lake=lake,
        trigger_seconds=env_float_or("IOT_STREAM_TRIGGER_SECONDS", 10.0, minimum=0.1),
        metrics_port=env_int_or("IOT_STREAM_METRICS_PORT", 9109, minimum=0),
        metrics_host=env_or("IOT_METRICS_HOST", "127.0.0.1"),
    )
    return {"kafka": kafka, "lake": lake, "spark": spark, "streaming": streaming, "s3": s3_resource()}

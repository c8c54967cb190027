"""The resources every Definitions object of this project binds, configured from the environment.

It sits above ``resources`` and ``streaming`` because it binds both (the streaming job's resource
wraps the Spark, Kafka and lake resources); the binding rules themselves are in
``iot_pipeline/resources/env.py``. Defaults are the resources' own field defaults.
"""

from __future__ import annotations

import os
from typing import Any

from iot_pipeline.resources.env import bound, env_float, env_int, env_str
from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.resources.kafka_settings import KafkaSettings
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import CONNECT_WAIT_ENV, REMOTE_ENV, SparkResource
from iot_pipeline.storage.s3 import ENDPOINT_ENV, s3_resource
from iot_pipeline.streaming.resource import SparkStreamingResource


def default_resources() -> dict[str, Any]:
    # The Kafka connection (security included) is read and checked now, so a code location whose
    # Kafka variables cannot work does not load; the clients read it again when they connect.
    KafkaSettings.from_env()
    kafka = KafkaResource(
        **bound(
            bootstrap_servers=env_str("IOT_KAFKA_BOOTSTRAP_SERVERS"),
            topic=env_str("IOT_KAFKA_TOPIC"),
            quarantine_topic=env_str("IOT_KAFKA_QUARANTINE_TOPIC"),
            partitions=env_int("IOT_KAFKA_PARTITIONS", minimum=1),
        )
    )
    lake = LakeResource(**bound(root=env_str("IOT_LAKE_ROOT")))
    spark = SparkResource(
        # An s3a:// lake needs the S3A connector; a custom endpoint (MinIO and most S3-compatible
        # stores) wants path-style addressing.
        s3=os.environ.get("IOT_LAKE_ROOT", "").startswith("s3a://"),
        s3_path_style=bool(os.environ.get(ENDPOINT_ENV)),
        **bound(
            master=env_str("IOT_SPARK_MASTER"),
            s3_endpoint=env_str(ENDPOINT_ENV),
            s3_region=env_str("AWS_REGION"),
            remote=env_str(REMOTE_ENV),
            connect_wait_seconds=env_float(CONNECT_WAIT_ENV, minimum=0),
        ),
    )
    streaming = SparkStreamingResource(
        spark=spark,
        kafka=kafka,
        lake=lake,
        **bound(
            trigger_seconds=env_float("IOT_STREAM_TRIGGER_SECONDS", minimum=0.1),
            metrics_port=env_int("IOT_STREAM_METRICS_PORT", minimum=0),
            metrics_host=env_str("IOT_METRICS_HOST"),
        ),
    )
    return {"kafka": kafka, "lake": lake, "spark": spark, "streaming": streaming, "s3": s3_resource(env_str)}

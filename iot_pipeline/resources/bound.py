"""The Kafka, lake, Spark and S3 resources bound to the environment (the rules are in ``env.py``).

The streaming job binds its own resource on top of these (``streaming.resource.bound_streaming``) and
``iot_pipeline/bindings.py`` gathers both for the code location, so code at every layer, the
command-line tools included, takes the same bindings without importing a layer above its own.
"""

from __future__ import annotations

import os
from typing import Any

from iot_pipeline.resources.env import bound, env_float, env_int, env_str
from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.resources.kafka_settings import (
    ENV_BOOTSTRAP,
    ENV_QUARANTINE_TOPIC,
    ENV_TOPIC,
    KafkaSettings,
)
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import CONNECT_WAIT_ENV, REMOTE_ENV, SparkResource
from iot_pipeline.storage.layout import ROOT_ENV
from iot_pipeline.storage.s3 import ENDPOINT_ENV, s3_resource


def bound_resources() -> dict[str, Any]:
    # The Kafka connection (security included) is read and checked now, so a code location whose
    # Kafka variables cannot work does not load; the clients read it again when they connect.
    KafkaSettings.from_env()
    kafka = KafkaResource(
        **bound(
            bootstrap_servers=env_str(ENV_BOOTSTRAP),
            topic=env_str(ENV_TOPIC),
            quarantine_topic=env_str(ENV_QUARANTINE_TOPIC),
            partitions=env_int("IOT_KAFKA_PARTITIONS", minimum=1),
        )
    )
    lake = LakeResource(**bound(root=env_str(ROOT_ENV)))
    spark = SparkResource(
        # Settings derived from a variable rather than bound to it (an EnvVar passes a value through
        # unchanged), so they are computed here, once, from the same variables: an s3a:// lake needs
        # the S3A connector; a custom endpoint (MinIO and most S3-compatible stores) wants path-style
        # addressing.
        s3=os.environ.get(ROOT_ENV, "").startswith("s3a://"),
        s3_path_style=bool(os.environ.get(ENDPOINT_ENV)),
        **bound(
            master=env_str("IOT_SPARK_MASTER"),
            s3_endpoint=env_str(ENDPOINT_ENV),
            s3_region=env_str("AWS_REGION"),
            remote=env_str(REMOTE_ENV),
            connect_wait_seconds=env_float(CONNECT_WAIT_ENV, minimum=0),
        ),
    )
    return {"kafka": kafka, "lake": lake, "spark": spark, "s3": bound_s3()}


def bound_s3() -> Any:
    """dagster-aws ``S3Resource`` bound to ``IOT_S3_ENDPOINT`` and ``AWS_REGION``: the code location's
    one S3 binding, which the sensors take too (``iot_pipeline.sensors.sensor_resources``)."""
    return s3_resource(env_str)

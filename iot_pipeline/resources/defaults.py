"""The resources every Definitions object of this project binds, configured from the environment.

A setting whose environment variable is set is bound as ``dg.EnvVar`` (the UI then shows where the
value comes from and secrets never land in run config); otherwise the local default applies, so a
fresh checkout runs with no configuration at all. Every variable is listed in ``.env.example``.
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import SparkResource


def env_or(name: str, default: Any) -> Any:
    return dg.EnvVar(name) if os.environ.get(name) else default


def env_int_or(name: str, default: int) -> Any:
    return dg.EnvVar.int(name) if os.environ.get(name) else default


def default_resources() -> dict[str, Any]:
    kafka = KafkaResource(
        bootstrap_servers=env_or("IOT_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        topic=env_or("IOT_KAFKA_TOPIC", "iot-events"),
        quarantine_topic=env_or("IOT_KAFKA_QUARANTINE_TOPIC", "iot-events-quarantine"),
    )
    lake = LakeResource(root=env_or("IOT_LAKE_ROOT", ".local/lake"))
    spark = SparkResource(master=env_or("IOT_SPARK_MASTER", "local[*]"))
    return {"kafka": kafka, "lake": lake, "spark": spark}

"""The resources every Definitions object of this project binds, configured from the environment.

It gathers the layers' own bindings: ``resources/bound.py`` (Kafka, lake, Spark, S3) and the
streaming job's resource on top of them (``streaming.resource.bound_streaming``); the binding
rules are in ``iot_pipeline/resources/env.py``. Defaults are the resources' own field defaults.
"""

from __future__ import annotations

from typing import Any

from iot_pipeline.resources.bound import bound_resources
from iot_pipeline.streaming.resource import bound_streaming


def default_resources() -> dict[str, Any]:
    resources = bound_resources()
    return {
        **resources,
        "streaming": bound_streaming(resources["spark"], resources["kafka"], resources["lake"]),
    }

"""Test configuration shared by every layer.

Fixtures that start real services live in ``iot_pipeline_tests/fixtures`` and are registered here.
"""

from __future__ import annotations

import os

# Bind every local service and the Spark driver to loopback before anything imports Spark.
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", os.environ.get("PYSPARK_PYTHON", "python3"))

pytest_plugins = [
    "iot_pipeline_tests.fixtures.spark",
    "iot_pipeline_tests.fixtures.kafka",
    "iot_pipeline_tests.fixtures.minio",
]

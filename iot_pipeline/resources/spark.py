"""The Spark session as a Dagster resource, built on dagster-pyspark's ``PySparkResource``.

It adds what every job of this project needs on top of the plain resource: the Kafka connector at
the version that matches the installed PySpark, UTC as the session time zone (partitions are UTC
hours), small shuffles for a laptop, and an explicit stop on teardown (the upstream resource never
stops its session). ``spark_config`` still passes any Spark setting through unchanged.

With ``remote`` set (``IOT_SPARK_REMOTE=sc://host:port``) the batch assets and checks run on a
session of a long-lived Spark Connect server instead of starting a driver JVM in every run: the run
pays a connection (well under a second) instead of a JVM start, and finds the server's code already
compiled. The server is started with this resource's own settings (``iot-pipeline spark-connect``,
and ``make run`` starts one); the run only sets the settings a session may change. The stream keeps
its own driver whatever ``remote`` says (``build_session``): it owns a long-running query.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any
from urllib.parse import urlparse

import dagster as dg
import pyspark
from dagster_pyspark import PySparkResource
from pyspark.sql import SparkSession

from iot_pipeline.storage.s3 import hadoop_aws_packages, s3a_spark_conf

SCALA_BINARY_VERSION = "2.13"


def kafka_connector_package(spark_version: str = pyspark.__version__) -> str:
    return f"org.apache.spark:spark-sql-kafka-0-10_{SCALA_BINARY_VERSION}:{spark_version}"


# Run tag of every run that starts Spark (its kind: stream, hourly, daily), for the UI's run filters.
SPARK_RUN_TAG = "iot-pipeline/spark"
# Concurrency pool of the Spark assets: the instance lets this many runs holding them start at once
# (granularity "run", the same in the local instance and in deploy/dagster.yaml). The stream is not in it.
SPARK_POOL = "spark"
# Start of the log line a run writes when its session is ready (benchmarks/small_runs.py reads it).
SESSION_READY = "Spark session ready"
# Where a Spark Connect server for the batch runs is (sc://host:port); unset: a driver in each run.
REMOTE_ENV = "IOT_SPARK_REMOTE"
CONNECT_WAIT_ENV = "IOT_SPARK_CONNECT_WAIT_SECONDS"
WAITING_FOR_SERVER = "Waiting for the Spark Connect server"
# The port an sc:// URL without one means (Spark Connect's own default).
CONNECT_DEFAULT_PORT = 15002


class SparkConnectError(RuntimeError):
    """The Spark Connect server named by ``IOT_SPARK_REMOTE`` cannot be used."""


class SparkResource(PySparkResource):
    """Builds (or reuses) the SparkSession the assets and the streaming job run on.

    ``s3`` adds the S3A connector (hadoop-aws at PySpark's Hadoop version) and its settings; the
    credentials come from the standard AWS environment variables, never from configuration.
    """

    spark_config: dict[str, Any] = {}
    master: str = "local[*]"
    app_name: str = "iot-pipeline"
    shuffle_partitions: int = 8
    driver_memory: str = "2g"
    extra_packages: list[str] = []
    stop_on_teardown: bool = True
    s3: bool = False
    s3_endpoint: str = ""
    s3_region: str = "us-east-1"
    s3_path_style: bool = False
    # sc://host:port of a Spark Connect server for the batch runs; empty: a driver in the run's process.
    remote: str = ""
    # How long a run waits for that server to accept connections (it may be restarting) before failing.
    connect_wait_seconds: float = 60.0

    @classmethod
    def _is_dagster_maintained(cls) -> bool:
        return False

    def session_config(self) -> dict[str, Any]:
        packages = [kafka_connector_package(), *self.extra_packages]
        if self.s3:
            packages += hadoop_aws_packages()
        conf: dict[str, Any] = {
            "spark.master": self.master,
            "spark.app.name": self.app_name,
            "spark.jars.packages": ",".join(packages),
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.shuffle.partitions": str(self.shuffle_partitions),
            "spark.driver.memory": self.driver_memory,
            "spark.sql.sources.partitionOverwriteMode": "dynamic",
            "spark.sql.adaptive.enabled": "true",
            "spark.ui.showConsoleProgress": "false",
            # HotSpot never JIT-compiles a method over 8,000 bytes of bytecode, and whole-stage code for
            # the contract's validation (one CASE WHEN of ~60 rules over ~20 columns) is larger: Spark's
            # default limit (65,535) keeps it, interpreted. At 8,000 Spark falls back to per-expression
            # code that is compiled; the stream's batch cache builds ~1.5x faster.
            "spark.sql.codegen.hugeMethodLimit": "8000",
        }
        if os.environ.get("SPARK_LOCAL_IP"):
            conf["spark.driver.host"] = os.environ["SPARK_LOCAL_IP"]
        if self.s3:
            conf.update(s3a_spark_conf(self.s3_endpoint or None, self.s3_region, self.s3_path_style))
        conf.update(self.spark_config or {})
        return conf

    def build_session(self) -> SparkSession:
        """A driver in this process (classic Spark), whatever ``remote`` says."""
        builder = SparkSession.builder
        for key, value in self.session_config().items():
            builder = builder.config(key, str(value))
        session = builder.getOrCreate()
        session.sparkContext.setLogLevel("WARN")
        return session

    def connect_session(self) -> SparkSession:
        """A new session on the Spark Connect server at ``remote``, with the settings a session may change.

        Settings fixed at server start (memory, packages, S3A) were given to the server from the same
        resource; trying to change them per session would fail, so they are skipped here.
        """
        try:
            self._wait_for_server()
            session = SparkSession.builder.remote(self.remote).create()
            for key, value in self.session_config().items():
                if session.conf.isModifiable(key):
                    session.conf.set(key, str(value))
        except Exception as exc:
            raise SparkConnectError(
                f"Cannot use the Spark Connect server at {REMOTE_ENV}={self.remote!r}: {exc}. Start one "
                f"(`iot-pipeline spark-connect start`) or unset {REMOTE_ENV} to run Spark in the run."
            ) from exc
        return session

    def _wait_for_server(self) -> None:
        """Until the server accepts a TCP connection, for ``connect_wait_seconds`` at most.

        The Spark Connect client itself retries an unreachable server for minutes; a run waits only
        as long as a server restart takes (``make run`` restarts a server that died) and then fails.
        """
        address = urlparse(self.remote)
        where = (address.hostname, address.port or CONNECT_DEFAULT_PORT)
        deadline = time.monotonic() + self.connect_wait_seconds
        warned = False
        while True:
            try:
                socket.create_connection(where, timeout=10).close()
                return
            except OSError:
                if time.monotonic() >= deadline:
                    raise
                if not warned:
                    dg.get_dagster_logger().warning(
                        f"{WAITING_FOR_SERVER} at {self.remote}: up to {self.connect_wait_seconds:.0f}s "
                        f"({CONNECT_WAIT_ENV})"
                    )
                    warned = True
                time.sleep(1)

    @property
    def spark_session(self) -> SparkSession:
        """The run's session, built on first use: resources that only pass it on (the stream's) never start one."""
        if self._spark_session is None:
            started = time.monotonic()
            self._spark_session = self.connect_session() if self.remote else self.build_session()
            where = f"on the Spark Connect server {self.remote}" if self.remote else f"driver {self.master}"
            dg.get_dagster_logger().info(f"{SESSION_READY} in {time.monotonic() - started:.2f}s ({where})")
        return self._spark_session

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._spark_session = None

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self.stop_on_teardown and self._spark_session is not None:
            self._spark_session.stop()
            self._spark_session = None

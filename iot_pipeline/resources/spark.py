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

import contextlib
import hashlib
import os
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import dagster as dg
import pyspark
from dagster_pyspark import PySparkResource
from pyspark.sql import SparkSession

from iot_pipeline.resources.class_data import driver_options
from iot_pipeline.storage.s3 import DEFAULT_REGION, hadoop_aws_packages, s3a_spark_conf

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
# Hadoop's local FileSystem without checksum side files, for sessions whose lake is local.
RAW_LOCAL_FILESYSTEM = "org.apache.hadoop.fs.RawLocalFileSystem"
# The port an sc:// URL without one means (Spark Connect's own default).
CONNECT_DEFAULT_PORT = 15002
# Spark's Ivy directory when ``spark.jars.ivy`` is not set, under the home directory.
DEFAULT_IVY_DIR = ".ivy2.5.2"


def _classpath_record(packages: list[str], spark_config: dict[str, Any]) -> Path:
    """Where the jars Ivy resolved for ``packages`` are listed: in Ivy's own directory, beside them."""
    ivy = Path(spark_config.get("spark.jars.ivy") or Path.home() / DEFAULT_IVY_DIR)
    digest = hashlib.sha256(",".join(packages).encode()).hexdigest()[:16]
    return ivy / f"iot-pipeline-classpath-{digest}.txt"


def connector_jars(packages: list[str], master: str, spark_config: dict[str, Any]) -> dict[str, str]:
    """The settings that give a session its connectors.

    Spark resolves ``spark.jars.packages`` with Ivy at every session start, and for a Python driver it
    also copies every resolved jar into the session's scratch directory (hundreds of megabytes with the
    S3A bundle), left behind whenever the JVM is killed. A local-mode driver (its executors are its
    own JVM) puts the jars an earlier session of this machine resolved on its class path instead: no
    resolution and no copy, so a session starts sooner (measured in docs/performance.md). Other
    masters, and the first session of a machine, resolve as before. An empty ``spark.jars.packages``
    also overrides a ``spark-defaults.conf`` that names them.
    """
    record = _classpath_record(packages, spark_config)
    if master.startswith("local"):
        with contextlib.suppress(OSError):
            jars = record.read_text().split()
            if jars and all(os.path.isfile(j) for j in jars):
                return {"spark.jars.packages": "", "spark.driver.extraClassPath": os.pathsep.join(jars)}
    return {"spark.jars.packages": ",".join(packages)}


def remember_connector_jars(
    packages: list[str], master: str, spark_config: dict[str, Any], session: SparkSession
) -> None:
    """After a local session that resolved ``packages``, list the jars Ivy gave it for the next ones."""
    resolved = session.sparkContext.getConf().get("spark.jars", "")
    jars = [urlparse(j).path if j.startswith("file:") else j for j in resolved.split(",") if j]
    if not master.startswith("local") or not jars or not all(os.path.isfile(j) for j in jars):
        return
    # Ahead of Spark's own jars on the class path, a dependency Spark ships too (the same slf4j, lz4,
    # snappy) could shadow it; as packages, Spark's copy won. Ivy names a jar group_artifact-version.
    bundled = {p.name for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    jars = [j for j in jars if os.path.basename(j).partition("_")[2] not in bundled]
    record = _classpath_record(packages, spark_config)
    with contextlib.suppress(OSError):  # a read-only Ivy directory: sessions keep resolving
        partial = record.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text("\n".join(jars) + "\n")
        partial.replace(record)


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
    s3_region: str = DEFAULT_REGION
    s3_path_style: bool = False
    # sc://host:port of a Spark Connect server for the batch runs; empty: a driver in the run's process.
    remote: str = ""
    # How long a run waits for that server to accept connections (it may be restarting) before failing.
    connect_wait_seconds: float = 60.0

    @classmethod
    def _is_dagster_maintained(cls) -> bool:
        return False

    def packages(self) -> list[str]:
        """The connectors' Maven coordinates: Kafka always, S3A with ``s3``, and ``extra_packages``."""
        return [kafka_connector_package(), *self.extra_packages, *(hadoop_aws_packages() if self.s3 else [])]

    def uses_object_store(self) -> bool:
        """Whether the session may write to an object store through a Hadoop connector.

        Those buffer uploads on local disk via ``FileSystem.getLocal``, which casts to the checksummed
        local FileSystem: such a session keeps it. A connector counts among the session's packages
        (``s3`` adds hadoop-aws there) or by its settings given by hand.
        """
        connectors = ("hadoop-aws", "hadoop-azure", "gcs-connector")
        settings = ("spark.hadoop.fs.s3a.", "spark.hadoop.fs.azure", "spark.hadoop.fs.gs.")
        return any(c in package for package in self.packages() for c in connectors) or any(
            key.startswith(settings) for key in self.spark_config or {}
        )

    def session_config(self) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "spark.master": self.master,
            "spark.app.name": self.app_name,
            **connector_jars(self.packages(), self.master, self.spark_config or {}),
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.shuffle.partitions": str(self.shuffle_partitions),
            "spark.driver.memory": self.driver_memory,
            "spark.sql.sources.partitionOverwriteMode": "dynamic",
            "spark.sql.adaptive.enabled": "true",
            "spark.ui.showConsoleProgress": "false",
            # HotSpot never JIT-compiles a method over 8,000 bytes of bytecode, and whole-stage code for
            # the contract's validation (one CASE WHEN of ~60 rules over ~20 columns) is larger: Spark's
            # default limit (65,535) keeps it, interpreted. At 8,000 Spark falls back to per-expression
            # code that is compiled, so the stream's batch cache builds faster (docs/streaming.md).
            "spark.sql.codegen.hugeMethodLimit": "8000",
        }
        if os.environ.get("SPARK_LOCAL_IP"):
            conf["spark.driver.host"] = os.environ["SPARK_LOCAL_IP"]
        if self.s3:
            conf.update(s3a_spark_conf(self.s3_endpoint or None, self.s3_region, self.s3_path_style))
        if not self.uses_object_store():
            # A local lake without Hadoop's .crc side files: the checksummed FileSystem opens a second
            # file for every one it reads and checks every 512 bytes, a sixth of the daily p95's time
            # over 720 hourly files (docs/decisions.md).
            conf["spark.hadoop.fs.file.impl"] = RAW_LOCAL_FILESYSTEM
        conf.update(self.spark_config or {})
        # The driver maps this environment's class-data archive (resources/class_data.py); setting any
        # -Xshare or archive option in spark.driver.extraJavaOptions leaves that choice to the user.
        java_options = driver_options(
            conf.get("spark.driver.extraClassPath", ""), conf.get("spark.driver.extraJavaOptions", "")
        )
        if java_options:
            conf["spark.driver.extraJavaOptions"] = java_options
        return conf

    def build_session(self) -> SparkSession:
        """A driver in this process (classic Spark), whatever ``remote`` says."""
        builder = SparkSession.builder
        for key, value in self.session_config().items():
            builder = builder.config(key, str(value))
        session = builder.getOrCreate()
        session.sparkContext.setLogLevel("WARN")
        remember_connector_jars(self.packages(), self.master, self.spark_config or {}, session)
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

"""deploy/spark/spark-defaults.conf: consistent with the project's code and read by a real Spark."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from iot_pipeline.resources.spark import kafka_connector_package
from iot_pipeline.storage.s3 import bundled_hadoop_version, hadoop_aws_packages, s3a_spark_conf
from iot_pipeline_tests.ops.support import DEPLOY, REPO

SPARK_CONF_DIR = DEPLOY / "spark"


def spark_defaults() -> dict[str, str]:
    """Spark's properties-file format as spark-submit reads it: key, whitespace, value."""
    conf = {}
    for line in (SPARK_CONF_DIR / "spark-defaults.conf").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            assert key not in conf, f"{key} is set twice"
            conf[key] = value.strip()
    return conf


def test_connector_packages_are_the_ones_the_project_resolves() -> None:
    packages = spark_defaults()["spark.jars.packages"].split(",")
    assert packages == [kafka_connector_package(), *hadoop_aws_packages()]
    assert packages[0].endswith(":4.2.0")
    assert packages[1] == f"org.apache.hadoop:hadoop-aws:{bundled_hadoop_version()}"


def test_s3a_settings_match_the_projects_s3a_conf() -> None:
    """The file carries the same S3A settings the code builds for MinIO (path style), endpoint from env."""
    conf = spark_defaults()
    expected = s3a_spark_conf(endpoint="http://minio:9000", path_style=True)
    for key, value in expected.items():
        if key == "spark.hadoop.fs.s3a.endpoint":
            assert conf[key] == "${env.IOT_S3_ENDPOINT:-}"
        elif key == "spark.hadoop.fs.s3a.endpoint.region":
            assert conf[key] == "${env.AWS_REGION:-us-east-1}"
        elif key == "spark.hadoop.fs.s3a.connection.ssl.enabled":
            continue  # follows the endpoint's scheme
        else:
            assert conf.get(key) == value, f"{key}: {conf.get(key)!r} != {value!r}"
    written = [k for k in conf if k.startswith("spark.hadoop.fs.s3a.") and k.endswith((".key", ".token"))]
    assert not written, f"credentials belong in the environment, not in {written}"


def test_cluster_settings_are_present() -> None:
    conf = spark_defaults()
    for key in (
        "spark.master",
        "spark.executor.instances",
        "spark.executor.cores",
        "spark.executor.memory",
        "spark.cores.max",
        "spark.kubernetes.container.image",
        "spark.jars.ivy",
    ):
        assert key in conf, key
    assert conf["spark.sql.session.timeZone"] == "UTC"


_PROBE = """
import json, sys
from pyspark.sql import SparkSession
spark = (SparkSession.builder.master("local[1]")
         .config("spark.jars.packages", "").config("spark.jars.ivy", sys.argv[1])
         .config("spark.driver.port", "0").config("spark.blockManager.port", "0")
         .config("spark.ui.enabled", "false").getOrCreate())
hadoop = spark._jsparkSession.sessionState().newHadoopConf()
keys = ["fs.s3a.endpoint", "fs.s3a.endpoint.region", "fs.s3a.path.style.access", "fs.s3a.aws.credentials.provider"]
print("PROBE" + json.dumps({k: hadoop.get(k) for k in keys} | {"tz": spark.conf.get("spark.sql.session.timeZone")}))
spark.stop()
"""


def _probe(tmp_path: Path, **env: str) -> dict[str, str]:
    clean = {
        k: v for k, v in os.environ.items() if k not in ("IOT_S3_ENDPOINT", "AWS_REGION", "SPARK_CONF_DIR")
    }
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path / "ivy")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**clean, "SPARK_CONF_DIR": str(SPARK_CONF_DIR), "SPARK_LOCAL_IP": "127.0.0.1", **env},
        timeout=300,
    )
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("PROBE")), None)
    assert line, f"Spark probe failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return json.loads(line.removeprefix("PROBE"))


@pytest.mark.spark
def test_real_spark_reads_the_file_and_expands_the_environment(tmp_path: Path) -> None:
    on_minio = _probe(tmp_path, IOT_S3_ENDPOINT="http://127.0.0.1:9000", AWS_REGION="eu-west-1")
    assert on_minio["fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert on_minio["fs.s3a.endpoint.region"] == "eu-west-1"
    assert on_minio["fs.s3a.path.style.access"] == "true"
    assert on_minio["fs.s3a.aws.credentials.provider"].startswith("software.amazon.awssdk.auth.credentials.")
    assert on_minio["tz"] == "UTC"


def test_prefetch_script_caches_what_the_project_resolves() -> None:
    # A standalone script of the image build, loaded from its file (it is not a package module).
    spec = importlib.util.spec_from_file_location("prefetch_spark_jars", DEPLOY / "prefetch_spark_jars.py")
    prefetch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prefetch)
    assert prefetch.project_packages() == spark_defaults()["spark.jars.packages"].split(",")
    assert prefetch.ivy_jar_name(kafka_connector_package()) == (
        "org.apache.spark_spark-sql-kafka-0-10_2.13-4.2.0.jar"
    )

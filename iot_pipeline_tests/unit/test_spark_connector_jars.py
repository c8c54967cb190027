"""A local driver puts the connector jars an earlier session resolved on its class path (no Ivy, no copy)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from iot_pipeline.resources.spark import SparkResource, connector_jars, remember_connector_jars

PACKAGES = ["org.example:connector:1.0"]


class _Session(SimpleNamespace):
    """What remember_connector_jars reads of a session: the jars Spark resolved (``spark.jars``)."""

    def __init__(self, jars: str) -> None:
        conf = SimpleNamespace(get=lambda key, default="": jars if key == "spark.jars" else default)
        super().__init__(sparkContext=SimpleNamespace(getConf=lambda: conf))


@pytest.fixture
def ivy(tmp_path: Path) -> dict[str, str]:
    return {"spark.jars.ivy": str(tmp_path)}


def _jar(ivy: dict[str, str], name: str) -> Path:
    path = Path(ivy["spark.jars.ivy"]) / "jars" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"PK")
    return path


def test_the_first_session_resolves_the_packages(ivy: dict[str, str]) -> None:
    assert connector_jars(PACKAGES, "local[*]", ivy) == {"spark.jars.packages": PACKAGES[0]}


def test_later_local_sessions_take_the_jars_the_first_resolved(ivy: dict[str, str]) -> None:
    own = _jar(ivy, "org.example_connector-1.0.jar")
    shipped_by_spark = _jar(ivy, "org.slf4j_slf4j-api-2.0.17.jar")  # pyspark/jars has slf4j-api-2.0.17.jar
    remember_connector_jars(PACKAGES, "local[2]", ivy, _Session(f"file://{own},file://{shipped_by_spark}"))

    conf = connector_jars(PACKAGES, "local[*]", ivy)
    assert conf == {"spark.jars.packages": "", "spark.driver.extraClassPath": str(own)}
    # Other coordinates have their own record; other masters ship jars to executors: both resolve.
    assert connector_jars([*PACKAGES, "org.example:other:2.0"], "local[*]", ivy)["spark.jars.packages"]
    assert connector_jars(PACKAGES, "spark://master:7077", ivy) == {"spark.jars.packages": PACKAGES[0]}


def test_a_record_naming_a_removed_jar_is_not_used(ivy: dict[str, str]) -> None:
    own = _jar(ivy, "org.example_connector-1.0.jar")
    remember_connector_jars(PACKAGES, "local[*]", ivy, _Session(str(own)))
    own.unlink()
    assert connector_jars(PACKAGES, "local[*]", ivy) == {"spark.jars.packages": PACKAGES[0]}


def test_nothing_is_recorded_from_a_session_that_resolved_nothing(ivy: dict[str, str]) -> None:
    remember_connector_jars(PACKAGES, "local[*]", ivy, _Session(""))
    assert not list(Path(ivy["spark.jars.ivy"]).glob("*"))


def test_the_resource_asks_for_its_connectors(ivy: dict[str, str]) -> None:
    conf = SparkResource(s3=True, spark_config=ivy).session_config()
    kafka, aws, sdk = conf["spark.jars.packages"].split(",")
    assert "spark-sql-kafka" in kafka and "hadoop-aws" in aws and "awssdk:bundle" in sdk

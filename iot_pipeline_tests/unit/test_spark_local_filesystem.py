"""The local FileSystem a session gets: the raw one for a local lake, Hadoop's checksummed one beside S3A."""

from __future__ import annotations

from pathlib import Path

from iot_pipeline.resources.spark import RAW_LOCAL_FILESYSTEM, SparkResource

KEY = "spark.hadoop.fs.file.impl"


def test_a_local_lake_is_read_and_written_without_checksum_files(tmp_path: Path) -> None:
    conf = SparkResource(spark_config={"spark.jars.ivy": str(tmp_path)}).session_config()
    assert conf[KEY] == RAW_LOCAL_FILESYSTEM


def test_an_s3_lake_keeps_the_filesystem_s3a_buffers_uploads_on(tmp_path: Path) -> None:
    # S3A's disk buffers go through FileSystem.getLocal, which casts to the checksummed class: with
    # the raw one every upload failed (ClassCastException).
    conf = SparkResource(s3=True, spark_config={"spark.jars.ivy": str(tmp_path)}).session_config()
    assert KEY not in conf


def test_s3a_configured_by_hand_keeps_it_too(tmp_path: Path) -> None:
    ivy = {"spark.jars.ivy": str(tmp_path)}
    by_settings = SparkResource(spark_config={**ivy, "spark.hadoop.fs.s3a.endpoint": "http://minio:9000"})
    by_package = SparkResource(spark_config=ivy, extra_packages=["org.apache.hadoop:hadoop-aws:3.5.0"])
    assert KEY not in by_settings.session_config()
    assert KEY not in by_package.session_config()


def test_a_users_setting_wins(tmp_path: Path) -> None:
    checksummed = "org.apache.hadoop.fs.LocalFileSystem"
    conf = SparkResource(spark_config={"spark.jars.ivy": str(tmp_path), KEY: checksummed}).session_config()
    assert conf[KEY] == checksummed

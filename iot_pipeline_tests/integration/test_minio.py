"""The lake on a real S3-compatible server: MinIO lifecycle, boto3, Spark over S3A, pyarrow, clear errors.

The Spark test runs in a subprocess (this file executed as a script): S3A packages and settings must be
given when a SparkSession starts, and ``getOrCreate`` would otherwise hand back the shared ``spark``
fixture's session (or leave ours behind for other tests), depending on test order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from iot_pipeline.services import minio_cli
from iot_pipeline.services.minio import MinioError, MinioServer
from iot_pipeline.services.processes import free_port
from iot_pipeline.storage.s3 import (
    AWS_SDK_V2_BY_HADOOP,
    S3ConfigError,
    aws_sdk_version_from_pom,
    bundled_hadoop_version,
    check_bucket,
    hadoop_aws_packages,
    pyarrow_filesystem,
    s3a_spark_conf,
)

pytestmark = pytest.mark.s3

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_server_answers_health_and_stops_cleanly(tmp_path: Path, minio_server) -> None:
    with urllib.request.urlopen(f"{minio_server.endpoint}/minio/health/live", timeout=5) as resp:
        assert resp.status == 200

    # The CLI lifecycle on a second server: start (detached), status, port clash, stop.
    port = free_port()
    args = ["--home", str(tmp_path / "m"), "--port", str(port), "--console-port", "0"]
    assert minio_cli.main(["start", *args, "--user", "cliuser", "--password", "cli-password-1"]) == 0
    server = MinioServer(tmp_path / "m", port, None)
    pid = server.pid()
    assert pid is not None and server.healthy()
    assert minio_cli.main(["status", *args]) == 0
    with pytest.raises(MinioError, match=f"Port 127.0.0.1:{port} is taken"):
        MinioServer(tmp_path / "other", port, None).start("cliuser", "cli-password-1")
    assert minio_cli.main(["stop", *args]) == 0
    assert not Path(f"/proc/{pid}").exists() or b"minio" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert not server.healthy() and not server.pid_file.exists()
    assert minio_cli.main(["status", *args]) == 1


def test_start_needs_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(MinioError, match="MINIO_ROOT_USER"):
        MinioServer(tmp_path, free_port(), None).start()


def test_boto3_put_get(minio_server, s3_bucket: str) -> None:
    client = minio_server.client()
    client.put_object(Bucket=s3_bucket, Key="a/b.txt", Body=b"hello lake")
    assert client.get_object(Bucket=s3_bucket, Key="a/b.txt")["Body"].read() == b"hello lake"
    listed = client.list_objects_v2(Bucket=s3_bucket, Prefix="a/", Delimiter="/")
    assert [o["Key"] for o in listed["Contents"]] == ["a/b.txt"]


def test_hadoop_aws_matches_pyspark_and_pom() -> None:
    hadoop = bundled_hadoop_version()
    aws, sdk = hadoop_aws_packages()
    assert aws == f"org.apache.hadoop:hadoop-aws:{hadoop}"
    # The hard-coded pin must equal what hadoop-aws's parent POM declares (prefetched in setup).
    assert sdk == f"software.amazon.awssdk:bundle:{aws_sdk_version_from_pom(hadoop)}"
    assert AWS_SDK_V2_BY_HADOOP[hadoop] == aws_sdk_version_from_pom(hadoop)


def test_s3a_conf_for_minio_and_aws() -> None:
    minio = s3a_spark_conf("http://127.0.0.1:9000", "us-east-1", path_style=True)
    assert minio["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert minio["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert minio["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    aws = s3a_spark_conf(None, "eu-west-1")
    assert "spark.hadoop.fs.s3a.endpoint" not in aws
    assert aws["spark.hadoop.fs.s3a.endpoint.region"] == "eu-west-1"
    assert not any("secret" in k or "access.key" in k for k in {**minio, **aws})
    with pytest.raises(S3ConfigError, match="IOT_S3_ENDPOINT"):
        s3a_spark_conf("127.0.0.1:9000")


def test_check_bucket_names_the_setting(s3_env, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = s3_env.endpoint
    check_bucket(f"s3a://{s3_bucket}/lake", endpoint, path_style=True)  # passes with the right settings

    with pytest.raises(S3ConfigError, match=r"does not exist .*IOT_LAKE_ROOT"):
        check_bucket("s3a://no-such-bucket-here/lake", endpoint, path_style=True)
    with pytest.raises(S3ConfigError, match="IOT_S3_ENDPOINT"):
        check_bucket(f"s3a://{s3_bucket}/lake", f"http://127.0.0.1:{free_port()}", path_style=True)

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value")
    with pytest.raises(S3ConfigError, match="AWS_SECRET_ACCESS_KEY"):
        check_bucket(f"s3a://{s3_bucket}/lake", endpoint, path_style=True)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "nobody")
    with pytest.raises(S3ConfigError, match="AWS_ACCESS_KEY_ID"):
        check_bucket(f"s3a://{s3_bucket}/lake", endpoint, path_style=True)


@pytest.mark.spark
def test_spark_s3a_parquet_roundtrip_readable_by_pyarrow(s3_env, s3_bucket: str, tmp_path: Path) -> None:
    minio_server = s3_env
    root = f"s3a://{s3_bucket}/lake"
    env = {**os.environ, **minio_server.env(), "PYTHONPATH": str(REPO_ROOT), "SPARK_LOCAL_IP": "127.0.0.1"}
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, __file__, root, str(out)],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    result = json.loads(out.read_text())
    assert result["read_back"] == 6
    assert result["partitions"] == [["2026-01-01", 0], ["2026-01-01", 1], ["2026-01-02", 23]]
    assert result["streamed"] == 6
    print("spark seconds:", result["seconds"])

    # The same objects, straight from the server with pyarrow (no Spark): plain Hive-partitioned Parquet.
    import pyarrow.dataset as ds

    fs = pyarrow_filesystem(minio_server.endpoint)
    table = ds.dataset(
        f"{s3_bucket}/lake/events", filesystem=fs, format="parquet", partitioning="hive"
    ).to_table()
    assert table.num_rows == 6
    assert sorted(table.column("device_id").to_pylist()) == ["d1", "d2", "d3", "d4", "d5", "d6"]
    keys = [
        o["Key"] for o in minio_server.client().list_objects_v2(Bucket=s3_bucket, Prefix="lake/")["Contents"]
    ]
    assert any(
        k.startswith("lake/events/event_date=2026-01-02/event_hour=23/") and k.endswith(".parquet")
        for k in keys
    )
    assert any(k.startswith("lake/_state/checkpoints/copy/") for k in keys)


def _spark_roundtrip(root: str, out: str) -> None:
    """Runs in a fresh interpreter: one SparkSession with S3A, write, read back, stream with an S3 checkpoint."""
    import time

    from pyspark.sql import functions as F

    from iot_pipeline.resources.spark import SparkResource

    resource = SparkResource(
        master="local[2]",
        shuffle_partitions=2,
        driver_memory="1g",
        extra_packages=hadoop_aws_packages(),
        spark_config={
            **s3a_spark_conf(os.environ["IOT_S3_ENDPOINT"], os.environ["AWS_REGION"], path_style=True),
            "spark.pyspark.python": sys.executable,
            "spark.ui.enabled": "false",
        },
    )
    started = time.monotonic()
    seconds: dict[str, float] = {}
    spark = resource.build_session()
    seconds["session"] = time.monotonic() - started
    try:
        rows = [
            ("d1", "2026-01-01", 0, 1.0),
            ("d2", "2026-01-01", 0, 2.0),
            ("d3", "2026-01-01", 1, 3.0),
            ("d4", "2026-01-01", 1, 4.0),
            ("d5", "2026-01-02", 23, 5.0),
            ("d6", "2026-01-02", 23, 6.0),
        ]
        df = spark.createDataFrame(rows, "device_id string, event_date string, event_hour int, value double")
        df.write.mode("overwrite").partitionBy("event_date", "event_hour").parquet(f"{root}/events")
        seconds["write"] = time.monotonic() - started - sum(seconds.values())
        back = spark.read.parquet(f"{root}/events")
        read_back = back.count()
        parts = [
            [str(r.event_date), r.event_hour]
            for r in back.select("event_date", "event_hour").distinct().collect()
        ]

        # A streaming copy with its checkpoint on S3 (what the bronze job does), run to completion.
        query = (
            spark.readStream.schema(back.schema)
            .parquet(f"{root}/events")
            .withColumn("copied", F.lit(True))
            .writeStream.format("parquet")
            .option("path", f"{root}/copy")
            .option("checkpointLocation", f"{root}/_state/checkpoints/copy")
            .trigger(availableNow=True)
            .start()
        )
        if not query.awaitTermination(300):
            raise RuntimeError("the availableNow streaming copy did not finish within 300 s")
        streamed = spark.read.parquet(f"{root}/copy").count()
        seconds["read_and_stream"] = time.monotonic() - started - sum(seconds.values())
        Path(out).write_text(
            json.dumps(
                {
                    "read_back": read_back,
                    "partitions": sorted(parts),
                    "streamed": streamed,
                    "seconds": seconds,
                }
            )
        )
    finally:
        spark.stop()


if __name__ == "__main__":
    _spark_roundtrip(sys.argv[1], sys.argv[2])

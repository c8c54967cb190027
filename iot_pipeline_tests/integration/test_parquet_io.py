"""The lake's file helpers on a local directory and on a real S3 server (MinIO) behave alike.

They are what every asset lists, deletes and reads state with, without a Spark JVM (so the same code
runs on a Spark Connect session). Bookkeeping files (``_*``, ``.*``, anything in ``_spark_metadata/``)
are never data.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from iot_pipeline.storage import parquet_io as pio
from iot_pipeline.storage.datasets import DailyDataset, HourlyDataset
from iot_pipeline.storage.s3 import s3_resource
from iot_pipeline_tests.fixtures.minio import MinioEndpoint

TREE = {
    "event_date=2026-03-01/event_hour=0/part-0.parquet": 11,
    "event_date=2026-03-01/event_hour=0/.part-0.parquet.crc": 3,
    "event_date=2026-03-01/event_hour=1/part-1.parquet": 22,
    "event_date=2026-03-01/_SUCCESS": 0,
    "event_date=2026-03-02/event_hour=23/nested/part-2.parquet": 33,
    "_spark_metadata/0": 5,
    ".staging/event_hour=3/part-3.parquet": 7,
}
DATA = [
    ("event_date=2026-03-01/event_hour=0/part-0.parquet", 11),
    ("event_date=2026-03-01/event_hour=1/part-1.parquet", 22),
    ("event_date=2026-03-02/event_hour=23/nested/part-2.parquet", 33),
]


def _exercise(root: str, spelled: str, put: Callable[[str, int], None]) -> None:
    for rel, size in TREE.items():
        put(rel, size)

    assert pio.data_files(root) == [(f"{spelled}/{rel}", size) for rel, size in DATA]
    assert pio.file_stats(root) == pio.FileStats(3, 66)
    assert pio.data_files(f"{root}/missing") == [] and pio.file_stats(f"{root}/missing") == pio.EMPTY

    # State files: absent, written, replaced; never listed as data.
    state = f"{root}/_state/commit.json"
    assert pio.read_text(state) is None
    pio.write_text(state, '{"batch": 1}')
    pio.write_text(state, '{"batch": 2}')
    assert pio.read_text(state) == '{"batch": 2}'
    assert pio.file_stats(root) == pio.FileStats(3, 66)

    # Deleting partitions: a directory with everything in it, a missing one is reported as such.
    gone = pio.delete_partitions([f"{root}/event_date=2026-03-01", f"{root}/event_date=2026-04-01"])
    assert gone == [f"{root}/event_date=2026-03-01"]
    assert pio.data_files(root) == [(f"{spelled}/{DATA[2][0]}", 33)]
    assert pio.delete(state) and not pio.delete(state)


def test_local_lake(tmp_path: Path) -> None:
    def put(rel: str, size: int) -> None:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)

    _exercise(str(tmp_path), f"file:{tmp_path}", put)
    # A file: URI lists the same files, spelled the same way.
    assert pio.data_files(f"file://{tmp_path}") == pio.data_files(str(tmp_path))


@pytest.mark.s3
def test_s3_lake(s3_env: MinioEndpoint, s3_bucket: str) -> None:
    client = s3_env.client()

    def put(rel: str, size: int) -> None:
        client.put_object(Bucket=s3_bucket, Key=f"lake/{rel}", Body=b"x" * size)

    _exercise(f"s3a://{s3_bucket}/lake", f"s3a://{s3_bucket}/lake", put)

    # An hourly dataset's files by hour, one of them read with pyarrow, and a file of the earlier
    # one-file-per-day layout deleted.
    parquet = io.BytesIO()
    pq.write_table(pa.table({"rows": [1, 2, 3]}), parquet)
    day = "index/event_date=2026-03-01"
    for rel in (f"{day}/event_hour=4/part-0.parquet", f"{day}/part-old.parquet"):
        client.put_object(Bucket=s3_bucket, Key=f"lake/{rel}", Body=parquet.getvalue())
    index = HourlyDataset(f"s3a://{s3_bucket}/lake/index")
    ((hour, path),) = index.hour_files("2026-03-01")
    assert (hour, path) == (4, f"s3a://{s3_bucket}/lake/{day}/event_hour=4/part-0.parquet")
    assert pio.read_table(path, ["rows"]).column("rows").to_pylist() == [1, 2, 3]
    hours = [datetime(2026, 3, 1, 4, tzinfo=timezone.utc)]
    assert index.delete_day_level_files(hours) == [f"s3a://{s3_bucket}/lake/{day}/part-old.parquet"]
    assert [p for p, _ in pio.data_files(index.root)] == [path]

    # A text export: one object with its content type, through dagster-aws's S3Resource or pyarrow.
    for name, s3 in (("via-resource.csv", s3_resource()), ("via-pyarrow.csv", None)):
        pio.write_text(f"s3a://{s3_bucket}/lake/exports/{name}", "a,b\n1,2\n", s3=s3, content_type="text/csv")
        obj = client.get_object(Bucket=s3_bucket, Key=f"lake/exports/{name}")
        assert obj["Body"].read() == b"a,b\n1,2\n" and obj["ContentType"] == "text/csv"


def test_a_run_replaces_exactly_its_partitions(tmp_path: Path) -> None:
    """What every writer does: rows for some of the run's hours, the others emptied, the rest untouched."""
    hours = [datetime(2026, 3, 1, h, tzinfo=timezone.utc) for h in (22, 23)]
    outside = datetime(2026, 3, 2, 0, tzinfo=timezone.utc)
    dataset = HourlyDataset(str(tmp_path / "silver"))
    for hour in [*hours, outside]:
        path = Path(dataset.dir(hour)) / "part-0.parquet"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"old")
    assert dataset.dir(hours[0]) == f"{tmp_path}/silver/event_date=2026-03-01/event_hour=22"

    emptied = dataset.delete_emptied(hours, produced={("2026-03-01", 23)})

    assert emptied == [dataset.dir(hours[0])]
    assert [dataset.stats(h).files for h in [*hours, outside]] == [0, 1, 1]
    quarantine = DailyDataset(str(tmp_path / "quarantine"), column="kafka_date")
    assert quarantine.dir("2026-03-01") == f"{tmp_path}/quarantine/kafka_date=2026-03-01"
    assert quarantine.columns == ("kafka_date",) and dataset.columns == ("event_date", "event_hour")

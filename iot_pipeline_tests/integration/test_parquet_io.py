"""Listing a lake's data files: the local walk and Hadoop's listing must agree file for file."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession

from iot_pipeline.storage import parquet_io as pio

TREE = {
    "event_date=2026-03-01/event_hour=0/part-0.parquet": 11,
    "event_date=2026-03-01/event_hour=0/.part-0.parquet.crc": 3,
    "event_date=2026-03-01/event_hour=1/part-1.parquet": 22,
    "event_date=2026-03-01/_SUCCESS": 0,
    "event_date=2026-03-02/event_hour=23/nested/part-2.parquet": 33,
    "_spark_metadata/0": 5,
    ".staging/event_hour=3/part-3.parquet": 7,
}


def test_local_walk_lists_what_hadoop_lists_without_the_bookkeeping(
    spark: SparkSession, tmp_path: Path
) -> None:
    for rel, size in TREE.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)

    local = sorted(pio.data_files(spark, str(tmp_path)))
    hadoop = sorted(pio._hadoop_data_files(spark, str(tmp_path)))

    assert local == hadoop
    assert local == sorted(
        (f"file:{tmp_path / rel}", size)
        for rel, size in TREE.items()
        if rel.split("/")[0][0] not in "_." and not Path(rel).name.startswith((".", "_"))
    )
    assert [size for _, size in local] == [11, 22, 33]
    assert pio.data_files(spark, f"file://{tmp_path}") == pio.data_files(spark, str(tmp_path))
    assert pio.data_files(spark, str(tmp_path / "missing")) == []

"""File-system helpers for the batch assets, through Hadoop's FileSystem API.

Everything goes through the JVM of the Spark session (``spark._jvm``) rather than ``os``/``pathlib``,
so the same call works for a local lake, ``file://`` and ``s3a://`` (the connector Spark already
uses). Files whose name starts with ``_`` or ``.`` (``_SUCCESS``, ``_spark_metadata``, ``.crc``)
are Spark/Hadoop bookkeeping, never data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession


@dataclass(frozen=True)
class FileStats:
    files: int
    bytes: int

    def __add__(self, other: FileStats) -> FileStats:
        return FileStats(self.files + other.files, self.bytes + other.bytes)


EMPTY = FileStats(0, 0)


def _path_and_fs(spark: SparkSession, uri: str) -> tuple[Any, Any]:
    jvm = spark._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path, path.getFileSystem(spark._jsc.hadoopConfiguration())


def _is_data(name: str) -> bool:
    return not (name.startswith("_") or name.startswith("."))


def exists(spark: SparkSession, uri: str) -> bool:
    path, fs = _path_and_fs(spark, uri)
    return bool(fs.exists(path))


def data_files(spark: SparkSession, uri: str) -> list[tuple[str, int]]:
    """(path, size) of every data file below ``uri`` (recursive); empty when it does not exist."""
    path, fs = _path_and_fs(spark, uri)
    if not fs.exists(path):
        return []
    out: list[tuple[str, int]] = []
    it = fs.listFiles(path, True)
    while it.hasNext():
        status = it.next()
        p = status.getPath()
        # Skip bookkeeping files and anything inside a bookkeeping directory (e.g. _spark_metadata/).
        rel = p.toString()[len(path.toString()) :]
        if all(_is_data(part) for part in rel.split("/") if part):
            out.append((p.toString(), int(status.getLen())))
    return out


def file_stats(spark: SparkSession, uri: str) -> FileStats:
    files = data_files(spark, uri)
    return FileStats(len(files), sum(size for _, size in files))


def file_stats_many(spark: SparkSession, uris: Iterable[str]) -> dict[str, FileStats]:
    return {uri: file_stats(spark, uri) for uri in uris}


def delete(spark: SparkSession, uri: str) -> bool:
    """Recursively delete ``uri``; True if something was deleted."""
    path, fs = _path_and_fs(spark, uri)
    return bool(fs.exists(path) and fs.delete(path, True))


def overwrite_partitions(df: DataFrame, dataset: str, partition_columns: list[str]) -> None:
    """Replace the partitions of ``dataset`` that ``df`` has rows for; leave every other one alone.

    Dynamic partition overwrite (set per write, whatever the session default): a partition of the
    run that ends up with no rows keeps its old files, so callers delete those with
    :func:`delete_partitions` once they know which partitions the write produced.
    """
    (
        df.write.mode("overwrite")
        .option("partitionOverwriteMode", "dynamic")
        .partitionBy(*partition_columns)
        .parquet(dataset)
    )


def delete_partitions(spark: SparkSession, partition_dirs: Iterable[str]) -> list[str]:
    """Delete the given partition directories; returns those that existed."""
    return [d for d in partition_dirs if delete(spark, d)]

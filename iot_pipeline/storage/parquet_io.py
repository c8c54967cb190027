"""File-system helpers for the batch assets, through Hadoop's FileSystem API.

Everything goes through the JVM of the Spark session (``spark._jvm``) rather than ``os``/``pathlib``,
so the same call works for a local lake, ``file://`` and ``s3a://`` (the connector Spark already
uses); the one exception is listing a local lake (``data_files``). Files whose name starts with ``_``
or ``.`` (``_SUCCESS``, ``_spark_metadata``, ``.crc``) are Spark/Hadoop bookkeeping, never data.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from iot_pipeline.storage.layout import is_local, local_path


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
    """(path, size) of every data file below ``uri`` (recursive); empty when it does not exist.

    A local lake is walked in Python: Hadoop's recursive ``listFiles`` builds a ``LocatedFileStatus``
    per local file and fills its permission fields by forking a shell command, about 7 ms a file,
    seconds for a month of hour partitions. Object stores keep ``listFiles`` (one flat listing per
    1,000 keys).
    """
    if is_local(uri):
        return _local_data_files(local_path(uri))
    return _hadoop_data_files(spark, uri)


def _hadoop_data_files(spark: SparkSession, uri: str) -> list[tuple[str, int]]:
    path, fs = _path_and_fs(spark, uri)
    if not fs.exists(path):
        return []
    out: list[tuple[str, int]] = []
    root = fs.makeQualified(path).toString()  # as the listed paths spell it (scheme and all)
    it = fs.listFiles(path, True)
    while it.hasNext():
        status = it.next()
        p = status.getPath()
        # Skip bookkeeping files and anything inside a bookkeeping directory (e.g. _spark_metadata/).
        rel = p.toString()[len(root) :]
        if all(_is_data(part) for part in rel.split("/") if part):
            out.append((p.toString(), int(status.getLen())))
    return out


def _local_data_files(root: str) -> list[tuple[str, int]]:
    """``data_files`` of a local directory, paths spelled as Hadoop spells them (``file:/abs/path``)."""
    out: list[tuple[str, int]] = []
    for directory, subdirs, files in os.walk(os.path.abspath(root)):
        subdirs[:] = [d for d in subdirs if _is_data(d)]
        for name in files:
            if _is_data(name):
                full = os.path.join(directory, name)
                out.append((f"file:{full}", os.path.getsize(full)))
    return out


def file_stats(spark: SparkSession, uri: str) -> FileStats:
    files = data_files(spark, uri)
    return FileStats(len(files), sum(size for _, size in files))


def file_stats_many(spark: SparkSession, uris: Iterable[str]) -> dict[str, FileStats]:
    return {uri: file_stats(spark, uri) for uri in uris}


def read_text(spark: SparkSession, uri: str) -> str | None:
    """A small UTF-8 state file of the lake, or None when it does not exist."""
    path, fs = _path_and_fs(spark, uri)
    if not fs.exists(path):
        return None
    stream = fs.open(path)
    try:
        return str(spark._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
    finally:
        stream.close()


def write_text(spark: SparkSession, uri: str, text: str) -> None:
    """Replace a small state file (a single PUT on S3, so readers see the old or the new text)."""
    path, fs = _path_and_fs(spark, uri)
    out = fs.create(path, True)
    try:
        out.write(bytearray(text.encode()))
    finally:
        out.close()


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

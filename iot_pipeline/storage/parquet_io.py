"""File-system helpers for the lake's datasets, local or S3, without going through a Spark JVM.

Listing, deleting, the small state files and single-file Parquet reads go through
:func:`iot_pipeline.storage.s3.lake_filesystem`: a pyarrow filesystem for a local path, ``file://`` or
``s3a://`` URI, configured from the same environment as Spark's. Keeping file operations out of the
JVM lets the assets run on a Spark Connect session, which has none, and spares a py4j round trip per
call on a classic one; the Parquet dataset reads and writes go through Spark, except a partition
file of a few hundred rows, written here with pyarrow, and the counts and single-column reads of
the advisory checks (:func:`arrow_dataset`).

Not everything reaches the lake this way. The stream's lease and its staging cleanup use Hadoop's
FileSystem through the Spark session's JVM (``streaming/lock.py``; the CLI reading or removing the
lease, and a release once the JVM is unusable, use pyarrow). The sensors' partition discovery lists
a local lake with ``os.scandir`` and an S3 lake with a boto3 client from dagster-aws's ``S3Resource``
(``storage/listing.py``), the client :func:`write_text` also uses when it is given that resource.

Files whose name starts with ``_`` or ``.`` (``_SUCCESS``, ``_spark_metadata``, ``.crc``) are
Spark/Hadoop bookkeeping, never data.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pds
import pyarrow.parquet as pq
from pyarrow import fs as pafs
from pyspark.sql import DataFrame

from iot_pipeline.storage.layout import is_local
from iot_pipeline.storage.s3 import lake_filesystem, put_text


@dataclass(frozen=True)
class FileStats:
    files: int
    bytes: int

    def __add__(self, other: FileStats) -> FileStats:
        return FileStats(self.files + other.files, self.bytes + other.bytes)


EMPTY = FileStats(0, 0)


def _is_data(name: str) -> bool:
    return not (name.startswith("_") or name.startswith("."))


def _spelled(uri: str, path: str) -> str:
    """A listed path as Spark spells it: ``file:/abs/path`` locally, ``<scheme>://bucket/key`` on S3."""
    if is_local(uri):
        return f"file:{path}"
    return f"{uri.split('://', 1)[0]}://{path}"


def data_files(uri: str) -> list[tuple[str, int]]:
    """(path, size) of every data file below ``uri`` (recursive), sorted; empty when it does not exist.

    One recursive listing: a local walk, or flat S3 listings of 1,000 keys each.
    """
    filesystem, root = lake_filesystem(uri)
    if is_local(uri):
        root = os.path.abspath(root)
    infos = filesystem.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    out: list[tuple[str, int]] = []
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        # Skip bookkeeping files and anything inside a bookkeeping directory (e.g. _spark_metadata/).
        rel = info.path[len(root) :]
        if all(_is_data(part) for part in rel.split("/") if part):
            out.append((_spelled(uri, info.path), int(info.size)))
    return sorted(out)


def file_stats(uri: str) -> FileStats:
    files = data_files(uri)
    return FileStats(len(files), sum(size for _, size in files))


def read_text(uri: str) -> str | None:
    """A small UTF-8 state file of the lake, or None when it does not exist."""
    filesystem, path = lake_filesystem(uri)
    try:
        with filesystem.open_input_stream(path) as stream:
            return stream.read().decode("utf-8")
    except FileNotFoundError:
        return None


def write_text(uri: str, text: str, *, s3: Any = None, content_type: str | None = None) -> None:
    """Replace a small text file: a state file, a CSV export (a single PUT on S3, so readers see the
    old or the new text).

    Locally the text goes to a temporary file that is then renamed over the old one, for the same
    all-or-nothing view. On S3 the object is written through ``s3``, a dagster-aws ``S3Resource``
    (the code location's, which the assets are given), when there is one, else through the pyarrow
    filesystem; ``content_type`` sets the object's ``Content-Type``.
    """
    if not is_local(uri) and s3 is not None:
        put_text(uri, text, s3, **({"content_type": content_type} if content_type else {}))
        return
    filesystem, path = lake_filesystem(uri)
    parent = path.rsplit("/", 1)[0]
    if is_local(uri):
        filesystem.create_dir(parent, recursive=True)
        staged = f"{parent}/.{path.rsplit('/', 1)[-1]}.tmp"
        with filesystem.open_output_stream(staged) as out:
            out.write(text.encode("utf-8"))
        filesystem.move(staged, path)
        return
    metadata = {"Content-Type": content_type} if content_type else None
    with filesystem.open_output_stream(path, metadata=metadata) as out:
        out.write(text.encode("utf-8"))


def read_table(uri: str, columns: list[str]) -> pa.Table:
    """Some columns of one Parquet file (a path as :func:`data_files` spells it), read with pyarrow.

    One file, one thread: ``pq.read_table`` would plan a dataset for it, which costs more than
    reading a small file (the event-id index check reads 24 per day).
    """
    filesystem, path = lake_filesystem(uri)
    with filesystem.open_input_file(path) as source:
        return pq.ParquetFile(source).read(columns=columns, use_threads=False)


def replace_data_files(directory: str, table: pa.Table) -> str:
    """Make ``table`` the one data file of a partition directory, written from this process; returns
    its path.

    For results of a few hundred rows, which a Spark job takes a second to write. The file is staged
    under a hidden name (which readers skip), the directory's old data files are deleted, and the
    staged file is renamed into place: a reader sees the old rows, for an instant none (as during
    Spark's dynamic overwrite), or the new ones, never both.
    """
    filesystem, path = lake_filesystem(directory)
    if is_local(directory):
        path = os.path.abspath(path)
        filesystem.create_dir(path, recursive=True)
    name = f"part-00000-{uuid.uuid4()}.snappy.parquet"
    staged = f"{path}/.{name}.tmp"
    pq.write_table(table, staged, filesystem=filesystem, compression="snappy")
    for old, _ in data_files(directory):
        delete(old)
    filesystem.move(staged, f"{path}/{name}")
    return _spelled(directory, f"{path}/{name}")


def arrow_dataset(uris: Sequence[str], dictionary_columns: Iterable[str] = ()) -> pds.Dataset:
    """Some data files (paths as :func:`data_files` spells them, none of them a directory) as one
    pyarrow dataset, for a count or a column read in this process. ``dictionary_columns`` are read
    as the files' dictionaries and indices, not as one string per row."""
    filesystem, _ = lake_filesystem(uris[0]) if uris else lake_filesystem(".")
    fmt = pds.ParquetFileFormat(
        read_options=pds.ParquetReadOptions(dictionary_columns=set(dictionary_columns))
    )
    return pds.dataset([lake_filesystem(u)[1] for u in uris], format=fmt, filesystem=filesystem)


def delete(uri: str) -> bool:
    """Recursively delete ``uri`` (a directory or a file); True if something was deleted."""
    filesystem, path = lake_filesystem(uri)
    kind = filesystem.get_file_info(path).type
    if kind == pafs.FileType.Directory:
        filesystem.delete_dir(path)
        return True
    if kind == pafs.FileType.File:
        filesystem.delete_file(path)
        return True
    return False


CONCURRENT_WRITERS = "spark.sql.maxConcurrentOutputFileWriters"


def overwrite_partitions(
    df: DataFrame,
    dataset: str,
    partition_columns: list[str],
    *,
    keep_order: bool = False,
    plain_columns: Iterable[str] = (),
) -> None:
    """Replace the partitions of ``dataset`` that ``df`` has rows for; leave every other one alone.

    Dynamic partition overwrite (set per write, whatever the session default): a partition of the
    run that ends up with no rows keeps its old files, so callers delete those with
    :func:`delete_partitions` once they know which partitions the write produced.

    ``keep_order``: write each task's rows in the order they come. Spark otherwise sorts a task by
    the partition columns first unless the rows already are, which would undo an order the caller
    chose. The rows then go to one open file per partition of the task, so this is for data laid out
    one partition (or a few) per task.

    ``plain_columns``: written without a dictionary (values that rarely repeat; Parquet's writer would
    build a dictionary per column chunk only to fall back to plain encoding).
    """
    writer = (
        df.write.mode("overwrite").option("partitionOverwriteMode", "dynamic").partitionBy(*partition_columns)
    )
    for column in plain_columns:
        writer = writer.option(f"parquet.enable.dictionary#{column}", "false")
    if not keep_order:
        writer.parquet(dataset)
        return
    conf = df.sparkSession.conf
    before = conf.get(CONCURRENT_WRITERS, None)
    conf.set(CONCURRENT_WRITERS, "4")
    try:
        writer.parquet(dataset)
    finally:
        if before is None:
            conf.unset(CONCURRENT_WRITERS)
        else:
            conf.set(CONCURRENT_WRITERS, before)


def delete_partitions(partition_dirs: Iterable[str]) -> list[str]:
    """Delete the given partition directories; returns those that existed."""
    return [d for d in partition_dirs if delete(d)]

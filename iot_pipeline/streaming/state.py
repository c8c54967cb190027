"""Small state files the stream publishes in the lake for other processes (the partition sensor)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pyspark.sql import SparkSession

from iot_pipeline.storage.layout import LakeLayout


def watermark_path(layout: LakeLayout) -> str:
    return layout.path("_state", "stream", "watermark.json")


def _path_and_fs(spark: SparkSession, path: str) -> tuple[Any, Any]:
    """Hadoop's FileSystem, so the same calls work for local and s3a:// lakes."""
    hadoop_path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path, hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())


def write_watermark(spark: SparkSession, layout: LakeLayout, watermark: datetime) -> None:
    path, fs = _path_and_fs(spark, watermark_path(layout))
    out = fs.create(path, True)
    try:
        out.write(bytearray(json.dumps({"watermark": watermark.isoformat()}).encode()))
    finally:
        out.close()


def read_watermark(spark: SparkSession, layout: LakeLayout) -> datetime | None:
    """The last published watermark (a restarted stream continues from it, never behind it)."""
    path, fs = _path_and_fs(spark, watermark_path(layout))
    if not fs.exists(path):
        return None
    stream = fs.open(path)
    try:
        text = spark.sparkContext._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()
    try:
        return datetime.fromisoformat(json.loads(text)["watermark"])
    except (ValueError, KeyError, TypeError):
        return None


@dataclass
class WatermarkPublisher:
    """The stream's event-time watermark: newest event time landed minus ``delay``, never moving back.

    Starts from the last published value, so a restart that first lands older events keeps it.
    """

    spark: SparkSession
    layout: LakeLayout
    delay: timedelta
    on_change: Callable[[datetime], None] = lambda _: None
    current: datetime | None = None

    def __post_init__(self) -> None:
        self.current = read_watermark(self.spark, self.layout)

    def observe(self, newest_event: datetime | None) -> None:
        if newest_event is None:
            return
        candidate = newest_event - self.delay
        if self.current is None or candidate > self.current:
            self.current = candidate
            write_watermark(self.spark, self.layout, candidate)
            self.on_change(candidate)

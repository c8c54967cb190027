"""Small state files the stream publishes in the lake for other processes (the partition sensor)."""

from __future__ import annotations

import json
from datetime import datetime

from pyspark.sql import SparkSession

from iot_pipeline.storage.layout import LakeLayout


def watermark_path(layout: LakeLayout) -> str:
    return layout.path("_state", "stream", "watermark.json")


def write_watermark(spark: SparkSession, layout: LakeLayout, watermark: datetime) -> None:
    """Written through Hadoop's FileSystem so the same call works for local and s3a:// lakes."""
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(watermark_path(layout))
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    out = fs.create(path, True)
    try:
        out.write(bytearray(json.dumps({"watermark": watermark.isoformat()}).encode()))
    finally:
        out.close()

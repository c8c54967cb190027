"""Reading ``silver/events`` for whole days, as the daily assets do."""

from __future__ import annotations

import time
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession

from iot_pipeline.contract.spark_schema import bronze_schema
from iot_pipeline.storage.datasets import DailyDataset
from iot_pipeline.storage.layout import hour_of_file


@dataclass(frozen=True)
class SilverDays:
    df: DataFrame | None
    hours_found: dict[str, int]  # day -> number of hour partitions with files
    files_by_hour: dict[tuple[str, int], frozenset[str]]  # (day, hour) -> names of its silver files
    bytes_read: int
    largest_day_bytes: int  # sizes per-day work such as the p95's repeat check

    def run_metadata(self, started: float, path: str, rows: int, **specific: object) -> dict[str, object]:
        """What every daily run reports, around what only it knows: rows written, days, the silver
        hours and bytes it read, seconds since ``started`` (``time.monotonic()``) and where it wrote."""
        days = len(self.hours_found)
        return {
            "rows": rows,
            "days": days,
            **specific,
            "silver_hours_found": sum(self.hours_found.values()),
            "silver_hours_expected": 24 * days,
            "silver_bytes_read": self.bytes_read,
            "seconds": round(time.monotonic() - started, 3),
            "path": path,
        }


def read_silver_days(spark: SparkSession, dataset: str, days: list[str], columns: list[str]) -> SilverDays:
    files_by_hour: dict[tuple[str, int], set[str]] = {}
    day_bytes: dict[str, int] = {}
    present = []
    silver = DailyDataset(dataset)
    for day in days:
        files = silver.files(day)
        for path, _ in files:
            if (hour := hour_of_file(path)) is not None:
                files_by_hour.setdefault((day, hour), set()).add(path.rsplit("/", 1)[1])
        day_bytes[day] = sum(size for _, size in files)
        if files:
            present.append(day)
    by_hour = {k: frozenset(v) for k, v in files_by_hour.items()}
    hours_found = {day: sum(1 for d, _ in by_hour if d == day) for day in days}
    if not present:
        return SilverDays(None, hours_found, by_hour, 0, 0)
    df = silver.read_present(spark, present, bronze_schema()).select(*columns)
    return SilverDays(df, hours_found, by_hour, sum(day_bytes.values()), max(day_bytes.values()))

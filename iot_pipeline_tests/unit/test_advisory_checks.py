"""The advisory checks read the lake with pyarrow: counts, the quarantine's window, the device-type history."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from iot_pipeline.assets.windows import days_in
from iot_pipeline.checks.advisory import new_device_types_result, quarantine_share_result
from iot_pipeline.storage.layout import LakeLayout, day_partition_dir, hour_partition_dir

HOUR = datetime(2026, 3, 2, 12, tzinfo=timezone.utc)
WINDOW = dg.TimeWindow(HOUR, HOUR + timedelta(hours=1))


def naive(moment: datetime) -> datetime:
    """As Spark's INT96 timestamps read back: UTC, without a zone."""
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def write(directory: str, name: str, table: pa.Table) -> None:
    Path(directory).mkdir(parents=True, exist_ok=True)
    pq.write_table(table, f"{directory}/{name}")


def silver_hour(layout: LakeLayout, hour: datetime, types: list[str | None]) -> None:
    write(
        hour_partition_dir(layout.silver_events, hour),
        "part-0.parquet",
        pa.table({"device_type": pa.array(types, pa.string())}),
    )


def test_quarantine_share_counts_bronze_footers_and_the_window_of_kafka_time(tmp_path) -> None:
    layout = LakeLayout(str(tmp_path))
    bronze = hour_partition_dir(layout.bronze_events, HOUR)
    write(f"{bronze}/ingest_batch=1", "a.parquet", pa.table({"x": list(range(60))}))
    write(f"{bronze}/ingest_batch=2", "b.parquet", pa.table({"x": list(range(30))}))
    write(f"{bronze}/_spark_metadata", "c.parquet", pa.table({"x": list(range(500))}))  # bookkeeping
    kafka_time = [HOUR - timedelta(seconds=1), HOUR, HOUR + timedelta(minutes=59), HOUR + timedelta(hours=1)]
    quarantine = day_partition_dir(layout.quarantine_events, "2026-03-02", "kafka_date")
    table = pa.table({"kafka_timestamp": pa.array([naive(t) for t in kafka_time] * 5, pa.timestamp("ns"))})
    write(f"{quarantine}/ingest_batch=1", "q.parquet", table)

    result = quarantine_share_result(layout, WINDOW, 0.05)
    meta = {k: v.value for k, v in result.metadata.items()}
    assert (meta["bronze_rows"], meta["quarantined_rows"]) == (90, 10)
    assert meta["quarantine_share"] == 10 / 100 and not result.passed
    assert quarantine_share_result(layout, WINDOW, 0.2).passed


def test_new_device_types_against_the_history_read_newest_first(tmp_path) -> None:
    layout = LakeLayout(str(tmp_path))
    silver_hour(layout, HOUR, ["co2", "humidity", "door", None])
    first = new_device_types_result(layout, WINDOW, 7, [])
    assert first.passed and first.metadata["new_device_type_count"].value == 0  # no baseline yet

    silver_hour(layout, HOUR - timedelta(days=2), ["co2", "humidity"])
    silver_hour(layout, HOUR - timedelta(days=8), ["door"])  # older than the history
    result = new_device_types_result(layout, WINDOW, 7, [])
    assert not result.passed
    assert result.metadata["new_device_types"].value == "door"
    assert result.metadata["device_types"].value == 4  # a null device_type is a value of the hour
    assert new_device_types_result(layout, WINDOW, 7, ["door"]).passed

    # Once every type is found, older hours are not read: a broken file there goes unnoticed.
    silver_hour(layout, HOUR - timedelta(hours=1), ["co2", "humidity", "door"])
    broken = hour_partition_dir(layout.silver_events, HOUR - timedelta(days=3))
    Path(broken).mkdir(parents=True)
    Path(broken, "part-0.parquet").write_bytes(b"not parquet")
    recent = new_device_types_result(layout, WINDOW, 7, [])
    assert recent.passed and "in the 1 newest hour(s)" in recent.metadata["baseline"].value


def test_days_of_an_hourly_window_include_the_day_after_midnight() -> None:
    late = datetime(2026, 3, 1, 22, tzinfo=timezone.utc)
    assert days_in(dg.TimeWindow(late, late + timedelta(hours=4))) == ["2026-03-01", "2026-03-02"]
    assert days_in(dg.TimeWindow(HOUR, HOUR + timedelta(hours=1))) == ["2026-03-02"]
    day = datetime(2026, 3, 1, tzinfo=timezone.utc)
    assert days_in(dg.TimeWindow(day, day + timedelta(days=2))) == ["2026-03-01", "2026-03-02"]

"""Checks of the shared bronze generator and the numpy reference of the daily p95 (pure logic, no Spark)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from iot_pipeline.testing.bronze import BRONZE_ARROW_SCHEMA, generate_bronze, reference_p95, write_bronze


def test_generator_ground_truth_is_consistent() -> None:
    start = datetime(2026, 3, 1, 22, tzinfo=timezone.utc)
    b = generate_bronze(start, 3, {"a": 3000, "b": 100}, duplicate_fraction=0.05, late_fraction=0.02)
    assert b.unique.num_rows == 3100
    assert b.rows.num_rows == 3100 + b.duplicates
    assert 100 < b.duplicates < 260 and b.late > 20
    assert len(set(b.unique["event_id"].to_pylist())) == 3100
    # Event hours span midnight: two dates, hours 22, 23, 0 only.
    assert set(zip(b.rows["event_date"].to_pylist(), b.rows["event_hour"].to_pylist(), strict=True)) == {
        ("2026-03-01", 22),
        ("2026-03-01", 23),
        ("2026-03-02", 0),
    }
    ts = b.unique["event_timestamp"].to_pylist()
    assert min(ts) >= start and max(ts) < start + timedelta(hours=3)


def test_reference_p95_matches_a_hand_computed_case() -> None:
    # 500 events of 1.0..500.0 plus one far outlier: mean/stddev with the outlier, outlier dropped.
    x = np.concatenate([np.arange(1.0, 501.0), [100_000.0]])
    table = pa.table({"event_date": ["2026-01-01"] * 501, "device_type": ["t"] * 501, "event_duration": x})
    r = reference_p95(table)[("2026-01-01", "t")]
    assert r["events_total"] == 501 and r["outliers_removed"] == 1 and r["events_kept"] == 500
    # numpy linear: position 0.95 * 499 = 474.05 -> 475 + 0.05 * (476 - 475)
    assert r["p95_event_duration"] == pytest.approx(475.05, rel=1e-12)
    assert r["max_kept_event_duration"] == 500.0


def test_written_bronze_is_hive_partitioned(tmp_path: Path) -> None:
    b = generate_bronze(datetime(2026, 1, 1, 5, tzinfo=timezone.utc), 2, {"a": 200})
    files = write_bronze(b.rows, tmp_path / "bronze", files_per_hour=2)
    assert len(files) == 4
    assert {Path(f).parent.parent.name for f in files} == {"event_hour=5", "event_hour=6"}
    assert {Path(f).parent.name for f in files} == {"ingest_batch=0", "ingest_batch=1"}
    assert all(len(i) == 36 and i.count("-") == 4 for i in b.unique["event_id"].to_pylist())
    back = pq.read_table(files[0])
    assert back.schema.equals(BRONZE_ARROW_SCHEMA)

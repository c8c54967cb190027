"""The lake's paths have one spelling (``storage/layout.py``) and the datasets' file helpers use it.

Pure path arithmetic and a local directory: no Spark, no S3 (``integration/test_parquet_io.py`` runs
the same helpers against MinIO).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from iot_pipeline.storage import parquet_io as pio
from iot_pipeline.storage.datasets import HourlyDataset
from iot_pipeline.storage.layout import (
    DATE_DIR,
    HOUR_DIR,
    LakeLayout,
    hour_of_file,
    hour_partition_dir,
    is_day_level_file,
)


def test_state_paths_live_under_the_lake_root() -> None:
    layout = LakeLayout("s3a://bucket/lake")
    assert layout.stream_resume == "s3a://bucket/lake/_state/stream/resume.json"
    assert layout.checkpoint("bronze") == "s3a://bucket/lake/_state/checkpoints/bronze"
    # Next to the checkpoint, not in it: a reset moves the directory and leaves the lease.
    assert layout.checkpoint_lock("bronze") == "s3a://bucket/lake/_state/checkpoints/bronze.lock"
    assert (
        layout.checkpoint_moved("bronze", "20260301T000000Z")
        == "s3a://bucket/lake/_state/checkpoints/bronze.reset-20260301T000000Z"
    )


def test_partition_paths_read_back_as_they_are_written() -> None:
    hour = datetime(2026, 3, 1, 7, tzinfo=timezone.utc)
    directory = hour_partition_dir("file:/lake/silver/events", hour)
    assert directory == "file:/lake/silver/events/event_date=2026-03-01/event_hour=7"
    assert hour_of_file(f"{directory}/part-0.parquet") == 7
    assert not is_day_level_file(f"{directory}/part-0.parquet")
    # Only the directory directly holding the file counts.
    assert hour_of_file(f"{directory}/nested/part-0.parquet") is None
    assert hour_of_file("s3a://b/lake/event_date=2026-03-01/part-0.parquet") is None
    assert is_day_level_file("s3a://b/lake/event_date=2026-03-01/part-0.parquet")
    assert DATE_DIR.match("event_date=2026-03-01") and not DATE_DIR.match("event_date=2026-3-1")
    assert HOUR_DIR.match("event_hour=23") and not HOUR_DIR.match("event_hour=x")


def _index_file(path: Path, rows: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"file": [f"f{i}" for i in range(rows)], "rows": list(range(rows))}), path)


def test_hour_files_read_and_day_level_files_deleted(tmp_path: Path) -> None:
    dataset = HourlyDataset(str(tmp_path / "index"))
    day = tmp_path / "index" / "event_date=2026-03-01"
    _index_file(day / "event_hour=0" / "part-0.parquet", 2)
    _index_file(day / "event_hour=13" / "part-0.parquet", 3)
    _index_file(day / "part-old.parquet", 1)  # the earlier one-file-per-day layout
    (day / "_SUCCESS").write_bytes(b"")

    found = dataset.hour_files("2026-03-01")
    assert found == [
        (0, f"file:{day}/event_hour=0/part-0.parquet"),
        (13, f"file:{day}/event_hour=13/part-0.parquet"),
    ]
    assert pio.read_table(found[1][1], ["rows"]).column("rows").to_pylist() == [0, 1, 2]
    assert dataset.hour_files("2026-03-02") == []

    hours = [datetime(2026, 3, 1, 5, tzinfo=timezone.utc), datetime(2026, 3, 2, 0, tzinfo=timezone.utc)]
    assert dataset.delete_day_level_files(hours) == [f"file:{day}/part-old.parquet"]
    assert not (day / "part-old.parquet").exists() and (day / "event_hour=0" / "part-0.parquet").exists()
    assert dataset.delete_day_level_files(hours) == []


def test_write_text_replaces_a_local_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "exports" / "daily" / "event_date=2026-03-01.csv"
    pio.write_text(str(target), "a,b\n1,2\n", content_type="text/csv")
    pio.write_text(f"file://{target}", "a,b\n", s3=object(), content_type="text/csv")  # s3 is for S3 only
    assert target.read_text(encoding="utf-8") == "a,b\n"
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]  # no staged file left

"""``silver/event_id_index`` on real Spark: written by silver/events, trusted only for the files it names."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from iot_pipeline.assets.event_id_index import distinct_ids_by_day
from iot_pipeline.assets.external import EXTERNAL_ASSETS
from iot_pipeline.assets.gold_logic import P95_INPUT_COLUMNS, daily_p95_all_types
from iot_pipeline.assets.keys import SILVER_EVENT_ID_INDEX, SILVER_EVENTS
from iot_pipeline.assets.silver_events import events
from iot_pipeline.assets.silver_reader import SilverDays, read_silver_days
from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.testing.bronze import generate_bronze, write_bronze

pytestmark = pytest.mark.spark

DAY = "2026-05-06"
START = datetime(2026, 5, 6, tzinfo=timezone.utc)
RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
# Replay off; the test empties an hour on purpose (an hour is never emptied by accident).
NO_REPLAY = {
    "ops": {"silver__events": {"config": {"replay_missing_hours": False, "allow_emptying_hours": True}}}
}


def _silver_run(
    root: Path, spark_resource, first: str, last: str, selection: list[dg.AssetKey] | None = None
) -> list[str]:
    """One run of the silver multi-asset (both outputs unless ``selection``); the keys it reported."""
    res = {"spark": spark_resource, "lake": LakeResource(root=str(root)), "kafka": KafkaResource()}
    result = dg.materialize(
        [*EXTERNAL_ASSETS, events],
        resources=res,
        run_config=NO_REPLAY,
        tags=dict(zip(RANGE, (first, last), strict=True)),
        selection=selection,
    )
    assert result.success
    return sorted(e.asset_key.to_user_string() for e in result.get_asset_materialization_events())


def _read(spark, root: Path) -> tuple[SilverDays, dict[str, bool]]:
    layout = LakeResource(root=str(root)).layout
    silver = read_silver_days(spark, layout.silver_events, [DAY], list(P95_INPUT_COLUMNS))
    return silver, distinct_ids_by_day(layout.silver_event_id_index, silver.files_by_hour)


def _index(root: Path) -> pa.Table:
    return pq.read_table(root / "silver" / "event_id_index")


def _three_silver_hours(root: Path, spark_resource, *, repeat_across_hours: bool) -> None:
    """Bronze for hours 0-2 of the day, and silver built from it in one run."""
    batch = generate_bronze(START, 3, {"a": 900, "b": 600}, seed=41, duplicate_fraction=0.03)
    rows = batch.rows
    if repeat_across_hours:
        # One event sent again two hours later under the same id: silver keeps both (different hours).
        first = rows.filter(pc.equal(rows["event_hour"], 0)).slice(0, 1).to_pylist()[0]
        again = first | {
            "event_timestamp": first["event_timestamp"] + timedelta(hours=2),
            "kafka_timestamp": first["kafka_timestamp"] + timedelta(hours=2),
            "ingest_time": first["ingest_time"] + timedelta(hours=2),
            "kafka_offset": 99_999,
            "event_hour": 2,
        }
        rows = pa.concat_tables([rows, pa.Table.from_pylist([again], rows.schema)])
    write_bronze(rows, root / "bronze" / "events", files_per_hour=2)
    _silver_run(root, spark_resource, f"{DAY}-00:00", f"{DAY}-02:00")


def test_the_index_matches_silver_and_proves_a_day_without_repeats(
    spark, spark_resource, tmp_path: Path
) -> None:
    _three_silver_hours(tmp_path, spark_resource, repeat_across_hours=False)
    silver, verdicts = _read(spark, tmp_path)
    assert verdicts == {DAY: True}
    # A day with more ids than the run's process may hold gets no verdict: its rows are checked.
    index_dir = LakeResource(root=str(tmp_path)).layout.silver_event_id_index
    assert distinct_ids_by_day(index_dir, silver.files_by_hour, max_ids=1499) == {}
    assert distinct_ids_by_day(index_dir, silver.files_by_hour, max_ids=1500) == {DAY: True}
    index = _index(tmp_path)
    # One row per silver file, named as listed, with one hash per silver row.
    indexed: dict[tuple[str, int], set[str]] = {}
    for f, h in zip(index["file"].to_pylist(), index["event_hour"].to_pylist(), strict=True):
        indexed.setdefault((DAY, h), set()).add(f)
    assert indexed == {k: set(v) for k, v in silver.files_by_hour.items()} and len(indexed) == 3
    for f, n, hashes in zip(*(index[c].to_pylist() for c in ("file", "rows", "id_hashes")), strict=True):
        [path] = (tmp_path / "silver" / "events").rglob(f)
        assert n == len(hashes) == pq.read_metadata(path).num_rows
    # One index file per hour (each run writes only its own hours), none at the day level.
    day_dir = tmp_path / "silver" / "event_id_index" / f"event_date={DAY}"
    assert len(list(day_dir.glob("event_hour=*/*.parquet"))) == 3 and not list(day_dir.glob("*.parquet"))


def test_an_id_in_two_hours_is_a_repeat_and_the_p95_still_counts_it_once(
    spark, spark_resource, tmp_path: Path
) -> None:
    _three_silver_hours(tmp_path, spark_resource, repeat_across_hours=True)
    silver, verdicts = _read(spark, tmp_path)
    assert verdicts == {DAY: False}
    # The index's verdict sends the day to the exact dedup, as the row check does without an index.
    assert daily_p95_all_types(silver.df, 1, verdicts) == daily_p95_all_types(silver.df, 1)
    assert sum(r["events_total"] for r in daily_p95_all_types(silver.df, 1, verdicts)) == 1500


def test_rewriting_an_hour_keeps_the_others_and_a_foreign_file_voids_the_day(
    spark, spark_resource, tmp_path: Path
) -> None:
    _three_silver_hours(tmp_path, spark_resource, repeat_across_hours=False)
    # Hour 1 again, alone: its rows are replaced, hours 0 and 2 keep theirs.
    _silver_run(tmp_path, spark_resource, f"{DAY}-01:00", f"{DAY}-01:00")
    assert _read(spark, tmp_path)[1] == {DAY: True}
    assert sorted(set(_index(tmp_path)["event_hour"].to_pylist())) == [0, 1, 2]
    # Hour 2 loses its bronze and is emptied (replay off): its index rows go with it.
    for f in (tmp_path / "bronze" / "events" / f"event_date={DAY}" / "event_hour=2").rglob("*.parquet"):
        f.unlink()
    _silver_run(tmp_path, spark_resource, f"{DAY}-02:00", f"{DAY}-02:00")
    assert _read(spark, tmp_path)[1] == {DAY: True}
    assert sorted(set(_index(tmp_path)["event_hour"].to_pylist())) == [0, 1]
    # A silver file the index does not name (the hour's events again, written by hand under other
    # Kafka offsets): no verdict, so the rows are checked, and the repeated ids count once.
    hour0 = tmp_path / "silver" / "events" / f"event_date={DAY}" / "event_hour=0"
    [src] = hour0.glob("*.parquet")
    copy = pq.read_table(src)
    offsets = copy.schema.get_field_index("kafka_offset")
    copy = copy.set_column(offsets, "kafka_offset", pc.add(copy["kafka_offset"], 1_000_000))
    pq.write_table(copy, hour0 / "part-99999-by-hand.snappy.parquet", coerce_timestamps="us")
    silver, verdicts = _read(spark, tmp_path)
    assert verdicts == {}
    ids = pq.read_table(tmp_path / "silver" / "events", columns=["event_id"])["event_id"].to_pylist()
    assert len(ids) == len(set(ids)) + copy.num_rows
    assert sum(r["events_total"] for r in daily_p95_all_types(silver.df, 1, verdicts)) == len(set(ids))


def test_runs_of_different_hours_of_one_day_at_the_same_time_keep_the_index_whole(
    spark, spark_resource, tmp_path: Path
) -> None:
    """The race of the one-file-per-day index: two runs of hours of the same day, truly concurrent
    (two threads, one Spark application), twice over. Each writes only its own hour partitions, so
    both succeed and the day's index names exactly the day's silver files."""
    _three_silver_hours(tmp_path, spark_resource, repeat_across_hours=False)
    for _ in range(2):
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [
                pool.submit(_silver_run, tmp_path, spark_resource, f"{DAY}-0{h}:00", f"{DAY}-0{h}:00")
                for h in (0, 2)
            ]
            for future in futures:
                future.result()  # a run that failed (e.g. FILE_NOT_EXIST) raises here
        silver, verdicts = _read(spark, tmp_path)
        assert verdicts == {DAY: True}
        indexed = {(DAY, h) for h in _index(tmp_path)["event_hour"].to_pylist()}
        assert indexed == set(silver.files_by_hour) == {(DAY, 0), (DAY, 1), (DAY, 2)}


def test_a_day_file_of_the_earlier_layout_is_replaced_when_an_hour_is_written(
    spark, spark_resource, tmp_path: Path
) -> None:
    _three_silver_hours(tmp_path, spark_resource, repeat_across_hours=False)
    day_dir = tmp_path / "silver" / "event_id_index" / f"event_date={DAY}"
    legacy = pq.read_table(day_dir)  # all three hours in one file directly under the day, as before
    shutil.rmtree(day_dir)
    day_dir.mkdir()
    pq.write_table(legacy, day_dir / "part-00000-legacy.snappy.parquet")
    assert _read(spark, tmp_path)[1] == {}  # not trusted: checked from its rows
    _silver_run(tmp_path, spark_resource, f"{DAY}-01:00", f"{DAY}-01:00")
    assert not list(day_dir.glob("*.parquet"))  # removed; only hour 1 is indexed until 0 and 2 re-run
    assert _read(spark, tmp_path)[1] == {}
    _silver_run(tmp_path, spark_resource, f"{DAY}-00:00", f"{DAY}-02:00")
    assert _read(spark, tmp_path)[1] == {DAY: True}


def test_silver_alone_leaves_the_index_stale_and_the_index_alone_rebuilds_it(
    spark, spark_resource, tmp_path: Path
) -> None:
    """The multi-asset is subsettable: `--select silver/events` rewrites the hour's files without its
    index, so the day gets no verdict from the index (checked from its rows); selecting the index
    alone rebuilds it from the files as they are, and the day is proved again."""
    _three_silver_hours(tmp_path, spark_resource, repeat_across_hours=False)
    before = set(_index(tmp_path)["file"].to_pylist())

    hour = f"{DAY}-01:00"
    assert _silver_run(tmp_path, spark_resource, hour, hour, [SILVER_EVENTS]) == ["silver/events"]
    silver, verdicts = _read(spark, tmp_path)
    assert verdicts == {}
    assert set(_index(tmp_path)["file"].to_pylist()) == before  # untouched, so stale for hour 1
    assert silver.files_by_hour[(DAY, 1)].isdisjoint(before)

    assert _silver_run(tmp_path, spark_resource, hour, hour, [SILVER_EVENT_ID_INDEX]) == [
        "silver/event_id_index"
    ]
    silver, verdicts = _read(spark, tmp_path)
    assert verdicts == {DAY: True}
    index = _index(tmp_path)
    assert {
        f for f, h in zip(index["file"].to_pylist(), index["event_hour"].to_pylist(), strict=True) if h == 1
    } == set(silver.files_by_hour[(DAY, 1)])
    assert sum(index["rows"].to_pylist()) == silver.df.count()

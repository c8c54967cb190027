"""The daily assets on real Spark: the p95 against an independent numpy computation of the spec rule."""

from __future__ import annotations

import csv
from datetime import datetime, timezone

import dagster as dg
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from iot_pipeline.assets.daily_device_type_summary import daily_device_type_summary
from iot_pipeline.assets.daily_event_duration_p95 import daily_event_duration_p95
from iot_pipeline.assets.external import EXTERNAL_ASSETS
from iot_pipeline.assets.gold_logic import MIN_EVENTS, P95_COLUMNS
from iot_pipeline.assets.silver_events import events
from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.storage.s3 import s3_resource
from iot_pipeline.testing.bronze import (
    generate_bronze,
    reference_p95,
    write_bronze,
)

pytestmark = pytest.mark.spark

DAY1, DAY2 = "2026-02-10", "2026-02-11"
RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


@pytest.fixture(scope="module")
def lake(spark_resource, tmp_path_factory) -> dict:
    """25 hours of bronze (a whole day and the first hour of the next), silver built in one run."""
    root = tmp_path_factory.mktemp("gold_lake")
    batch = generate_bronze(
        datetime(2026, 2, 10, tzinfo=timezone.utc),
        25,
        {"temperature": 3000, "humidity": 800, "smoke": 510},
        seed=23,
        duplicate_fraction=0.05,
        outlier_fraction=0.015,
    )
    write_bronze(batch.rows, root / "bronze" / "events", files_per_hour=1)
    res = {
        "spark": spark_resource,
        "lake": LakeResource(root=str(root)),
        "kafka": KafkaResource(),
        "s3": s3_resource(),
    }
    silver = dg.materialize(
        [*EXTERNAL_ASSETS, events],
        resources=res,
        tags=dict(zip(RANGE, ("2026-02-10-00:00", "2026-02-11-00:00"), strict=True)),
    )
    assert silver.success
    gold = dg.materialize(
        [*EXTERNAL_ASSETS, daily_event_duration_p95, daily_device_type_summary],
        resources=res,
        tags=dict(zip(RANGE, (DAY1, DAY2), strict=True)),
    )
    assert gold.success
    return {"root": root, "batch": batch, "gold": gold, "resources": res}


def _metas(result: dg.ExecuteInProcessResult, key: str) -> dict[str | None, dict]:
    """Metadata of each partition's materialisation (tables as lists of row dicts)."""
    mats = [m for m in result.get_asset_materialization_events() if m.asset_key.to_user_string() == key]
    return {
        m.partition: {
            k: [r.data for r in v.records] if isinstance(v, dg.TableMetadataValue) else v.value
            for k, v in m.materialization.metadata.items()
        }
        for m in mats
    }


def _meta(result: dg.ExecuteInProcessResult, key: str) -> dict:
    return list(_metas(result, key).values())[-1]


def test_daily_p95_matches_numpy_to_1e9(lake) -> None:
    expected = reference_p95(lake["batch"].unique)
    out = pq.read_table(lake["root"] / "gold" / "daily_event_duration_p95").to_pylist()
    got = {(str(r["event_date"]), r["device_type"]): r for r in out}
    wanted = {k: v for k, v in expected.items() if v["events_total"] >= MIN_EVENTS}
    assert set(got) == set(wanted) == {(DAY1, "temperature"), (DAY1, "humidity")}
    for key, exp in wanted.items():
        row = got[key]
        assert exp["outliers_removed"] > 0, "test data must exercise the 3-sigma filter"
        for col in ("events_total", "events_kept", "outliers_removed"):
            assert row[col] == exp[col], (key, col)
        for col in (
            "mean",
            "stddev",
            "p95_event_duration",
            "min_kept_event_duration",
            "max_kept_event_duration",
        ):
            assert row[col] == pytest.approx(exp[col], rel=1e-9, abs=0), (key, col)


def test_types_below_500_distinct_events_are_excluded_even_with_duplicates(lake) -> None:
    truth = lake["batch"]
    rows = truth.rows.filter(
        pc.and_(pc.equal(truth.rows["event_date"], DAY1), pc.equal(truth.rows["device_type"], "smoke"))
    )
    distinct = len(set(rows["event_id"].to_pylist()))
    assert distinct < MIN_EVENTS <= rows.num_rows, "smoke must have >= 500 rows but < 500 distinct events"
    by_day = _metas(lake["gold"], "gold/daily_event_duration_p95")
    assert set(by_day) == {DAY1, DAY2}
    m = by_day[DAY1]
    assert {"device_type": "smoke", "events_total": distinct, "why": "events_total < 500"} in m["excluded"]
    assert m["days"] == 2 and m["rows"] == 2
    assert m["silver_hours_found"] == 25 and m["silver_hours_expected"] == 48
    # Silver wrote the event-id index with its files: both days were decided by it, neither repeats.
    assert m["days_checked_by_event_id_index"] == 2 and m["days_with_repeated_event_id"] == 0
    # Each day of the two-day run carries its own result table and plottable numbers.
    assert sorted(r["device_type"] for r in m["result"]) == ["humidity", "temperature"]
    assert m["dagster/row_count"] == 2 and "p95/temperature" in m and "p95/smoke" not in m
    expected = reference_p95(lake["batch"].unique)
    assert m["p95/humidity"] == pytest.approx(expected[(DAY1, "humidity")]["p95_event_duration"], rel=1e-9)
    assert by_day[DAY2]["result"] == [] and by_day[DAY2]["dagster/row_count"] == 0
    assert not any(k.startswith("p95/") for k in by_day[DAY2])


def test_csv_export_per_day(lake) -> None:
    exports = lake["root"] / "exports" / "daily_event_duration_p95"
    with open(exports / f"event_date={DAY1}.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(P95_COLUMNS)
    expected = reference_p95(lake["batch"].unique)
    assert {r["device_type"] for r in rows} == {"temperature", "humidity"}
    for r in rows:
        exp = expected[(DAY1, r["device_type"])]
        assert int(r["events_total"]) == exp["events_total"]
        assert float(r["p95_event_duration"]) == pytest.approx(exp["p95_event_duration"], rel=1e-12)
    # Day 2 has a single hour, no type reaches 500: header-only file, no Parquet partition.
    with open(exports / f"event_date={DAY2}.csv") as f:
        assert f.read().strip() == ",".join(P95_COLUMNS)
    assert not (lake["root"] / "gold" / "daily_event_duration_p95" / f"event_date={DAY2}").exists()


def test_single_day_run_has_plottable_p95_metadata(lake) -> None:
    result = dg.materialize(
        [*EXTERNAL_ASSETS, daily_event_duration_p95], resources=lake["resources"], partition_key=DAY1
    )
    m = _meta(result, "gold/daily_event_duration_p95")
    expected = reference_p95(lake["batch"].unique)
    assert m["p95/temperature"] == pytest.approx(
        expected[(DAY1, "temperature")]["p95_event_duration"], rel=1e-9
    )
    assert "p95/smoke" not in m
    assert m["silver_hours_found"] == 24 and m["seconds"] > 0


def test_daily_summary(lake) -> None:
    out = pq.read_table(lake["root"] / "gold" / "daily_device_type_summary").to_pylist()
    got = {(str(r["event_date"]), r["device_type"]): r for r in out}
    truth = lake["batch"].unique
    for (day, t), r in got.items():
        sel = truth.filter(pc.and_(pc.equal(truth["event_date"], day), pc.equal(truth["device_type"], t)))
        assert r["events"] == sel.num_rows
        assert r["devices"] == len(set(sel["device_id"].to_pylist()))
        assert r["critical_events"] == pc.sum(pc.equal(sel["status"], "critical")).as_py()
        assert r["value_max"] == pytest.approx(pc.max(sel["value"]).as_py())
    assert {t for d, t in got if d == DAY1} == {"temperature", "humidity", "smoke"}

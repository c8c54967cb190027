"""Asset checks on real Spark: clean partitions pass, corrupted ones fail with counts and stop downstream."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone

import dagster as dg
import pyarrow as pa
import pytest
from pyspark.sql import functions as F

from iot_pipeline.assets.daily_event_duration_p95 import daily_event_duration_p95
from iot_pipeline.assets.device_minute_stats import device_minute_stats
from iot_pipeline.assets.external import EXTERNAL_ASSETS
from iot_pipeline.assets.keys import GOLD_DAILY_EVENT_DURATION_P95, SILVER_DEVICE_MINUTE_STATS, SILVER_EVENTS
from iot_pipeline.assets.partitions import DAILY, HOURLY
from iot_pipeline.assets.silver_events import events
from iot_pipeline.checks import CHECKS
from iot_pipeline.checks.advisory import silver_events_advisories
from iot_pipeline.checks.gold import daily_p95_quality
from iot_pipeline.checks.silver import device_minute_stats_quality, silver_events_quality
from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import SparkResource
from iot_pipeline.storage.layout import LakeLayout
from iot_pipeline.storage.s3 import s3_resource
from iot_pipeline.testing.bronze import generate_bronze, write_bronze

pytestmark = pytest.mark.spark

HOUR = datetime(2026, 3, 4, 10, tzinfo=timezone.utc)
PARTITION = "2026-03-04-10:00"
DAY = "2026-03-04"


def checks_by_key(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {f"{e.asset_key.to_user_string()}:{e.check_name}": e for e in result.get_asset_check_evaluations()}


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}


@pytest.fixture(scope="module")
def lake(spark_resource: SparkResource, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("lake")
    batch = generate_bronze(HOUR, 1, {"temperature": 600, "co2": 150}, duplicate_fraction=0.05)
    write_bronze(batch.rows, root / "bronze" / "events", files_per_hour=2)
    res = {
        "spark": spark_resource,
        "lake": LakeResource(root=str(root)),
        "kafka": KafkaResource(),
        "s3": s3_resource(),
    }
    return {"root": root, "resources": res, "batch": batch}


def test_clean_hour_passes_every_check(lake) -> None:
    result = dg.materialize(
        [
            *EXTERNAL_ASSETS,
            events,
            device_minute_stats,
            silver_events_quality,
            silver_events_advisories,
            device_minute_stats_quality,
        ],
        partition_key=PARTITION,
        resources=lake["resources"],
    )
    assert result.success
    checks = checks_by_key(result)
    assert set(checks) == {
        "silver/events:contract",
        "silver/events:unique_event_id",
        "silver/events:quarantine_share",
        "silver/events:new_device_types",
        "silver/device_minute_stats:schema",
        "silver/device_minute_stats:unique_device_minute",
    }
    failed = {k: e.metadata for k, e in checks.items() if not e.passed}
    assert not failed
    contract = checks["silver/events:contract"]
    assert contract.partition == PARTITION
    assert contract.metadata["rows_checked"].value == lake["batch"].unique.num_rows
    assert contract.metadata["failures/device_id:not_null"].value == 0


@dg.asset(key=SILVER_EVENTS, partitions_def=HOURLY, deps=[dg.AssetKey(["bronze", "events"])])
def corrupted_events(spark: SparkResource, lake: LakeResource) -> None:
    """Writes the hour's bronze rows to silver as they are: duplicates and a null device_id included."""
    layout = lake.layout
    session = spark.spark_session
    hour_dir = f"{layout.bronze_events}/event_date={DAY}/event_hour=10"
    bronze = session.read.option("basePath", layout.bronze_events).parquet(hour_dir)
    broken = bronze.limit(1).selectExpr("*").drop("device_id")
    broken = broken.withColumn("device_id", F.lit(None).cast("string")).select(*bronze.columns)
    target = f"{layout.silver_events}/event_date={DAY}/event_hour=10"
    shutil.rmtree(target, ignore_errors=True)
    bronze.unionByName(broken).drop("event_date", "event_hour").coalesce(1).write.parquet(target)


def test_corrupted_hour_fails_blocking_checks_and_stops_downstream(lake) -> None:
    result = dg.materialize(
        [*EXTERNAL_ASSETS, corrupted_events, device_minute_stats, silver_events_quality],
        partition_key=PARTITION,
        resources=lake["resources"],
        raise_on_error=False,
    )
    assert not result.success
    assert "silver/events" in materialized(result)
    assert "silver/device_minute_stats" not in materialized(result)  # the blocking check stopped it
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert "silver__device_minute_stats" not in started
    checks = checks_by_key(result)
    unique = checks["silver/events:unique_event_id"]
    assert not unique.passed and unique.blocking
    # bronze holds batch.duplicates extra copies plus the broken row, which copies an id too
    dup_rows = unique.metadata["failures/event_id:unique"].value
    assert dup_rows >= 2 * lake["batch"].duplicates
    assert "duplicate_keys_sample" in unique.metadata
    contract = checks["silver/events:contract"]
    assert not contract.passed
    assert contract.metadata["failures/device_id:not_null"].value == 1
    assert "device_id:not_null" in contract.metadata["failing_rows_sample"].value


@dg.asset(key=GOLD_DAILY_EVENT_DURATION_P95, partitions_def=DAILY)
def corrupted_p95(spark: SparkResource, lake: LakeResource) -> None:
    """A gold partition with one row whose p95 lies above its kept maximum and too few events."""
    rows = pa.table(
        {
            "device_type": ["temperature", "co2"],
            "events_total": pa.array([900, 120], pa.int64()),
            "events_kept": pa.array([890, 120], pa.int64()),
            "outliers_removed": pa.array([10, 0], pa.int64()),
            "mean": [10.0, 5.0],
            "stddev": [1.0, 1.0],
            "p95_event_duration": [12.0, 99.0],
            "min_kept_event_duration": [1.0, 1.0],
            "max_kept_event_duration": [20.0, 9.0],
        }
    )
    session = spark.spark_session
    target = f"{lake.layout.gold_daily_event_duration_p95}/event_date={DAY}"
    shutil.rmtree(target, ignore_errors=True)
    session.createDataFrame(rows.to_pandas()).coalesce(1).write.parquet(target)


def test_gold_checks_pass_on_real_output_and_fail_on_corrupted(lake) -> None:
    res = lake["resources"]
    dg.materialize([*EXTERNAL_ASSETS, events], partition_key=PARTITION, resources=res)
    good = dg.materialize(
        [*EXTERNAL_ASSETS, daily_event_duration_p95, daily_p95_quality], partition_key=DAY, resources=res
    )
    assert good.success
    assert all(e.passed for e in good.get_asset_check_evaluations()), [
        (e.check_name, e.metadata) for e in good.get_asset_check_evaluations() if not e.passed
    ]
    bad = dg.materialize(
        [corrupted_p95, daily_p95_quality], partition_key=DAY, resources=res, raise_on_error=False
    )
    assert not bad.success
    checks = checks_by_key(bad)
    assert (
        checks["gold/daily_event_duration_p95:p95_within_kept_range"]
        .metadata["failures/p95_within_kept_range"]
        .value
        == 1
    )
    assert (
        checks["gold/daily_event_duration_p95:min_distinct_events"]
        .metadata["failures/events_total:greater_than_or_equal_to"]
        .value
        == 1
    )
    assert checks["gold/daily_event_duration_p95:schema"].passed


def test_check_definitions_target_the_fixed_keys() -> None:
    keys = {k.asset_key for c in CHECKS for k in c.check_keys}
    assert keys == {
        SILVER_EVENTS,
        SILVER_DEVICE_MINUTE_STATS,
        GOLD_DAILY_EVENT_DURATION_P95,
        dg.AssetKey(["gold", "daily_device_type_summary"]),
    }
    assert LakeLayout("/x").silver_events.endswith("silver/events")

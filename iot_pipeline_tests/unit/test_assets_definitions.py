"""The asset definitions as an analyst meets them in the UI, and the pure helpers behind the bodies."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone

import dagster as dg
import pytest

from iot_pipeline.assets import ASSETS
from iot_pipeline.assets import keys as K
from iot_pipeline.assets.daily_event_duration_p95 import to_csv
from iot_pipeline.assets.gold_logic import P95_COLUMNS
from iot_pipeline.assets.partitions import DAILY, HOURLY
from iot_pipeline.assets.replay import contiguous
from iot_pipeline.assets.report import hour_table, md_table
from iot_pipeline.assets.windows import days_in, hour_label, hours_in
from iot_pipeline.bindings import default_resources
from iot_pipeline.storage.datasets import hours_where_sql
from iot_pipeline.storage.layout import LakeLayout

UTC = timezone.utc


@pytest.fixture(scope="module")
def graph():
    return dg.Definitions(assets=ASSETS, resources=default_resources()).resolve_asset_graph()


def test_lineage_reads_kafka_bronze_silver_gold(graph) -> None:
    parents = {
        k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys}
        for k in graph.get_all_asset_keys()
    }
    assert parents == {
        "kafka/iot_events": set(),
        "bronze/events": {"kafka/iot_events"},
        "bronze/quarantine": {"kafka/iot_events"},
        "live/device_type_minute_stats": {"kafka/iot_events"},
        "silver/events": {"bronze/events"},
        "silver/event_id_index": {"silver/events"},
        "silver/device_minute_stats": {"silver/events"},
        "gold/daily_event_duration_p95": {"silver/events", "silver/event_id_index"},
        "gold/daily_device_type_summary": {"silver/events"},
    }


def test_every_asset_is_documented_for_the_ui(graph) -> None:
    groups = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        groups[key.to_user_string()] = node.group_name
        assert node.owners == ["team:data-platform"], key
        assert node.description and len(node.description) > 80, key
        if key != K.KAFKA_IOT_EVENTS:
            schema = node.metadata["dagster/column_schema"]
            assert isinstance(schema, dg.TableSchema) and len(schema.columns) >= 4, key
    assert {g for k, g in groups.items() if k.startswith(("kafka", "bronze", "live"))} == {"ingestion"}
    assert {g for k, g in groups.items() if k.startswith("silver")} == {"silver"}
    assert {g for k, g in groups.items() if k.startswith("gold")} == {"gold"}
    assert "kafka" in graph.get(K.KAFKA_IOT_EVENTS).kinds
    assert "stream_to_bronze_job" in graph.get(K.BRONZE_EVENTS).description


def test_materializable_assets_are_partitioned_single_run_and_versioned(graph) -> None:
    for key, partitions in [
        (k, HOURLY) for k in (K.SILVER_EVENTS, K.SILVER_EVENT_ID_INDEX, K.SILVER_DEVICE_MINUTE_STATS)
    ] + [(k, DAILY) for k in K.DAILY_KEYS]:
        node = graph.get(key)
        assert node.is_materializable and node.partitions_def == partitions, key
        assert node.backfill_policy == dg.BackfillPolicy.single_run(), key
        assert node.code_version, key
        assert {"spark", "parquet"} <= set(node.kinds), key
        assert node.automation_condition is None, key  # the sensors decide when things run
    assert graph.get(K.BRONZE_EVENTS).partitions_def == HOURLY
    assert not graph.get(K.BRONZE_EVENTS).is_materializable


def test_a_day_depends_on_its_24_hours(graph) -> None:
    mapping = graph.get_partition_mapping(K.GOLD_DAILY_EVENT_DURATION_P95, K.SILVER_EVENTS)
    upstream = mapping.get_upstream_mapped_partitions_result_for_partitions(
        DAILY.empty_subset().with_partition_keys(["2026-01-05"]), DAILY, HOURLY
    ).partitions_subset
    keys = sorted(upstream.get_partition_keys())
    assert len(keys) == 24 and keys[0] == "2026-01-05-00:00" and keys[-1] == "2026-01-05-23:00"


def test_time_windows_become_hours_and_days() -> None:
    w = dg.TimeWindow(datetime(2026, 1, 1, 22, tzinfo=UTC), datetime(2026, 1, 2, 2, tzinfo=UTC))
    hours = hours_in(w)
    assert [hour_label(h) for h in hours] == [
        "2026-01-01-22:00",
        "2026-01-01-23:00",
        "2026-01-02-00:00",
        "2026-01-02-01:00",
    ]
    assert days_in(dg.TimeWindow(datetime(2026, 1, 30, tzinfo=UTC), datetime(2026, 2, 2, tzinfo=UTC))) == [
        "2026-01-30",
        "2026-01-31",
        "2026-02-01",
    ]
    assert hours_where_sql(hours) == (
        "(event_date = '2026-01-01' AND event_hour IN (22, 23)) OR (event_date = '2026-01-02' AND event_hour IN (0, 1))"
    )
    day = hours_in(dg.TimeWindow(datetime(2026, 1, 3, tzinfo=UTC), datetime(2026, 1, 4, tzinfo=UTC)))
    assert hours_where_sql(day) == "(event_date = '2026-01-03')"
    assert hours_where_sql([]) == "false"


def test_replay_groups_missing_hours_into_contiguous_reads() -> None:
    h = [datetime(2026, 1, 1, x, tzinfo=UTC) for x in (3, 1, 2, 7)]
    assert contiguous(h) == [
        (datetime(2026, 1, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 4, tzinfo=UTC)),
        (datetime(2026, 1, 1, 7, tzinfo=UTC), datetime(2026, 1, 1, 8, tzinfo=UTC)),
    ]


def test_csv_keeps_full_float_precision() -> None:
    values = dict(
        zip(
            P95_COLUMNS,
            ["2026-01-01", "co2", 600, 590, 10, 0.1 + 0.2, 1 / 3, 123.456789012345678, 1.0, 2.0],
            strict=True,
        )
    )
    text = to_csv([values])
    (row,) = list(csv.DictReader(io.StringIO(text)))
    assert float(row["mean"]) == 0.1 + 0.2 and float(row["stddev"]) == 1 / 3
    assert (
        LakeLayout("/lake").daily_p95_csv("2026-01-01")
        == "/lake/exports/daily_event_duration_p95/event_date=2026-01-01.csv"
    )


def test_markdown_tables_escape_and_truncate() -> None:
    assert md_table(["a", "b"], [["x|y", 1.5]]) == "| a | b |\n|---|---|\n| x\\|y | 1.5 |"
    text = hour_table(["h"], [[i] for i in range(50)], limit=48)
    assert text.count("\n| ") == 48 and text.endswith("2 more row(s) not shown.")


def test_checked_datasets_declare_their_columns_once_in_their_models() -> None:
    """The Pandera model is the declaration: the Spark output schema and the UI's columns follow it."""
    from iot_pipeline.assets import models, schemas
    from iot_pipeline.assets.gold_logic import P95_SCHEMA

    spark_columns = [(f.name, f.dataType.simpleString(), f.nullable) for f in P95_SCHEMA.fields]
    dagster_columns = [
        (c.name, c.type, c.constraints.nullable) for c in schemas.DAILY_EVENT_DURATION_P95.columns
    ]
    assert spark_columns == dagster_columns
    assert list(P95_COLUMNS) == list(models.daily_p95_model().columns)
    for schema in (schemas.DAILY_EVENT_DURATION_P95, schemas.DEVICE_MINUTE_STATS):
        assert all(c.description for c in schema.columns)
    by_name = {c.name: c for c in schemas.DEVICE_MINUTE_STATS.columns}
    assert by_name["battery_avg"].constraints.nullable
    assert by_name["battery_avg"].constraints.other == ["in_range(0, 100)"]
    assert by_name["low_battery_events"].description == "Events with battery_level < 20."

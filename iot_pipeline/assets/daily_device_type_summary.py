"""``gold/daily_device_type_summary``: a small daily overview per device type."""

import time

import dagster as dg

from iot_pipeline.assets.gold_logic import daily_device_type_summary as summarize
from iot_pipeline.assets.keys import GOLD_DAILY_DEVICE_TYPE_SUMMARY, SILVER_EVENTS
from iot_pipeline.assets.lake_assets import lake_asset
from iot_pipeline.assets.report import md_table
from iot_pipeline.assets.silver_reader import read_silver_days
from iot_pipeline.assets.windows import days_in
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import SparkResource
from iot_pipeline.storage.datasets import DailyDataset

_SOURCE_COLUMNS = [
    "event_date",
    "device_type",
    "device_id",
    "value",
    "status",
    "battery_level",
    "signal_strength",
]


@lake_asset(GOLD_DAILY_DEVICE_TYPE_SUMMARY, deps=[SILVER_EVENTS], code_version="1")
def daily_device_type_summary(
    context: dg.AssetExecutionContext, spark: SparkResource, lake: LakeResource
) -> dg.MaterializeResult:
    """How each device type did that UTC day: events, reporting devices, value range, statuses.

    From the day's `silver/events`: events (silver rows), distinct devices, mean/min/max of `value`,
    events per status (normal, warning, critical), and events with low battery (< 20 %) or weak
    signal (< -90 dBm). Every device type appears, however few events it had. Parquet,
    partitioned by `event_date`; a run replaces exactly its days.
    """
    t0 = time.monotonic()
    session = spark.spark_session
    layout = lake.layout
    days = days_in(context.partition_time_window)
    silver = read_silver_days(session, layout.silver_events, days, _SOURCE_COLUMNS)
    dataset = DailyDataset(layout.gold_daily_device_type_summary)
    rows = []
    if silver.df is not None:
        result = summarize(silver.df)
        rows = sorted(result.collect(), key=lambda r: (r["event_date"], r["device_type"]))
        if rows:  # a few rows per day: written from the driver in one small file per day
            df = session.createDataFrame(rows, result.schema)
            dataset.write(df.repartition(1))
    dataset.delete_emptied(days, {r["event_date"] for r in rows})
    header = ["event_date", "device_type", "events", "devices", "normal", "warning", "critical"]
    table = md_table(
        header,
        [
            [
                r["event_date"],
                r["device_type"],
                r["events"],
                r["devices"],
                r["normal_events"],
                r["warning_events"],
                r["critical_events"],
            ]
            for r in rows[:100]
        ],
    )
    return dg.MaterializeResult(
        metadata=silver.run_metadata(
            t0,
            dataset.root,
            len(rows),
            **{"dagster/row_count": len(rows)},
            events=sum(r["events"] for r in rows),
            summary=dg.MetadataValue.md(table),
        )
    )

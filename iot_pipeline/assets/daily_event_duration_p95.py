"""``gold/daily_event_duration_p95``: the business's daily analytic, per device type."""

import csv
import io
import time
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import pyarrow as pa
from dagster_aws.s3 import S3Resource

from iot_pipeline.assets import schemas
from iot_pipeline.assets.event_id_index import distinct_ids_by_day
from iot_pipeline.assets.freshness import DAILY_P95_FRESHNESS
from iot_pipeline.assets.gold_logic import (
    MIN_EVENTS,
    P95_ARROW_SCHEMA,
    P95_COLUMNS,
    P95_INPUT_COLUMNS,
    daily_p95_all_types,
    id_groups,
)
from iot_pipeline.assets.keys import (
    GOLD_DAILY_EVENT_DURATION_P95,
    SILVER_EVENT_ID_INDEX,
    SILVER_EVENTS,
)
from iot_pipeline.assets.lake_assets import lake_asset
from iot_pipeline.assets.silver_reader import read_silver_days
from iot_pipeline.assets.windows import days_in
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import SparkResource
from iot_pipeline.storage import parquet_io as pio
from iot_pipeline.storage.datasets import DailyDataset
from iot_pipeline.storage.layout import LakeLayout


def to_csv(rows: list[dict]) -> str:
    """Floats as Python's shortest round-trip repr, so the file validates to full precision."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(P95_COLUMNS)
    for r in rows:
        writer.writerow([repr(v) if isinstance(v, float) else v for v in (r[c] for c in P95_COLUMNS)])
    return buf.getvalue()


def write_outputs(
    layout: LakeLayout, days: list[str], rows: list[dict], s3: S3Resource | None = None
) -> list[str]:
    """Parquet (replacing exactly the run's days) and one CSV per day; returns the CSV paths.

    A few rows per day: written from the run's process with pyarrow, not as a Spark job.
    """
    dataset = DailyDataset(layout.gold_daily_event_duration_p95)
    dataset.write_table(pa.Table.from_pylist(rows, schema=P95_ARROW_SCHEMA))
    dataset.delete_emptied(days, {r["event_date"] for r in rows})
    paths = []
    for day in days:
        path = layout.daily_p95_csv(day)
        # A local file, or one object written through dagster-aws's ``S3Resource`` on an s3a:// lake.
        pio.write_text(
            path, to_csv([r for r in rows if r["event_date"] == day]), s3=s3, content_type="text/csv"
        )
        paths.append(path)
    return paths


@lake_asset(
    GOLD_DAILY_EVENT_DURATION_P95,
    deps=[SILVER_EVENTS, SILVER_EVENT_ID_INDEX],
    code_version="4",
    kinds={"csv"},
    freshness_policy=DAILY_P95_FRESHNESS,  # by 02:00 UTC for the day before (assets/freshness.py)
)
def daily_event_duration_p95(
    context: dg.AssetExecutionContext, spark: SparkResource, lake: LakeResource, s3: S3Resource
) -> dg.MaterializeResult:
    """95th percentile of event_duration per device type and UTC day, after removing outliers.

    Exactly the product rule, from the day's 24 hours of `silver/events`:
    - **Distinct events**: events are counted by distinct `event_id` (`events_total`). Silver is
      unique per hour; whether an id is in two hours of the day is read from
      `silver/event_id_index` when it matches the day's files, else checked from the rows
      (`days_checked_by_event_id_index` in the metadata).
    - Only device types with **at least 500** distinct events that day appear; the others are
      listed in this materialisation's metadata as excluded.
    - **Outliers**: events more than **3 sample standard deviations** (stddev_samp, n - 1) from
      that day's mean event_duration of the type are dropped (`outliers_removed`); an event exactly
      3 standard deviations away is kept.
    - `p95_event_duration` is the **exact** 95th percentile of the remaining events with **linear
      interpolation** between closest ranks (numpy's default definition; not an approximation).

    Written as Parquet partitioned by `event_date` and as one CSV per day (the validation file)
    under `exports/daily_event_duration_p95/event_date=YYYY-MM-DD.csv`.
    """
    t0 = time.monotonic()
    session = spark.spark_session
    layout = lake.layout
    days = days_in(context.partition_time_window)
    silver = read_silver_days(session, layout.silver_events, days, list(P95_INPUT_COLUMNS))
    for day, n in silver.hours_found.items():
        if n < 24:
            context.log.warning(
                f"{day}: only {n} of 24 hours of silver/events exist; the result covers those"
            )
    # The index is read in this process while Spark's first pass runs; the second pass needs it.
    with ThreadPoolExecutor(1, thread_name_prefix="event-id-index") as pool:
        verdicts = pool.submit(distinct_ids_by_day, layout.silver_event_id_index, silver.files_by_hour)
        all_rows = (
            []
            if silver.df is None
            else daily_p95_all_types(silver.df, id_groups(silver.largest_day_bytes), verdicts.result)
        )
        by_index = verdicts.result()
    rows = [r for r in all_rows if r["events_total"] >= MIN_EVENTS]
    excluded = [r for r in all_rows if r["events_total"] < MIN_EVENTS]
    csv_paths = write_outputs(layout, days, rows, s3)

    for day in days:  # per partition: the UI plots p95/<type> across days, a range run included
        context.add_asset_metadata(
            day_metadata(
                [r for r in rows if r["event_date"] == day], [r for r in excluded if r["event_date"] == day]
            ),
            partition_key=day,
        )
    return dg.MaterializeResult(
        metadata=silver.run_metadata(
            t0,
            layout.gold_daily_event_duration_p95,
            len(rows),
            device_types_excluded=len(excluded),
            events_total=sum(r["events_total"] for r in rows),
            outliers_removed=sum(r["outliers_removed"] for r in rows),
            days_checked_by_event_id_index=len(by_index),
            days_with_repeated_event_id=sum(1 for ok in by_index.values() if not ok),
            csv_exports=dg.MetadataValue.json(csv_paths[:31]),
        )
    )


RESULT_SCHEMA = dg.TableSchema(
    columns=[c for c in schemas.DAILY_EVENT_DURATION_P95.columns if c.name != "event_date"]
)
EXCLUDED_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("device_type", "string"),
        dg.TableColumn("events_total", "bigint", description="Distinct event_id of the type that day."),
        dg.TableColumn("why", "string"),
    ]
)


def day_metadata(rows: list[dict], excluded: list[dict]) -> dict[str, object]:
    """One day's materialisation: its result and exclusions as tables, one plottable number per type."""
    return {
        "dagster/row_count": len(rows),
        "result": dg.MetadataValue.table(
            [dg.TableRecord({c.name: r[c.name] for c in RESULT_SCHEMA.columns}) for r in rows],
            RESULT_SCHEMA,
        ),
        "excluded": dg.MetadataValue.table(
            [
                dg.TableRecord(
                    {
                        "device_type": r["device_type"],
                        "events_total": r["events_total"],
                        "why": f"events_total < {MIN_EVENTS}",
                    }
                )
                for r in excluded
            ],
            EXCLUDED_SCHEMA,
        ),
        **{f"p95/{r['device_type']}": float(r["p95_event_duration"]) for r in rows},
    }

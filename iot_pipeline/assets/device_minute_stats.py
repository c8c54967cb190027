"""``silver/device_minute_stats``: per device and minute, from ``silver/events``."""

import time

import dagster as dg
from pyspark.sql import Observation
from pyspark.sql import functions as F

from iot_pipeline.assets.keys import SILVER_DEVICE_MINUTE_STATS, SILVER_EVENTS
from iot_pipeline.assets.lake_assets import lake_asset
from iot_pipeline.assets.silver_logic import device_minute_stats as minute_stats
from iot_pipeline.assets.windows import hours_in
from iot_pipeline.contract.spark_schema import PARTITION_COLUMNS, bronze_schema
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import SparkResource
from iot_pipeline.storage import parquet_io as pio
from iot_pipeline.storage.datasets import HourlyDataset


@lake_asset(SILVER_DEVICE_MINUTE_STATS, deps=[SILVER_EVENTS], code_version="1")
def device_minute_stats(
    context: dg.AssetExecutionContext, spark: SparkResource, lake: LakeResource
) -> dg.MaterializeResult:
    """Per device and 1-minute event-time window: how much it reported and what.

    Built from `silver/events` (deduplicated events), one partition per UTC hour. Columns: event
    count; mean/min/max/sample stddev of `value` and of `event_duration`; the exact median and 95th
    percentile of `event_duration` (linear interpolation, Spark's `percentile`, not an
    approximation); mean battery level and signal strength over events reporting them; and the
    number of events with low battery (< 20 %) or weak signal (< -90 dBm). `window_start` is
    inclusive, `window_end` exclusive. A run replaces exactly its hours.
    """
    t0 = time.monotonic()
    session = spark.spark_session
    layout = lake.layout
    hours = hours_in(context.partition_time_window)
    source = HourlyDataset(layout.silver_events)
    present = [h for h in hours if source.stats(h).files > 0]
    target = HourlyDataset(layout.silver_device_minute_stats)
    rows = events = 0
    written: set[tuple[str, int]] = set()
    if present:
        silver = source.read_present(session, present, bronze_schema())
        obs = Observation("device_minute_stats")
        stats = minute_stats(silver).observe(
            obs,
            F.count(F.lit(1)).alias("rows"),
            F.coalesce(F.sum("events"), F.lit(0)).alias("events"),
            F.collect_set(F.concat_ws("/", "event_date", F.col("event_hour").cast("string"))).alias("hours"),
        )
        out = stats.repartition(len(present), *PARTITION_COLUMNS).sortWithinPartitions(
            *PARTITION_COLUMNS, "device_type", "device_id", "window_start"
        )
        target.write(out)
        m = obs.get
        written = {(day, int(hour)) for day, hour in (key.split("/") for key in m["hours"])}
        rows, events = m["rows"], m["events"]
    missing = [h for h in hours if h not in present]
    if missing:
        context.log.warning(
            f"{len(missing)} hour(s) have no silver/events files: their minute stats are empty"
        )
    target.delete_emptied(hours, written)
    files = pio.EMPTY
    for h in hours:
        files = files + target.stats(h)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "rows_written": rows,
            "events": events,
            "hours": len(hours),
            "hours_without_events": len(missing),
            "files_written": files.files,
            "bytes_written": files.bytes,
            "seconds": round(time.monotonic() - t0, 3),
            "path": layout.silver_device_minute_stats,
        }
    )

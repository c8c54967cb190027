"""A code location that writes a bad silver hour on purpose, for the browser test of a failing check.

The project's assets never write silver rows that fail its blocking checks (they deduplicate and
validate), so the test plays a broken writer: this asset takes the key of ``silver/events`` and
copies an hour of bronze as it is (resent events included). The project's own checks of
``silver/events`` and its own ``silver/device_minute_stats`` run after it, in the test's Dagster
instance, where the UI under test reads them. (No ``from __future__ import annotations``: loaded
with ``dagster asset materialize -f``, the context annotation must be a real class.)
"""

import shutil

import dagster as dg

from iot_pipeline.assets.device_minute_stats import device_minute_stats
from iot_pipeline.assets.external import EXTERNAL_ASSETS
from iot_pipeline.assets.keys import BRONZE_EVENTS, SILVER_EVENTS
from iot_pipeline.assets.partitions import HOURLY
from iot_pipeline.bindings import default_resources
from iot_pipeline.checks.silver import silver_events_quality
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import SparkResource
from iot_pipeline.storage.layout import hour_partition_dir, local_path


@dg.asset(key=SILVER_EVENTS, partitions_def=HOURLY, deps=[BRONZE_EVENTS], group_name="silver")
def broken_events(context: dg.AssetExecutionContext, spark: SparkResource, lake: LakeResource) -> None:
    """Bronze copied to silver without deduplication: the unique_event_id check must fail."""
    layout = lake.layout
    hour = context.partition_time_window.start
    source = hour_partition_dir(layout.bronze_events, hour)
    target = hour_partition_dir(layout.silver_events, hour)
    rows = spark.spark_session.read.parquet(source).drop("ingest_batch")
    shutil.rmtree(local_path(target), ignore_errors=True)
    rows.coalesce(1).write.parquet(target)


defs = dg.Definitions(
    assets=[*EXTERNAL_ASSETS, broken_events, device_minute_stats],
    asset_checks=[silver_events_quality],
    resources=default_resources(),
    executor=dg.in_process_executor,  # one Spark session for the three steps, not one per step
)

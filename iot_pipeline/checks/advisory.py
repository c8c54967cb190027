"""Advisory (WARN, non-blocking) checks of silver/events: signs of trouble that do not make the data wrong.

* ``quarantine_share``: quarantined records over all records of the hour. Quarantined records have no
  trustworthy event time (many are not even JSON), so they are attributed to hours by their Kafka
  timestamp, read from the quarantine dataset's ``kafka_date`` partitions (the day of that timestamp)
  of the hour's day. Valid records are counted by event hour from bronze.
  The two clocks differ by the events' lateness, so the share is an indicator, not an exact ratio.
* ``new_device_types``: device types of the hour that silver/events never had in the preceding
  ``history_days`` days, nor in the configured ``known_device_types``.
"""

from collections.abc import Iterator
from datetime import timedelta

import dagster as dg
from pyspark.sql import functions as F

from iot_pipeline.assets.keys import SILVER_EVENTS
from iot_pipeline.assets.partitions import HOURLY
from iot_pipeline.assets.windows import days_in
from iot_pipeline.checks.reading import read_hours, window_label
from iot_pipeline.checks.specs import check_spec
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import SparkResource
from iot_pipeline.storage.datasets import DailyDataset
from iot_pipeline.storage.layout import LakeLayout

WARN = dg.AssetCheckSeverity.WARN


class AdvisoryConfig(dg.Config):
    max_quarantine_share: float = 0.05
    history_days: int = 7
    known_device_types: list[str] = []


def quarantine_rows(spark, layout: LakeLayout, window: dg.TimeWindow) -> int:
    df = DailyDataset(layout.quarantine_events, column="kafka_date").read(spark, sorted(days_in(window)))
    if df is None:
        return 0
    in_window = (F.col("kafka_timestamp") >= F.lit(window.start)) & (
        F.col("kafka_timestamp") < F.lit(window.end)
    )
    return df.where(in_window).count()


def quarantine_share_result(
    spark, layout: LakeLayout, window: dg.TimeWindow, limit: float
) -> dg.AssetCheckResult:
    bronze = read_hours(spark, layout.bronze_events, window)
    valid = bronze.count() if bronze is not None else 0
    quarantined = quarantine_rows(spark, layout, window)
    total = valid + quarantined
    share = quarantined / total if total else 0.0
    return dg.AssetCheckResult(
        check_name="quarantine_share",
        passed=share <= limit,
        severity=WARN,
        metadata={
            "partitions": window_label(window),
            "bronze_rows": valid,
            "quarantined_rows": quarantined,
            "quarantine_share": share,
            "max_quarantine_share": limit,
        },
    )


def new_device_types_result(
    spark, layout: LakeLayout, window: dg.TimeWindow, history_days: int, known: list[str]
) -> dg.AssetCheckResult:
    current = read_hours(spark, layout.silver_events, window)
    seen_now = (
        {r[0] for r in current.select("device_type").distinct().collect()} if current is not None else set()
    )
    history_window = dg.TimeWindow(window.start - timedelta(days=history_days), window.start)
    past = read_hours(spark, layout.silver_events, history_window)
    seen_before = (
        {r[0] for r in past.select("device_type").distinct().collect()} if past is not None else set()
    )
    baseline = seen_before | set(known)
    new = sorted(t for t in seen_now - baseline if t is not None)
    return dg.AssetCheckResult(
        check_name="new_device_types",
        # Without any baseline every type would be "new": the first hours of a lake only report.
        passed=not new or not baseline,
        severity=WARN,
        metadata={
            "partitions": window_label(window),
            "device_types": len(seen_now),
            "new_device_types": ", ".join(new) or "none",
            "new_device_type_count": len(new) if baseline else 0,
            "baseline": f"{len(seen_before)} type(s) in the previous {history_days} day(s), {len(known)} configured",
        },
    )


@dg.multi_asset_check(
    name="silver_events_advisories",
    specs=[
        check_spec(
            "quarantine_share",
            SILVER_EVENTS,
            HOURLY,
            blocking=False,
            description="Quarantined records (by Kafka timestamp) over all records of the hour stay under "
            "max_quarantine_share (default 5 %). Warns only.",
        ),
        check_spec(
            "new_device_types",
            SILVER_EVENTS,
            HOURLY,
            blocking=False,
            description="Device types not seen in the previous history_days days (default 7) nor in "
            "known_device_types. Warns only.",
        ),
    ],
)
def silver_events_advisories(
    context: dg.AssetCheckExecutionContext, config: AdvisoryConfig, spark: SparkResource, lake: LakeResource
) -> Iterator[dg.AssetCheckResult]:
    window = context.partition_time_window
    session = spark.spark_session
    yield quarantine_share_result(session, lake.layout, window, config.max_quarantine_share)
    yield new_device_types_result(
        session, lake.layout, window, config.history_days, config.known_device_types
    )

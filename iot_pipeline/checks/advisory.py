"""Advisory (WARN, non-blocking) checks of silver/events: signs of trouble that do not make the data wrong.

* ``quarantine_share``: quarantined records over all records of the hour. Quarantined records have no
  trustworthy event time (many are not even JSON), so they are attributed to hours by their Kafka
  timestamp, read from the quarantine dataset's ``kafka_date`` partitions (the day of that timestamp)
  of the hour's day. Valid records are counted by event hour from bronze.
  The two clocks differ by the events' lateness, so the share is an indicator, not an exact ratio.
* ``new_device_types``: device types of the hour that silver/events never had in the preceding
  ``history_days`` days, nor in the configured ``known_device_types``.

Both read in the run's process with pyarrow, not in Spark: row counts from the Parquet footers, the
quarantine's one timestamp column, and silver's ``device_type`` as the files' dictionaries. The
history is read newest hour first and only until every type of the hour has been found, so a usual
hour reads one earlier hour, not seven days.
"""

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds

from iot_pipeline.assets.keys import SILVER_EVENTS
from iot_pipeline.assets.partitions import HOURLY
from iot_pipeline.assets.windows import days_in, hours_in
from iot_pipeline.checks.reading import window_label
from iot_pipeline.checks.specs import check_spec
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.storage import parquet_io as pio
from iot_pipeline.storage.datasets import DailyDataset, HourlyDataset
from iot_pipeline.storage.layout import LakeLayout

WARN = dg.AssetCheckSeverity.WARN


class AdvisoryConfig(dg.Config):
    max_quarantine_share: float = 0.05
    history_days: int = 7
    known_device_types: list[str] = []


def _hour_files(root: str, window: dg.TimeWindow) -> list[str]:
    dataset = HourlyDataset(root)
    return [path for hour in hours_in(window) for path, _ in dataset.files(hour)]


def _utc(moment: datetime) -> pa.Scalar:
    return pa.scalar(moment.astimezone(timezone.utc), pa.timestamp("ns", "UTC"))


def quarantine_rows(layout: LakeLayout, window: dg.TimeWindow) -> int:
    dataset = DailyDataset(layout.quarantine_events, column="kafka_date")
    files = [path for day in days_in(window) for path, _ in dataset.files(day)]
    if not files:
        return 0
    # Spark writes timestamps without a zone (INT96): UTC instants, compared as such.
    kafka_time = pds.field("kafka_timestamp").cast(pa.timestamp("ns", "UTC"))
    in_window = (kafka_time >= _utc(window.start)) & (kafka_time < _utc(window.end))
    return pio.arrow_dataset(files).count_rows(filter=in_window)


def quarantine_share_result(layout: LakeLayout, window: dg.TimeWindow, limit: float) -> dg.AssetCheckResult:
    bronze = _hour_files(layout.bronze_events, window)
    valid = pio.arrow_dataset(bronze).count_rows() if bronze else 0
    quarantined = quarantine_rows(layout, window)
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


def device_types(files: list[str]) -> set[str | None]:
    """Distinct ``device_type`` of some silver files (None for a null), read as dictionaries."""
    if not files:
        return set()
    found: set[str | None] = set()
    for batch in pio.arrow_dataset(files, ["device_type"]).to_batches(columns=["device_type"]):
        found.update(pc.unique(batch.column(0)).to_pylist())
    return found


def _history_newest_first(silver: HourlyDataset, history: dg.TimeWindow) -> Iterator[list[str]]:
    """The files of each hour of ``history`` that has any, newest hour first; one listing per day."""
    hours = set(hours_in(history))
    for day in reversed(days_in(history)):
        by_hour: dict[int, list[str]] = {}
        for hour, path in silver.hour_files(day):
            by_hour.setdefault(hour, []).append(path)
        for hour in sorted(by_hour, reverse=True):
            if datetime.fromisoformat(day).replace(hour=hour, tzinfo=timezone.utc) in hours:
                yield by_hour[hour]


def new_device_types_result(
    layout: LakeLayout, window: dg.TimeWindow, history_days: int, known: list[str]
) -> dg.AssetCheckResult:
    seen_now = device_types(_hour_files(layout.silver_events, window))
    history = dg.TimeWindow(window.start - timedelta(days=history_days), window.start)
    silver = HourlyDataset(layout.silver_events)
    unseen = {t for t in seen_now if t is not None} - set(known)
    seen_before: set[str | None] = set()
    hours_read = 0
    for files in _history_newest_first(silver, history):
        if not unseen and (seen_before or known or not seen_now):
            break  # every type of the hour has been seen before: the rest cannot change the verdict
        hours_read += 1
        seen_before |= device_types(files)
        unseen -= seen_before
    seen_before.discard(None)
    baseline = seen_before | set(known)
    new = sorted(unseen)
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
            "baseline": f"{len(seen_before)} type(s) found in the {hours_read} newest hour(s) with data of "
            f"the previous {history_days} day(s), {len(known)} configured",
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
    context: dg.AssetCheckExecutionContext, config: AdvisoryConfig, lake: LakeResource
) -> Iterator[dg.AssetCheckResult]:
    window = context.partition_time_window
    yield quarantine_share_result(lake.layout, window, config.max_quarantine_share)
    yield new_device_types_result(lake.layout, window, config.history_days, config.known_device_types)

"""``silver/events``: the hour's events, deduplicated, validated and compacted."""

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import dagster as dg
from pydantic import Field
from pyspark import StorageLevel
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from iot_pipeline.assets import event_id_index
from iot_pipeline.assets.freshness import SILVER_HOURLY_FRESHNESS
from iot_pipeline.assets.keys import BRONZE_EVENTS, SILVER_EVENT_ID_INDEX, SILVER_EVENTS
from iot_pipeline.assets.lake_assets import lake_spec, run_settings
from iot_pipeline.assets.replay import replay_hours
from iot_pipeline.assets.report import hour_table, md_table, ts_meta
from iot_pipeline.assets.silver_logic import (
    bronze_columns,
    compact_unique,
    deduplicate,
    epoch_hour,
    is_late,
    valid_event,
)
from iot_pipeline.assets.windows import hour_label, hours_in
from iot_pipeline.contract.rules import rules_fingerprint
from iot_pipeline.contract.spark_schema import PARTITION_COLUMNS, PER_EVENT_COLUMNS, bronze_schema
from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import SparkResource
from iot_pipeline.storage import parquet_io as pio
from iot_pipeline.storage.commits import (
    BATCH_COLUMN,
    REPLAY_BATCH,
    is_visible,
    parse_commit,
    validated_batches,
)
from iot_pipeline.storage.datasets import HourlyDataset, partition_values
from iot_pipeline.storage.layout import LakeLayout

LATE_MARGIN_MINUTES = 15  # also the hourly sensor's default grace period (sensors/settings.py)
REPLAY_LATENESS_MINUTES = 7 * 24 * 60


class SilverEventsConfig(dg.Config):
    late_margin_minutes: int = Field(
        default=LATE_MARGIN_MINUTES,
        description="A row is late when its Kafka timestamp is more than this after its event hour ended.",
    )
    replay_missing_hours: bool = Field(
        default=True, description="Rebuild hours without bronze files from Kafka (batch read)."
    )
    replay_margin_minutes: int = Field(
        default=60,
        description="Replay reads records with Kafka timestamps from this long before the hour; "
        "negative: the whole retained topic.",
    )
    replay_lateness_minutes: int = Field(
        default=REPLAY_LATENESS_MINUTES,
        description="Replay reads records with Kafka timestamps up to this long after the hour ended: "
        "the lateness the pipeline accepts (the hourly sensor re-runs hours up to 7 days back).",
    )
    allow_emptying_hours: bool = Field(
        default=False,
        description="Let the run empty an hour that has silver rows but no input left (no bronze "
        "files, nothing in Kafka). Off: such a run fails and names the hours instead.",
    )
    target_file_mb: int = Field(default=256, description="Target size of a silver Parquet file.")


@dataclass(frozen=True)
class BronzeHour:
    """An hour's bronze files that readers may use, and whether they are all of its files."""

    files: list[tuple[str, int]]
    complete: bool

    @property
    def stats(self) -> pio.FileStats:
        return pio.FileStats(len(self.files), sum(size for _, size in self.files))


def bronze_inputs(dataset: str, hours: list[datetime], committed: int | None) -> dict[datetime, BronzeHour]:
    """Each hour's bronze files that belong to committed batches (see ``storage.commits``)."""
    out = {}
    bronze = HourlyDataset(dataset)
    for h in hours:
        listed = bronze.files(h)
        visible = [f for f in listed if is_visible(f[0], committed)]
        out[h] = BronzeHour(visible, len(visible) == len(listed))
    return out


def read_bronze(spark: SparkSession, dataset: str, inputs: dict[datetime, BronzeHour]) -> DataFrame:
    """Bronze rows of the hours in ``inputs``: whole hour directories where every file is visible (the
    usual case, one listing per hour for Spark), the listed files themselves where a batch is still
    being committed, so a run never reads part of a batch."""
    bronze = HourlyDataset(dataset)
    paths: list[str] = []
    for h, d in bronze.dirs(sorted(inputs)).items():
        paths += [d] if inputs[h].complete else [f for f, _ in inputs[h].files]
    return bronze.read_paths(spark, paths, bronze_schema())


EVENTS_DESCRIPTION = """Every IoT event of the hour exactly once: the analyst's table of record.

One partition per UTC hour of **event time**, read from bronze (what the streaming job landed).
- **Deduplicated** on `event_id`: a resent event keeps the copy that reached Kafka first (smallest
  Kafka timestamp, then partition, then offset).
- **Validated** against the event contract once more (bronze should hold valid rows only; any
  row failing is dropped and counted as `invalid_rows`).
- **Compacted** into a few Parquet files per hour (~256 MB), sorted by device_type, device_id,
  event_timestamp; Hive-partitioned `event_date=YYYY-MM-DD/event_hour=H` like bronze. A run
  replaces exactly its hours.
- **Late rows**: events that reached Kafka more than 15 minutes (configurable) after their hour
  ended; they are in their event hour like any other row, and counted.
- **Missing bronze hour**: rebuilt from Kafka in batch mode and written into bronze
  (`ingest_batch=-1`), so bronze stays the single source (`replayed_hours` in the metadata).
  An hour that has silver rows but no input left is never emptied by accident: the run fails
  and names it, unless `allow_emptying_hours` is set.
- **Only whole micro-batches** are read: batches the stream has not finished committing
  (``_state/stream/bronze_commit.json``) wait for the next run.
- **Event-id index**: the same run writes `silver/event_id_index`, this asset's second output (per
  file: its name, rows and the 64-bit hashes of its event_ids), which lets the daily assets prove a
  day has no event_id in two hours without hashing the day's rows again.
"""
INDEX_DESCRIPTION = """Per silver/events file of the hour: its name, its rows and the 64-bit hashes of its
event_ids (one Parquet file per hour, partitioned like silver).

Written by the same run as `silver/events`, from the read-back of the files just written, so the
daily assets can prove a day has no event_id in two hours without hashing the day's rows again. An
index row is trusted only for the exact file it names: a day whose silver files differ from the
index is checked from its rows. Materialised alone, it is rebuilt from the silver files as they are.
"""
EVENTS_SPEC = lake_spec(
    SILVER_EVENTS,
    deps=[BRONZE_EVENTS],
    code_version="2",
    description=EVENTS_DESCRIPTION,
    freshness_policy=SILVER_HOURLY_FRESHNESS,  # each hour by minute 45 of the next (assets/freshness.py)
)
INDEX_SPEC = lake_spec(
    SILVER_EVENT_ID_INDEX, deps=[SILVER_EVENTS], code_version="1", description=INDEX_DESCRIPTION
)


@dg.multi_asset(
    name="silver__events",  # the op name a single asset had: run config (ops: silver__events) is unchanged
    specs=[EVENTS_SPEC, INDEX_SPEC],
    can_subset=True,
    **run_settings(SILVER_EVENTS),
)
def events(
    context: dg.AssetExecutionContext,
    config: SilverEventsConfig,
    spark: SparkResource,
    lake: LakeResource,
    kafka: KafkaResource,
) -> Iterator[dg.MaterializeResult]:
    """One multi-asset, because the index is a by-product of reading back the files just written.

    Subsettable: the index selected without silver is rebuilt from the silver files as they are;
    silver selected without the index leaves the index's hours as they were. That is safe because
    the daily asset trusts an index row only for the file it names (a stale hour's day is checked
    from its rows), and the UI shows the index as stale.
    """
    t0 = time.monotonic()
    session = spark.spark_session
    layout = lake.layout
    hours = hours_in(context.partition_time_window)
    with_index = SILVER_EVENT_ID_INDEX in context.selected_asset_keys
    if SILVER_EVENTS not in context.selected_asset_keys:
        silver = HourlyDataset(layout.silver_events)
        present = [h for h in hours if silver.stats(h).files > 0]
        per_hour = _index_and_stats(
            session, layout, hours, present, config.late_margin_minutes, write_index=True
        )
        yield _index_result(layout, hours, per_hour, t0)
        return
    if not with_index:
        context.log.warning(
            "silver/event_id_index is not selected: its hours stay as they were (stale where this run "
            "rewrites silver); the daily assets check those days from their rows"
        )
    committed = parse_commit(pio.read_text(layout.bronze_commit))
    inputs = bronze_inputs(layout.bronze_events, hours, committed)
    missing = [h for h in hours if not inputs[h].files]
    columns = bronze_columns()

    replayed: list[datetime] = []
    replay_scanned = 0
    if missing and config.replay_missing_hours:
        context.log.info(f"No bronze files for {len(missing)} hour(s): replaying them from Kafka into bronze")
        margin = (
            timedelta(minutes=config.replay_margin_minutes) if config.replay_margin_minutes >= 0 else None
        )
        lateness = timedelta(minutes=config.replay_lateness_minutes)
        df, replay_scanned = replay_hours(session, kafka, missing, margin, columns, lateness=lateness)
        if df is not None:
            # Into bronze, so bronze stays the one source: a later run that finds stream files for
            # the hour as well reads both, and deduplication keeps each event once.
            HourlyDataset(layout.bronze_events).write(
                df.withColumn(BATCH_COLUMN, F.lit(REPLAY_BATCH)), BATCH_COLUMN
            )
            inputs.update(bronze_inputs(layout.bronze_events, missing, committed))
            replayed = [h for h in missing if inputs[h].files]

    silver = HourlyDataset(layout.silver_events)
    no_input = [h for h in hours if not inputs[h].files]
    vanished = [h for h in no_input if silver.stats(h).files > 0]
    if vanished and not config.allow_emptying_hours:
        labels = [hour_label(h) for h in vanished]
        raise dg.Failure(
            description=f"{len(vanished)} hour(s) have silver rows but no input left (no bronze files"
            + (", nothing in Kafka" if config.replay_missing_hours else ", replay off")
            + f"): {', '.join(labels[:10])}{' ...' if len(labels) > 10 else ''}. Refusing to empty them: "
            "restore their bronze files, or set allow_emptying_hours: true in this asset's run config "
            "to empty them on purpose.",
            metadata={"hours": dg.MetadataValue.json(labels)},
        )
    if no_input:
        context.log.warning(f"No input for {len(no_input)} hour(s): they are empty in silver")
    present = [h for h in hours if inputs[h].files]
    bronze_stats = {h: inputs[h].stats for h in hours}
    target = config.target_file_mb * 1024 * 1024
    files_per_hour = {partition_values(h): max(1, math.ceil(bronze_stats[h].bytes / target)) for h in present}

    rows_read = invalid_rows = 0
    written: set[tuple[str, int]] = set()
    if present:
        rows_read, invalid_rows, written = _write_hours(
            session, layout, {h: inputs[h] for h in present}, files_per_hour, exact=False
        )
    emptied = silver.delete_emptied(hours, written)

    written_hours = [h for h in hours if partition_values(h) in written]
    per_hour = _index_and_stats(
        session, layout, hours, written_hours, config.late_margin_minutes, write_index=with_index
    )
    repeated = [h for h, s in per_hour.items() if s["ids"] < s["rows"]]
    if repeated:
        # Copies of an event_id that disagree on device or event time (see compact_unique), or a
        # 64-bit hash collision: those hours again with the exact plan, from the same files.
        context.log.warning(
            f"{len(repeated)} hour(s) kept copies of one event_id with different device or event time; "
            f"deduplicating them on event_id alone: {', '.join(hour_label(h) for h in repeated[:10])}"
        )
        again = {h: BronzeHour(inputs[h].files, complete=False) for h in repeated}
        _write_hours(
            session,
            layout,
            again,
            {k: files_per_hour[k] for k in map(partition_values, repeated)},
            exact=True,
        )
        per_hour.update(
            _index_and_stats(
                session, layout, repeated, repeated, config.late_margin_minutes, write_index=with_index
            )
        )
    rows_written = sum(s["rows"] for s in per_hour.values())
    out_stats = {h: silver.stats(h) for h in hours}
    late_rows = sum(r["late"] for r in per_hour.values())
    rows = []
    for h in hours:
        s = per_hour.get(h, {})
        rows.append(
            [
                hour_label(h),
                "bronze (replayed from Kafka)" if h in replayed else "bronze",
                s.get("rows", 0),
                s.get("late", 0),
                out_stats[h].files,
                f"{out_stats[h].bytes / 1e6:.1f}",
                s.get("min_ts", ""),
                s.get("max_ts", ""),
            ]
        )
    min_ts = min((s["min_epoch"] for s in per_hour.values()), default=None)
    max_ts = max((s["max_epoch"] for s in per_hour.values()), default=None)
    metadata: dict[str, object] = {
        "dagster/row_count": rows_written,
        "rows_read": rows_read,
        "invalid_rows": invalid_rows,
        "duplicates_removed": rows_read - invalid_rows - rows_written,
        "rows_written": rows_written,
        "late_rows": late_rows,
        "late_margin_minutes": config.late_margin_minutes,
        "files_written": sum(s.files for s in out_stats.values()),
        "bytes_written": sum(s.bytes for s in out_stats.values()),
        "bronze_files_read": sum(bronze_stats[h].files for h in present),
        "bronze_bytes_read": sum(bronze_stats[h].bytes for h in present),
        "hours": len(hours),
        "replayed_from_kafka": bool(replayed),
        "replayed_hours": dg.MetadataValue.json([hour_label(h) for h in replayed]),
        "replay_records_scanned": replay_scanned,
        "emptied_hours": len(emptied),
        "per_hour": dg.MetadataValue.md(
            hour_table(
                ["hour", "source", "rows", "late rows", "files", "MB", "min event time", "max event time"],
                rows,
            )
        ),
        "seconds": round(time.monotonic() - t0, 3),
        "path": layout.silver_events,
    }
    if min_ts is not None:
        metadata["min_event_time"] = ts_meta(min_ts)
        metadata["max_event_time"] = ts_meta(max_ts)
    if replayed:
        metadata["replay_note"] = dg.MetadataValue.md(
            md_table(
                ["hour", "source"],
                [
                    [hour_label(h), "replayed from Kafka into bronze (the stream had no files for it)"]
                    for h in replayed
                ],
            )
        )
    yield dg.MaterializeResult(asset_key=SILVER_EVENTS, metadata=metadata)
    if with_index:
        yield _index_result(layout, hours, per_hour, t0)


def _index_result(
    layout: LakeLayout, hours: list[datetime], per_hour: dict[datetime, dict], t0: float
) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        asset_key=SILVER_EVENT_ID_INDEX,
        metadata={
            "dagster/row_count": sum(s["files"] for s in per_hour.values()),
            "event_ids": sum(s["rows"] for s in per_hour.values()),
            "hours": len(hours),
            "hours_indexed": len(per_hour),
            "seconds": round(time.monotonic() - t0, 3),
            "path": layout.silver_event_id_index,
        },
    )


def _write_hours(
    spark: SparkSession,
    layout: LakeLayout,
    inputs: dict[datetime, BronzeHour],
    files_per_hour: dict[tuple[str, int], int],
    *,
    exact: bool,
) -> tuple[int, int, set[tuple[str, int]]]:
    """Validate, deduplicate and compact ``inputs`` into silver, replacing exactly the hours written.

    Returns rows read, rows failing the contract and the (date, hour) keys that got rows.
    """
    obs_in = Observation("silver_events_in")
    obs_out = Observation("silver_events_out")
    bronze = read_bronze(spark, layout.bronze_events, inputs)
    trusted = validated_batches(pio.read_text(layout.bronze_commit), rules_fingerprint())
    ok = valid_event(trusted=trusted if BATCH_COLUMN in bronze.columns else None)
    # The rules are evaluated once per row, into _ok, which both the count and the filter read.
    raw = (
        bronze.withColumn("_ok", ok)
        .select(*bronze_columns(), "_ok")
        .observe(obs_in, F.count(F.lit(1)).alias("rows"), F.count_if(~F.col("_ok")).alias("invalid"))
    )
    valid = raw.filter("_ok").drop("_ok")
    devices = bronze.select("device_type", "device_id").distinct()
    # Valid rows sit in their event time's partition, so its epoch hour names the partition: a long
    # per row into the set (a string per row was nearly a tenth of the write, docs/performance.md).
    out = compact_unique(deduplicate(valid) if exact else valid, files_per_hour, devices).observe(
        obs_out, F.collect_set(epoch_hour()).alias("hours")
    )
    HourlyDataset(layout.silver_events).write(out, keep_order=True, plain_columns=PER_EVENT_COLUMNS)
    m_in = obs_in.get
    written = {partition_values(datetime.fromtimestamp(h * 3600, timezone.utc)) for h in obs_out.get["hours"]}
    return m_in["rows"], m_in["invalid"], written


def _index_and_stats(
    spark: SparkSession,
    layout: LakeLayout,
    hours: list[datetime],
    written_hours: list[datetime],
    late_margin_minutes: int,
    *,
    write_index: bool,
) -> dict[datetime, dict]:
    """Files, rows, late rows, distinct ids and event-time range per written hour, from one read of
    the files just written (event_id and three sorted columns); with ``write_index``, the run's hours
    of the event-id index are replaced from the same read."""
    index = layout.silver_event_id_index
    if not written_hours:
        if write_index:
            event_id_index.replace_hours(index, None, hours, set())
        return {}
    df = HourlyDataset(layout.silver_events).read_present(spark, written_hours, bronze_schema())
    files = event_id_index.per_file(
        df,
        F.count_if(is_late(late_margin_minutes)).alias("late"),
        F.min("event_timestamp").alias("min_ts"),
        F.max("event_timestamp").alias("max_ts"),
    ).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        stats = (
            files.groupBy(*PARTITION_COLUMNS)
            .agg(
                F.count(F.lit(1)).alias("files"),
                F.sum(event_id_index.ROWS).alias("rows"),
                F.sum("late").alias("late"),
                F.size(F.array_distinct(F.flatten(F.collect_list(event_id_index.HASHES)))).alias("ids"),
                F.min("min_ts").alias("min_ts"),
                F.max("max_ts").alias("max_ts"),
            )
            .select(
                *PARTITION_COLUMNS,
                "files",
                "rows",
                "late",
                "ids",
                (F.unix_micros("min_ts") / 1e6).alias("min_epoch"),
                (F.unix_micros("max_ts") / 1e6).alias("max_epoch"),
                F.date_format("min_ts", "yyyy-MM-dd HH:mm:ss").alias("min_ts"),
                F.date_format("max_ts", "yyyy-MM-dd HH:mm:ss").alias("max_ts"),
            )
            .collect()
        )
        by_key = {(r["event_date"], r["event_hour"]): r for r in stats}
        if write_index:
            event_id_index.replace_hours(index, files, hours, set(by_key))
    finally:
        files.unpersist()
    out = {}
    for h in written_hours:
        r = by_key.get(partition_values(h))
        if r is not None:
            out[h] = r.asDict()
    return out

"""The Spark transformations behind the silver assets, free of Dagster so they test on their own.

Dedup rule: within one event hour, rows with the same ``event_id`` are one event; the row kept is the
first to reach Kafka, i.e. the smallest ``(kafka_timestamp, kafka_partition, kafka_offset)`` (null
timestamps last, ``ingest_time`` as a last tiebreak). A resend carries the same event time, hence
the same hour, so deduplicating per hour is exact and independent of how many hours a run covers.
"""

from __future__ import annotations

from datetime import datetime, timezone

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from iot_pipeline.contract.rules import EventTimeRules, any_violation, value_rules
from iot_pipeline.contract.spark_schema import PARTITION_COLUMNS, bronze_schema
from iot_pipeline.storage.commits import BATCH_COLUMN

SILVER_SORT = ("device_type", "device_id", "event_timestamp")
LOW_BATTERY_PCT = 20.0
WEAK_SIGNAL_DBM = -90.0
HOUR_MICROS = 3_600_000_000


def epoch_hour() -> Column:
    """The event's UTC hour as hours since the epoch: one number for what the partition says in two."""
    return F.floor(F.unix_micros("event_timestamp") / HOUR_MICROS)


def bronze_columns() -> list[str]:
    return [f.name for f in bronze_schema().fields]


def valid_event(time_rules: EventTimeRules | None = None, trusted: tuple[int, int] | None = None) -> Column:
    """Every value rule of the contract (the stream's own, event time included), and: the row sits in
    its event-time partition.

    The stream already quarantines invalid records, so this normally drops nothing; it is defensive
    (bronze written by an older version or under other rules, a file copied in by hand), and the
    count it drops is reported. Unlike the stream, it judges event time against
    ``least(kafka_timestamp, ingest_time)``. ``trusted``: the bronze batches (first, last) the stream
    validated under these same rules (``storage.commits``); their rows skip the value rules (about a
    quarter of a busy hour's compaction, docs/performance.md) but not the partition check.
    """
    broken = F.expr(any_violation(value_rules(time_rules)))
    # UTC hours since the epoch on both sides: arithmetic, where formatting the date per row cost a
    # tenth of the compaction's first stage (docs/performance.md).
    hour = F.col("event_hour")
    in_partition = hour.between(0, 23) & (
        epoch_hour() == F.unix_date(F.try_to_date("event_date")) * 24 + hour
    )
    if trusted is not None:
        # Spark's generated code stops at the first true branch of an OR: trusted rows skip the rules.
        broken = ~F.coalesce(F.col(BATCH_COLUMN).between(*trusted), F.lit(False)) & broken
    return F.coalesce(~broken & in_partition, F.lit(False))


KAFKA_ORDER = ("kafka_timestamp", "kafka_partition", "kafka_offset", "ingest_time")


def _first_to_kafka() -> list[Column]:
    return [F.col(c).asc_nulls_last() for c in KAFKA_ORDER]


def deduplicate(df: DataFrame) -> DataFrame:
    """Keep one row per (event hour, event_id): the first to reach Kafka (see module docstring).

    The exact plan on its own shuffle by event_id; :func:`compact_unique` is the fast plan that
    assumes the copies of an event agree on device and event time, and this is its fallback.
    """
    w = Window.partitionBy(*PARTITION_COLUMNS, "event_id").orderBy(*_first_to_kafka())
    return df.withColumn("_rn", F.row_number().over(w)).filter(F.col("_rn") == 1).drop("_rn")


def is_late(late_margin_minutes: int) -> Column:
    """Reached Kafka more than the margin after its event hour ended (missed that hour's first run)."""
    deadline = F.date_trunc("hour", "event_timestamp") + F.make_dt_interval(
        mins=F.lit(60 + late_margin_minutes)
    )
    return F.coalesce(F.col("kafka_timestamp") > deadline, F.lit(False))


def murmur3_int(value: int, seed: int = 42) -> int:
    """Spark's ``hash()`` of an int column (Murmur3 x86_32, seed 42): where hash partitioning puts it."""
    m = 0xFFFFFFFF

    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (32 - r))) & m

    k1 = rotl((value & m) * 0xCC9E2D51 & m, 15) * 0x1B873593 & m
    h1 = (rotl(seed ^ k1, 13) * 5 + 0xE6546B64) & m
    h1 ^= 4
    h1 ^= h1 >> 16
    h1 = h1 * 0x85EBCA6B & m
    h1 ^= h1 >> 13
    h1 = h1 * 0xC2B2AE35 & m
    h1 ^= h1 >> 16
    return h1 - (1 << 32) if h1 & 0x80000000 else h1


def task_ids(tasks: int) -> list[int]:
    """For each task ``i`` an int that Spark's hash partitioning into ``tasks`` partitions sends to
    partition ``i``, so that every (hour, bucket) gets a task of its own (hashing the bucket numbers
    themselves lets two buckets of an hour collide in one task, hence one file)."""
    found: dict[int, int] = {}
    v = 0
    while len(found) < tasks:
        found.setdefault(murmur3_int(v) % tasks, v)
        v += 1
    return [found[i] for i in range(tasks)]


def device_ranks(devices: DataFrame) -> DataFrame:
    """``(device_type, device_id, _rank)``: each device's place in the silver sort order.

    ``devices`` holds the run's distinct devices (a few thousand to a few hundred thousand rows); one
    task ranks them. See :func:`compact_unique` for why a rank is worth an extra pass.
    """
    return devices.withColumn("_rank", F.row_number().over(Window.orderBy("device_type", "device_id")))


def sort_key() -> Column:
    """One long in silver's order within an hour: the device's rank, then the microsecond in the hour."""
    return F.col("_rank").cast("long") * (1 << 32) + F.pmod(
        F.unix_micros("event_timestamp"), F.lit(HOUR_MICROS)
    )


def compact_unique(
    df: DataFrame, files_per_hour: dict[tuple[str, int], int], devices: DataFrame
) -> DataFrame:
    """Deduplicate and lay rows out as few files per hour, in one shuffle and one sort.

    An hour that needs ``k`` files is split by a hash of ``device_id`` into ``k`` buckets, so each
    device lives in one file and the files of an hour are about the same size; each (hour, bucket) is
    one task, hence one file, sorted by (device_type, device_id, event_timestamp). Within that order
    the copies of an event sent again (same device and event time) are adjacent, so the first to
    reach Kafka is kept by a window over the same sort: no shuffle by event_id. Copies of one event_id
    that disagree on device or event time survive here; the caller finds them from the event-id
    index it writes next (fewer distinct ids than rows) and falls back to :func:`deduplicate`.

    The sort compares one long first (:func:`sort_key`, from the ranks of ``devices``, the run's
    distinct devices): Spark's sort decides on a 64-bit prefix of its first key and only looks at the
    rows when two prefixes are equal. With the strings first, that prefix would be the constant
    ``event_date`` and every comparison would walk the rows (docs/performance.md). Since the rows are
    not sorted by the partition columns, the caller writes them with ``keep_order`` (each task holds
    one hour, so the order survives the write).
    """
    tasks = max(1, sum(files_per_hour.values()))
    if tasks == 1:
        task = F.lit(0)
    else:
        # Per hour since the epoch (dense over the run's range): its first task and its file count.
        epoch_hours = {
            int(datetime.strptime(d, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp()) // 3600 + h: n
            for (d, h), n in files_per_hour.items()
        }
        low, high = min(epoch_hours), max(epoch_hours)
        first, counts, offset = [], [], 0
        for e in range(low, high + 1):
            first.append(offset)
            counts.append(epoch_hours.get(e, 1))
            offset += epoch_hours.get(e, 0)
        index = (epoch_hour() - low + 1).cast("int")

        def at(values: list[int], i: Column) -> Column:
            return F.coalesce(F.try_element_at(F.array(*map(F.lit, values)), i), F.lit(0))

        slot = at(first, index) + F.pmod(F.xxhash64("device_id"), F.greatest(at(counts, index), F.lit(1)))
        task = at(task_ids(tasks), (slot + 1).cast("int"))
    # _task last in the window's keys: the sort (the window's required order) then starts with _key.
    unique = ["_key", "event_id", "_task"]
    w = Window.partitionBy(*unique).orderBy(*_first_to_kafka())
    return (
        df.join(F.broadcast(device_ranks(devices)), ["device_type", "device_id"], "left")
        .withColumn("_task", task.cast("int"))
        .withColumn("_key", sort_key())
        .repartition(tasks, "_task")
        .sortWithinPartitions(*unique, *_first_to_kafka())
        .withColumn("_rn", F.row_number().over(w))
        .filter(F.col("_rn") == 1)
        .select(*df.columns)
    )


def device_minute_stats(events: DataFrame) -> DataFrame:
    """Per device and 1-minute event-time window; percentiles exact (Spark's ``percentile``)."""
    d, v = F.col("event_duration"), F.col("value")
    window_start = F.date_trunc("minute", "event_timestamp")
    pct = F.percentile(d, F.array(F.lit(0.5), F.lit(0.95)))
    return (
        events.withColumn("window_start", window_start)
        .groupBy(*PARTITION_COLUMNS, "device_id", "device_type", "window_start")
        .agg(
            F.count(F.lit(1)).alias("events"),
            F.avg(v).alias("value_avg"),
            F.min(v).alias("value_min"),
            F.max(v).alias("value_max"),
            F.stddev_samp(v).alias("value_stddev"),
            F.avg(d).alias("duration_avg"),
            F.min(d).alias("duration_min"),
            F.max(d).alias("duration_max"),
            F.stddev_samp(d).alias("duration_stddev"),
            pct.alias("_pct"),
            F.avg("battery_level").alias("battery_avg"),
            F.avg("signal_strength").alias("signal_avg"),
            F.count_if(F.col("battery_level") < LOW_BATTERY_PCT).alias("low_battery_events"),
            F.count_if(F.col("signal_strength") < WEAK_SIGNAL_DBM).alias("weak_signal_events"),
        )
        .select(
            *PARTITION_COLUMNS,
            "device_id",
            "device_type",
            "window_start",
            (F.col("window_start") + F.make_dt_interval(mins=F.lit(1))).alias("window_end"),
            "events",
            "value_avg",
            "value_min",
            "value_max",
            "value_stddev",
            "duration_avg",
            "duration_min",
            "duration_max",
            "duration_stddev",
            F.col("_pct")[0].alias("duration_p50"),
            F.col("_pct")[1].alias("duration_p95"),
            "battery_avg",
            "signal_avg",
            "low_battery_events",
            "weak_signal_events",
        )
    )

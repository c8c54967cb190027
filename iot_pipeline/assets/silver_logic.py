"""The Spark transformations behind the silver assets, free of Dagster so they test on their own.

Dedup rule: within one event hour, rows with the same ``event_id`` are one event; the row kept is the
first to reach Kafka, i.e. the smallest ``(kafka_timestamp, kafka_partition, kafka_offset)`` (null
timestamps last, ``ingest_time`` as a last tiebreak). A resend carries the same event time, hence
the same hour, so deduplicating per hour is exact and independent of how many hours a run covers.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from iot_pipeline.contract.rules import EventTimeRules, any_violation, value_rules
from iot_pipeline.contract.spark_schema import PARTITION_COLUMNS, bronze_schema

SILVER_SORT = ("device_type", "device_id", "event_timestamp")
LOW_BATTERY_PCT = 20.0
WEAK_SIGNAL_DBM = -90.0


def bronze_columns() -> list[str]:
    return [f.name for f in bronze_schema().fields]


def valid_event(time_rules: EventTimeRules | None = None) -> Column:
    """Every value rule of the contract (the stream's own, event time included), and: the row sits in
    its event-time partition.

    The stream already quarantines invalid records, so this normally drops nothing; it is defensive
    (bronze written by an older version, a file copied in by hand), and the count it drops is reported.
    Unlike the stream, it judges event time against ``least(kafka_timestamp, ingest_time)``.
    """
    broken = F.expr(any_violation(value_rules(time_rules)))
    in_partition = (F.date_format("event_timestamp", "yyyy-MM-dd") == F.col("event_date")) & (
        F.hour("event_timestamp") == F.col("event_hour")
    )
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


def compact_unique(df: DataFrame, files_per_hour: dict[tuple[str, int], int]) -> DataFrame:
    """Deduplicate and lay rows out as few files per hour, in one shuffle and one sort.

    An hour that needs ``k`` files is split by a hash of ``device_id`` into ``k`` buckets, so each
    device lives in one file and the files of an hour are about the same size; each (hour, bucket) is
    one task, hence one file, sorted by (device_type, device_id, event_timestamp). Within that order
    the copies of an event sent again (same device and event time) are adjacent, so the first to
    reach Kafka is kept by a window over the same sort: no shuffle by event_id. Copies of one event_id
    that disagree on device or event time survive here; the caller finds them from the event-id
    index it writes next (fewer distinct ids than rows) and falls back to :func:`deduplicate`.
    """
    hours = sorted(files_per_hour)
    tasks = max(1, sum(files_per_hour.values()))
    if tasks == 1:
        task = F.lit(0)
    else:
        base, offset = {}, 0
        for d, h in hours:
            base[f"{d}/{h}"], offset = offset, offset + files_per_hour[(d, h)]
        key = F.concat_ws("/", "event_date", F.col("event_hour").cast("string"))
        first = F.element_at(F.create_map(*[x for k, b in base.items() for x in (F.lit(k), F.lit(b))]), key)
        counts = F.create_map(
            *[x for (d, h), n in files_per_hour.items() for x in (F.lit(f"{d}/{h}"), F.lit(n))]
        )
        slot = F.coalesce(first, F.lit(0)) + F.pmod(
            F.xxhash64("device_id"), F.coalesce(F.element_at(counts, key), F.lit(1))
        )
        ids = F.array(*[F.lit(i) for i in task_ids(tasks)])
        task = F.element_at(ids, (slot + 1).cast("int"))
    unique = [*PARTITION_COLUMNS, "_task", *SILVER_SORT, "event_id"]
    w = Window.partitionBy(*unique).orderBy(*_first_to_kafka())
    return (
        df.withColumn("_task", task.cast("int"))
        .repartition(tasks, "_task")
        .sortWithinPartitions(*unique, *_first_to_kafka())
        .withColumn("_rn", F.row_number().over(w))
        .filter(F.col("_rn") == 1)
        .drop("_rn", "_task")
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

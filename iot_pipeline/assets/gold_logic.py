"""The Spark transformations behind the daily (gold) assets, free of Dagster.

The daily p95 rule, exactly as the product spec states it, per UTC day and device type:

1. *Distinct events*: the day's silver rows deduplicated on ``event_id`` (silver is already unique per
   hour; the day is checked as a whole so the count stays exact even if one id appeared in two hours).
   The row kept is again the first to reach Kafka, and the event counts for that row's device type.
   ``events_total`` is the number of distinct event_id of the type that day.
2. Only device types with ``events_total >= 500`` are reported.
3. ``mean`` and ``stddev`` are the mean and the *sample* standard deviation (n - 1) of the
   event_duration of all those events; an event is an outlier when ``|event_duration - mean| > 3 *
   stddev`` (an event exactly 3 stddev away is kept).
4. ``p95_event_duration`` is the exact 95th percentile of the kept events with linear interpolation
   between closest ranks, numpy's default method: position ``h = 0.95 (n - 1)`` among the sorted
   kept durations, interpolated between ranks floor(h) and ceil(h) (verified against numpy and
   DuckDB's ``quantile_cont``).

How, in two passes over the day's rows, neither of which sorts or shuffles them (docs/assets.md,
"How the daily p95 is computed"):

* **Histogram**: one aggregate per (day, type, bin) where ``bin = floor(16 log2(duration))`` is
  monotone in the duration (Java's ``log`` is semi-monotonic); ``p95_selection`` turns it into the
  exact mean and stddev and names the few bins whose rows decide the p95.
* **Candidates and repeats**: one aggregate per day that collects the rows of those bins and, for
  the days ``event_id_index`` could not decide, the 64-bit hashes of the day's event_ids; a day
  whose hashes are all distinct has no duplicate, and its p95 is finished from the collected rows.
  A day with a repeated hash (a real duplicate or, rarely, a collision) is computed again from
  ``distinct_events``, which resolves the copies on the actual event_id.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema

from iot_pipeline.assets.event_id_index import id_hash
from iot_pipeline.assets.models import MIN_EVENTS, daily_p95_model, spark_schema
from iot_pipeline.assets.p95_selection import BIN, KEY, DayTypeHistogram, histograms, values_by_bin
from iot_pipeline.assets.silver_logic import LOW_BATTERY_PCT, WEAK_SIGNAL_DBM
from iot_pipeline.contract.event import STATUSES

# Bins per doubling of the duration (about 4.4 % wide). More bins mean fewer candidate rows but a
# larger histogram, whose hash table stops fitting the CPU caches: 16 is the faster side of both.
BINS_PER_OCTAVE = 16
# Durations <= 0 (zero is valid) share one bin below every positive one (those are >= -17,200).
_NON_POSITIVE_BIN = -(2**31)
# Silver bytes per group of the repeat check: each group's event_id hashes form one array.
ID_GROUP_BYTES = 128 * 2**20

# The daily p95's output as Spark writes it; declared once, in its Pandera model.
P95_SCHEMA = spark_schema(daily_p95_model())
P95_COLUMNS = tuple(P95_SCHEMA.fieldNames())
P95_ARROW_SCHEMA = to_arrow_schema(P95_SCHEMA)  # the asset writes its few rows with pyarrow

# What daily_p95_all_types reads from silver.
P95_INPUT_COLUMNS = (
    "event_date",
    "event_id",
    "device_type",
    "event_duration",
    "kafka_topic",
    "kafka_timestamp",
    "kafka_partition",
    "kafka_offset",
)

_G = ["event_date", "device_type"]
# A silver row's identity: a Kafka record lands in exactly one hour of one day.
_ROW_KEY = ["event_date", "kafka_topic", "kafka_partition", "kafka_offset"]


def distinct_events(silver: DataFrame) -> DataFrame:
    """The silver rows minus the later copies of an event_id already seen the same day.

    ``silver`` needs event_date, event_id, the Kafka coordinates and kafka_timestamp. A hash
    aggregate over every row: the slow path, for days on which the fast check saw a repeat.
    """
    spark = silver.sparkSession
    hashed = silver.withColumn("_h", id_hash())
    repeated = hashed.groupBy("_h").count().filter(F.col("count") > 1).select("_h").collect()
    if not repeated:
        return silver
    hashes = spark.createDataFrame([(r["_h"],) for r in repeated], "_h long")
    first = Window.partitionBy("event_date", "event_id").orderBy(
        F.col("kafka_timestamp").asc_nulls_last(), "kafka_partition", "kafka_offset"
    )
    later_copies = (
        hashed.join(F.broadcast(hashes), "_h", "left_semi")
        .withColumn("_n", F.row_number().over(first))
        .filter(F.col("_n") > 1)
        .select(*_ROW_KEY)
    )
    drop = spark.createDataFrame(later_copies.collect(), later_copies.schema)
    return silver.join(F.broadcast(drop), _ROW_KEY, "left_anti")


def duration_bin(duration: Column) -> Column:
    """Monotone non-decreasing in the duration: bins never interleave, so ranks add up across bins.

    An int, not a long: Spark compiles a test against a few hundred int literals to a ``switch``,
    where a long goes through a hash set of boxed values.
    """
    return F.when(duration > 0, F.floor(F.log2(duration) * BINS_PER_OCTAVE).cast("int")).otherwise(
        F.lit(_NON_POSITIVE_BIN).cast("int")
    )


def id_groups(largest_day_bytes: int) -> int:
    """How many groups per day the repeat check splits the day's event_id hashes into."""
    return max(1, math.ceil(largest_day_bytes / ID_GROUP_BYTES))


# The days event_id_index has decided, or a function returning them (called after the first pass, so
# that the index can be read while that pass runs).
Verdicts = Mapping[str, bool] | Callable[[], Mapping[str, bool]]


def daily_p95_all_types(
    silver: DataFrame, id_groups_per_day: int = 1, distinct_by_index: Verdicts | None = None
) -> list[dict]:
    """One dict per (day, device type) *including* types below the threshold (p95 fields None there).

    ``silver`` needs event_date, event_id, device_type, event_duration and the Kafka coordinates.
    ``distinct_by_index`` holds the days ``event_id_index`` has decided (True: no repeated id hash),
    or returns them when called; only the other days' ids are checked here. Callers split the result on
    ``events_total >= MIN_EVENTS``. Sorted by day and type.
    """
    groups, repeat_days = _p95(silver, id_groups_per_day, distinct_by_index or {})
    if repeat_days:
        again = distinct_events(silver.filter(F.col("event_date").isin(sorted(repeat_days))))
        fixed, _ = _p95(again, None, {})
        groups = [g for g in groups if g.day not in repeat_days] + fixed
    return [g.result() for g in sorted(groups, key=lambda g: (g.day, g.device_type))]


def _p95(
    silver: DataFrame, id_groups_per_day: int | None, decided: Verdicts
) -> tuple[list[DayTypeHistogram], set[str]]:
    """The two passes; ``id_groups_per_day=None`` skips the repeat check (the rows are distinct)."""
    d = F.col("event_duration")
    events = silver.select(*_G, d, duration_bin(d).alias(BIN))
    histogram = events.groupBy(*_G, BIN).agg(
        F.count(F.lit(1)).alias("n"),
        F.sum(d).alias("sum"),
        F.var_pop(d).alias("var"),
        F.min(d).alias("min"),
        F.max(d).alias("max"),
    )
    groups = histograms(histogram.withColumn(KEY, _bin_key()).toArrow())
    reported = [g for g in groups if g.events_total >= MIN_EVENTS]
    wanted = _is_candidate(reported)
    days = {g.day for g in groups}
    decided = decided() if callable(decided) else decided
    undecided = sorted(days - decided.keys())
    if id_groups_per_day is None or not undecided:
        rows, repeat_days = _candidates(events, wanted), set()
    else:
        only = None if len(undecided) == len(days) else undecided
        rows, repeat_days = _candidates_and_repeats(silver, wanted, id_groups_per_day, only)
    if id_groups_per_day is not None:
        repeat_days |= {day for day in days if decided.get(day) is False}
    values = values_by_bin(rows)
    for g in reported:
        if g.day not in repeat_days:
            g.rank(values.get((g.day, g.device_type), {}))
    return groups, repeat_days


def _bin_key() -> Column:
    """One 64-bit id per (day, type, bin): the candidate filter's last test is a set lookup of one long."""
    return F.xxhash64("event_date", "device_type", BIN)


def _is_candidate(reported: list[DayTypeHistogram]) -> Column:
    """Whether a row is in a bin that its (day, type) needs fetched.

    The cheapest test first, each on the rows the one before let through (``&`` short-circuits in
    Spark's generated code): the bin among all needed bins (an int ``switch``), the bin among those
    its type needs on any day (a type's distribution changes little from day to day: in the
    benchmark 1.3 times the needed rows pass), and only then the exact (day, type, bin) key, a
    hash. A key collision only lets a few extra rows through; ``values_by_bin`` files rows by their
    real bin, and a (day, type) ranks only the bins it asked for.
    """
    by_type: dict[str, set[int]] = {}
    keys: set[int] = set()
    for g in reported:
        by_type.setdefault(g.device_type, set()).update(int(b) for b in g.bins_to_fetch())
        keys.update(int(k) for k in g.keys_to_fetch())
    if not keys:
        return F.lit(False)
    b, device_type = F.col(BIN), F.col("device_type")
    (first, first_bins), *rest = sorted(by_type.items())
    per_type = F.when(device_type == first, b.isin(sorted(first_bins)))
    for typ, bins in rest:
        per_type = per_type.when(device_type == typ, b.isin(sorted(bins)))
    every_bin = sorted(set().union(*by_type.values()))
    return b.isin(every_bin) & per_type.otherwise(False) & _bin_key().isin(sorted(keys))


def _candidates(events: DataFrame, wanted: Column) -> pa.Table:
    return events.filter(wanted).select(*_G, BIN, "event_duration").toArrow()


def _candidates_and_repeats(
    silver: DataFrame, wanted: Column, id_groups_per_day: int, only_days: list[str] | None
) -> tuple[pa.Table, set[str]]:
    """One pass: the candidate rows, and the days (of ``only_days``, default all) on which an
    event_id hash occurs more than once.

    Per (day, id group) a plain list of the hashes, whose distinct count is taken once at the end:
    no per-id hash table and no shuffle of every row, only one row per (task, day, group).
    """
    d = F.col("event_duration")
    h = id_hash()
    if only_days is not None:
        h = F.when(F.col("event_date").isin(only_days), h)
    keyed = silver.select(*_G, d, duration_bin(d).alias(BIN), h.alias("_h"))
    row = F.when(wanted, F.struct("device_type", BIN, "event_duration"))
    per_group = (
        keyed.groupBy("event_date", F.pmod("_h", F.lit(id_groups_per_day)).alias("_g"))
        .agg(
            F.count("_h").alias("rows"),
            F.size(F.array_distinct(F.collect_list("_h"))).alias("ids"),
            F.collect_list(row).alias("candidates"),
        )
        .toArrow()
    )
    repeat_days = {
        day
        for day, rows, ids in zip(
            *(per_group[c].to_pylist() for c in ("event_date", "rows", "ids")), strict=True
        )
        if rows != ids
    }
    nested = per_group["candidates"]
    flat = pc.list_flatten(nested)
    day = pc.take(per_group["event_date"], pc.list_parent_indices(nested))
    rows = pa.table(
        {
            "event_date": day,
            "device_type": pc.struct_field(flat, "device_type"),
            BIN: pc.struct_field(flat, BIN),
            "event_duration": pc.struct_field(flat, "event_duration"),
        }
    )
    return rows, repeat_days


def daily_device_type_summary(silver: DataFrame) -> DataFrame:
    status = F.col("status")
    return silver.groupBy("event_date", "device_type").agg(
        F.count(F.lit(1)).alias("events"),
        F.countDistinct("device_id").alias("devices"),
        F.avg("value").alias("value_avg"),
        F.min("value").alias("value_min"),
        F.max("value").alias("value_max"),
        *(F.count_if(status == s).alias(f"{s}_events") for s in STATUSES),
        F.count_if(F.col("battery_level") < LOW_BATTERY_PCT).alias("low_battery_events"),
        F.count_if(F.col("signal_strength") < WEAK_SIGNAL_DBM).alias("weak_signal_events"),
    )

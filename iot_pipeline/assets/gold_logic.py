"""The Spark transformations behind the daily (gold) assets, free of Dagster.

The daily p95 rule, exactly as the product spec states it, per UTC day and device type:

1. *Distinct events*: the day's silver rows deduplicated on ``event_id`` (silver is already unique per
   hour; this pass over the whole day keeps the count exact even if one id appeared in two hours).
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

How, in three passes over the day's rows and without sorting them (docs/assets.md, "How the daily
p95 is computed"):

* **Duplicates**: the rows are clustered by a 64-bit hash of (day, event_id); only the rows of a hash
  seen twice can be copies, and those few are resolved exactly on the real event_id.
* **Histogram**: one aggregate per (day, type, bin) where ``bin = floor(64 log2(duration))`` is
  monotone in the duration (Java's ``log`` is semi-monotonic), with count, sum, population
  variance, min and max per bin. The day's mean and sample stddev follow exactly from those
  (Chan's parallel combination); so does, from each bin's min and max, whether a bin lies wholly
  inside, wholly outside, or across the 3-sigma bounds.
* **Ranks**: only the rows of the bins that straddle a bound or can hold the p95 ranks are fetched;
  their exact order gives the two values around the 95th percentile position.

The driver combines a few hundred thousand histogram rows at most (numpy); every pass over the
events themselves is Spark.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

MIN_EVENTS = 500
SIGMAS = 3.0
P95 = 0.95
# Bins per doubling of the duration: about 1.1 % wide, so the ranks pass reads a few rows per group.
BINS_PER_OCTAVE = 64
# Durations <= 0 (zero is valid) share one bin below every positive one.
_NON_POSITIVE_BIN = -(2**40)

P95_COLUMNS = (
    "event_date",
    "device_type",
    "events_total",
    "events_kept",
    "outliers_removed",
    "mean",
    "stddev",
    "p95_event_duration",
    "min_kept_event_duration",
    "max_kept_event_duration",
)

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

    ``silver`` needs event_date, event_id, the Kafka coordinates and kafka_timestamp.
    """
    spark = silver.sparkSession
    hashed = silver.withColumn("_h", F.xxhash64("event_date", "event_id"))
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
    """Monotone non-decreasing in the duration: bins never interleave, so ranks add up across bins."""
    return F.when(duration > 0, F.floor(F.log2(duration) * BINS_PER_OCTAVE)).otherwise(
        F.lit(_NON_POSITIVE_BIN).cast("long")
    )


def daily_p95_all_types(silver: DataFrame) -> list[dict]:
    """One dict per (day, device type) *including* types below the threshold (p95 fields None there).

    ``silver`` needs event_date, event_id, device_type, event_duration and the Kafka coordinates.
    Callers split the result on ``events_total >= MIN_EVENTS``. Sorted by day and type.
    """
    d = F.col("event_duration")
    events = distinct_events(silver).select(*_G, d, duration_bin(d).alias("_bin"))
    histogram = events.groupBy(*_G, "_bin").agg(
        F.count(F.lit(1)).alias("n"),
        F.sum(d).alias("sum"),
        F.var_pop(d).alias("var"),
        F.min(d).alias("min"),
        F.max(d).alias("max"),
    )
    groups = _groups(histogram.toArrow())
    reported = [g for g in groups if g.events_total >= MIN_EVENTS]
    fetch = [(g.day, g.device_type, int(b)) for g in reported for b in g.bins_to_fetch()]
    if fetch:
        wanted = events.sparkSession.createDataFrame(
            fetch, "event_date string, device_type string, _bin long"
        )
        # The bin set first: a cheap filter on one long column before the join on the group's strings.
        some_group_wants = F.col("_bin").isin(sorted({b for _, _, b in fetch}))
        rows = (
            events.filter(some_group_wants)
            .join(F.broadcast(wanted), [*_G, "_bin"])
            .select(*_G, "_bin", d)
            .toArrow()
        )
        values = _values_by_bin(rows)
        for g in reported:
            g.rank(values.get((g.day, g.device_type), {}))
    return [g.result() for g in groups]


@dataclass
class _Group:
    """One (day, type): its histogram, sorted by bin, and what the rule derives from it."""

    day: str
    device_type: str
    bins: np.ndarray
    n: np.ndarray
    min: np.ndarray
    max: np.ndarray
    mean: float
    stddev: float
    kept: dict | None = None

    @property
    def events_total(self) -> int:
        return int(self.n.sum())

    def _bounds(self) -> tuple[float, float]:
        if not self.stddev > 0:  # every duration equal (or one event): nothing is an outlier
            return -math.inf, math.inf
        return self.mean - SIGMAS * self.stddev, self.mean + SIGMAS * self.stddev

    def _split(self) -> tuple[np.ndarray, np.ndarray]:
        """Bins wholly inside the bounds, and bins across one."""
        lo, hi = self._bounds()
        inside = (self.min >= lo) & (self.max <= hi)
        outside = (self.max < lo) | (self.min > hi)
        return inside, ~inside & ~outside

    def bins_to_fetch(self) -> np.ndarray:
        """Bins across a bound, and the inside bins that can hold a p95 rank whatever those hold."""
        inside, across = self._split()
        uncertain = int(self.n[across].sum())
        known = int(self.n[inside].sum())
        first = math.floor(P95 * (known - 1)) - uncertain
        last = math.ceil(P95 * (known + uncertain - 1))
        counts = np.where(inside, self.n, 0)
        before = np.cumsum(counts) - counts  # inside rows in earlier bins
        candidates = inside & (before <= last) & (before + counts - 1 >= first)
        return self.bins[across | candidates]

    def rank(self, fetched: dict[int, np.ndarray]) -> None:
        """The kept count, p95 and kept extremes, from the histogram and the fetched bins' rows."""
        lo, hi = self._bounds()
        inside, across = self._split()
        kept_rows = {}
        counts = np.where(inside, self.n, 0)
        for i in np.flatnonzero(across):
            v = fetched[int(self.bins[i])]
            kept_rows[i] = np.sort(v[(v >= lo) & (v <= hi)])
            counts[i] = len(kept_rows[i])
        total = int(counts.sum())
        upto = np.cumsum(counts)

        def at(rank: int) -> float:
            i = int(np.searchsorted(upto, rank, side="right"))
            rows = kept_rows.get(i)
            if rows is None:
                rows = np.sort(fetched[int(self.bins[i])])
            return float(rows[rank - (upto[i] - counts[i])])

        nonempty = np.flatnonzero(counts)
        first, last = nonempty[0], nonempty[-1]
        lo_rank, hi_rank = _ranks(total)
        self.kept = {
            "events_kept": total,
            "p95": _lerp(at(lo_rank), at(hi_rank), P95 * (total - 1) - lo_rank),
            "min": float(kept_rows[first][0]) if first in kept_rows else float(self.min[first]),
            "max": float(kept_rows[last][-1]) if last in kept_rows else float(self.max[last]),
        }

    def result(self) -> dict:
        """A P95_COLUMNS row; the outlier and p95 fields are None for a group that was not ranked."""
        row = {
            "event_date": self.day,
            "device_type": self.device_type,
            "events_total": self.events_total,
            "events_kept": None,
            "outliers_removed": None,
            "mean": self.mean,
            "stddev": self.stddev,
            "p95_event_duration": None,
            "min_kept_event_duration": None,
            "max_kept_event_duration": None,
        }
        if self.kept is not None:
            row.update(
                events_kept=self.kept["events_kept"],
                outliers_removed=self.events_total - self.kept["events_kept"],
                p95_event_duration=self.kept["p95"],
                min_kept_event_duration=self.kept["min"],
                max_kept_event_duration=self.kept["max"],
            )
        return row


def _groups(histogram: pa.Table) -> list[_Group]:
    """Per (day, type), the histogram sorted by bin, with the exact mean and sample stddev."""
    t = histogram.sort_by([("event_date", "ascending"), ("device_type", "ascending"), ("_bin", "ascending")])
    if t.num_rows == 0:
        return []
    days = t["event_date"].to_numpy(zero_copy_only=False)
    types = t["device_type"].to_numpy(zero_copy_only=False)
    col = {c: t[c].to_numpy() for c in ("_bin", "n", "sum", "var", "min", "max")}
    starts = np.flatnonzero(np.r_[True, (days[1:] != days[:-1]) | (types[1:] != types[:-1])])
    out = []
    for a, b in zip(starts, np.r_[starts[1:], t.num_rows], strict=True):
        n = col["n"][a:b].astype(np.int64)
        total = int(n.sum())
        mean = float(col["sum"][a:b].sum() / total)
        bin_mean = col["sum"][a:b] / n
        m2 = float((n * col["var"][a:b] + n * (bin_mean - mean) ** 2).sum())
        stddev = math.sqrt(m2 / (total - 1)) if total > 1 else math.nan
        out.append(
            _Group(
                str(days[a]),
                str(types[a]),
                col["_bin"][a:b],
                n,
                col["min"][a:b],
                col["max"][a:b],
                mean,
                stddev,
            )
        )
    return out


def _values_by_bin(rows: pa.Table) -> dict[tuple[str, str], dict[int, np.ndarray]]:
    out: dict[tuple[str, str], dict[int, list[float]]] = {}
    for day, dtype, b, v in zip(
        *(rows[c].to_pylist() for c in ("event_date", "device_type", "_bin", "event_duration")), strict=True
    ):
        out.setdefault((day, dtype), {}).setdefault(b, []).append(v)
    return {k: {b: np.asarray(v, dtype=np.float64) for b, v in bins.items()} for k, bins in out.items()}


def _ranks(n: int) -> tuple[int, int]:
    """The 0-based ranks around the p95 position of n sorted values."""
    pos = P95 * (n - 1)
    return math.floor(pos), math.ceil(pos)


def _lerp(a: float, b: float, t: float) -> float:
    """numpy's linear interpolation (``numpy.lib._function_base_impl._lerp``), for bit-identical results."""
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


def daily_device_type_summary(silver: DataFrame) -> DataFrame:
    status = F.col("status")
    return silver.groupBy("event_date", "device_type").agg(
        F.count(F.lit(1)).alias("events"),
        F.countDistinct("device_id").alias("devices"),
        F.avg("value").alias("value_avg"),
        F.min("value").alias("value_min"),
        F.max("value").alias("value_max"),
        F.count_if(status == "normal").alias("normal_events"),
        F.count_if(status == "warning").alias("warning_events"),
        F.count_if(status == "critical").alias("critical_events"),
        F.count_if(F.col("battery_level") < 20.0).alias("low_battery_events"),
        F.count_if(F.col("signal_strength") < -90.0).alias("weak_signal_events"),
    )

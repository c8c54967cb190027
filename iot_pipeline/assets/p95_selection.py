"""The driver's half of the daily p95: from a (day, type)'s duration histogram to the exact p95.

Pure numpy over small inputs (one row per histogram bin, and the few event rows of the bins this
module asks for); the passes over the events themselves are Spark (``gold_logic``).

A bin is a range of durations; bins never interleave, so ranks add up across bins in bin order.
Each bin carries its count, sum, population variance, min and max. From those the day's mean and
sample standard deviation follow exactly (Chan's parallel combination), and so does, from each
bin's min and max, whether a bin lies wholly inside the 3-sigma bounds, wholly outside, or across
one. Only the rows of the bins across a bound, and of the inside bins that can hold the p95 ranks
whatever the bins across hold, are needed to finish exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

SIGMAS = 3.0
P95 = 0.95

# Histogram columns as gold_logic's histogram pass names them.
BIN, KEY, COUNT, SUM, VAR, MIN, MAX = "_bin", "_key", "n", "sum", "var", "min", "max"

Values = dict[int, np.ndarray]  # bin -> the durations of its rows


@dataclass
class DayTypeHistogram:
    """One (day, type): its histogram, sorted by bin, and what the rule derives from it."""

    day: str
    device_type: str
    bins: np.ndarray
    keys: np.ndarray  # one id per bin, as the Spark pass computes it for the bin's rows
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

    def _needed(self) -> np.ndarray:
        """Bins across a bound, and the inside bins that can hold a p95 rank whatever those hold."""
        inside, across = self._split()
        uncertain = int(self.n[across].sum())
        known = int(self.n[inside].sum())
        first = math.floor(P95 * (known - 1)) - uncertain
        last = math.ceil(P95 * (known + uncertain - 1))
        counts = np.where(inside, self.n, 0)
        before = np.cumsum(counts) - counts  # inside rows in earlier bins
        candidates = inside & (before <= last) & (before + counts - 1 >= first)
        return across | candidates

    def bins_to_fetch(self) -> np.ndarray:
        return self.bins[self._needed()]

    def keys_to_fetch(self) -> np.ndarray:
        return self.keys[self._needed()]

    def rank(self, fetched: Values) -> None:
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


def histograms(table: pa.Table) -> list[DayTypeHistogram]:
    """Per (day, type), the histogram sorted by bin, with the exact mean and sample stddev."""
    t = table.sort_by([("event_date", "ascending"), ("device_type", "ascending"), (BIN, "ascending")])
    if t.num_rows == 0:
        return []
    days = t["event_date"].to_numpy(zero_copy_only=False)
    types = t["device_type"].to_numpy(zero_copy_only=False)
    col = {c: t[c].to_numpy() for c in (BIN, KEY, COUNT, SUM, VAR, MIN, MAX)}
    out = []
    for a, b in _runs(days, types):
        n = col[COUNT][a:b].astype(np.int64)
        total = int(n.sum())
        mean = float(col[SUM][a:b].sum() / total)
        bin_mean = col[SUM][a:b] / n
        m2 = float((n * col[VAR][a:b] + n * (bin_mean - mean) ** 2).sum())
        stddev = math.sqrt(m2 / (total - 1)) if total > 1 else math.nan
        out.append(
            DayTypeHistogram(
                str(days[a]),
                str(types[a]),
                col[BIN][a:b],
                col[KEY][a:b],
                n,
                col[MIN][a:b],
                col[MAX][a:b],
                mean,
                stddev,
            )
        )
    return out


def values_by_bin(rows: pa.Table) -> dict[tuple[str, str], Values]:
    """Fetched rows (event_date, device_type, _bin, event_duration) grouped by (day, type) and bin."""
    if rows.num_rows == 0:
        return {}
    t = rows.sort_by([("event_date", "ascending"), ("device_type", "ascending"), (BIN, "ascending")])
    days = t["event_date"].to_numpy(zero_copy_only=False)
    types = t["device_type"].to_numpy(zero_copy_only=False)
    bins = t[BIN].to_numpy()
    durations = t["event_duration"].to_numpy()
    out: dict[tuple[str, str], Values] = {}
    for a, b in _runs(days, types, bins):
        out.setdefault((str(days[a]), str(types[a])), {})[int(bins[a])] = durations[a:b]
    return out


def _runs(*columns: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of equal values across the (sorted) columns."""
    size = len(columns[0])
    change = np.zeros(size - 1, dtype=bool)
    for c in columns:
        change |= c[1:] != c[:-1]
    starts = np.flatnonzero(np.r_[True, change])
    return list(zip(starts.tolist(), [*starts[1:].tolist(), size], strict=True))


def _ranks(n: int) -> tuple[int, int]:
    """The 0-based ranks around the p95 position of n sorted values."""
    pos = P95 * (n - 1)
    return math.floor(pos), math.ceil(pos)


def _lerp(a: float, b: float, t: float) -> float:
    """numpy's linear interpolation (``numpy.lib._function_base_impl._lerp``), for bit-identical results."""
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t

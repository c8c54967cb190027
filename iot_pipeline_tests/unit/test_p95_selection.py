"""The driver's half of the daily p95 on histograms built here with numpy, against numpy's answer.

The Spark passes only aggregate and filter; whether the bins named for fetching always suffice, and
the ranks come out exact, is this module's logic, tried here on many shapes at once.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from iot_pipeline.assets.p95_selection import BIN, KEY, histograms, values_by_bin
from iot_pipeline.testing.bronze import reference_rule

BINS_PER_OCTAVE = 16


def _bins(x: np.ndarray) -> np.ndarray:
    safe = np.where(x > 0, x, 1.0)
    return np.where(x > 0, np.floor(np.log2(safe) * BINS_PER_OCTAVE), -(2**31)).astype(np.int32)


def _histogram(groups: dict[tuple[str, str], np.ndarray]) -> tuple[pa.Table, pa.Table]:
    """The histogram pass's output and every row, as gold_logic's Spark passes shape them."""
    hist, rows = [], []
    for (day, typ), x in groups.items():
        b = _bins(x)
        for v in np.unique(b):
            sel = x[b == v]
            hist.append(
                {
                    "event_date": day,
                    "device_type": typ,
                    BIN: int(v),
                    KEY: hash((day, typ, int(v))),
                    "n": len(sel),
                    "sum": float(sel.sum()),
                    "var": float(sel.var()),
                    "min": float(sel.min()),
                    "max": float(sel.max()),
                }
            )
        rows += [
            {"event_date": day, "device_type": typ, BIN: int(v), "event_duration": float(d)}
            for v, d in zip(b, x, strict=True)
        ]
    return pa.Table.from_pylist(hist), pa.Table.from_pylist(rows)


def _shapes() -> dict[tuple[str, str], np.ndarray]:
    rng = np.random.default_rng(42)
    shapes = {
        "gamma": rng.gamma(2.0, 50.0, 3000).round(3),
        "lognormal": rng.lognormal(3, 1.5, 5000).round(2),
        "ties": np.repeat([1.0, 2.0, 3.0, 250.0], [300, 300, 300, 20]),
        "constant": np.full(700, 0.1),
        "zeros-and-negatives": np.concatenate([np.zeros(400), -rng.random(50), rng.random(600)]),
        "one-far-outlier": np.concatenate([np.linspace(0, 1, 5000), [1e5]]),
        "bimodal": np.concatenate([rng.normal(10, 1, 2000), rng.normal(1000, 5, 100)]),
        "two-events": np.array([3.0, 4.0]),
    }
    return {("2026-05-0" + str(1 + i % 2), name): x for i, (name, x) in enumerate(shapes.items())}


def test_the_fetched_bins_give_numpys_p95_exactly() -> None:
    groups = _shapes()
    hist, rows = _histogram(groups)
    found = histograms(hist)
    assert [(g.day, g.device_type) for g in found] == sorted(groups)
    wanted = {int(k) for g in found for k in g.keys_to_fetch()}
    key_of = {(r["event_date"], r["device_type"], r[BIN]): r[KEY] for r in hist.to_pylist()}
    fetched = rows.filter(
        pa.array([key_of[(r["event_date"], r["device_type"], r[BIN])] in wanted for r in rows.to_pylist()])
    )
    assert fetched.num_rows < rows.num_rows / 3  # the point of the histogram: few rows leave Spark
    values = values_by_bin(fetched)
    for g in found:
        g.rank(values.get((g.day, g.device_type), {}))
        got, want = g.result(), reference_rule(groups[(g.day, g.device_type)])
        assert got["outliers_removed"] == want["events_total"] - want["events_kept"], g.device_type
        for col, value in want.items():
            assert got[col] == pytest.approx(value, rel=1e-9, abs=1e-12), (g.device_type, col)


def test_an_unranked_group_reports_its_count_and_no_p95() -> None:
    hist, _ = _histogram({("2026-05-01", "small"): np.arange(10.0)})
    [g] = histograms(hist)
    row = g.result()
    assert row["events_total"] == 10 and row["mean"] == pytest.approx(4.5)
    assert row["p95_event_duration"] is None and row["events_kept"] is None


def test_no_rows_make_no_groups() -> None:
    empty, _ = _histogram({})
    schema = pa.schema(
        [("event_date", pa.string()), ("device_type", pa.string())]
        + [(c, pa.int64()) for c in (BIN, KEY, "n")]
        + [(c, pa.float64()) for c in ("sum", "var", "min", "max")]
    )
    assert histograms(schema.empty_table()) == [] and empty.num_rows == 0
    assert values_by_bin(pa.table({"event_date": [], "device_type": [], BIN: [], "event_duration": []})) == {}

"""``daily_p95_all_types`` on real Spark, on day shapes the generated lakes never produce.

Silver is unique on event_id per hour, so the generated lakes (whose resends keep their event time)
never reach the day-level dedup; here one id sits in two hours. The other cases probe the histogram
selection of the p95 ranks: heavy ties, a constant day, and groups whose p95 ranks straddle two bins.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from iot_pipeline.assets.gold_logic import P95_INPUT_COLUMNS, daily_p95_all_types
from iot_pipeline.contract.spark_schema import bronze_schema
from iot_pipeline.testing.bronze import reference_rule

pytestmark = pytest.mark.spark

DAY = "2026-04-02"
NEXT_DAY = "2026-04-03"
T0 = datetime(2026, 4, 2, tzinfo=timezone.utc)


def _silver(spark: SparkSession, rows: list[dict]):
    """The silver columns the daily p95 reads, typed as silver types them."""
    schema = T.StructType([f for f in bronze_schema().fields if f.name in P95_INPUT_COLUMNS])
    return spark.createDataFrame([{c: r.get(c, "iot-events") for c in schema.names} for r in rows], schema)


def _rows(
    device_type: str, durations, *, start_offset: int = 0, prefix: str = "0000", day: str = DAY
) -> list[dict]:
    return [
        {
            "event_date": day,
            "event_hour": i % 24,
            "event_id": f"{prefix}{i:04x}-0000-4000-8000-{start_offset + i:012x}",
            "device_type": device_type,
            "event_duration": float(d),
            "kafka_timestamp": T0 + timedelta(seconds=i),
            "kafka_partition": 0,
            "kafka_offset": start_offset + i,
        }
        for i, d in enumerate(durations)
    ]


def _check(got: dict, want: dict) -> None:
    for col in ("events_total", "events_kept"):
        assert got[col] == want[col], col
    for col in ("mean", "stddev", "p95_event_duration", "min_kept_event_duration", "max_kept_event_duration"):
        assert got[col] == pytest.approx(want[col], rel=1e-9, abs=1e-12), col


@pytest.mark.parametrize(
    ("id_groups", "by_index"),
    [
        pytest.param(1, None, id="rows-checked"),
        pytest.param(3, None, id="rows-checked-3-id-groups"),
        # The clean day decided by the event-id index, the repeat day still checked from its rows.
        pytest.param(1, {NEXT_DAY: True}, id="one-day-by-index"),
        pytest.param(1, {DAY: False, NEXT_DAY: True}, id="both-days-by-index"),
    ],
)
def test_an_event_id_in_two_hours_counts_once_as_its_first_copy(
    spark: SparkSession, id_groups: int, by_index: dict[str, bool] | None
) -> None:
    rng = np.random.default_rng(5)
    x = rng.gamma(2.0, 50.0, 600).round(3)
    rows = _rows("a", x)
    # Resends of ten events, in other hours, later in Kafka and with absurd durations: kept, they would
    # be outliers and change every statistic.
    resends = []
    for n, r in enumerate(rows[:10]):
        resends.append(
            r
            | {
                "event_hour": (r["event_hour"] + 5) % 24,
                "event_duration": 1e6,
                "kafka_timestamp": r["kafka_timestamp"] + timedelta(hours=2),
                "kafka_offset": 10_000 + n,
            }
        )
    # The same id under another type counts for the type of its first copy only.
    resends.append(
        rows[10] | {"device_type": "b", "kafka_offset": 20_000, "kafka_timestamp": T0 + timedelta(hours=3)}
    )
    # The next day has no repeat: its result comes from the first pass, the repeat day's from the second.
    y = rng.gamma(3.0, 20.0, 800).round(3)
    clean = _rows("a", y, day=NEXT_DAY, prefix="0002")
    out = daily_p95_all_types(_silver(spark, rows + resends + clean), id_groups, by_index)
    assert [(r["event_date"], r["device_type"]) for r in out] == [(DAY, "a"), (NEXT_DAY, "a")]
    _check(out[0], reference_rule(x))
    _check(out[1], reference_rule(y))
    assert out[0]["outliers_removed"] == out[0]["events_total"] - out[0]["events_kept"]


def test_types_below_500_distinct_events_carry_no_p95(spark: SparkSession) -> None:
    rows = _rows("small", np.arange(499.0)) + _rows("big", np.arange(500.0), start_offset=1000, prefix="0001")
    out = {r["device_type"]: r for r in daily_p95_all_types(_silver(spark, rows))}
    assert out["small"]["events_total"] == 499 and out["small"]["p95_event_duration"] is None
    _check(out["big"], reference_rule(np.arange(500.0)))


@pytest.mark.parametrize(
    "durations",
    [
        pytest.param(np.repeat([1.0, 2.0, 3.0, 250.0], [300, 300, 300, 20]), id="ties"),
        pytest.param(np.full(700, 0.1), id="constant"),
        pytest.param(np.concatenate([np.linspace(0, 1, 5000), [1e5]]), id="dense-uniform-with-outlier"),
        pytest.param(np.random.default_rng(9).lognormal(3, 1.5, 20_000).round(2), id="long-tail"),
    ],
)
def test_p95_equals_numpy_on_hard_shapes(spark: SparkSession, durations: np.ndarray) -> None:
    [got] = daily_p95_all_types(_silver(spark, _rows("t", durations)))
    _check(got, reference_rule(durations))

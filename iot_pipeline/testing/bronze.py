"""Synthetic bronze data with known ground truth, and an independent numpy reference of the daily p95.

Shared by the tests and the benchmarks (both import it from here): the generator is vectorised
(numpy/pyarrow), so a benchmark can write millions of rows in seconds, and its ground truth (the
first copy of every event, the duplicate and late counts) is what silver and gold must reproduce.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

BRONZE_ARROW_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("device_id", pa.string()),
        ("device_type", pa.string()),
        ("event_timestamp", pa.timestamp("us", tz="UTC")),
        ("event_duration", pa.float64()),
        ("value", pa.float64()),
        ("unit", pa.string()),
        ("status", pa.string()),
        ("battery_level", pa.float64()),
        ("signal_strength", pa.float64()),
        ("location", pa.string()),
        ("firmware_version", pa.string()),
        ("kafka_topic", pa.string()),
        ("kafka_partition", pa.int32()),
        ("kafka_offset", pa.int64()),
        ("kafka_timestamp", pa.timestamp("us", tz="UTC")),
        ("ingest_time", pa.timestamp("us", tz="UTC")),
    ]
)
_US = np.int64(1_000_000)
_HOUR_US = 3600 * _US


@dataclass
class BronzeBatch:
    """Bronze rows (duplicates included, in shuffled order) and the ground truth behind them."""

    rows: pa.Table  # BRONZE_ARROW_SCHEMA + event_date (str) + event_hour (int)
    unique: pa.Table  # the first copy of every event: what silver must hold
    duplicates: int
    late: int


def _epoch_us(ts: datetime) -> np.int64:
    return np.int64(int(ts.replace(tzinfo=timezone.utc).timestamp()) * 1_000_000)


def generate_bronze(
    start: datetime,
    hours: int,
    events_per_type: dict[str, int],
    *,
    seed: int = 7,
    duplicate_fraction: float = 0.02,
    late_fraction: float = 0.01,
    outlier_fraction: float = 0.01,
    devices_per_type: int = 20,
    late_margin_minutes: int = 15,
) -> BronzeBatch:
    """Vectorised: ``events_per_type`` distinct events per type spread uniformly over the hours.

    Durations are gamma-distributed per type with a few 25x outliers, so the 3-sigma filter has
    work to do. Duplicates repeat an event_id with a *later* Kafka timestamp and a different
    duration (a wrong dedup is then visible in the results). Late rows reach Kafka 30-90 minutes
    after their hour ends, i.e. well past ``late_margin_minutes``.
    """
    rng = np.random.default_rng(seed)
    types = np.concatenate([np.full(n, t, dtype=object) for t, n in events_per_type.items()])
    n = len(types)
    t0 = _epoch_us(start)
    ts = t0 + rng.integers(0, hours * _HOUR_US, n)
    type_index = {t: i for i, t in enumerate(events_per_type)}
    tidx = np.array([type_index[t] for t in types])
    shape = 2.0 + tidx % 3
    duration = rng.gamma(shape, 40.0 + 15.0 * tidx)
    outlier = rng.random(n) < outlier_fraction
    duration = np.where(outlier, duration * 25.0, duration).round(3)
    dev = rng.integers(0, devices_per_type, n)
    device_id = np.char.add(np.char.add(types.astype(str), "-"), np.char.zfill(dev.astype(str), 4))
    hi = rng.integers(0, 2**63 - 1, n, dtype=np.int64)
    lo = np.arange(n, dtype=np.int64) + np.int64(seed) * 10_000_000
    event_id = _uuids(hi, lo)
    kafka_ts = ts + rng.integers(5_000, 3_000_000, n)
    late = rng.random(n) < late_fraction
    hour_end = (ts // _HOUR_US + 1) * _HOUR_US
    kafka_ts = np.where(late, hour_end + rng.integers(30 * 60, 90 * 60, n) * _US, kafka_ts)
    status = rng.choice(
        np.array(["normal", "warning", "critical", None], dtype=object), n, p=[0.7, 0.15, 0.1, 0.05]
    )
    battery = np.where(rng.random(n) < 0.05, np.nan, rng.uniform(0, 100, n).round(1))
    signal = rng.uniform(-130, 0, n).round(1)
    unique = {
        "event_id": event_id,
        "device_id": device_id,
        "device_type": types.astype(str),
        "event_timestamp": ts,
        "event_duration": duration,
        "value": rng.normal(20, 5, n).round(4),
        "unit": np.full(n, "u"),
        "status": status,
        "battery_level": battery,
        "signal_strength": signal,
        "location": np.full(n, "lab"),
        "firmware_version": np.full(n, "1.0.0"),
        "kafka_topic": np.full(n, "iot-events"),
        "kafka_partition": rng.integers(0, 3, n).astype(np.int32),
        "kafka_offset": np.arange(n, dtype=np.int64),
        "kafka_timestamp": kafka_ts,
        "ingest_time": kafka_ts + _US,
    }
    d = rng.random(n) < duplicate_fraction
    dups = {k: v[d].copy() for k, v in unique.items()}
    m = int(d.sum())
    dups["event_duration"] = dups["event_duration"] + 1_000_000.0
    dups["kafka_timestamp"] = dups["kafka_timestamp"] + rng.integers(1, 600, m) * _US
    dups["ingest_time"] = dups["kafka_timestamp"] + _US
    dups["kafka_offset"] = np.arange(n, n + m, dtype=np.int64)
    rows = {k: np.concatenate([unique[k], dups[k]]) for k in unique}
    order = rng.permutation(n + m)
    rows = {k: v[order] for k, v in rows.items()}
    return BronzeBatch(_to_arrow(rows), _to_arrow(unique), m, int(late.sum()))


def _uuids(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """UUID-shaped, unique ids (``lo`` is unique), built vectorised with pyarrow."""
    h = pa.array(np.char.mod("%016x", hi))
    low = pa.array(np.char.mod("%016x", lo))
    parts = [
        pc.utf8_slice_codeunits(h, 0, 8),
        pc.utf8_slice_codeunits(h, 8, 12),
        pc.utf8_slice_codeunits(h, 12, 16),
        pc.utf8_slice_codeunits(low, 0, 4),
        pc.utf8_slice_codeunits(low, 4, 16),
    ]
    return pc.binary_join_element_wise(*parts, "-").to_numpy(zero_copy_only=False)


def _to_arrow(cols: dict[str, np.ndarray]) -> pa.Table:
    arrays = []
    for f in BRONZE_ARROW_SCHEMA:
        v = cols[f.name]
        if pa.types.is_timestamp(f.type):
            arrays.append(pa.array(v.astype("datetime64[us]"), type=pa.timestamp("us")).cast(f.type))
        elif pa.types.is_floating(f.type):
            arrays.append(pa.array(v, type=f.type, from_pandas=True))
        else:
            arrays.append(pa.array(v.tolist() if v.dtype == object else v, type=f.type))
    table = pa.Table.from_arrays(arrays, schema=BRONZE_ARROW_SCHEMA)
    hours = (cols["event_timestamp"] // _HOUR_US) * _HOUR_US
    days = hours.astype("datetime64[us]").astype("datetime64[D]").astype(str)
    table = table.append_column("event_date", pa.array(days, type=pa.string()))
    return table.append_column("event_hour", pa.array(((hours // _HOUR_US) % 24).astype(np.int32)))


def write_bronze(table: pa.Table, dataset: str | Path, files_per_hour: int = 2) -> list[str]:
    """Write rows as the stream does: ``event_date=D/event_hour=H/ingest_batch=N/`` (one micro-batch
    per directory, see ``streaming/sink.py``), ``files_per_hour`` batches per hour."""
    out = []
    keys = np.array(
        [
            f"{d}|{h}"
            for d, h in zip(table["event_date"].to_pylist(), table["event_hour"].to_pylist(), strict=True)
        ]
    )
    data = table.drop_columns(["event_date", "event_hour"])
    for key in np.unique(keys):
        day, hour = key.split("|")
        part = data.filter(pa.array(keys == key))
        hour_dir = Path(dataset) / f"event_date={day}" / f"event_hour={hour}"
        for i, chunk in enumerate(np.array_split(np.arange(part.num_rows), files_per_hour)):
            if len(chunk):
                directory = hour_dir / f"ingest_batch={i}"
                directory.mkdir(parents=True, exist_ok=True)
                path = directory / "part-00000-test.snappy.parquet"
                pq.write_table(part.take(pa.array(chunk)), path)
                out.append(str(path))
    return out


def reference_rule(x: np.ndarray) -> dict[str, float]:
    """The spec's rule with numpy for one (day, type)'s distinct durations: the tests' ground truth."""
    mean = float(np.mean(x))
    sd = float(np.std(x, ddof=1)) if len(x) > 1 else float("nan")
    # A constant day keeps every event (its mean may round off the common value).
    kept = x if sd == 0 else x[np.abs(x - mean) <= 3 * sd]
    return {
        "events_total": len(x),
        "events_kept": len(kept),
        "outliers_removed": len(x) - len(kept),
        "mean": mean,
        "stddev": sd,
        "p95_event_duration": float(np.percentile(kept, 95)) if len(kept) else float("nan"),
        "min_kept_event_duration": float(kept.min()) if len(kept) else float("nan"),
        "max_kept_event_duration": float(kept.max()) if len(kept) else float("nan"),
    }


def reference_p95(unique: pa.Table) -> dict[tuple[str, str], dict[str, float]]:
    """The spec's rule with numpy, per (day, type), including types below the threshold."""
    days = np.array(unique["event_date"].to_pylist())
    types = np.array(unique["device_type"].to_pylist())
    dur = unique["event_duration"].to_numpy()
    return {
        key: reference_rule(dur[(days == key[0]) & (types == key[1])])
        for key in sorted(set(zip(days.tolist(), types.tolist(), strict=True)))
    }


DEVICE_TYPES = (
    "temperature",
    "humidity",
    "pressure",
    "motion",
    "light",
    "co2",
    "air_quality",
    "vibration",
    "door",
    "smoke",
)


def write_days(bronze: str | Path, start: datetime, days: int, per_day: int) -> int:
    """``days`` days of ``per_day`` events over the ten device types (200 devices each), 1 % duplicates,
    1 % outliers, 0.5 % late, two micro-batches per hour; returns the rows written."""
    rows = 0
    per_type = {t: per_day // len(DEVICE_TYPES) for t in DEVICE_TYPES}
    for d in range(days):
        batch = generate_bronze(
            start + timedelta(days=d),
            24,
            per_type,
            seed=1000 + d,
            duplicate_fraction=0.01,
            late_fraction=0.005,
            outlier_fraction=0.01,
            devices_per_type=200,
        )
        write_bronze(batch.rows, bronze, files_per_hour=2)
        rows += batch.rows.num_rows
    return rows


def write_busy_hour(bronze: str | Path, hour: datetime, rows: int, files: int) -> tuple[int, int]:
    """One hour of about ``rows`` rows in ``files`` micro-batches (2,000 devices per type, ~1 %
    duplicates, 0.5 % late), one batch at a time so millions of rows fit in memory; returns
    (rows, duplicates)."""
    written = dups = 0
    per_type = round(rows / files / 1.01 / len(DEVICE_TYPES))
    hour_dir = Path(bronze) / f"event_date={hour:%Y-%m-%d}" / f"event_hour={hour.hour}"
    for i in range(files):
        batch = generate_bronze(
            hour,
            1,
            {t: per_type for t in DEVICE_TYPES},
            seed=90_000 + i,
            duplicate_fraction=0.01,
            late_fraction=0.005,
            devices_per_type=2000,
        )
        table = batch.rows.drop_columns(["event_date", "event_hour"])
        directory = hour_dir / f"ingest_batch={i}"
        directory.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, directory / "part-00000-bench.snappy.parquet")
        written += table.num_rows
        dups += batch.duplicates
    return written, dups

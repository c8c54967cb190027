"""Pandera (PySpark) models of every checked asset: the one declaration of its columns.

Each model is a ``pandera.pyspark.DataFrameSchema``: column names and Spark types, nullability, a
description, built-in value checks (``in_range``, ``isin``, ``str_length``, ...), ``unique`` keys, and
row-level rules across columns (:func:`row_check`, carrying their violation as Spark SQL so that the
same text is both the pandera check and the counted rule, see :mod:`iot_pipeline.checks.validation`).
The asset checks validate against them; the column schemas the UI shows (``assets/schemas.py``) and
the daily p95's Parquet schema (:func:`spark_schema`) are derived from them. silver/events' columns
come from the contract.
"""

from __future__ import annotations

import pandera.pyspark as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from iot_pipeline.assets.silver_logic import LOW_BATTERY_PCT, WEAK_SIGNAL_DBM
from iot_pipeline.contract.event import STATUSES
from iot_pipeline.contract.pandera_schema import contract_columns
from iot_pipeline.contract.rules import any_violation, value_rules
from iot_pipeline.contract.spark_schema import KAFKA_LINEAGE_FIELDS, PARTITION_FIELDS

DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
# The spec's threshold: a device type enters the daily p95 with at least this many distinct events.
MIN_EVENTS = 500


def spark_schema(model: pa.DataFrameSchema) -> T.StructType:
    """The Spark schema a model's dataset is written with: its columns, types and nullability in order."""
    return T.StructType([T.StructField(name, c.dtype.type, c.nullable) for name, c in model.columns.items()])


def row_check(name: str, violation_sql: str, description: str) -> pa.Check:
    """A dataframe-level pandera check whose failing rows are those matching ``violation_sql``."""

    def no_violation(df: DataFrame) -> bool:
        return df.filter(F.expr(violation_sql)).limit(1).count() == 0

    return pa.Check(no_violation, name=name, error=description, statistics={"violation_sql": violation_sql})


def lineage_and_partition_columns() -> dict[str, pa.Column]:
    extra: dict[str, list[pa.Check]] = {
        "kafka_partition": [pa.Check.ge(0)],
        "kafka_offset": [pa.Check.ge(0)],
        "event_date": [pa.Check.str_matches(DATE_PATTERN)],
        "event_hour": [pa.Check.in_range(0, 23)],
    }
    return {
        f.name: pa.Column(f.dataType, checks=extra.get(f.name, []), nullable=f.nullable)
        for f in (*KAFKA_LINEAGE_FIELDS, *PARTITION_FIELDS)
    }


EVENT_IN_PARTITION = row_check(
    "event_time_in_partition",
    "date_format(event_timestamp, 'yyyy-MM-dd') <> event_date OR hour(event_timestamp) <> event_hour",
    "event_timestamp falls outside the row's event_date/event_hour partition",
)


def contract_rules_check() -> pa.Check:
    """The contract's value rules, the very SQL the stream and silver's re-validation apply."""
    return row_check(
        "contract_rules",
        any_violation(value_rules()),
        "a row breaks a value rule of the event contract (blank or control characters in ids, "
        "non-UUID event_id, event time in the future of its Kafka timestamp or before the first "
        "partition, non-finite or out-of-range numbers, unknown status)",
    )


def silver_events_model() -> pa.DataFrameSchema:
    """silver/events: the contract's 12 fields, Kafka lineage and partition columns; event_id unique."""
    return pa.DataFrameSchema(
        {**contract_columns(), **lineage_and_partition_columns()},
        checks=[EVENT_IN_PARTITION, contract_rules_check()],
        unique=["event_id"],
        strict=True,
        name="silver/events",
    )


def _num(
    description: str, *checks: pa.Check, nullable: bool = False, dtype: T.DataType | None = None
) -> pa.Column:
    return pa.Column(dtype or T.DoubleType(), list(checks), nullable=nullable, description=description)


def _key(description: str, *checks: pa.Check, dtype: T.DataType | None = None) -> pa.Column:
    return pa.Column(
        dtype or T.StringType(), list(checks) or [pa.Check.str_length(min_value=1)], description=description
    )


_COUNT = T.LongType()
_DAY = _key("UTC day of the rows (Hive partition).", pa.Check.str_matches(DATE_PATTERN))


def device_minute_stats_model() -> pa.DataFrameSchema:
    """silver/device_minute_stats: one row per device and minute; stddevs are null for a single event."""
    return pa.DataFrameSchema(
        {
            "event_date": _DAY,
            "event_hour": _key(
                "UTC hour 0-23 (Hive partition).", pa.Check.in_range(0, 23), dtype=T.IntegerType()
            ),
            "device_id": _key("Device."),
            "device_type": _key("Type of the device."),
            "window_start": pa.Column(
                T.TimestampType(), description="Start of the 1-minute event-time window (UTC, inclusive)."
            ),
            "window_end": pa.Column(T.TimestampType(), description="End of the window (exclusive)."),
            "events": _num("Events of the device in the window.", pa.Check.ge(1), dtype=_COUNT),
            "value_avg": _num("Mean of value."),
            "value_min": _num("Minimum of value."),
            "value_max": _num("Maximum of value."),
            "value_stddev": _num("Sample standard deviation of value (null for one event).", nullable=True),
            "duration_avg": _num("Mean event_duration (ms).", pa.Check.ge(0)),
            "duration_min": _num("Minimum event_duration (ms).", pa.Check.ge(0)),
            "duration_max": _num("Maximum event_duration (ms).", pa.Check.ge(0)),
            "duration_stddev": _num(
                "Sample standard deviation of event_duration (null for one event).", nullable=True
            ),
            "duration_p50": _num("Exact median of event_duration (linear interpolation).", pa.Check.ge(0)),
            "duration_p95": _num(
                "Exact 95th percentile of event_duration (linear interpolation).", pa.Check.ge(0)
            ),
            "battery_avg": _num(
                "Mean battery_level (%), over events that report it.",
                pa.Check.in_range(0, 100),
                nullable=True,
            ),
            "signal_avg": _num(
                "Mean signal_strength (dBm), over events that report it.",
                pa.Check.in_range(-130, 0),
                nullable=True,
            ),
            "low_battery_events": _num(
                f"Events with battery_level < {LOW_BATTERY_PCT:g}.", pa.Check.ge(0), dtype=_COUNT
            ),
            "weak_signal_events": _num(
                f"Events with signal_strength < {WEAK_SIGNAL_DBM:g}.", pa.Check.ge(0), dtype=_COUNT
            ),
        },
        checks=[
            row_check(
                "one_minute_window",
                "window_end <> window_start + INTERVAL 1 MINUTE OR second(window_start) <> 0 "
                "OR date_format(window_start, 'yyyy-MM-dd') <> event_date OR hour(window_start) <> event_hour",
                "window is not the aligned minute of the row's partition hour",
            ),
            row_check(
                "ordered_stats",
                "NOT (value_min <= value_avg AND value_avg <= value_max AND duration_min <= duration_p50 "
                "AND duration_p50 <= duration_p95 AND duration_p95 <= duration_max)",
                "min <= avg <= max and min <= p50 <= p95 <= max do not hold",
            ),
            row_check(
                "flag_counts_within_events",
                "low_battery_events > events OR weak_signal_events > events",
                "more flagged events than events in the minute",
            ),
        ],
        # A device whose events name two types in one minute is two series: both rows are kept.
        unique=["device_id", "device_type", "window_start"],
        strict=True,
        name="silver/device_minute_stats",
    )


P95_WITHIN_KEPT_RANGE = row_check(
    "p95_within_kept_range",
    "NOT (p95_event_duration >= min_kept_event_duration AND p95_event_duration <= max_kept_event_duration)",
    "p95 outside [min_kept_event_duration, max_kept_event_duration]",
)


def daily_p95_model() -> pa.DataFrameSchema:
    """gold/daily_event_duration_p95: one row per day and device type with >= 500 distinct events."""
    return pa.DataFrameSchema(
        {
            "event_date": _DAY,
            "device_type": _key("Device type."),
            "events_total": _num(
                f"Distinct event_id of the type that day (always >= {MIN_EVENTS} here).",
                pa.Check.ge(MIN_EVENTS),
                dtype=_COUNT,
            ),
            "events_kept": _num(
                "Events within 3 sample standard deviations of the day's mean.", pa.Check.ge(1), dtype=_COUNT
            ),
            "outliers_removed": _num("events_total - events_kept.", pa.Check.ge(0), dtype=_COUNT),
            "mean": _num(
                "Mean event_duration (ms) of all the day's distinct events of the type.", pa.Check.ge(0)
            ),
            "stddev": _num("Sample standard deviation (n - 1) of those durations.", pa.Check.ge(0)),
            "p95_event_duration": _num(
                "Exact 95th percentile (linear interpolation) of kept events.", pa.Check.ge(0)
            ),
            "min_kept_event_duration": _num("Smallest kept event_duration.", pa.Check.ge(0)),
            "max_kept_event_duration": _num("Largest kept event_duration.", pa.Check.ge(0)),
        },
        checks=[
            P95_WITHIN_KEPT_RANGE,
            row_check(
                "kept_plus_removed_is_total",
                "events_kept + outliers_removed <> events_total",
                "events_kept + outliers_removed differs from events_total",
            ),
        ],
        unique=["event_date", "device_type"],
        strict=False,
        name="gold/daily_event_duration_p95",
    )


def daily_device_type_summary_model() -> pa.DataFrameSchema:
    """gold/daily_device_type_summary: one row per day and device type, however few its events."""
    return pa.DataFrameSchema(
        {
            "event_date": _DAY,
            "device_type": _key("Device type."),
            "events": _num(
                "Silver events (deduplicated per hour) of the type that day.", pa.Check.ge(1), dtype=_COUNT
            ),
            "devices": _num("Distinct device_id reporting that day.", pa.Check.ge(1), dtype=_COUNT),
            "value_avg": _num("Mean value.", nullable=True),
            "value_min": _num("Minimum value.", nullable=True),
            "value_max": _num("Maximum value.", nullable=True),
            **{
                f"{status}_events": _num(f"Events with status {status}.", pa.Check.ge(0), dtype=_COUNT)
                for status in STATUSES
            },
            "low_battery_events": _num(
                f"Events with battery_level < {LOW_BATTERY_PCT:g}.", pa.Check.ge(0), dtype=_COUNT
            ),
            "weak_signal_events": _num(
                f"Events with signal_strength < {WEAK_SIGNAL_DBM:g}.", pa.Check.ge(0), dtype=_COUNT
            ),
        },
        unique=["event_date", "device_type"],
        strict=False,
        name="gold/daily_device_type_summary",
    )

"""Pandera (PySpark) models of every checked asset; the event columns are derived from the contract.

Each model is a ``pandera.pyspark.DataFrameSchema``: column names and Spark types, nullability,
built-in value checks (``in_range``, ``isin``, ``str_length``, ...), ``unique`` keys, and row-level
rules across columns (:func:`row_check`, carrying their violation as Spark SQL so that the same text is
both the pandera check and the counted rule, see :mod:`iot_pipeline.checks.validation`).
"""

from __future__ import annotations

import pandera.pyspark as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from iot_pipeline.assets.gold_logic import MIN_EVENTS
from iot_pipeline.contract.pandera_schema import contract_columns
from iot_pipeline.contract.rules import any_violation, value_rules
from iot_pipeline.contract.spark_schema import KAFKA_LINEAGE_FIELDS, PARTITION_FIELDS

DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"


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


def _num(*checks: pa.Check, nullable: bool = False, dtype: T.DataType | None = None) -> pa.Column:
    return pa.Column(dtype or T.DoubleType(), checks=list(checks), nullable=nullable)


def device_minute_stats_model() -> pa.DataFrameSchema:
    """silver/device_minute_stats: one row per device and minute; stddevs are null for a single event."""
    count = T.LongType()
    key = [pa.Check.str_length(min_value=1)]
    return pa.DataFrameSchema(
        {
            "event_date": pa.Column(T.StringType(), [pa.Check.str_matches(DATE_PATTERN)]),
            "event_hour": pa.Column(T.IntegerType(), [pa.Check.in_range(0, 23)]),
            "device_id": pa.Column(T.StringType(), key),
            "device_type": pa.Column(T.StringType(), key),
            "window_start": pa.Column(T.TimestampType()),
            "window_end": pa.Column(T.TimestampType()),
            "events": _num(pa.Check.ge(1), dtype=count),
            "value_avg": _num(),
            "value_min": _num(),
            "value_max": _num(),
            "value_stddev": _num(nullable=True),
            "duration_avg": _num(pa.Check.ge(0)),
            "duration_min": _num(pa.Check.ge(0)),
            "duration_max": _num(pa.Check.ge(0)),
            "duration_stddev": _num(nullable=True),
            "duration_p50": _num(pa.Check.ge(0)),
            "duration_p95": _num(pa.Check.ge(0)),
            "battery_avg": _num(pa.Check.in_range(0, 100), nullable=True),
            "signal_avg": _num(pa.Check.in_range(-130, 0), nullable=True),
            "low_battery_events": _num(pa.Check.ge(0), dtype=count),
            "weak_signal_events": _num(pa.Check.ge(0), dtype=count),
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
    count = T.LongType()
    return pa.DataFrameSchema(
        {
            "event_date": pa.Column(T.StringType(), [pa.Check.str_matches(DATE_PATTERN)]),
            "device_type": pa.Column(T.StringType(), [pa.Check.str_length(min_value=1)]),
            "events_total": _num(pa.Check.ge(MIN_EVENTS), dtype=count),
            "events_kept": _num(pa.Check.ge(1), dtype=count),
            "outliers_removed": _num(pa.Check.ge(0), dtype=count),
            "mean": _num(pa.Check.ge(0)),
            "stddev": _num(pa.Check.ge(0)),
            "p95_event_duration": _num(pa.Check.ge(0)),
            "min_kept_event_duration": _num(pa.Check.ge(0)),
            "max_kept_event_duration": _num(pa.Check.ge(0)),
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
    """gold/daily_device_type_summary: only its keys are fixed; the other columns are the asset's choice."""
    return pa.DataFrameSchema(
        {
            "event_date": pa.Column(T.StringType(), [pa.Check.str_matches(DATE_PATTERN)]),
            "device_type": pa.Column(T.StringType(), [pa.Check.str_length(min_value=1)]),
        },
        unique=["event_date", "device_type"],
        strict=False,
        name="gold/daily_device_type_summary",
    )

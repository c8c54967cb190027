"""Dagster column schemas of every dataset the assets read or write, shown in the UI's lineage.

Event columns come from the contract (:mod:`iot_pipeline.contract.dagster_schema`); the columns the
stream and the assets add are declared here, next to the assets that write them.
"""

from __future__ import annotations

import dagster as dg

from iot_pipeline.assets import keys
from iot_pipeline.contract.dagster_schema import event_table_schema

_NOT_NULL = dg.TableColumnConstraints(nullable=False)

KAFKA_LINEAGE_COLUMNS = (
    dg.TableColumn(
        "kafka_topic", "string", description="Kafka topic the record was read from.", constraints=_NOT_NULL
    ),
    dg.TableColumn(
        "kafka_partition", "int", description="Kafka partition of the record.", constraints=_NOT_NULL
    ),
    dg.TableColumn(
        "kafka_offset", "bigint", description="Kafka offset of the record.", constraints=_NOT_NULL
    ),
    dg.TableColumn("kafka_timestamp", "timestamp", description="Kafka record timestamp (UTC)."),
    dg.TableColumn(
        "ingest_time", "timestamp", description="When the stream landed the row (UTC).", constraints=_NOT_NULL
    ),
)
PARTITION_COLUMNS = (
    dg.TableColumn(
        "event_date",
        "string",
        description="UTC date of event_timestamp (Hive partition).",
        constraints=_NOT_NULL,
    ),
    dg.TableColumn(
        "event_hour",
        "int",
        description="UTC hour 0-23 of event_timestamp (Hive partition).",
        constraints=_NOT_NULL,
    ),
)

INGEST_BATCH = dg.TableColumn(
    "ingest_batch", "bigint", description="Streaming micro-batch that landed the row (Hive partition)."
)
BRONZE_EVENTS = event_table_schema(
    *KAFKA_LINEAGE_COLUMNS, *PARTITION_COLUMNS, INGEST_BATCH, unique_event_id=False
)
SILVER_EVENTS = event_table_schema(*KAFKA_LINEAGE_COLUMNS, *PARTITION_COLUMNS, unique_event_id=True)
SILVER_EVENT_ID_INDEX = dg.TableSchema(
    columns=[
        dg.TableColumn(
            "file", "string", description="Name of a silver/events file of the hour.", constraints=_NOT_NULL
        ),
        dg.TableColumn("rows", "bigint", description="Rows in that file.", constraints=_NOT_NULL),
        dg.TableColumn(
            "id_hashes",
            "array<bigint>",
            description="64-bit hashes of the file's event_ids (xxhash64 of event_date, event_id).",
            constraints=_NOT_NULL,
        ),
        *PARTITION_COLUMNS,
    ]
)

QUARANTINE = dg.TableSchema(
    columns=[
        dg.TableColumn("raw_payload", "string", description="The record value exactly as received."),
        dg.TableColumn("kafka_key", "string", description="The record key (device_id when well formed)."),
        dg.TableColumn(
            "reason",
            "string",
            description="Why it was rejected, e.g. malformed_json, missing_field:device_id.",
        ),
        *KAFKA_LINEAGE_COLUMNS,
        dg.TableColumn(
            "kafka_date", "string", description="UTC date the record reached Kafka (Hive partition)."
        ),
        dg.TableColumn(
            "ingest_batch", "bigint", description="Micro-batch that landed the row (Hive partition)."
        ),
    ]
)


def _col(name: str, type_: str, description: str, nullable: bool = True) -> dg.TableColumn:
    return dg.TableColumn(
        name, type_, description=description, constraints=dg.TableColumnConstraints(nullable=nullable)
    )


LIVE_DEVICE_TYPE_MINUTE_STATS = dg.TableSchema(
    columns=[
        _col("window_start", "timestamp", "Start of the 1-minute event-time window (UTC, inclusive).", False),
        _col("window_end", "timestamp", "End of the window (exclusive).", False),
        _col("device_type", "string", "Type of the device.", False),
        _col("events", "bigint", "Valid events of the type in the window, in this micro-batch.", False),
        _col("duration_sum", "double", "Sum of event_duration (ms) in this micro-batch."),
        _col("duration_min", "double", "Smallest event_duration in this micro-batch."),
        _col("duration_max", "double", "Largest event_duration in this micro-batch."),
        _col("value_sum", "double", "Sum of value in this micro-batch."),
        _col("value_min", "double", "Smallest value in this micro-batch."),
        _col("value_max", "double", "Largest value in this micro-batch."),
        _col("event_date", "string", "UTC day of the window (Hive partition).", False),
        _col("ingest_batch", "bigint", "Micro-batch that wrote the row (Hive partition).", False),
    ]
)

DEVICE_MINUTE_STATS = dg.TableSchema(
    columns=[
        *PARTITION_COLUMNS,
        _col("device_id", "string", "Device.", False),
        _col("device_type", "string", "Type of the device.", False),
        _col("window_start", "timestamp", "Start of the 1-minute event-time window (UTC, inclusive).", False),
        _col("window_end", "timestamp", "End of the window (exclusive).", False),
        _col("events", "bigint", "Events of the device in the window.", False),
        _col("value_avg", "double", "Mean of value."),
        _col("value_min", "double", "Minimum of value."),
        _col("value_max", "double", "Maximum of value."),
        _col("value_stddev", "double", "Sample standard deviation of value (null for one event)."),
        _col("duration_avg", "double", "Mean event_duration (ms)."),
        _col("duration_min", "double", "Minimum event_duration (ms)."),
        _col("duration_max", "double", "Maximum event_duration (ms)."),
        _col(
            "duration_stddev", "double", "Sample standard deviation of event_duration (null for one event)."
        ),
        _col("duration_p50", "double", "Exact median of event_duration (linear interpolation)."),
        _col("duration_p95", "double", "Exact 95th percentile of event_duration (linear interpolation)."),
        _col("battery_avg", "double", "Mean battery_level (%), over events that report it."),
        _col("signal_avg", "double", "Mean signal_strength (dBm), over events that report it."),
        _col("low_battery_events", "bigint", "Events with battery_level < 20.", False),
        _col("weak_signal_events", "bigint", "Events with signal_strength < -90.", False),
    ]
)

DAILY_EVENT_DURATION_P95 = dg.TableSchema(
    columns=[
        _col("event_date", "string", "UTC day (Hive partition of the Parquet output).", False),
        _col("device_type", "string", "Device type.", False),
        _col("events_total", "bigint", "Distinct event_id of the type that day (always >= 500 here).", False),
        _col("events_kept", "bigint", "Events within 3 sample standard deviations of the day's mean.", False),
        _col("outliers_removed", "bigint", "events_total - events_kept.", False),
        _col(
            "mean", "double", "Mean event_duration (ms) of all the day's distinct events of the type.", False
        ),
        _col("stddev", "double", "Sample standard deviation (n - 1) of those durations.", False),
        _col(
            "p95_event_duration",
            "double",
            "Exact 95th percentile (linear interpolation) of kept events.",
            False,
        ),
        _col("min_kept_event_duration", "double", "Smallest kept event_duration.", False),
        _col("max_kept_event_duration", "double", "Largest kept event_duration.", False),
    ]
)

DAILY_DEVICE_TYPE_SUMMARY = dg.TableSchema(
    columns=[
        _col("event_date", "string", "UTC day (Hive partition).", False),
        _col("device_type", "string", "Device type.", False),
        _col("events", "bigint", "Silver events (deduplicated per hour) of the type that day.", False),
        _col("devices", "bigint", "Distinct device_id reporting that day.", False),
        _col("value_avg", "double", "Mean value."),
        _col("value_min", "double", "Minimum value."),
        _col("value_max", "double", "Maximum value."),
        _col("normal_events", "bigint", "Events with status normal.", False),
        _col("warning_events", "bigint", "Events with status warning.", False),
        _col("critical_events", "bigint", "Events with status critical.", False),
        _col("low_battery_events", "bigint", "Events with battery_level < 20.", False),
        _col("weak_signal_events", "bigint", "Events with signal_strength < -90.", False),
    ]
)

# The schema each materialisable asset shows, by key (``assets/lake_assets.py`` reads it).
BY_ASSET = {
    keys.SILVER_EVENTS: SILVER_EVENTS,
    keys.SILVER_EVENT_ID_INDEX: SILVER_EVENT_ID_INDEX,
    keys.SILVER_DEVICE_MINUTE_STATS: DEVICE_MINUTE_STATS,
    keys.GOLD_DAILY_EVENT_DURATION_P95: DAILY_EVENT_DURATION_P95,
    keys.GOLD_DAILY_DEVICE_TYPE_SUMMARY: DAILY_DEVICE_TYPE_SUMMARY,
}

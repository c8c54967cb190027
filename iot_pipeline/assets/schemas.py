"""Dagster column schemas of every dataset the assets read or write, shown in the UI's lineage.

Event columns come from the contract (:mod:`iot_pipeline.contract.dagster_schema`); the datasets the
asset checks validate take theirs from their Pandera models (:mod:`iot_pipeline.assets.models`); the
rest (the stream's lineage and partition columns, the index, quarantine and the live minute stats)
are declared here.
"""

from __future__ import annotations

import dagster as dg
import pandera.pyspark as pa

from iot_pipeline.assets import keys, models
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


def model_schema(model: pa.DataFrameSchema) -> dg.TableSchema:
    """A dataset's Dagster schema from its Pandera model: names, types, nullability, descriptions and
    the value checks, so the UI shows what the asset check enforces."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name,
                column.dtype.type.simpleString(),
                description=column.description,
                constraints=dg.TableColumnConstraints(
                    nullable=column.nullable,
                    unique=column.unique,
                    other=[check.error for check in column.checks if check.error],
                ),
            )
            for name, column in model.columns.items()
        ]
    )


DEVICE_MINUTE_STATS = model_schema(models.device_minute_stats_model())
DAILY_EVENT_DURATION_P95 = model_schema(models.daily_p95_model())

DAILY_DEVICE_TYPE_SUMMARY = model_schema(models.daily_device_type_summary_model())

# The schema each materialisable asset shows, by key (``assets/lake_assets.py`` reads it).
BY_ASSET = {
    keys.SILVER_EVENTS: SILVER_EVENTS,
    keys.SILVER_EVENT_ID_INDEX: SILVER_EVENT_ID_INDEX,
    keys.SILVER_DEVICE_MINUTE_STATS: DEVICE_MINUTE_STATS,
    keys.GOLD_DAILY_EVENT_DURATION_P95: DAILY_EVENT_DURATION_P95,
    keys.GOLD_DAILY_DEVICE_TYPE_SUMMARY: DAILY_DEVICE_TYPE_SUMMARY,
}

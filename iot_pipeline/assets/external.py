"""Assets Dagster does not materialise: the Kafka topic and what the streaming job lands from it
(bronze, quarantine, the live minute statistics).

They are declared so lineage reads Kafka -> streaming job -> bronze -> silver -> gold in the UI.
``bronze/events`` is hourly-partitioned like the assets built on it.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from iot_pipeline.assets import schemas
from iot_pipeline.assets.freshness import BRONZE_FRESHNESS
from iot_pipeline.assets.keys import (
    BRONZE_EVENTS,
    BRONZE_QUARANTINE,
    GROUP_INGESTION,
    KAFKA_IOT_EVENTS,
    LIVE_DEVICE_TYPE_MINUTE_STATS,
    OWNERS,
)
from iot_pipeline.assets.partitions import HOURLY
from iot_pipeline.resources.kafka_settings import ENV_TOPIC
from iot_pipeline.streaming.job import STREAM_JOB

kafka_iot_events = dg.AssetSpec(
    key=KAFKA_IOT_EVENTS,
    description=(
        "The Kafka topic the devices publish to (default `iot-events`, setting IOT_KAFKA_TOPIC): one UTF-8 "
        "JSON event per record, keyed by device_id. Producers may resend an event (same event_id) and "
        "events may arrive late. Read continuously by the streaming job and, for missing bronze hours, "
        "in batch by `silver/events`."
    ),
    group_name=GROUP_INGESTION,
    kinds={"kafka"},
    owners=OWNERS,
    metadata={"topic_setting": ENV_TOPIC, "key": "device_id", "format": "JSON (event contract)"},
)


def landed_by_stream(
    key: dg.AssetKey, description: str, schema: dg.TableSchema, partitioned_by: str, **spec: Any
) -> dg.AssetSpec:
    """A Parquet dataset the streaming job writes from the Kafka topic (Dagster never materialises it)."""
    return dg.AssetSpec(
        key=key,
        deps=[KAFKA_IOT_EVENTS],
        description=description,
        group_name=GROUP_INGESTION,
        kinds={"spark", "parquet"},
        owners=OWNERS,
        metadata={"dagster/column_schema": schema, "landed_by": STREAM_JOB, "partitioned_by": partitioned_by},
        **spec,
    )


bronze_events = landed_by_stream(
    BRONZE_EVENTS,
    (
        f"Valid events as the streaming job (`{STREAM_JOB}`, Spark Structured Streaming) lands them from "
        "Kafka: Parquet, Hive-partitioned by UTC event hour and micro-batch "
        "(`event_date=YYYY-MM-DD/event_hour=H/ingest_batch=N`), with the Kafka topic, partition, offset and "
        "timestamp of each record. Appended continuously, each Kafka record exactly once (idempotent "
        "per-batch writes, checkpointed offsets); may still hold duplicate events "
        "(resends). Late events land in their own event hour. Not materialised by Dagster: "
        "`bronze_report_sensor` records each hour as it lands, changes late or closes (files, bytes, rows, "
        "newest event time, Kafka offsets), so the partitions here are the lake's; fresh while the "
        "stream lands data (warns after 10 minutes without a landed batch, fails after 30). "
        "`silver/events` reads it."
    ),
    schemas.BRONZE_EVENTS,
    "event_date, event_hour, ingest_batch",
    partitions_def=HOURLY,
    freshness_policy=BRONZE_FRESHNESS,
)

bronze_quarantine = landed_by_stream(
    BRONZE_QUARANTINE,
    (
        f"Dead letters: every Kafka record the streaming job (`{STREAM_JOB}`) rejected, with the raw "
        "payload, the reason (e.g. `malformed_json`, `missing_field:device_id`, `out_of_range:battery_level`, "
        "`oversized`) and its Kafka topic, partition and offset. Parquet partitioned by the UTC day the "
        "record reached Kafka (`kafka_date`) and micro-batch. Nothing "
        "is dropped silently: what is not in bronze is here."
    ),
    schemas.QUARANTINE,
    "kafka_date, ingest_batch",
)

live_device_type_minute_stats = landed_by_stream(
    LIVE_DEVICE_TYPE_MINUTE_STATS,
    (
        f"Provisional per-minute statistics per device type for live views, written by the streaming job "
        f"(`{STREAM_JOB}`) in the same micro-batch as bronze: each batch's partial aggregates (count, sum, "
        "min and max of event_duration and value) per 1-minute event-time window, partitioned by "
        "`event_date=YYYY-MM-DD/ingest_batch=N`. A window touched by several batches has a row per batch; "
        "`iot_pipeline.streaming.live.live_view` combines them. The hourly `silver/device_minute_stats` is "
        "authoritative."
    ),
    schemas.LIVE_DEVICE_TYPE_MINUTE_STATS,
    "event_date, ingest_batch",
)

EXTERNAL_ASSETS = [kafka_iot_events, bronze_events, bronze_quarantine, live_device_type_minute_stats]

"""Software-defined assets of iot-pipeline: Kafka and bronze (external), silver (hourly), gold (daily).

Keys live in :mod:`iot_pipeline.assets.keys` so checks and sensors import them without the assets.
"""

from __future__ import annotations

from iot_pipeline.assets.daily_device_type_summary import daily_device_type_summary
from iot_pipeline.assets.daily_event_duration_p95 import daily_event_duration_p95
from iot_pipeline.assets.device_minute_stats import device_minute_stats
from iot_pipeline.assets.external import EXTERNAL_ASSETS
from iot_pipeline.assets.silver_events import events

ASSETS: list = [
    *EXTERNAL_ASSETS,
    events,
    device_minute_stats,
    daily_event_duration_p95,
    daily_device_type_summary,
]

"""Asset checks of iot-pipeline: pandera models per asset, blocking where downstream would be wrong."""

from iot_pipeline.checks.advisory import silver_events_advisories
from iot_pipeline.checks.gold import daily_p95_quality, daily_summary_quality
from iot_pipeline.checks.silver import device_minute_stats_quality, silver_events_quality

CHECKS: list = [
    silver_events_quality,
    silver_events_advisories,
    device_minute_stats_quality,
    daily_p95_quality,
    daily_summary_quality,
]

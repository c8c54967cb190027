"""Sensors of iot-pipeline: closed bronze hours -> hourly silver runs -> daily gold runs.

``sensor_resources()`` must be bound by the code location next to the project's other resources.
"""

from iot_pipeline.resources.env import env_str
from iot_pipeline.sensors.bronze_report import bronze_report_sensor
from iot_pipeline.sensors.daily import daily_rollup_sensor
from iot_pipeline.sensors.hourly import bronze_hours_sensor
from iot_pipeline.sensors.settings import default_sensor_settings
from iot_pipeline.storage.s3 import s3_resource

SENSORS: list = [bronze_hours_sensor, daily_rollup_sensor, bronze_report_sensor]


def sensor_resources() -> dict:
    """The sensors' own resources; ``s3`` lists the lake when it is on S3 (unused for a local lake)."""
    return {"sensor_settings": default_sensor_settings(), "s3": s3_resource(env_str)}

"""Sensors of iot-pipeline: closed bronze hours -> hourly silver runs -> daily gold runs.

``sensor_resources()`` must be bound by the code location next to the project's other resources.
"""

from iot_pipeline.resources.bound import bound_s3
from iot_pipeline.sensors.bronze_report import bronze_report_sensor
from iot_pipeline.sensors.daily import daily_rollup_sensor
from iot_pipeline.sensors.hourly import bronze_hours_sensor
from iot_pipeline.sensors.settings import default_sensor_settings

SENSORS: list = [bronze_hours_sensor, daily_rollup_sensor, bronze_report_sensor]


def sensor_resources() -> dict:
    """The sensors' own resources; ``s3`` lists the lake when it is on S3 (unused for a local lake).

    ``s3`` is the code location's S3 binding (``resources.bound.bound_s3``), the same the assets take,
    so a caller that binds only the sensors (tests, benchmarks) gets it too.
    """
    return {"sensor_settings": default_sensor_settings(), "s3": bound_s3()}

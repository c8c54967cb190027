"""The shape every sensor of the project shares: the lake's resources bound, one evaluation per tick.

A sensor's logic is a plain function of the Dagster context and a ``Tick`` (what it reads besides the
instance), so tests call it with a clock of their choice; ``lake_sensor`` wraps it into the sensor the
code location loads. (No ``from __future__ import annotations``: Dagster reads the wrapper's resource
annotations as classes.)
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import dagster as dg
from dagster_aws.s3 import S3Resource

from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.sensors.settings import SensorSettingsResource


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Tick:
    """The lake, the sensors' settings, the clock, and the client that lists an S3 lake (None: the
    lake's own filesystem)."""

    lake: LakeResource
    settings: SensorSettingsResource
    now: datetime = field(default_factory=_utc_now)
    s3: S3Resource | None = None


Evaluation = Callable[[dg.SensorEvaluationContext, Tick], dg.SensorResult]


def lake_sensor(
    evaluate: Evaluation,
    *,
    name: str,
    description: str,
    minimum_interval_seconds: int,
    asset_selection: dg.AssetSelection | None = None,
) -> dg.SensorDefinition:
    """A sensor, running by default, whose ticks are ``evaluate`` on the bound resources."""

    @dg.sensor(
        name=name,
        description=description,
        asset_selection=asset_selection,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def _sensor(
        context: dg.SensorEvaluationContext,
        lake: LakeResource,
        sensor_settings: SensorSettingsResource,
        s3: S3Resource,
    ) -> dg.SensorResult:
        return evaluate(context, Tick(lake, sensor_settings, s3=s3))

    return _sensor

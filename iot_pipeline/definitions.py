"""The code location: every asset, check, sensor, job and resource of iot-pipeline."""

from __future__ import annotations

import atexit
import gc

import dagster as dg

from iot_pipeline.assets import ASSETS
from iot_pipeline.bindings import default_resources
from iot_pipeline.checks import CHECKS
from iot_pipeline.contract.rules import EventTimeRules
from iot_pipeline.sensors import SENSORS, sensor_resources
from iot_pipeline.streaming.job import stream_to_bronze_job

# The contract's event-time settings are read where each rule is built; a bad value fails the code
# location here, naming its variable, instead of the first stream batch or hourly run.
EventTimeRules.from_env()

# A process that loaded the code location (a CLI run, a run worker) spent about 0.9 s after its run in
# the interpreter's final garbage collections over what Dagster, Spark and pandas allocated. Frozen,
# those objects are left to the operating system (docs/performance.md, "Small runs").
atexit.register(gc.freeze)

defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=CHECKS,
    sensors=SENSORS,
    jobs=[stream_to_bronze_job],
    resources={**default_resources(), **sensor_resources()},
    # Every run (sensor, backfill, UI, CLI) executes its steps in one process: one Spark session per
    # run, shared by the asset and check steps, instead of a process and a JVM per step.
    executor=dg.in_process_executor,
)

"""Partitions, defined once: UTC hours and days of event time.

The first partition comes from ``IOT_PARTITIONS_START`` (``YYYY-MM-DD-HH:MM``, UTC) when the code
location loads, so a deployment chooses how far back its history goes without a code change.
"""

from __future__ import annotations

import dagster as dg

from iot_pipeline.contract.rules import PARTITIONS_START_FORMAT, partitions_start

HOURLY_FORMAT = PARTITIONS_START_FORMAT

HOURLY = dg.HourlyPartitionsDefinition(start_date=partitions_start(), timezone="UTC", fmt=HOURLY_FORMAT)
DAILY = dg.DailyPartitionsDefinition(start_date=partitions_start()[:10], timezone="UTC")

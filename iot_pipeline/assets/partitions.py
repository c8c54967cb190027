"""Partitions, defined once: UTC hours and days of event time.

The first partition comes from ``IOT_PARTITIONS_START`` (``YYYY-MM-DD-HH:MM``, UTC) when the code
location loads, so a deployment chooses how far back its history goes without a code change.
"""

from __future__ import annotations

import os

import dagster as dg

DEFAULT_START = "2026-01-01-00:00"
HOURLY_FORMAT = "%Y-%m-%d-%H:%M"


def partitions_start() -> str:
    return os.environ.get("IOT_PARTITIONS_START") or DEFAULT_START


HOURLY = dg.HourlyPartitionsDefinition(start_date=partitions_start(), timezone="UTC", fmt=HOURLY_FORMAT)
DAILY = dg.DailyPartitionsDefinition(start_date=partitions_start()[:10], timezone="UTC")

"""When each layer counts as late: Dagster freshness policies, evaluated by the daemon, shown in the UI.

- ``bronze/events``: the bronze report sensor records a landed hour each time its files change, so
  with a running stream the latest record is at most a minute or two old. No record for 10 minutes
  warns, for 30 minutes fails: the stream (or the broker in front of it) has stopped.
- ``silver/events``: an hour closes 15 minutes after its end (``IOT_HOUR_GRACE_MINUTES``), the
  hourly sensor requests it, and late rows re-run it at most every settle interval (10 minutes); so
  by minute 45 of every hour the previous hour must have materialised within the last 45 minutes.
- ``gold/daily_event_duration_p95``: a day closes at 00:15 UTC (``IOT_HOUR_GRACE_MINUTES``), its
  hours run, then the daily roll-up; the day's p95 must have materialised by 02:00 UTC.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from iot_pipeline.assets.keys import BRONZE_EVENTS, GOLD_DAILY_EVENT_DURATION_P95, SILVER_EVENTS

BRONZE_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(minutes=30), warn_window=timedelta(minutes=10)
)
DAILY_P95_FRESHNESS = dg.FreshnessPolicy.cron(deadline_cron="0 2 * * *", lower_bound_delta=timedelta(hours=2))
SILVER_HOURLY_FRESHNESS = dg.FreshnessPolicy.cron(
    deadline_cron="45 * * * *", lower_bound_delta=timedelta(minutes=45)
)

# The assets the policies above govern; the Prometheus exporter reports exactly these.
FRESHNESS_ASSETS: tuple[dg.AssetKey, ...] = (BRONZE_EVENTS, SILVER_EVENTS, GOLD_DAILY_EVENT_DURATION_P95)

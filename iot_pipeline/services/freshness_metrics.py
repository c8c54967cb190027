"""``iot-pipeline freshness-metrics``: the daemon's freshness verdicts as Prometheus metrics.

Dagster's daemon evaluates the freshness policies of :mod:`iot_pipeline.assets.freshness` and keeps
each asset's state (PASS, WARN, FAIL, UNKNOWN) in the instance; the UI shows it, but the stack's
alerting runs on Prometheus. This exporter reads the same instance (``DAGSTER_HOME``: the local
SQLite files or the deployment's Postgres) on every scrape and serves, per governed asset:

- ``iot_dagster_asset_freshness_state{asset, state}``: 1 for the current state, 0 for the others;
- ``iot_dagster_asset_freshness_updated_timestamp_seconds{asset}``: when that state began;
- ``iot_dagster_asset_last_materialization_timestamp_seconds{asset}``: the newest materialisation.

``deploy/prometheus/alerts.yml`` alerts on a FAIL (and on the exporter being down). Read-only: it
never writes to the instance.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    import dagster as dg

DEFAULT_PORT = 9110
PORT_ENV = "IOT_FRESHNESS_METRICS_PORT"
STATES = ("PASS", "WARN", "FAIL", "UNKNOWN")  # dagster FreshnessState, NOT_APPLICABLE aside


class FreshnessCollector(Collector):
    """Reads the instance on every scrape, so the metrics are never staler than Prometheus' interval."""

    def __init__(self, instance: dg.DagsterInstance, keys: Sequence[dg.AssetKey] | None = None):
        from iot_pipeline.assets.freshness import FRESHNESS_ASSETS  # the CLI imports this module: stay light

        self._instance = instance
        self._keys = list(FRESHNESS_ASSETS if keys is None else keys)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        state = GaugeMetricFamily(
            "iot_dagster_asset_freshness_state",
            "1 for the asset's current freshness state as the Dagster daemon evaluated it, 0 for the others.",
            labels=["asset", "state"],
        )
        since = GaugeMetricFamily(
            "iot_dagster_asset_freshness_updated_timestamp_seconds",
            "When the asset entered its current freshness state (Unix seconds).",
            labels=["asset"],
        )
        last = GaugeMetricFamily(
            "iot_dagster_asset_last_materialization_timestamp_seconds",
            "Time of the asset's newest materialisation, runless ones included (Unix seconds).",
            labels=["asset"],
        )
        records = self._instance.get_freshness_state_records(self._keys)
        for key in self._keys:
            asset = key.to_user_string()
            record = records.get(key)
            current = record.freshness_state.value if record else "UNKNOWN"
            for name in STATES:
                state.add_metric([asset, name], 1.0 if name == current else 0.0)
            if record:
                since.add_metric([asset], record.updated_at.timestamp())
            event = self._instance.get_latest_materialization_event(key)
            if event is not None:
                last.add_metric([asset], event.timestamp)
        yield state
        yield since
        yield last


def registry_for(instance: dg.DagsterInstance) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FreshnessCollector(instance))
    return registry


def serve(args: argparse.Namespace) -> int:
    if not os.environ.get("DAGSTER_HOME"):
        raise SystemExit("freshness-metrics: set DAGSTER_HOME to the Dagster instance to read.")
    import dagster as dg

    instance = dg.DagsterInstance.get()
    server, _ = start_http_server(args.port, addr=args.host, registry=registry_for(instance))
    print(
        f"freshness metrics on http://{args.host}:{args.port}/metrics (instance {os.environ['DAGSTER_HOME']})"
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "freshness-metrics",
        help="serve the Dagster daemon's freshness states of bronze, silver and the daily p95 to Prometheus",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--host", default=os.environ.get("IOT_FRESHNESS_METRICS_HOST", "0.0.0.0"))
    p.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get(PORT_ENV, DEFAULT_PORT)),
        help=f"HTTP port of /metrics (default {DEFAULT_PORT}, or {PORT_ENV})",
    )
    p.set_defaults(func=serve)

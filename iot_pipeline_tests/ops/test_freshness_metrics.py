"""``iot-pipeline freshness-metrics`` as Prometheus scrapes it: a real process on a real Dagster instance."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange
from prometheus_client.parser import text_string_to_metric_families

from iot_pipeline.assets.keys import BRONZE_EVENTS, SILVER_EVENTS
from iot_pipeline.services.processes import free_port
from iot_pipeline_tests.ops.support import FRESHNESS_METRICS

BIN = Path(sys.executable).parent


def scrape(port: int, deadline: float) -> dict[tuple[str, tuple], float]:
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                text = resp.read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_exporter_serves_the_instance_freshness_states(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    instance = dg.DagsterInstance.from_config(str(home))
    instance.report_runless_asset_event(dg.AssetMaterialization(BRONZE_EVENTS, partition="2026-12-01-00:00"))
    instance._report_runless_asset_event(  # what the daemon's freshness evaluation records
        FreshnessStateChange(
            key=SILVER_EVENTS,
            previous_state=FreshnessState.PASS,
            new_state=FreshnessState.FAIL,
            state_change_timestamp=1_780_000_000.0,
        )
    )
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "iot-pipeline"), "freshness-metrics", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "DAGSTER_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        got = scrape(port, time.monotonic() + 90)
        state = {
            (dict(labels)["asset"], dict(labels)["state"]): v
            for (name, labels), v in got.items()
            if name == "iot_dagster_asset_freshness_state"
        }
        assert state[("silver/events", "FAIL")] == 1 and state[("silver/events", "PASS")] == 0
        assert state[("bronze/events", "UNKNOWN")] == 1  # never evaluated yet
        assert state[("gold/daily_event_duration_p95", "UNKNOWN")] == 1
        since = {
            dict(lb)["asset"]: v for (n, lb), v in got.items() if n.endswith("updated_timestamp_seconds")
        }
        assert since == {"silver/events": 1_780_000_000.0}
        last = {
            dict(lb)["asset"]: v
            for (n, lb), v in got.items()
            if n == "iot_dagster_asset_last_materialization_timestamp_seconds"
        }
        assert set(last) == {"bronze/events"} and abs(last["bronze/events"] - time.time()) < 600
        assert {n for n, _ in got} == FRESHNESS_METRICS

        # Read on every scrape: a later state shows without restarting the exporter.
        instance._report_runless_asset_event(
            FreshnessStateChange(
                key=SILVER_EVENTS,
                previous_state=FreshnessState.FAIL,
                new_state=FreshnessState.PASS,
                state_change_timestamp=1_780_000_600.0,
            )
        )
        again = scrape(port, time.monotonic() + 30)
        key = ("iot_dagster_asset_freshness_state", (("asset", "silver/events"), ("state", "PASS")))
        assert again[key] == 1
    finally:
        proc.terminate()
        proc.wait(30)

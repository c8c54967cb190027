"""A real ``dagster dev`` (webserver + daemon) on the project's definitions, for the browser tests.

It runs on 127.0.0.1 on a free port with a temporary ``DAGSTER_HOME`` and a lake the tests build,
exactly as ``make run`` starts it apart from those three settings.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from iot_pipeline.services.processes import free_port

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# The launch-driven sensors would race the UI's own backfills; the report sensor stays on (it is tested).
STOPPED_SENSORS = ("bronze_hours_sensor", "daily_rollup_sensor")


def dagster_env(home: Path, lake: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "IOT_LAKE_ROOT": str(lake),
        "IOT_SPARK_MASTER": "local[2]",
        "IOT_PARTITIONS_START": "2026-01-01-00:00",
        "IOT_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",  # never contacted: every hour used has bronze files
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }


def write_instance(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")


def stop_sensors(env: dict[str, str]) -> None:
    """Stop the run-launching sensors in the instance, as an operator would with the CLI."""
    for name in STOPPED_SENSORS:  # one after the other: the first creates the SQLite instance
        proc = subprocess.run(
            [str(BIN / "dagster"), "sensor", "stop", name, "-w", "workspace.yaml"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(
                f"dagster sensor stop {name} failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
            )


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"{url}/graphql", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


LOCATION_STATUS = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"


def start(env: dict[str, str], log: Path, timeout: float = 180) -> tuple[subprocess.Popen, str]:
    """``dagster dev`` in its own process group; returns once the code location has loaded."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    fh = log.open("w")
    proc = subprocess.Popen(
        [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dagster dev exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
        try:
            entries = graphql(url, LOCATION_STATUS)["data"]["workspaceOrError"]["locationEntries"]
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                return proc, url
        except (OSError, KeyError, TypeError, ValueError):
            pass
        time.sleep(1)
    stop(proc)
    raise RuntimeError(
        f"dagster dev did not load the code location in {timeout} s:\n{log.read_text()[-4000:]}"
    )


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the whole group (webserver, daemon, code server, run workers), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

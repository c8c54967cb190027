"""CI drives Dagster through its CLI: validate the code location, backfill two hours and their day.

Each ``dagster asset materialize`` is a fresh process pointed by ``IOT_LAKE_ROOT`` at a lake whose
bronze hours this test wrote. The module runs twice: with a Spark driver inside each run (what CI and
a deployment without a server do) and on a real Spark Connect server started here, as ``make run``
starts one (``IOT_SPARK_REMOTE``); the same assertions hold for both.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from iot_pipeline.resources.spark import CONNECT_WAIT_ENV, REMOTE_ENV, SESSION_READY, WAITING_FOR_SERVER
from iot_pipeline.services.processes import free_port
from iot_pipeline.services.spark_connect import SparkConnectServer, listening
from iot_pipeline.testing.bronze import generate_bronze, reference_p95, write_bronze

pytestmark = [pytest.mark.spark, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).parent / "dagster")
HOUR_KEY, LAST_HOUR_KEY, DAY = "2026-01-05-10:00", "2026-01-05-11:00", "2026-01-05"


def base_env(tmp: Path) -> dict[str, str]:
    home = tmp / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "IOT_LAKE_ROOT": str(tmp / "lake"),
        "IOT_SPARK_MASTER": "local[2]",
        "IOT_PARTITIONS_START": "2026-01-01-00:00",
        "IOT_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",  # never contacted: the hour has bronze files
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }


@pytest.fixture(scope="module", params=["driver-in-run", "spark-connect"])
def cli_env(request, tmp_path_factory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("cli")
    env = base_env(tmp)
    if request.param == "driver-in-run":
        yield {"env": env, "lake": tmp / "lake"}
        return
    server = SparkConnectServer(tmp / "spark-connect", free_port())
    server.start(env)  # configured from the runs' environment, as `make run` does
    try:
        yield {"env": {**env, REMOTE_ENV: server.remote}, "lake": tmp / "lake", "server": server}
    finally:
        server.stop()


def run(args: list[str], env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [DAGSTER, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, (
        f"dagster {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    )
    return proc


def assert_ran_on_its_spark(proc: subprocess.CompletedProcess, cli_env: dict) -> None:
    """The run's log names where its session came from: the server, or a driver of its own."""
    where = "on the Spark Connect server" if "server" in cli_env else "(driver local[2])"
    assert any(SESSION_READY in line and where in line for line in (proc.stdout + proc.stderr).splitlines())


def test_definitions_validate(cli_env) -> None:
    proc = run(["definitions", "validate", "-w", "workspace.yaml"], cli_env["env"], timeout=180)
    assert "Validation successful" in proc.stdout + proc.stderr


def test_backfill_hours_then_their_day_as_the_runbook_does(cli_env) -> None:
    """The two backfill commands of docs/operations.md, verbatim apart from the dates."""
    lake: Path = cli_env["lake"]
    batch = generate_bronze(
        datetime(2026, 1, 5, 10, tzinfo=timezone.utc), 2, {"temperature": 700, "door": 120}, seed=5
    )
    write_bronze(batch.rows, lake / "bronze" / "events")

    silver = run(
        ["asset", "materialize", "-m", "iot_pipeline.definitions",
         "--select", "silver/events,silver/event_id_index,silver/device_minute_stats",
         "--partition-range", f"{HOUR_KEY}...{LAST_HOUR_KEY}"],
        cli_env["env"],
    )  # fmt: skip
    assert_ran_on_its_spark(silver, cli_env)
    ids: list[str] = []
    for hour in (10, 11):
        files = list(
            (lake / "silver" / "events" / f"event_date={DAY}" / f"event_hour={hour}").glob("*.parquet")
        )
        assert len(files) == 1, f"hour {hour}: one compacted file expected, got {files}"
        ids += pq.read_table(files[0], columns=["event_id"])["event_id"].to_pylist()
        for dataset in ("device_minute_stats", "event_id_index"):
            assert list(
                (lake / "silver" / dataset / f"event_date={DAY}" / f"event_hour={hour}").glob("*.parquet")
            )
    assert len(ids) == len(set(ids)) == batch.unique.num_rows == 820

    gold = run(
        ["asset", "materialize", "-m", "iot_pipeline.definitions",
         "--select", "gold/daily_event_duration_p95,gold/daily_device_type_summary",
         "--partition", DAY],
        cli_env["env"],
    )  # fmt: skip
    assert_ran_on_its_spark(gold, cli_env)
    assert list((lake / "gold" / "daily_event_duration_p95" / f"event_date={DAY}").glob("*.parquet"))
    assert list((lake / "gold" / "daily_device_type_summary").rglob("*.parquet"))
    with open(lake / "exports" / "daily_event_duration_p95" / f"event_date={DAY}.csv") as f:
        rows = list(csv.DictReader(f))
    expected = reference_p95(batch.unique)[(DAY, "temperature")]
    assert [r["device_type"] for r in rows] == ["temperature"]  # door: 120 events, excluded
    assert int(rows[0]["events_total"]) == 700
    assert float(rows[0]["p95_event_duration"]) == pytest.approx(expected["p95_event_duration"], rel=1e-9)


def test_a_run_whose_spark_connect_server_is_down_fails_naming_the_setting(tmp_path: Path) -> None:
    env = {**base_env(tmp_path), REMOTE_ENV: f"sc://127.0.0.1:{free_port()}", CONNECT_WAIT_ENV: "2"}
    write_bronze(
        generate_bronze(datetime(2026, 1, 5, 10, tzinfo=timezone.utc), 1, {"door": 10}, seed=1).rows,
        tmp_path / "lake" / "bronze" / "events",
    )
    proc = subprocess.run(
        [DAGSTER, "asset", "materialize", "-m", "iot_pipeline.definitions", "--select", "silver/events",
         "--partition", HOUR_KEY],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0
    assert (
        f"Cannot use the Spark Connect server at {REMOTE_ENV}='{env[REMOTE_ENV]}'"
        in proc.stdout + proc.stderr
    )
    assert not (tmp_path / "lake" / "silver").exists()


def test_a_run_waits_for_a_server_that_died_while_the_supervisor_restarts_it(tmp_path: Path) -> None:
    """What ``make run`` does when the shared server dies (an out-of-memory kill, say): its loop
    restarts the server (``ensure_running``), and a run launched meanwhile waits for it and succeeds."""
    env = base_env(tmp_path)
    write_bronze(
        generate_bronze(datetime(2026, 1, 5, 10, tzinfo=timezone.utc), 1, {"door": 40}, seed=2).rows,
        tmp_path / "lake" / "bronze" / "events",
    )
    server = SparkConnectServer(tmp_path / "spark-connect", free_port())
    server.start(env)
    try:
        pid = server.pid()
        assert pid is not None and server.ensure_running(env) is False  # alive: left alone
        os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while listening(server.port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not listening(server.port)
        run_env = {**env, REMOTE_ENV: server.remote, CONNECT_WAIT_ENV: "120"}
        proc = subprocess.Popen(
            [DAGSTER, "asset", "materialize", "-m", "iot_pipeline.definitions", "--select", "silver/events",
             "--partition", HOUR_KEY],
            cwd=REPO, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            head = []  # until the run says it waits: only then does the supervisor bring the server back
            for line in proc.stdout:  # type: ignore[union-attr]
                head.append(line)
                if WAITING_FOR_SERVER in line:
                    break
            assert any(WAITING_FOR_SERVER in line for line in head), "".join(head)[-4000:]
            assert server.ensure_running(env) is True and listening(server.port)
            out = "".join(head) + proc.communicate(timeout=300)[0]
        finally:
            proc.kill()
        assert proc.returncode == 0, out[-4000:]
        assert any(SESSION_READY in line and server.remote in line for line in out.splitlines())
        assert any((tmp_path / "lake" / "silver" / "events").rglob("*.parquet"))
    finally:
        server.stop()

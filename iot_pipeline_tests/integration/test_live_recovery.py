"""A failed hourly run, retried by Dagster, then fixed: the hour and then its day follow by themselves.

Real Dagster: ``dagster-daemon run`` on ``workspace.yaml`` with the instance settings that
``iot-pipeline local up`` writes (queued runs, the Spark pool, run retries), the project's own sensors
ticking, real Spark runs. Nobody touches the sensors: the test only breaks a bronze file, watches the
instance, repairs the file, and watches again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest
from dagster import DagsterRunStatus

from iot_pipeline.sensors.requests import REQUEST_TAG
from iot_pipeline.services.local_cli import local_instance_yaml
from iot_pipeline.services.processes import terminate
from iot_pipeline.testing.bronze import generate_bronze, write_bronze

pytestmark = [pytest.mark.spark, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
DAY = (datetime.now(timezone.utc) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
GOOD, BROKEN = DAY + timedelta(hours=1), DAY + timedelta(hours=3)


def key(h: datetime) -> str:
    return h.strftime("%Y-%m-%d-%H:%M")


def runs_of(instance: dg.DagsterInstance, partition: str) -> list[dg.DagsterRun]:
    """The runs of a partition, oldest first (retries included: they copy the partition tag)."""
    records = instance.get_run_records(dg.RunsFilter(tags={"dagster/partition": partition}))
    return [r.dagster_run for r in sorted(records, key=lambda r: r.create_timestamp)]


def wait_for(what: str, check: Callable[[], bool], timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(3)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    pytest.fail(f"timed out after {timeout_s:.0f}s waiting for: {what}\n--- daemon log tail ---\n{tail}")


@pytest.mark.timeout(3600)
def test_failed_hour_is_retried_then_fixed_and_its_day_follows(tmp_path: Path) -> None:
    home, lake = tmp_path / "dagster_home", tmp_path / "lake"
    home.mkdir()
    (home / "dagster.yaml").write_text(local_instance_yaml(spark_runs=1, max_retries=1))
    for hour, seed in ((GOOD, 3), (BROKEN, 4)):
        batch = generate_bronze(hour, 1, {"a": 300, "b": 200}, seed=seed, late_fraction=0.0)
        write_bronze(batch.rows, lake / "bronze" / "events", files_per_hour=1)
    corrupt = lake / "bronze" / "events" / f"event_date={BROKEN:%Y-%m-%d}" / "event_hour=3" / "ingest_batch=9"
    corrupt.mkdir(parents=True)
    (corrupt / "part-00000-corrupt.snappy.parquet").write_bytes(b"not a parquet file at all")

    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "IOT_LAKE_ROOT": str(lake),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "IOT_SPARK_MASTER": "local[2]",
        "IOT_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # never used: every hour has bronze files
    }
    log = tmp_path / "daemon.log"
    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"],
        cwd=REPO, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        # 1. The broken hour fails, Dagster retries it once, the retry fails too; the good hour succeeds.
        def broken_hour_gave_up() -> bool:
            runs = runs_of(instance, key(BROKEN))
            return len(runs) >= 2 and all(r.status == DagsterRunStatus.FAILURE for r in runs)

        wait_for("the broken hour's run and its retry to fail", broken_hour_gave_up, 1500, log)
        first, retry = runs_of(instance, key(BROKEN))[:2]
        assert retry.tags.get("dagster/parent_run_id") == first.run_id
        assert retry.tags[REQUEST_TAG] == first.tags[REQUEST_TAG]  # the sensor sees one request
        wait_for(
            "the good hour to succeed",
            lambda: any(r.status == DagsterRunStatus.SUCCESS for r in runs_of(instance, key(GOOD))),
            600,
            log,
        )
        time.sleep(70)  # a daily tick at least: the day must not run on a failed hour
        assert runs_of(instance, f"{DAY:%Y-%m-%d}") == []
        assert len(runs_of(instance, key(BROKEN))) == 2  # nothing more until the data changes

        # 2. Someone repairs the hour's files; the sensors do the rest.
        (corrupt / "part-00000-corrupt.snappy.parquet").unlink()
        wait_for(
            "the repaired hour to succeed",
            lambda: runs_of(instance, key(BROKEN))[-1].status == DagsterRunStatus.SUCCESS,
            600,
            log,
        )
        wait_for(
            "its day to succeed",
            lambda: any(r.status == DagsterRunStatus.SUCCESS for r in runs_of(instance, f"{DAY:%Y-%m-%d}")),
            600,
            log,
        )
        assert (lake / "gold" / "daily_device_type_summary" / f"event_date={DAY:%Y-%m-%d}").is_dir()
        # Every hourly and daily run in the instance ran alone: the pool's limit of 1 held.
        spans = [
            (r.start_time, r.end_time)
            for r in instance.get_run_records()
            if r.start_time and r.end_time and r.dagster_run.tags.get(REQUEST_TAG)
        ]
        overlapping = [(a, b) for a in spans for b in spans if a < b and b[0] < a[1]]
        assert overlapping == [], overlapping
    finally:
        terminate(daemon.pid, 60, group=True, first=signal.SIGINT)
        instance.dispose()

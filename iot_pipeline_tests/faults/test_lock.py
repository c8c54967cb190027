"""The checkpoint's single-writer lease and the staging cleanup, through Hadoop's FileSystem of a real
Spark session; and the checkpoint commands that respect the lease."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from iot_pipeline.storage.layout import LakeLayout
from iot_pipeline.streaming.checkpoint_cli import register
from iot_pipeline.streaming.lock import (
    LockOwner,
    StreamLock,
    StreamLockError,
    clean_staging,
    lock_path,
    read_lock,
)

pytestmark = [pytest.mark.spark, pytest.mark.faults]


def acquire(spark: SparkSession, layout: LakeLayout, **kw) -> StreamLock:
    return StreamLock.acquire(spark, layout, "bronze", settle_seconds=0.05, log=kw.pop("log", print), **kw)


def rewrite(layout: LakeLayout, **changes) -> None:
    path = Path(lock_path(layout, "bronze"))
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.write_text(json.dumps(doc))


def test_a_second_stream_fails_fast_naming_the_holder(spark: SparkSession, tmp_path: Path) -> None:
    layout = LakeLayout(str(tmp_path / "lake"))
    first = acquire(spark, layout, dagster_run_id="run-one")
    t0 = time.monotonic()
    with pytest.raises(StreamLockError) as err:
        acquire(spark, layout, dagster_run_id="run-two")
    assert time.monotonic() - t0 < 5
    message = str(err.value)
    assert "Another stream is running" in message
    assert f"pid {os.getpid()}" in message and "Dagster run run-one" in message
    assert "checkpoint unlock" in message
    holder = read_lock(spark, layout, "bronze")
    assert holder is not None and holder.dagster_run_id == "run-one"
    first.release()
    assert not Path(lock_path(layout, "bronze")).exists()
    acquire(spark, layout).release()  # free again


def test_a_lease_without_heartbeat_or_with_a_dead_process_is_taken_over(
    spark: SparkSession, tmp_path: Path
) -> None:
    layout = LakeLayout(str(tmp_path / "lake"))
    warnings: list[str] = []
    old = acquire(spark, layout)
    # Another host whose heartbeat stopped 200 s ago (stale after 90 s): taken over.
    rewrite(layout, host="elsewhere", heartbeat_at=time.time() - 200)
    new = acquire(spark, layout, log=warnings.append)
    assert any("no heartbeat for" in w and "elsewhere" in w for w in warnings)
    # The old holder notices at its next heartbeat and does not write on.
    assert not old.refresh() and old.lost and "taken over" in old.lost
    new.release()

    # This host, a pid that is gone (a kill -9): taken over at once, heartbeat fresh or not.
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    acquire(spark, layout)
    rewrite(layout, pid=int(dead.stdout), pid_start=None)
    warnings.clear()
    acquire(spark, layout, log=warnings.append).release()
    assert any("is gone" in w for w in warnings)

    # Another host with a fresh heartbeat: not stale.
    holder = acquire(spark, layout)
    rewrite(layout, host="elsewhere")
    with pytest.raises(StreamLockError, match="elsewhere"):
        acquire(spark, layout)
    holder.lost = "test"  # do not delete a lease that is no longer ours
    holder.release()


def test_heartbeat_keeps_the_lease_and_reports_its_loss(spark: SparkSession, tmp_path: Path) -> None:
    layout = LakeLayout(str(tmp_path / "lake"))
    lock = acquire(spark, layout, heartbeat_seconds=0.2)
    lost: list[str] = []
    before = LockOwner.parse(Path(lock_path(layout, "bronze")).read_text())
    lock.start_heartbeat(on_lost=lost.append)
    time.sleep(1.0)
    after = LockOwner.parse(Path(lock_path(layout, "bronze")).read_text())
    assert before and after and after.heartbeat_at > before.heartbeat_at
    Path(lock_path(layout, "bronze")).unlink()  # an operator's `checkpoint unlock`
    deadline = time.monotonic() + 10
    while not lost and time.monotonic() < deadline:
        time.sleep(0.1)
    assert lost and "removed" in lost[0]
    lock.release()


def run_cli(lake: Path, *args: str) -> subprocess.CompletedProcess:
    code = (
        "import argparse, sys; from iot_pipeline.streaming.checkpoint_cli import register; "
        "p = argparse.ArgumentParser(); s = p.add_subparsers(); register(s); a = p.parse_args(sys.argv[1:]); "
        "sys.exit(a.func(a))"
    )
    return subprocess.run(
        [sys.executable, "-c", code, "checkpoint", "--lake-root", str(lake), *args],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_checkpoint_reset_refuses_under_a_live_lease_and_unlock_removes_it(
    spark: SparkSession, tmp_path: Path
) -> None:
    assert register  # the CLI module under test
    lake = tmp_path / "lake"
    layout = LakeLayout(str(lake))
    (lake / "_state" / "checkpoints" / "bronze" / "commits").mkdir(parents=True)
    lock = acquire(spark, layout, dagster_run_id="run-live")
    refused = run_cli(lake, "reset")
    assert refused.returncode == 2 and "stop it first" in refused.stderr and "run-live" in refused.stderr
    assert (lake / "_state" / "checkpoints" / "bronze").exists()
    unlocked = run_cli(lake, "unlock")
    assert unlocked.returncode == 0 and "removed the stream lease" in unlocked.stdout
    assert not Path(lock_path(layout, "bronze")).exists()
    assert not lock.refresh()
    assert run_cli(lake, "reset").returncode == 0
    assert run_cli(lake, "unlock").stdout.startswith("no stream lease")


def test_staging_cleanup_removes_old_leftovers_only(spark: SparkSession, tmp_path: Path) -> None:
    layout = LakeLayout(str(tmp_path / "lake"))
    bronze = Path(layout.bronze_events)
    data = bronze / "event_date=2026-11-20" / "event_hour=13" / "ingest_batch=4"
    data.mkdir(parents=True)
    spark.range(3).write.mode("overwrite").parquet(str(data / "x"))
    old = bronze / ".spark-staging-old" / "event_date=2026-11-20" / "event_hour=13" / "ingest_batch=5"
    young = Path(layout.quarantine_events) / ".spark-staging-young" / "kafka_date=2026-11-20"
    for d in (old, young):
        d.mkdir(parents=True)
        (d / "part-0.parquet").write_bytes(b"partial")
    past = time.time() - 3600
    for p in [*(bronze / ".spark-staging-old").rglob("*"), bronze / ".spark-staging-old"]:
        os.utime(p, (past, past))
    removed = clean_staging(spark, layout, grace_seconds=600, log=lambda _: None)
    assert removed == [f"{layout.bronze_events}/.spark-staging-old"]
    assert not (bronze / ".spark-staging-old").exists()
    assert (young / "part-0.parquet").exists()  # a write that may still be running
    assert spark.read.parquet(str(data / "x")).count() == 3
    assert clean_staging(spark, layout, grace_seconds=0, log=lambda _: None) == [
        f"{layout.quarantine_events}/.spark-staging-young"
    ]

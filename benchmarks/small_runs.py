"""Benchmark: small runs as users launch them, `dagster asset materialize` from a shell, checks included.

Two runs users wait for every hour and every day:

- one quiet hour of ``silver/events`` (about 17k events: a day of 400k events / 24) with its checks
  and ``silver/device_minute_stats``' dependency left out;
- one day of ``gold/daily_event_duration_p95`` over 400k events, with its check.

Each is launched as a CLI process (``dagster asset materialize -m iot_pipeline.definitions --select
... --partition ...``) on a fresh lake and a temporary ``DAGSTER_HOME``, timed from launch to the
process' exit, and broken down from the run's own event log: process start, imports and loading the
code location (launch -> RUN_START), the Spark session (the resource's "Spark session ready" line),
each step (asset and checks; the first one includes the session), and the exit. Each run is measured
on a Spark Connect server that the script starts once, as ``make run`` does (``IOT_SPARK_REMOTE``),
and, as the baseline in the same script, with a Spark driver started inside the run (no
``IOT_SPARK_REMOTE``: what the CLI, CI and a deployment without the server do).

    .venv/bin/python benchmarks/small_runs.py                 # 400k events, 3 repetitions
    .venv/bin/python benchmarks/small_runs.py --events 100000 --repeat 1
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
from dagster import DagsterEventType

from iot_pipeline.resources.spark import SESSION_READY
from iot_pipeline.services.processes import free_port
from iot_pipeline.services.spark_connect import REMOTE_ENV, SparkConnectServer
from iot_pipeline.testing.bronze import write_days

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
DAY = datetime(2026, 3, 2, tzinfo=timezone.utc)
HOUR = f"{DAY:%Y-%m-%d}-12:00"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def materialize(env: dict[str, str], target: list[str], select: str, partition: str) -> float:
    cmd = [
        str(BIN / "dagster"),
        "asset",
        "materialize",
        *target,
        "--select",
        select,
        "--partition",
        partition,
    ]
    t = time.time()
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return t


def breakdown(home: Path, launched: float, ended: float) -> dict[str, float]:
    """Seconds per phase of the newest run, from its event log."""
    instance = dg.DagsterInstance.from_config(str(home))
    run = instance.get_runs(limit=1)[0]
    records = instance.all_logs(run.run_id)
    out: dict[str, float] = {}
    run_start = next(r.timestamp for r in records if r.dagster_event_type == DagsterEventType.RUN_START)
    out["process + imports + load"] = run_start - launched
    steps: dict[str, list[float]] = {}
    inits: list[tuple[float, float]] = []
    init_start = None
    for r in records:
        ev = r.dagster_event
        if ev is None:
            continue
        if ev.event_type == DagsterEventType.RESOURCE_INIT_STARTED:
            init_start = r.timestamp
        elif ev.event_type == DagsterEventType.RESOURCE_INIT_SUCCESS and init_start is not None:
            inits.append((init_start, r.timestamp))
            init_start = None
        elif ev.event_type == DagsterEventType.STEP_START:
            steps.setdefault(ev.step_key, [r.timestamp, r.timestamp])
        elif ev.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            steps.setdefault(ev.step_key, [r.timestamp, r.timestamp])[1] = r.timestamp
    out["resource init"] = sum(b - a for a, b in inits)
    ready = [r.user_message for r in records if r.user_message.startswith(SESSION_READY)]
    out["Spark sessions started"] = float(len(ready))
    out["Spark session (within the first step)"] = sum(
        float(m.split(" in ")[1].split("s ")[0]) for m in ready
    )
    for key, (a, b) in steps.items():
        out[f"step {key}"] = b - a
    run_end = max(r.timestamp for r in records)
    out["exit after the run"] = ended - run_end
    out["total"] = ended - launched
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=400_000, help="events of the day")
    p.add_argument("--repeat", type=int, default=3, help="measurements per run and executor")
    p.add_argument("--work", type=Path, default=None, help="working directory (default: temporary)")
    args = p.parse_args()
    warnings.filterwarnings("ignore")

    work = args.work or Path(tempfile.mkdtemp(prefix="iot-small-runs-"))
    lake, home = work / "lake", work / "dagster_home"
    shutil.rmtree(lake, ignore_errors=True)
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "IOT_LAKE_ROOT": str(lake),
        "IOT_PARTITIONS_START": "2026-01-01-00:00",
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYTHONPATH": str(REPO),
    }
    n = write_days(lake / "bronze" / "events", DAY, 1, args.events)
    log(f"{n:,} bronze events for {DAY:%Y-%m-%d} under {lake}")
    project = ["-m", "iot_pipeline.definitions"]
    t = time.time()
    subprocess.run(
        [str(BIN / "dagster"), "asset", "materialize", *project, "--select", "silver/events,silver/event_id_index",
         "--partition-range", f"{DAY:%Y-%m-%d}-00:00...{DAY:%Y-%m-%d}-23:00"],
        env=env, cwd=REPO, check=True, capture_output=True, timeout=1800,
    )  # fmt: skip
    log(f"silver/events for the day's 24 hours in one run (not compared): {time.time() - t:.1f}s")

    cases = {
        "quiet hour: silver/events + checks": ("silver/events", HOUR),
        "day of 400k events: gold/daily_event_duration_p95 + check": (
            "gold/daily_event_duration_p95",
            f"{DAY:%Y-%m-%d}",
        ),
    }
    server = SparkConnectServer(work / "spark-connect", free_port())
    t = time.time()
    server.start(env)  # configured from the runs' environment, as `make run` does
    log(f"Spark Connect server on {server.remote} in {time.time() - t:.1f}s")
    executors = {
        "Spark Connect server (make run)": {**env, REMOTE_ENV: server.remote},
        "driver in the run (baseline)": env,
    }
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    try:
        for case, (select, partition) in cases.items():
            for name, run_env in executors.items():
                for i in range(args.repeat):
                    launched = materialize(run_env, project, select, partition)
                    b = breakdown(home, launched, time.time())
                    results.setdefault((case, name), []).append(b)
                    log(f"{case} | {name} | #{i + 1}: {b['total']:.1f}s")
    finally:
        server.stop()

    print(f"\n## Small runs, launch to exit (median of {args.repeat})\n")
    for case in cases:
        print(f"### {case}\n")
        print("| phase | " + " | ".join(executors) + " |")
        print("|---|" + "---|" * len(executors))
        phases: list[str] = []
        for name in executors:
            for b in results[(case, name)]:
                phases += [k for k in b if k not in phases]
        phases = [k for k in phases if k != "total"] + ["total"]
        for phase in phases:
            cells = []
            for name in executors:
                values = [b[phase] for b in results[(case, name)] if phase in b]
                cells.append(f"{statistics.median(values):.2f}" if values else "")
            print(f"| {phase} | " + " | ".join(cells) + " |")
        ours, base = (statistics.median(b["total"] for b in results[(case, name)]) for name in executors)
        print(
            f"\nSpark Connect / driver in the run: {ours / base:.2f}x ({ours:.1f}s vs {base:.1f}s; target 15 s)\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Soak: the live local pipeline under a stream with late and duplicate events, then the ledger.

Starts the real local stack in a fresh state directory (``iot-pipeline local up --no-simulator``:
Kafka, ``dagster dev`` with the local instance's pool/queue/retry settings, the stream as a Dagster
run), then for ``--minutes`` sends waves of simulator events (``iot-pipeline simulate``, late and
duplicate rates on) into a few closed hours, over and over (late data, as a stream that keeps
receiving rows for recent hours), yesterday's last two hours included so a closed day exists. Then it
stops the waves, lets the sensors settle, and reports from the Dagster instance and the lake:

- runs per partition (a retried run counts once), the maximum number of Spark runs in progress at
  once and of runs in flight per partition, failed runs (a chain whose last retry succeeded is not
  failed), retried runs;
- for every closed hour with bronze data: silver's rows against bronze's distinct ``event_id``;
- for every closed day with data: the daily export present.

Targets (exit code 1 when one is missed): 0 failed, Spark runs at once <= the pool's limit, at most 1
run in flight per partition, silver == bronze distinct for every closed hour, every closed day built.

    .venv/bin/python benchmarks/soak.py --minutes 10
    .venv/bin/python benchmarks/soak.py --minutes 1.5 --yesterday-only --json out.json   # CI form
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from dagster import DagsterRunStatus
from dagster._core.storage.dagster_run import NOT_FINISHED_STATUSES

from iot_pipeline.services.processes import free_ports, terminate
from iot_pipeline.storage.layout import hour_partition_dir

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STREAM_JOB = "stream_to_bronze_job"
HOUR = timedelta(hours=1)
RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def log(msg: str) -> None:
    print(f"[soak {datetime.now(timezone.utc):%H:%M:%S}] {msg}", flush=True)


def expand(first: str, last: str) -> list[str]:
    """Partition keys from ``first`` to ``last`` (hours ``YYYY-MM-DD-HH:MM`` or days ``YYYY-MM-DD``)."""
    fmt, step = ("%Y-%m-%d-%H:%M", HOUR) if len(first) > 10 else ("%Y-%m-%d", timedelta(days=1))
    cur, end, out = datetime.strptime(first, fmt), datetime.strptime(last, fmt), []
    while cur <= end:
        out.append(cur.strftime(fmt))
        cur += step
    return out


def partitions_of(run: dg.DagsterRun) -> list[str]:
    tags = run.tags
    if "dagster/partition" in tags:
        return [tags["dagster/partition"]]
    if RANGE[0] in tags and RANGE[1] in tags:
        return expand(tags[RANGE[0]], tags[RANGE[1]])
    return []


def max_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda x: (x[0], x[1]))
    best = cur = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def run_ledger(instance: dg.DagsterInstance) -> dict:
    now = time.time()
    records = [r for r in instance.get_run_records() if r.dagster_run.job_name != STREAM_JOB]
    chains: dict[str, list[dg.RunRecord]] = defaultdict(list)
    for r in records:
        chains[r.dagster_run.tags.get("dagster/root_run_id", r.dagster_run.run_id)].append(r)
    per_partition: dict[str, int] = defaultdict(int)
    failed, retried = [], 0
    for chain in chains.values():
        chain.sort(key=lambda r: r.create_timestamp)
        last = chain[-1].dagster_run
        retried += len(chain) - 1
        for p in partitions_of(chain[0].dagster_run):
            per_partition[p] += 1
        if last.status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
            failed.append({"run": last.run_id, "partitions": partitions_of(last)})
    spans = [(r.start_time, r.end_time or now) for r in records if r.start_time]
    by_partition: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in records:
        if r.start_time:
            for p in partitions_of(r.dagster_run):
                by_partition[p].append((r.start_time, r.end_time or now))
    return {
        "runs": len(records),
        "runs_per_partition": dict(sorted(per_partition.items())),
        "max_runs_per_partition": max(per_partition.values(), default=0),
        "max_spark_runs_at_once": max_overlap(spans),
        "max_in_flight_per_partition": max((max_overlap(s) for s in by_partition.values()), default=0),
        "failed": failed,
        "retried_runs": retried,
        "in_flight": len(instance.get_runs(dg.RunsFilter(statuses=NOT_FINISHED_STATUSES))),
    }


def lake_ledger(lake: Path, closed_until: datetime) -> dict:
    """Per closed bronze hour: bronze distinct event_id vs silver rows; per closed day: its export."""
    hours, days = {}, {}
    bronze = lake / "bronze" / "events"
    for date_dir in sorted(bronze.glob("event_date=*")):
        for hour_dir in sorted(date_dir.glob("event_hour=*")):
            start = datetime.strptime(f"{date_dir.name[11:]} {hour_dir.name[11:]}", "%Y-%m-%d %H").replace(
                tzinfo=timezone.utc
            )
            if start + HOUR > closed_until:
                continue
            ids = pads.dataset(str(hour_dir), format="parquet").to_table(columns=["event_id"])["event_id"]
            silver_dir = Path(hour_partition_dir(str(lake / "silver" / "events"), start))
            silver = sum(pq.read_metadata(f).num_rows for f in silver_dir.glob("*.parquet"))
            hours[f"{start:%Y-%m-%d-%H:00}"] = {
                "bronze_distinct": len(set(ids.to_pylist())),
                "silver": silver,
            }
    for day in sorted({k[:10] for k in hours}):
        if (
            datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc) + timedelta(days=1)
            <= closed_until
        ):
            export = lake / "exports" / "daily_event_duration_p95" / f"event_date={day}.csv"
            days[day] = export.exists()
    return {"hours": hours, "days": days}


def simulate(env: dict, kafka_port: int, start: datetime, events: int, seed: int) -> None:
    cmd = [
        str(BIN / "iot-pipeline"), "simulate", "--bootstrap-servers", f"127.0.0.1:{kafka_port}",
        "--start", start.strftime("%Y-%m-%dT%H:%M:%SZ"), "--rate", "0", "--max-events", str(events),
        "--late-rate", "0.03", "--duplicate-rate", "0.03", "--malformed-rate", "0.005", "--seed", str(seed),
        "--devices", "40", "--no-metrics", "--no-progress",
    ]  # fmt: skip
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=300)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10, help="how long the waves of events go on")
    p.add_argument("--wave-seconds", type=float, default=45, help="pause between waves")
    p.add_argument("--events", type=int, default=4000, help="events per hour per wave")
    p.add_argument("--settle-minutes", type=int, default=2, help="IOT_SETTLE_MINUTES of the run")
    p.add_argument("--quiet-seconds", type=float, default=200, help="settled: no run for this long")
    p.add_argument("--max-settle-minutes", type=float, default=25)
    p.add_argument("--spark-runs", type=int, default=1, help="IOT_SPARK_RUN_LIMIT of the local instance")
    p.add_argument("--yesterday-only", action="store_true", help="waves into yesterday's last two hours only")
    p.add_argument("--state", type=Path, default=None, help="state directory (default: a temporary one)")
    p.add_argument("--json", type=Path, default=None, help="write the ledger here")
    args = p.parse_args()

    state = args.state or Path(tempfile.mkdtemp(prefix="iot-soak-"))
    # Chosen together, so no two coincide (the controller's port is not the broker's + 1 by luck).
    kafka_port, controller_port, dagster_port, metrics_port = free_ports(4)
    env = {
        **os.environ,
        "IOT_PIPELINE_STATE": str(state),
        "DAGSTER_HOME": str(state / "dagster_home"),
        "IOT_LAKE_ROOT": str(state / "lake"),
        "IOT_SETTLE_MINUTES": str(args.settle_minutes),
        "IOT_SPARK_RUN_LIMIT": str(args.spark_runs),
        "IOT_STREAM_METRICS_PORT": str(metrics_port),
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    yesterday = now.replace(hour=0) - timedelta(days=1)
    targets = [yesterday + timedelta(hours=22), yesterday + timedelta(hours=23)]
    if not args.yesterday_only:
        targets = sorted({*targets, now - 3 * HOUR, now - 2 * HOUR})
    log(
        f"state {state}; Kafka :{kafka_port}, Dagster :{dagster_port}; hours {[f'{t:%m-%d %H}h' for t in targets]}"
    )
    state.mkdir(parents=True, exist_ok=True)
    stack = subprocess.Popen(
        [str(BIN / "iot-pipeline"), "local", "up", "--no-simulator", "--kafka-port", str(kafka_port),
         "--kafka-controller-port", str(controller_port), "--dagster-port", str(dagster_port)],
        cwd=REPO, env=env, stdout=(state / "local-up.log").open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    began = time.monotonic()
    result: dict = {}
    try:
        deadline = time.monotonic() + 600
        instance = None
        while time.monotonic() < deadline:
            if stack.poll() is not None:
                raise RuntimeError(f"local up exited ({stack.returncode}); see {state / 'local-up.log'}")
            if (state / "dagster_home" / "dagster.yaml").exists() and instance is None:
                instance = dg.DagsterInstance.from_config(str(state / "dagster_home"))
            if instance and instance.get_runs(
                dg.RunsFilter(job_name=STREAM_JOB, statuses=[DagsterRunStatus.STARTED])
            ):
                break
            time.sleep(3)
        else:
            raise RuntimeError("the stream's run did not start within 10 minutes")
        log(f"stack up in {time.monotonic() - began:.0f}s; waves for {args.minutes} min")
        rng, waves, sent = random.Random(7), 0, 0
        waves_end = time.monotonic() + args.minutes * 60
        while time.monotonic() < waves_end:
            for t in targets:
                simulate(
                    env,
                    kafka_port,
                    t + timedelta(minutes=rng.uniform(1, 55)),
                    args.events,
                    rng.randrange(1 << 30),
                )
                sent += args.events
            waves += 1
            log(f"wave {waves}: {sent} events sent; runs so far {len(instance.get_runs())}")
            time.sleep(args.wave_seconds)
        log("waves stopped; settling")
        settle_deadline = time.monotonic() + args.max_settle_minutes * 60
        last_count, last_change = -1, time.monotonic()
        while time.monotonic() < settle_deadline:
            runs = instance.get_runs()
            busy = [r for r in runs if r.job_name != STREAM_JOB and r.status in NOT_FINISHED_STATUSES]
            if len(runs) != last_count or busy:
                last_count, last_change = len(runs), time.monotonic()
            elif time.monotonic() - last_change > args.quiet_seconds:
                break
            time.sleep(10)
        settled = time.monotonic() < settle_deadline
        closed_until = min(targets[-1] + HOUR, datetime.now(timezone.utc) - timedelta(minutes=15))
        result = {
            "minutes": args.minutes,
            "waves": waves,
            "events_sent": sent,
            "settled": settled,
            "spark_run_limit": args.spark_runs,
            **run_ledger(instance),
            **lake_ledger(state / "lake", closed_until),
        }
    finally:
        terminate(stack.pid, 180, group=True, first=signal.SIGINT)
    if not result:
        return 1
    mismatched = {h: v for h, v in result["hours"].items() if v["bronze_distinct"] != v["silver"]}
    missing_days = [d for d, ok in result["days"].items() if not ok]
    checks = {
        "settled": result["settled"],
        "no failed runs": not result["failed"],
        "Spark runs at once within the limit": result["max_spark_runs_at_once"] <= args.spark_runs,
        "one run in flight per partition": result["max_in_flight_per_partition"] <= 1,
        "silver == bronze distinct, every closed hour": bool(result["hours"]) and not mismatched,
        "every closed day built": bool(result["days"]) and not missing_days,
    }
    result["checks"] = checks
    result["seconds"] = round(time.monotonic() - began)
    log(json.dumps({k: v for k, v in result.items() if k not in ("hours", "runs_per_partition")}, indent=1))
    log("runs per partition: " + json.dumps(result["runs_per_partition"]))
    for h, v in result["hours"].items():
        log(f"  {h}: bronze distinct {v['bronze_distinct']}, silver {v['silver']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Fault-injection benchmark: the full fault plans against real Kafka, Spark, MinIO and Dagster, and
the loss/duplicate ledger of each.

Starts its own Kafka broker and MinIO on free loopback ports (in a temporary directory), then runs each
scenario of ``iot_pipeline/testing/faults.py`` on a fresh topic and lake while events flow:

* ``kill9-local``, ``kill9-minio``: kill -9 of the stream (the whole run process group) at random
  points, ``--kills`` times in a row (default 10), each followed by a restart;
* ``broker-restart``: kill -9 of the broker under load, then a restart on the same data;
* ``minio-outage-stream`` / ``minio-outage-hourly``: MinIO killed for ``--outage-seconds`` (default 60)
  while the stream runs / while an hourly run writes, then restarted;
* ``hourly-kill``: SIGKILL of a ``dagster asset materialize`` of silver/events mid-write, then its retry;
* ``second-stream``: a second stream launched on the running stream's checkpoint.

After each scenario's settle phase (producer stopped, stream caught up and stopped, silver/events
materialised over every touched hour) it prints: events produced (distinct ids), events in silver,
lost, duplicated, quarantined, runs failed and retried. Exit 1 if any scenario misses 0 lost and 0
duplicated (or its scenario-specific checks); a failing scenario is reported, never skipped.

    .venv/bin/python benchmarks/fault_ledger.py                       # everything, full plans
    .venv/bin/python benchmarks/fault_ledger.py --only kill9-local --kills 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

from iot_pipeline.services.kafka_broker import KafkaBroker
from iot_pipeline.services.minio import MinioServer, ensure_binary
from iot_pipeline.services.processes import free_port, free_ports
from iot_pipeline.testing import faults
from iot_pipeline.testing.kafka import scratch_kafka

# Before any Spark starts (the plans start the stream and the runs as processes with this env).
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

SCENARIOS = (
    "kill9-local",
    "kill9-minio",
    "broker-restart",
    "minio-outage-stream",
    "minio-outage-hourly",
    "hourly-kill",
    "second-stream",
)


def plans(kills: int, outage: float) -> dict[str, tuple[faults.Plan, bool]]:
    """Scenario name -> (plan, lake on MinIO)."""
    return {
        "kill9-local": (faults.Plan("kill9-local", stream_kills=kills), False),
        "kill9-minio": (faults.Plan("kill9-minio", stream_kills=kills), True),
        "broker-restart": (faults.Plan("broker-restart", broker_restart=True, min_feed_s=40), False),
        "minio-outage-stream": (faults.Plan("minio-outage-stream", minio_outage_stream_s=outage), True),
        "minio-outage-hourly": (faults.Plan("minio-outage-hourly", minio_outage_hourly_s=outage), True),
        "hourly-kill": (faults.Plan("hourly-kill", hourly_kill=True), False),
        "second-stream": (faults.Plan("second-stream", second_stream=True), False),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--kills", type=int, default=10, help="kill -9s of the stream per lake")
    parser.add_argument("--outage-seconds", type=float, default=60.0, help="MinIO outage length")
    parser.add_argument("--rate", type=float, default=150.0, help="records per second while faults happen")
    parser.add_argument("--json", default=None, help="also write the ledgers here")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="iot-faults-"))
    port, controller = free_ports(2)
    broker = KafkaBroker(work / "kafka", port=port, controller_port=controller, heap="512m")
    minio = faults.FaultMinio(
        MinioServer(work / "minio", port=free_port(), console_port=None),
        f"faults-{secrets.token_hex(4)}",
        secrets.token_urlsafe(24),
        ensure_binary(),
    )
    books: list[faults.FaultLedger] = []
    started = time.monotonic()
    try:
        broker.start(timeout_s=300)
        minio.start()
        os.environ.update(minio.env())  # the ledger reads S3 lakes with pyarrow from this process

        services = faults.fault_services(broker, minio)
        table = plans(args.kills, args.outage_seconds)
        for name in args.only:
            plan, on_minio = table[name]
            plan.rate = args.rate
            kafka = scratch_kafka(broker.bootstrap_servers, "faults")
            lake = (
                faults.Lake(f"s3a://{minio.make_bucket()}/lake", minio.env())
                if on_minio
                else faults.Lake(str(work / name / "lake"))
            )
            try:
                books.append(faults.run_plan(plan, lake, kafka, services, work / name))
            except Exception as exc:  # a scenario that cannot finish is a failing scenario
                book = faults.FaultLedger(name)
                book.checks["scenario completed"] = False
                book.notes.append(f"{type(exc).__name__}: {str(exc)[:2000]}")
                books.append(book)
            print(f"\n{faults.TABLE_HEADER}\n" + "\n".join(b.table_row() for b in books), flush=True)
    finally:
        minio.server.stop()
        broker.stop()

    print(f"\n== fault ledger ({time.monotonic() - started:.0f}s, {os.cpu_count()} cores) ==")
    print(faults.TABLE_HEADER)
    for book in books:
        print(book.table_row())
    for book in books:
        failed = {k: v for k, v in book.checks.items() if not v}
        if failed or book.notes:
            print(f"  {book.scenario}: failed checks {failed or 'none'}; notes {book.notes}")
    if args.json:
        Path(args.json).write_text(
            json.dumps([{**b.__dict__, "ok": b.ok} for b in books], indent=2, default=str)
        )
    if not args.keep:
        print(f"(logs in {work}; pass --keep to keep them)" if any(not b.ok for b in books) else "")
    return 0 if books and all(b.ok for b in books) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Sensor-tick benchmark: the hourly and daily sensors over a lake with a year of hourly history.

Builds bronze with ``--days`` (365) days of hours ending now (``--files`` files per hour, a few bytes
each: a tick reads names, sizes and times, never data), on a local directory or, with ``--s3``, on a
local MinIO (started for the run, the bucket removed afterwards). A local Dagster instance (SQLite,
temporary ``DAGSTER_HOME``) records a silver/events materialisation for every hour and the daily
parents, as a year of live operation would leave it. Then it times, on the real instance:

1. **catch-up ticks** of a new cursor (a new sensor over the old lake, history checked
   ``history_days_per_tick`` days a tick) until the history is scanned;
2. **steady ticks** (nothing new) and a tick after late rows landed in one recent hour;
3. the same first tick with **nothing materialised** (a new instance over an old lake): how many
   requests, as how many backfills, in how long;

and prints each tick's seconds and the cursor's bytes (targets: a tick under 2 s, a cursor under 64 KB).

    .venv/bin/python benchmarks/sensor_tick.py            # local disk
    .venv/bin/python benchmarks/sensor_tick.py --s3       # MinIO (built from source on first use)
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

# The whole year is inside the partitions (read when the partitions module is imported).
os.environ.setdefault(
    "IOT_PARTITIONS_START", f"{datetime.now(timezone.utc) - timedelta(days=400):%Y-%m-%d-00:00}"
)

import dagster as dg

from iot_pipeline.assets.keys import SILVER_DEVICE_MINUTE_STATS, SILVER_EVENTS
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.sensors.catchup import requested_partitions
from iot_pipeline.sensors.daily import daily_rollup_sensor
from iot_pipeline.sensors.hourly import bronze_hours_sensor, hour_key
from iot_pipeline.sensors.settings import SensorSettingsResource
from iot_pipeline.storage.layout import hour_partition_dir
from iot_pipeline.storage.s3 import client_env, s3_resource

HOUR = timedelta(hours=1)


def hours_of(days: int) -> list[datetime]:
    end = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - 2 * HOUR
    start = end - timedelta(days=days)
    return [start + i * HOUR for i in range(int((end - start) / HOUR))]


def build_local(root: Path, hours: list[datetime], files: int) -> None:
    for h in hours:
        d = Path(hour_partition_dir(str(root / "bronze" / "events"), h)) / "ingest_batch=0"
        d.mkdir(parents=True, exist_ok=True)
        for n in range(files):
            (d / f"part-{n:05d}.snappy.parquet").write_bytes(b"x" * 64)


def build_s3(client, bucket: str, hours: list[datetime], files: int) -> None:
    def put(h: datetime) -> None:
        prefix = hour_partition_dir("lake/bronze/events", h)
        for n in range(files):
            client.put_object(
                Bucket=bucket, Key=f"{prefix}/ingest_batch=0/part-{n:05d}.snappy.parquet", Body=b"x" * 64
            )

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(put, hours))


def record_history(instance: dg.DagsterInstance, hours: list[datetime], recent_days: int = 9) -> None:
    """A silver/events materialisation per hour (what the hourly sensor reads), and of
    device_minute_stats for the recent days (what the daily sensor reads), as live operation leaves."""
    recent = hours[-1] - timedelta(days=recent_days)
    for h in hours:
        keys = (SILVER_EVENTS, SILVER_DEVICE_MINUTE_STATS) if h >= recent else (SILVER_EVENTS,)
        for key in keys:
            instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=hour_key(h)))


def tick(sensor, instance, resources, cursor):
    began = time.perf_counter()
    with dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor) as context:
        result = sensor(context)
    return result, time.perf_counter() - began


def run(lake_root: str, hours: list[datetime], resources_extra: dict, settle_land) -> None:
    settings = SensorSettingsResource()
    resources = {"lake": LakeResource(root=lake_root), "sensor_settings": settings, **resources_extra}
    with tempfile.TemporaryDirectory() as home, dg.DagsterInstance.from_config(home) as instance:
        t0 = time.perf_counter()
        record_history(instance, hours)
        print(f"recorded the materialisations in {time.perf_counter() - t0:.0f}s")
        cursor, n = None, 0
        while True:
            result, seconds = tick(bronze_hours_sensor, instance, resources, cursor)
            n += 1
            cursor = result.cursor
            scan = json.loads(cursor)["scan"]
            print(f"hourly catch-up tick {n}: {seconds:.2f}s, requests {len(result.run_requests or [])}, "
                  f"cursor {len(cursor)} B, history scanned up to {scan}")  # fmt: skip
            if scan >= f"{hours[-1] - timedelta(hours=settings.late_lookback_hours):%Y-%m-%d}" or n > 40:
                break
        steady = []
        for _ in range(3):
            result, seconds = tick(bronze_hours_sensor, instance, resources, cursor)
            steady.append(seconds)
            cursor = result.cursor
        print(f"hourly steady ticks: {', '.join(f'{s:.2f}s' for s in steady)}; cursor {len(cursor)} B; "
              f"requests {len(result.run_requests or [])}")  # fmt: skip
        settle_land(hours[-5])
        result, seconds = tick(bronze_hours_sensor, instance, resources, cursor)
        print(f"hourly tick after late rows in {hour_key(hours[-5])}: {seconds:.2f}s, "
              f"requests {[requested_partitions(r) for r in result.run_requests or []]}")  # fmt: skip
        daily_cursor = None
        for i in range(2):
            result, seconds = tick(daily_rollup_sensor, instance, resources, daily_cursor)
            daily_cursor = result.cursor
            print(f"daily tick {i + 1}: {seconds:.2f}s, requests {len(result.run_requests or [])} "
                  f"({sum(len(requested_partitions(r)) for r in result.run_requests or [])} days), "
                  f"cursor {len(daily_cursor)} B")  # fmt: skip

    with tempfile.TemporaryDirectory() as home, dg.DagsterInstance.from_config(home) as instance:
        result, seconds = tick(bronze_hours_sensor, instance, resources, None)
        requests = result.run_requests or []
        backfills = [r for r in requests if r.asset_graph_subset is not None]
        print(f"new instance, nothing materialised: first tick {seconds:.2f}s, {len(requests)} requests "
              f"({len(backfills)} single-run backfills) covering "
              f"{sum(len(requested_partitions(r)) for r in requests)} hours; cursor {len(result.cursor)} B")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--files", type=int, default=3, help="bronze files per hour")
    parser.add_argument("--s3", action="store_true", help="the lake on a local MinIO")
    args = parser.parse_args()
    hours = hours_of(args.days)
    print(f"{len(hours)} hours x {args.files} files, {hours[0]:%Y-%m-%d} .. {hours[-1]:%Y-%m-%d %H}:00")
    if not args.s3:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "lake"
            t0 = time.perf_counter()
            build_local(root, hours, args.files)
            print(f"built local bronze in {time.perf_counter() - t0:.0f}s")

            def late(h: datetime) -> None:
                build_local(root, [h], args.files + 1)

            run(str(root), hours, {"s3": s3_resource()}, late)
        return

    from iot_pipeline.services.minio import MinioServer, ensure_binary
    from iot_pipeline.services.processes import free_port

    with tempfile.TemporaryDirectory() as tmp:
        user, password = f"bench-{secrets.token_hex(4)}", secrets.token_urlsafe(24)
        server = MinioServer(Path(tmp) / "minio", port=free_port(), console_port=None)
        server.start(user, password, binary=ensure_binary())
        try:
            # The sensors and the S3 client below read the server and credentials from the environment.
            os.environ.update(client_env(server.endpoint, user, password))
            s3 = s3_resource()
            client = s3.get_client()
            bucket = "bench-lake"
            client.create_bucket(Bucket=bucket)
            t0 = time.perf_counter()
            build_s3(client, bucket, hours, args.files)
            print(f"built bronze on MinIO in {time.perf_counter() - t0:.0f}s")

            def late(h: datetime) -> None:
                build_s3(client, bucket, [h], args.files + 1)

            run(f"s3a://{bucket}/lake", hours, {"s3": s3}, late)
        finally:
            server.stop()


if __name__ == "__main__":
    main()

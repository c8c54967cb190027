"""End to end with the lake on a real S3-compatible server (MinIO): the local e2e path, ``s3a://`` root.

Simulator history -> Kafka -> stream (available-now; bronze, quarantine and checkpoints on S3A) -> hourly
sensor (listing through S3) -> hourly runs -> daily sensor -> daily run (gold and CSV on S3). The Spark
half runs in a subprocess (``s3_pipeline_driver``): S3A only takes effect when a session starts, and
this process shares the suite's session. Here, pyarrow reads silver and gold straight from the server
(ordinary Hive-partitioned Parquet, no Spark) and the p95 is compared with numpy.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pyarrow.dataset as pads
import pytest

from iot_pipeline.ingestion.faults import FaultRates
from iot_pipeline.ingestion.generator import EventGenerator
from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.sensors import sensor_resources
from iot_pipeline.sensors.hourly import bronze_hours_sensor
from iot_pipeline.storage.listing import S3LakeListing, listing_for
from iot_pipeline.storage.s3 import S3ConfigError, check_bucket, pyarrow_filesystem
from iot_pipeline.streaming.resource import BRONZE_QUERY
from iot_pipeline_tests.e2e.test_pipeline_e2e import DAY, RARE_TYPE, expected_p95, produce, rare_events
from iot_pipeline_tests.fixtures.minio import MinioEndpoint

pytestmark = [pytest.mark.e2e, pytest.mark.s3]

REPO_ROOT = Path(__file__).resolve().parents[2]
EVENTS_PER_TYPE = 520  # >= 500 distinct events per type and day even after malformed ones are dropped


def hour_of(timestamp: str) -> str:
    return (
        datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
        .astimezone(timezone.utc)
        .strftime("%Y-%m-%d-%H:00")
    )


@pytest.mark.kafka
@pytest.mark.spark
@pytest.mark.slow
def test_simulated_history_flows_to_the_daily_p95_on_s3(
    s3_env: MinioEndpoint, s3_bucket: str, kafka_resource: KafkaResource, tmp_path: Path
) -> None:
    minio = s3_env
    generator = EventGenerator(
        seed=7,
        start=datetime.fromisoformat(f"{DAY}T00:00:00+00:00"),
        faults=FaultRates(anomaly=0.02, duplicate=0.03, malformed=0.01, late=0.02),
    )
    records = [*generator.history(1, EVENTS_PER_TYPE), *rare_events()]
    kinds = Counter(r.kind for r in records)
    assert kinds["duplicate"] and kinds["late"] and kinds["malformed"] and kinds["anomaly"]
    produce(kafka_resource, records)

    root = f"s3a://{s3_bucket}/lake"
    out = tmp_path / "summary.json"
    cfg = {
        "root": root,
        "bootstrap": kafka_resource.bootstrap_servers,
        "topic": kafka_resource.topic,
        "quarantine_topic": kafka_resource.quarantine_topic,
        "day": DAY,
        "out": str(out),
    }
    env = {**os.environ, **minio.env(), "PYTHONPATH": str(REPO_ROOT), "SPARK_LOCAL_IP": "127.0.0.1"}
    proc = subprocess.run(
        [sys.executable, "-m", "iot_pipeline_tests.e2e.s3_pipeline_driver", json.dumps(cfg)],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-8000:]
    summary = json.loads(out.read_text())
    print("driver seconds:", summary["seconds"])

    # Stream: every record read, malformed ones quarantined.
    assert summary["input_rows"] == len(records)
    assert sum(summary["quarantined"].values()) == kinds["malformed"]
    # Hourly sensor, listing through S3: every closed hour with data, once; the next tick requests nothing.
    event_hours = {hour_of(r.event["event_timestamp"]) for r in records if r.kind != "malformed"}
    assert set(summary["hourly_keys"]) == event_hours
    assert summary["hourly_success"]
    assert summary["second_tick_requests"] == 0
    assert DAY in summary["daily_days"]
    assert summary["daily_success"]
    assert RARE_TYPE in summary["gold_metadata"]

    # Everything landed on the server: bronze, quarantine, checkpoints, silver, gold, CSV.
    client = minio.client()
    keys = [
        obj["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3_bucket, Prefix="lake/")
        for obj in page.get("Contents", [])
    ]
    for prefix in (
        "lake/bronze/events/event_date=",
        "lake/quarantine/events/",
        f"lake/_state/checkpoints/{BRONZE_QUERY}/",
        "lake/silver/events/event_date=",
        "lake/silver/device_minute_stats/event_date=",
        f"lake/gold/daily_event_duration_p95/event_date={DAY}/",
    ):
        assert any(k.startswith(prefix) for k in keys), f"nothing under {prefix}"

    # The sensor's fingerprints (run tags) match a fresh listing of the same hours.
    listing = listing_for(root)
    assert isinstance(listing, S3LakeListing)
    bronze = f"{root}/bronze/events"
    hours = listing.hours(bronze)
    assert {h.strftime("%Y-%m-%d-%H:00") for h in hours} == event_hours
    fingerprints = listing.fingerprints(bronze, hours)
    assert {h.strftime("%Y-%m-%d-%H:00") for h in fingerprints} == event_hours
    # Hours within the sensor's lookback carry the fingerprint it saw; older ones (history, as this
    # fixed day becomes) are requested without one.
    tags = dict(zip(summary["hourly_keys"], summary["hourly_tags"], strict=True))
    for hour, fp in fingerprints.items():
        tag = tags[hour.strftime("%Y-%m-%d-%H:00")]
        if "iot/bronze_fingerprint" in tag:
            assert (str(fp.files), str(fp.total_bytes), fp.token) == (
                tag["iot/bronze_files"],
                tag["iot/bronze_bytes"],
                tag["iot/bronze_fingerprint"],
            )

    # pyarrow straight from the server: silver deduplicated, gold equal to numpy's p95.
    fs = pyarrow_filesystem(minio.endpoint, minio.region)
    silver = pads.dataset(
        f"{s3_bucket}/lake/silver/events", filesystem=fs, format="parquet", partitioning="hive"
    ).to_table(columns=["event_id"])
    ids = silver.column("event_id").to_pylist()
    assert len(ids) == len(set(ids))
    assert set(ids) == {r.event["event_id"] for r in records if r.kind != "malformed"}

    expected = expected_p95(records, DAY)
    assert RARE_TYPE not in expected and len(expected) == len(generator.device_types)
    gold = pads.dataset(
        f"{s3_bucket}/lake/gold/daily_event_duration_p95",
        filesystem=fs,
        format="parquet",
        partitioning="hive",
    )
    assert "event_date" in gold.schema.names  # the partition column, recovered from the Hive path
    rows = {r["device_type"]: r for r in gold.to_table().to_pylist() if str(r["event_date"]) == DAY}
    assert set(rows) == set(expected)
    for device_type, want in expected.items():
        got = rows[device_type]
        assert got["events_total"] == want["events_total"]
        assert got["events_kept"] == want["events_kept"]
        assert got["p95_event_duration"] == pytest.approx(want["p95"], rel=1e-9)
        assert got["mean"] == pytest.approx(want["mean"], rel=1e-9)
        assert got["stddev"] == pytest.approx(want["stddev"], rel=1e-9)

    body = client.get_object(
        Bucket=s3_bucket, Key=f"lake/exports/daily_event_duration_p95/event_date={DAY}.csv"
    )["Body"].read()
    exported = {row["device_type"]: row for row in csv.DictReader(io.StringIO(body.decode()))}
    assert set(exported) == set(expected)
    for device_type, want in expected.items():
        assert float(exported[device_type]["p95_event_duration"]) == pytest.approx(want["p95"], rel=1e-9)


def test_s3_listing_prefixes_fingerprints_and_errors(
    s3_env: MinioEndpoint, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sensor's S3 listing on the real server: hours from prefixes, side files ignored, clear errors."""
    client = s3_env.client()
    base = "lake/bronze/events"
    for key, body in {
        f"{base}/event_date=2026-11-10/event_hour=3/ingest_batch=0/part-0.parquet": b"x" * 10,
        f"{base}/event_date=2026-11-10/event_hour=3/ingest_batch=1/part-0.parquet": b"x" * 5,
        f"{base}/event_date=2026-11-10/event_hour=3/_SUCCESS": b"",
        f"{base}/event_date=2026-11-10/event_hour=3/_temporary/0/part-9.parquet": b"x" * 99,
        f"{base}/event_date=2026-11-10/event_hour=3/.part-0.parquet.crc": b"x" * 99,
        f"{base}/event_date=2026-11-10/event_hour=3/": b"",  # an S3A directory marker
        f"{base}/event_date=2026-11-11/event_hour=23/part-0.parquet": b"x" * 7,
        f"{base}/_temporary/0/event_date=2026-11-12/event_hour=1/part-0.parquet": b"x",
        "lake/_state/stream/watermark.json": b'{"watermark": "2026-11-11T23:30:00+00:00"}',
    }.items():
        client.put_object(Bucket=s3_bucket, Key=key, Body=body)
    root = f"s3a://{s3_bucket}/lake"
    listing = listing_for(root)

    hours = listing.hours(f"{root}/bronze/events")
    assert [h.strftime("%Y-%m-%d-%H") for h in hours] == ["2026-11-10-03", "2026-11-11-23"]
    since = datetime(2026, 11, 11, tzinfo=timezone.utc)
    assert listing.hours(f"{root}/bronze/events", since=since) == hours[1:]
    fps = listing.fingerprints(f"{root}/bronze/events", hours)
    assert (fps[hours[0]].files, fps[hours[0]].total_bytes) == (2, 15)
    assert (fps[hours[1]].files, fps[hours[1]].total_bytes) == (1, 7)
    assert listing.read_json(f"{root}/_state/stream/watermark.json") == {
        "watermark": "2026-11-11T23:30:00+00:00"
    }
    assert listing.read_json(f"{root}/_state/stream/missing.json") is None
    assert listing.hours(f"{root}/silver/events") == []

    # A late file in an old hour changes that hour's fingerprint.
    client.put_object(
        Bucket=s3_bucket, Key=f"{base}/event_date=2026-11-10/event_hour=3/ingest_batch=2/p.parquet", Body=b"y"
    )
    assert listing.fingerprints(f"{root}/bronze/events", hours[:1])[hours[0]].token != fps[hours[0]].token

    # The sensor itself, on a missing bucket and with a wrong secret: the error names the setting.
    sensor_res = {"lake": LakeResource(root=f"s3a://{s3_bucket}-missing/lake"), **sensor_resources()}
    with (
        dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), resources=sensor_res) as context,
        pytest.raises(Exception) as missing,
    ):
        bronze_hours_sensor(context)
    assert "IOT_LAKE_ROOT" in _chain(missing.value)
    with pytest.raises(S3ConfigError, match="IOT_LAKE_ROOT"):
        check_bucket(f"s3a://{s3_bucket}-missing/lake", s3_env.endpoint, s3_env.region, path_style=True)

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-at-all")
    sensor_res = {"lake": LakeResource(root=root), **sensor_resources()}
    with (
        dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), resources=sensor_res) as context,
        pytest.raises(Exception) as denied,
    ):
        bronze_hours_sensor(context)
    assert "AWS_SECRET_ACCESS_KEY" in _chain(denied.value)
    with pytest.raises(S3ConfigError, match="AWS_SECRET_ACCESS_KEY"):
        listing_for(root).hours(f"{root}/bronze/events")


def _chain(exc: BaseException | None) -> str:
    """Messages of an exception and its causes (Dagster may wrap what the sensor raised)."""
    parts = []
    while exc is not None:
        parts.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)

"""The hourly sensor's per-day S3 listing gives exactly the per-hour fingerprints, on a real MinIO."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from iot_pipeline.storage.listing import fingerprints_by_day, listing_for
from iot_pipeline_tests.fixtures.minio import MinioEndpoint

pytestmark = pytest.mark.s3


def test_one_listing_per_day_gives_the_per_hour_fingerprints(s3_env: MinioEndpoint, s3_bucket: str) -> None:
    client = s3_env.client()
    base = "lake/bronze/events"
    for key, body in {
        f"{base}/event_date=2026-11-10/event_hour=3/ingest_batch=0/part-0.parquet": b"x" * 10,
        f"{base}/event_date=2026-11-10/event_hour=3/ingest_batch=1/part-0.parquet": b"x" * 5,
        f"{base}/event_date=2026-11-10/event_hour=3/_SUCCESS": b"",
        f"{base}/event_date=2026-11-10/event_hour=3/_temporary/0/part-9.parquet": b"x" * 99,
        f"{base}/event_date=2026-11-10/event_hour=3/.part-0.parquet.crc": b"x" * 99,
        f"{base}/event_date=2026-11-10/event_hour=3/": b"",  # an S3A directory marker
        f"{base}/event_date=2026-11-10/event_hour=13/ingest_batch=2/part-0.parquet": b"x" * 3,
        f"{base}/event_date=2026-11-10/event_hour=14/ingest_batch=2/part-0.parquet": b"x" * 4,
        f"{base}/event_date=2026-11-11/event_hour=23/part-0.parquet": b"x" * 7,
    }.items():
        client.put_object(Bucket=s3_bucket, Key=key, Body=body)
    root = f"s3a://{s3_bucket}/lake"
    listing = listing_for(root)
    dataset = f"{root}/bronze/events"
    hours = listing.hours(dataset)
    asked = [h for h in hours if h.hour != 14]  # an hour not asked for is left out
    assert fingerprints_by_day(listing, dataset, asked) == listing.fingerprints(dataset, asked)
    by_day = fingerprints_by_day(listing, dataset, asked)
    assert sorted(h.strftime("%d-%H") for h in by_day) == ["10-03", "10-13", "11-23"]
    assert (by_day[datetime(2026, 11, 10, 3, tzinfo=timezone.utc)].files, by_day[asked[0]].total_bytes) == (
        2,
        15,
    )

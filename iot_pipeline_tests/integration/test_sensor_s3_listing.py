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


def test_the_bronze_report_reads_rows_and_offsets_from_footers_on_s3(
    s3_env: MinioEndpoint, s3_bucket: str
) -> None:
    """Same summary as on a local lake: rows, offsets and the newest event, and only new batches' footers."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from iot_pipeline.sensors.bronze_report import summarize_hour

    client = s3_env.client()
    prefix = "lake/bronze/events/event_date=2026-11-10/event_hour=3"

    def put(batch: int, offsets: range) -> None:
        buf = io.BytesIO()
        n = len(offsets)
        pq.write_table(
            pa.table(
                {
                    "event_timestamp": pa.array(
                        [datetime(2026, 11, 10, 3, 0, i, tzinfo=timezone.utc) for i in range(n)],
                        pa.timestamp("us", tz="UTC"),
                    ),
                    "kafka_partition": pa.array([2] * n, pa.int32()),
                    "kafka_offset": pa.array(list(offsets), pa.int64()),
                }
            ),
            buf,
        )
        client.put_object(
            Bucket=s3_bucket, Key=f"{prefix}/ingest_batch={batch}/part-0.parquet", Body=buf.getvalue()
        )

    put(0, range(0, 7))
    client.put_object(Bucket=s3_bucket, Key=f"{prefix}/_temporary/0/part-9.parquet", Body=b"not parquet")
    hour_dir = f"s3a://{s3_bucket}/{prefix}"
    shown, kept = summarize_hour(hour_dir, None)
    assert (shown.rows, shown.offsets, kept.mark, kept.files) == (7, {2: [0, 6]}, 0, 1)
    assert shown.newest_event == datetime(2026, 11, 10, 3, 0, 6, tzinfo=timezone.utc).timestamp()
    put(1, range(7, 10))
    put(2, range(10, 50))  # not committed yet
    shown, kept = summarize_hour(hour_dir, 1, kept)
    assert (shown.rows, shown.offsets[2], kept.mark, kept.files) == (10, [0, 9], 1, 2)

"""The checkpoint commands on an S3 lake (real MinIO): read, lag arithmetic and a reset by copy + delete.

A Spark checkpoint is a handful of small files; this test writes one by hand in Spark's format
(``offsets/N``: version, metadata, source offsets; ``commits/N``) so no Spark session is needed.
"""

from __future__ import annotations

import json

import pytest

from iot_pipeline.storage.layout import LakeLayout
from iot_pipeline.streaming.checkpoint import CheckpointError, consumer_lag, read_state, reset_checkpoint
from iot_pipeline_tests.fixtures.minio import MinioEndpoint

pytestmark = [pytest.mark.s3]

TOPIC = "iot-events"


def offsets_file(offsets: dict[str, int]) -> bytes:
    meta = {"batchWatermarkMs": 0, "batchTimestampMs": 0, "conf": {}}
    return f"v1\n{json.dumps(meta)}\n{json.dumps({TOPIC: offsets})}".encode()


def test_reset_on_s3_moves_the_checkpoint_and_resumes_at_the_commit(
    s3_env: MinioEndpoint, s3_bucket: str
) -> None:
    client = s3_env.client()
    layout = LakeLayout(f"s3a://{s3_bucket}/lake")
    base = "lake/_state/checkpoints/bronze"
    files = {
        f"{base}/metadata": b'{"id":"x"}',
        f"{base}/offsets/0": offsets_file({"0": 10, "1": 7}),
        f"{base}/offsets/1": offsets_file({"0": 25, "1": 9}),
        f"{base}/offsets/2": offsets_file({"0": 40, "1": 30}),  # logged, never committed
        f"{base}/commits/0": b"v1\n{}",
        f"{base}/commits/1": b"v1\n{}",
    }
    for key, body in files.items():
        client.put_object(Bucket=s3_bucket, Key=key, Body=body)

    state = read_state(layout)
    assert state.last_committed_batch == 1
    assert state.committed_offsets == {TOPIC: {"0": 25, "1": 9}}
    assert consumer_lag(state, TOPIC, {"0": 30, "1": 9, "2": 4}) == {"0": 5, "1": 0, "2": 4}

    moved, resume = reset_checkpoint(layout)
    # Batch 2 was logged but not committed and may have written files: new batch ids start above it.
    assert resume.batch_base == 3 and resume.starting_offsets == {TOPIC: {"0": 25, "1": 9}}
    keys = {
        o["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3_bucket, Prefix="lake/")
        for o in page.get("Contents", [])
    }
    assert not any(k.startswith(f"{base}/") for k in keys), "the old checkpoint is still in place"
    suffix = moved.rsplit("/", 1)[1]
    keys = {k for k in keys if not k.endswith("/")}  # pyarrow writes directory markers, as S3A does
    assert {
        k.replace(f"_state/checkpoints/{suffix}/", "_state/checkpoints/bronze/") for k in keys if suffix in k
    } == set(files)
    stored = json.loads(
        client.get_object(Bucket=s3_bucket, Key="lake/_state/stream/resume.json")["Body"].read()
    )
    assert stored["batch_base"] == 3

    # The next read sees a fresh checkpoint that continues above the moved one's batches.
    fresh = read_state(layout)
    assert fresh.last_committed_batch is None and fresh.next_partition_batch == 3
    with pytest.raises(CheckpointError, match="no checkpoint"):
        reset_checkpoint(layout)

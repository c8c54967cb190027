"""Services the fault suite may disturb: its own MinIO (stopped and restarted by the tests), the
session's Kafka broker (killed and restarted; the next test finds it running again), an S3 lake."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from iot_pipeline.services.minio import MinioError, MinioServer, ensure_binary
from iot_pipeline.services.processes import free_port
from iot_pipeline.testing.faults import FaultMinio, Lake


@pytest.fixture(scope="module")
def fault_minio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultMinio]:
    """A MinIO of this module's own: the outage tests stop it, which must not hit other tests."""
    try:
        binary = ensure_binary()
    except MinioError as exc:
        pytest.fail(f"MinIO is not available (run `iot-pipeline minio fetch`): {exc}")
    server = MinioServer(tmp_path_factory.mktemp("fault-minio"), port=free_port(), console_port=None)
    minio = FaultMinio(server, f"faults-{secrets.token_hex(4)}", secrets.token_urlsafe(24), binary)
    minio.start()
    try:
        yield minio
    finally:
        server.stop()


@pytest.fixture
def s3_lake(fault_minio: FaultMinio, monkeypatch: pytest.MonkeyPatch) -> Lake:
    """A fresh bucket; this process's AWS variables point at it (the ledger reads it with pyarrow)."""
    for key, value in fault_minio.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return Lake(f"s3a://{fault_minio.make_bucket()}/lake", fault_minio.env())

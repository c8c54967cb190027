"""Services the fault suite may disturb: its own MinIO (stopped and restarted by the tests), the
session's Kafka broker (killed and restarted; the next test finds it running again), an S3 lake."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from iot_pipeline.services.kafka_broker import KafkaBroker
from iot_pipeline.services.minio import MinioError, MinioServer, ensure_binary
from iot_pipeline.services.processes import free_port
from iot_pipeline.storage.s3 import DEFAULT_REGION
from iot_pipeline_tests.faults.harness import Lake, Services


@dataclass
class FaultMinio:
    server: MinioServer
    user: str
    password: str
    binary: Path

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.user,
            "AWS_SECRET_ACCESS_KEY": self.password,
            "AWS_REGION": DEFAULT_REGION,
            "IOT_S3_ENDPOINT": self.server.endpoint,
        }

    def kill(self) -> None:
        """An outage as a crash: SIGKILL, no shutdown."""
        pid = self.server.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)

    def start(self) -> None:
        self.server.start(self.user, self.password, binary=self.binary, wait_seconds=120)

    def make_bucket(self) -> str:
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3",
            endpoint_url=self.server.endpoint,
            region_name=DEFAULT_REGION,
            aws_access_key_id=self.user,
            aws_secret_access_key=self.password,
            config=Config(s3={"addressing_style": "path"}),
        )
        name = f"faults-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=name)
        return name


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


def broker_services(broker: KafkaBroker) -> Services:
    def kill() -> None:
        pid = broker.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while broker.pid() is not None and time.monotonic() < deadline:
                time.sleep(0.1)

    return Services(kill_broker=kill, start_broker=lambda: broker.start(timeout_s=180))

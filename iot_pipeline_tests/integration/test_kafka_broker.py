"""The local Kafka 4.x broker: health, topics, a real round trip, clear errors, restarts, the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.services.kafka_broker import (
    KAFKA_VERSION,
    KafkaBroker,
    KafkaBrokerError,
    PortInUseError,
)
from iot_pipeline.services.processes import free_ports

pytestmark = pytest.mark.kafka

REPO_ROOT = Path(__file__).resolve().parents[2]


def _consume(consumer: Consumer, topic: str, expected: int, timeout_s: float = 30.0) -> list:
    consumer.subscribe([topic])
    messages = []
    deadline = time.monotonic() + timeout_s
    while len(messages) < expected and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        messages.append(msg)
    consumer.close()
    return messages


def _produce(resource: KafkaResource, records: list[tuple[str, bytes]]) -> None:
    producer = resource.producer(
        **{"enable.idempotence": True, "acks": "all", "message.max.bytes": 3_000_000}
    )
    errors = []
    for key, value in records:
        producer.produce(
            resource.topic, key=key, value=value, on_delivery=lambda err, _m: err and errors.append(err)
        )
    assert producer.flush(30) == 0
    assert errors == []


def _cli(*args: str, **env_overrides: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **env_overrides}
    return subprocess.run(
        [sys.executable, "-m", "iot_pipeline.services.kafka_cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=120,
    )


def test_broker_is_healthy_and_logs_to_its_file(kafka_broker: KafkaBroker) -> None:
    status = kafka_broker.status()
    assert status.running and status.healthy
    metadata = KafkaResource(bootstrap_servers=kafka_broker.bootstrap_servers).admin().list_topics(timeout=10)
    assert [(b.host, b.port) for b in metadata.brokers.values()] == [("127.0.0.1", kafka_broker.port)]
    # The log4j2 backend is wired (Kafka's slf4j 1.7 pin would otherwise silence it).
    assert "Kafka Server started" in kafka_broker.log_file.read_text()
    assert f"Kafka version: {KAFKA_VERSION}" in kafka_broker.log_file.read_text()


def test_topics_are_created_idempotently_with_partition_count(kafka_resource: KafkaResource) -> None:
    metadata = kafka_resource.admin().list_topics(timeout=10)
    assert len(metadata.topics[kafka_resource.topic].partitions) == 3
    assert len(metadata.topics[kafka_resource.quarantine_topic].partitions) == 3
    assert kafka_resource.ensure_topics() == []

    other = kafka_resource.model_copy(update={"topic": f"t-{uuid.uuid4().hex[:8]}", "partitions": 5})
    assert other.ensure_topics() == [other.topic]  # the quarantine topic already exists
    assert len(other.admin().list_topics(timeout=10).topics[other.topic].partitions) == 5
    other.admin().delete_topics([other.topic], operation_timeout=10)


def test_produce_consume_round_trip_including_a_large_record(kafka_resource: KafkaResource) -> None:
    records = [(f"device-{i % 7}", f'{{"n": {i}}}'.encode()) for i in range(200)]
    big = ("device-big", b"x" * 1_500_000)  # larger than librdkafka's 1 MB default: broker allows 2 MiB
    _produce(kafka_resource, [*records, big])

    messages = _consume(
        kafka_resource.consumer(f"g-{uuid.uuid4().hex[:8]}"), kafka_resource.topic, len(records) + 1
    )

    assert len(messages) == len(records) + 1
    got = sorted((m.key().decode(), m.value()) for m in messages)
    assert got == sorted([*records, big])
    partitions_by_key: dict[str, set[int]] = {}
    for m in messages:
        partitions_by_key.setdefault(m.key().decode(), set()).add(m.partition())
    assert all(len(p) == 1 for p in partitions_by_key.values())  # key -> one partition
    assert len({p for ps in partitions_by_key.values() for p in ps}) > 1  # keys spread over partitions


def test_port_in_use_gives_a_clear_error(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    clash = KafkaBroker(
        tmp_path / "clash", port=kafka_broker.port, controller_port=kafka_broker.controller_port
    )
    with pytest.raises(PortInUseError, match=rf"127\.0\.0\.1:{kafka_broker.port} is already in use.*--port"):
        clash.start(timeout_s=10)
    assert not clash.pid_file.exists()

    result = _cli("start", "--state-dir", str(tmp_path / "clash-cli"), "--port", str(kafka_broker.port))
    assert result.returncode == 2
    assert f"Port 127.0.0.1:{kafka_broker.port} is already in use" in result.stderr


def test_missing_java_or_maven_is_named(tmp_path: Path) -> None:
    port, controller_port = free_ports(2)
    ports = ["--port", str(port), "--controller-port", str(controller_port)]
    no_java = _cli("start", "--state-dir", str(tmp_path / "a"), *ports, PATH=str(tmp_path))
    assert no_java.returncode == 2
    assert "'java' is not on PATH: install a JDK 17+" in no_java.stderr

    java_only = tmp_path / "bin"
    java_only.mkdir()
    (java_only / "java").symlink_to(shutil.which("java"))
    no_maven = _cli(
        "fetch",
        "--state-dir",
        str(tmp_path / "b"),
        PATH=str(java_only),
        IOT_PIPELINE_CACHE=str(tmp_path / "cache"),
    )
    assert no_maven.returncode == 2
    assert "'mvn' is not on PATH: install Maven" in no_maven.stderr


def test_early_exit_shows_the_log_tail(tmp_path: Path) -> None:
    port, controller_port = free_ports(2)
    broker = KafkaBroker(tmp_path / "bad", port=port, controller_port=controller_port, heap="lots")
    with pytest.raises(KafkaBrokerError, match=r"(?s)exited during start-up.*Invalid maximum heap size"):
        broker.start(timeout_s=60)
    assert broker.pid() is None


def test_own_child_counts_as_running_while_its_command_line_is_not_yet_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right after fork/exec, /proc/<pid>/cmdline reads empty; that is not an early exit."""
    broker = KafkaBroker(tmp_path / "exec-window")
    broker.state_dir.mkdir(parents=True)
    monkeypatch.setattr(KafkaBroker, "_cmdline", staticmethod(lambda _pid: []))
    child = subprocess.Popen(["sleep", "30"])
    try:
        broker._child = child
        broker.pid_file.write_text(f"{child.pid}\n")
        assert broker.pid() == child.pid
        child.kill()
        child.wait()
        assert broker.pid() is None
    finally:
        child.kill()
        child.wait()


def test_stop_and_start_keep_the_data(kafka_broker: KafkaBroker, kafka_resource: KafkaResource) -> None:
    records = [(f"device-{i}", f"payload-{i}".encode()) for i in range(50)]
    _produce(kafka_resource, records)
    cluster_id = (kafka_broker.data_dir / "meta.properties").read_text()

    assert kafka_broker.stop() is True
    assert kafka_broker.status().running is False
    assert kafka_broker.start(timeout_s=180) is True
    assert kafka_broker.start(timeout_s=30) is False  # already running: nothing to do

    assert (kafka_broker.data_dir / "meta.properties").read_text() == cluster_id  # not re-formatted
    messages = _consume(
        kafka_resource.consumer(f"g-{uuid.uuid4().hex[:8]}"), kafka_resource.topic, len(records)
    )
    assert sorted((m.key().decode(), m.value()) for m in messages) == sorted(records)


def test_cli_status_and_topics(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    # No port given: status reads the address from the running broker's config in its state dir.
    status = _cli("status", "--state-dir", str(kafka_broker.state_dir))
    assert status.returncode == 0, status.stderr
    assert f"healthy at {kafka_broker.bootstrap_servers}" in status.stdout

    stopped = _cli("status", "--state-dir", str(tmp_path / "nothing"))
    assert stopped.returncode == 3
    assert "not running" in stopped.stdout

    name = f"cli-{uuid.uuid4().hex[:8]}"
    topic_args = ["--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic", name]
    topic_args += ["--quarantine-topic", f"{name}-quarantine", "--partitions", "2"]
    first = _cli("topics", *topic_args)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        f"{name}: created, 2 partitions",
        f"{name}-quarantine: created, 2 partitions",
    ]
    second = _cli("topics", *topic_args)
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines() == [
        f"{name}: exists, 2 partitions",
        f"{name}-quarantine: exists, 2 partitions",
    ]

"""Every Kafka client against a real SASL_SSL broker (SCRAM-SHA-512 over TLS, CA made for the session).

The clients are configured only through the documented environment variables, as a deployment
configures them: the simulator's command line, the stream in both modes with its quarantine
publisher, the batch replay and ``iot-pipeline checkpoint lag``. A wrong password must fail each of
them within seconds, with a message that names the variable to fix.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from iot_pipeline.assets.replay import replay_hours
from iot_pipeline.cli import main as iot_pipeline
from iot_pipeline.resources.kafka import KafkaConfigError, KafkaResource
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import SparkResource
from iot_pipeline.services.kafka_broker import KafkaBroker
from iot_pipeline.streaming.resource import SparkStreamingResource, StreamMode
from iot_pipeline.testing.kafka import scratch_kafka
from iot_pipeline_tests.fixtures.kafka import secured_env

pytestmark = [pytest.mark.kafka, pytest.mark.spark]

START = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
def secured(secured_kafka_broker: KafkaBroker, monkeypatch: pytest.MonkeyPatch) -> Iterator[KafkaResource]:
    """The secured broker's variables in the environment, and this test's topics on it."""
    for key, value in secured_env(secured_kafka_broker).items():
        monkeypatch.setenv(key, value)
    yield scratch_kafka(secured_kafka_broker.security.bootstrap_servers, "secure")


def simulate(topic: str, events: int, seed: int, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``iot-pipeline simulate`` as an operator runs it (Kafka address and security from the environment)."""
    code = iot_pipeline(
        ["simulate", "--topic", topic, "--max-events", str(events), "--rate", "0", "--seed", str(seed),
         "--start", START.isoformat(), "--no-metrics", "--no-progress", "--no-create-topics",
         "--anomaly-rate", "0", "--duplicate-rate", "0", "--late-rate", "0", "--malformed-rate", "0.05"]
    )  # fmt: skip
    return code, capsys.readouterr().err


def lag(lake: Path, topic: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = iot_pipeline(["checkpoint", "--lake-root", str(lake), "lag", "--topic", topic])
    out = capsys.readouterr()
    return code, out.out + out.err


def streaming(spark_resource: SparkResource, kafka: KafkaResource, lake: Path) -> SparkStreamingResource:
    return SparkStreamingResource(
        spark=spark_resource,
        kafka=kafka,
        lake=LakeResource(root=str(lake)),
        metrics_port=0,
        trigger_seconds=1.0,
        live_stats=False,
        quarantine_to_kafka=True,
    )


def quarantine_records(kafka: KafkaResource) -> int:
    probe = KafkaResource(bootstrap_servers=kafka.bootstrap_servers, topic=kafka.quarantine_topic)
    return sum(high - low for low, high in probe.watermarks().values())


def test_every_client_works_over_sasl_ssl(
    spark: SparkSession,
    spark_resource: SparkResource,
    secured: KafkaResource,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lake = tmp_path / "lake"
    code, err = simulate(secured.topic, 400, seed=11, capsys=capsys)
    assert code == 0, err

    # Available-now: every record read over SASL_SSL; bad ones published back to Kafka (Spark's sink).
    stream = streaming(spark_resource, secured, lake)
    first = stream.run(StreamMode.AVAILABLE_NOW, log=lambda _: None)
    quarantined = sum(first.quarantined.values())
    assert first.input_rows == 400 and first.bronze_rows + quarantined == 400 and quarantined > 0
    assert quarantine_records(secured) == quarantined
    code, text = lag(lake, secured.topic, capsys)
    assert code == 0 and "total lag 0 " in text, text

    # Continuous: records sent while it runs reach bronze; lag is then zero again.
    stop = threading.Event()
    outcome: dict[str, object] = {}
    runner = threading.Thread(
        target=lambda: outcome.update(totals=stream.run(StreamMode.CONTINUOUS, log=lambda _: None, stop=stop))
    )
    runner.start()
    try:
        time.sleep(3)
        code, err = simulate(secured.topic, 100, seed=12, capsys=capsys)
        assert code == 0, err
        code, text = lag(lake, secured.topic, capsys)
        assert code == 0 and "total lag" in text
        deadline = time.monotonic() + 120
        while "total lag 0 " not in lag(lake, secured.topic, capsys)[1]:
            assert runner.is_alive(), "the continuous stream ended on its own"
            assert time.monotonic() < deadline, "records sent while running never reached bronze"
            time.sleep(1)
    finally:
        stop.set()
        runner.join(60)
    assert not runner.is_alive()

    # Replay of the hour straight from Kafka (Spark's batch Kafka reader with the same settings).
    bronze = spark.read.parquet(stream.lake.layout.bronze_events)
    replayed, scanned = replay_hours(spark, secured, [START], None, ["event_id", "event_date", "event_hour"])
    assert scanned == 500 and replayed is not None
    assert replayed.count() == bronze.filter("event_hour = 10").count() > 0


def test_a_wrong_password_fails_fast_naming_the_variable(
    spark_resource: SparkResource,
    secured: KafkaResource,
    secured_kafka_broker: KafkaBroker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("IOT_KAFKA_SASL_PASSWORD", "not-the-password")
    hint = "IOT_KAFKA_SASL_PASSWORD"

    started = time.monotonic()
    with pytest.raises(KafkaConfigError, match=hint):
        secured.check_reachable()
    assert time.monotonic() - started < 8, "a refused login must not wait for the timeout"

    started = time.monotonic()
    code, err = simulate(secured.topic, 10, seed=1, capsys=capsys)
    assert code == 3 and hint in err and time.monotonic() - started < 15

    started = time.monotonic()
    with pytest.raises(KafkaConfigError, match=hint):
        streaming(spark_resource, secured, tmp_path / "lake").start(
            StreamMode.AVAILABLE_NOW, log=lambda _: None
        )
    assert time.monotonic() - started < 15

    code, text = lag(tmp_path / "lake", secured.topic, capsys)
    assert code == 2 and hint in text

    # A client that forgets TLS and SASL altogether is told which setting to look at.
    monkeypatch.setenv("IOT_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    monkeypatch.delenv("IOT_KAFKA_SSL_CA_LOCATION")
    with pytest.raises(KafkaConfigError, match="IOT_KAFKA_SECURITY_PROTOCOL"):
        secured.check_reachable(timeout_s=5)

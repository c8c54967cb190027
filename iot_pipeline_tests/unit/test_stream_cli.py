"""``iot-pipeline stream`` builds the code location's streaming resource: flag over variable over default."""

from __future__ import annotations

import argparse

import pytest

from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.streaming import cli as stream_cli
from iot_pipeline.streaming.resource import SparkStreamingResource


def build(*argv: str) -> SparkStreamingResource:
    parser = argparse.ArgumentParser()
    stream_cli.add_arguments(parser)
    return stream_cli.build_resource(parser.parse_args(list(argv)))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, *_ in stream_cli.BOUND_OPTIONS.values():
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("IOT_METRICS_HOST", raising=False)


def test_without_flags_or_variables_every_setting_is_the_resource_default() -> None:
    r = build()
    assert (
        r.kafka.topic == KafkaResource().topic
        and r.kafka.bootstrap_servers == KafkaResource().bootstrap_servers
    )
    assert r.lake.root == ".local/lake" and r.spark.master == "local[*]"
    assert r.trigger_seconds == SparkStreamingResource.model_fields["trigger_seconds"].default
    assert r.spark.app_name == "iot-pipeline-stream" and not r.spark.s3


def test_a_variable_is_read_as_the_code_location_binds_it_and_a_flag_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IOT_KAFKA_TOPIC", "from-env")
    monkeypatch.setenv("IOT_STREAM_METRICS_PORT", "9555")
    monkeypatch.setenv("IOT_METRICS_HOST", "0.0.0.0")
    monkeypatch.setenv("IOT_STREAM_TRIGGER_SECONDS", "2.5")
    r = build()
    assert (r.kafka.topic, r.metrics_port, r.metrics_host, r.trigger_seconds) == (
        "from-env",
        9555,
        "0.0.0.0",
        2.5,
    )
    r = build("--topic", "from-flag", "--metrics-port", "0", "--lake-root", "s3a://lake/root")
    assert (r.kafka.topic, r.metrics_port, r.lake.root) == ("from-flag", 0, "s3a://lake/root")
    assert r.spark.s3  # an s3a:// lake given on the command line gets the S3A connector


def test_a_bad_variable_fails_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IOT_STREAM_METRICS_PORT", "ninety")
    with pytest.raises(ValueError, match="IOT_STREAM_METRICS_PORT"):
        build()

"""KafkaSettings: one connection, mapped to librdkafka's and to the Java client's property names."""

from __future__ import annotations

from pathlib import Path

import pytest

from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.resources.kafka_settings import ENV_VARS, KafkaSettings, KafkaSettingsError


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    return path


def test_unset_means_plaintext_and_the_resource_address_wins() -> None:
    settings = KafkaSettings.from_env({"IOT_KAFKA_BOOTSTRAP_SERVERS": "a:1"}, bootstrap_servers="b:2")
    assert settings.librdkafka() == {"bootstrap.servers": "b:2"}
    assert settings.spark_options() == {"kafka.bootstrap.servers": "b:2"}


def test_sasl_ssl_maps_to_both_clients(ca: Path, tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text('p"w\\1\n')
    env = {
        "IOT_KAFKA_BOOTSTRAP_SERVERS": "k1:9093,k2:9093",
        "IOT_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        "IOT_KAFKA_SASL_MECHANISM": "scram-sha-256",
        "IOT_KAFKA_SASL_USERNAME": "iot",
        "IOT_KAFKA_SASL_PASSWORD_FILE": str(secret),
        "IOT_KAFKA_SSL_CA_LOCATION": str(ca),
    }
    settings = KafkaSettings.from_env(env)
    assert settings.librdkafka() == {
        "bootstrap.servers": "k1:9093,k2:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "iot",
        "sasl.password": 'p"w\\1',
        "ssl.ca.location": str(ca),
    }
    assert settings.spark_options() == {
        "kafka.bootstrap.servers": "k1:9093,k2:9093",
        "kafka.security.protocol": "SASL_SSL",
        "kafka.sasl.mechanism": "SCRAM-SHA-256",
        "kafka.sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="iot" password="p\\"w\\\\1";',
        "kafka.ssl.truststore.type": "PEM",
        "kafka.ssl.truststore.location": str(ca),
    }
    assert 'p"w' not in repr(settings) and 'p"w' not in settings.describe()


def test_mutual_tls_passes_the_pem_contents_to_java(ca: Path, tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("CERT")
    key.write_text("KEY")
    settings = KafkaSettings.from_env(
        {
            "IOT_KAFKA_SECURITY_PROTOCOL": "SSL",
            "IOT_KAFKA_SSL_CA_LOCATION": str(ca),
            "IOT_KAFKA_SSL_CERTIFICATE_LOCATION": str(cert),
            "IOT_KAFKA_SSL_KEY_LOCATION": str(key),
        }
    )
    assert settings.librdkafka()["ssl.certificate.location"] == str(cert)
    java = settings.java()
    assert (java["ssl.keystore.type"], java["ssl.keystore.certificate.chain"], java["ssl.keystore.key"]) == (
        "PEM",
        "CERT",
        "KEY",
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"IOT_KAFKA_SECURITY_PROTOCOL": "TLS"}, "IOT_KAFKA_SECURITY_PROTOCOL"),
        ({"IOT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "IOT_KAFKA_SASL_MECHANISM"),
        (
            {"IOT_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "IOT_KAFKA_SASL_MECHANISM": "PLAIN"},
            "IOT_KAFKA_SASL_USERNAME",
        ),
        (
            {
                "IOT_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "IOT_KAFKA_SASL_MECHANISM": "PLAIN",
                "IOT_KAFKA_SASL_USERNAME": "u",
            },
            "IOT_KAFKA_SASL_PASSWORD",
        ),
        ({"IOT_KAFKA_SASL_PASSWORD_FILE": "/nonexistent/pw"}, "IOT_KAFKA_SASL_PASSWORD_FILE"),
        (
            {"IOT_KAFKA_SECURITY_PROTOCOL": "SSL", "IOT_KAFKA_SSL_CA_LOCATION": "/nope.pem"},
            "IOT_KAFKA_SSL_CA_LOCATION",
        ),
        ({"IOT_KAFKA_SSL_CERTIFICATE_LOCATION": "/x"}, "IOT_KAFKA_SSL_KEY_LOCATION"),
    ],
)
def test_unusable_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(KafkaSettingsError, match=named):
        KafkaSettings.from_env(env)


def test_one_resource_gives_spark_the_connection_and_the_java_tuning(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stream's source and sink and the replay all take ``KafkaResource.spark_options()``."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    kafka = KafkaResource(
        bootstrap_servers="k:9092",
        client_config={"socket.timeout.ms": "5000"},  # librdkafka only
        java_client_config={"fetch.max.bytes": "1048576", "kafka.request.timeout.ms": "20000"},
    )
    assert kafka.spark_options() == {
        "kafka.bootstrap.servers": "k:9092",
        "kafka.fetch.max.bytes": "1048576",
        "kafka.request.timeout.ms": "20000",
    }
    assert kafka._base() == {"bootstrap.servers": "k:9092", "socket.timeout.ms": "5000"}

"""One Kafka connection setting for every client: bootstrap servers and security, from the environment.

The simulator, the admin checks and ``KafkaResource`` speak librdkafka (confluent-kafka); the stream
and the replay speak Kafka's Java client (through Spark). Both read their connection from this one
object, so a SASL/TLS cluster is configured once and no client connects with less than the others.
Secrets (the SASL password, the client key's password) come only from environment variables or files
they name, never from run config: they are not fields of any Dagster resource. This module does not
import Dagster, so the command-line tools use it without paying for that import.

Environment variables (all optional; unset means PLAINTEXT, as a local broker needs):

| variable | meaning |
|---|---|
| ``IOT_KAFKA_BOOTSTRAP_SERVERS`` | ``host:port[,host:port]`` |
| ``IOT_KAFKA_SECURITY_PROTOCOL`` | ``PLAINTEXT``, ``SSL``, ``SASL_PLAINTEXT`` or ``SASL_SSL`` |
| ``IOT_KAFKA_SASL_MECHANISM`` | ``PLAIN``, ``SCRAM-SHA-256`` or ``SCRAM-SHA-512`` |
| ``IOT_KAFKA_SASL_USERNAME`` | the SASL user |
| ``IOT_KAFKA_SASL_PASSWORD`` / ``IOT_KAFKA_SASL_PASSWORD_FILE`` | its password, or a file holding it |
| ``IOT_KAFKA_SSL_CA_LOCATION`` | PEM file of the CA that signed the brokers' certificates |
| ``IOT_KAFKA_SSL_CERTIFICATE_LOCATION`` | PEM client certificate (mutual TLS) |
| ``IOT_KAFKA_SSL_KEY_LOCATION`` | PEM client private key (mutual TLS) |
| ``IOT_KAFKA_SSL_KEY_PASSWORD`` / ``IOT_KAFKA_SSL_KEY_PASSWORD_FILE`` | the key's password, if encrypted |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# The project's Kafka defaults, declared once for the resources and the command-line tools alike.
DEFAULT_BOOTSTRAP_SERVERS = "127.0.0.1:9092"
DEFAULT_TOPIC = "iot-events"
DEFAULT_QUARANTINE_TOPIC = "iot-events-quarantine"
DEFAULT_PARTITIONS = 3
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

ENV_BOOTSTRAP = "IOT_KAFKA_BOOTSTRAP_SERVERS"
ENV_TOPIC = "IOT_KAFKA_TOPIC"
ENV_QUARANTINE_TOPIC = "IOT_KAFKA_QUARANTINE_TOPIC"
ENV_PROTOCOL = "IOT_KAFKA_SECURITY_PROTOCOL"
ENV_MECHANISM = "IOT_KAFKA_SASL_MECHANISM"
ENV_USERNAME = "IOT_KAFKA_SASL_USERNAME"
ENV_PASSWORD = "IOT_KAFKA_SASL_PASSWORD"
ENV_CA = "IOT_KAFKA_SSL_CA_LOCATION"
ENV_CERT = "IOT_KAFKA_SSL_CERTIFICATE_LOCATION"
ENV_KEY = "IOT_KAFKA_SSL_KEY_LOCATION"
ENV_KEY_PASSWORD = "IOT_KAFKA_SSL_KEY_PASSWORD"

# Every variable this module reads (the ``*_FILE`` forms of the two secrets included).
ENV_VARS = (
    ENV_BOOTSTRAP,
    ENV_PROTOCOL,
    ENV_MECHANISM,
    ENV_USERNAME,
    ENV_PASSWORD,
    f"{ENV_PASSWORD}_FILE",
    ENV_CA,
    ENV_CERT,
    ENV_KEY,
    ENV_KEY_PASSWORD,
    f"{ENV_KEY_PASSWORD}_FILE",
)

_JAAS_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


class KafkaSettingsError(ValueError):
    """A Kafka connection setting is missing or invalid; the message names the variable to fix."""


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """``NAME`` itself, else the content of the file ``NAME_FILE`` names (trailing newline dropped)."""
    if env.get(name):
        return env[name]
    path = env.get(f"{name}_FILE")
    if not path:
        return None
    try:
        return Path(path).read_text().rstrip("\r\n")
    except OSError as exc:
        raise KafkaSettingsError(f"{name}_FILE={path!r} cannot be read ({exc.strerror}).") from None


def _jaas_quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


@dataclass(frozen=True)
class KafkaSettings:
    """Where Kafka is and how to authenticate; maps itself to each client library's property names."""

    bootstrap_servers: str = DEFAULT_BOOTSTRAP_SERVERS
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, bootstrap_servers: str | None = None
    ) -> KafkaSettings:
        """Read the documented variables; ``bootstrap_servers`` (a CLI flag, a resource field) wins."""
        env = os.environ if env is None else env
        settings = cls(
            bootstrap_servers=bootstrap_servers or env.get(ENV_BOOTSTRAP) or DEFAULT_BOOTSTRAP_SERVERS,
            security_protocol=(env.get(ENV_PROTOCOL) or "PLAINTEXT").strip().upper(),
            sasl_mechanism=(env.get(ENV_MECHANISM) or "").strip().upper() or None,
            sasl_username=env.get(ENV_USERNAME) or None,
            sasl_password=_secret(env, ENV_PASSWORD),
            ssl_ca_location=env.get(ENV_CA) or None,
            ssl_certificate_location=env.get(ENV_CERT) or None,
            ssl_key_location=env.get(ENV_KEY) or None,
            ssl_key_password=_secret(env, ENV_KEY_PASSWORD),
        )
        settings.validate()
        return settings

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def validate(self) -> None:
        """Reject combinations no client could use, naming the variable to fix."""
        if self.security_protocol not in PROTOCOLS:
            raise KafkaSettingsError(
                f"{ENV_PROTOCOL}={self.security_protocol!r} is not one of {', '.join(PROTOCOLS)}."
            )
        if self.uses_sasl:
            if self.sasl_mechanism not in MECHANISMS:
                raise KafkaSettingsError(
                    f"{ENV_MECHANISM}={self.sasl_mechanism or ''!r} must be one of {', '.join(MECHANISMS)} "
                    f"when {ENV_PROTOCOL}={self.security_protocol}."
                )
            if not self.sasl_username:
                raise KafkaSettingsError(
                    f"{ENV_USERNAME} is required with {ENV_PROTOCOL}={self.security_protocol}."
                )
            if not self.sasl_password:
                raise KafkaSettingsError(
                    f"{ENV_PASSWORD} (or {ENV_PASSWORD}_FILE) is required with "
                    f"{ENV_PROTOCOL}={self.security_protocol}."
                )
        if bool(self.ssl_certificate_location) != bool(self.ssl_key_location):
            raise KafkaSettingsError(f"Set both {ENV_CERT} and {ENV_KEY} for mutual TLS, or neither.")
        for name, path in (
            (ENV_CA, self.ssl_ca_location),
            (ENV_CERT, self.ssl_certificate_location),
            (ENV_KEY, self.ssl_key_location),
        ):
            if path and not Path(path).is_file():
                raise KafkaSettingsError(f"{name}={path!r} is not a readable file.")
        if (self.ssl_ca_location or self.ssl_certificate_location) and not self.uses_tls:
            raise KafkaSettingsError(
                f"{ENV_CA}/{ENV_CERT} are set but {ENV_PROTOCOL}={self.security_protocol} does not use TLS "
                "(use SSL or SASL_SSL)."
            )

    # -- librdkafka (confluent-kafka: simulator, admin checks, KafkaResource) ---------------------
    def librdkafka(self) -> dict[str, str]:
        conf = {"bootstrap.servers": self.bootstrap_servers}
        if self.security_protocol != "PLAINTEXT":
            conf["security.protocol"] = self.security_protocol
        if self.uses_sasl:
            conf["sasl.mechanism"] = str(self.sasl_mechanism)
            conf["sasl.username"] = str(self.sasl_username)
            conf["sasl.password"] = str(self.sasl_password)
        if self.ssl_ca_location:
            conf["ssl.ca.location"] = self.ssl_ca_location
        if self.ssl_certificate_location:
            conf["ssl.certificate.location"] = self.ssl_certificate_location
            conf["ssl.key.location"] = str(self.ssl_key_location)
            if self.ssl_key_password:
                conf["ssl.key.password"] = self.ssl_key_password
        return conf

    # -- Kafka's Java client (Spark's Kafka source and sink: stream, replay) ----------------------
    def java(self) -> dict[str, str]:
        """Java client properties. PEM files are read as PEM (``ssl.*.type=PEM``), as librdkafka reads them."""
        conf = {"bootstrap.servers": self.bootstrap_servers}
        if self.security_protocol != "PLAINTEXT":
            conf["security.protocol"] = self.security_protocol
        if self.uses_sasl:
            mechanism = str(self.sasl_mechanism)
            conf["sasl.mechanism"] = mechanism
            conf["sasl.jaas.config"] = (
                f'{_JAAS_MODULES[mechanism]} required username="{_jaas_quote(str(self.sasl_username))}" '
                f'password="{_jaas_quote(str(self.sasl_password))}";'
            )
        if self.ssl_ca_location:
            conf["ssl.truststore.type"] = "PEM"
            conf["ssl.truststore.location"] = self.ssl_ca_location
        if self.ssl_certificate_location and self.ssl_key_location:
            # The Java client takes a PEM key store as values, not as two file names.
            conf["ssl.keystore.type"] = "PEM"
            conf["ssl.keystore.certificate.chain"] = Path(self.ssl_certificate_location).read_text()
            conf["ssl.keystore.key"] = Path(self.ssl_key_location).read_text()
            if self.ssl_key_password:
                conf["ssl.key.password"] = self.ssl_key_password
        return conf

    def spark_options(self) -> dict[str, str]:
        """The Java properties as options of Spark's Kafka source and sink (``kafka.`` prefixed)."""
        return {f"kafka.{key}": value for key, value in self.java().items()}

    def describe(self) -> str:
        """A one-line summary without secrets, for logs and error messages."""
        text = f"{self.bootstrap_servers} ({self.security_protocol}"
        if self.uses_sasl:
            text += f", {self.sasl_mechanism} as {self.sasl_username!r}"
        return text + ")"

    def credential_hint(self) -> str:
        """Which variables to check when the broker refuses the connection."""
        if self.uses_sasl:
            return (
                f"Check {ENV_USERNAME} and {ENV_PASSWORD} (or {ENV_PASSWORD}_FILE), and {ENV_MECHANISM}"
                f"={self.sasl_mechanism}."
            )
        if self.uses_tls:
            return f"Check {ENV_CA} and {ENV_PROTOCOL}={self.security_protocol}."
        return f"Check {ENV_PROTOCOL} (the broker may require SSL or SASL_SSL)."

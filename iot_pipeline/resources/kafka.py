"""Kafka as a Dagster resource, shared by the simulator, the admin checks, the stream and the replay.

The connection (bootstrap servers and security) is a :class:`KafkaSettings`, read from the
environment each time a client is built: the SASL password and key password never become resource
config, so they cannot land in run config or the Dagster UI.
"""

from __future__ import annotations

import time
from typing import Any

import dagster as dg
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from iot_pipeline.resources.kafka_settings import (
    DEFAULT_BOOTSTRAP_SERVERS,
    DEFAULT_PARTITIONS,
    DEFAULT_QUARANTINE_TOPIC,
    DEFAULT_TOPIC,
    KafkaSettings,
    KafkaSettingsError,
)


class KafkaConfigError(RuntimeError):
    """Raised when the broker cannot be used; the message names the setting to fix."""


# librdkafka errors that mean "the broker refused us", not "the broker is not there".
_REFUSED = {
    KafkaError._AUTHENTICATION,
    KafkaError.SASL_AUTHENTICATION_FAILED,
    KafkaError._SSL,
    KafkaError.ILLEGAL_SASL_STATE,
    KafkaError.UNSUPPORTED_SASL_MECHANISM,
}


class KafkaResource(dg.ConfigurableResource):
    """Where the events live in Kafka.

    Security comes from the ``IOT_KAFKA_SECURITY_PROTOCOL``/``IOT_KAFKA_SASL_*``/``IOT_KAFKA_SSL_*``
    variables (:mod:`iot_pipeline.resources.kafka_settings`), the same for every client. Tuning on
    top, never secrets (it is run config), per client library, since the two name their properties
    differently: ``client_config`` for librdkafka (simulator, admin checks, offset lookups),
    ``java_client_config`` for Kafka's Java client inside Spark (the stream, its quarantine sink, the
    replay), e.g. ``{"fetch.max.bytes": "104857600"}``.
    """

    bootstrap_servers: str = DEFAULT_BOOTSTRAP_SERVERS
    topic: str = DEFAULT_TOPIC
    quarantine_topic: str = DEFAULT_QUARANTINE_TOPIC
    partitions: int = DEFAULT_PARTITIONS
    replication_factor: int = 1
    client_config: dict[str, str] = {}
    java_client_config: dict[str, str] = {}

    def settings(self) -> KafkaSettings:
        """The connection every client uses: this resource's servers, security from the environment."""
        try:
            return KafkaSettings.from_env(bootstrap_servers=self.bootstrap_servers)
        except KafkaSettingsError as exc:
            raise KafkaConfigError(str(exc)) from None

    def spark_options(self) -> dict[str, str]:
        """Options of Spark's Kafka source and sink: the connection and security, then the Java tuning."""
        return {
            **self.settings().spark_options(),
            **{f"kafka.{k.removeprefix('kafka.')}": v for k, v in self.java_client_config.items()},
        }

    def _base(self) -> dict[str, Any]:
        return {**self.settings().librdkafka(), **self.client_config}

    def admin(self) -> AdminClient:
        return AdminClient(self._base())

    def producer(self, **overrides: Any) -> Producer:
        return Producer({**self._base(), **overrides})

    def consumer(self, group_id: str, **overrides: Any) -> Consumer:
        conf = {"group.id": group_id, "auto.offset.reset": "earliest", "enable.auto.commit": False}
        return Consumer({**self._base(), **conf, **overrides})

    def check_reachable(self, timeout_s: float = 10.0) -> None:
        """Fail fast with the setting to fix instead of letting clients retry forever.

        A refused login or TLS handshake is reported as soon as librdkafka sees it (not after the
        timeout), naming the credential variables; silence until the timeout names the servers.
        """
        settings = self.settings()
        refused: list[KafkaError] = []

        def on_error(err: KafkaError) -> None:
            if err.code() in _REFUSED:
                refused.append(err)

        admin = AdminClient({**self._base(), "error_cb": on_error})
        deadline = time.monotonic() + timeout_s
        last: KafkaException | None = None
        while True:
            try:
                admin.list_topics(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
                return
            except KafkaException as exc:
                last = exc
            admin.poll(0)
            if refused:
                raise KafkaConfigError(
                    f"Kafka at {settings.describe()} refused the connection: {refused[-1].str()}. "
                    f"{settings.credential_hint()}"
                )
            if time.monotonic() >= deadline:
                break
        raise KafkaConfigError(
            f"Kafka broker not reachable at bootstrap servers {self.bootstrap_servers!r} within "
            f"{timeout_s:.0f}s ({last.args[0] if last else 'no answer'}). Check IOT_KAFKA_BOOTSTRAP_SERVERS "
            f"(and IOT_KAFKA_SECURITY_PROTOCOL, now {settings.security_protocol})."
        )

    def watermarks(self, timeout_s: float = 15.0, purpose: str = "") -> dict[int, tuple[int, int]]:
        """(low, high) offsets of every partition of the event topic; a missing topic names IOT_KAFKA_TOPIC."""
        consumer = self.consumer(group_id="iot-pipeline-offsets")
        try:
            topic_md = consumer.list_topics(self.topic, timeout=timeout_s).topics.get(self.topic)
            if topic_md is None or topic_md.error is not None or not topic_md.partitions:
                raise KafkaConfigError(
                    f"Kafka topic {self.topic!r} not found at {self.bootstrap_servers!r}"
                    f"{': ' + purpose if purpose else ''}. Check IOT_KAFKA_TOPIC."
                )
            return {
                p: consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout_s)
                for p in sorted(topic_md.partitions)
            }
        finally:
            consumer.close()

    def ensure_topics(self, timeout_s: float = 30.0) -> list[str]:
        """Create the event and quarantine topics if missing; returns the names it created."""
        self.check_reachable()
        admin = self.admin()
        existing = set(admin.list_topics(timeout=timeout_s).topics)
        wanted = [t for t in (self.topic, self.quarantine_topic) if t and t not in existing]
        if not wanted:
            return []
        futures = admin.create_topics(
            [
                NewTopic(t, num_partitions=self.partitions, replication_factor=self.replication_factor)
                for t in wanted
            ],
            operation_timeout=timeout_s,
        )
        created = []
        for name, future in futures.items():
            try:
                future.result()
                created.append(name)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # another client won the race
                    raise
        self._await_leaders(admin, wanted, timeout_s)
        return created

    def _await_leaders(self, admin: AdminClient, names: list[str], timeout_s: float) -> None:
        """CreateTopics answers once the controller commits; the broker's metadata (what producers and
        Spark's AdminClient read) catches up a moment later, so wait until every partition has a leader."""
        deadline = time.monotonic() + timeout_s
        while True:
            topics = admin.list_topics(timeout=timeout_s).topics
            if all(
                name in topics
                and topics[name].error is None
                and topics[name].partitions
                and all(p.leader >= 0 for p in topics[name].partitions.values())
                for name in names
            ):
                return
            if time.monotonic() > deadline:
                raise KafkaConfigError(
                    f"Topics {names} were created but have no partition leaders after {timeout_s:.0f}s "
                    f"on {self.bootstrap_servers!r}."
                )
            time.sleep(0.1)

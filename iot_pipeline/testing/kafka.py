"""Kafka topics of a test or benchmark's own, on a shared broker."""

from __future__ import annotations

import uuid

from iot_pipeline.resources.kafka import KafkaResource


def scratch_kafka(bootstrap_servers: str, prefix: str, partitions: int = 3) -> KafkaResource:
    """A KafkaResource on fresh event and quarantine topics named ``<prefix>-<random>``, created, so
    that runs sharing a broker never read each other's records."""
    topic = f"{prefix}-{uuid.uuid4().hex[:8]}"
    kafka = KafkaResource(
        bootstrap_servers=bootstrap_servers,
        topic=topic,
        quarantine_topic=f"{topic}-quarantine",
        partitions=partitions,
    )
    kafka.ensure_topics()
    return kafka

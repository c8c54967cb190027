"""The device simulator: deterministic IoT events (with ground truth) produced to Kafka.

Modules: ``devices`` (types and fleet), ``faults`` (injection), ``generator`` (pure event generation,
:class:`~iot_pipeline.ingestion.generator.SimRecord`), ``producer`` (confluent-kafka sending),
``metrics`` (Prometheus + /healthz), ``replay`` (JSONL/CSV), ``runner`` (one run), ``cli``.
"""

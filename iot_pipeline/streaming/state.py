"""Small state files the stream publishes in the lake for other processes (sensors, silver's reader)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from iot_pipeline.storage import parquet_io as pio
from iot_pipeline.storage.commits import commit_document
from iot_pipeline.storage.layout import LakeLayout
from iot_pipeline.storage.watermark import trusted_watermark, watermark_document


def write_watermark(layout: LakeLayout, watermark: datetime) -> None:
    pio.write_text(layout.stream_watermark, watermark_document(watermark))


def read_watermark_document(layout: LakeLayout) -> Any:
    """The published watermark document as JSON, or None if there is none."""
    text = pio.read_text(layout.stream_watermark)
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return {"unreadable": text[:200]}


def write_bronze_commit(
    layout: LakeLayout, batch: int, rules: str | None = None, rules_since: int | None = None
) -> None:
    """Mark bronze batches up to ``batch`` as complete for readers, those from ``rules_since`` on as
    validated under ``rules`` (see ``storage.commits``)."""
    pio.write_text(layout.bronze_commit, commit_document(batch, rules, rules_since))


@dataclass
class WatermarkPublisher:
    """The stream's event-time watermark: newest accepted event time minus ``delay``, never moving back.

    Only events the contract accepted reach :meth:`observe` (an event stamped after it reached Kafka is
    quarantined as ``future_timestamp``), and a candidate is capped at the wall clock as well, so no
    record can carry the watermark past the present. A restart continues from the last published value,
    unless that value is later than the clock (written before these rules existed, or by a clock set
    back since): it is then ignored with a warning rather than trusted forever.
    """

    layout: LakeLayout
    delay: timedelta
    on_change: Callable[[datetime], None] = lambda _: None
    warn: Callable[[str], None] = print
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
    current: datetime | None = None

    def __post_init__(self) -> None:
        notes: list[str] = []
        self.current = trusted_watermark(read_watermark_document(self.layout), self.clock(), notes)
        for note in notes:
            self.warn(f"WARNING: {note}; it restarts from the next accepted event")

    def observe(self, newest_event: datetime | None) -> None:
        if newest_event is None:
            return
        candidate = min(newest_event, self.clock()) - self.delay
        if self.current is None or candidate > self.current:
            self.current = candidate
            write_watermark(self.layout, candidate)
            self.on_change(candidate)

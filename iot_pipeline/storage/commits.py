"""Which bronze micro-batches a reader may use: the stream's commit marker.

Each micro-batch lands in its own ``ingest_batch=N`` directories (see ``streaming/sink.py``), but its
files do not appear at one instant: a batch that touches several hours commits them one after the
other, and on S3 every file is a copy-and-delete rename. So once all of batch N's writes have
committed, the stream records N in ``LakeLayout.bronze_commit``; readers of bronze use only batches
at or below it. Replayed hours (``ingest_batch=-1``, written by ``silver/events`` itself, whole, before
it reads them) are always visible. A lake without the marker (written before it existed) is read
whole.

The marker also says under which value rules the stream validated its batches: ``rules`` (the
contract's :func:`~iot_pipeline.contract.rules.rules_fingerprint`) holds for every batch from
``rules_since_batch`` on; a stream started with other rules (a new version, other event-time
settings) starts a new range. Silver re-checks every row against the contract except rows of such a
range validated under its own rules: the one check it cannot skip is that a row sits in its hour.

A batch that Spark re-runs after a crash rewrites the same records, so the short moment in
which a re-run batch at or below the marker is being replaced is the one window a reader can still
see part of a batch; what it reads then is a subset of records it reads in full on its next run.
"""

from __future__ import annotations

import json
import re
from typing import Any

BATCH_COLUMN = "ingest_batch"
REPLAY_BATCH = -1  # bronze rows that silver/events rebuilt from Kafka for an hour the stream missed
_BATCH_DIR = re.compile(rf"/{BATCH_COLUMN}=(-?\d+)(?:/|$)")


def commit_document(batch: int, rules: str | None = None, rules_since: int | None = None) -> str:
    doc: dict[str, Any] = {"committed_batch": batch}
    if rules is not None and rules_since is not None:
        doc |= {"rules": rules, "rules_since_batch": rules_since}
    return json.dumps(doc)


def parse_commit(text: str | None) -> int | None:
    """The newest committed batch id, or None when the marker is absent or unreadable (read all)."""
    if not text:
        return None
    try:
        return committed_batch(json.loads(text))
    except ValueError:
        return None


def validated_batches(text: str | None, rules: str) -> tuple[int, int] | None:
    """The committed batches (first, last) the stream validated under ``rules``, or None."""
    try:
        doc = json.loads(text) if text else None
    except ValueError:
        return None
    last = committed_batch(doc)
    if last is None or doc.get("rules") != rules:
        return None
    first = doc.get("rules_since_batch")
    if not isinstance(first, int) or isinstance(first, bool) or first > last:
        return None
    return first, last


def committed_batch(doc: Any) -> int | None:
    """:func:`parse_commit` for a marker already parsed as JSON (e.g. by a lake listing)."""
    value = doc.get("committed_batch") if isinstance(doc, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def batch_of(path: str) -> int | None:
    """The ``ingest_batch`` of a bronze file's path, or None for a file outside any batch directory."""
    m = _BATCH_DIR.search(path)
    return int(m.group(1)) if m else None


def is_visible(path: str, committed: int | None) -> bool:
    """May a reader use this bronze file, given the newest committed batch?"""
    if committed is None:
        return True
    batch = batch_of(path)
    return batch is None or batch == REPLAY_BATCH or batch <= committed

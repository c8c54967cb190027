"""The stream's published event-time watermark: its file format, and when a reader may trust it.

The stream writes ``{"watermark": ISO-8601}`` to ``LakeLayout.stream_watermark`` after each batch; the
partition sensors read it to tell closed hours from open ones. A watermark is a claim that no event
older than it is still expected, so a value later than the reader's wall clock cannot be true: it was
written by a version of the stream that let a future-stamped event through, or by a clock that has
since been set back. Such a value is ignored (with a note saying so), never trusted forever, so one bad
record cannot close the current hour early or push every sensor tick past the end of the calendar.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

# How far a watermark may lead the reader's clock before it is ignored: clocks of two hosts differ.
CLOCK_SKEW = timedelta(minutes=5)


def parse_watermark(doc: Any) -> datetime | None:
    """The timestamp of a watermark document, or None when it is absent or not a valid timestamp."""
    if not isinstance(doc, dict) or not isinstance(doc.get("watermark"), str):
        return None
    try:
        value = datetime.fromisoformat(doc["watermark"].replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def trusted_watermark(
    doc: Any, now: datetime, notes: list[str] | None = None, skew: timedelta = CLOCK_SKEW
) -> datetime | None:
    """The watermark if it is usable at ``now``; an implausible one is dropped and explained in ``notes``."""
    value = parse_watermark(doc)
    if value is None:
        if doc is not None and notes is not None:
            notes.append(f"ignored an unreadable stream watermark: {json.dumps(doc)[:200]}")
        return None
    if value > now + skew:
        if notes is not None:
            notes.append(
                f"ignored the stream watermark {value.isoformat()}: it is later than the clock "
                f"({now.isoformat(timespec='seconds')}); the wall-clock rule decides instead"
            )
        return None
    return value


def watermark_document(value: datetime) -> str:
    return json.dumps({"watermark": value.isoformat()})

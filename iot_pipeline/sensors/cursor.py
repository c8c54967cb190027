"""Sensor cursors: versioned JSON documents; anything unreadable or of another version starts afresh."""

from __future__ import annotations

import json


def load_cursor(raw: str | None, version: int) -> dict:
    """The cursor's document, or {} when there is none, it is not JSON, or it is of another version."""
    try:
        doc = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) and doc.get("v") == version else {}


def dump_cursor(version: int, **fields: object) -> str:
    return json.dumps({"v": version, **fields}, separators=(",", ":"))


def load_marks(raw: object) -> dict[str, list]:
    """partition -> [token it was done with, time of its last request], as a cursor keeps them."""
    items = raw.items() if isinstance(raw, dict) else ()
    return {str(k): [str(v[0]), float(v[1])] for k, v in items}


def dump_marks(marks: dict[str, list]) -> dict[str, list]:
    return {k: [v[0], round(v[1], 1)] for k, v in sorted(marks.items())}

"""Sensor cursors: versioned JSON documents; anything unreadable or of another version starts afresh."""

from __future__ import annotations

import dataclasses
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


def cursor_fields(cursor: object) -> dict[str, object]:
    """A cursor dataclass's fields as JSON values: sets sorted, dicts by key, times to 0.1 s, and
    objects with a ``dump`` (the requests) as they dump themselves."""
    return {f.name: _plain(getattr(cursor, f.name)) for f in dataclasses.fields(cursor)}


def _plain(value: object) -> object:
    if hasattr(value, "dump"):
        return value.dump()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in sorted(value.items())}
    return round(value, 1) if isinstance(value, float) else value


def load_marks(raw: object) -> dict[str, list]:
    """partition -> [token it was done with, time of its last request], as a cursor keeps them."""
    items = raw.items() if isinstance(raw, dict) else ()
    return {str(k): [str(v[0]), float(v[1])] for k, v in items}

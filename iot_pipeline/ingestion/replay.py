"""Replay recorded events from JSON Lines or CSV files (optionally gzip-compressed).

JSONL lines are sent byte for byte, so a file written by ``simulate --output`` (including its malformed
lines) replays exactly. CSV rows are turned into JSON objects: columns are field names, empty cells are
omitted, number fields are converted when they parse and otherwise kept as strings (so a bad row stays
bad and is quarantined downstream rather than silently "fixed" here).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal

from iot_pipeline.contract.event import FIELDS_BY_NAME, FieldType
from iot_pipeline.ingestion.generator import STATUSES, SimRecord

ReplayFormat = Literal["auto", "jsonl", "csv"]
_NUMBER_FIELDS = frozenset(name for name, f in FIELDS_BY_NAME.items() if f.type is FieldType.NUMBER)


class ReplayError(ValueError):
    """The replay file cannot be read; the message names the file and what is wrong."""


def detect_format(path: Path) -> Literal["jsonl", "csv"]:
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    if suffixes and suffixes[-1] == ".csv":
        return "csv"
    if suffixes and suffixes[-1] in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise ReplayError(f"{path}: cannot tell the format from the extension; pass --replay-format jsonl|csv")


def _open_text(path: Path) -> IO[str]:
    if path.suffix.lower() == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


def record_from_payload(payload: bytes) -> SimRecord:
    """Classify a replayed payload just enough to key and label it; validation is the stream's job."""
    try:
        event = json.loads(payload)
    except ValueError:
        event = None
    if not isinstance(event, dict):
        return SimRecord(None, payload, "malformed", "malformed_json", "unknown", "malformed")  # type: ignore[arg-type]
    device_id = event.get("device_id")
    key = device_id if isinstance(device_id, str) and device_id else None
    status = event.get("status")
    return SimRecord(
        key,  # type: ignore[arg-type]
        payload,
        "valid",
        None,
        str(event.get("device_type") or "unknown"),
        status if status in STATUSES else "unknown",
    )


def _convert(name: str, text: str) -> Any:
    if name not in _NUMBER_FIELDS:
        return text
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):
        return text
    return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number


def csv_row_to_payload(row: dict[str, str | None]) -> bytes:
    event = {name: _convert(name, text) for name, text in row.items() if name and text not in (None, "")}
    return json.dumps(event, separators=(",", ":")).encode()


def read_replay(path: Path | str, fmt: ReplayFormat = "auto") -> Iterator[SimRecord]:
    path = Path(path)
    if not path.is_file():
        raise ReplayError(f"replay file not found: {path}")
    kind = detect_format(path) if fmt == "auto" else fmt
    return _read_csv(path) if kind == "csv" else _read_jsonl(path)


def _read_jsonl(path: Path) -> Iterator[SimRecord]:
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rb") as fh:
        for line in fh:
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield record_from_payload(line)


def _read_csv(path: Path) -> Iterator[SimRecord]:
    with _open_text(path) as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames:
            raise ReplayError(f"{path}: empty CSV, expected a header row with event field names")
        missing = [f for f in ("device_id", "event_id") if f not in reader.fieldnames]
        if len(missing) == 2:
            raise ReplayError(
                f"{path}: CSV header {reader.fieldnames} has none of the event fields; the first row "
                "must name the columns (event_id, device_id, device_type, event_timestamp, ...)"
            )
        for row in reader:
            yield record_from_payload(csv_row_to_payload(row))

"""Fault injection: which records go wrong, and how.

Rates are fractions of all records sent. A malformed record carries exactly one defect, named like the
quarantine reason the streaming job is expected to give it, so tests can compare both sides directly.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from iot_pipeline.contract.event import REQUIRED_FIELDS

MALFORMED_KINDS: tuple[str, ...] = (
    "malformed_json",
    "missing_field",
    "wrong_type",
    "negative_duration",
    "invalid_timestamp",
)
# Required numeric fields that get a non-numeric string; strings like "n/a" parse as nothing.
WRONG_TYPE_FIELDS: tuple[str, ...] = ("event_duration", "value")
_WRONG_TYPE_VALUES = ("n/a", "error", "fast", "high", "unknown")
_BAD_TIMESTAMPS = (
    "not-a-timestamp",
    "2026-13-01T00:00:00.000Z",
    "31/12/2026 10:00",
    "yesterday",
    "T25:61:00Z",
)
LATE_MIN_S = 120.0  # late events are two minutes ...
LATE_MAX_S = 3 * 3600.0  # ... to three hours behind the stream (log-uniform)


@dataclass(frozen=True)
class FaultRates:
    anomaly: float = 0.02
    duplicate: float = 0.02
    malformed: float = 0.005
    late: float = 0.01

    def __post_init__(self) -> None:
        for name in ("anomaly", "duplicate", "malformed", "late"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} rate must be within [0, 1], got {rate}")
        if self.duplicate >= 1.0:
            raise ValueError("duplicate rate must be < 1: duplicates resend events, some must be new")
        if self.total > 1.0:
            raise ValueError(f"fault rates add up to {self.total:.3f}; their sum must be <= 1")

    @property
    def total(self) -> float:
        return self.anomaly + self.duplicate + self.malformed + self.late

    @classmethod
    def none(cls) -> FaultRates:
        return cls(0.0, 0.0, 0.0, 0.0)


def malform(event: dict[str, Any], rng: random.Random) -> tuple[bytes, str]:
    """Break a valid event in one way; returns the payload and its quarantine reason."""
    kind = rng.choice(MALFORMED_KINDS)
    bad = dict(event)
    if kind == "malformed_json":
        text = json.dumps(bad, separators=(",", ":"))
        # Any strict prefix of a JSON object is unparseable: the closing brace is missing.
        return text[: rng.randint(1, len(text) - 1)].encode(), kind
    if kind == "missing_field":
        field = rng.choice(REQUIRED_FIELDS)
        del bad[field]
        reason = f"missing_field:{field}"
    elif kind == "wrong_type":
        field = rng.choice(WRONG_TYPE_FIELDS)
        bad[field] = rng.choice(_WRONG_TYPE_VALUES)
        reason = f"wrong_type:{field}"
    elif kind == "negative_duration":
        bad["event_duration"] = -round(max(float(bad["event_duration"]), 1.0), 1)
        reason = kind
    else:
        bad["event_timestamp"] = rng.choice(_BAD_TIMESTAMPS)
        reason = kind
    return json.dumps(bad, separators=(",", ":")).encode(), reason

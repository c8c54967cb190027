"""A fuzz corpus of untrusted Kafka records: every class of bad input the contract names, valid events
with resends, and random mutations of valid events.

Each record says what the stream must make of it: a quarantine reason, ``None`` for a valid event, or
:data:`ANY` for a random mutation (truncation, type swap, field drop, byte flip, inserted bytes), whose
only promise is that it lands in exactly one of bronze or quarantine. The fuzz test and
``benchmarks/fuzz_stream.py`` produce the same corpus through real Kafka.

Valid events, and the mutations derived from them, are stamped inside ``hours`` (so that the hourly
and daily assets can be run over exactly those partitions afterwards): byte-level mutations leave the
timestamp's value alone, which the handcrafted event-time classes cover instead.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from iot_pipeline.contract.event import MAX_RECORD_BYTES_DEFAULT, REQUIRED_FIELDS

ANY = "*"
DEVICE_TYPES = ("temperature", "co2", "vibration")


@dataclass(frozen=True)
class FuzzRecord:
    key: bytes | None
    value: bytes | None
    expected: str | None  # quarantine reason; None: a valid event; ANY: a random mutation
    kind: str  # the class, for reports: "valid", "resend", "mutation:<op>" or the expected reason
    event_id: str | None = None  # of a valid event or resend


def _ts(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class _Events:
    def __init__(self, rng: random.Random, hours: list[datetime]) -> None:
        self.rng = rng
        self.hours = hours

    def event(self) -> dict:
        rng = self.rng
        device_type = rng.choice(DEVICE_TYPES)
        hour = rng.choice(self.hours)
        return {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "device_id": f"{device_type}-{rng.randrange(40):03d}",
            "device_type": device_type,
            "event_timestamp": _ts(hour + timedelta(microseconds=rng.randrange(3_600_000) * 1000)),
            "event_duration": round(rng.lognormvariate(4.0, 0.6), 3),
            "value": round(rng.gauss(20.0, 5.0), 3),
            "unit": "unit",
            "status": rng.choice(("normal", "normal", "warning", "critical")),
            "battery_level": round(rng.uniform(0, 100), 1),
            "signal_strength": round(rng.uniform(-130, 0), 1),
            "location": rng.choice(("plant-a", "plant-b", "line 1\nline 2", "café")),
            "firmware_version": "1.4.2",
        }


def _dump(event: dict) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def _with(event: dict, **changes: object) -> dict:
    out = dict(event)
    out.update(changes)
    return out


def handcrafted(events: _Events, now: datetime, max_record_bytes: int) -> list[tuple[bytes | None, str]]:
    """One payload per named class of bad input, with the reason the stream must give it."""
    e = events.event
    rng = events.rng
    cases: list[tuple[bytes | None, str]] = [
        (b'{"pad":"' + b"x" * (max_record_bytes + rng.randrange(1, 200_000)) + b'"}', "oversized"),
        (_dump(_with(e(), location="cafe")).replace(b'"cafe"', b'"caf\xe9"'), "invalid_utf8"),
        (b"\xff\xfe" + _dump(e()), "invalid_utf8"),
        (_dump(e())[:-1], "malformed_json"),
        (b"", "malformed_json"),
        (None, "malformed_json"),  # a tombstone
        (b"[1,2,3]", "malformed_json"),
        (b'"just a string"', "malformed_json"),
        (b'{"event_id":"x","deep":' + b"[" * 5000 + b"]" * 5000 + b"}", "malformed_json"),
        (b'{"device_id":"other",' + _dump(e())[1:], "duplicate_key"),
        (_dump(_with(e(), device_id="\t \t")), "empty_field:device_id"),
        (_dump(_with(e(), device_type="\u00a0\u2003")), "empty_field:device_type"),
        (_dump(_with(e(), device_id="dev\u0000x")), "control_character:device_id"),
        (_dump(_with(e(), device_type="co2\u0007")), "control_character:device_type"),
        (_dump(_with(e(), location="a\u0000b")), "control_character:location"),
        (_dump(_with(e(), event_id="not-a-uuid")), "invalid_uuid:event_id"),
        (_dump(_with(e(), event_timestamp="2026-13-01T00:00:00Z")), "invalid_timestamp"),
        (_dump(_with(e(), event_timestamp="yesterday")), "invalid_timestamp"),
        (_dump(_with(e(), event_timestamp=_ts(now + timedelta(hours=3)))), "future_timestamp"),
        (_dump(_with(e(), event_timestamp="9999-12-31T23:30:00Z")), "future_timestamp"),
        (_dump(_with(e(), event_timestamp="1970-01-01T00:00:00Z")), "before_partitions_start"),
        (_dump(_with(e(), event_duration="fast")), "wrong_type:event_duration"),
        (_dump(_with(e(), device_id={"nested": [1, 2]})), "wrong_type:device_id"),
        (_dump(_with(e(), value="__V__")).replace(b'"__V__"', b"1e400"), "non_finite:value"),
        (_dump(_with(e(), value="__V__")).replace(b'"__V__"', b"NaN"), "non_finite:value"),
        (_dump(_with(e(), event_duration=-1.5)), "negative_duration"),
        (_dump(_with(e(), battery_level=100.5)), "out_of_range:battery_level"),
        (_dump(_with(e(), signal_strength=-131)), "out_of_range:signal_strength"),
        (_dump(_with(e(), status="exploded")), "invalid_status"),
    ]
    for field in REQUIRED_FIELDS:
        event = e()
        del event[field]
        cases.append((_dump(event), f"missing_field:{field}"))
    return cases


def _span(payload: bytes, key: str) -> tuple[int, int]:
    """Byte span of a string field's value in a compact JSON object (its quotes included)."""
    start = payload.index(f'"{key}":"'.encode()) + len(key) + 3
    return start, payload.index(b'"', start + 1) + 1


def _mutations(rng: random.Random) -> dict[str, Callable[[dict], bytes]]:
    def truncate(event: dict) -> bytes:
        raw = _dump(event)
        return raw[: rng.randrange(1, len(raw))]

    def type_swap(event: dict) -> bytes:
        field = rng.choice(list(event))
        event[field] = rng.choice([None, True, 42, -0.5, "text", [1, "a"], {"k": "v"}, ""])
        return _dump(event)

    def field_drop(event: dict) -> bytes:
        for field in rng.sample(list(event), rng.randint(1, 3)):
            del event[field]
        return _dump(event)

    def outside_timestamp(raw: bytes, count: int) -> list[int]:
        """``count`` byte positions outside the timestamp's value (and its key)."""
        start, end = _span(raw, "event_timestamp")
        start -= len('"event_timestamp":')
        allowed = [i for i in range(len(raw)) if not start <= i <= end]
        return [rng.choice(allowed) for _ in range(count)]

    def byte_flip(event: dict) -> bytes:
        raw = bytearray(_dump(event))
        for i in outside_timestamp(bytes(raw), rng.randint(1, 3)):
            raw[i] ^= 1 << rng.randrange(8)
        return bytes(raw)

    def insert_bytes(event: dict) -> bytes:
        raw = _dump(event)
        [i] = outside_timestamp(raw, 1)
        junk = bytes(rng.choice(b'{}[]",:\\\x00\xff\xc3 a1') for _ in range(rng.randint(1, 4)))
        return raw[:i] + junk + raw[i:]

    return {
        "truncate": truncate,
        "type_swap": type_swap,
        "field_drop": field_drop,
        "byte_flip": byte_flip,
        "insert_bytes": insert_bytes,
    }


def fuzz_corpus(
    n: int,
    hours: list[datetime],
    *,
    seed: int = 7,
    now: datetime | None = None,
    max_record_bytes: int = MAX_RECORD_BYTES_DEFAULT,
    valid_share: float = 0.6,
    resend_share: float = 0.03,
) -> list[FuzzRecord]:
    """``n`` records (at least): valid events and resends, every handcrafted class, then mutations.

    Handcrafted classes repeat round-robin to fill about half of what is not valid; the rest are
    mutations. The order is shuffled with ``seed``, so a corpus is reproducible.
    """
    rng = random.Random(seed)
    now = now or datetime.now(timezone.utc)
    events = _Events(rng, hours)
    out: list[FuzzRecord] = []
    n_valid = int(n * valid_share)
    sent: list[tuple[str, bytes]] = []
    for _ in range(n_valid):
        event = events.event()
        payload = _dump(event)
        sent.append((event["event_id"], payload))
        out.append(FuzzRecord(event["device_id"].encode(), payload, None, "valid", event["event_id"]))
    for _ in range(int(n * resend_share)):
        event_id, payload = rng.choice(sent)
        out.append(FuzzRecord(b"resend", payload, None, "resend", event_id))
    n_bad = max(0, n - len(out))
    crafted: list[FuzzRecord] = []
    while n_bad and len(crafted) < max(n_bad // 2, 1):
        for payload, reason in handcrafted(events, now, max_record_bytes):
            crafted.append(FuzzRecord(b"crafted", payload, reason, reason))
    out += crafted
    mutations = _mutations(rng)
    names = sorted(mutations)
    while len(out) < n:
        op = rng.choice(names)
        out.append(FuzzRecord(b"mutant", mutations[op](events.event()), ANY, f"mutation:{op}"))
    rng.shuffle(out)
    return out


def produce_corpus(producer: Any, topic: str, corpus: list[FuzzRecord]) -> dict[tuple[int, int], FuzzRecord]:
    """Send every record with a confluent-kafka ``producer``; returns what Kafka stored where."""
    stored: dict[tuple[int, int], FuzzRecord] = {}
    errors: list[str] = []

    def delivered(record: FuzzRecord) -> Callable[[Any, Any], None]:
        def callback(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(str(err))
            else:
                stored[(msg.partition(), msg.offset())] = record

        return callback

    for record in corpus:
        producer.produce(topic, key=record.key, value=record.value, on_delivery=delivered(record))
        producer.poll(0)
    if producer.flush(120) != 0 or errors:
        raise RuntimeError(f"{len(errors)} records not delivered, e.g. {errors[:3]}")
    return stored


@dataclass
class Ledger:
    """Where every produced record went, counted by Kafka coordinates."""

    produced: int
    bronze: int
    quarantined: int
    in_both: int
    missing: int
    duplicated: int
    unreasoned: int
    wrong_reason: list[tuple[str, str | None]]
    by_reason: dict[str, int]

    @property
    def ok(self) -> bool:
        return not (self.in_both or self.missing or self.duplicated or self.unreasoned or self.wrong_reason)


def ledger(
    stored: dict[tuple[int, int], FuzzRecord],
    bronze: list[tuple[int, int]],
    quarantine: list[tuple[int, int, str]],
) -> Ledger:
    """Compare the lake's Kafka coordinates (bronze, and quarantine with reasons) with what was produced."""
    in_bronze = Counter(bronze)
    in_quarantine = Counter((p, o) for p, o, _ in quarantine)
    reasons = {(p, o): reason for p, o, reason in quarantine}
    landed = set(in_bronze) | set(in_quarantine)
    wrong = [
        (record.kind, reasons.get(coord))
        for coord, record in stored.items()
        if record.expected is not ANY and reasons.get(coord) != record.expected
    ]
    return Ledger(
        produced=len(stored),
        bronze=len(bronze),
        quarantined=len(quarantine),
        in_both=len(set(in_bronze) & set(in_quarantine)),
        missing=len(set(stored) - landed),
        duplicated=sum(n - 1 for n in (in_bronze + in_quarantine).values() if n > 1)
        + len(landed - set(stored)),
        unreasoned=sum(1 for r in reasons.values() if not r),
        wrong_reason=wrong,
        by_reason=dict(sorted(Counter(r for _, _, r in quarantine).items())),
    )

"""Pure, deterministic event generation: the same seed and start give byte-identical records.

Records come with their ground truth (:class:`SimRecord`), so the stream, end-to-end tests and
benchmarks compute expected results from exactly what was produced. Event time is virtual: slot ``i`` of
a stream happens at ``start + i / events_per_second`` no matter how fast records are sent, which keeps
runs reproducible; a paced continuous run therefore tracks the wall clock while it keeps up.

Throughput matters (the producer must exceed 50k events/s in one Python process), so records are made
a block of ~4096 new events at a time: all numbers (readings, durations, faults, UUIDs, timestamps) are
numpy vectorised, the constant JSON fragments of every device are precomputed, and the whole block is
serialised by a single C-level ``%`` format and split into payloads. Rare paths (malformed records,
duplicates) use slow, obvious code. ``blocks()`` hands these lists out as they are; ``stream()``
flattens them.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from itertools import chain, islice
from typing import Any, Literal, NamedTuple

import numpy as np

from iot_pipeline.ingestion.devices import DEVICE_TYPES, Device, DeviceType, build_fleet
from iot_pipeline.ingestion.faults import LATE_MAX_S, LATE_MIN_S, FaultRates, malform

RecordKind = Literal["valid", "anomaly", "duplicate", "malformed", "late"]
RECORD_KINDS: tuple[str, ...] = ("valid", "anomaly", "duplicate", "malformed", "late")
STATUSES: tuple[str, ...] = ("normal", "warning", "critical")
# |z| of the reading's noise: below 1.2816 -> normal (80 %), below 1.96 -> warning (15 %), else critical.
_STATUS_ARR = np.array(STATUSES, dtype=object)
_Z_WARNING = 1.2815516
_Z_CRITICAL = 1.9599640
ANOMALY_DURATION_FACTOR = 10.0
DEFAULT_EVENTS_PER_TYPE_PER_DAY = 600  # >= 500 distinct events per type and day survive the faults
_BLOCK = 4096
_TEMPLATE = '{"event_id":"%s%s%sZ","event_duration":%.1f,"value":%.*f%s%.1f,"signal_strength":%d%s\n'
_SLOT_KINDS_ARR = np.array(["valid", "malformed", "anomaly", "late"], dtype=object)
_DUP_WINDOW = 1024  # duplicates resend one of the last this-many records


class SimRecord(NamedTuple):
    """One Kafka record and what it is meant to be.

    ``kind`` is the ground truth: ``anomaly`` and ``late`` records are valid events (extreme
    value/duration, or an event time minutes to hours in the past); ``duplicate`` resends an earlier
    record byte for byte (same event_id); ``malformed`` breaks the contract in the one way named by
    ``malformed_kind`` (the quarantine reason). ``device_type``/``status`` label the metrics.
    """

    key: str
    value: bytes
    kind: RecordKind
    malformed_kind: str | None
    device_type: str
    status: str

    @property
    def event(self) -> dict[str, Any] | None:
        """The event as sent (wire types: the timestamp is a string), or None when malformed."""
        return None if self.kind == "malformed" else json.loads(self.value)


def parse_start(text: str) -> datetime:
    """ISO-8601 to an aware UTC datetime; a value without zone is taken as UTC."""
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def format_timestamp(ts_ms: int) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``, e.g. ``2026-11-20T13:45:12.123Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts_ms // 1000)) + f".{ts_ms % 1000:03d}Z"


def _uuid4_block(g: np.random.Generator, n: int) -> list[str]:
    """``n`` version-4 UUID strings from the seeded generator, formatted in bulk with numpy.

    Formatting each value through ``uuid.UUID`` would be far slower in the simulator's hot path.
    """
    b = g.integers(0, 256, size=(n, 16), dtype=np.uint8)
    b[:, 6] = (b[:, 6] & 0x0F) | 0x40  # version 4
    b[:, 8] = (b[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    hexchars = np.frombuffer(b.tobytes().hex().encode(), dtype=np.uint8).reshape(n, 32)
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    for dst, src in ((0, 0), (9, 8), (14, 12), (19, 16), (24, 20)):
        width = {0: 8, 20: 12}.get(src, 4)
        out[:, dst : dst + width] = hexchars[:, src : src + width]
    text = out.tobytes().decode()
    return [text[o : o + 36] for o in range(0, 36 * n, 36)]


def _device_params(dev: Device) -> tuple[str, str, str, tuple[str, ...], str, str]:
    """The constant JSON fragments of a device's events (field order = contract order)."""
    t = dev.type
    head = f'","device_id":{json.dumps(dev.device_id)},"device_type":{json.dumps(t.name)},"event_timestamp":"'
    per_status = tuple(f',"unit":{json.dumps(t.unit)},"status":"{s}","battery_level":' for s in STATUSES)
    tail = f',"location":{json.dumps(dev.location)},"firmware_version":{json.dumps(dev.firmware_version)}}}'
    return dev.device_id, t.name, head, per_status, tail, f".{t.decimals}f"


class _FleetArrays:
    """Per-device constants as numpy arrays, indexed by device index, for the vectorised block maths."""

    def __init__(self, devices: list[Device]) -> None:
        def arr(fn: Any) -> np.ndarray:
            return np.array([fn(d) for d in devices], dtype=np.float64)

        self.binary = np.array([d.type.binary for d in devices])
        self.daylight = np.array([d.type.shape == "daylight" for d in devices])
        self.base = arr(lambda d: d.type.base + (0.0 if d.type.binary else d.offset))
        self.amp = arr(lambda d: d.type.daily_amplitude)
        self.peak = arr(lambda d: d.type.peak_hour)
        self.noise = arr(lambda d: d.type.noise)
        self.drift = arr(lambda d: d.drift_per_hour)
        self.low = arr(lambda d: d.type.low)
        self.high = arr(lambda d: d.type.high)
        self.mu = arr(lambda d: math.log(d.type.duration_median_ms))
        self.sigma = arr(lambda d: d.type.duration_sigma)
        self.bstart = arr(lambda d: d.battery_start)
        self.bdrain = arr(lambda d: d.battery_drain_per_hour)
        self.sigbase = arr(lambda d: d.signal_base)
        params = [_device_params(d) for d in devices]
        self.key = np.array([p[0] for p in params], dtype=object)
        self.type_name = np.array([p[1] for p in params], dtype=object)
        self.head = np.array([p[2] for p in params], dtype=object)
        self.status_chunk = np.empty((len(devices), len(STATUSES)), dtype=object)
        for i, p in enumerate(params):
            self.status_chunk[i, :] = p[3]
        self.tail = np.array([p[4] for p in params], dtype=object)
        self.decimals = np.array([d.type.decimals for d in devices], dtype=np.int64)


class EventGenerator:
    """A seeded fleet and the records it emits; use one instance per run (it holds RNG state)."""

    def __init__(
        self,
        *,
        seed: int,
        start: datetime,
        num_devices: int = 50,
        device_types: Sequence[DeviceType] = DEVICE_TYPES,
        faults: FaultRates | None = None,
        events_per_second: float = 1000.0,
    ) -> None:
        if events_per_second <= 0:
            raise ValueError("events_per_second must be > 0 (it spaces the virtual event times)")
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.seed = seed
        self.faults = faults if faults is not None else FaultRates()
        self.events_per_second = events_per_second
        self._rng = random.Random(seed)
        self._np = np.random.Generator(np.random.PCG64(seed))
        self.devices: list[Device] = build_fleet(num_devices, self._rng, tuple(device_types))
        self.start = start.astimezone(timezone.utc)
        self.start_ms = int(self.start.timestamp() * 1000)
        self._arrays = _FleetArrays(self.devices)

    @property
    def device_types(self) -> list[str]:
        """Types present in the fleet, in declaration order."""
        present = {d.type.name for d in self.devices}
        return [t.name for t in DEVICE_TYPES if t.name in present] + sorted(
            present - {t.name for t in DEVICE_TYPES}
        )

    # ---- slot sources: blocks of (event time ms, device index) for new events ---------------------
    def _stream_slots(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        step = 1000.0 / self.events_per_second
        n = len(self.devices)
        first = 0
        while True:
            idx = np.arange(first, first + _BLOCK, dtype=np.float64)
            yield (self.start_ms + np.floor(idx * step)).astype(np.int64), self._np.integers(0, n, _BLOCK)
            first += _BLOCK

    def _history_slots(self, days: int, per_type: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        by_type: dict[str, list[int]] = {}
        for i, d in enumerate(self.devices):
            by_type.setdefault(d.type.name, []).append(i)
        groups = [np.array(by_type[name]) for name in self.device_types]
        day0 = self.start.replace(hour=0, minute=0, second=0, microsecond=0)
        for day in range(days):
            day_ms = int((day0 + timedelta(days=day)).timestamp() * 1000)
            order = self._np.permutation(np.repeat(np.arange(len(groups)), per_type))
            devices = np.empty(len(order), dtype=np.int64)
            for g, members in enumerate(groups):
                mask = order == g
                devices[mask] = members[self._np.integers(0, len(members), int(mask.sum()))]
            m = len(order)
            times = day_ms + np.floor((np.arange(m) + self._np.random(m)) * (86_400_000 / m)).astype(np.int64)
            for lo in range(0, m, _BLOCK):
                yield times[lo : lo + _BLOCK], devices[lo : lo + _BLOCK]

    def blocks(self) -> Iterator[list[SimRecord]]:
        """Endless lists of records (a few thousand each): the cheapest way to consume the stream."""
        return self._blocks(self._stream_slots())

    def stream(self) -> Iterator[SimRecord]:
        """Endless records; bound it with itertools.islice or by time."""
        return chain.from_iterable(self.blocks())

    def history_blocks(
        self, days: int, events_per_type_per_day: int = DEFAULT_EVENTS_PER_TYPE_PER_DAY
    ) -> Iterator[list[SimRecord]]:
        if days < 1 or events_per_type_per_day < 1:
            raise ValueError("days and events_per_type_per_day must be >= 1")
        return self._blocks(self._history_slots(days, events_per_type_per_day))

    def history(
        self, days: int, events_per_type_per_day: int = DEFAULT_EVENTS_PER_TYPE_PER_DAY
    ) -> Iterator[SimRecord]:
        """``days`` whole UTC days from the start's day: each present type gets exactly
        ``events_per_type_per_day`` new events per day (duplicates come on top), in time order."""
        return chain.from_iterable(self.history_blocks(days, events_per_type_per_day))

    def history_slot_count(self, days: int, events_per_type_per_day: int) -> int:
        return days * events_per_type_per_day * len(self.device_types)

    # ---- the hot path: one block of slots at a time, vectorised --------------------------------------
    def _blocks(self, slots: Iterator[tuple[np.ndarray, np.ndarray]]) -> Iterator[list[SimRecord]]:
        f = self.faults
        # Duplicates come on top of the new events (a geometric number before each), so the other
        # kinds' per-slot probabilities are scaled up to hit their rates as fractions of all records.
        scale = 1.0 / (1.0 - f.duplicate)
        c_mal = f.malformed * scale
        c_anom = c_mal + f.anomaly * scale
        c_late = c_anom + f.late * scale
        log_dup = math.log(f.duplicate) if f.duplicate > 0 else None
        tail: list[SimRecord] = []  # the last records of earlier blocks: sources of duplicates
        for times, devs in slots:
            records = self._new_records(times, devs, c_mal, c_anom, c_late)
            if log_dup is not None:
                counts = np.floor(np.log(1.0 - self._np.random(len(records))) / log_dup).astype(np.int64)
                records = self._with_duplicates(records, counts, tail)
                tail = (tail + records)[-_DUP_WINDOW:]
            yield records

    def _with_duplicates(
        self, records: list[SimRecord], counts: np.ndarray, tail: list[SimRecord]
    ) -> list[SimRecord]:
        """Insert ``counts[i]`` resends of recent (non-malformed) records before record ``i``."""
        at = np.flatnonzero(counts)
        if not at.size:
            return records
        rrandom = self._rng.random
        new = tuple.__new__
        out: list[SimRecord] = []
        prev = 0
        for i, k in zip(at.tolist(), counts[at].tolist(), strict=True):
            out.extend(records[prev:i])
            prev = i
            for _ in range(min(k, 100)):
                available = len(out) + len(tail)
                back = 1 + int(rrandom() * min(_DUP_WINDOW, available))
                while back <= available:
                    src = out[-back] if back <= len(out) else tail[len(out) - back]
                    if src[2] != "malformed":
                        out.append(new(SimRecord, (src[0], src[1], "duplicate", None, src[4], src[5])))
                        break
                    back += 1
        out.extend(records[prev:])
        return out

    def _new_records(
        self, times: np.ndarray, devs: np.ndarray, c_mal: float, c_anom: float, c_late: float
    ) -> list[SimRecord]:
        a, g, n = self._arrays, self._np, len(times)
        hours = np.maximum((times - self.start_ms) / 3_600_000.0, 0.0)
        hod = (times % 86_400_000) / 3_600_000.0
        c = np.cos(2.0 * np.pi * (hod - a.peak[devs]) / 24.0)
        c = np.where(a.daylight[devs], np.clip(c, 0.0, None) ** 1.5, c)
        z, zd, zs = g.standard_normal((3, n))
        kind_u, binary_u, aux1, aux2 = g.random((4, n))
        base, amp, low, high = a.base[devs], a.amp[devs], a.low[devs], a.high[devs]
        binary = a.binary[devs]
        analog = np.clip(base + amp * c + a.drift[devs] * hours + a.noise[devs] * z, low, high)
        value = np.where(binary, (binary_u < base + amp * c).astype(np.float64), analog)
        absz = np.abs(z)
        status = np.where(absz < _Z_WARNING, 0, np.where(absz < _Z_CRITICAL, 1, 2))
        duration = np.exp(a.mu[devs] + a.sigma[devs] * zd)
        battery = a.bstart[devs] - a.bdrain[devs] * hours
        battery = np.where(battery < 5.0, 100.0 - np.mod(5.0 - battery, 95.0), battery)
        signal = np.clip(np.rint(a.sigbase[devs] + 3.0 * zs), -130, 0).astype(np.int64)

        # Faults on new events: anomalies are extreme but valid, late events are back-dated.
        kind = np.full(n, 0, dtype=np.int8)  # index into _SLOT_KINDS
        malformed = kind_u < c_mal
        anomaly = (kind_u >= c_mal) & (kind_u < c_anom)
        late = (kind_u >= c_anom) & (kind_u < c_late)
        kind[malformed], kind[anomaly], kind[late] = 1, 2, 3
        span = (high - low) * (0.05 + 0.3 * aux1)
        extreme = np.where(binary, 1.0, np.where(aux2 < 0.5, high + span, low - span))
        value = np.where(anomaly, extreme, value)
        duration = np.where(anomaly, duration * ANOMALY_DURATION_FACTOR, duration)
        status = np.where(anomaly, 2, status)
        delay_ms = (1000.0 * LATE_MIN_S * np.exp(aux1 * math.log(LATE_MAX_S / LATE_MIN_S))).astype(np.int64)
        event_ms = np.where(late, times - delay_ms, times)

        # One C-level %-format for the whole block, split into one payload per record.
        stamps = np.datetime_as_string(event_ms.astype("datetime64[ms]"), unit="ms")
        flat: list[Any] = [None] * (10 * n)
        flat[0::10] = _uuid4_block(g, n)
        flat[1::10] = a.head[devs].tolist()
        flat[2::10] = stamps.tolist()
        flat[3::10] = duration.tolist()
        flat[4::10] = a.decimals[devs].tolist()
        flat[5::10] = value.tolist()
        flat[6::10] = a.status_chunk[devs, status].tolist()
        flat[7::10] = battery.tolist()
        flat[8::10] = signal.tolist()
        flat[9::10] = a.tail[devs].tolist()
        payloads = ((_TEMPLATE * n) % tuple(flat)).encode().split(b"\n")[:n]

        keys = a.key[devs].tolist()
        type_names = a.type_name[devs].tolist()
        kinds = _SLOT_KINDS_ARR[kind].tolist()
        labels = _STATUS_ARR[status].tolist()
        reasons: list[str | None] = [None] * n
        for i in np.flatnonzero(malformed).tolist():
            payloads[i], reasons[i] = malform(json.loads(payloads[i]), self._rng)
            labels[i] = "malformed"
        new = tuple.__new__
        return [
            new(SimRecord, r) for r in zip(keys, payloads, kinds, reasons, type_names, labels, strict=True)
        ]


def generate(
    n: int,
    *,
    seed: int = 0,
    start: datetime | str = "2026-01-01T00:00:00Z",
    **kwargs: Any,
) -> list[SimRecord]:
    """The first ``n`` records of a stream: a convenience for tests and benchmarks."""

    start_dt = parse_start(start) if isinstance(start, str) else start
    return list(islice(EventGenerator(seed=seed, start=start_dt, **kwargs).stream(), n))

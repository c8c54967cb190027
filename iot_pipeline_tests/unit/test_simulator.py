"""The pure generator: contract-valid events, realistic distributions, fault rates, determinism."""

from __future__ import annotations

import itertools
import json
import math
import re
import statistics
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

import pytest

from iot_pipeline.contract.event import EVENT_FIELDS, FIELDS_BY_NAME, FieldType
from iot_pipeline.ingestion.devices import DEVICE_TYPES, DEVICE_TYPES_BY_NAME
from iot_pipeline.ingestion.faults import LATE_MAX_S, LATE_MIN_S, FaultRates
from iot_pipeline.ingestion.generator import EventGenerator, SimRecord, generate, parse_start

START = "2026-03-01T00:00:00Z"
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
N_LARGE = 200_000


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def contract_violation(event: dict) -> str | None:
    """Independent re-statement of the contract's rules, straight from EVENT_FIELDS."""
    for f in EVENT_FIELDS:
        if f.name not in event:
            if f.required:
                return f"missing_field:{f.name}"
            continue
        v = event[f.name]
        if f.type is FieldType.NUMBER:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                return f"wrong_type:{f.name}"
            if not math.isfinite(v):
                return f"non_finite:{f.name}"
            if f.minimum is not None and v < f.minimum:
                return "negative_duration" if f.name == "event_duration" else f"out_of_range:{f.name}"
            if f.maximum is not None and v > f.maximum:
                return f"out_of_range:{f.name}"
        else:
            if not isinstance(v, str):
                return f"wrong_type:{f.name}"
            if f.non_empty and not v:
                return f"empty_field:{f.name}"
            if f.allowed is not None and v not in f.allowed:
                return f"invalid_{f.name}"
            if f.type is FieldType.TIMESTAMP:
                try:
                    ts(v)
                except ValueError:
                    return "invalid_timestamp"
            if f.type is FieldType.UUID:
                uuid.UUID(v)
    return None


@pytest.fixture(scope="module")
def large() -> list[SimRecord]:
    return generate(N_LARGE, seed=20260301, start=START)


@pytest.fixture(scope="module")
def parsed(large: list[SimRecord]) -> list[tuple[SimRecord, dict | None]]:
    """Each record with its event, parsed once for the whole module."""
    return [(r, r.event) for r in large]


def test_same_seed_gives_identical_records_and_another_seed_does_not() -> None:
    a = generate(5_000, seed=7, start=START)
    b = generate(5_000, seed=7, start=START)
    c = generate(5_000, seed=8, start=START)
    assert a == b
    assert [r.value for r in a] != [r.value for r in c]
    assert {r.event["event_id"] for r in a if r.event} != {r.event["event_id"] for r in c if r.event}


def test_valid_records_satisfy_the_contract(parsed: list[tuple[SimRecord, dict | None]]) -> None:
    for rec, event in parsed[:40_000]:
        if rec.kind == "malformed":
            continue
        assert contract_violation(event) is None, (rec.kind, event)
        assert list(event) == [f.name for f in EVENT_FIELDS]  # every field, contract order
        assert TS_RE.match(event["event_timestamp"]), event["event_timestamp"]
        assert uuid.UUID(event["event_id"]).version == 4
        assert rec.key == event["device_id"]
        assert rec.device_type == event["device_type"] and rec.status == event["status"]


def test_fault_injection_rates_within_tolerance(large: list[SimRecord]) -> None:
    kinds = Counter(r.kind for r in large)
    n = len(large)
    # Binomial standard deviation at 200k records is <= 0.0003; allow about five of them.
    for kind, expected, tol in (("anomaly", 0.02, 0.002), ("duplicate", 0.02, 0.002),
                                ("malformed", 0.005, 0.001), ("late", 0.01, 0.0012)):  # fmt: skip
        assert kinds[kind] / n == pytest.approx(expected, abs=tol), (kind, kinds)


def test_status_distribution_is_80_15_5(large: list[SimRecord]) -> None:
    statuses = Counter(r.status for r in large if r.kind in ("valid", "late"))
    n = sum(statuses.values())
    assert statuses["normal"] / n == pytest.approx(0.80, abs=0.01)
    assert statuses["warning"] / n == pytest.approx(0.15, abs=0.01)
    assert statuses["critical"] / n == pytest.approx(0.05, abs=0.005)


def test_duplicates_resend_an_earlier_record_byte_for_byte(
    parsed: list[tuple[SimRecord, dict | None]],
) -> None:
    seen: set[bytes] = set()
    for rec, _ in parsed:
        if rec.kind == "duplicate":
            assert rec.value in seen
        elif rec.kind != "malformed":
            seen.add(rec.value)
    originals = [e["event_id"] for r, e in parsed if r.kind not in ("duplicate", "malformed")]
    assert len(set(originals)) == len(originals)  # fresh events never collide


def test_malformed_records_carry_exactly_the_named_defect(large: list[SimRecord]) -> None:
    malformed = [r for r in large if r.kind == "malformed"]
    reasons = Counter(r.malformed_kind.split(":")[0] for r in malformed)
    assert set(reasons) == {
        "malformed_json",
        "missing_field",
        "wrong_type",
        "negative_duration",
        "invalid_timestamp",
    }
    for rec in malformed:
        assert rec.event is None
        if rec.malformed_kind == "malformed_json":
            with pytest.raises(ValueError):  # a strict prefix of an object never parses
                json.loads(rec.value)
            continue
        assert contract_violation(json.loads(rec.value)) == rec.malformed_kind, rec.value


def test_late_events_are_minutes_to_hours_behind_the_stream(
    parsed: list[tuple[SimRecord, dict | None]],
) -> None:
    previous = None
    delays = []
    for rec, e in parsed:
        if rec.kind in ("valid", "anomaly"):
            previous = e["event_timestamp"]
        elif rec.kind == "late" and previous is not None:
            delays.append((ts(previous) - ts(e["event_timestamp"])).total_seconds())
    assert len(delays) > 1000
    assert min(delays) >= LATE_MIN_S - 1 and max(delays) <= LATE_MAX_S + 1
    assert statistics.median(delays) > 10 * 60  # log-uniform: median ~ 19 minutes


def test_anomalies_are_extreme_and_critical(parsed: list[tuple[SimRecord, dict | None]]) -> None:
    durations: dict[tuple[str, str], list[float]] = defaultdict(list)
    for rec, e in parsed:
        if rec.kind in ("valid", "anomaly"):
            durations[e["device_type"], rec.kind].append(e["event_duration"])
            t = DEVICE_TYPES_BY_NAME[e["device_type"]]
            if rec.kind == "anomaly":
                assert e["status"] == "critical"
                assert e["value"] == 1 if t.binary else not t.low <= e["value"] <= t.high
    for t in DEVICE_TYPES:
        ratio = statistics.median(durations[t.name, "anomaly"]) / statistics.median(
            durations[t.name, "valid"]
        )
        assert 8 < ratio < 12, (t.name, ratio)


def test_event_duration_is_lognormal_per_type_between_50_and_500_ms(
    parsed: list[tuple[SimRecord, dict | None]],
) -> None:
    by_type: dict[str, list[float]] = defaultdict(list)
    for rec, e in parsed:
        if rec.kind == "valid":
            by_type[rec.device_type].append(math.log(e["event_duration"]))
    assert set(by_type) == {t.name for t in DEVICE_TYPES}
    for t in DEVICE_TYPES:
        logs = by_type[t.name]
        assert 50 <= math.exp(statistics.median(logs)) <= 500
        assert statistics.median(logs) == pytest.approx(math.log(t.duration_median_ms), abs=0.03)
        assert statistics.stdev(logs) == pytest.approx(t.duration_sigma, abs=0.03)  # rounding to 0.1 ms


def test_fleet_covers_every_type_with_units_ranges_and_metadata(
    parsed: list[tuple[SimRecord, dict | None]],
) -> None:
    gen = EventGenerator(seed=1, start=parse_start(START))
    assert len(gen.devices) == 50
    assert Counter(d.type.name for d in gen.devices) == {t.name: 5 for t in DEVICE_TYPES}
    assert len(DEVICE_TYPES) >= 9
    for rec, e in parsed:
        if rec.kind != "valid":
            continue
        t = DEVICE_TYPES_BY_NAME[e["device_type"]]
        assert e["unit"] == t.unit
        assert t.low <= e["value"] <= t.high
        if t.binary:
            assert e["value"] in (0, 1)
        assert e["location"] and e["firmware_version"] in t.firmware
        assert -130 <= e["signal_strength"] <= 0 and 0 <= e["battery_level"] <= 100


def test_history_mode_has_500_distinct_events_per_type_and_day() -> None:
    start = parse_start("2026-02-10T00:00:00Z")
    records = list(EventGenerator(seed=3, start=start).history(days=3, events_per_type_per_day=600))
    distinct: dict[tuple[str, str], set[str]] = defaultdict(set)
    for rec in records:
        if rec.kind != "malformed":
            e = rec.event
            distinct[e["event_timestamp"][:10], e["device_type"]].add(e["event_id"])
    days = {"2026-02-10", "2026-02-11", "2026-02-12"}
    for day in days:
        for t in DEVICE_TYPES:
            assert len(distinct[day, t.name]) >= 500, (day, t.name)
    # Only late events leave the range, and only backwards (before the first day).
    assert {d for d, _ in distinct} <= days | {"2026-02-09"}
    slots = [r for r in records if r.kind in ("valid", "anomaly", "malformed")]
    assert len(slots) + sum(r.kind == "late" for r in records) == 3 * 10 * 600


def test_history_shows_daily_cycles_and_battery_drain() -> None:
    start = parse_start("2026-02-10T00:00:00Z")
    records = list(
        EventGenerator(seed=4, start=start, faults=FaultRates.none()).history(
            days=2, events_per_type_per_day=2400
        )
    )
    by_hour: dict[tuple[str, int], list[float]] = defaultdict(list)
    battery: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for rec in records:
        e = rec.event
        by_hour[e["device_type"], int(e["event_timestamp"][11:13])].append(e["value"])
        battery[e["device_id"]].append((e["event_timestamp"], e["battery_level"]))

    def mean(t: str, hours: range) -> float:
        return statistics.fmean(v for h in hours for v in by_hour[t, h])

    assert mean("temperature", range(13, 17)) > mean("temperature", range(1, 5)) + 3  # warm afternoons
    assert mean("light", range(11, 14)) > 200 > mean("light", range(0, 4))  # dark nights
    assert mean("motion", range(11, 15)) > 3 * mean("motion", range(0, 4))
    for levels in battery.values():
        ordered = [b for _, b in sorted(levels)]
        steps = list(itertools.pairwise(ordered))
        assert all(b <= a or b > a + 10 for a, b in steps)  # drains, or the battery is swapped at 5 %
        if not any(b > a + 10 for a, b in steps):
            assert ordered[-1] < ordered[0] - 1


def test_event_time_starts_at_start_and_advances_at_the_rate() -> None:
    start = parse_start(START)
    records = generate(3_000, seed=5, start=START, events_per_second=100.0, faults=FaultRates.none())
    times = [ts(r.event["event_timestamp"]) for r in records]
    assert times == [start + timedelta(milliseconds=10 * i) for i in range(3_000)]
    assert all(t.tzinfo == timezone.utc for t in times)


def test_fault_rates_are_validated() -> None:
    with pytest.raises(ValueError, match="sum"):
        FaultRates(anomaly=0.5, duplicate=0.3, malformed=0.2, late=0.1)
    with pytest.raises(ValueError, match="within"):
        FaultRates(anomaly=-0.1)
    clean = generate(20_000, seed=1, start=START, faults=FaultRates.none())
    assert {r.kind for r in clean} == {"valid"}


def test_fields_used_by_the_generator_exist_in_the_contract() -> None:
    record = generate(1, seed=1, start=START)[0]
    assert set(record.event) == set(FIELDS_BY_NAME)

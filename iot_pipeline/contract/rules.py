"""The contract's value rules, declared once as Spark SQL so that every layer applies the same text.

A record that parsed into the contract's typed fields still has to pass these rules. Three layers apply
them, and they must never disagree: the stream (:func:`iot_pipeline.streaming.validation.classify`,
which also runs the Kafka replay) names the first rule a record breaks as its quarantine reason;
silver's re-validation (:func:`iot_pipeline.assets.silver_logic.valid_event`) drops a row that breaks
any; the Pandera model of ``silver/events`` fails its check on such a row. Each takes the same
:func:`value_rules`, only the column references differ (``parsed.device_id`` in the stream).

Event time is untrusted input too. An event is judged against the time it *arrived*: the Kafka record
timestamp, but never later than the moment the pipeline read it (a producer can set any CreateTime,
so a far-future Kafka timestamp gains nothing). An event stamped more than ``future_tolerance`` after
its arrival is ``future_timestamp``; one before the first partition (``IOT_PARTITIONS_START``) is
``before_partitions_start`` (no partition would ever read it); with a horizon set, one older than
``max_age`` before its arrival is ``too_old``. None of them can then move the stream's watermark,
close an hour early or make a sensor compute a date past the end of the calendar.

The three event-time settings (``IOT_PARTITIONS_START``, ``IOT_EVENT_FUTURE_TOLERANCE_SECONDS``,
``IOT_EVENT_MAX_AGE_DAYS``) are part of the contract, not of a resource, and are read from the
environment here only (:func:`partitions_start`, :meth:`EventTimeRules.from_env`). They must be the
same for every process that judges an event: the code location builds its partitions from the first
one at import, the stream may run outside Dagster (``iot-pipeline stream``), and silver and the Pandera
check re-apply the rules in each run. As resource config they could differ from run to run, and the
layers would disagree; as deployment-wide variables they cannot. The code location checks them when
it loads, and :func:`rules_fingerprint` digests them with the rules, so a batch the stream validated
under other settings is re-checked by silver rather than trusted.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from iot_pipeline.contract.event import EVENT_FIELDS, FieldType

UUID_REGEX = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# Java regexes, written as Spark SQL string literals (backslashes doubled once for SQL).
_BLANK = r"'^[\\s\\p{Z}]*$'"  # empty, or only (Unicode) white space: tabs, no-break spaces...
_CONTROL = r"'\\p{Cc}'"  # C0/C1 control characters, NUL included

DEFAULT_PARTITIONS_START = "2026-01-01-00:00"
PARTITIONS_START_FORMAT = "%Y-%m-%d-%H:%M"
DEFAULT_FUTURE_TOLERANCE = timedelta(minutes=5)
# Kafka timestamps at or before this are "no timestamp" (message format v0 reports -1).
_NO_KAFKA_TIME_MICROS = 1_000_000

FUTURE_TOLERANCE_ENV = "IOT_EVENT_FUTURE_TOLERANCE_SECONDS"
MAX_AGE_ENV = "IOT_EVENT_MAX_AGE_DAYS"
PARTITIONS_START_ENV = "IOT_PARTITIONS_START"


class ContractConfigError(ValueError):
    """An unusable contract setting; the message names the environment variable to fix."""


def partitions_start(environ: Mapping[str, str] = os.environ) -> str:
    """The first hourly partition, ``YYYY-MM-DD-HH:MM`` in UTC (``IOT_PARTITIONS_START``)."""
    value = environ.get(PARTITIONS_START_ENV) or DEFAULT_PARTITIONS_START
    try:
        datetime.strptime(value, PARTITIONS_START_FORMAT)
    except ValueError:
        raise ContractConfigError(
            f"{PARTITIONS_START_ENV}={value!r}: expected YYYY-MM-DD-HH:MM in UTC, e.g. 2026-01-01-00:00."
        ) from None
    return value


def _number(environ: Mapping[str, str], name: str) -> float | None:
    raw = environ.get(name)
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise ContractConfigError(f"{name}={raw!r}: expected a number >= 0.")
    return value


@dataclass(frozen=True)
class EventTimeRules:
    """When an event's timestamp is believable, relative to the time it arrived (see module docstring)."""

    not_before: datetime
    future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE
    max_age: timedelta | None = None  # no horizon by default: history loads are a supported use

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> EventTimeRules:
        """``IOT_PARTITIONS_START``, ``IOT_EVENT_FUTURE_TOLERANCE_SECONDS``, ``IOT_EVENT_MAX_AGE_DAYS``."""
        start = datetime.strptime(partitions_start(environ), PARTITIONS_START_FORMAT)
        tolerance = _number(environ, FUTURE_TOLERANCE_ENV)
        max_age = _number(environ, MAX_AGE_ENV)
        return cls(
            not_before=start.replace(tzinfo=timezone.utc),
            future_tolerance=DEFAULT_FUTURE_TOLERANCE if tolerance is None else timedelta(seconds=tolerance),
            max_age=None if not max_age else timedelta(days=max_age),
        )


@dataclass(frozen=True)
class Rule:
    """One rule: the quarantine reason, and Spark SQL that is true (never null) when a row breaks it."""

    reason: str
    violation: str


def _micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _epoch_micros(ts: datetime) -> int:
    return _micros(ts - datetime(1970, 1, 1, tzinfo=timezone.utc))


def value_rules(
    time_rules: EventTimeRules | None = None, column: Callable[[str], str] = lambda name: name
) -> tuple[Rule, ...]:
    """The rules in the order the stream reports them; ``column(name)`` is the SQL for a typed field.

    ``column`` is also asked for ``kafka_timestamp`` and ``ingest_time``, the arrival of the record.
    """
    rules = time_rules or EventTimeRules.from_env()
    out: list[tuple[str, str]] = []
    for f in EVENT_FIELDS:
        c = column(f.name)
        if f.required and f.type is not FieldType.TIMESTAMP:  # a bad timestamp is reported below
            out.append((f"missing_field:{f.name}", f"{c} IS NULL"))
        if f.non_empty:
            out.append((f"empty_field:{f.name}", f"{c} RLIKE {_BLANK}"))
            out.append((f"control_character:{f.name}", f"{c} RLIKE {_CONTROL}"))
        elif f.type is FieldType.STRING:
            out.append((f"control_character:{f.name}", f"instr({c}, char(0)) > 0"))
    out.append(("invalid_uuid:event_id", f"NOT ({column('event_id')} RLIKE '{UUID_REGEX}')"))

    ts = column("event_timestamp")
    kafka_ts, ingest = column("kafka_timestamp"), column("ingest_time")
    arrival = (
        f"least(CASE WHEN unix_micros({kafka_ts}) > {_NO_KAFKA_TIME_MICROS} THEN {kafka_ts} END, {ingest})"
    )
    out.append(("invalid_timestamp", f"{ts} IS NULL"))
    out.append(
        (
            "future_timestamp",
            f"unix_micros({ts}) > unix_micros({arrival}) + {_micros(rules.future_tolerance)}",
        )
    )
    out.append(("before_partitions_start", f"unix_micros({ts}) < {_epoch_micros(rules.not_before)}"))
    if rules.max_age is not None:
        out.append(("too_old", f"unix_micros({ts}) < unix_micros({arrival}) - {_micros(rules.max_age)}"))

    for f in EVENT_FIELDS:
        if f.type is FieldType.NUMBER:
            c = column(f.name)
            out.append((f"non_finite:{f.name}", f"isnan({c}) OR abs({c}) = double('Infinity')"))
    for f in EVENT_FIELDS:
        c = column(f.name)
        if f.name == "event_duration":
            out.append(("negative_duration", f"{c} < 0"))
            continue
        if f.minimum is not None:
            out.append((f"out_of_range:{f.name}", f"{c} < {f.minimum!r}"))
        if f.maximum is not None:
            out.append((f"out_of_range:{f.name}", f"{c} > {f.maximum!r}"))
        if f.allowed is not None:
            allowed = ", ".join(f"'{v}'" for v in f.allowed)
            out.append((f"invalid_{f.name}", f"{c} IS NOT NULL AND {c} NOT IN ({allowed})"))
    return tuple(Rule(reason, f"coalesce(({sql}), false)") for reason, sql in out)


def any_violation(rules: tuple[Rule, ...]) -> str:
    """SQL true when a row breaks at least one of ``rules``."""
    return " OR ".join(f"({r.violation})" for r in rules)


def rules_fingerprint(time_rules: EventTimeRules | None = None) -> str:
    """A digest of the value rules (event-time settings included): equal digests, equal verdicts.

    The stream records it with its bronze commits; silver skips re-checking rows of batches validated
    under the rules it would apply itself (``storage.commits``).
    """
    return hashlib.sha256(any_violation(value_rules(time_rules)).encode()).hexdigest()[:16]

"""The IoT event contract, declared once.

Every other form of the contract (JSON Schema for producers, the Spark schemas used to parse and land
events, the Pandera models behind the asset checks, the Dagster column schema shown in the UI) is
derived from :data:`EVENT_FIELDS` by the sibling modules, so a field is added or changed here only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class FieldType(str, enum.Enum):
    """JSON-level type of a field; each derived form maps it to its own type system."""

    STRING = "string"
    UUID = "uuid"
    TIMESTAMP = "timestamp"
    NUMBER = "number"


@dataclass(frozen=True)
class EventField:
    name: str
    type: FieldType
    required: bool
    description: str
    minimum: float | None = None
    maximum: float | None = None
    allowed: tuple[str, ...] | None = None

    @property
    def non_empty(self) -> bool:
        """Required strings must also be non-empty: an empty id is as useless as a missing one."""
        return self.required and self.type in (FieldType.STRING, FieldType.UUID)


# The statuses a device may report, in order of severity.
STATUSES: tuple[str, ...] = ("normal", "warning", "critical")

EVENT_FIELDS: tuple[EventField, ...] = (
    EventField("event_id", FieldType.UUID, True, "Unique id of the event (UUID); resends keep the same id."),
    EventField("device_id", FieldType.STRING, True, "Id of the emitting device; also the Kafka record key."),
    EventField("device_type", FieldType.STRING, True, "Kind of sensor, e.g. temperature or co2."),
    EventField(
        "event_timestamp",
        FieldType.TIMESTAMP,
        True,
        "Event time: ISO-8601 with zone on the wire, UTC timestamp once parsed.",
    ),
    EventField(
        "event_duration", FieldType.NUMBER, True, "Duration of the measurement in milliseconds.", minimum=0
    ),
    EventField("value", FieldType.NUMBER, True, "Measured value, in `unit`."),
    EventField("unit", FieldType.STRING, False, "Unit of `value`, e.g. celsius or ppm."),
    EventField("status", FieldType.STRING, False, "Device-reported status.", allowed=STATUSES),
    EventField(
        "battery_level", FieldType.NUMBER, False, "Battery charge in percent.", minimum=0, maximum=100
    ),
    EventField(
        "signal_strength", FieldType.NUMBER, False, "Radio signal strength in dBm.", minimum=-130, maximum=0
    ),
    EventField("location", FieldType.STRING, False, "Free-text installation site."),
    EventField("firmware_version", FieldType.STRING, False, "Firmware version string."),
)

FIELDS_BY_NAME: dict[str, EventField] = {f.name: f for f in EVENT_FIELDS}
REQUIRED_FIELDS: tuple[str, ...] = tuple(f.name for f in EVENT_FIELDS if f.required)
FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in EVENT_FIELDS)

# Records larger than this are quarantined as oversized before any parsing: a real event is ~400 bytes.
MAX_RECORD_BYTES_DEFAULT = 16 * 1024

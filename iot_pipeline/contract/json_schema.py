"""JSON Schema (draft 2020-12) for producers, derived from the event contract."""

from __future__ import annotations

from typing import Any

from iot_pipeline.contract.event import EVENT_FIELDS, EventField, FieldType


def _field_schema(field: EventField) -> dict[str, Any]:
    schema: dict[str, Any] = {"description": field.description}
    if field.type is FieldType.NUMBER:
        schema["type"] = "number"
        if field.minimum is not None:
            schema["minimum"] = field.minimum
        if field.maximum is not None:
            schema["maximum"] = field.maximum
    else:
        schema["type"] = "string"
        if field.type is FieldType.UUID:
            schema["format"] = "uuid"
        elif field.type is FieldType.TIMESTAMP:
            schema["format"] = "date-time"
        if field.non_empty:
            schema["minLength"] = 1
        if field.allowed is not None:
            schema["enum"] = list(field.allowed)
    return schema


def event_json_schema() -> dict[str, Any]:
    """Unknown extra fields are allowed: the contract ignores them rather than rejecting the event."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/iot-pipeline/iot-pipeline/schemas/iot-event.json",
        "title": "IoT event",
        "type": "object",
        "properties": {f.name: _field_schema(f) for f in EVENT_FIELDS},
        "required": [f.name for f in EVENT_FIELDS if f.required],
        "additionalProperties": True,
    }

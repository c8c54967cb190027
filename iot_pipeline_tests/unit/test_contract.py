"""Every derived form of the event contract agrees with the declaration: fields, types, nullability, ranges."""

from __future__ import annotations

import json

import dagster as dg
import jsonschema
import pytest
from pyspark.sql import types as T

from iot_pipeline.contract.dagster_schema import event_table_schema
from iot_pipeline.contract.event import EVENT_FIELDS, FIELD_NAMES, REQUIRED_FIELDS, FieldType
from iot_pipeline.contract.json_schema import event_json_schema
from iot_pipeline.contract.pandera_schema import event_model
from iot_pipeline.contract.spark_schema import PARTITION_COLUMNS, bronze_schema, event_schema, wire_schema

SPARK_TYPE = {
    FieldType.STRING: T.StringType(),
    FieldType.UUID: T.StringType(),
    FieldType.TIMESTAMP: T.TimestampType(),
    FieldType.NUMBER: T.DoubleType(),
}
JSON_TYPE = {
    FieldType.STRING: "string",
    FieldType.UUID: "string",
    FieldType.TIMESTAMP: "string",
    FieldType.NUMBER: "number",
}

VALID = {
    "event_id": "0b7f5a52-4f3c-4a8e-9a51-0c1c2b7d9e01",
    "device_id": "dev-1",
    "device_type": "co2",
    "event_timestamp": "2026-11-20T13:45:12.123Z",
    "event_duration": 12.5,
    "value": 410.0,
    "status": "warning",
    "battery_level": 55,
    "signal_strength": -80,
    "extra": "unknown fields are ignored",
}


def test_required_fields_match_the_spec() -> None:
    assert REQUIRED_FIELDS == (
        "event_id",
        "device_id",
        "device_type",
        "event_timestamp",
        "event_duration",
        "value",
    )
    assert len(FIELD_NAMES) == 12


def test_json_schema_agrees() -> None:
    schema = event_json_schema()
    assert list(schema["properties"]) == list(FIELD_NAMES)
    assert schema["required"] == list(REQUIRED_FIELDS)
    for f in EVENT_FIELDS:
        prop = schema["properties"][f.name]
        assert prop["type"] == JSON_TYPE[f.type]
        assert prop.get("minimum") == f.minimum
        assert prop.get("maximum") == f.maximum
        assert prop.get("enum") == (list(f.allowed) if f.allowed else None)
    jsonschema.validate(VALID, schema)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"event_duration": "12"}, "wrong type"),
        ({"battery_level": 101}, "out of range"),
        ({"signal_strength": -131}, "out of range"),
        ({"status": "fine"}, "not allowed"),
        ({"device_id": ""}, "empty"),
    ],
)
def test_json_schema_rejects_what_the_contract_rejects(change: dict, why: str) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**VALID, **change}, event_json_schema())
    missing = {k: v for k, v in VALID.items() if k != "device_type"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(missing, event_json_schema())


def test_spark_schemas_agree() -> None:
    typed = event_schema()
    assert typed.fieldNames() == list(FIELD_NAMES)
    for f, sf in zip(EVENT_FIELDS, typed.fields, strict=True):
        assert sf.dataType == SPARK_TYPE[f.type]
        assert sf.nullable == (not f.required)
    assert wire_schema().fieldNames() == list(FIELD_NAMES)
    bronze = bronze_schema()
    assert bronze.fieldNames()[: len(FIELD_NAMES)] == list(FIELD_NAMES)
    assert tuple(bronze.fieldNames()[-2:]) == PARTITION_COLUMNS
    json.loads(bronze.json())  # serialisable: it is shipped to executors and docs


def test_pandera_model_agrees() -> None:
    model = event_model()
    assert list(model.columns) == list(FIELD_NAMES)
    for f in EVENT_FIELDS:
        column = model.columns[f.name]
        assert column.dtype.type == SPARK_TYPE[f.type]
        assert column.nullable == (not f.required)
        checks = {c.name: c for c in column.checks}
        if f.minimum is not None or f.maximum is not None:
            stats = checks["in_range"].statistics
            assert stats["min_value"] == (f.minimum if f.minimum is not None else float("-inf"))
            assert stats["max_value"] == (f.maximum if f.maximum is not None else float("inf"))
        if f.allowed:
            assert list(checks["isin"].statistics["allowed_values"]) == list(f.allowed)


def test_dagster_column_schema_agrees() -> None:
    schema = event_table_schema()
    assert isinstance(schema, dg.TableSchema)
    assert [c.name for c in schema.columns] == list(FIELD_NAMES)
    for f, col in zip(EVENT_FIELDS, schema.columns, strict=True):
        assert col.type == SPARK_TYPE[f.type].simpleString()
        assert col.constraints.nullable == (not f.required)
        assert col.description == f.description
    assert schema.columns[0].constraints.unique

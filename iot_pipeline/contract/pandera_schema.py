"""Pandera (PySpark backend) columns derived from the event contract.

The asset checks build their models from these (see :mod:`iot_pipeline.assets.models`), so a rule
added to the contract is checked on every asset that carries the event columns.

Each column's checks are derived from its :class:`~iot_pipeline.contract.event.EventField` by
construction, never written as literals: ``in_range`` from ``minimum``/``maximum`` (an open bound where
the contract has none, so every number must also be finite), ``isin`` from ``allowed``, ``str_length``
from ``non_empty``, nullability from ``required``. They are a readable per-column subset of the
contract's rules; the complete rules (blank and control characters, UUID form, event time) reach the
silver model as the very SQL the stream applies (``assets.models.contract_rules_check``).
"""

from __future__ import annotations

import math

import pandera.pyspark as pa

from iot_pipeline.contract.event import EVENT_FIELDS, EventField, FieldType
from iot_pipeline.contract.spark_schema import spark_type


def field_checks(field: EventField) -> list[pa.Check]:
    """Value rules of one contract field; numbers must also be finite (Spark orders NaN above +inf)."""
    checks: list[pa.Check] = []
    if field.type is FieldType.NUMBER:
        low = -math.inf if field.minimum is None else field.minimum
        high = math.inf if field.maximum is None else field.maximum
        checks.append(
            pa.Check.in_range(
                low, high, include_min=field.minimum is not None, include_max=field.maximum is not None
            )
        )
    if field.allowed:
        checks.append(pa.Check.isin(list(field.allowed)))
    if field.non_empty:
        checks.append(pa.Check.str_length(min_value=1))
    return checks


def contract_columns() -> dict[str, pa.Column]:
    return {
        f.name: pa.Column(
            spark_type(f.type), checks=field_checks(f), nullable=not f.required, description=f.description
        )
        for f in EVENT_FIELDS
    }


def event_model(name: str = "iot_event") -> pa.DataFrameSchema:
    """The contract's events as a Pandera model; unknown columns are allowed (lineage, partitions)."""
    return pa.DataFrameSchema(contract_columns(), name=name, strict=False)

"""Dagster column schema metadata derived from the event contract, shown on assets in the UI."""

from __future__ import annotations

import dagster as dg

from iot_pipeline.contract.event import EVENT_FIELDS, EventField
from iot_pipeline.contract.spark_schema import spark_type


def _constraints(field: EventField) -> dg.TableColumnConstraints:
    other: list[str] = []
    if field.minimum is not None:
        other.append(f">= {field.minimum:g}")
    if field.maximum is not None:
        other.append(f"<= {field.maximum:g}")
    if field.allowed is not None:
        other.append("one of " + ", ".join(field.allowed))
    if field.non_empty:
        other.append("non-empty")
    return dg.TableColumnConstraints(
        nullable=not field.required, unique=field.name == "event_id", other=other
    )


def event_columns(*, unique_event_id: bool = True) -> list[dg.TableColumn]:
    cols = []
    for f in EVENT_FIELDS:
        constraints = _constraints(f)
        if f.name == "event_id" and not unique_event_id:
            constraints = dg.TableColumnConstraints(
                nullable=constraints.nullable, unique=False, other=constraints.other
            )
        cols.append(
            dg.TableColumn(
                f.name, spark_type(f.type).simpleString(), description=f.description, constraints=constraints
            )
        )
    return cols


def event_table_schema(*extra: dg.TableColumn, unique_event_id: bool = True) -> dg.TableSchema:
    return dg.TableSchema(columns=[*event_columns(unique_event_id=unique_event_id), *extra])

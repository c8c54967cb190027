"""Validate a Spark DataFrame against a pandera model, with failure counts and failing-row samples.

Pandera's PySpark backend validates the schema level (columns present, Spark types, no extra columns)
here. Its data checks run one Spark job each and report pass/fail only, without counts or examples, so
the data rules declared in the same model (nullability, built-in checks, ``row_check`` rules and
``unique`` keys) are translated into Spark SQL and counted in one aggregation, which also counts
the distinct values of each unique key. A partition that passes costs that one Spark job; only when
something failed do more jobs fetch a few failing rows, or count and sample the rows whose key
repeats. The rules are SQL text rather than ``Column`` objects: the aggregation is then one call into
the JVM instead of a few hundred py4j calls (half a second in a fresh driver).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandera.pyspark as pa
from pandera.config import ValidationDepth, config_context
from pyspark.sql import DataFrame
from pyspark.sql import functions as F


@dataclass(frozen=True)
class Rule:
    """One counted data rule: ``<column>:<check>`` or ``<row check name>``, failing where the SQL
    predicate ``violation`` is true (never null)."""

    name: str
    description: str
    violation: str


@dataclass
class Report:
    rows: int
    schema_errors: list[str]
    failures: dict[str, int]
    descriptions: dict[str, str]
    sample: list[dict[str, Any]] = field(default_factory=list)
    duplicate_keys: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def failed(self, rules: Iterable[str] | None = None) -> dict[str, int]:
        names = self.failures if rules is None else [r for r in rules if r in self.failures]
        return {r: self.failures[r] for r in names if self.failures[r] > 0}


def _finite(value: Any) -> bool:
    return not (isinstance(value, float) and math.isinf(value))


def sql_literal(value: Any) -> str:
    """A pandera check's statistic as a Spark SQL literal."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = (
            "NaN"
            if math.isnan(value)
            else {math.inf: "Infinity", -math.inf: "-Infinity"}.get(value, repr(value))
        )
        return f"CAST('{text}' AS DOUBLE)"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise NotImplementedError(f"No Spark SQL literal for {value!r}")


def _quoted(column: str) -> str:
    return "`" + column.replace("`", "``") + "`"


def check_violation(column: str, check: pa.Check) -> str:
    """Spark SQL, true where ``column`` fails a pandera built-in check (nulls pass, as in pandera)."""
    c = _quoted(column)
    s = check.statistics or {}
    name = check.name
    lit = sql_literal
    if name == "in_range":
        low = f"{c} {'>=' if s.get('include_min', True) else '>'} {lit(s['min_value'])}"
        high = f"{c} {'<=' if s.get('include_max', True) else '<'} {lit(s['max_value'])}"
        ok = f"{low} AND {high}"
    elif name == "greater_than_or_equal_to":
        ok = f"{c} >= {lit(s['min_value'])}"
    elif name == "greater_than":
        ok = f"{c} > {lit(s['min_value'])}"
    elif name == "less_than_or_equal_to":
        ok = f"{c} <= {lit(s['max_value'])}"
    elif name == "less_than":
        ok = f"{c} < {lit(s['max_value'])}"
    elif name == "isin":
        ok = f"{c} IN ({', '.join(lit(v) for v in s['allowed_values'])})"
    elif name == "str_length":
        bounds = []
        if s.get("min_value") is not None:
            bounds.append(f"length({c}) >= {lit(s['min_value'])}")
        if s.get("max_value") is not None:
            bounds.append(f"length({c}) <= {lit(s['max_value'])}")
        ok = " AND ".join(bounds) or "TRUE"
    elif name == "str_matches":
        ok = f"{c} RLIKE {lit(str(s['pattern']))}"
    else:
        raise NotImplementedError(f"No Spark translation for pandera check {name!r} on column {column!r}")
    return f"{c} IS NOT NULL AND NOT ({ok})"


def model_rules(model: pa.DataFrameSchema, present: dict[str, str], expected: dict[str, str]) -> list[Rule]:
    """Counted rules of ``model`` that apply to the columns present with the expected type."""
    usable = {c for c, t in present.items() if expected.get(c) == t}
    rules: list[Rule] = []
    for name, col in model.columns.items():
        if name not in usable:
            continue
        if not col.nullable:
            rules.append(Rule(f"{name}:not_null", f"{name} is null", f"{_quoted(name)} IS NULL"))
        for check in col.checks:
            rules.append(
                Rule(f"{name}:{check.name}", f"{name} fails {check.error}", check_violation(name, check))
            )
    for check in model.checks:
        sql = (check.statistics or {}).get("violation_sql")
        if sql is None:
            raise NotImplementedError(f"Dataframe check {check.name!r} has no violation_sql")
        needed = [c for c in model.columns if c in sql]
        if all(c in usable for c in needed):
            rules.append(Rule(check.name, check.error or check.name, f"coalesce(({sql}), FALSE)"))
    return rules


def _schema_errors(validated: DataFrame) -> list[str]:
    errors = getattr(validated.pandera, "errors", None) or {}
    out = []
    for category in errors.values():
        for reason, items in category.items():
            for item in items:
                out.append(f"{reason}: {item.get('column') or ''} {item.get('error', '')}".strip())
    return out


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if _finite(value) and not math.isnan(value) else str(value)
    return str(value)


def validate(df: DataFrame, model: pa.DataFrameSchema, *, sample_rows: int = 5) -> Report:
    # Even at SCHEMA_ONLY depth pandera counts the nulls of every non-nullable column in a Spark job of
    # its own (a dozen jobs for silver); the aggregation below counts them with the other rules, so
    # pandera's pass is left with what needs no data: columns present, their types, nothing extra.
    structure = model.update_columns({name: {"nullable": True} for name in model.columns})
    with config_context(validation_depth=ValidationDepth.SCHEMA_ONLY):
        validated = structure.validate(df, lazy=True)
    schema_errors = _schema_errors(validated)

    present = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    expected = {name: col.dtype.type.simpleString() for name, col in model.columns.items()}
    rules = model_rules(model, present, expected)
    unique = [keys for keys in _unique_keys(model) if all(k in present for k in keys)]
    aggs = ["count(1) AS __rows"]
    aggs += [f"count_if({r.violation}) AS __r{i}" for i, r in enumerate(rules)]
    # A struct is never null and groups its null fields together, as groupBy does: the distinct count
    # equals the row count exactly when no key value repeats.
    aggs += [
        f"count(DISTINCT struct({', '.join(map(_quoted, keys))})) AS __u{i}" for i, keys in enumerate(unique)
    ]
    row = df.selectExpr(*aggs).collect()[0]
    failures = {r.name: int(row[f"__r{i}"] or 0) for i, r in enumerate(rules)}
    descriptions = {r.name: r.description for r in rules}

    duplicate_keys: dict[str, list[dict[str, Any]]] = {}
    for i, keys in enumerate(unique):
        name = f"{'+'.join(keys)}:unique"
        descriptions[name] = f"rows sharing a {'+'.join(keys)} value with another row"
        failures[name] = 0
        if row[f"__u{i}"] == row["__rows"]:
            continue
        dups = df.groupBy(*keys).count().where(F.col("count") > 1)
        failures[name] = int(dups.agg(F.sum("count").alias("n")).collect()[0]["n"] or 0)
        if sample_rows > 0:
            rows = dups.orderBy(F.desc("count")).limit(sample_rows).collect()
            duplicate_keys[name] = [{k: _jsonable(v) for k, v in r.asDict().items()} for r in rows]

    sample: list[dict[str, Any]] = []
    failing = [r for r in rules if failures[r.name] > 0]
    if failing and sample_rows > 0:
        tags = ", ".join(f"CASE WHEN {r.violation} THEN {sql_literal(r.name)} END" for r in failing)
        any_bad = " OR ".join(f"({r.violation})" for r in failing)
        rows = (
            df.where(any_bad)
            .selectExpr("*", f"concat_ws(',', {tags}) AS failed_rules")
            .limit(sample_rows)
            .collect()
        )
        sample = [{k: _jsonable(v) for k, v in r.asDict().items()} for r in rows]
    return Report(int(row["__rows"]), schema_errors, failures, descriptions, sample, duplicate_keys)


def _unique_keys(model: pa.DataFrameSchema) -> list[list[str]]:
    unique = model.unique
    if not unique:
        return []
    return [[unique]] if isinstance(unique, str) else [list(unique)]


def sample_markdown(sample: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    if not sample:
        return "_no failing rows_"
    cols = columns or list(sample[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in sample:
        lines.append("| " + " | ".join(json.dumps(row.get(c)).strip('"') for c in cols) + " |")
    return "\n".join(lines)

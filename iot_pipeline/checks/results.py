"""Turn a validation report into Dagster asset check results with counts and failing-row samples."""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from iot_pipeline.checks.validation import Report, sample_markdown

SAMPLE_COLUMNS_LIMIT = 8


def result_for(
    check_name: str,
    report: Report | None,
    rules: Iterable[str] | None,
    *,
    include_schema: bool,
    window: str,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    key_columns: list[str] | None = None,
) -> dg.AssetCheckResult:
    """``rules`` None means every counted rule of the report; schema errors only where ``include_schema``."""
    if report is None:
        return dg.AssetCheckResult(
            check_name=check_name,
            passed=True,
            severity=severity,
            description="No data files in the checked partition(s): nothing to validate.",
            metadata={"partitions": window, "rows_checked": 0},
        )
    failed = report.failed(rules)
    schema_errors = report.schema_errors if include_schema else []
    counted = list(report.failures) if rules is None else [r for r in rules if r in report.failures]
    metadata: dict[str, dg.RawMetadataValue] = {
        "partitions": window,
        "rows_checked": report.rows,
        "failing_rules": len(failed) + len(schema_errors),
        **{f"failures/{r}": report.failures[r] for r in counted},
    }
    if schema_errors:
        metadata["schema_errors"] = dg.MetadataValue.md("\n".join(f"- {e}" for e in schema_errors))
    if failed:
        metadata["failed_rules"] = dg.MetadataValue.md(
            "\n".join(f"- `{r}`: {n} row(s) ({report.descriptions.get(r, '')})" for r, n in failed.items())
        )
        relevant = [
            row for row in report.sample if set(str(row.get("failed_rules", "")).split(",")) & set(failed)
        ]
        if relevant:
            cols = [*(key_columns or []), "failed_rules"]
            rest = [c for c in relevant[0] if c not in cols]
            cols += rest[: max(0, SAMPLE_COLUMNS_LIMIT - len(cols))]
            metadata["failing_rows_sample"] = dg.MetadataValue.md(sample_markdown(relevant, cols))
        for rule in failed:
            if rule in report.duplicate_keys:
                metadata["duplicate_keys_sample"] = dg.MetadataValue.md(
                    sample_markdown(report.duplicate_keys[rule])
                )
    passed = not failed and not schema_errors
    return dg.AssetCheckResult(check_name=check_name, passed=passed, severity=severity, metadata=metadata)

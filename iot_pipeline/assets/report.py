"""Small helpers that turn results into Dagster metadata (Markdown tables, timestamps)."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

MAX_TABLE_ROWS = 48


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e6 else f"{value:.1f}"
    return "" if value is None else str(value).replace("|", "\\|")


def md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def hour_table(header: Sequence[str], rows: Sequence[Sequence[object]], limit: int = MAX_TABLE_ROWS) -> str:
    """A table of at most ``limit`` rows (a 30-day backfill has 720 hours); says what it left out."""
    text = md_table(header, rows[:limit])
    if len(rows) > limit:
        text += f"\n\n{len(rows) - limit} more row(s) not shown."
    return text


def ts_meta(epoch_seconds: float) -> dg.MetadataValue:
    return dg.MetadataValue.timestamp(float(epoch_seconds))

"""Sensor: tell Dagster which bronze hours exist, so the UI's partition bar of ``bronze/events`` is true.

The streaming job lands bronze outside Dagster, so nothing else records a bronze hour. Each tick this
sensor lists the bronze hours of the last ``late_lookback_hours`` (the same listing and fingerprints as
``bronze_hours_sensor``: directory names, then files, bytes and newest write per hour) and reports a
runless ``AssetMaterialization`` of ``bronze/events`` for every hour whose state changed since it last
reported it: new rows landed, late rows arrived, or the hour closed. Older history (a new instance
over an old lake) is reported ``history_days_per_tick`` days per tick, once.

Cheap and idempotent: no Spark and no data read. The row count, the newest event time and the Kafka
offsets come from the Parquet footers of the hour's files (a few KB each, local or S3), and only of
files the last report did not count: the cursor keeps, for the last day's hours, the summary up to
the newest stream batch read, so an hour that grows all hour long costs one footer per new file.
Like every bronze reader it follows the stream's commit marker (``storage/commits.py``). The cursor
keeps one short token per recent hour, so an unchanged hour is never reported twice, and it is
bounded whatever the lake's age. The sensor requests no runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import dagster as dg
import pyarrow.parquet as pq

from iot_pipeline.assets.keys import BRONZE_EVENTS
from iot_pipeline.assets.partitions import HOURLY, HOURLY_FORMAT
from iot_pipeline.sensors.cursor import dump_cursor, load_cursor
from iot_pipeline.sensors.lake_sensor import Tick, lake_sensor
from iot_pipeline.storage import parquet_io as pio
from iot_pipeline.storage.commits import REPLAY_BATCH, batch_of, committed_batch, is_visible
from iot_pipeline.storage.layout import hour_partition_dir
from iot_pipeline.storage.listing import (
    HourFingerprint,
    LakeListing,
    hours_of_days,
    listing_for,
    partition_days,
)
from iot_pipeline.storage.s3 import filesystem_path, lake_filesystem

HOUR = timedelta(hours=1)
CURSOR_VERSION = 1
MAX_REPORTS_PER_TICK = 400  # a tick stays short; the rest is reported on the next one
SUMMARY_HOURS = 24  # hours whose footer summary the cursor keeps, so late rows read only new footers


def _key(hour: datetime) -> str:
    return hour.astimezone(timezone.utc).strftime(HOURLY_FORMAT)


@dataclass
class HourSummary:
    """Rows, newest event time and Kafka offsets of an hour, from Parquet footers only.

    ``mark`` is the highest stream batch (``ingest_batch=N``) whose files are counted and ``files``
    how many stream files that is, so the next report of a growing hour reads only newer batches'
    footers. Replayed files (``ingest_batch=-1``) are never part of a stored summary: they are read
    again each time (an hour rarely has any).
    """

    rows: int = 0
    newest_event: float | None = None
    offsets: dict[int, list[int]] = field(default_factory=dict)
    mark: int = -1
    files: int = 0

    def add_footer(self, meta: pq.FileMetaData) -> None:
        """Offsets are kept per Kafka partition for files that hold one (the stream writes one file per
        Kafka partition and micro-batch); files mixing partitions only add rows."""
        names = [meta.schema.column(i).name for i in range(meta.num_columns)]
        stats: dict[str, list[tuple[Any, Any]]] = {}
        for rg in range(meta.num_row_groups):
            group = meta.row_group(rg)
            for name in ("event_timestamp", "kafka_partition", "kafka_offset"):
                if name in names:
                    st = group.column(names.index(name)).statistics
                    if st is not None and st.has_min_max:
                        stats.setdefault(name, []).append((st.min, st.max))
        newest = None
        if ts := stats.get("event_timestamp"):
            top = max(hi for _, hi in ts)
            newest = top.timestamp() if isinstance(top, datetime) else float(top) / 1e6
        offsets: dict[int, list[int]] = {}
        parts, offs = stats.get("kafka_partition"), stats.get("kafka_offset")
        if parts and offs and min(lo for lo, _ in parts) == max(hi for _, hi in parts):
            offsets[int(parts[0][0])] = [int(min(lo for lo, _ in offs)), int(max(hi for _, hi in offs))]
        self._include(meta.num_rows, newest, offsets)

    def _include(self, rows: int, newest: float | None, offsets: dict[int, list[int]]) -> None:
        self.rows += rows
        if newest is not None:
            self.newest_event = newest if self.newest_event is None else max(self.newest_event, newest)
        for p, (lo, hi) in offsets.items():
            cur = self.offsets.get(p)
            self.offsets[p] = [min(cur[0], lo), max(cur[1], hi)] if cur else [lo, hi]

    def to_cursor(self) -> list[Any]:
        return [self.mark, self.files, self.rows, self.newest_event, self.offsets]

    @classmethod
    def from_cursor(cls, raw: Any) -> HourSummary | None:
        try:
            mark, files, rows, newest, offsets = raw
            return cls(
                int(rows),
                None if newest is None else float(newest),
                {int(k): [int(v[0]), int(v[1])] for k, v in dict(offsets).items()},
                int(mark),
                int(files),
            )
        except (TypeError, ValueError, IndexError, KeyError):
            return None

    def merged(self, other: HourSummary) -> HourSummary:
        out = HourSummary(self.rows, self.newest_event, {k: list(v) for k, v in self.offsets.items()})
        out._include(other.rows, other.newest_event, other.offsets)
        return out


def summarize_hour(
    hour_dir: str, committed: int | None, prior: HourSummary | None = None
) -> tuple[HourSummary, HourSummary]:
    """(summary to show, summary to keep) of one hour of a local or S3 lake, from Parquet footers.

    With ``prior`` (what the last report kept), only files of stream batches above ``prior.mark``
    are read, as long as the batches up to it still hold exactly ``prior.files`` files; otherwise
    (files removed, an hour moved aside and rebuilt) every footer is read again.
    """
    try:
        files = pio.data_files(hour_dir)
    except OSError:  # an unreadable store: the next tick tries again
        return HourSummary(), HourSummary()
    filesystem, _ = lake_filesystem(hour_dir)
    stream: list[tuple[int, str]] = []
    replay: list[str] = []
    for uri, _ in files:
        if not is_visible(uri, committed):
            continue
        path = filesystem_path(uri)
        batch = batch_of(uri)
        if batch == REPLAY_BATCH:
            replay.append(path)
        else:
            stream.append((-1 if batch is None else batch, path))
    if prior is not None and sum(1 for b, _ in stream if b <= prior.mark) == prior.files:
        keep = prior  # parsed from the cursor for this call: extended in place
        todo = [(b, path) for b, path in stream if b > prior.mark]
    else:
        keep, todo = HourSummary(), stream
    for batch, path in sorted(todo):
        meta = _footer(filesystem, path)
        if meta is None:  # being written or removed: the next change reports it again
            continue
        keep.add_footer(meta)
        keep.mark = max(keep.mark, batch)
        keep.files += 1
    shown = keep
    if replay:
        extra = HourSummary()
        for path in replay:
            if (meta := _footer(filesystem, path)) is not None:
                extra.add_footer(meta)
        shown = keep.merged(extra)
    return shown, keep


def _footer(filesystem: Any, path: str) -> pq.FileMetaData | None:
    try:
        with filesystem.open_input_file(path) as fh:
            return pq.ParquetFile(fh).metadata
    except (OSError, ValueError):
        return None


def hour_metadata(fp: HourFingerprint, closed: bool, summary: HourSummary) -> dict[str, Any]:
    """What the UI shows (and plots) for one bronze hour."""
    meta: dict[str, Any] = {
        "files": fp.files,
        "bytes": fp.total_bytes,
        "newest_file_written": dg.MetadataValue.timestamp(fp.newest_mtime),
        "closed": closed,
        "fingerprint": fp.token,
        "reported_by": "bronze_report_sensor",
        "dagster/row_count": summary.rows,
        "rows": summary.rows,
    }
    if summary.newest_event is not None:
        meta["newest_event_time"] = dg.MetadataValue.timestamp(summary.newest_event)
    if summary.offsets:
        meta["kafka_offsets"] = dg.MetadataValue.json(
            {str(p): {"first": lo, "last": hi} for p, (lo, hi) in sorted(summary.offsets.items())}
        )
    return meta


def _state(fp: HourFingerprint, closed: bool) -> str:
    return f"{fp.token}{'c' if closed else 'o'}"


def evaluate_bronze_report(context: dg.SensorEvaluationContext, tick: Tick) -> dg.SensorResult:
    lake, settings, now, s3 = tick.lake, tick.settings, tick.now, tick.s3
    layout = lake.layout
    dataset = layout.bronze_events
    listing: LakeListing = listing_for(layout.root, s3)
    doc = load_cursor(context.cursor, CURSOR_VERSION)
    reported: dict[str, str] = {str(k): str(v) for k, v in (doc.get("hours") or {}).items()}
    kept: dict[str, HourSummary] = {
        str(k): summary
        for k, v in (doc.get("sums") or {}).items()
        if (summary := HourSummary.from_cursor(v)) is not None
    }
    notes: list[str] = []
    skipped: list[str] = []

    closed_until = settings.closed_until(layout, listing, now, notes)
    first = HOURLY.start.astimezone(timezone.utc)
    lookback_start = max(
        first,
        (now - timedelta(hours=settings.late_lookback_hours)).replace(minute=0, second=0, microsecond=0),
    )
    recent_days = sorted(
        {f"{lookback_start + timedelta(days=i):%Y-%m-%d}" for i in range((now - lookback_start).days + 2)}
    )
    recent_days = [d for d in recent_days if d <= f"{now:%Y-%m-%d}"]
    recent = [h for h in hours_of_days(listing, dataset, recent_days, skipped) if h >= lookback_start]

    # Older history, a slice per tick: hours before the lookback are reported once (their state is final).
    scan = doc.get("scan") or f"{first:%Y-%m-%d}"
    limit_day = f"{lookback_start:%Y-%m-%d}"
    old: list[datetime] = []
    if scan < limit_day:
        days = [d for d in partition_days(listing, dataset) if scan <= d < limit_day]
        batch = days[: max(1, settings.history_days_per_tick)]
        old = [h for h in hours_of_days(listing, dataset, batch, skipped) if first <= h < lookback_start]
        scan = (
            f"{datetime.strptime(batch[-1], '%Y-%m-%d') + timedelta(days=1):%Y-%m-%d}"
            if len(days) > len(batch)
            else limit_day
        )

    committed = committed_batch(listing.read_json(layout.bronze_commit))
    fingerprints = listing.fingerprints(dataset, _unique([*old, *recent]), committed)
    keep_from = _key(now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=SUMMARY_HOURS))
    reports = 0
    for hour, fp in sorted(fingerprints.items()):
        key = _key(hour)
        closed = hour + HOUR <= closed_until
        state = _state(fp, closed)
        if reported.get(key) == state:
            continue
        if reports >= MAX_REPORTS_PER_TICK:
            if hour < lookback_start:  # come back to this day on the next tick
                scan = min(scan, f"{hour:%Y-%m-%d}")
            continue
        shown, keep = summarize_hour(hour_partition_dir(dataset, hour), committed, kept.get(key))
        context.instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=BRONZE_EVENTS,
                partition=key,
                description="Bronze hour as the streaming job landed it (reported by bronze_report_sensor).",
                metadata=hour_metadata(fp, closed, shown),
            )
        )
        reports += 1
        if hour >= lookback_start:
            reported[key] = state
            kept[key] = keep

    floor = _key(lookback_start)
    cursor = dump_cursor(
        CURSOR_VERSION,
        scan=scan,
        hours={k: v for k, v in sorted(reported.items()) if k >= floor},
        sums={k: v.to_cursor() for k, v in sorted(kept.items()) if k >= keep_from},
    )
    if skipped:
        notes.append(f"skipped unusable directories: {', '.join(sorted(skipped)[:5])}")
    summary = f"bronze hours listed={len(fingerprints)} reported={reports} scan={scan}"
    context.log.info(summary + ("; " + "; ".join(notes) if notes else ""))
    return dg.SensorResult(
        skip_reason=None if reports else f"No bronze hour changed: {summary}",
        cursor=cursor,
    )


def _unique(hours: Iterable[datetime]) -> list[datetime]:
    return sorted(set(hours))


bronze_report_sensor = lake_sensor(
    evaluate_bronze_report,
    name="bronze_report_sensor",
    description="Records every bronze/events hour the streaming job lands (new rows, late rows, closed) "
    "as a runless materialisation with its files, bytes, rows, newest event time and Kafka offsets, "
    "so the UI's partitions and freshness of bronze reflect the lake. Requests no runs.",
    minimum_interval_seconds=30,
)

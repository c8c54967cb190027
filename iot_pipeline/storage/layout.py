"""Where every dataset of the lake lives, relative to one root URI, and how its partition paths read.

The root is a local directory, a ``file://`` URI or an ``s3a://bucket/prefix`` URI. The package
spells lake paths only here: dataset roots, the export and state files, the streaming checkpoints
with their lease and moved-aside copies, the Hive partition directories of an hour or a day, and the
parsing of those directory names back into days and hours. So moving the lake is a configuration
change only. Not spelled here are the names Spark itself writes: inside a checkpoint (``offsets/N``,
``commits/N``, read by ``streaming/checkpoint.py``), at the top of a dataset (``.spark-staging-*``,
``_temporary``, found by listing in ``streaming/lock.py``) and below the partition directories
(``part-*`` files; the stream's ``ingest_batch=N``, parsed in ``storage/commits.py``). The test
helpers in ``iot_pipeline.testing`` lay bronze out by hand on purpose, as an independent spelling
of the layout.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlparse

SUPPORTED_SCHEMES = ("", "file", "s3a")
ROOT_ENV = "IOT_LAKE_ROOT"
DEFAULT_LAKE_ROOT = ".local/lake"  # relative to the working directory, as `make run` uses it


class LakeConfigError(ValueError):
    """Raised for an unusable lake root; the message names the setting to fix."""


def normalize_root(root: str, *, setting: str = ROOT_ENV) -> str:
    """Absolute local path or a URI with a supported scheme, without a trailing slash."""
    if not root or not root.strip():
        raise LakeConfigError(
            f"The lake root is empty: set {setting} to a directory or an s3a://bucket/prefix URI."
        )
    root = root.strip()
    scheme = urlparse(root).scheme
    if scheme in ("s3", "s3n"):
        raise LakeConfigError(
            f"{setting}={root!r}: use the s3a:// scheme (Hadoop's S3A connector), e.g. "
            f"{root.replace(scheme + '://', 's3a://', 1)!r}."
        )
    if scheme not in SUPPORTED_SCHEMES:
        raise LakeConfigError(
            f"{setting}={root!r}: unsupported scheme {scheme!r}; use a local directory, file:// or s3a://."
        )
    if scheme == "":
        return os.path.abspath(os.path.expanduser(root))
    if scheme == "s3a" and not urlparse(root).netloc:
        raise LakeConfigError(
            f"{setting}={root!r}: an s3a:// root needs a bucket, e.g. s3a://my-bucket/lake."
        )
    return root.rstrip("/")


def is_local(root: str) -> bool:
    return urlparse(root).scheme in ("", "file")


def local_path(uri: str) -> str:
    """The filesystem path of a local lake URI."""
    parsed = urlparse(uri)
    return parsed.path if parsed.scheme == "file" else uri


class _LakePath:
    """A dataset or state file at a fixed place under the lake root: ``bronze_events = _LakePath(...)``."""

    def __init__(self, *parts: str) -> None:
        self.parts = parts

    def __get__(self, layout: LakeLayout | None, owner: type | None = None) -> str:
        if layout is None:  # looked up on the class (documentation tools): no root to join
            raise AttributeError(f"{'/'.join(self.parts)} is a path of a LakeLayout instance")
        return layout.path(*self.parts)


@dataclass(frozen=True)
class LakeLayout:
    root: str

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *[p.strip("/") for p in parts]])

    # Streaming outputs (written by the Spark Structured Streaming job); the live minute aggregates are
    # provisional, for live views: the hourly assets are authoritative.
    bronze_events = _LakePath("bronze", "events")
    quarantine_events = _LakePath("quarantine", "events")
    live_device_type_minute = _LakePath("live", "device_type_minute_stats")

    # Batch outputs (written by the Dagster assets). The event-id index is written with silver's files
    # and read by the daily checks of distinct event_id.
    silver_events = _LakePath("silver", "events")
    silver_event_id_index = _LakePath("silver", "event_id_index")
    silver_device_minute_stats = _LakePath("silver", "device_minute_stats")
    gold_daily_event_duration_p95 = _LakePath("gold", "daily_event_duration_p95")
    gold_daily_device_type_summary = _LakePath("gold", "daily_device_type_summary")
    exports = _LakePath("exports")

    # The stream's state: its event-time watermark ``{"watermark": ISO-8601}`` (``storage.watermark``)
    # and the newest bronze micro-batch whose writes all committed (``storage.commits``).
    stream_watermark = _LakePath("_state", "stream", "watermark.json")
    bronze_commit = _LakePath("_state", "stream", "bronze_commit.json")

    def daily_p95_csv(self, day: str) -> str:
        """The analysts' CSV export of one day of ``gold/daily_event_duration_p95``."""
        return f"{self.exports}/daily_event_duration_p95/event_date={day}.csv"

    # How a stream restarted on a fresh checkpoint continues (``streaming.checkpoint.reset_checkpoint``).
    stream_resume = _LakePath("_state", "stream", "resume.json")

    def checkpoint(self, query_name: str) -> str:
        """Streaming checkpoints live in the lake's state area so they move with the lake."""
        return self.path("_state", "checkpoints", query_name)

    def checkpoint_lock(self, query_name: str) -> str:
        """The stream's single-writer lease: next to the checkpoint, not inside it, so a reset (which
        moves the checkpoint directory) leaves it in place."""
        return f"{self.checkpoint(query_name)}.lock"

    def checkpoint_moved(self, query_name: str, stamp: str) -> str:
        """Where a checkpoint reset moves the checkpoint aside (never deleted)."""
        return f"{self.checkpoint(query_name)}.reset-{stamp}"


def hour_partition_dir(dataset: str, hour_start: datetime) -> str:
    """Hive partition directory of one UTC event hour, as Spark writes it (hour without zero padding)."""
    hour_start = hour_start.astimezone(timezone.utc)
    return f"{dataset.rstrip('/')}/event_date={hour_start:%Y-%m-%d}/event_hour={hour_start.hour}"


def day_partition_dir(dataset: str, day: str, column: str = "event_date") -> str:
    return f"{dataset.rstrip('/')}/{column}={day}"


# Partition directory names, as Spark writes them: an event day, and an hour of it (no zero padding).
DATE_DIR = re.compile(r"^event_date=(\d{4}-\d{2}-\d{2})$")
HOUR_DIR = re.compile(r"^event_hour=(\d{1,2})$")


def parent_dir_name(path: str) -> str:
    """Name of the directory directly holding the file at ``path``."""
    return path.rsplit("/", 2)[-2] if path.count("/") >= 1 else ""


def hour_of_file(path: str) -> int | None:
    """The event hour of a data file lying directly in an ``event_hour=H`` directory, else None."""
    m = HOUR_DIR.match(parent_dir_name(path))
    return int(m.group(1)) if m else None


def is_day_level_file(path: str) -> bool:
    """Whether the file at ``path`` lies directly in an ``event_date=D`` directory, outside its hours."""
    return DATE_DIR.match(parent_dir_name(path)) is not None

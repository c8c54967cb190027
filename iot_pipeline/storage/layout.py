"""Where every dataset of the lake lives, relative to one root URI.

The root is a local directory, a ``file://`` URI or an ``s3a://bucket/prefix`` URI. The pipeline
builds lake paths only from here (dataset roots, the export and state files, the Hive partition
directories), so moving the lake is a configuration change only; the test-data writers in
``iot_pipeline.testing`` lay bronze out by hand on purpose, as an independent spelling of the layout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlparse

SUPPORTED_SCHEMES = ("", "file", "s3a")
DEFAULT_LAKE_ROOT = ".local/lake"  # relative to the working directory, as `make run` uses it


class LakeConfigError(ValueError):
    """Raised for an unusable lake root; the message names the setting to fix."""


def normalize_root(root: str, *, setting: str = "IOT_LAKE_ROOT") -> str:
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


@dataclass(frozen=True)
class LakeLayout:
    root: str

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *[p.strip("/") for p in parts]])

    # Streaming outputs (written by the Spark Structured Streaming job).
    @property
    def bronze_events(self) -> str:
        return self.path("bronze", "events")

    @property
    def quarantine_events(self) -> str:
        return self.path("quarantine", "events")

    @property
    def live_device_type_minute(self) -> str:
        """Provisional per-minute aggregates for live views; the hourly assets are authoritative."""
        return self.path("live", "device_type_minute_stats")

    # Batch outputs (written by the Dagster assets).
    @property
    def silver_events(self) -> str:
        return self.path("silver", "events")

    @property
    def silver_event_id_index(self) -> str:
        """Written by ``silver/events`` with its files; read by the daily checks of distinct event_id."""
        return self.path("silver", "event_id_index")

    @property
    def silver_device_minute_stats(self) -> str:
        return self.path("silver", "device_minute_stats")

    @property
    def gold_daily_event_duration_p95(self) -> str:
        return self.path("gold", "daily_event_duration_p95")

    @property
    def gold_daily_device_type_summary(self) -> str:
        return self.path("gold", "daily_device_type_summary")

    @property
    def exports(self) -> str:
        return self.path("exports")

    def daily_p95_csv(self, day: str) -> str:
        """The analysts' CSV export of one day of ``gold/daily_event_duration_p95``."""
        return f"{self.exports}/daily_event_duration_p95/event_date={day}.csv"

    @property
    def stream_watermark(self) -> str:
        """The stream's event-time watermark, ``{"watermark": ISO-8601}`` (see ``storage.watermark``)."""
        return self.path("_state", "stream", "watermark.json")

    @property
    def bronze_commit(self) -> str:
        """The newest bronze micro-batch whose writes all committed (see ``storage.commits``)."""
        return self.path("_state", "stream", "bronze_commit.json")

    def checkpoint(self, query_name: str) -> str:
        """Streaming checkpoints live in the lake's state area so they move with the lake."""
        return self.path("_state", "checkpoints", query_name)


def hour_partition_dir(dataset: str, hour_start: datetime) -> str:
    """Hive partition directory of one UTC event hour, as Spark writes it (hour without zero padding)."""
    hour_start = hour_start.astimezone(timezone.utc)
    return f"{dataset.rstrip('/')}/event_date={hour_start:%Y-%m-%d}/event_hour={hour_start.hour}"


def day_partition_dir(dataset: str, day: str, column: str = "event_date") -> str:
    return f"{dataset.rstrip('/')}/{column}={day}"

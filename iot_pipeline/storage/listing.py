"""Partition discovery: which UTC event hours a Hive-partitioned dataset holds, and a cheap fingerprint of each.

Sensors tick every 30 s, so discovery must not read data. It lists directory names
(``event_date=YYYY-MM-DD/event_hour=H``) to find hours, and only for the hours it is asked about it sums
the data files' count, size and newest modification time: late rows land as new files in an old hour,
which changes that hour's fingerprint.

:class:`LakeListing` is the interface; :class:`LocalLakeListing` implements it for a local lake and
:class:`S3LakeListing` for an ``s3a://`` lake through a boto3 client from dagster-aws's ``S3Resource``:
``list_objects_v2`` with ``Delimiter='/'`` for :meth:`~LakeListing.hours` (common prefixes of the date and
hour directories, never every object), and a full object listing only under the hour prefixes passed to
:meth:`~LakeListing.fingerprints` (``Size`` and ``LastModified`` per object).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Protocol
from urllib.parse import urlparse

from iot_pipeline.storage.commits import is_visible
from iot_pipeline.storage.layout import (
    DATE_DIR,
    HOUR_DIR,
    day_partition_dir,
    hour_partition_dir,
    is_local,
    local_path,
)
from iot_pipeline.storage.s3 import (
    DEFAULT_REGION,
    S3ConfigError,
    check_bucket,
    s3_resource,
    split_s3_uri,
)


@dataclass(frozen=True)
class HourFingerprint:
    """What changes when rows land in an hour: data files, their total bytes and the newest write."""

    hour_start: datetime
    files: int
    total_bytes: int
    newest_mtime: float

    @property
    def token(self) -> str:
        """Short, stable id of this state of the hour; goes into run keys and the sensor cursor."""
        raw = f"{self.files}:{self.total_bytes}:{self.newest_mtime:.6f}"
        return hashlib.sha1(raw.encode()).hexdigest()[:10]


class LakeListing(Protocol):
    """Cheap metadata reads of the lake that sensors may do on every tick."""

    def hours(
        self, dataset: str, *, since: datetime | None = None, skipped: list[str] | None = None
    ) -> list[datetime]:
        """UTC start of every hour partition of ``dataset`` (from directory names only), ascending.

        Unusable partition directory names are appended to ``skipped`` (see :func:`hours_from_directories`).
        """
        ...

    def fingerprints(
        self, dataset: str, hours: Iterable[datetime], committed: int | None = None
    ) -> dict[datetime, HourFingerprint]:
        """Fingerprint of each given hour; an hour without data files is left out.

        Files of micro-batches after ``committed`` (see :mod:`iot_pipeline.storage.commits`) do not
        count yet: a run requested for them would not read them, and the hour must change again once
        they are whole.
        """
        ...

    def read_json(self, path: str) -> Mapping[str, Any] | None:
        """A small JSON state file of the lake (e.g. the stream watermark), or None if absent/unreadable."""
        ...


def is_data_file(name: str) -> bool:
    # Spark's side files (_SUCCESS, _spark_metadata, .crc checksums, in-progress temp files) are not data.
    return not name.startswith(("_", "."))


def hours_from_directories(
    dataset: str,
    subdirectories: Callable[[str], list[str]],
    since: datetime | None = None,
    skipped: list[str] | None = None,
) -> list[datetime]:
    """UTC hour starts found from ``event_date=D/event_hour=H`` directory names below ``dataset``.

    ``subdirectories(uri)`` names the directories directly below ``uri`` (empty if it does not exist);
    date directories before ``since``'s day are not opened. A directory that looks like a partition but
    names no usable hour (``event_date=2026-13-45``, ``event_hour=24``, the last hour of the calendar,
    whose end no ``datetime`` can hold) is left out and its name appended to ``skipped``: the lake's
    content must never stop a sensor tick. Other names (``_SUCCESS``, staging directories) are ignored.
    """
    since_day = since.astimezone(timezone.utc).date() if since else None
    found: list[datetime] = []

    def skip(name: str) -> None:
        if skipped is not None:
            skipped.append(name)

    for date_name in subdirectories(dataset):
        if not date_name.startswith("event_date="):
            continue
        m = DATE_DIR.match(date_name)
        try:
            day = datetime.strptime(m.group(1), "%Y-%m-%d").replace(tzinfo=timezone.utc) if m else None
        except ValueError:
            day = None
        if day is None:
            skip(date_name)
            continue
        if since_day and day.date() < since_day:
            continue
        for hour_name in subdirectories(f"{dataset.rstrip('/')}/{date_name}"):
            if not hour_name.startswith("event_hour="):
                continue
            h = HOUR_DIR.match(hour_name)
            if not h or int(h.group(1)) > 23 or (day.date() == date.max and int(h.group(1)) == 23):
                skip(f"{date_name}/{hour_name}")
                continue
            start = day + timedelta(hours=int(h.group(1)))
            if since is None or start >= since:
                found.append(start)
    return sorted(found)


def _local_subdirectories(uri: str) -> list[str]:
    try:
        return [e.name for e in os.scandir(local_path(uri)) if e.is_dir()]
    except FileNotFoundError:
        return []


class LocalLakeListing:
    """:class:`LakeListing` for a lake on a local disk (plain path or ``file://`` URI)."""

    def hours(
        self, dataset: str, *, since: datetime | None = None, skipped: list[str] | None = None
    ) -> list[datetime]:
        return hours_from_directories(dataset, _local_subdirectories, since, skipped)

    def fingerprints(
        self, dataset: str, hours: Iterable[datetime], committed: int | None = None
    ) -> dict[datetime, HourFingerprint]:
        """Files below the hour, including the stream's ``ingest_batch=N`` sub-partitions."""
        out: dict[datetime, HourFingerprint] = {}
        for hour in hours:
            files = total = 0
            newest = 0.0
            for folder, subdirs, names in os.walk(local_path(hour_partition_dir(dataset, hour))):
                subdirs[:] = [d for d in subdirs if is_data_file(d)]  # skip staging and metadata dirs
                if not is_visible(folder, committed):
                    continue
                for name in names:
                    if not is_data_file(name):
                        continue
                    try:
                        st = os.stat(os.path.join(folder, name))
                    except FileNotFoundError:  # removed since the walk listed it
                        continue
                    files += 1
                    total += st.st_size
                    newest = max(newest, st.st_mtime)
            if files:
                out[hour] = HourFingerprint(hour, files, total, newest)
        return out

    def read_json(self, path: str) -> Mapping[str, Any] | None:
        try:
            with open(local_path(path), encoding="utf-8") as fh:
                data = json.load(fh)
        except (FileNotFoundError, json.JSONDecodeError, OSError):
            return None
        return data if isinstance(data, dict) else None


def _counted(key: str, rel: str, committed: int | None) -> bool:
    """Whether an object (``rel``: its key below the partition) is a data file of a committed batch.
    Directory markers end with "/"; staging and metadata paths have a "_" or "." segment."""
    return (
        bool(rel)
        and not rel.endswith("/")
        and all(is_data_file(part) for part in rel.split("/") if part)
        and is_visible(key, committed)
    )


class S3LakeListing:
    """:class:`LakeListing` for an ``s3a://bucket/prefix`` lake (AWS S3, MinIO, any S3-compatible store).

    ``client`` is a boto3 S3 client (``S3Resource.get_client()``). Each tick costs one ``ListObjectsV2``
    page per date directory (plus one for the dataset) and one per fingerprinted hour. A refused call is
    re-checked with :func:`~iot_pipeline.storage.s3.check_bucket`, whose error names the setting to fix.
    """

    def __init__(self, client: Any, endpoint: str | None = None, region: str = DEFAULT_REGION) -> None:
        self._client = client
        self._endpoint = endpoint
        self._region = region

    def _explain(self, uri: str, exc: Exception) -> None:
        """Raise the S3ConfigError naming the bad setting if the bucket itself is the problem."""
        bucket, _ = split_s3_uri(uri)
        try:
            check_bucket(f"s3a://{bucket}", self._endpoint, self._region, client=self._client)
        except S3ConfigError as config_error:
            raise config_error from exc

    def _prefixes(self, uri: str) -> list[str]:
        """Names of the "directories" directly below ``uri`` (CommonPrefixes, without the slash)."""
        bucket, key = split_s3_uri(uri)
        prefix = f"{key}/" if key else ""
        names: list[str] = []
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix, Delimiter="/"
            )
            for page in pages:
                names += [p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", [])]
        except Exception as exc:  # botocore errors: translate if they are configuration problems
            self._explain(uri, exc)
            raise
        return names

    def hours(
        self, dataset: str, *, since: datetime | None = None, skipped: list[str] | None = None
    ) -> list[datetime]:
        return hours_from_directories(dataset, self._prefixes, since, skipped)

    def fingerprints(
        self, dataset: str, hours: Iterable[datetime], committed: int | None = None
    ) -> dict[datetime, HourFingerprint]:
        """Objects below each hour prefix (``ingest_batch=N`` sub-partitions included, side files not)."""
        out: dict[datetime, HourFingerprint] = {}
        for hour in hours:
            uri = hour_partition_dir(dataset, hour)
            bucket, key = split_s3_uri(uri)
            prefix = f"{key}/"
            files = total = 0
            newest = 0.0
            try:
                pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                for page in pages:
                    for obj in page.get("Contents", []):
                        if not _counted(obj["Key"], obj["Key"][len(prefix) :], committed):
                            continue
                        files += 1
                        total += int(obj["Size"])
                        newest = max(newest, obj["LastModified"].timestamp())
            except Exception as exc:
                self._explain(uri, exc)
                raise
            if files:
                out[hour] = HourFingerprint(hour, files, total, newest)
        return out

    def read_json(self, path: str) -> Mapping[str, Any] | None:
        bucket, key = split_s3_uri(path)
        try:
            body = self._client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except self._client.exceptions.NoSuchKey:
            return None
        except Exception as exc:
            self._explain(path, exc)
            return None  # e.g. a transient read error: the sensor falls back to the wall clock
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None


def listing_for(root: str, s3: Any = None) -> LakeListing:
    """The listing implementation for a lake root.

    ``s3`` is a dagster-aws ``S3Resource`` (anything with ``get_client()`` and optionally ``endpoint_url``
    and ``region_name``) used for ``s3a://`` roots; without one it is built from the environment
    (:func:`s3_resource`), so the same sensor code serves local and S3 lakes.
    """
    if is_local(root):
        return LocalLakeListing()
    if urlparse(root).scheme != "s3a":
        raise S3ConfigError(f"IOT_LAKE_ROOT={root!r}: partition discovery supports local and s3a:// lakes.")
    s3 = s3 if s3 is not None else s3_resource()
    return S3LakeListing(
        s3.get_client(),
        endpoint=getattr(s3, "endpoint_url", None) or None,
        region=getattr(s3, "region_name", None) or DEFAULT_REGION,
    )


def _subdirectories_of(listing: LakeListing) -> Callable[[str], list[str]]:
    """The directory lister behind a listing (one scandir, or one delimited LIST per call on S3)."""
    if isinstance(listing, S3LakeListing):
        return listing._prefixes
    return _local_subdirectories


def partition_days(listing: LakeListing, dataset: str) -> list[str]:
    """Every usable ``event_date`` of ``dataset`` (``YYYY-MM-DD``), ascending: one listing of the dataset.

    With :func:`hours_of_days`, a sensor opens only the days it means to look at, so a tick's cost
    does not grow with the age of the lake (a year of history is 365 names in one listing page).
    """
    days = []
    for name in _subdirectories_of(listing)(dataset):
        m = DATE_DIR.match(name)
        if m:
            try:
                datetime.strptime(m.group(1), "%Y-%m-%d")
            except ValueError:
                continue
            days.append(m.group(1))
    return sorted(days)


def hours_of_days(
    listing: LakeListing, dataset: str, days: Iterable[str], skipped: list[str] | None = None
) -> list[datetime]:
    """UTC hour starts of ``dataset`` within the given days only (one listing per day)."""
    wanted = {f"event_date={d}" for d in days}
    inner = _subdirectories_of(listing)
    root = dataset.rstrip("/")

    def subdirectories(uri: str) -> list[str]:
        if uri.rstrip("/") == root:
            return sorted(wanted)
        return inner(uri)

    return hours_from_directories(dataset, subdirectories, None, skipped)


def fingerprints_by_day(
    listing: LakeListing, dataset: str, hours: Iterable[datetime], committed: int | None = None
) -> dict[datetime, HourFingerprint]:
    """:meth:`LakeListing.fingerprints` of many hours with one object listing per **day** on S3.

    The hourly sensor fingerprints the lookback's ~170 hours every tick; one ``ListObjectsV2`` per
    hour made an S3 tick take seconds. Listing ``event_date=D/`` once per day (one page per 1,000
    objects) and grouping its objects by hour gives the same fingerprints (same files, bytes and
    newest write). A local lake keeps :meth:`LocalLakeListing.fingerprints`.
    """
    wanted = sorted(set(hours))
    if not isinstance(listing, S3LakeListing):
        return listing.fingerprints(dataset, wanted, committed)
    stats: dict[datetime, list] = {}
    for day in sorted({f"{h:%Y-%m-%d}" for h in wanted}):
        uri = day_partition_dir(dataset, day)
        bucket, key = split_s3_uri(uri)
        prefix = f"{key}/"
        start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc)
        day_hours = {h.hour: h for h in wanted if start <= h < start + timedelta(days=1)}
        try:
            pages = listing._client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for page in pages:
                for obj in page.get("Contents", []):
                    hour_dir, _, rel = obj["Key"][len(prefix) :].partition("/")
                    m = HOUR_DIR.match(hour_dir)
                    if not m or int(m.group(1)) not in day_hours:
                        continue
                    if not _counted(obj["Key"], rel, committed):
                        continue
                    s = stats.setdefault(day_hours[int(m.group(1))], [0, 0, 0.0])
                    s[0] += 1
                    s[1] += int(obj["Size"])
                    s[2] = max(s[2], obj["LastModified"].timestamp())
        except Exception as exc:
            listing._explain(uri, exc)
            raise
    return {
        h: HourFingerprint(h, files, total, newest) for h, (files, total, newest) in sorted(stats.items())
    }

"""One writer per checkpoint: the stream's lease on ``_state/checkpoints/<query>.lock``, and staging hygiene.

Two streams on one checkpoint (a second launch from the UI, a forgotten shell) would run the same
batch ids with different offsets and overwrite each other's ``ingest_batch=N`` partitions, losing
records without any error. So a stream takes a lease before it starts its query:

* The lease is a small JSON file next to the checkpoint, written through Hadoop's FileSystem (the same
  calls for a local and an ``s3a://`` lake). It names the holder: host, pid, the Dagster run id when
  the stream runs as a Dagster run, when it started and its last heartbeat.
* The holder refreshes the heartbeat every ``heartbeat_seconds``. A stream that finds a live lease
  fails at once with :class:`StreamLockError`, naming the holder and how to stop it.
* **Staleness.** A lease is stale when its heartbeat is older than ``stale_after_seconds`` (the
  holder's own figure, written in the lease), or at once when the holder ran on this host, in this
  pid namespace, and its process is gone (a kill -9). A stale lease is taken over with a warning
  naming the previous holder; nothing else is needed to recover from a crash.
* A take-over is verified by reading the lease back after a short pause (S3 has no atomic
  create-if-absent through S3A): of two streams racing for a stale lease, the one that does not read
  its own id back fails. A holder whose heartbeat finds another id in the lease (it was presumed dead
  while paused, or an operator forced the lock) stops its query instead of writing on.

Staging leftovers: Spark's dynamic partition overwrite stages a write under ``<output>/.spark-staging-*``
and a killed job leaves that directory behind. Readers that follow the documented paths never see it
(Spark and pyarrow skip hidden directories; the documented DuckDB globs name the partition levels,
``event_date=*/...``); :func:`clean_staging` removes leftovers that nothing has touched for
``grace_seconds``. The grace is there because the stream is not the only writer of bronze (a replay of
``silver/events`` writes ``ingest_batch=-1``): a staging directory still being written is never young
enough to be removed by mistake only if the grace is longer than any one write.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from iot_pipeline.storage.layout import LakeLayout, is_local

LOCK_VERSION = 1
STAGING_PREFIXES = (".spark-staging-", "_temporary")


class StreamLockError(RuntimeError):
    """Another stream holds the checkpoint's lease (or took it over); the message names it."""


def lock_path(layout: LakeLayout, query: str) -> str:
    """Next to the checkpoint directory, not inside it: a checkpoint reset moves the directory only."""
    return layout.checkpoint_lock(query)


def _now() -> float:
    return time.time()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def process_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), so a reused pid is not mistaken."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    if not fields or fields[0] == "Z":  # exited, not yet reaped
        return None
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def pid_namespace() -> str | None:
    """This process's pid namespace: a pid is only meaningful within one (containers on one host)."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


class _Hadoop:
    """The few Hadoop FileSystem calls the lease and the cleanup need (py4j, via the Spark session)."""

    def __init__(self, spark: SparkSession, path: str) -> None:
        jvm = spark.sparkContext._jvm
        self.jvm = jvm
        self.path = jvm.org.apache.hadoop.fs.Path(path)
        conf = spark.sparkContext._jsc.hadoopConfiguration()
        self.fs = self.path.getFileSystem(conf)
        # The checksummed local FileSystem (a session may still choose it; the project's use the raw
        # one) keeps .crc side files that go stale when another process rewrites the lease.
        if is_local(path) and jvm.java.lang.Class.forName(
            "org.apache.hadoop.fs.ChecksumFileSystem"
        ).isInstance(self.fs):
            self.fs = self.fs.getRaw()

    def child(self, path: str) -> Any:
        return self.jvm.org.apache.hadoop.fs.Path(path)

    def read(self, path: Any | None = None) -> str | None:
        path = path or self.path
        try:
            stream = self.fs.open(path)
        except Exception as exc:
            if "FileNotFoundException" in str(exc):
                return None
            raise
        try:
            return self.jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
        finally:
            stream.close()

    def write(self, text: str, overwrite: bool) -> bool:
        """False when ``overwrite`` is off and the file exists (as far as the store can tell)."""
        try:
            out = self.fs.create(self.path, overwrite)
        except Exception as exc:
            if "FileAlreadyExistsException" in str(exc):
                return False
            raise
        try:
            out.write(bytearray(text.encode()))
        finally:
            out.close()
        return True

    def modified(self) -> float | None:
        try:
            return self.fs.getFileStatus(self.path).getModificationTime() / 1000
        except Exception as exc:
            if "FileNotFoundException" in str(exc):
                return None
            raise

    def delete(self, path: Any | None = None, recursive: bool = False) -> None:
        self.fs.delete(path or self.path, recursive)


@dataclass
class LockOwner:
    owner_id: str
    host: str
    pid: int
    pid_start: int | None
    dagster_run_id: str | None
    started_at: float
    heartbeat_at: float
    stale_after_seconds: float
    checkpoint: str
    pid_ns: str | None = None

    def to_json(self) -> str:
        doc = dict(self.__dict__, version=LOCK_VERSION)
        doc["started"], doc["heartbeat"] = _iso(self.started_at), _iso(self.heartbeat_at)
        return json.dumps(doc, sort_keys=True)

    @classmethod
    def parse(cls, text: str | None) -> LockOwner | None:
        try:
            doc = json.loads(text or "")
            return cls(**{k: doc[k] for k in cls.__dataclass_fields__ if k in doc})
        except (ValueError, TypeError, KeyError):
            return None

    def describe(self, now: float) -> str:
        run = f", Dagster run {self.dagster_run_id}" if self.dagster_run_id else ""
        return (
            f"pid {self.pid} on {self.host}{run}, started {_iso(self.started_at)}, "
            f"last heartbeat {now - self.heartbeat_at:.0f}s ago"
        )

    def stale_reason(self, now: float, host: str) -> str | None:
        """Why this lease no longer protects a live stream, or None if it does."""
        age = now - self.heartbeat_at
        if age > self.stale_after_seconds:
            return f"no heartbeat for {age:.0f}s (stale after {self.stale_after_seconds:.0f}s)"
        if self.host == host and self.pid_ns == pid_namespace():
            ticks = process_start_ticks(self.pid)
            if ticks is None or (self.pid_start is not None and ticks != self.pid_start):
                return f"its process {self.pid} on this host is gone"
        return None


@dataclass
class StreamLock:
    """A held lease; :meth:`acquire` takes it, :meth:`start_heartbeat` keeps it, :meth:`release` frees it."""

    spark: SparkSession
    location: str
    owner: LockOwner
    heartbeat_seconds: float
    log: Callable[[str], None] = print
    lost: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _hadoop: _Hadoop | None = None

    @classmethod
    def acquire(
        cls,
        spark: SparkSession,
        layout: LakeLayout,
        query: str,
        *,
        dagster_run_id: str | None = None,
        stale_after_seconds: float = 90.0,
        heartbeat_seconds: float = 10.0,
        settle_seconds: float = 1.0,
        log: Callable[[str], None] = print,
    ) -> StreamLock:
        """Take the lease or raise :class:`StreamLockError` naming the live holder."""
        location = lock_path(layout, query)
        hadoop = _Hadoop(spark, location)
        host, now = socket.gethostname(), _now()
        me = LockOwner(
            owner_id=uuid.uuid4().hex,
            host=host,
            pid=os.getpid(),
            pid_start=process_start_ticks(os.getpid()),
            dagster_run_id=dagster_run_id,
            started_at=now,
            heartbeat_at=now,
            stale_after_seconds=stale_after_seconds,
            checkpoint=layout.checkpoint(query),
            pid_ns=pid_namespace(),
        )
        lock = cls(spark, location, me, heartbeat_seconds, log, _hadoop=hadoop)
        if hadoop.write(me.to_json(), overwrite=False):
            lock._verify(settle_seconds)
            return lock
        text = hadoop.read()
        holder = LockOwner.parse(text)
        if holder is None:  # half-written or foreign content: judge by the file's age
            modified = hadoop.modified() or 0.0
            if now - modified <= stale_after_seconds:
                raise StreamLockError(
                    f"The stream's checkpoint {me.checkpoint} is locked by {location}, which is unreadable "
                    f"and {now - modified:.0f}s old. If no stream runs on this lake, remove it with "
                    "`iot-pipeline checkpoint unlock`; otherwise stop that stream first."
                )
            reason = f"an unreadable lease {now - modified:.0f}s old"
        else:
            reason = holder.stale_reason(now, host)
            if reason is None:
                raise StreamLockError(
                    f"Another stream is running on checkpoint {me.checkpoint}: {holder.describe(now)}. "
                    "Only one stream may write a checkpoint. Stop that stream first (terminate "
                    + (f"Dagster run {holder.dagster_run_id} in the UI" if holder.dagster_run_id else "it")
                    + f", or `kill {holder.pid}` on {holder.host}). If it is already gone, its lease expires "
                    f"{holder.stale_after_seconds:.0f}s after its last heartbeat; `iot-pipeline checkpoint "
                    f"unlock` removes the lease ({location}) at once."
                )
        previous = holder.describe(now) if holder is not None else "unknown holder"
        log(f"WARNING: taking over the stale stream lease {location} ({previous}): {reason}")
        hadoop.write(me.to_json(), overwrite=True)
        lock._verify(settle_seconds)
        return lock

    def _verify(self, settle_seconds: float) -> None:
        """Read the lease back after a pause: a racing stream that wrote after us wins, we fail."""
        time.sleep(settle_seconds)
        holder = LockOwner.parse(self._hadoop.read() if self._hadoop else None)
        if holder is None or holder.owner_id != self.owner.owner_id:
            other = holder.describe(_now()) if holder else "unknown"
            raise StreamLockError(
                f"Another stream took the lease {self.location} at the same time ({other}); this one stops."
            )

    def refresh(self) -> bool:
        """Write a new heartbeat if the lease is still ours; False (and ``lost`` set) if it is not."""
        assert self._hadoop is not None
        holder = LockOwner.parse(self._hadoop.read())
        if holder is None or holder.owner_id != self.owner.owner_id:
            self.lost = f"the stream lease {self.location} was taken over by " + (
                holder.describe(_now()) if holder else "nobody (it was removed)"
            )
            return False
        self.owner.heartbeat_at = _now()
        self._hadoop.write(self.owner.to_json(), overwrite=True)
        return True

    def start_heartbeat(
        self, on_lost: Callable[[str], None], every: Callable[[], None] | None = None
    ) -> None:
        """Refresh in a daemon thread; ``on_lost`` runs once if the lease stops being ours. A store
        that cannot be reached for a while (S3 down) only delays heartbeats; the stream's own writes
        fail then anyway. ``every`` runs after each heartbeat (periodic staging cleanup)."""

        def loop() -> None:
            while not self._stop.wait(self.heartbeat_seconds):
                try:
                    if not self.refresh():
                        self.log(f"ERROR: {self.lost}; stopping this stream")
                        on_lost(self.lost or "lease lost")
                        return
                    if every is not None:
                        every()
                except Exception as exc:  # an unreachable store: try again next time
                    self.log(f"WARNING: stream lease heartbeat failed: {str(exc).splitlines()[0][:300]}")

        self._thread = threading.Thread(target=loop, name="stream-lease-heartbeat", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop the heartbeat and delete the lease if it is still ours (a crash leaves it to go stale)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(30)
        if self.lost or self._hadoop is None:
            return
        try:
            holder = LockOwner.parse(self._hadoop.read())
            if holder is not None and holder.owner_id == self.owner.owner_id:
                self._hadoop.delete()
            return
        except Exception as exc:  # py4j unusable (interrupted call, JVM gone): try without the JVM
            first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        try:
            from iot_pipeline.storage.s3 import lake_filesystem

            text, _ = read_lock_file_at(self.location)
            holder = LockOwner.parse(text)
            if holder is not None and holder.owner_id == self.owner.owner_id:
                fs, path = lake_filesystem(self.location)
                fs.delete_file(path)
        except Exception as exc:
            self.log(f"WARNING: could not release the stream lease {self.location}: {first}; {exc}")


def read_lock(spark: SparkSession, layout: LakeLayout, query: str) -> LockOwner | None:
    return LockOwner.parse(_Hadoop(spark, lock_path(layout, query)).read())


def staging_outputs(layout: LakeLayout) -> list[str]:
    """The datasets the stream writes with dynamic overwrite, where staging leftovers can appear."""
    return [layout.bronze_events, layout.quarantine_events, layout.live_device_type_minute]


def clean_staging(
    spark: SparkSession,
    layout: LakeLayout,
    grace_seconds: float,
    log: Callable[[str], None] = print,
    now: float | None = None,
) -> list[str]:
    """Delete ``.spark-staging-*`` / ``_temporary`` directories at the top of the stream's outputs whose
    newest file is older than ``grace_seconds``; returns what was removed. Call it holding the lease."""
    now = _now() if now is None else now
    removed: list[str] = []
    for output in staging_outputs(layout):
        hadoop = _Hadoop(spark, output)
        if not hadoop.fs.exists(hadoop.path):
            continue
        for status in hadoop.fs.listStatus(hadoop.path):
            name = status.getPath().getName()
            if not name.startswith(STAGING_PREFIXES):
                continue
            newest = status.getModificationTime()
            files = hadoop.fs.listFiles(status.getPath(), True)
            while files.hasNext():
                newest = max(newest, files.next().getModificationTime())
            age = now - newest / 1000
            if age < grace_seconds:
                continue
            hadoop.delete(status.getPath(), recursive=True)
            removed.append(f"{output}/{name}")
    if removed:
        log(f"removed {len(removed)} staging leftover(s) of killed writes: {', '.join(removed)}")
    return removed


def read_lock_file(layout: LakeLayout, query: str) -> tuple[str | None, float | None]:
    """The lease's text and modification time without Spark (pyarrow), for ``iot-pipeline checkpoint``."""
    return read_lock_file_at(lock_path(layout, query))


def read_lock_file_at(location: str) -> tuple[str | None, float | None]:
    from pyarrow import fs as pafs

    from iot_pipeline.storage.s3 import lake_filesystem

    fs, path = lake_filesystem(location)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        return None, None
    with fs.open_input_stream(path) as stream:
        text = stream.read().decode("utf-8", errors="replace")
    return text, info.mtime.timestamp() if info.mtime is not None else None


def live_holder(layout: LakeLayout, query: str, now: float | None = None) -> LockOwner | None:
    """The holder of a live (not stale) lease, or None: what ``checkpoint reset`` must not run under."""
    text, _ = read_lock_file(layout, query)
    holder = LockOwner.parse(text)
    if holder is None:
        return None
    return None if holder.stale_reason(_now() if now is None else now, socket.gethostname()) else holder


def force_unlock(layout: LakeLayout, query: str) -> LockOwner | None:
    """Remove the lease whoever holds it (the operator's call, once sure no stream runs); returns the
    holder it named. A stream still running finds the lease gone at its next heartbeat and stops."""
    from iot_pipeline.storage.s3 import lake_filesystem

    text, _ = read_lock_file(layout, query)
    if text is None:
        return None
    fs, path = lake_filesystem(lock_path(layout, query))
    fs.delete_file(path)
    return LockOwner.parse(text) or LockOwner("unreadable", "?", 0, None, None, 0, 0, 0, "")

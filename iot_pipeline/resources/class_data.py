"""Class-data sharing (AppCDS) for the Spark drivers this project starts.

A fresh driver JVM spends seconds loading and verifying Spark's classes before its first query; a
JVM that maps a class-data archive of them skips most of that work. The first driver for a given
Java, PySpark and class path records the archive when it exits (``-XX:ArchiveClassesAtExit``) under
a name of its own; a later session adopts the finished recording under the shared name, and every
session after that maps it (``-XX:SharedArchiveFile``). The JVM checks an archive against its own
build and class path and ignores one that does not match (``-Xshare:auto``), so a stale archive
costs the speed-up, never a run. An archive holds the absolute paths of the jars it was recorded
from, so it lives with the PySpark installation it belongs to, in that Python environment
(:func:`archive_dir`): a checkout's or a CI clone's archives go away with its environment instead
of piling up in a shared cache. Measured in docs/performance.md; the decision is in
docs/decisions.md ("Class-data sharing for the drivers").
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import struct
import sys
import time
from pathlib import Path

import pyspark

PREFIX = "iot-pipeline-spark-cds-"
# The JVM's own notes on classes it cannot archive (hundreds of lines) would fill the run's log.
QUIET = "-Xlog:cds*=off"
# JVM options that already decide about class-data sharing: the resource then adds none.
USER_CHOICE = ("-Xshare", "SharedArchiveFile", "ArchiveClassesAtExit", "-XX:-UseSharedSpaces")
# Where /proc is missing, a recording untouched this long is taken as finished.
SETTLE_SECONDS = 120.0
# The first word of a dynamic archive's header. HotSpot writes the header after every region, so a
# file that starts with it is whole; one cut short (its JVM killed mid-dump) is dropped, never mapped.
DYNAMIC_ARCHIVE_MAGIC = 0xF00BABA8


def _is_whole(archive: Path) -> bool:
    with archive.open("rb") as f:
        head = f.read(4)
    return len(head) == 4 and struct.unpack("=I", head)[0] == DYNAMIC_ARCHIVE_MAGIC


def archive_dir() -> Path:
    """Where this Python environment keeps its archives (``<sys.prefix>/share``, the data directory
    of an environment), created on first use; recording is skipped where it cannot be written."""
    directory = Path(sys.prefix, "share", "iot-pipeline", "spark-cds")
    with contextlib.suppress(OSError):
        directory.mkdir(parents=True, exist_ok=True)
    return directory


def _java_identity() -> str:
    """The JVM that will run the driver: an archive belongs to one build of it."""
    home = os.environ.get("JAVA_HOME")
    java = Path(home, "bin", "java") if home else shutil.which("java")
    if not java:
        return ""
    real = os.path.realpath(java)
    with contextlib.suppress(OSError):
        return f"{real}:{os.stat(real).st_mtime_ns}"
    return real


def archive_key(class_path: str) -> str:
    """One archive per Java build, PySpark version and driver class path."""
    identity = "|".join((_java_identity(), pyspark.__version__, pyspark.__file__, class_path))
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def _recordings(directory: Path, key: str) -> set[Path] | None:
    """The recordings of ``key`` that a live JVM still makes (it writes the file when it exits).

    None where there is no ``/proc`` to ask: a recording is then taken as finished once its file
    has been left alone for ``SETTLE_SECONDS``.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    needle = f"-XX:ArchiveClassesAtExit={directory / PREFIX}{key}.".encode()
    live: set[Path] = set()
    for entry in proc.iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                for arg in (entry / "cmdline").read_bytes().split(b"\0"):
                    if arg.startswith(needle):
                        live.add(Path(os.fsdecode(arg.partition(b"=")[2])))
    return live


def _in_progress(pending: Path, live: set[Path] | None) -> bool:
    if live is None:
        return time.time() - pending.stat().st_mtime < SETTLE_SECONDS
    return pending in live


def _adopt(directory: Path, key: str, archive: Path) -> bool:
    """Move a finished recording to the shared name; drop the others. True while one is in progress."""
    live = _recordings(directory, key)
    for pending in sorted(directory.glob(f"{PREFIX}{key}.*.pending")):
        with contextlib.suppress(OSError):
            if _in_progress(pending, live):
                continue
            if not archive.exists() and _is_whole(pending):
                os.replace(pending, archive)  # atomic: no session maps a half-moved file
            else:
                pending.unlink()
    return bool(live)


def driver_options(class_path: str, user_options: str = "", directory: Path | None = None) -> str:
    """``spark.driver.extraJavaOptions`` for a driver this process starts, with ``user_options`` kept.

    Maps the environment's archive when there is one, else records one at exit (one driver at a time),
    else leaves the options as they are (a read-only directory, or options that already decide).
    """
    if any(choice in user_options for choice in USER_CHOICE):
        return user_options
    directory = directory or archive_dir()
    key = archive_key(class_path)
    archive = directory / f"{PREFIX}{key}.jsa"
    ours = ""
    with contextlib.suppress(OSError):
        recording = _adopt(directory, key, archive)
        if archive.is_file():
            ours = f"-XX:SharedArchiveFile={archive} {QUIET}"
        elif not recording and os.access(directory, os.W_OK):
            pending = directory / f"{PREFIX}{key}.{os.getpid()}.pending"
            ours = f"-XX:ArchiveClassesAtExit={pending} {QUIET}"
    return f"{ours} {user_options}".strip()

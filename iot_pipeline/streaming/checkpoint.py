"""The bronze query's checkpoint from outside Spark: committed offsets, consumer lag, a safe reset.

Spark's Kafka source keeps its offsets in the checkpoint, not in a consumer group, so Kafka's own
tools show no lag for it. A checkpoint holds ``offsets/<N>`` (what batch N reads, logged before it
runs) and ``commits/<N>`` (written once batch N has landed); the committed position is the offsets
file of the newest commit, and lag is Kafka's end offset minus that.

Resetting a checkpoint is where data is lost by accident: bronze partitions are keyed by batch id
(``ingest_batch=N``, see :mod:`iot_pipeline.streaming.sink`) and a fresh checkpoint restarts at batch
0, so its batches would overwrite the old batches' partitions. :func:`reset_checkpoint` therefore
moves the checkpoint aside (never deletes it) and writes ``_state/stream/resume.json`` with a
``batch_base`` above every batch already written and, by default, the old checkpoint's committed
offsets as the new starting offsets: the restarted stream continues exactly where it stopped, and
bronze keeps every batch. The stream reads that file when it starts (:func:`read_resume`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pyarrow import fs as pafs

from iot_pipeline.storage.layout import LakeLayout, is_local
from iot_pipeline.storage.s3 import lake_filesystem

BRONZE_QUERY = "bronze"  # the bronze query's name, also its checkpoint directory
RESET_FROM = ("committed", "earliest", "latest")


class CheckpointError(RuntimeError):
    """The checkpoint cannot be read or reset as asked; the message says what to do."""


def _batch_ids(fs: pafs.FileSystem, directory: str) -> list[int]:
    try:
        infos = fs.get_file_info(pafs.FileSelector(directory, allow_not_found=True))
    except OSError as exc:
        raise CheckpointError(f"cannot list {directory}: {exc}") from exc
    return sorted(int(i.base_name) for i in infos if i.base_name.isdigit())


def _read(fs: pafs.FileSystem, path: str) -> str:
    with fs.open_input_stream(path) as stream:
        return stream.read().decode("utf-8")


def _write(fs: pafs.FileSystem, path: str, text: str) -> None:
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as stream:
        stream.write(text.encode("utf-8"))


def parse_offsets_file(text: str) -> dict[str, dict[str, int]]:
    """Source offsets of a Spark ``offsets/<N>`` file: ``v1``, the batch metadata, one JSON per source."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 3 or not lines[0].startswith("v"):
        raise CheckpointError("not a Spark offsets file (expected a version line, metadata and offsets)")
    offsets: dict[str, dict[str, int]] = {}
    for line in lines[2:]:
        doc = json.loads(line)
        if isinstance(doc, dict):
            for topic, parts in doc.items():
                offsets.setdefault(topic, {}).update({str(p): int(o) for p, o in parts.items()})
    return offsets


@dataclass
class Resume:
    """How a stream started on a fresh checkpoint continues the lake's batch ids and Kafka position."""

    batch_base: int = 0
    # Spark's startingOffsets for the fresh checkpoint: per-partition offsets, "earliest" or "latest";
    # None keeps the stream's configured default.
    starting_offsets: dict[str, dict[str, int]] | str | None = None
    reset_at: str | None = None
    previous_checkpoint: str | None = None

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=True)


@dataclass
class CheckpointState:
    location: str
    last_committed_batch: int | None
    committed_offsets: dict[str, dict[str, int]] = field(default_factory=dict)
    resume: Resume = field(default_factory=Resume)
    # Newest batch whose offsets were logged: it may have written files without committing.
    last_logged_batch: int | None = None

    @property
    def next_partition_batch(self) -> int:
        """The first ``ingest_batch`` value no batch of this lake can have written yet."""
        logged = [b for b in (self.last_committed_batch, self.last_logged_batch) if b is not None]
        return self.resume.batch_base + (max(logged) if logged else -1) + 1


def resume_path(layout: LakeLayout) -> str:
    return layout.stream_resume


def read_resume(layout: LakeLayout) -> Resume:
    fs, path = lake_filesystem(resume_path(layout))
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return Resume()
    try:
        return Resume(**json.loads(_read(fs, path)))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{resume_path(layout)} is not a valid resume file: {exc}") from exc


def read_state(layout: LakeLayout, query: str = BRONZE_QUERY) -> CheckpointState:
    location = layout.checkpoint(query)
    fs, path = lake_filesystem(location)
    commits = _batch_ids(fs, f"{path}/commits")
    logged = _batch_ids(fs, f"{path}/offsets")
    last = commits[-1] if commits else None
    offsets = parse_offsets_file(_read(fs, f"{path}/offsets/{last}")) if last is not None else {}
    return CheckpointState(location, last, offsets, read_resume(layout), logged[-1] if logged else None)


def end_offsets(kafka: Any, timeout_s: float = 10.0) -> dict[str, int]:
    """End offset of every partition of the event topic (``kafka`` is a :class:`KafkaResource`)."""
    return {str(p): high for p, (_, high) in kafka.watermarks(timeout_s).items()}


def consumer_lag(state: CheckpointState, topic: str, ends: dict[str, int]) -> dict[str, int]:
    """Records per partition that Kafka holds beyond the committed position (all of them if none)."""
    start = state.resume.starting_offsets
    committed = state.committed_offsets.get(topic) or (
        start.get(topic, {}) if isinstance(start, dict) else {}
    )
    return {p: max(0, end - committed.get(p, 0)) for p, end in ends.items()}


def reset_checkpoint(
    layout: LakeLayout, start_from: str = "committed", now: datetime | None = None, query: str = BRONZE_QUERY
) -> tuple[str, Resume]:
    """Move the checkpoint aside and write the resume file; returns (where it went, the resume plan).

    ``start_from``: ``committed`` resumes at the old checkpoint's committed offsets (no record lost or
    read twice); ``earliest`` re-reads the topic (bronze gets the records again, silver's exact
    deduplication on ``event_id`` removes them); ``latest`` skips what is in Kafka now. Stop the stream
    first: a running query would keep writing to the moved directory.
    """
    if start_from not in RESET_FROM:
        raise CheckpointError(f"--from must be one of {', '.join(RESET_FROM)}, not {start_from!r}")
    state = read_state(layout, query)
    fs, path = lake_filesystem(state.location)
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        raise CheckpointError(f"no checkpoint at {state.location}: nothing to reset")
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    aside = layout.checkpoint_moved(query, stamp)
    _, moved = lake_filesystem(aside)
    if is_local(state.location):
        fs.move(path, moved)
    else:  # S3 has no rename: copy, then delete
        pafs.copy_files(path, moved, source_filesystem=fs, destination_filesystem=fs)
        fs.delete_dir(path)
    if start_from != "committed":
        offsets: dict[str, dict[str, int]] | str | None = start_from
    else:  # nothing committed since an earlier reset: keep that reset's starting point
        offsets = state.committed_offsets or state.resume.starting_offsets
    resume = Resume(
        batch_base=state.next_partition_batch,
        starting_offsets=offsets,
        reset_at=stamp,
        previous_checkpoint=aside,
    )
    rfs, rpath = lake_filesystem(resume_path(layout))
    _write(rfs, rpath, resume.to_json())
    return moved, resume

"""What became of the runs and backfills a sensor requested, read from the Dagster instance.

Why: a sensor that records a partition as done when it *requests* the run never notices that the run
failed, and one that requests again whenever the data changed starts a second run of a partition whose
first one is still queued. So every request carries the tag ``iot-pipeline/request`` (copied by Dagster
onto the backfill's runs and onto automatic retries), the sensor keeps the open requests in its cursor,
and each tick asks the instance, in two queries, whether each one is still in flight, succeeded or
failed (after Dagster's own run retries). A partition is done only when its request succeeded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

import dagster as dg
from dagster import DagsterRunStatus
from dagster._core.execution.backfill import BulkActionsFilter, BulkActionStatus
from dagster._core.storage.dagster_run import NOT_FINISHED_STATUSES
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
    WILL_RETRY_TAG,
)

REQUEST_TAG = "iot-pipeline/request"
# One value per UTC day: the instance's run queue lets one run per day through at a time (day lock).
DAY_TAG = "iot-pipeline/day"


class Outcome(Enum):
    IN_FLIGHT = "in_flight"
    SUCCESS = "success"
    FAILED = "failed"


@dataclass
class Request:
    """One run or backfill a sensor asked for: partitions ``first``..``last`` and their state then."""

    id: str
    first: str
    last: str
    at: float
    tokens: dict[str, str] = field(default_factory=dict)
    # When the sensor saw it fail (0: not failed); a failed request is made again later, or at once
    # when its partitions' data changes.
    failed_at: float = 0.0

    def covers(self, key: str) -> bool:
        return self.first <= key <= self.last

    def dump(self) -> list:
        return [self.id, self.first, self.last, round(self.at, 1), self.tokens, round(self.failed_at, 1)]

    @classmethod
    def load(cls, raw: list) -> Request:
        rid, first, last, at, tokens, failed_at = raw
        tokens = {str(k): str(v) for k, v in tokens.items()}
        return cls(str(rid), str(first), str(last), float(at), tokens, float(failed_at))


def load_requests(raw: object) -> list[Request]:
    """Requests from a cursor document; malformed entries are dropped (the sensor then re-derives)."""
    out = []
    for item in raw if isinstance(raw, list) else []:
        try:
            out.append(Request.load(item))
        except (TypeError, ValueError, AttributeError):
            continue
    return out


def settle(requests: list[Request], results: dict[str, Outcome], now: float) -> list[Request]:
    """Apply this tick's outcomes: mark failures (or un-mark them when a retry appeared); returns the
    succeeded requests, removed from ``requests``."""
    succeeded = []
    for req in list(requests):
        outcome = results.get(req.id, Outcome.IN_FLIGHT)
        if outcome is Outcome.SUCCESS:
            requests.remove(req)
            succeeded.append(req)
        elif outcome is Outcome.FAILED:
            req.failed_at = req.failed_at or now
        else:
            req.failed_at = 0.0
    return succeeded


BACKFILL_DONE = {BulkActionStatus.COMPLETED_SUCCESS, BulkActionStatus.COMPLETED}
BACKFILL_FAILED = {
    BulkActionStatus.COMPLETED_FAILED,
    BulkActionStatus.FAILED,
    BulkActionStatus.CANCELED,
}


def outcomes(
    instance: dg.DagsterInstance, requests: Iterable[Request], now: float, lost_after_s: float
) -> dict[str, Outcome]:
    """Outcome of each request: a backfill's status, else its newest run's (a failed run that Dagster
    will retry is still in flight). A request with neither after ``lost_after_s`` failed (lost)."""
    by_id = {r.id: r for r in requests}
    if not by_id:
        return {}
    ids = sorted(by_id)
    out: dict[str, Outcome] = {}
    for backfill in instance.get_backfills(filters=BulkActionsFilter(tags={REQUEST_TAG: ids})):
        rid = backfill.tags.get(REQUEST_TAG)
        if backfill.status in BACKFILL_DONE:
            out[rid] = Outcome.SUCCESS
        elif backfill.status in BACKFILL_FAILED:
            out[rid] = Outcome.FAILED
        else:
            out[rid] = Outcome.IN_FLIGHT
    newest: dict[str, dg.RunRecord] = {}
    for record in instance.get_run_records(filters=dg.RunsFilter(tags={REQUEST_TAG: ids})):
        rid = record.dagster_run.tags.get(REQUEST_TAG)
        if rid in out:
            continue  # a backfill's runs: the backfill's status decides
        if (
            rid not in newest
            or record.create_timestamp.timestamp() > newest[rid].create_timestamp.timestamp()
        ):
            newest[rid] = record
    for rid, record in newest.items():
        run = record.dagster_run
        if run.status == DagsterRunStatus.SUCCESS:
            out[rid] = Outcome.SUCCESS
        elif run.status in NOT_FINISHED_STATUSES or run.tags.get(WILL_RETRY_TAG) == "true":
            out[rid] = Outcome.IN_FLIGHT
        else:
            out[rid] = Outcome.FAILED
    for rid, request in by_id.items():
        if rid not in out:
            out[rid] = Outcome.FAILED if now - request.at > lost_after_s else Outcome.IN_FLIGHT
    return out


@dataclass(frozen=True)
class Busy:
    """Partition ranges of the runs in flight in the instance, whoever launched them (UI, CLI, sensors)."""

    ranges: tuple[tuple[str, str], ...] = ()

    def covers(self, key: str) -> bool:
        """An in-flight run on partition ``key`` (hour keys and day keys never match each other)."""
        return any(len(first) == len(key) and first <= key <= last for first, last in self.ranges)

    def day_run(self, day: str) -> bool:
        """A daily run of ``day`` in flight."""
        return self.covers(day)

    def hour_runs(self, day: str) -> bool:
        """An hourly run on any hour of ``day`` in flight."""
        return any(len(first) > 10 and first[:10] <= day <= last[:10] for first, last in self.ranges)


def busy_partitions(instance: dg.DagsterInstance, asset_keys: Iterable[dg.AssetKey]) -> Busy:
    """Partitions that in-flight runs of ``asset_keys`` cover (one query over unfinished runs only)."""
    keys = set(asset_keys)
    ranges = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=NOT_FINISHED_STATUSES)):
        if run.asset_selection is not None and not (set(run.asset_selection) & keys):
            continue
        tags = run.tags
        if PARTITION_NAME_TAG in tags:
            ranges.append((tags[PARTITION_NAME_TAG], tags[PARTITION_NAME_TAG]))
        elif ASSET_PARTITION_RANGE_START_TAG in tags and ASSET_PARTITION_RANGE_END_TAG in tags:
            ranges.append((tags[ASSET_PARTITION_RANGE_START_TAG], tags[ASSET_PARTITION_RANGE_END_TAG]))
    return Busy(tuple(ranges))

"""What the Dagster instance knows about partitions: the latest materialisation of each, and its run."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import dagster as dg
from dagster import DagsterEventType, DagsterRunStatus

FINISHED_OK = {DagsterRunStatus.SUCCESS}
FINISHED_BAD = {DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


@dataclass(frozen=True)
class Materialization:
    partition: str
    storage_id: int
    timestamp: float
    run_id: str


def latest_materializations(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partitions: Iterable[str]
) -> dict[str, Materialization]:
    """Latest materialisation per requested partition: two indexed queries, whatever the history length."""
    wanted = set(partitions)
    if not wanted:
        return {}
    ids = instance.get_latest_storage_id_by_partition(
        asset_key, DagsterEventType.ASSET_MATERIALIZATION, wanted
    )
    if not ids:
        return {}
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, storage_ids=list(ids.values())), limit=len(ids)
    ).records
    return {
        r.partition_key: Materialization(r.partition_key, r.storage_id, r.timestamp, r.run_id)
        for r in records
        if r.partition_key is not None
    }


def new_materialized_partitions(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, after_storage_id: int | None
) -> dict[str, int]:
    """Partitions materialised after ``after_storage_id`` (all of them when None), with their latest id."""
    return dict(
        instance.get_latest_storage_id_by_partition(
            asset_key, DagsterEventType.ASSET_MATERIALIZATION, after_cursor=after_storage_id
        )
    )


def run_statuses(instance: dg.DagsterInstance, run_ids: Iterable[str]) -> dict[str, DagsterRunStatus]:
    ids = sorted({r for r in run_ids if r})
    if not ids:
        return {}
    return {run.run_id: run.status for run in instance.get_runs(filters=dg.RunsFilter(run_ids=ids))}

"""Turn the partitions a sensor found due into requests: one run for a lone partition, one single-run
backfill per contiguous range.

Why: catching up (a new instance over an existing lake, the stream back after an outage, a wave of late
rows) as one run per partition would cost a Spark session and a queue slot per hour. The silver and
gold assets have ``BackfillPolicy.single_run()``, so a backfill of a range is one run and one Spark
session whatever its length. Sensors return such a backfill as ``RunRequest.for_asset_graph_subset``
(Dagster 1.13: the sensor daemon creates a backfill instead of a run; the helper is marked private, see
docs/decisions.md). A range longer than ``max_len`` is cut, so one failure never redoes a year.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

import dagster as dg
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset

from iot_pipeline.resources.spark import SPARK_RUN_TAG
from iot_pipeline.sensors.requests import DAY_TAG, REQUEST_TAG, Request


def contiguous(starts: Iterable[datetime], step: timedelta, max_len: int) -> list[list[datetime]]:
    """Sorted partition starts grouped into runs of consecutive partitions, each at most ``max_len``."""
    groups: list[list[datetime]] = []
    for start in sorted(set(starts)):
        if groups and start - groups[-1][-1] == step and len(groups[-1]) < max(1, max_len):
            groups[-1].append(start)
        else:
            groups.append([start])
    return groups


def request_groups(
    starts: Iterable[datetime], step: timedelta, max_len: int, min_backfill: int
) -> list[list[datetime]]:
    """:func:`contiguous` ranges; one of fewer than ``min_backfill`` partitions becomes single runs."""
    out: list[list[datetime]] = []
    for group in contiguous(starts, step, max_len):
        out += [group] if len(group) >= max(2, min_backfill) else [[start] for start in group]
    return out


def make_request(
    request: Request,
    keys: Sequence[str],
    partitions_def: dg.PartitionsDefinition,
    asset_keys: Sequence[dg.AssetKey],
    kind: str,
    as_backfill: bool,
    extra_tags: Mapping[str, str] | None = None,
) -> dg.RunRequest:
    """The Dagster request for ``request`` over ``keys`` (one partition: a run; a range: a backfill).

    Tags: the request id (how the sensor finds the run, its retries and the backfill again), the Spark
    kind, and, when every partition lies in one UTC day, that day (the run queue's day lock).
    """
    tags = {REQUEST_TAG: request.id, SPARK_RUN_TAG: kind, **(extra_tags or {})}
    days = {k[:10] for k in keys}
    if len(days) == 1:
        tags[DAY_TAG] = days.pop()
    if as_backfill:
        subset = partitions_def.subset_with_partition_keys(list(keys))
        graph_subset = AssetGraphSubset(partitions_subsets_by_asset_key={k: subset for k in asset_keys})
        return dg.RunRequest.for_asset_graph_subset(graph_subset, tags=tags)
    (key,) = keys
    return dg.RunRequest(partition_key=key, run_key=request.id, tags=tags)


def requested_partitions(request: dg.RunRequest) -> list[str]:
    """The partition keys a sensor's request covers: its partition, or every partition of its backfill."""
    if request.asset_graph_subset is None:
        return [request.partition_key] if request.partition_key else []
    keys: set[str] = set()
    for subset in request.asset_graph_subset.partitions_subsets_by_asset_key.values():
        keys.update(subset.get_partition_keys())
    return sorted(keys)

"""What every Spark-built, time-partitioned asset of the lake shares, declared once.

Each silver and gold asset is computed by Spark into Parquet partitioned like its partitions, owned by
the data platform, grouped by its layer, run as one single-run backfill in the Spark pool, and shows
its column schema (``schemas.BY_ASSET``) in the UI. Silver is partitioned by hour and gold by day.
``lake_asset`` is ``dg.asset`` with those settings; ``lake_spec`` is the same for an output of a
multi-asset, whose decorator takes ``run_settings``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import dagster as dg

from iot_pipeline.assets import schemas
from iot_pipeline.assets.keys import GROUP_GOLD, GROUP_SILVER, OWNERS
from iot_pipeline.assets.partitions import DAILY, HOURLY
from iot_pipeline.resources.spark import SPARK_POOL

# layer (the key's first part) -> group, partitions and the Hive partition columns
LAYERS = {
    "silver": (GROUP_SILVER, HOURLY, "event_date, event_hour"),
    "gold": (GROUP_GOLD, DAILY, "event_date"),
}


def partitions_of(key: dg.AssetKey) -> dg.TimeWindowPartitionsDefinition:
    return LAYERS[key.path[0]][1]


def run_settings(key: dg.AssetKey) -> dict[str, Any]:
    """How a lake asset runs: a range of partitions is one run, and Spark runs one at a time."""
    return {
        "partitions_def": partitions_of(key),
        "backfill_policy": dg.BackfillPolicy.single_run(),
        "pool": SPARK_POOL,
    }


def _described(key: dg.AssetKey, code_version: str, kinds: Iterable[str]) -> dict[str, Any]:
    group, _, partitioned_by = LAYERS[key.path[0]]
    return {
        "group_name": group,
        "kinds": {"spark", "parquet", *kinds},
        "owners": OWNERS,
        "code_version": code_version,
        "metadata": {"dagster/column_schema": schemas.BY_ASSET[key], "partitioned_by": partitioned_by},
    }


def lake_asset(
    key: dg.AssetKey, *, deps: list[dg.AssetKey], code_version: str, kinds: Iterable[str] = (), **more: Any
) -> Callable[..., dg.AssetsDefinition]:
    """``@dg.asset`` for a lake dataset; ``more`` (e.g. a freshness policy) is passed through."""
    return dg.asset(key=key, deps=deps, **run_settings(key), **_described(key, code_version, kinds), **more)


def lake_spec(
    key: dg.AssetKey, *, deps: list[dg.AssetKey], code_version: str, description: str, **more: Any
) -> dg.AssetSpec:
    """One output of a multi-asset that writes lake datasets."""
    return dg.AssetSpec(key, deps=deps, description=description, **_described(key, code_version, ()), **more)

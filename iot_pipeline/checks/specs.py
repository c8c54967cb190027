"""Partitioned asset check specs: each check result is recorded against the partition it checked."""

from __future__ import annotations

import warnings

import dagster as dg


def check_spec(
    name: str,
    asset: dg.AssetKey,
    partitions_def: dg.PartitionsDefinition,
    *,
    blocking: bool,
    description: str,
) -> dg.AssetCheckSpec:
    # partitions_def on a check spec is a preview API in Dagster 1.13; its warning is noise on every load.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dg.AssetCheckSpec(
            name, asset=asset, blocking=blocking, description=description, partitions_def=partitions_def
        )

"""The lake root as a Dagster resource."""

from __future__ import annotations

import dagster as dg

from iot_pipeline.storage.layout import DEFAULT_LAKE_ROOT, LakeLayout, normalize_root


class LakeResource(dg.ConfigurableResource):
    """Root URI of the lake: a local directory (default), ``file://`` or ``s3a://bucket/prefix``."""

    root: str = DEFAULT_LAKE_ROOT

    @property
    def layout(self) -> LakeLayout:
        return LakeLayout(normalize_root(self.root))

"""A blocking multi-asset check per pandera model: one read and one validation, one result per check.

Every model check of the project has the same shape, so it is declared as data: which asset, which
dataset and model, and which of the model's rules each named check reports. The first check without
rules reports the model's structure and every rule no other check claims.
"""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import dagster as dg
import pandera.pyspark as pa

from iot_pipeline.assets.lake_assets import partitions_of
from iot_pipeline.assets.partitions import DAILY
from iot_pipeline.checks.reading import read_days, read_hours, window_label
from iot_pipeline.checks.results import result_for
from iot_pipeline.checks.specs import check_spec
from iot_pipeline.checks.validation import validate
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import SparkResource
from iot_pipeline.storage.layout import LakeLayout


@dataclass(frozen=True)
class RuleCheck:
    """One named check: the model rules whose failures fail it (none: structure and unclaimed rules)."""

    name: str
    description: str
    rules: tuple[str, ...] = ()


def model_checks(
    name: str,
    asset: dg.AssetKey,
    dataset: Callable[[LakeLayout], str],
    model: Callable[[], pa.DataFrameSchema],
    checks: Sequence[RuleCheck],
    key_columns: list[str],
) -> dg.AssetChecksDefinition:
    """The checks of ``asset``'s partition(s) against ``model``, read from ``dataset(layout)``."""
    partitions_def = partitions_of(asset)
    read = read_days if partitions_def == DAILY else read_hours
    claimed = {rule for check in checks for rule in check.rules}
    specs = [
        check_spec(c.name, asset, partitions_def, blocking=True, description=c.description) for c in checks
    ]

    @dg.multi_asset_check(name=name, specs=specs)
    def _checks(
        context: dg.AssetCheckExecutionContext, spark: SparkResource, lake: LakeResource
    ) -> Iterator[dg.AssetCheckResult]:
        window = context.partition_time_window
        df = read(spark.spark_session, dataset(lake.layout), window)
        report = validate(df, model()) if df is not None else None
        label = window_label(window)
        for check in checks:
            if check.rules:
                rules: list[str] | None = list(check.rules)
            else:
                rules = None if report is None else [r for r in report.failures if r not in claimed]
            yield result_for(
                check.name,
                report,
                rules,
                include_schema=not check.rules,
                window=label,
                key_columns=key_columns,
            )

    return _checks

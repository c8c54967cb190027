"""The instance settings the sensors rely on: the local instance `make run` writes and the deployed one."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.instance.config import PoolGranularity
from dagster._core.run_coordinator.queued_run_coordinator import QueuedRunCoordinator

from iot_pipeline.assets import ASSETS
from iot_pipeline.resources.spark import SPARK_POOL
from iot_pipeline.services.local_cli import LOCAL_YAML_HEADER, write_local_instance_yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "dagster.yaml"


def test_the_local_instance_limits_spark_runs_per_partition_and_retries(tmp_path: Path) -> None:
    assert write_local_instance_yaml(tmp_path / "dagster.yaml", {})
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        config = instance.get_concurrency_config()
        assert config.pool_config.pool_granularity == PoolGranularity.RUN
        assert config.pool_config.default_pool_limit == 1
        keys = {limit["key"] for limit in config.run_queue_config.tag_concurrency_limits}
        assert keys == {"dagster/partition", "iot-pipeline/day"}
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2


def test_the_local_file_is_regenerated_only_while_it_is_ours(tmp_path: Path) -> None:
    path = tmp_path / "dagster.yaml"
    path.write_text("telemetry:\n  enabled: false\n")  # what earlier versions wrote: replaced
    assert write_local_instance_yaml(path, {"IOT_SPARK_RUN_LIMIT": "2"})
    assert path.read_text().startswith(LOCAL_YAML_HEADER) and "default_limit: 2" in path.read_text()
    path.write_text("telemetry:\n  enabled: true\n")  # the user's own file: left alone
    assert not write_local_instance_yaml(path, {})
    with pytest.raises(ValueError, match="IOT_SPARK_RUN_LIMIT"):
        (tmp_path / "new.yaml").unlink(missing_ok=True)
        write_local_instance_yaml(tmp_path / "new.yaml", {"IOT_SPARK_RUN_LIMIT": "0"})


def test_local_and_deployed_instances_apply_the_same_rules(tmp_path: Path) -> None:
    write_local_instance_yaml(tmp_path / "dagster.yaml", {})
    local = yaml.safe_load((tmp_path / "dagster.yaml").read_text())
    deployed = yaml.safe_load(DEPLOY.read_text())
    assert local["concurrency"]["pools"]["granularity"] == deployed["concurrency"]["pools"]["granularity"]
    assert (
        local["concurrency"]["runs"]["tag_concurrency_limits"]
        == deployed["concurrency"]["runs"]["tag_concurrency_limits"]
    )
    assert local["run_retries"] == deployed["run_retries"]


def test_every_spark_asset_is_in_the_spark_pool() -> None:
    pools = {
        key.to_user_string(): asset.node_def.pools
        for asset in ASSETS
        if isinstance(asset, dg.AssetsDefinition) and asset.is_executable
        for key in asset.keys
    }
    spark_assets = {k for k in pools if k.startswith(("silver/", "gold/"))}
    assert len(spark_assets) == 5 and all(pools[k] == {SPARK_POOL} for k in spark_assets)

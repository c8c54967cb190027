"""The asset code on a real distributed engine: a Spark standalone master + worker vs ``local[2]``.

Both materialisations run in their own subprocess (``cluster_materialize``): the suite's shared local
session would otherwise be reused by ``getOrCreate`` and the cluster never touched. The lakes are
local directories; master, worker, executors and driver share this machine, so the paths agree.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from iot_pipeline.services.spark_cluster import SparkStandaloneCluster
from iot_pipeline.testing.bronze import generate_bronze, write_bronze

pytestmark = [pytest.mark.spark, pytest.mark.slow]

HOUR_KEY, DAY_KEY = "2026-02-05-14:00", "2026-02-05"
REPO = Path(__file__).resolve().parents[2]
OUTPUTS = {
    "silver/events": ("event_id",),
    "silver/device_minute_stats": ("device_id", "window_start"),
    "gold/daily_event_duration_p95": ("event_date", "device_type"),
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> SparkStandaloneCluster:
    c = SparkStandaloneCluster.on_free_ports(tmp_path_factory.mktemp("spark_cluster"))
    c.start()
    yield c
    c.stop()


def _materialize(master: str, lake: Path) -> float:
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "iot_pipeline_tests.integration.cluster_materialize", master, str(lake),
         HOUR_KEY, DAY_KEY],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, f"{master} run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return time.monotonic() - t0


def _table(lake: Path, key: str) -> pa.Table:
    path = lake.joinpath(*key.split("/"))
    table = pq.read_table(path)
    # Hive partition columns come back dictionary-encoded; decode them so they sort and compare.
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(i, field.name, table[field.name].cast(field.type.value_type))
    return table.select(sorted(table.column_names)).sort_by([(c, "ascending") for c in OUTPUTS[key]])


def _assert_rows_equal(cluster_rows: list[dict], local_rows: list[dict], key: str) -> None:
    assert len(cluster_rows) == len(local_rows) > 0, key
    for i, (a, b) in enumerate(zip(cluster_rows, local_rows, strict=True)):
        for col, va in a.items():
            vb = b[col]
            if isinstance(va, float) and isinstance(vb, float):
                # Aggregation order differs across executors; sums may differ in the last bits.
                assert (math.isnan(va) and math.isnan(vb)) or va == pytest.approx(vb, rel=1e-12), (
                    key,
                    i,
                    col,
                )
            else:
                assert va == vb, (key, i, col)


def test_assets_on_standalone_cluster_equal_local_run(
    cluster: SparkStandaloneCluster, tmp_path: Path
) -> None:
    batch = generate_bronze(
        datetime(2026, 2, 5, 14, tzinfo=timezone.utc),
        1,
        {"temperature": 1200, "humidity": 650, "smoke": 150},
        seed=41,
        duplicate_fraction=0.04,
    )
    lakes = {"cluster": tmp_path / "cluster_lake", "local": tmp_path / "local_lake"}
    for lake in lakes.values():
        write_bronze(batch.rows, lake / "bronze" / "events", files_per_hour=3)

    seconds = {
        "cluster": _materialize(cluster.master_url, lakes["cluster"]),
        "local": _materialize("local[2]", lakes["local"]),
    }
    print(f"materialise seconds: {seconds}")

    # The work really ran on the cluster: the master saw the application finish and the worker
    # launched executors for it (local mode has neither).
    state = cluster.master_state()
    assert state is not None and state["aliveworkers"] == 1
    apps = [a for a in state["completedapps"] if a["name"] == "iot-pipeline"]
    assert len(apps) == 1, state["completedapps"]
    executor_logs = list((cluster.work_dir / apps[0]["id"]).glob("*/stderr"))
    assert executor_logs, f"no executor ran under {cluster.work_dir}"

    for key in OUTPUTS:
        on_cluster, local = _table(lakes["cluster"], key), _table(lakes["local"], key)
        assert on_cluster.schema.equals(local.schema), key
        _assert_rows_equal(on_cluster.to_pylist(), local.to_pylist(), key)

    silver = _table(lakes["local"], "silver/events")
    assert silver.num_rows == batch.unique.num_rows == 2000
    gold = _table(lakes["local"], "gold/daily_event_duration_p95")
    assert gold["device_type"].to_pylist() == ["humidity", "temperature"]

"""deploy/dagster.yaml: Dagster's own config validation, then a real instance on a real PostgreSQL.

The second test also runs the Grafana dashboard's SQL against the tables Dagster created, after a
real run recorded asset check results, so the dashboard's queries match Dagster 1.13's schema.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster._core.run_coordinator.queued_run_coordinator import QueuedRunCoordinator

from iot_pipeline_tests.ops.postgres import Postgres, running_postgres
from iot_pipeline_tests.ops.support import DEPLOY

DASHBOARD = DEPLOY / "grafana" / "dashboards" / "iot-pipeline.json"


@pytest.fixture
def dagster_home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    return home


def test_instance_config_passes_dagsters_validation(
    dagster_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in Postgres("127.0.0.1", 5432, "dagster", "x", "dagster").env().items():
        monkeypatch.setenv(key, value)
    config, custom_class = dagster_instance_config(str(dagster_home))
    assert custom_class is None
    postgres_db = config["storage"]["postgres"]["postgres_db"]
    assert {"hostname", "port", "username", "password", "db_name"} <= set(postgres_db)
    assert postgres_db["scheme"] == "postgresql+psycopg2"
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["telemetry"]["enabled"] is False
    assert config["retention"]["sensor"]["purge_after_days"]["skipped"] == 7
    # The coordinator's own config schema (checked by Dagster only when the instance is built).
    result = process_config(QueuedRunCoordinator.config_type(), config["run_coordinator"]["config"])
    assert result.success, result.errors
    limits = result.value["tag_concurrency_limits"]
    assert {"key": "iot-pipeline/spark", "limit": 2} in limits


def test_no_secret_is_written_in_the_instance_file() -> None:
    text = (DEPLOY / "dagster.yaml").read_text()
    for key in ("hostname", "port", "username", "password", "db_name"):
        assert re.search(rf"{key}:\n\s+env: DAGSTER_PG_", text), f"{key} must come from the environment"


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as server:
        yield server


def _grafana_sql(raw: str) -> str:
    """The dashboard's SQL with the Grafana macros it uses expanded the way Grafana does for PostgreSQL."""
    raw = re.sub(
        r"\$__timeGroupAlias\((\w+), '1h'\)", r'floor(extract(epoch from \1)/3600)*3600 AS "time"', raw
    )
    raw = re.sub(
        r"\$__timeFilter\((\w+)\)", r"\1 BETWEEN '2000-01-01T00:00:00Z' AND '2100-01-01T00:00:00Z'", raw
    )
    assert "$__" not in raw, f"unexpanded Grafana macro in {raw}"
    return raw


def _dashboard_sql() -> dict[str, str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return {p["title"]: t["rawSql"] for p in panels for t in p.get("targets", []) if "rawSql" in t}


def test_real_instance_on_postgres_records_checks_the_dashboard_reads(
    postgres: Postgres, dagster_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg2

    for key, value in postgres.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))

    @dg.asset(
        key=["ops_test", "events"],
        check_specs=[
            dg.AssetCheckSpec("rows_present", asset=["ops_test", "events"]),
            dg.AssetCheckSpec("no_negative_duration", asset=["ops_test", "events"]),
        ],
    )
    def events() -> Iterator[dg.Output | dg.AssetCheckResult]:
        yield dg.Output(3)
        yield dg.AssetCheckResult(check_name="rows_present", passed=True)
        yield dg.AssetCheckResult(
            check_name="no_negative_duration", passed=False, severity=dg.AssetCheckSeverity.WARN
        )

    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 6
        assert {"key": "iot-pipeline/spark", "limit": 2} in queue.tag_concurrency_limits
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = dg.materialize([events], instance=instance, tags={"iot-pipeline/spark": "ops-test"})
        assert result.success
    finally:
        instance.dispose()

    sql = _dashboard_sql()
    with (
        psycopg2.connect(
            host=postgres.host,
            port=postgres.port,
            user=postgres.user,
            password=postgres.password,
            dbname=postgres.db,
        ) as conn,
        conn.cursor() as cur,
    ):
        cur.execute(_grafana_sql(sql["Latest result per asset check"]))
        columns = [d.name for d in cur.description]
        latest = {
            row[columns.index("check_name")]: dict(zip(columns, row, strict=True)) for row in cur.fetchall()
        }
        assert set(latest) == {"rows_present", "no_negative_duration"}
        assert latest["rows_present"]["status"] == "SUCCEEDED"
        assert latest["no_negative_duration"]["status"] == "FAILED"
        assert latest["no_negative_duration"]["severity"] == "AssetCheckSeverity.WARN"
        assert latest["rows_present"]["asset"] == "ops_test/events"

        cur.execute(_grafana_sql(sql["Asset check results per hour"]))
        rows = cur.fetchall()
        assert [(passed, failed) for _, passed, failed in rows] == [(1, 1)]

        cur.execute(_grafana_sql(sql["Failed asset checks"]))
        failed = cur.fetchall()
        assert [row[2] for row in failed] == ["no_negative_duration"]

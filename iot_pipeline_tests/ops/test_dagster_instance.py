"""deploy/dagster.yaml: Dagster's own config validation, then a real instance on a real PostgreSQL.

The real-instance test sets the server up the way the compose stack does: the superuser runs the
``postgres-init`` service's own command (roles and database), Dagster runs as its own non-superuser
role, the command runs again (Grafana's read grant), and the Grafana dashboard's SQL runs as Grafana's
role, which must be refused everything but reading asset check results.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster._core.run_coordinator.queued_run_coordinator import QueuedRunCoordinator

from iot_pipeline_tests.ops.postgres import Postgres, bin_dir, running_postgres
from iot_pipeline_tests.ops.support import DEPLOY, REPO, env_example_with_secrets, instance_rules

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
    assert instance_rules()["max_concurrent_runs"], "the instance must bound the runs in flight"


def test_no_secret_is_written_in_the_instance_file() -> None:
    text = (DEPLOY / "dagster.yaml").read_text()
    for key in ("hostname", "port", "username", "password", "db_name"):
        assert re.search(rf"{key}:\n\s+env: DAGSTER_PG_", text), f"{key} must come from the environment"


ROLES = {"dagster": "dagster", "grafana": "grafana_reader"}


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """The server as the compose stack has it: only the superuser and its database at first."""
    with running_postgres(user="postgres", password="ops-test-admin", db="postgres") as server:
        yield server


def run_postgres_init(server: Postgres, secrets: dict[str, str]) -> None:
    """The compose service postgres-init's own command and environment, pointed at ``server``."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    service = compose["services"]["postgres-init"]
    command = service["command"][0].replace("$$", "$")
    env = {
        **os.environ,
        **{k: str(v) for k, v in service["environment"].items()},
        "PATH": f"{bin_dir()}:{os.environ['PATH']}",
        "PGHOST": server.host,
        "PGPORT": str(server.port),
        "PGUSER": server.user,
        "PGPASSWORD": server.password,
        "DAGSTER_PG_USER": ROLES["dagster"],
        "DAGSTER_PG_PASSWORD": secrets["DAGSTER_PG_PASSWORD"],
        "DAGSTER_PG_DB": "dagster",
        "GRAFANA_PG_USER": ROLES["grafana"],
        "GRAFANA_PG_PASSWORD": secrets["GRAFANA_PG_PASSWORD"],
    }
    result = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"postgres-init failed:\n{result.stdout}{result.stderr}"


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

    secrets = env_example_with_secrets()
    run_postgres_init(postgres, secrets)
    dagster_role = Postgres(
        postgres.host, postgres.port, ROLES["dagster"], secrets["DAGSTER_PG_PASSWORD"], "dagster"
    )
    for key, value in dagster_role.env().items():
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

    rules = instance_rules()
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == rules["max_concurrent_runs"]
        assert len(queue.tag_concurrency_limits) == len(rules["tag_concurrency_limits"])
        for limit in rules["tag_concurrency_limits"]:
            assert limit in queue.tag_concurrency_limits
        if rules["pool_default_limit"] is not None:
            pools = instance.get_concurrency_config().pool_config
            assert pools.default_pool_limit == rules["pool_default_limit"]
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = dg.materialize([events], instance=instance, tags={"iot-pipeline/spark": "ops-test"})
        assert result.success
    finally:
        instance.dispose()
    run_postgres_init(postgres, secrets)  # as postgres-grants does, once Dagster's tables exist

    def connect(user: str, password: str, db: str = "dagster") -> psycopg2.extensions.connection:
        return psycopg2.connect(
            host=postgres.host, port=postgres.port, user=user, password=password, dbname=db
        )

    with connect(postgres.user, postgres.password, "postgres") as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = ANY(%s)",
            (list(ROLES.values()),),
        )
        rights = {row[0]: row[1:] for row in cur.fetchall()}
    assert rights == {name: (False, False, False) for name in ROLES.values()}

    sql = _dashboard_sql()
    with connect(ROLES["grafana"], secrets["GRAFANA_PG_PASSWORD"]) as conn, conn.cursor() as cur:
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

    # Grafana's role reads asset check results and nothing else.
    for statement in (
        "SELECT count(*) FROM runs",
        "SELECT count(*) FROM event_logs",
        "DELETE FROM asset_check_executions",
        "CREATE TABLE grafana_owned (x int)",
    ):
        with (
            connect(ROLES["grafana"], secrets["GRAFANA_PG_PASSWORD"]) as conn,
            conn.cursor() as cur,
            pytest.raises(psycopg2.errors.InsufficientPrivilege),
        ):
            cur.execute(statement)
    with pytest.raises(psycopg2.OperationalError, match="permission denied"):
        connect(ROLES["grafana"], secrets["GRAFANA_PG_PASSWORD"], "postgres")

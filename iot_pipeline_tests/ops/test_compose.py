"""docker-compose.yml, validated by a real Compose implementation (Debian's docker-compose) without an engine."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from iot_pipeline_tests.ops.support import (
    BRIEF_ENV_VARS,
    COMPOSE_SECRETS,
    REPO,
    env_example_with_secrets,
    read_env_file,
    require_tool,
    write_env_file,
)

COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"

# The services the README names: every one must exist in the stack.
REQUIRED_SERVICES = (
    "kafka",
    "kafka-init",
    "minio",
    "minio-init",
    "postgres",
    "dagster-webserver",
    "dagster-daemon",
    "code-location",
    "stream",
    "simulator",
    "prometheus",
    "grafana",
)
ONE_SHOT_SERVICES = ("kafka-init", "minio-init", "postgres-init", "postgres-grants")
STATEFUL_VOLUMES = {
    "kafka": "/var/lib/kafka/data",
    "minio": "/data",
    "postgres": "/var/lib/postgresql/data",
    "prometheus": "/prometheus",
    "grafana": "/var/lib/grafana",
}


def compose_variables() -> set[str]:
    """Variables docker-compose.yml interpolates (``$${X}`` is an escaped, container-side reference)."""
    return set(re.findall(r"(?<!\$)\$\{(\w+)", COMPOSE_FILE.read_text()))


def volume_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each mount in docker-compose 1.29's short ``config`` syntax."""
    mounts = []
    for entry in service.get("volumes", []):
        source, target = entry.split(":")[:2]
        mounts.append((source, target))
    return mounts


def run_compose_config(env_file: Path) -> subprocess.CompletedProcess[str]:
    """``docker-compose config`` for the repository's file, interpolated from ``env_file`` only."""
    docker_compose = require_tool("docker-compose", "docker-compose")
    # The test must see .env.example's values, not whatever the developer's shell exports.
    names = set(read_env_file(ENV_EXAMPLE)) | compose_variables()
    env = {k: v for k, v in os.environ.items() if k not in names and not k.startswith("COMPOSE_")}
    return subprocess.run(
        [docker_compose, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )


def compose_config(env_file: Path) -> dict[str, Any]:
    result = run_compose_config(env_file)
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The stack as .env.example configures it, once its empty secrets are filled in."""
    env_file = tmp_path_factory.mktemp("compose") / "test.env"
    return compose_config(write_env_file(env_file, env_example_with_secrets()))


def test_every_named_service_exists(config: dict[str, Any]) -> None:
    missing = [s for s in REQUIRED_SERVICES if s not in config["services"]]
    assert not missing, f"services missing from docker-compose.yml: {missing}"


def test_every_build_uses_a_dockerfile_in_the_repository(config: dict[str, Any]) -> None:
    built = {name: svc["build"] for name, svc in config["services"].items() if "build" in svc}
    assert "code-location" in built
    for name, build in built.items():
        context = Path(build["context"]).resolve()
        assert context == REPO or REPO in context.parents, (
            f"{name}: build context {context} outside the repository"
        )
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"


def test_images_are_built_or_pinned(config: dict[str, Any]) -> None:
    for name, svc in config["services"].items():
        if "build" in svc:
            continue
        image = svc.get("image", "")
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin an image tag, got {image!r}"


def test_long_running_services_have_health_checks_and_restart(config: dict[str, Any]) -> None:
    for name, svc in config["services"].items():
        if name in ONE_SHOT_SERVICES:
            assert svc.get("restart") == "no", f"{name} is one-shot and must not restart"
            continue
        test = svc.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"
        assert svc.get("restart") == "unless-stopped", f"{name} should restart unless stopped"


def test_dependencies_wait_for_health_or_completion(config: dict[str, Any]) -> None:
    services = config["services"]
    for name, svc in services.items():
        for dep, spec in svc.get("depends_on", {}).items():
            expected = "service_completed_successfully" if dep in ONE_SHOT_SERVICES else "service_healthy"
            assert spec["condition"] == expected, f"{name} -> {dep}: {spec}"
    assert {"kafka-init", "minio-init", "postgres-init"} <= set(services["stream"]["depends_on"])


def test_stateful_services_use_named_volumes(config: dict[str, Any]) -> None:
    named = set(config.get("volumes", {}))
    for name, target in STATEFUL_VOLUMES.items():
        sources = [s for s, t in volume_mounts(config["services"][name]) if t == target]
        assert sources and sources[0] in named, f"{name}: no named volume at {target}"


def test_bind_mounted_files_exist(config: dict[str, Any]) -> None:
    for name, svc in config["services"].items():
        for source, _ in volume_mounts(svc):
            if source.startswith("/"):
                assert Path(source).exists(), f"{name}: {source} does not exist"
                assert REPO in Path(source).parents, f"{name}: {source} is outside the repository"


def test_pipeline_services_get_the_lake_on_minio_and_the_dagster_instance(config: dict[str, Any]) -> None:
    for name in ("code-location", "dagster-webserver", "dagster-daemon", "stream", "simulator"):
        env = config["services"][name]["environment"]
        assert env["IOT_LAKE_ROOT"] == "s3a://iot-lake/lake", name
        assert env["IOT_S3_ENDPOINT"] == "http://minio:9000", name
        assert env["IOT_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092", name
        assert env["DAGSTER_PG_HOST"] == "postgres", name
        missing = [v for v in BRIEF_ENV_VARS if v not in env]
        assert not missing, f"{name} lacks {missing}"


def test_commands_run_the_named_entry_points(config: dict[str, Any]) -> None:
    services = config["services"]
    stream = services["stream"]["command"]
    assert stream[:3] == ["dagster", "job", "execute"]
    assert "stream_to_bronze_job" in stream and "iot_pipeline.definitions" in stream
    assert services["simulator"]["command"] == [
        "iot-pipeline",
        "simulate",
        "--rate",
        "200",
        "--metrics-port",
        "9108",
    ]
    assert services["code-location"]["command"][:3] == ["dagster", "code-server", "start"]


def test_dagster_commands_use_options_the_installed_cli_has(config: dict[str, Any]) -> None:
    """Every ``--option`` of the Dagster commands exists in the installed Dagster's ``--help``."""
    bin_dir = Path(sys.executable).parent
    checks = {}
    for name in ("code-location", "dagster-webserver", "dagster-daemon", "stream"):
        command = config["services"][name]["command"]
        # The sub-command path is the words before the first option.
        path = command[: command.index(next(w for w in command if w.startswith("-")))]
        executable = bin_dir / path[0]
        assert executable.exists(), f"{executable} is missing"
        # Start all four at once: each CLI takes seconds to import Dagster.
        process = subprocess.Popen(
            [str(executable), *path[1:], "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        checks[name] = (path, command, process)
    for name, (path, command, process) in checks.items():
        help_text, _ = process.communicate(timeout=180)
        for option in (w for w in command if w.startswith("--")):
            assert option in help_text, f"{name}: {' '.join(path)} has no option {option}"


def test_env_example_lists_every_variable(config: dict[str, Any]) -> None:
    documented = read_env_file(ENV_EXAMPLE)
    missing = [v for v in BRIEF_ENV_VARS if v not in documented]
    assert not missing, f".env.example lacks {missing}"
    undocumented = sorted(compose_variables() - set(documented))
    assert not undocumented, f"docker-compose.yml reads variables .env.example does not list: {undocumented}"
    assert documented["IOT_LAKE_ROOT"].startswith(f"s3a://{documented['IOT_LAKE_BUCKET']}/")


def test_configuration_comes_from_the_env_file(tmp_path: Path) -> None:
    values = env_example_with_secrets()
    values.update(DAGSTER_PG_DB="dagster_other", IOT_SIM_RATE="50", IOT_LAKE_ROOT="s3a://other-bucket/lake")
    services = compose_config(write_env_file(tmp_path / "test.env", values))["services"]
    assert services["postgres-init"]["environment"]["DAGSTER_PG_DB"] == "dagster_other"
    assert services["stream"]["environment"]["DAGSTER_PG_DB"] == "dagster_other"
    assert services["stream"]["environment"]["DAGSTER_PG_PASSWORD"] == values["DAGSTER_PG_PASSWORD"]
    assert services["simulator"]["command"][3] == "50"
    assert services["code-location"]["environment"]["IOT_LAKE_ROOT"] == "s3a://other-bucket/lake"


def test_kraft_cluster_id_is_a_kafka_uuid(config: dict[str, Any]) -> None:
    cluster_id = config["services"]["kafka"]["environment"]["CLUSTER_ID"]
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_published_ports_bind_to_loopback(config: dict[str, Any]) -> None:
    for name, svc in config["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_dockerfile_copies_files_that_exist() -> None:
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.M)
    assert "openjdk-17-jre-headless" in dockerfile
    assert re.search(r"^RUN python /opt/iot-pipeline/prefetch_spark_jars\.py$", dockerfile, re.M)
    for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile, re.M):
        sources = [w for w in line.split() if not w.startswith("--")][:-1]
        for source in sources:
            assert (REPO / source).exists(), f"Dockerfile copies {source}, which is not in the repository"


def test_env_example_leaves_every_secret_empty() -> None:
    documented = read_env_file(ENV_EXAMPLE)
    for name in COMPOSE_SECRETS:
        assert documented.get(name) == "", f".env.example must leave {name} empty (no shared default secret)"
    for path in (ENV_EXAMPLE, COMPOSE_FILE):
        assert "change-me" not in path.read_text(), f"{path.name} still carries a placeholder password"


def test_compose_refuses_to_start_without_each_secret(tmp_path: Path) -> None:
    shipped = run_compose_config(ENV_EXAMPLE)
    assert shipped.returncode != 0, ".env.example as shipped (empty secrets) must not start the stack"
    for name in COMPOSE_SECRETS:
        values = env_example_with_secrets()
        values[name] = ""
        result = run_compose_config(write_env_file(tmp_path / f"{name}.env", values))
        assert result.returncode != 0, f"the stack starts without {name}"
        assert f"set {name} in .env" in result.stderr, result.stderr


def make_env_snippet() -> str:
    """The shell block of docs/deploy.md between ``<!-- make-env -->`` markers."""
    docs = (REPO / "docs" / "deploy.md").read_text()
    block = re.search(r"<!-- make-env -->\s*```bash\n(.*?)```\s*<!-- /make-env -->", docs, re.S)
    assert block, "docs/deploy.md lacks the make-env block"
    return block.group(1)


def test_the_documented_command_makes_a_working_env_file(tmp_path: Path) -> None:
    (tmp_path / ".env.example").write_text(ENV_EXAMPLE.read_text())
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", make_env_snippet()],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    values = read_env_file(tmp_path / ".env")
    filled = [values[name] for name in COMPOSE_SECRETS]
    assert all(len(v) >= 16 for v in filled), "every secret gets a long random value"
    assert len(set(filled)) == len(filled), "each secret gets its own value"
    assert compose_config(tmp_path / ".env")["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]


def test_each_consumer_has_its_own_least_privilege_credentials(config: dict[str, Any]) -> None:
    services = config["services"]
    pipeline = services["code-location"]["environment"]
    postgres = services["postgres"]["environment"]
    minio = services["minio"]["environment"]
    grafana = services["grafana"]["environment"]
    # PostgreSQL: the superuser is not Dagster's role, and Grafana has a third role.
    assert postgres["POSTGRES_USER"] != pipeline["DAGSTER_PG_USER"]
    assert len({postgres["POSTGRES_USER"], pipeline["DAGSTER_PG_USER"], grafana["GRAFANA_PG_USER"]}) == 3
    # MinIO: the pipeline's key is not the root user.
    assert minio["MINIO_ROOT_USER"] != pipeline["AWS_ACCESS_KEY_ID"]
    assert minio["MINIO_ROOT_PASSWORD"] != pipeline["AWS_SECRET_ACCESS_KEY"]
    # Each secret reaches only the containers that use it.
    allowed = {
        postgres["POSTGRES_PASSWORD"]: {"postgres", "postgres-init", "postgres-grants"},
        minio["MINIO_ROOT_PASSWORD"]: {"minio", "minio-init"},
        pipeline["DAGSTER_PG_PASSWORD"]: {
            "code-location",
            "dagster-webserver",
            "dagster-daemon",
            "stream",
            "simulator",
            "freshness-metrics",
            "postgres-init",
            "postgres-grants",
        },
        grafana["GRAFANA_PG_PASSWORD"]: {"grafana", "postgres-init", "postgres-grants"},
    }
    for secret, services_allowed in allowed.items():
        holders = {
            n for n, s in services.items() if secret in map(str, (s.get("environment") or {}).values())
        }
        assert holders <= services_allowed, f"a secret reaches {sorted(holders - services_allowed)}"
    datasource = (
        REPO / "deploy" / "grafana" / "provisioning" / "datasources" / "datasources.yml"
    ).read_text()
    assert "user: ${GRAFANA_PG_USER}" in datasource and "password: ${GRAFANA_PG_PASSWORD}" in datasource
    # The pipeline's MinIO policy names only the lake bucket and only object/bucket data actions.
    init = services["minio-init"]["environment"]
    policy = json.loads(init["LAKE_POLICY"].replace("BUCKET", init["BUCKET"]))
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert all(a.startswith("s3:") and "*" not in a for a in statement["Action"])
        for resource in statement["Resource"]:
            assert resource in (f"arn:aws:s3:::{init['BUCKET']}", f"arn:aws:s3:::{init['BUCKET']}/*")

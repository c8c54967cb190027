"""Every documented setting works when set: the code location loads, and the value reaches its resource.

"Documented" is read from the files, not listed here: the README's Configuration table, .env.example,
the environment docker-compose.yml gives the pipeline containers, and the env of the Helm values'
code location. Each environment below loads the code location the way a deployment does
(``dagster definitions validate`` in a fresh process), then a second process prints every resource's
config after Dagster resolved its ``EnvVar``s, so a value that loads but is dropped is caught too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from iot_pipeline.resources.kafka_settings import ENV_VARS as KAFKA_ENV_VARS
from iot_pipeline_tests.ops.support import (
    DEPLOY,
    REPO,
    env_example_with_secrets,
    read_env_file,
    write_env_file,
)

BIN = Path(sys.executable).parent
# Variables of the developer's shell that would leak into the loads under test.
_OWN_PREFIXES = ("IOT_", "AWS_", "DAGSTER_", "MINIO_", "GRAFANA_", "POSTGRES_")

# Prints each resource's config as Dagster resolves it at run time (EnvVars read, types checked), the
# Kafka connection every client would use, and the command-line defaults that read the environment.
RESOLVE = """
import json
from dagster._config.post_process import post_process_config
from iot_pipeline.definitions import defs
from iot_pipeline.assets.partitions import HOURLY
from iot_pipeline.resources.kafka_settings import KafkaSettings
from iot_pipeline.ingestion.cli import COMMAND
out = {}
for key, res in defs.resources.items():
    resolved = post_process_config(res._config_schema.config_type, res._convert_to_config_dictionary())
    assert resolved.success, (key, resolved.errors)
    out[key] = resolved.value
out["kafka_client"] = {k: v for k, v in KafkaSettings.from_env().librdkafka().items() if "password" not in k}
out["partitions_start"] = HOURLY.start.strftime("%Y-%m-%d-%H:%M")
out["simulate_metrics_port"] = COMMAND.parser().parse_args([]).metrics_port
print("RESOLVED" + json.dumps(out, default=str))
"""


def clean_env(extra: dict[str, str], tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_PREFIXES)}
    env.update(extra)
    # The image's DAGSTER_HOME does not exist here; an empty home keeps the load off PostgreSQL
    # (tests of the real instance are in test_dagster_instance.py and test_deploy_processes.py).
    home = tmp / "dagster_home"
    home.mkdir(exist_ok=True)
    env["DAGSTER_HOME"] = str(home)
    return env


def load(env: dict[str, str]) -> dict[str, Any]:
    """Validate the code location as a deployment loads it, then resolve every resource's config."""
    validate = subprocess.run(
        [str(BIN / "dagster"), "definitions", "validate", "-m", "iot_pipeline.definitions"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert validate.returncode == 0, f"the code location does not load:\n{validate.stderr[-4000:]}"
    resolve = subprocess.run(
        [sys.executable, "-c", RESOLVE], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert resolve.returncode == 0, resolve.stderr[-4000:]
    line = next(x for x in resolve.stdout.splitlines() if x.startswith("RESOLVED"))
    return json.loads(line.removeprefix("RESOLVED"))


def readme_variables() -> set[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in section.splitlines():
        if line.startswith("|"):  # the variable column; the others hold values such as `PLAINTEXT`
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    names |= set(re.findall(r"variable `([A-Z][A-Z0-9_]+)`", section))
    return names


def compose_pipeline_env(tmp: Path) -> dict[str, str]:
    from iot_pipeline_tests.ops.test_compose import compose_config

    env_file = write_env_file(tmp / "compose.env", env_example_with_secrets())
    return {
        k: str(v) for k, v in compose_config(env_file)["services"]["code-location"]["environment"].items()
    }


def helm_env() -> dict[str, str]:
    """The code location's env in the Helm values: the Secret (.env.example's names) plus ``env``."""
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    env = env_example_with_secrets()
    for item in deployment.get("env", []):
        # valueFrom (the pod IP for SPARK_LOCAL_IP) has no value outside Kubernetes: loopback here.
        env[item["name"]] = item.get("value", "127.0.0.1")
    return env


def test_every_documented_variable_set_to_a_valid_value(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    password_file = tmp_path / "sasl-password"
    password_file.write_text("from-a-file\n")
    valid = {
        **env_example_with_secrets(),
        "IOT_KAFKA_BOOTSTRAP_SERVERS": "broker-1:9093,broker-2:9093",
        "IOT_KAFKA_TOPIC": "events-x",
        "IOT_KAFKA_QUARANTINE_TOPIC": "events-x-bad",
        "IOT_KAFKA_PARTITIONS": "6",
        "IOT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "IOT_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "IOT_KAFKA_SASL_USERNAME": "iot-pipeline",
        "IOT_KAFKA_SASL_PASSWORD": "",
        "IOT_KAFKA_SASL_PASSWORD_FILE": str(password_file),
        "IOT_KAFKA_SSL_CA_LOCATION": str(ca),
        "IOT_KAFKA_SSL_CERTIFICATE_LOCATION": str(ca),
        "IOT_KAFKA_SSL_KEY_LOCATION": str(ca),
        "IOT_KAFKA_SSL_KEY_PASSWORD": "key-secret",
        "IOT_KAFKA_SSL_KEY_PASSWORD_FILE": "",
        "IOT_LAKE_ROOT": "s3a://other-bucket/lake",
        "IOT_LAKE_BUCKET": "other-bucket",
        "IOT_S3_ENDPOINT": "http://objects.example:9000",
        "AWS_REGION": "eu-west-1",
        "IOT_SPARK_MASTER": "spark://spark-master:7077",
        "IOT_SPARK_REMOTE": "sc://spark-connect:15002",
        "IOT_SPARK_CONNECT_WAIT_SECONDS": "15",
        "IOT_SPARK_RUN_LIMIT": "2",
        "IOT_STREAM_TRIGGER_SECONDS": "2.5",
        "IOT_STREAM_METRICS_PORT": "9200",
        "IOT_SIM_METRICS_PORT": "9201",
        "IOT_SIM_RATE": "50",
        "IOT_METRICS_HOST": "0.0.0.0",
        "IOT_PARTITIONS_START": "2026-03-01-00:00",
        "IOT_HOUR_GRACE_MINUTES": "20",
        "IOT_EVENT_FUTURE_TOLERANCE_SECONDS": "120",
        "IOT_EVENT_MAX_AGE_DAYS": "30",
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    documented = (
        readme_variables()
        | set(read_env_file(REPO / ".env.example"))
        | set(compose_pipeline_env(tmp_path))
        | set(helm_env())
        | set(KAFKA_ENV_VARS)
    )
    missing = sorted(documented - set(valid))
    assert not missing, f"documented variables without a test value: {missing}"
    resolved = load(clean_env(valid, tmp_path))
    kafka, streaming, spark = resolved["kafka"], resolved["streaming"], resolved["spark"]
    assert kafka["bootstrap_servers"] == "broker-1:9093,broker-2:9093"
    assert (kafka["topic"], kafka["quarantine_topic"], kafka["partitions"]) == ("events-x", "events-x-bad", 6)
    assert resolved["lake"]["root"] == "s3a://other-bucket/lake"
    assert spark["master"] == "spark://spark-master:7077"
    assert spark["remote"] == "sc://spark-connect:15002"
    assert spark["connect_wait_seconds"] == 15.0
    assert (spark["s3"], spark["s3_endpoint"], spark["s3_region"]) == (
        True,
        "http://objects.example:9000",
        "eu-west-1",
    )
    assert streaming["trigger_seconds"] == 2.5
    assert (streaming["metrics_port"], streaming["metrics_host"]) == (9200, "0.0.0.0")
    assert resolved["sensor_settings"]["grace_minutes"] == 20
    assert resolved["partitions_start"] == "2026-03-01-00:00"
    assert resolved["simulate_metrics_port"] == 9201
    assert resolved["kafka_client"] == {
        "bootstrap.servers": "broker-1:9093,broker-2:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "iot-pipeline",
        "ssl.ca.location": str(ca),
        "ssl.certificate.location": str(ca),
        "ssl.key.location": str(ca),
    }


def test_the_compose_environment_loads(tmp_path: Path) -> None:
    env = compose_pipeline_env(tmp_path)
    resolved = load(clean_env(env, tmp_path))
    assert resolved["kafka"]["bootstrap_servers"] == env["IOT_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert resolved["streaming"]["trigger_seconds"] == float(env["IOT_STREAM_TRIGGER_SECONDS"])
    assert resolved["streaming"]["metrics_host"] == "0.0.0.0"
    assert resolved["spark"]["s3"] is True and resolved["spark"]["s3_path_style"] is True
    assert resolved["sensor_settings"]["grace_minutes"] == int(env["IOT_HOUR_GRACE_MINUTES"])


def test_the_shipped_grace_period_waits_for_the_rows_silver_calls_on_time(tmp_path: Path) -> None:
    """A grace period below silver's late margin closes an hour (when no stream watermark is known)
    while rows silver still calls on time may arrive; each such row then costs the hour a second run."""
    from iot_pipeline.assets.silver_events import LATE_MARGIN_MINUTES

    shipped = {
        ".env.example": read_env_file(REPO / ".env.example"),
        "docker-compose.yml with .env.example": compose_pipeline_env(tmp_path),
    }
    (compose_default,) = re.findall(
        r"\$\{IOT_HOUR_GRACE_MINUTES:-(\d+)\}", (REPO / "docker-compose.yml").read_text()
    )
    shipped["docker-compose.yml without it"] = {"IOT_HOUR_GRACE_MINUTES": compose_default}
    for source, env in shipped.items():
        assert int(env["IOT_HOUR_GRACE_MINUTES"]) >= LATE_MARGIN_MINUTES, source


def test_the_helm_environment_loads(tmp_path: Path) -> None:
    env = helm_env()
    resolved = load(clean_env(env, tmp_path))
    assert resolved["spark"]["master"] == env["IOT_SPARK_MASTER"]
    assert resolved["streaming"]["metrics_port"] == int(env["IOT_STREAM_METRICS_PORT"])


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("IOT_STREAM_TRIGGER_SECONDS", "ten", "IOT_STREAM_TRIGGER_SECONDS='ten' is not a number"),
        ("IOT_STREAM_TRIGGER_SECONDS", "0", "IOT_STREAM_TRIGGER_SECONDS='0' must be >= 0.1"),
        ("IOT_STREAM_METRICS_PORT", "9109.5", "IOT_STREAM_METRICS_PORT='9109.5' is not an integer"),
        ("IOT_KAFKA_PARTITIONS", "0", "IOT_KAFKA_PARTITIONS='0' must be >= 1"),
        ("IOT_KAFKA_SECURITY_PROTOCOL", "TLS", "IOT_KAFKA_SECURITY_PROTOCOL='TLS' is not one of"),
        ("IOT_KAFKA_SECURITY_PROTOCOL", "SASL_SSL", "IOT_KAFKA_SASL_MECHANISM"),
    ],
)
def test_a_bad_value_stops_the_load_naming_the_variable(
    name: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from iot_pipeline.bindings import default_resources

    for key in list(os.environ):
        if key.startswith(_OWN_PREFIXES):
            monkeypatch.delenv(key)
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=re.escape(message)):
        default_resources()


def test_unset_variables_leave_every_resource_at_its_own_field_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Defaults are declared once, on the resources' fields: the bindings add none of their own."""
    from iot_pipeline.bindings import default_resources
    from iot_pipeline.sensors import sensor_resources

    for key in list(os.environ):
        if key.startswith(_OWN_PREFIXES):
            monkeypatch.delenv(key)
    bound = {**default_resources(), **sensor_resources()}
    own = {n: r for n, r in bound.items() if type(r).__module__.startswith("iot_pipeline.")}
    assert {"kafka", "lake", "spark", "streaming", "sensor_settings"} <= set(own)
    for name, resource in own.items():
        fields = type(resource).model_fields
        fresh = type(resource)(**{k: getattr(resource, k) for k, f in fields.items() if f.is_required()})
        for field in fields:
            value = getattr(resource, field)
            if not isinstance(value, dg.ConfigurableResource):
                assert value == getattr(fresh, field), f"{name}.{field}"

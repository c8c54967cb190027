"""Shared facts for the ops tests: repository paths, the brief's fixed metric and variable names, tools."""

from __future__ import annotations

import re
import secrets
import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"

# Prometheus metric names fixed for every producer and consumer of metrics (the project brief).
SIMULATOR_METRICS = frozenset(
    {
        "iot_sim_events_sent_total",
        "iot_sim_delivery_errors_total",
        "iot_sim_bytes_sent_total",
        "iot_sim_active_devices",
        "iot_sim_current_rate_eps",
        "iot_sim_injected_total",
    }
)
STREAM_METRICS = frozenset(
    {
        "iot_stream_input_rows_total",
        "iot_stream_bronze_rows_total",
        "iot_stream_quarantined_rows_total",
        "iot_stream_input_rows_per_second",
        "iot_stream_processed_rows_per_second",
        "iot_stream_batch_duration_seconds",
        "iot_stream_watermark_timestamp_seconds",
        "iot_stream_consumer_lag",
        "iot_stream_end_to_end_latency_seconds",
        "iot_stream_latest_event_hour_timestamp_seconds",
        "iot_stream_last_progress_timestamp_seconds",
    }
)
HISTOGRAMS = frozenset({"iot_stream_batch_duration_seconds", "iot_stream_end_to_end_latency_seconds"})
FRESHNESS_METRICS = frozenset(
    {
        "iot_dagster_asset_freshness_state",
        "iot_dagster_asset_freshness_updated_timestamp_seconds",
        "iot_dagster_asset_last_materialization_timestamp_seconds",
    }
)
KNOWN_METRICS = SIMULATOR_METRICS | STREAM_METRICS | FRESHNESS_METRICS

# Environment variables every deployment file must know (the project brief).
BRIEF_ENV_VARS = (
    "IOT_KAFKA_BOOTSTRAP_SERVERS",
    "IOT_KAFKA_TOPIC",
    "IOT_LAKE_ROOT",
    "IOT_SPARK_MASTER",
    "IOT_STREAM_TRIGGER_SECONDS",
    "IOT_STREAM_METRICS_PORT",
    "IOT_SIM_METRICS_PORT",
    "IOT_S3_ENDPOINT",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "IOT_PARTITIONS_START",
    "IOT_HOUR_GRACE_MINUTES",
    "DAGSTER_HOME",
    "DAGSTER_PG_HOST",
    "DAGSTER_PG_PORT",
    "DAGSTER_PG_USER",
    "DAGSTER_PG_PASSWORD",
    "DAGSTER_PG_DB",
)

_METRIC_TOKEN = re.compile(r"\biot_[a-z0-9_]+")
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def referenced_metrics(expr: str) -> set[str]:
    """Metric families a PromQL expression reads (``x_bucket`` of a histogram counts as ``x``)."""
    found = set()
    for token in _METRIC_TOKEN.findall(expr):
        for suffix in _HISTOGRAM_SUFFIXES:
            base = token.removesuffix(suffix)
            if base != token and base in HISTOGRAMS:
                token = base
                break
        found.add(token)
    return found


def require_tool(name: str, apt_package: str) -> str:
    """The tool's path, or a clear failure (never a skip): CI must install it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"'{name}' is not on PATH: install Debian's package with `apt-get install -y {apt_package}`."
        )
    return path


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a dotenv file (comments and blank lines skipped)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


# Secrets .env.example leaves empty and docker-compose.yml requires (``${VAR:?...}``).
COMPOSE_SECRETS = (
    "POSTGRES_ADMIN_PASSWORD",
    "DAGSTER_PG_PASSWORD",
    "GRAFANA_PG_PASSWORD",
    "MINIO_ROOT_PASSWORD",
    "AWS_SECRET_ACCESS_KEY",
    "GRAFANA_ADMIN_PASSWORD",
)


def env_example_with_secrets() -> dict[str, str]:
    """.env.example's values with every required secret filled (a fresh random value each)."""
    values = read_env_file(REPO / ".env.example")
    for name in COMPOSE_SECRETS:
        values[name] = secrets.token_hex(12)
    return values


def write_env_file(path: Path, values: dict[str, str]) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


def instance_rules() -> dict:
    """Queue and concurrency rules deploy/dagster.yaml holds now, wherever it holds them (the
    ``concurrency`` section or the coordinator's config), so tests never repeat the numbers."""
    conf = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    coordinator = (conf.get("run_coordinator") or {}).get("config") or {}
    concurrency = conf.get("concurrency") or {}
    runs, pools = concurrency.get("runs") or {}, concurrency.get("pools") or {}
    return {
        "max_concurrent_runs": runs.get("max_concurrent_runs", coordinator.get("max_concurrent_runs")),
        "tag_concurrency_limits": runs.get(
            "tag_concurrency_limits", coordinator.get("tag_concurrency_limits", [])
        ),
        "pool_default_limit": pools.get("default_limit"),
        "pool_granularity": pools.get("granularity"),
    }

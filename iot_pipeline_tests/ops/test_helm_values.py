"""deploy/helm/values.yaml against the keys of Dagster's official chart (dagster/dagster 1.13).

No helm binary or chart is available offline, so the expected keys are written down here from the
chart's values schema (helm/dagster/schema in dagster-io/dagster); the chart rejects unknown keys.
"""

from __future__ import annotations

from typing import Any

import yaml

from iot_pipeline_tests.ops.support import DEPLOY, instance_rules

VALUES = DEPLOY / "helm" / "values.yaml"

CHART_TOP_LEVEL = {
    "global",
    "dagsterWebserver",
    "dagster-user-deployments",
    "postgresql",
    "generatePostgresqlPasswordSecret",
    "generateCeleryConfigSecret",
    "rabbitmq",
    "redis",
    "flower",
    "ingress",
    "imagePullSecrets",
    "computeLogManager",
    "scheduler",
    "runLauncher",
    "pythonLogs",
    "dagsterDaemon",
    "busybox",
    "migrate",
    "telemetry",
    "serviceAccount",
    "retention",
    "additionalInstanceConfig",
    "concurrency",
}
USER_DEPLOYMENT_KEYS = {
    "name",
    "image",
    "dagsterApiGrpcArgs",
    "codeServerArgs",
    "includeConfigInLaunchedRuns",
    "port",
    "env",
    "envConfigMaps",
    "envSecrets",
    "annotations",
    "nodeSelector",
    "affinity",
    "tolerations",
    "podSecurityContext",
    "securityContext",
    "resources",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "labels",
    "volumeMounts",
    "volumes",
    "schedulerName",
}
K8S_RUN_LAUNCHER_KEYS = {
    "image",
    "imagePullPolicy",
    "jobNamespace",
    "loadInclusterConfig",
    "kubeconfigFile",
    "envConfigMaps",
    "envSecrets",
    "envVars",
    "volumeMounts",
    "volumes",
    "labels",
    "failPodOnRunFailure",
    "resources",
    "schedulerName",
    "securityContext",
    "runK8sConfig",
}
QUEUED_COORDINATOR_KEYS = {
    "maxConcurrentRuns",
    "tagConcurrencyLimits",
    "dequeueIntervalSeconds",
    "dequeueNumWorkers",
    "dequeueUseThreads",
    "blockOpConcurrencyLimitedRuns",
}


def values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text())


def test_values_use_only_chart_keys() -> None:
    v = values()
    assert set(v) <= CHART_TOP_LEVEL, set(v) - CHART_TOP_LEVEL
    for deployment in v["dagster-user-deployments"]["deployments"]:
        assert set(deployment) <= USER_DEPLOYMENT_KEYS, set(deployment) - USER_DEPLOYMENT_KEYS
    launcher = v["runLauncher"]["config"]["k8sRunLauncher"]
    assert set(launcher) <= K8S_RUN_LAUNCHER_KEYS, set(launcher) - K8S_RUN_LAUNCHER_KEYS
    queued = v["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert set(queued) <= QUEUED_COORDINATOR_KEYS, set(queued) - QUEUED_COORDINATOR_KEYS


def test_user_code_deployment_serves_the_project() -> None:
    v = values()
    assert v["dagster-user-deployments"]["enabled"] is True
    (deployment,) = v["dagster-user-deployments"]["deployments"]
    args = deployment["codeServerArgs"]
    assert args[args.index("--module-name") + 1] == "iot_pipeline.definitions"
    assert {"repository", "tag", "pullPolicy"} <= set(deployment["image"])
    assert deployment["image"]["tag"] != "latest"
    assert {"name": "iot-pipeline-env"} in deployment["envSecrets"]


def test_k8s_run_launcher_and_external_postgres() -> None:
    v = values()
    assert v["runLauncher"]["type"] == "K8sRunLauncher"
    assert {"name": "iot-pipeline-env"} in v["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]
    assert v["postgresql"]["enabled"] is False
    assert v["generatePostgresqlPasswordSecret"] is False and v["global"]["postgresqlSecretName"]
    assert v["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    assert v["telemetry"]["enabled"] is False


def test_queue_limits_match_the_compose_instance() -> None:
    """The chart's ``concurrency`` renders the same rules deploy/dagster.yaml holds, read from it."""
    rules = instance_rules()
    coordinator = values()["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] is True and coordinator["type"] == "QueuedRunCoordinator"
    queued = coordinator["config"]["queuedRunCoordinator"]
    # The chart fails when a limit is set both here and under `concurrency`.
    assert not {"maxConcurrentRuns", "tagConcurrencyLimits"} & set(queued)
    concurrency = values()["concurrency"]
    assert concurrency["runs"]["maxConcurrentRuns"] == rules["max_concurrent_runs"]
    assert concurrency["runs"].get("tagConcurrencyLimits", []) == rules["tag_concurrency_limits"]
    assert concurrency.get("pools", {}).get("defaultLimit") == rules["pool_default_limit"]
    assert concurrency.get("pools", {}).get("granularity") == rules["pool_granularity"]


def test_spark_executors_read_the_same_secret() -> None:
    conf = (DEPLOY / "spark" / "spark-defaults.conf").read_text()
    assert "spark.kubernetes.executor.secretKeyRef.AWS_ACCESS_KEY_ID        iot-pipeline-env:" in conf


def test_run_retries_match_the_compose_instance() -> None:
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text()).get("run_retries", {})
    retries = values()["dagsterDaemon"]["runRetries"]
    assert retries["enabled"] == instance.get("enabled", False)
    assert retries["maxRetries"] == instance.get("max_retries", 0)
    assert retries["retryOnAssetOrOpFailure"] == instance.get("retry_on_asset_or_op_failure", True)


def test_spark_connect_manifest_runs_what_compose_runs() -> None:
    """deploy/k8s/spark-connect.yaml: the compose service's command and health check, the chart's image
    and Secret, and a Service on the port IOT_SPARK_REMOTE names."""
    deployment, service = yaml.safe_load_all((DEPLOY / "k8s" / "spark-connect.yaml").read_text())
    assert (deployment["kind"], service["kind"]) == ("Deployment", "Service")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    compose = yaml.safe_load((DEPLOY.parent / "docker-compose.yml").read_text())["services"]["spark-connect"]
    assert container["command"] == compose["command"]
    assert container["readinessProbe"]["exec"]["command"] == compose["healthcheck"]["test"][1:]
    (user,) = values()["dagster-user-deployments"]["deployments"]
    assert container["image"] == f"{user['image']['repository']}:{user['image']['tag']}"
    assert {"secretRef": {"name": "iot-pipeline-env"}} in container["envFrom"]
    port = int(container["command"][container["command"].index("--port") + 1])
    assert [p["containerPort"] for p in container["ports"]] == [port]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert [p["port"] for p in service["spec"]["ports"]] == [port]
    assert (
        f"IOT_SPARK_REMOTE=sc://{service['metadata']['name']}:{port}"
        in (DEPLOY / "k8s" / "spark-connect.yaml").read_text()
    )

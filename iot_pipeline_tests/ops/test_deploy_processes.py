"""The production topology as local processes, started from the deployment's own files.

What docker-compose.yml runs, without Docker: PostgreSQL set up by the ``postgres-init`` service's own
command, the Dagster instance of ``deploy/dagster.yaml`` on it (as Dagster's own role), the code
location as a gRPC server, ``dagster-daemon`` and ``dagster-webserver`` on ``deploy/workspace.yaml``,
each with the command line compose gives it and the environment compose gives the pipeline
containers. Only addresses change: service names become 127.0.0.1 and free ports, the image's paths
temporary directories, and the lake a local directory instead of MinIO (S3 runs are covered by the
e2e tests). Through the webserver's GraphQL API the test launches the stream job and two runs of one
hourly partition, and checks that every run passed through the instance's queue and that the queue
and concurrency rules deploy/dagster.yaml holds (read from the file) were kept at every moment, and
that the hour's run got its Spark session from the spark-connect service.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from iot_pipeline.ingestion.faults import FaultRates
from iot_pipeline.ingestion.runner import Simulation, SimulationConfig
from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.resources.spark import SESSION_READY
from iot_pipeline.services.processes import free_ports
from iot_pipeline_tests.ops.postgres import Postgres, running_postgres
from iot_pipeline_tests.ops.support import DEPLOY, env_example_with_secrets, instance_rules, write_env_file
from iot_pipeline_tests.ops.test_compose import compose_config
from iot_pipeline_tests.ops.test_dagster_instance import ROLES, run_postgres_init

pytestmark = [pytest.mark.kafka, pytest.mark.spark]

BIN = Path(sys.executable).parent
LOCATION = {"repositoryLocationName": "iot_pipeline", "repositoryName": "__repository__"}
IN_PROGRESS = {"STARTING", "STARTED", "CANCELING"}
DONE = {"SUCCESS", "FAILURE", "CANCELED"}


class Topology:
    """The started processes, their logs, and the webserver's GraphQL endpoint."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.url = ""

    def start(self, name: str, command: list[str], env: dict[str, str]) -> None:
        executable = BIN / command[0]
        assert executable.exists(), f"{executable} is missing"
        with (self.work / f"{name}.log").open("wb") as log:
            self.processes[name] = subprocess.Popen(
                [str(executable), *command[1:]],
                env=env,
                cwd=self.work,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped with its children
            )

    def log(self, name: str) -> str:
        return (self.work / f"{name}.log").read_text(errors="replace")[-3000:]

    def assert_alive(self) -> None:
        for name, process in self.processes.items():
            assert process.poll() is None, f"{name} exited ({process.returncode}):\n{self.log(name)}"

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.load(response)
        assert not answer.get("errors"), answer["errors"]
        return answer["data"]

    def stop(self) -> None:
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def wait_for(what: str, check: Any, timeout_s: float, topology: Topology, every_s: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        topology.assert_alive()
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f}s waiting for {what}"
        time.sleep(every_s)


def replace_after(command: list[str], option: str, value: str) -> list[str]:
    out = list(command)
    out[out.index(option) + 1] = value
    return out


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    with running_postgres(user="postgres", password="deploy-test-admin", db="postgres") as server:
        yield server


RUNS = """
query Runs { runsOrError { ... on Runs { results { runId status tags { key value } } } } }
"""
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message stack }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
  }
}
"""
RUN_MESSAGES = """
query Messages($runId: ID!) {
  runOrError(runId: $runId) {
    ... on Run { eventConnection { events { ... on MessageEvent { message } } } }
  }
}
"""
RUN_EVENTS = """
query Events($runId: ID!) {
  runOrError(runId: $runId) { ... on Run { eventConnection { events { __typename } } } }
}
"""


def test_the_deployment_runs_as_local_processes(
    postgres: Postgres, kafka_resource: KafkaResource, tmp_path: Path
) -> None:
    rules = instance_rules()
    secrets = env_example_with_secrets()
    run_postgres_init(postgres, secrets)
    services = compose_config(write_env_file(tmp_path / "deploy.env", secrets))["services"]

    # The files the image carries, in their places: DAGSTER_HOME/dagster.yaml and the workspace.
    home = tmp_path / "dagster_home"
    (home / "storage").mkdir(parents=True)
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    grpc_port, web_port, metrics_port, connect_port = free_ports(4)
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    assert entry["grpc_server"]["host"] == "code-location"
    entry["grpc_server"].update(host="127.0.0.1", port=grpc_port)
    workspace_file = tmp_path / "workspace.yaml"
    workspace_file.write_text(yaml.safe_dump(workspace))

    # The pipeline containers' environment, with service names replaced by what runs here.
    lake = tmp_path / "lake"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IOT_", "AWS_", "DAGSTER_"))}
    env.update({k: str(v) for k, v in services["code-location"]["environment"].items()})
    for name in ("IOT_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(name)
    env.update(
        DAGSTER_HOME=str(home),
        DAGSTER_PG_HOST=postgres.host,
        DAGSTER_PG_PORT=str(postgres.port),
        DAGSTER_PG_USER=ROLES["dagster"],
        IOT_KAFKA_BOOTSTRAP_SERVERS=kafka_resource.bootstrap_servers,
        IOT_KAFKA_TOPIC=kafka_resource.topic,
        IOT_KAFKA_QUARANTINE_TOPIC=kafka_resource.quarantine_topic,
        IOT_LAKE_ROOT=str(lake),
        IOT_STREAM_METRICS_PORT=str(metrics_port),
        IOT_STREAM_TRIGGER_SECONDS="2",
        IOT_METRICS_HOST="127.0.0.1",
        SPARK_LOCAL_IP="127.0.0.1",  # the image's ENV
    )
    assert env["DAGSTER_PG_PASSWORD"] == secrets["DAGSTER_PG_PASSWORD"]
    assert env["IOT_SPARK_REMOTE"] == "sc://spark-connect:15002"
    env["IOT_SPARK_REMOTE"] = f"sc://127.0.0.1:{connect_port}"

    # Events of one closed hour in Kafka.
    hour = (datetime.now(timezone.utc) - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    partition = hour.strftime("%Y-%m-%d-%H:00")
    config = SimulationConfig(
        seed=5, topic=kafka_resource.topic, bootstrap_servers=kafka_resource.bootstrap_servers,
        start=hour + timedelta(minutes=20), max_events=300, rate=0, faults=FaultRates.none(),
        metrics_port=None, progress=False, ensure_topics=False,
    )  # fmt: skip
    assert Simulation(config, kafka_resource).run().records == 300

    topology = Topology(tmp_path)
    try:
        # As compose does: the code location starts once the Spark Connect server is healthy.
        connect = services["spark-connect"]["command"]
        connect = replace_after(replace_after(connect, "--host", "127.0.0.1"), "--port", str(connect_port))
        # Exactly the variables compose gives the server (it has no Dagster instance settings).
        own = services["spark-connect"]["environment"]
        connect_env = {
            k: v for k, v in env.items() if k in own or not k.startswith(("IOT_", "AWS_", "DAGSTER_"))
        }
        assert not any(k.startswith("DAGSTER_") for k in own)
        topology.start("spark-connect", connect, connect_env)
        connect_health = replace_after(
            services["spark-connect"]["healthcheck"]["test"][1:], "--port", str(connect_port)
        )

        def connect_healthy() -> bool:
            check = subprocess.run(
                [str(BIN / connect_health[0]), *connect_health[1:]],
                env=connect_env,
                capture_output=True,
                timeout=60,
            )
            return check.returncode == 0

        wait_for("the Spark Connect server's health check", connect_healthy, 240, topology)
        code_server = services["code-location"]["command"]
        code_server = replace_after(
            replace_after(code_server, "--host", "127.0.0.1"), "--port", str(grpc_port)
        )
        topology.start("code-location", code_server, env)
        # As compose does: webserver and daemon start once the code location's health check passes.
        health = services["code-location"]["healthcheck"]["test"][1:]
        health = replace_after(replace_after(health, "--host", "127.0.0.1"), "--port", str(grpc_port))

        def code_location_healthy() -> bool:
            check = subprocess.run(
                [str(BIN / health[0]), *health[1:]], env=env, capture_output=True, timeout=60
            )
            return check.returncode == 0

        wait_for("the code location's gRPC health check", code_location_healthy, 240, topology)
        webserver = services["dagster-webserver"]["command"]
        webserver = replace_after(replace_after(webserver, "--host", "127.0.0.1"), "--port", str(web_port))
        topology.start("dagster-webserver", replace_after(webserver, "--workspace", str(workspace_file)), env)
        topology.url = f"http://127.0.0.1:{web_port}"

        def location_loaded() -> bool:
            with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError):
                data = topology.graphql(
                    "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
                    "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
                )
                (loc,) = data["workspaceOrError"]["locationEntries"]
                error = loc["locationOrLoadError"] or {}
                assert error.get("__typename") != "PythonError", error.get("message")  # server is up
                return loc["loadStatus"] == "LOADED" and error.get("__typename") == "RepositoryLocation"
            return False

        wait_for("the webserver to load the code location over gRPC", location_loaded, 240, topology)

        # The sensors would launch runs of their own for the hour; stop them as an operator would,
        # before the daemon ticks, so the test sees only the runs it launches.
        sensors = topology.graphql(
            "query S($s: RepositorySelector!) { sensorsOrError(repositorySelector: $s) "
            "{ ... on Sensors { results { name sensorState { id selectorId } } } } }",
            s=LOCATION,
        )["sensorsOrError"]["results"]
        assert sensors
        for sensor in sensors:
            stopped = topology.graphql(
                "mutation Stop($id: String) { stopSensor(id: $id) { __typename "
                "... on StopSensorMutationResult { instigationState { status } } "
                "... on PythonError { message } } }",
                id=sensor["sensorState"]["id"],
            )["stopSensor"]
            assert stopped.get("instigationState", {}).get("status") == "STOPPED", stopped

        daemon = replace_after(services["dagster-daemon"]["command"], "--workspace", str(workspace_file))
        topology.start("dagster-daemon", daemon, env)

        def launch(job: str, tags: dict[str, str], **selector: Any) -> str:
            params = {
                "selector": {**LOCATION, "jobName": job, **selector},
                "runConfigData": {},
                "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
            }
            result = topology.graphql(LAUNCH, params=params)["launchRun"]
            assert result["__typename"] == "LaunchRunSuccess", result
            assert result["run"]["status"] == "QUEUED", "runs must go through the instance's queue"
            return result["run"]["runId"]

        observed: list[dict[str, dict[str, Any]]] = []

        def runs() -> dict[str, dict[str, Any]]:
            results = topology.graphql(RUNS)["runsOrError"]["results"]
            snapshot = {
                r["runId"]: {"status": r["status"], "tags": {t["key"]: t["value"] for t in r["tags"]}}
                for r in results
            }
            observed.append(snapshot)
            return snapshot

        # The stream and two runs of one hour at once. The hour's first run reads bronze if the stream
        # landed it already, else replays the hour from Kafka; either way it must succeed. Its checks
        # are left out (each check is one more Spark process), and the second run, once seen held in
        # the queue by the one-run-per-partition rule, is cancelled there rather than run.
        stream = launch("stream_to_bronze_job", {"iot-pipeline/role": "stream"})
        silver = {"assetSelection": [{"path": ["silver", "events"]}], "assetCheckSelection": []}
        first = launch("__ASSET_JOB", {"dagster/partition": partition}, **silver)
        second = launch("__ASSET_JOB", {"dagster/partition": partition}, **silver)
        partition_limit = next(
            (lim["limit"] for lim in rules["tag_concurrency_limits"] if lim["key"] == "dagster/partition"),
            None,
        )
        interval = float(
            (
                yaml.safe_load((DEPLOY / "dagster.yaml").read_text())["run_coordinator"].get("config") or {}
            ).get("dequeue_interval_seconds", 5)
        )
        started = wait_for(
            "the daemon to launch the stream and the hour's first run",
            lambda: (
                (s := runs()) and s[stream]["status"] != "QUEUED" and s[first]["status"] != "QUEUED" and s
            ),
            300,
            topology,
            every_s=0.5,
        )
        if partition_limit == 1:
            assert started[second]["status"] == "QUEUED"
            held_until = time.monotonic() + 3 * interval  # three passes of the daemon's queue
            while time.monotonic() < held_until:
                snapshot = runs()
                if snapshot[first]["status"] in IN_PROGRESS:
                    assert snapshot[second]["status"] == "QUEUED", "two runs of one partition at once"
                time.sleep(0.5)
            cancelled = topology.graphql(
                "mutation T($id: String!) { terminateRun(runId: $id) { __typename } }", id=second
            )["terminateRun"]
            assert cancelled["__typename"] == "TerminateRunSuccess", cancelled
        wait_for(
            "the partition runs to finish",
            lambda: all(runs()[r]["status"] in DONE for r in (first, second)),
            600,
            topology,
            every_s=0.5,
        )
        final = runs()
        assert final[first]["status"] == "SUCCESS", topology.log("code-location")
        messages = [
            e.get("message") or ""
            for e in topology.graphql(RUN_MESSAGES, runId=first)["runOrError"]["eventConnection"]["events"]
        ]
        ready = [m for m in messages if m.startswith(SESSION_READY)]
        assert ready and all(env["IOT_SPARK_REMOTE"] in m for m in ready), ready
        assert final[second]["status"] == ("CANCELED" if partition_limit == 1 else "SUCCESS")
        silver_dir = lake / "silver" / "events" / f"event_date={hour:%Y-%m-%d}" / f"event_hour={hour.hour}"
        assert any(silver_dir.glob("*.parquet"))
        bronze = lake / "bronze" / "events" / f"event_date={hour:%Y-%m-%d}" / f"event_hour={hour.hour}"
        wait_for(
            "the stream to land the hour in bronze", lambda: any(bronze.rglob("*.parquet")), 300, topology
        )
        assert runs()[stream]["status"] == "STARTED", "the stream keeps running beside the other runs"

        # Every run passed through the queue: enqueued by the webserver, launched by the daemon.
        for run_id in (stream, first, second):
            events = topology.graphql(RUN_EVENTS, runId=run_id)["runOrError"]["eventConnection"]["events"]
            kinds = [e["__typename"] for e in events]
            assert "RunEnqueuedEvent" in kinds, (run_id, kinds[:10])
            if run_id != second or partition_limit != 1:
                assert "RunStartingEvent" in kinds, (run_id, kinds[:10])
                assert kinds.index("RunEnqueuedEvent") < kinds.index("RunStartingEvent")

        # The rules the instance file holds were never broken, at any sampled moment.
        for snapshot in observed:
            active = [r for r in snapshot.values() if r["status"] in IN_PROGRESS]
            if rules["max_concurrent_runs"] is not None and rules["max_concurrent_runs"] >= 0:
                assert len(active) <= rules["max_concurrent_runs"]
            for limit in rules["tag_concurrency_limits"]:
                holders = [r["tags"].get(limit["key"]) for r in active if limit["key"] in r["tags"]]
                value = limit.get("value")
                if isinstance(value, dict) and value.get("applyLimitPerUniqueValue"):
                    assert max(Counter(holders).values(), default=0) <= limit["limit"], (limit, snapshot)
                elif value is not None:
                    assert holders.count(value) <= limit["limit"], (limit, snapshot)
                else:
                    assert len(holders) <= limit["limit"], (limit, snapshot)

        # The freshness exporter, with exactly its compose environment (the instance's settings only),
        # serves what the instance holds: silver/events was just materialised.
        exporter_port = free_ports(1)[0]
        exporter_env = {k: v for k, v in os.environ.items() if not k.startswith(("IOT_", "AWS_", "DAGSTER_"))}
        exporter_env.update({k: str(v) for k, v in services["freshness-metrics"]["environment"].items()})
        exporter_env.update(
            DAGSTER_HOME=str(home),
            DAGSTER_PG_HOST=postgres.host,
            DAGSTER_PG_PORT=str(postgres.port),
            DAGSTER_PG_USER=ROLES["dagster"],
        )
        exporter = replace_after(services["freshness-metrics"]["command"], "--port", str(exporter_port))
        topology.start("freshness-metrics", [*exporter, "--host", "127.0.0.1"], exporter_env)

        def exported() -> str | None:
            with contextlib.suppress(OSError):
                url = f"http://127.0.0.1:{exporter_port}/metrics"
                with urllib.request.urlopen(url, timeout=5) as resp:
                    return resp.read().decode()
            return None

        text = wait_for("the freshness exporter to serve /metrics", exported, 120, topology)
        assert 'iot_dagster_asset_last_materialization_timestamp_seconds{asset="silver/events"}' in text
        assert 'iot_dagster_asset_freshness_state{asset="silver/events",state=' in text

        # Terminating the stream through the API stops it cleanly.
        terminated = topology.graphql(
            "mutation T($id: String!) { terminateRun(runId: $id) { __typename } }", id=stream
        )["terminateRun"]
        assert terminated["__typename"] == "TerminateRunSuccess", terminated
        wait_for("the stream run to stop", lambda: runs()[stream]["status"] in DONE, 120, topology)
    finally:
        topology.stop()

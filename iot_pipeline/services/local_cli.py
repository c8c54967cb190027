"""``iot-pipeline local up|down|status``: the whole pipeline on one machine, no Docker.

``up`` starts, in order: the Kafka broker (and its topics), a Spark Connect server that the asset
runs share (``IOT_SPARK_REMOTE``; ``--no-spark-connect`` gives every run a driver of its own), the
Dagster UI and daemon (``dagster dev`` on ``workspace.yaml``), the streaming job as a Dagster run (so
it shows in the UI and can be terminated there), and the device simulator. It prints the URLs and
stays in the foreground; Ctrl-C (or ``iot-pipeline local down`` from another shell) stops everything
in reverse order. State, data and logs live under ``.local/`` (``IOT_PIPELINE_STATE``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.resources.kafka_settings import ENV_BOOTSTRAP
from iot_pipeline.resources.spark import CONNECT_DEFAULT_PORT, kafka_connector_package
from iot_pipeline.services.kafka_broker import KafkaBroker
from iot_pipeline.services.maven import prefetch
from iot_pipeline.services.minio import MinioServer, ensure_binary
from iot_pipeline.services.paths import state_dir
from iot_pipeline.services.spark_connect import REMOTE_ENV, SparkConnectServer, SparkConnectServerError
from iot_pipeline.storage.layout import ROOT_ENV
from iot_pipeline.storage.s3 import (
    DEFAULT_REGION,
    ENDPOINT_ENV,
    hadoop_aws_packages,
    s3_resource,
    split_s3_uri,
)
from iot_pipeline.streaming.job import STREAM_JOB


def _pidfile(name: str) -> Path:
    return state_dir() / "run" / f"{name}.pid"


def _start_process(name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    logs = state_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = (logs / f"{name}.log").open("ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    _pidfile(name).parent.mkdir(parents=True, exist_ok=True)
    _pidfile(name).write_text(str(proc.pid))
    return proc


def _stop_pid(name: str, timeout_s: float = 60) -> bool:
    """SIGINT the process group (dagster dev and Spark shut down cleanly on it), then SIGKILL."""
    pidfile = _pidfile(name)
    if not pidfile.exists():
        return False
    pid = int(pidfile.read_text())
    pidfile.unlink()
    try:
        os.killpg(pid, signal.SIGINT)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(pid)
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.5)
    os.killpg(pid, signal.SIGKILL)
    return True


def _reap(pid: int) -> None:
    """Collect our own exited child, or its zombie keeps the process group alive."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _spark_connect(port: int = CONNECT_DEFAULT_PORT) -> SparkConnectServer:
    """The shared server of the asset runs: the one ``iot-pipeline spark-connect`` manages too."""
    return SparkConnectServer(state_dir() / "spark-connect", port)


def _start_spark_connect(env: dict[str, str], port: int) -> None:
    """The shared Spark Connect server, configured from ``env`` like the runs; the runs get its URL."""
    print(f"starting the Spark Connect server on 127.0.0.1:{port} ...", flush=True)
    server = _spark_connect(port)
    server.start(env)
    env[REMOTE_ENV] = server.remote


def _keep_spark_connect(server: SparkConnectServer, env: dict[str, str]) -> None:
    """Restart the shared server if it died; a failed restart is reported and tried again later."""
    try:
        if server.ensure_running({k: v for k, v in env.items() if k != REMOTE_ENV}):
            print(f"the Spark Connect server had stopped; restarted it on {server.remote}", flush=True)
    except SparkConnectServerError as exc:
        print(f"the Spark Connect server is down and did not restart: {exc}", flush=True)


def _wait_http(url: str, timeout_s: float, proc: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{name} exited (code {proc.returncode}); see {state_dir() / 'logs' / (name + '.log')}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise RuntimeError(f"{name} did not answer at {url} within {timeout_s:.0f}s")


# Local-only MinIO credentials for `local up --s3`; real deployments set the AWS variables themselves.
LOCAL_S3_USER, LOCAL_S3_PASSWORD, LOCAL_S3_BUCKET = "iot-local", "iot-local-secret", "iot-lake"


def _env(args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DAGSTER_HOME", str(state_dir() / "dagster_home"))
    env[ENV_BOOTSTRAP] = f"127.0.0.1:{args.kafka_port}"
    if args.s3:
        env.setdefault("AWS_ACCESS_KEY_ID", LOCAL_S3_USER)
        env.setdefault("AWS_SECRET_ACCESS_KEY", LOCAL_S3_PASSWORD)
        env.setdefault("AWS_REGION", DEFAULT_REGION)
        env[ENDPOINT_ENV] = f"http://127.0.0.1:{args.minio_port}"
        env.setdefault(ROOT_ENV, f"s3a://{LOCAL_S3_BUCKET}/lake")
    env.setdefault(ROOT_ENV, str(state_dir() / "lake"))
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    Path(env["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    write_local_instance_yaml(Path(env["DAGSTER_HOME"]) / "dagster.yaml", env)
    return env


LOCAL_YAML_HEADER = "# Written by `iot-pipeline local up`"
_OLD_LOCAL_YAML = "telemetry:\n  enabled: false\n"


def local_instance_yaml(spark_runs: int = 1, max_retries: int = 2) -> str:
    """The local instance's settings: the same run queue, pool and retry rules as deploy/dagster.yaml,
    sized for one machine (``IOT_SPARK_RUN_LIMIT``, default 1: one Spark asset run next to the stream)."""
    return f"""{LOCAL_YAML_HEADER} (regenerated at every start while this line is here;
# delete the line to keep your own edits). See docs/operations.md, "Run concurrency and retries".
telemetry:
  enabled: false

# Every run is queued; the daemon of `dagster dev` starts it when the limits below allow.
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator

concurrency:
  # Runs holding a Spark asset (pool "spark") start only while fewer than `default_limit` of them run.
  pools:
    granularity: run
    default_limit: {spark_runs}
  runs:
    max_concurrent_runs: {spark_runs + 3}
    tag_concurrency_limits:
      # At most one run per partition, and one run per UTC day among the sensors' runs (day lock).
      - key: dagster/partition
        value:
          applyLimitPerUniqueValue: true
        limit: 1
      - key: iot-pipeline/day
        value:
          applyLimitPerUniqueValue: true
        limit: 1

# A failed run is re-executed from its failure up to `max_retries` times (tag dagster/max_retries).
run_retries:
  enabled: true
  max_retries: {max_retries}
  retry_on_asset_or_op_failure: true

run_monitoring:
  enabled: true
  start_timeout_seconds: 300
  poll_interval_seconds: 30
"""


def write_local_instance_yaml(path: Path, env: dict[str, str]) -> bool:
    """Write the local instance's dagster.yaml unless the user owns it (no header); True if written."""
    if path.exists():
        current = path.read_text()
        if current != _OLD_LOCAL_YAML and not current.startswith(LOCAL_YAML_HEADER):
            return False
    spark_runs = int(env.get("IOT_SPARK_RUN_LIMIT") or 1)
    if spark_runs < 1:
        raise ValueError(f"IOT_SPARK_RUN_LIMIT={spark_runs}: at least 1 Spark run must be allowed")
    path.write_text(local_instance_yaml(spark_runs))
    return True


def _bin(name: str) -> str:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else (shutil.which(name) or name)


def _launch_stream(env: dict[str, str], mode: str) -> str:
    config = {"ops": {"run_stream": {"config": {"mode": mode}}}}
    out = subprocess.run(
        [_bin("dagster"), "job", "launch", "-w", "workspace.yaml", "-j", STREAM_JOB, "--config-json", json.dumps(config)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"could not launch {STREAM_JOB}:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return out.stdout.strip()


def _terminate_stream_runs(env: dict[str, str]) -> None:
    """Terminate the stream's Dagster runs so its queries stop at a batch boundary."""
    code = (
        "import dagster as dg\n"
        "from dagster._core.storage.dagster_run import DagsterRunStatus as S\n"
        "i = dg.DagsterInstance.get()\n"
        f"runs = i.get_runs(dg.RunsFilter(job_name={STREAM_JOB!r}, statuses=[S.STARTED, S.QUEUED, S.STARTING]))\n"
        "[i.run_coordinator.cancel_run(r.run_id) for r in runs]\n"
        "print(len(runs))\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=False, capture_output=True, timeout=120)


def fetch(args: argparse.Namespace) -> int:
    """Download once what runs need offline later: Kafka, the Spark connectors, optionally S3 pieces."""
    started = time.monotonic()
    KafkaBroker(state_dir=state_dir() / "kafka", port=args.kafka_port).fetch()
    packages = [kafka_connector_package()]
    if args.s3:
        packages += hadoop_aws_packages()
    prefetch(packages)
    if args.s3:
        ensure_binary()
    print(
        f"fetched Kafka, {', '.join(packages)}{' and MinIO' if args.s3 else ''} in {time.monotonic() - started:.0f}s"
    )
    return 0


def _start_minio(env: dict[str, str], port: int) -> None:
    print(f"starting MinIO on {env[ENDPOINT_ENV]} (lake {env['IOT_LAKE_ROOT']}) ...", flush=True)
    MinioServer.default(port=port, console_port=None).start(
        env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    )
    bucket, _ = split_s3_uri(env[ROOT_ENV])
    # The shared client reads endpoint and credentials from this process's environment.
    os.environ.update(
        {k: env[k] for k in (ENDPOINT_ENV, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")}
    )
    client = s3_resource().get_client()
    if bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=bucket)


def _broker(args: argparse.Namespace) -> KafkaBroker:
    controller = args.kafka_controller_port or args.kafka_port + 1
    return KafkaBroker(state_dir=state_dir() / "kafka", port=args.kafka_port, controller_port=controller)


def up(args: argparse.Namespace) -> int:
    env = _env(args)
    broker = _broker(args)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        if args.s3:
            _start_minio(env, args.minio_port)
        print(f"starting Kafka on 127.0.0.1:{args.kafka_port} ...", flush=True)
        broker.start()
        KafkaResource(bootstrap_servers=env[ENV_BOOTSTRAP]).ensure_topics()
        if not args.no_spark_connect:
            _start_spark_connect(env, args.spark_connect_port)
        print(f"starting Dagster (dagster dev) on http://127.0.0.1:{args.dagster_port} ...", flush=True)
        dagster = _start_process(
            "dagster",
            [_bin("dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(args.dagster_port)],
            env,
        )
        _wait_http(f"http://127.0.0.1:{args.dagster_port}/server_info", 180, dagster, "dagster")
        if not args.no_stream:
            _launch_stream(env, "continuous")
        if not args.no_simulator:
            _start_process(
                "simulator",
                [_bin("iot-pipeline"), "simulate", "--rate", str(args.rate), "--metrics-port", str(args.sim_metrics_port),
                 "--no-progress"],
                env,
            )  # fmt: skip
        print(
            "\niot-pipeline is up:\n"
            f"  Dagster UI        http://127.0.0.1:{args.dagster_port}\n"
            f"  Kafka             127.0.0.1:{args.kafka_port} (topic iot-events)\n"
            f"  simulator metrics http://127.0.0.1:{args.sim_metrics_port}/metrics\n"
            f"  stream metrics    http://127.0.0.1:9109/metrics (while the {STREAM_JOB} run is up)\n"
            f"  Spark for assets  {env.get(REMOTE_ENV) or 'a driver in each run'}\n"
            f"  lake              {env['IOT_LAKE_ROOT']}\n"
            f"  logs              {state_dir() / 'logs'}\n"
            "Ctrl-C stops everything.",
            flush=True,
        )
        supervised = None if args.no_spark_connect else _spark_connect(args.spark_connect_port)
        while not stop.is_set() and dagster.poll() is None:
            if supervised is not None:
                _keep_spark_connect(supervised, env)
            stop.wait(5)
    finally:
        _down(env, broker, args.minio_port)
    return 0


def _down(env: dict[str, str], broker: KafkaBroker, minio_port: int) -> None:
    print("stopping ...", flush=True)
    _stop_pid("simulator", 30)
    if _pidfile("dagster").exists():
        _terminate_stream_runs(env)
        time.sleep(5)
    _stop_pid("dagster", 90)
    _spark_connect().stop(60)
    broker.stop()
    MinioServer.default(port=minio_port, console_port=None).stop()
    print("stopped.", flush=True)


def down(args: argparse.Namespace) -> int:
    env = _env(args)
    broker = _broker(args)
    _down(env, broker, args.minio_port)
    return 0


def status(args: argparse.Namespace) -> int:
    print(f"spark-connect: {'running' if _spark_connect().pid() else 'stopped'}")
    for name in ("dagster", "simulator"):
        pidfile = _pidfile(name)
        alive = False
        if pidfile.exists():
            try:
                os.killpg(int(pidfile.read_text()), 0)
                alive = True
            except ProcessLookupError:
                pass
        print(f"{name}: {'running' if alive else 'stopped'}")
    broker = _broker(args)
    print(f"kafka: {broker.status()}")
    return 0


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("local", help="run the whole pipeline locally (no Docker)", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("action", choices=["fetch", "up", "down", "status"])
    parser.add_argument(
        "--kafka-port", type=int, default=9092, help="Kafka broker port (default %(default)s)"
    )
    parser.add_argument(
        "--kafka-controller-port", type=int, default=None,
        help="Kafka's KRaft controller port (default: the broker port + 1)",
    )  # fmt: skip
    parser.add_argument(
        "--dagster-port", type=int, default=3000, help="Dagster UI port (default %(default)s)"
    )
    parser.add_argument("--rate", type=float, default=200, help="simulator events/s (default %(default)s)")
    parser.add_argument("--sim-metrics-port", type=int, default=9108, help="simulator metrics port")
    parser.add_argument(
        "--spark-connect-port", type=int, default=CONNECT_DEFAULT_PORT,
        help="port of the Spark Connect server the asset runs share (default %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--no-spark-connect", action="store_true",
        help="no shared Spark Connect server: every asset run starts its own Spark driver",
    )  # fmt: skip
    parser.add_argument("--no-stream", action="store_true", help="do not launch the streaming job")
    parser.add_argument("--no-simulator", action="store_true", help="do not start the simulator")
    parser.add_argument(
        "--s3",
        action="store_true",
        help="up: keep the lake on a local MinIO (s3a://iot-lake/lake); fetch: also the S3A jars and MinIO",
    )
    parser.add_argument(
        "--minio-port", type=int, default=9000, help="MinIO port with --s3 (default %(default)s)"
    )
    parser.set_defaults(
        func=lambda a: {"fetch": fetch, "up": up, "down": down, "status": status}[a.action](a)
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="iot-pipeline")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(["local", *(argv or sys.argv[1:])])
    return int(args.func(args))

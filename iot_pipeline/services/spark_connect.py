"""A Spark Connect server that the batch runs share (``IOT_SPARK_REMOTE``).

Without it, every Dagster run of an asset starts a Spark driver JVM of its own and runs its first
queries on code the JIT has not compiled yet; with it, a run opens a session on this long-lived,
already warm server (``SparkResource.remote``; timings in docs/performance.md). The pip-installed
PySpark ships the server (``jars/spark-connect_*.jar``), so nothing is downloaded. The server is
configured from the same resource the runs are (``iot_pipeline.bindings``, so ``IOT_SPARK_MASTER``, the
S3 settings and the Kafka connector apply to it), because settings such as memory and packages are
fixed when it starts.

    iot-pipeline spark-connect start [--port 15002]    # detached; prints the IOT_SPARK_REMOTE to set
    iot-pipeline spark-connect status | stop
    iot-pipeline spark-connect serve [--host 0.0.0.0]  # in the foreground (``make run``, containers)

It listens on 127.0.0.1 unless ``serve --host`` says otherwise (a container: 0.0.0.0, so other
containers reach it; the compose service and ``deploy/k8s/spark-connect.yaml`` do that). ``status``
exits 0 when something accepts connections on 127.0.0.1 at the port (the health check of both).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from iot_pipeline.command import Command
from iot_pipeline.resources.spark import CONNECT_DEFAULT_PORT as DEFAULT_PORT
from iot_pipeline.resources.spark import REMOTE_ENV
from iot_pipeline.services.maven import require_tool
from iot_pipeline.services.paths import state_dir
from iot_pipeline.services.processes import listening, running_pid, tail_log, terminate
from iot_pipeline.services.spark_cluster import JAVA_HINT, spark_home

HOST = "127.0.0.1"
SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"


class SparkConnectServerError(RuntimeError):
    """The server could not start; the message says why and where its log is."""


def remote_url(port: int, host: str = HOST) -> str:
    return f"sc://{host}:{port}"


def server_conf() -> dict[str, str]:
    """The Spark settings of the runs' resource, as bound from this process's environment."""
    from iot_pipeline.bindings import default_resources

    with default_resources()["spark"].process_config_and_initialize_cm() as spark:
        conf = {key: str(value) for key, value in spark.session_config().items()}
    conf["spark.app.name"] = "iot-pipeline-connect"
    return conf


def server_command(conf: dict[str, str], port: int, host: str = HOST) -> list[str]:
    """``spark-submit`` of the Connect server with ``conf``, listening on ``host:port`` only."""
    settings = {
        **conf,
        "spark.connect.grpc.binding.address": host,
        "spark.connect.grpc.binding.port": str(port),
    }
    cmd = [str(spark_home() / "bin" / "spark-submit"), "--class", SERVER_CLASS]
    for key, value in settings.items():
        cmd += ["--conf", f"{key}={value}"]
    return [*cmd, "spark-internal"]


def server_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.update(SPARK_HOME=str(spark_home()), PYSPARK_PYTHON=env.get("PYSPARK_PYTHON", sys.executable))
    env.setdefault("SPARK_LOCAL_IP", HOST)
    return env


def wait_listening(port: int, alive: Callable[[], bool], log: Path, timeout: float = 180.0) -> None:
    """Return once the server accepts connections; fail with its log's tail if it exits or hangs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if listening(port):
            return
        if not alive():
            raise SparkConnectServerError(f"the Spark Connect server exited; {log}:\n{tail_log(log)}")
        time.sleep(0.5)
    raise SparkConnectServerError(
        f"the Spark Connect server did not listen on {HOST}:{port} within {timeout:.0f}s; {log}:\n{tail_log(log)}"
    )


class SparkConnectServer:
    """A detached server whose log and pid file live in ``state``."""

    def __init__(self, state: Path, port: int = DEFAULT_PORT) -> None:
        self.state = Path(state).resolve()
        self.port = port
        self.log = self.state / "spark-connect.log"
        self.pid_file = self.state / "spark-connect.pid"

    @property
    def remote(self) -> str:
        return remote_url(self.port)

    def pid(self) -> int | None:
        return running_pid(self.pid_file)

    def start(self, env: Mapping[str, str] | None = None, timeout: float = 180.0) -> None:
        """Start ``serve`` detached in ``env`` (default: this process's), so the server is configured
        from the environment it runs in; return once it listens."""
        require_tool("java", JAVA_HINT)
        if self.pid():
            raise SparkConnectServerError(f"a server from {self.state} is already running; stop it first")
        if listening(self.port):
            raise SparkConnectServerError(
                f"Port {HOST}:{self.port} is taken: choose another port for the Spark Connect server "
                "(`spark-connect --port`, `local up --spark-connect-port`)."
            )
        self.state.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "iot_pipeline.services.spark_connect",
                    "serve",
                    "--port",
                    str(self.port),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=server_env(env),
                cwd=self.state,
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        try:
            wait_listening(self.port, lambda: proc.poll() is None, self.log, timeout)
        except SparkConnectServerError:
            self.stop()
            raise

    def ensure_running(self, env: Mapping[str, str] | None = None, timeout: float = 180.0) -> bool:
        """Start the server again if its process is gone (a crash, an out-of-memory kill); True if
        it did. Runs launched meanwhile wait for it (``SparkResource.connect_wait_seconds``)."""
        if self.pid() is not None:
            return False
        self.start(env, timeout)
        return True

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM the server's process group, SIGKILL it if it lingers; True if one was running."""
        pid = self.pid()
        self.pid_file.unlink(missing_ok=True)
        if pid is None:
            return False
        terminate(pid, timeout, group=True)
        return True


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["start", "stop", "status", "serve"])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="gRPC port (default %(default)s)")
    parser.add_argument(
        "--host",
        default=HOST,
        help="address serve listens on (default %(default)s; 0.0.0.0 in a container)",
    )


def _run(args: argparse.Namespace) -> int:
    if args.action == "serve":
        cmd = server_command(server_conf(), args.port, args.host)
        os.execvpe(cmd[0], cmd, server_env())
    server = SparkConnectServer(state_dir() / "spark-connect", args.port)
    if args.action == "start":
        server.start()
        print(f"Spark Connect server on {server.remote}; set {REMOTE_ENV}={server.remote}")
    elif args.action == "stop":
        print("stopped" if server.stop() else "not running")
    else:
        up = listening(args.port)
        started_here = " (started by `spark-connect start`)" if server.pid() else ""
        print(f"spark-connect: {'running at ' + server.remote + started_here if up else 'stopped'}")
        return 0 if up else 1
    return 0


COMMAND = Command(
    "spark-connect", "a Spark Connect server the batch runs share", __doc__, __name__, _add_arguments, _run
)
register, main = COMMAND.register, COMMAND.main


if __name__ == "__main__":
    raise SystemExit(main())

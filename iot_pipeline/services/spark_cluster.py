"""A real Spark standalone cluster (one master, one worker) on 127.0.0.1, from the installed PySpark.

The pip-installed PySpark ships the whole Spark distribution (``jars/``, ``bin/spark-class``), so no
download is needed: the master and the worker are started with ``spark-class`` exactly as Spark's own
``sbin`` scripts would, detached, with logs and pid files in a state directory. The asset tests use it
to prove the asset code runs on a distributed engine (``spark://...``), not only on ``local[*]``;
operators can use it to try executor settings locally (``python -m iot_pipeline.services.spark_cluster``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pyspark

from iot_pipeline.command import Command
from iot_pipeline.services.maven import require_tool
from iot_pipeline.services.paths import state_dir
from iot_pipeline.services.processes import free_ports, running_pid, tail_log, terminate

HOST = "127.0.0.1"
JAVA_HINT = "install a JDK 17+ (Debian: apt-get install openjdk-17-jdk-headless)."
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


class SparkClusterError(RuntimeError):
    """The local standalone cluster could not start or stop; the message says why and where to look."""


def spark_home() -> Path:
    """PySpark's package directory is a complete SPARK_HOME (``jars/``, ``bin/``)."""
    return Path(pyspark.__file__).resolve().parent


@dataclass
class SparkStandaloneCluster:
    """One master and one worker whose logs, pid files and work directory live in ``state_dir``."""

    state_dir: Path
    master_port: int = 7077  # spark://127.0.0.1:<port>, what runs connect to
    master_webui_port: int = 8080
    worker_webui_port: int = 8081
    worker_cores: int = 1  # what the worker offers to all runs together
    worker_memory: str = "1g"  # likewise: executors of all runs share it
    daemon_memory: str = "256m"  # heap of the master and worker JVMs themselves

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).resolve()

    @classmethod
    def on_free_ports(cls, state: Path, **kwargs: object) -> SparkStandaloneCluster:
        master, master_ui, worker_ui = free_ports(3)
        return cls(
            state, master_port=master, master_webui_port=master_ui, worker_webui_port=worker_ui, **kwargs
        )

    @property
    def master_url(self) -> str:
        return f"spark://{HOST}:{self.master_port}"

    @property
    def master_webui(self) -> str:
        return f"http://{HOST}:{self.master_webui_port}"

    def log_file(self, role: str) -> Path:
        return self.state_dir / "logs" / f"{role}.out"

    def pid_file(self, role: str) -> Path:
        return self.state_dir / f"{role}.pid"

    @property
    def work_dir(self) -> Path:
        """Where the worker runs executors; their stdout/stderr are under ``<app-id>/<executor-id>/``."""
        return self.state_dir / "work"

    # -- processes ---------------------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            SPARK_HOME=str(spark_home()),
            SPARK_LOCAL_IP=HOST,
            SPARK_DAEMON_MEMORY=self.daemon_memory,
            # Executors start Python workers with the same interpreter as the driver's venv.
            PYSPARK_PYTHON=env.get("PYSPARK_PYTHON", sys.executable),
            SPARK_LOCAL_DIRS=str(self.state_dir / "local"),
        )
        return env

    def _spawn(self, role: str, args: list[str]) -> int:
        log = self.log_file(role)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            # A session of its own: the daemons outlive the caller and are stopped by pid.
            proc = subprocess.Popen(
                [str(spark_home() / "bin" / "spark-class"), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._env(),
                cwd=self.state_dir,
                start_new_session=True,
            )
        self.pid_file(role).write_text(str(proc.pid))
        return proc.pid

    def _pid(self, role: str) -> int | None:
        return running_pid(self.pid_file(role))

    def master_state(self) -> dict | None:
        """The master's JSON status (workers, apps), or None when its web UI does not answer."""
        try:
            with urllib.request.urlopen(f"{self.master_webui}/json/", timeout=2) as resp:
                return json.load(resp)
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def alive_workers(self) -> int:
        state = self.master_state()
        return int(state.get("aliveworkers", 0)) if state else 0

    def start(self, timeout: float = 90.0) -> None:
        """Start the master, then the worker; return when the worker has registered with the master."""
        require_tool("java", JAVA_HINT)
        if self._pid("master") or self._pid("worker"):
            raise SparkClusterError(f"a cluster from {self.state_dir} is already running; stop it first")
        for sub in ("logs", "work", "local"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        self._spawn(
            "master",
            [MASTER_CLASS, "--host", HOST, "--port", str(self.master_port),
             "--webui-port", str(self.master_webui_port)],
        )  # fmt: skip
        self._wait(lambda: self.master_state() is not None, "master", timeout)
        self._spawn(
            "worker",
            [WORKER_CLASS, self.master_url, "--host", HOST, "--cores", str(self.worker_cores),
             "--memory", self.worker_memory, "--webui-port", str(self.worker_webui_port),
             "--work-dir", str(self.work_dir)],
        )  # fmt: skip
        self._wait(lambda: self.alive_workers() >= 1, "worker", timeout)

    def _wait(self, ready: object, role: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():  # type: ignore[operator]
                return
            if self._pid(role) is None:
                self.stop()
                raise SparkClusterError(
                    f"spark {role} exited; {self.log_file(role)}:\n{tail_log(self.log_file(role))}"
                )
            time.sleep(0.5)
        self.stop()
        raise SparkClusterError(
            f"spark {role} not ready after {timeout:.0f}s; {self.log_file(role)}:\n{tail_log(self.log_file(role))}"
        )

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the worker (it kills its executors), then the master; SIGKILL what does not exit."""
        for role in ("worker", "master"):
            pid = self._pid(role)
            if pid is not None:
                terminate(pid, timeout, group=True)
            self.pid_file(role).unlink(missing_ok=True)

    def status(self) -> dict:
        state = self.master_state() or {}
        return {
            "master_url": self.master_url,
            "master_webui": self.master_webui,
            "master_pid": self._pid("master"),
            "worker_pid": self._pid("worker"),
            "alive_workers": state.get("aliveworkers", 0),
            "cores": state.get("cores", 0),
            "active_apps": len(state.get("activeapps", [])),
            "state_dir": str(self.state_dir),
        }


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--port", type=int, default=7077, help="master port (default %(default)s)")
    parser.add_argument("--webui-port", type=int, default=8080, help="master web UI (default %(default)s)")
    parser.add_argument("--worker-webui-port", type=int, default=8081, help="(default %(default)s)")
    parser.add_argument("--cores", type=int, default=1, help="worker cores (default %(default)s)")
    parser.add_argument("--memory", default="1g", help="worker memory for executors (default %(default)s)")


def _run(args: argparse.Namespace) -> int:
    cluster = SparkStandaloneCluster(
        state_dir() / "spark",
        master_port=args.port,
        master_webui_port=args.webui_port,
        worker_webui_port=args.worker_webui_port,
        worker_cores=args.cores,
        worker_memory=args.memory,
    )
    if args.action == "start":
        cluster.start()
        print(
            f"spark master {cluster.master_url} (UI {cluster.master_webui}); IOT_SPARK_MASTER={cluster.master_url}"
        )
    elif args.action == "stop":
        cluster.stop()
        print("spark cluster stopped")
    else:
        status = cluster.status()
        print(json.dumps(status, indent=2))
        return 0 if status["alive_workers"] else 1
    return 0


DESCRIPTION = "A local Spark standalone master + worker on 127.0.0.1 (state under $IOT_PIPELINE_STATE/spark)."


COMMAND = Command(
    "spark", "local Spark standalone cluster (master + worker)", DESCRIPTION, __name__, _add_arguments, _run
)
register, main = COMMAND.register, COMMAND.main


if __name__ == "__main__":
    raise SystemExit(main())

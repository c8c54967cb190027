"""A real S3-compatible server on 127.0.0.1 without Docker: MinIO built once from the Go module proxy.

``go install`` compiles MinIO at a pinned module version into the cache directory, once per machine
and version, and keeps only the binary, not Go's module and build caches (build time and sizes in
docs/local-s3.md); ``start`` runs it detached with a data directory, a pid file and a log under the
state directory, and returns once ``/minio/health/live`` answers 200.

The pin is a pseudo-version because the module proxy we reach refuses MinIO's ``RELEASE.*`` tags and
their pseudo-versions (403 "module version is not available") and serves only this commit, the last on
the archived upstream master (see docs/local-s3.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from iot_pipeline.services.maven import ToolMissingError, require_tool
from iot_pipeline.services.paths import cache_dir, state_dir
from iot_pipeline.services.processes import StateFile, port_in_use, running_pid, tail_log, terminate

MINIO_MODULE = "github.com/minio/minio"
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"
DEFAULT_PORT = 9000
DEFAULT_CONSOLE_PORT = 9001
HOST = "127.0.0.1"


class MinioError(RuntimeError):
    """Building, starting or stopping MinIO failed; the message says what to do."""


def binary_path(version: str = MINIO_VERSION) -> Path:
    """Where the built binary lives; one directory per pinned version, so a new pin rebuilds."""
    return cache_dir() / "minio" / version / "bin" / "minio"


def ensure_binary(version: str = MINIO_VERSION, *, timeout: float = 1800) -> Path:
    """The cached MinIO binary, building it with ``go install`` first if it is missing.

    A file lock serialises concurrent callers (two test sessions, setup and a test), so the module is
    compiled once.
    """
    binary = binary_path(version)
    if binary.exists():
        return binary
    try:
        go = require_tool("go", "install Go >= 1.24 (https://go.dev/dl or Debian's golang-go backport).")
    except ToolMissingError as exc:
        raise MinioError(str(exc)) from exc
    work = binary.parent.parent
    work.mkdir(parents=True, exist_ok=True)
    log = work / "build.log"
    with (work / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.exists():
            return binary
        # The module sources and the build cache (gigabytes for MinIO) are needed once: they live
        # in a scratch directory that is cleaned after the build, so the machine keeps only the binary.
        scratch = work / "go-scratch"
        env = {
            **os.environ,
            "GOBIN": str(binary.parent),
            "GOTOOLCHAIN": "local",
            "GOFLAGS": "-buildvcs=false",
            "GOCACHE": str(scratch / "cache"),
            "GOMODCACHE": str(scratch / "mod"),
        }
        started = time.monotonic()
        with log.open("w") as out:
            try:
                result = subprocess.run(
                    [go, "install", f"{MINIO_MODULE}@{version}"],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=work,
                    timeout=timeout,
                )
            except subprocess.TimeoutExpired as exc:
                raise MinioError(f"go install {MINIO_MODULE}@{version} took over {timeout:.0f}s") from exc
            finally:
                _clean_go_scratch(go, env, scratch)
        if result.returncode != 0 or not binary.exists():
            raise MinioError(
                f"go install {MINIO_MODULE}@{version} failed (exit {result.returncode}); log {log}:\n{tail_log(log)}"
            )
        with log.open("a") as out:
            out.write(f"built in {time.monotonic() - started:.0f}s\n")
    return binary


def _clean_go_scratch(go: str, env: dict[str, str], scratch: Path) -> None:
    """Remove the build's module and build caches (Go makes module files read-only: ``go clean``)."""
    subprocess.run(
        [go, "clean", "-cache", "-modcache"], env=env, capture_output=True, timeout=300, check=False
    )
    shutil.rmtree(scratch, ignore_errors=True)


def _alive(pid: int) -> bool:
    """True if ``pid`` runs a MinIO process (guards against a recycled pid after a crash)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"minio" in cmdline and b"server" in cmdline


def root_credentials(user: str | None = None, password: str | None = None) -> tuple[str, str]:
    """Arguments, else MINIO_ROOT_USER/PASSWORD, else the AWS variables the pipeline itself uses."""
    user = user or os.environ.get("MINIO_ROOT_USER") or os.environ.get("AWS_ACCESS_KEY_ID")
    password = password or os.environ.get("MINIO_ROOT_PASSWORD") or os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not user or not password:
        raise MinioError(
            "MinIO needs root credentials: pass --user/--password or set MINIO_ROOT_USER and "
            "MINIO_ROOT_PASSWORD (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, which the pipeline uses)."
        )
    if len(user) < 3 or len(password) < 8:
        raise MinioError("MinIO root user needs >= 3 characters and the password >= 8 characters.")
    return user, password


@dataclass(frozen=True)
class MinioServer:
    """One local MinIO process; ``home`` holds ``data/``, ``minio.pid`` and ``minio.log``."""

    home: Path
    port: int = DEFAULT_PORT
    console_port: int | None = DEFAULT_CONSOLE_PORT

    @classmethod
    def default(
        cls, port: int = DEFAULT_PORT, console_port: int | None = DEFAULT_CONSOLE_PORT
    ) -> MinioServer:
        return cls(state_dir() / "minio", port, console_port)

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    data_dir = StateFile("data", folder="home")
    pid_file = StateFile("minio.pid", folder="home")
    log_file = StateFile("minio.log", folder="home")

    def pid(self) -> int | None:
        return running_pid(self.pid_file, _alive)

    def healthy(self, timeout: float = 2.0) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/minio/health/live", timeout=timeout) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def start(
        self,
        user: str | None = None,
        password: str | None = None,
        *,
        binary: Path | None = None,
        wait_seconds: float = 60,
    ) -> int:
        """Start detached (own session, survives the caller) and wait for health; returns the pid."""
        running = self.pid()
        if running is not None:
            if self.healthy():
                return running
            raise MinioError(
                f"MinIO pid {running} from {self.pid_file} runs but is not healthy; see {self.log_file}"
            )
        user, password = root_credentials(user, password)
        for port in (self.port, self.console_port):
            if port is not None and port_in_use(port):
                raise MinioError(f"Port {HOST}:{port} is taken by another process; choose other ports.")
        binary = binary or ensure_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [str(binary), "server", str(self.data_dir), "--address", f"{HOST}:{self.port}", "--quiet"]
        env = {
            **os.environ,
            "MINIO_ROOT_USER": user,
            "MINIO_ROOT_PASSWORD": password,
            "MINIO_UPDATE": "off",
            "MINIO_BROWSER": "off" if self.console_port is None else "on",
        }
        if self.console_port is not None:
            cmd += ["--console-address", f"{HOST}:{self.console_port}"]
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise MinioError(
                    f"MinIO exited with code {proc.returncode}; log {self.log_file}:\n{tail_log(self.log_file)}"
                )
            if self.healthy(timeout=1):
                return proc.pid
            time.sleep(0.2)
        self.stop()
        raise MinioError(
            f"MinIO was not healthy within {wait_seconds:.0f}s; log {self.log_file}:\n{tail_log(self.log_file)}"
        )

    def stop(self, timeout: float = 15) -> bool:
        """SIGTERM, then SIGKILL after ``timeout``; returns False if nothing was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        terminate(pid, timeout, alive=_alive)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        self.pid_file.unlink(missing_ok=True)
        return True

    def status(self) -> dict[str, object]:
        pid = self.pid()
        return {
            "running": pid is not None,
            "pid": pid,
            "healthy": pid is not None and self.healthy(),
            "endpoint": self.endpoint,
            "data_dir": str(self.data_dir),
            "log": str(self.log_file),
        }

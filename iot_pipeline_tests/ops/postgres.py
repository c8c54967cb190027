"""A throwaway PostgreSQL server (Debian's postgresql package) on a free loopback port.

initdb refuses to run as root, so under root the server runs as the ``postgres`` system user, in a
directory that user owns.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from iot_pipeline.services.processes import free_port


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str
    db: str

    def env(self) -> dict[str, str]:
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": self.db,
        }


def bin_dir() -> str:
    """Directory of the PostgreSQL server and client binaries (psql included)."""
    return _bin_dir()


def _bin_dir() -> str:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not candidates:
        pytest.fail(
            "PostgreSQL server binaries not found: install Debian's package with `apt-get install -y postgresql`."
        )
    return os.path.dirname(candidates[-1])


@contextmanager
def running_postgres(
    user: str = "dagster", password: str = "ops-test-password", db: str = "dagster"
) -> Iterator[Postgres]:
    bin_dir = _bin_dir()
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    work = tempfile.mkdtemp(prefix="iot-ops-pg-")
    data = os.path.join(work, "data")
    pwfile = os.path.join(work, "pw")
    with open(pwfile, "w") as fh:
        fh.write(password)
    if as_root:
        shutil.chown(work, "postgres")
        shutil.chown(pwfile, "postgres")
    port = free_port()

    def run(*args: str) -> None:
        result = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stdout}{result.stderr}")

    try:
        run(
            f"{bin_dir}/initdb",
            "-D",
            data,
            "-U",
            user,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
        )
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {work} -c fsync=off -c shared_buffers=32MB"
        run(
            f"{bin_dir}/pg_ctl",
            "-D",
            data,
            "-l",
            os.path.join(work, "log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        try:
            env = {**os.environ, "PGPASSWORD": password}
            subprocess.run(
                [f"{bin_dir}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", user, db],
                check=False,
                capture_output=True,
                env=env,
                timeout=60,
            )
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                ready = subprocess.run(
                    [f"{bin_dir}/pg_isready", "-h", "127.0.0.1", "-p", str(port)], capture_output=True
                )
                if ready.returncode == 0:
                    break
                time.sleep(0.5)
            yield Postgres("127.0.0.1", port, user, password, db)
        finally:
            run(f"{bin_dir}/pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(work, ignore_errors=True)

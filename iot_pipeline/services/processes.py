"""What every locally started service (Kafka, MinIO, Spark) needs: free ports, live pids, log tails."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

HOST = "127.0.0.1"


def free_ports(count: int = 2, host: str = HOST) -> list[int]:
    """Distinct ports nothing listens on right now (for services and tests that start their own).

    All sockets stay open until every port is chosen, so the kernel cannot hand out one port twice.
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(sock.getsockname()[1])
        return ports


def free_port(host: str = HOST) -> int:
    """One free port; call :func:`free_ports` when several must be free together."""
    return free_ports(1, host)[0]


def port_in_use(port: int, host: str = HOST) -> bool:
    """Can nothing bind ``port``? (A port in TIME_WAIT counts as free, as it does for the servers.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def listening(port: int, host: str = HOST) -> bool:
    """Does something accept connections on ``port``?"""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


def pid_alive(pid: int) -> bool:
    """Is the process running? One that exited but was not reaped yet (a zombie) is not: a child of
    this process is reaped here, another parent's zombie is recognised by its state in /proc."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def read_pid(pid_file: Path) -> int | None:
    """The pid a service recorded in ``pid_file``; None when the file is missing or garbled."""
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def running_pid(pid_file: Path, alive: Callable[[int], bool] = pid_alive) -> int | None:
    """The recorded pid if ``alive`` says it still runs (a service may check its command line too)."""
    pid = read_pid(pid_file)
    return pid if pid is not None and alive(pid) else None


class StateFile:
    """A file or folder at a fixed place in a service's state folder, the instance's ``folder``
    attribute: ``pid_file = StateFile("kafka.pid")``."""

    def __init__(self, *parts: str, folder: str = "state_dir") -> None:
        self.parts, self.folder = parts, folder

    def __get__(self, service: object, owner: type | None = None) -> Path:
        if service is None:  # looked up on the class (documentation tools): no folder to join
            raise AttributeError(f"{'/'.join(self.parts)} is a path of an instance")
        return Path(getattr(service, self.folder), *self.parts)


def tail_log(path: Path, lines: int = 30) -> str:
    """The last lines of a service's log, for error messages that say where to look."""
    if not path.exists():
        return f"(no {path.name} yet)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def terminate(
    pid: int,
    timeout: float,
    *,
    group: bool = False,
    alive: Callable[[int], bool] = pid_alive,
    first: signal.Signals = signal.SIGTERM,
) -> None:
    """Send ``first`` to ``pid`` (its whole process group with ``group``), SIGKILL it if it outlives
    ``timeout``. SIGINT as ``first`` stops ``dagster dev`` and ``make run`` the way Ctrl-C does.

    ``pid_alive`` reaps our own exited child while waiting, so its zombie does not look alive.
    """
    send = os.killpg if group else os.kill
    with contextlib.suppress(ProcessLookupError):
        send(pid, first)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        with contextlib.suppress(ProcessLookupError):
            send(pid, signal.SIGKILL)

"""``iot-pipeline minio fetch|start|stop|status``: the local S3 server for development and tests."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from iot_pipeline.services.minio import (
    DEFAULT_CONSOLE_PORT,
    DEFAULT_PORT,
    MINIO_VERSION,
    MinioError,
    MinioServer,
    binary_path,
    ensure_binary,
)


def _guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Print MinioError as one clear line (exit 1) instead of a traceback, whichever entry point runs."""

    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except MinioError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return run


def _server(args: argparse.Namespace) -> MinioServer:
    console = None if args.console_port == 0 else args.console_port
    if args.home:
        return MinioServer(Path(args.home), args.port, console)
    return MinioServer.default(args.port, console)


def _fetch(args: argparse.Namespace) -> int:
    cached = binary_path().exists()
    started = time.monotonic()
    path = ensure_binary()
    note = "cached" if cached else f"built in {time.monotonic() - started:.0f}s"
    print(f"minio {MINIO_VERSION}: {path} ({note})")
    return 0


def _start(args: argparse.Namespace) -> int:
    server = _server(args)
    pid = server.start(args.user, args.password)
    print(f"MinIO running (pid {pid}) at {server.endpoint}, data in {server.data_dir}, log {server.log_file}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    stopped = _server(args).stop()
    print("MinIO stopped" if stopped else "MinIO was not running")
    return 0


def _status(args: argparse.Namespace) -> int:
    status = _server(args).status()
    print(json.dumps(status, indent=2))
    return 0 if status["healthy"] else 1


def _add_location(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="S3 API port on 127.0.0.1")
    parser.add_argument(
        "--console-port",
        type=int,
        default=DEFAULT_CONSOLE_PORT,
        help="web console port; 0 disables the console",
    )
    parser.add_argument("--home", help="directory for data/, pid and log (default: <state dir>/minio)")


def _add_commands(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="minio_command", required=True)
    fetch = commands.add_parser("fetch", help=f"build MinIO {MINIO_VERSION} with go install (cached)")
    fetch.set_defaults(func=_guarded(_fetch))
    start = commands.add_parser("start", help="start detached and wait until healthy")
    _add_location(start)
    start.add_argument("--user", help="root user (default: MINIO_ROOT_USER, else AWS_ACCESS_KEY_ID)")
    start.add_argument(
        "--password", help="root password (default: MINIO_ROOT_PASSWORD, else AWS_SECRET_ACCESS_KEY)"
    )
    start.set_defaults(func=_guarded(_start))
    for name, func, text in (
        ("stop", _stop, "stop the server started by 'start'"),
        ("status", _status, "pid and health"),
    ):
        sub = commands.add_parser(name, help=text)
        _add_location(sub)
        sub.set_defaults(func=_guarded(func))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``minio``; each command sets ``func(args) -> int`` (raises MinioError on failure)."""
    _add_commands(subparsers.add_parser("minio", help="local MinIO (S3-compatible server) built from source"))


def main(argv: list[str] | None = None) -> int:
    """``python -m iot_pipeline.services.minio_cli start`` (same commands as ``iot-pipeline minio``)."""
    parser = argparse.ArgumentParser(prog="python -m iot_pipeline.services.minio_cli")
    _add_commands(parser)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

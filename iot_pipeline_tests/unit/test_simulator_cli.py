"""The simulate command line: clear errors for bad arguments, reproducible file output, fail-fast."""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iot_pipeline.ingestion import cli
from iot_pipeline.ingestion.runner import SimulationConfig

ROOT = Path(__file__).resolve().parents[2]


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exc:
        cli.main(list(argv))
    assert exc.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--anomaly-rate", "2"], "argument --anomaly-rate: expected a fraction between 0 and 1"),
        (["--late-rate", "lots"], "argument --late-rate: expected a fraction between 0 and 1, got 'lots'"),
        (["--rate", "-5"], "argument --rate: must be a finite number >= 0"),
        (["--devices", "0"], "argument --devices: must be >= 1"),
        (["--max-events", "ten"], "argument --max-events: expected an integer"),
        (["--duration", "0"], "argument --duration: must be > 0"),
        (["--device-types", "temperature,toaster"], "unknown device type(s) ['toaster']"),
        (["--start", "yesterday"], "argument --start: expected an ISO-8601 timestamp"),
        (["--compression", "brotli"], "argument --compression: invalid choice: 'brotli'"),
        (["--history-days", "2", "--replay", "x.jsonl"], "not allowed with argument"),
        (["--replay", "/nonexistent/events.jsonl"], "--replay: file not found: /nonexistent/events.jsonl"),
        (["--history-days", "1", "--duration", "5"], "--duration cannot be combined with --history-days"),
        (
            ["--anomaly-rate", "0.5", "--duplicate-rate", "0.4", "--malformed-rate", "0.2"],
            "fault rates add up to 1.110; their sum must be <= 1",
        ),
        (["--history-days", "1", "--devices", "3"], "--devices 3 is fewer than the 10 device types"),
        (["--output", "/nonexistent/dir/out.jsonl"], "--output: directory does not exist"),
    ],
)
def test_bad_arguments_give_clear_usage_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    err = usage_error(capsys, *argv)
    assert "usage:" in err
    assert message in err


def test_register_adds_simulate_to_a_dispatcher(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="iot-pipeline")
    cli.register(parser.add_subparsers(dest="group", required=True))
    args = parser.parse_args(["simulate", "--max-events", "5", "--seed", "1", "--rate", "0"])
    assert args.func is cli.run
    config = cli.config_from_args(args, args.simulate_parser)
    assert isinstance(config, SimulationConfig)
    assert (config.mode, config.max_events, config.seed, config.effective_rate) == ("bounded", 5, 1, 0.0)
    with pytest.raises(SystemExit):
        parser.parse_args(["simulate", "--rate", "-1"])
    assert "iot-pipeline simulate: error: argument --rate" in capsys.readouterr().err


def test_environment_supplies_connection_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IOT_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    monkeypatch.setenv("IOT_KAFKA_TOPIC", "other-events")
    monkeypatch.setenv("IOT_SIM_METRICS_PORT", "9999")
    args = cli.COMMAND.parser().parse_args([])
    config = cli.config_from_args(args, args.simulate_parser)
    assert (config.bootstrap_servers, config.topic, config.metrics_port) == (
        "127.0.0.1:19092",
        "other-events",
        9999,
    )
    assert config.mode == "continuous" and config.effective_rate == 500.0


def test_output_file_is_reproducible_with_seed_and_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--max-events", "3000", "--rate", "0", "--seed", "11", "--start", "2026-05-01T12:00:00Z"]
    common += ["--no-metrics", "--no-progress", "--json"]
    assert cli.main([*common, "--output", str(tmp_path / "a.jsonl")]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert cli.main([*common, "--output", str(tmp_path / "b.jsonl")]) == 0
    a, b = (tmp_path / "a.jsonl").read_bytes(), (tmp_path / "b.jsonl").read_bytes()
    assert a == b and a.count(b"\n") == 3000
    assert summary["records"] == 3000 and summary["seed"] == 11 and summary["start"] == "2026-05-01T12:00:00Z"
    assert summary["delivery_errors"] == 0 and sum(summary["by_kind"].values()) == 3000
    assert json.loads(a.splitlines()[0])["event_timestamp"] == "2026-05-01T12:00:00.000Z"


def test_unreachable_broker_fails_fast_naming_the_setting() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "iot_pipeline.ingestion", "--bootstrap-servers", f"127.0.0.1:{port}",
         "--connect-timeout", "2", "--max-events", "10", "--no-metrics"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == cli.EXIT_CONFIG, proc.stderr
    assert f"not reachable at bootstrap servers '127.0.0.1:{port}'" in proc.stderr
    assert "IOT_KAFKA_BOOTSTRAP_SERVERS" in proc.stderr
    assert time.monotonic() - t0 < 30

"""Replay parsing (JSONL byte for byte, CSV to JSON) and the metrics/health endpoint of the simulator."""

from __future__ import annotations

import csv
import gzip
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from iot_pipeline.ingestion.generator import generate
from iot_pipeline.ingestion.metrics import MetricsServer, SimStats
from iot_pipeline.ingestion.replay import ReplayError, csv_row_to_payload, read_replay

START = "2026-04-01T00:00:00Z"


def test_jsonl_replays_every_line_byte_for_byte_including_malformed(tmp_path: Path) -> None:
    records = generate(5_000, seed=9, start=START)
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(r.value + b"\n" for r in records) + b"\n")  # a trailing blank line is skipped
    replayed = list(read_replay(path))
    assert [r.value for r in replayed] == [r.value for r in records]
    for original, again in zip(records, replayed, strict=True):
        if original.malformed_kind == "malformed_json":
            assert (again.kind, again.key, again.malformed_kind) == ("malformed", None, "malformed_json")
        elif original.malformed_kind in (None, "wrong_type:value", "negative_duration", "invalid_timestamp"):
            assert again.key == original.key and again.device_type == original.device_type
    gz = tmp_path / "events.jsonl.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert [r.value for r in read_replay(gz)] == [r.value for r in records]


def test_csv_rows_become_contract_json(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["event_id", "device_id", "device_type", "event_timestamp", "event_duration", "value",
                    "unit", "status", "battery_level", "signal_strength", "extra"])  # fmt: skip
        w.writerow(["e1", "temp-1", "temperature", "2026-04-01T10:00:00.000Z", "120.5", "21.25",
                    "celsius", "normal", "88", "-60", "x"])  # fmt: skip
        w.writerow(
            ["e2", "temp-1", "temperature", "2026-04-01T10:00:01.000Z", "fast", "1e3", "", "", "", "", ""]
        )
    first, second = (json.loads(r.value) for r in read_replay(path))
    assert first == {
        "event_id": "e1", "device_id": "temp-1", "device_type": "temperature",
        "event_timestamp": "2026-04-01T10:00:00.000Z", "event_duration": 120.5, "value": 21.25, "unit": "celsius",
        "status": "normal", "battery_level": 88, "signal_strength": -60, "extra": "x",
    }  # fmt: skip
    # Empty cells are omitted; a number that does not parse stays a string so the stream quarantines it.
    assert second == {
        "event_id": "e2", "device_id": "temp-1", "device_type": "temperature",
        "event_timestamp": "2026-04-01T10:00:01.000Z", "event_duration": "fast", "value": 1000.0,
    }  # fmt: skip
    assert csv_row_to_payload({"value": "nan", "device_id": "d"}) == b'{"value":"nan","device_id":"d"}'


def test_replay_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="not found"):
        read_replay(tmp_path / "missing.jsonl")
    odd = tmp_path / "events.txt"
    odd.write_text("{}\n")
    with pytest.raises(ReplayError, match="--replay-format"):
        read_replay(odd)
    assert len(list(read_replay(odd, "jsonl"))) == 1
    headerless = tmp_path / "bad.csv"
    headerless.write_text("1,2,3\n4,5,6\n")
    with pytest.raises(ReplayError, match="header"):
        list(read_replay(headerless))


def scrape(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metrics_endpoint_exposes_the_fixed_names_and_health() -> None:
    stats = SimStats()
    stats.sent["co2", "warning"] += 7
    stats.sent["door", "normal"] += 3
    stats.by_kind.update({"valid": 8, "duplicate": 2})
    stats.bytes_sent, stats.active_devices, stats.current_rate_eps = 3_300, 50, 1234.5
    stats.record_error("boom")
    server = MetricsServer(stats, port=0).start()
    try:
        status, text = scrape(f"{server.url}/metrics")
        assert status == 200
        for line in (
            'iot_sim_events_sent_total{device_type="co2",status="warning"} 7.0',
            'iot_sim_events_sent_total{device_type="door",status="normal"} 3.0',
            "iot_sim_delivery_errors_total 1.0",
            "iot_sim_bytes_sent_total 3300.0",
            "iot_sim_active_devices 50.0",
            "iot_sim_current_rate_eps 1234.5",
            'iot_sim_injected_total{kind="duplicate"} 2.0',
            'iot_sim_injected_total{kind="malformed"} 0.0',
        ):
            assert line in text.splitlines(), line
        stats.state = "running"
        status, body = scrape(f"{server.url}/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok"
        assert json.loads(body)["records_sent"] == 10
        stats.state = "failed"
        status, body = scrape(f"{server.url}/healthz")
        assert status == 503 and json.loads(body)["status"] == "failed"
        assert scrape(f"{server.url}/nope")[0] == 404
    finally:
        server.close()


def test_metrics_port_in_use_is_a_clear_error() -> None:
    first = MetricsServer(SimStats(), port=0)
    try:
        with pytest.raises(OSError, match="--metrics-port or IOT_SIM_METRICS_PORT"):
            MetricsServer(SimStats(), port=first.port)
    finally:
        first.close()

"""The simulator against a real Kafka broker: what was produced is exactly what can be consumed."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path

import pytest
from confluent_kafka.admin import NewTopic

from iot_pipeline.ingestion.generator import generate
from iot_pipeline.ingestion.runner import Simulation, SimulationConfig
from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.services.processes import free_port
from iot_pipeline_tests.unit.test_simulator import contract_violation

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 6, 1, tzinfo=timezone.utc)


def consume(kafka: KafkaResource, topic: str, expected: int, timeout_s: float = 60.0) -> list[tuple]:
    """(partition, offset, key, value) of every record, waiting a little past ``expected`` for extras."""
    consumer = kafka.consumer(f"test-{uuid.uuid4().hex[:8]}")
    consumer.subscribe([topic])
    out: list[tuple] = []
    deadline = time.monotonic() + timeout_s
    quiet_until = None
    try:
        while time.monotonic() < deadline:
            msgs = consumer.consume(10_000, timeout=0.5)
            for m in msgs:
                assert m.error() is None, m.error()
                key = m.key().decode() if m.key() is not None else None
                out.append((m.partition(), m.offset(), key, m.value()))
            if len(out) >= expected:
                quiet_until = quiet_until or time.monotonic() + 1.5
                if time.monotonic() >= quiet_until:
                    break
    finally:
        consumer.close()
    return out


def config(kafka: KafkaResource, **overrides) -> SimulationConfig:  # type: ignore[no-untyped-def]
    base = dict(
        seed=4242, bootstrap_servers=kafka.bootstrap_servers, topic=kafka.topic, start=START, rate=0.0,
        metrics_port=None, progress=False,
    )  # fmt: skip
    return SimulationConfig(**{**base, **overrides})


def test_bounded_run_round_trips_exactly(kafka_resource: KafkaResource) -> None:
    n = 20_000
    cfg = config(kafka_resource, max_events=n)
    summary = Simulation(cfg, kafka=kafka_resource).run()
    assert (summary.records, summary.delivery_errors, summary.interrupted) == (n, 0, False)
    expected = list(islice(cfg.generator().stream(), n))  # the same seed and start: the same records
    got = consume(kafka_resource, kafka_resource.topic, n)
    assert len(got) == n
    assert Counter((k, v) for _, _, k, v in got) == Counter((r.key, r.value) for r in expected)

    # Keys are device ids, each device sticks to one partition, and all partitions are used.
    partitions_of: dict[str, set[int]] = defaultdict(set)
    for partition, _, key, value in got:
        partitions_of[key].add(partition)
        try:
            event = json.loads(value)
        except ValueError:
            continue
        if "device_id" in event:
            assert key == event["device_id"]
    assert all(len(p) == 1 for p in partitions_of.values())
    per_partition = Counter(p for p, _, _, _ in got)
    assert set(per_partition) == {0, 1, 2} and min(per_partition.values()) > n * 0.15

    # Per device, the order in Kafka is the order produced (idempotent producer, no reordering).
    in_kafka: dict[str, list[bytes]] = defaultdict(list)
    for _, _, key, value in sorted(got):
        in_kafka[key].append(value)
    produced: dict[str, list[bytes]] = defaultdict(list)
    for r in expected:
        produced[r.key].append(r.value)
    assert in_kafka == produced

    # Duplicate and malformed fractions, measured on the consumed side only.
    events, malformed = [], 0
    for _, _, _, value in got:
        try:
            event = json.loads(value)
        except ValueError:
            malformed += 1
            continue
        if contract_violation(event) is None:
            events.append(event["event_id"])
        else:
            malformed += 1
    assert malformed / n == pytest.approx(0.005, abs=0.003)
    assert (len(events) - len(set(events))) / n == pytest.approx(0.02, abs=0.006)


def test_jsonl_replay_round_trips(kafka_resource: KafkaResource, tmp_path: Path) -> None:
    records = generate(3_000, seed=5, start=START)
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(r.value + b"\n" for r in records))
    summary = Simulation(config(kafka_resource, replay=path), kafka=kafka_resource).run()
    assert (summary.mode, summary.records, summary.delivery_errors) == ("replay", 3_000, 0)
    got = consume(kafka_resource, kafka_resource.topic, 3_000)
    assert Counter(v for *_, v in got) == Counter(r.value for r in records)
    for _, _, key, value in got:
        try:
            assert key == json.loads(value).get("device_id")
        except ValueError:
            assert key is None  # unparseable lines go out without a key


def test_csv_replay_round_trips(kafka_resource: KafkaResource, tmp_path: Path) -> None:
    events = [r.event for r in generate(500, seed=6, start=START) if r.kind == "valid"]
    path = tmp_path / "events.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(events[0]))
        writer.writeheader()
        writer.writerows(events)
    summary = Simulation(config(kafka_resource, replay=path), kafka=kafka_resource).run()
    assert summary.records == len(events) and summary.delivery_errors == 0
    got = consume(kafka_resource, kafka_resource.topic, len(events))
    assert sorted((k, json.loads(v)["event_id"]) for _, _, k, v in got) == sorted(
        (e["device_id"], e["event_id"]) for e in events
    )
    by_id = {e["event_id"]: e for e in events}
    for *_, value in got:
        replayed = json.loads(value)
        assert replayed == by_id[replayed["event_id"]]  # numbers come back as numbers


def test_metrics_health_and_clean_flush_on_sigterm(kafka_resource: KafkaResource) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "iot_pipeline.ingestion", "--bootstrap-servers", kafka_resource.bootstrap_servers,
         "--topic", kafka_resource.topic, "--rate", "3000", "--seed", "1", "--metrics-port", str(port),
         "--json", "--no-progress"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        sent, rate, text, deadline = 0.0, 0.0, "", time.monotonic() + 30

        def sample(name: str) -> float:
            return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))

        while (sent < 3_000 or rate == 0.0) and time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                with urllib.request.urlopen(f"{base}/metrics", timeout=2) as resp:
                    text = resp.read().decode()
            except OSError:
                assert proc.poll() is None, proc.communicate()
                continue
            sent, rate = sample("iot_sim_events_sent_total{"), sample("iot_sim_current_rate_eps ")
        assert sent >= 3_000, text
        for name in ("iot_sim_events_sent_total{device_type=", "iot_sim_delivery_errors_total 0.0",
                     "iot_sim_bytes_sent_total", "iot_sim_active_devices 50.0", "iot_sim_current_rate_eps",
                     'iot_sim_injected_total{kind="duplicate"}', 'iot_sim_injected_total{kind="late"}'):  # fmt: skip
            assert name in text, name
        assert 1_000 < rate < 6_000, text  # paced at 3000/s
        assert sample("iot_sim_bytes_sent_total ") > 250 * sent
        with urllib.request.urlopen(f"{base}/healthz", timeout=2) as resp:
            assert resp.status == 200 and json.loads(resp.read())["status"] == "ok"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["interrupted"] is True and summary["delivery_errors"] == 0
    got = consume(kafka_resource, kafka_resource.topic, summary["records"])
    assert len(got) == summary["records"]  # everything handed to the producer was flushed to Kafka


def test_delivery_errors_are_counted_and_fail_the_run(kafka_resource: KafkaResource) -> None:
    topic = f"tiny-{uuid.uuid4().hex[:8]}"
    admin = kafka_resource.admin()  # keep the client alive until the future resolves
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=1, replication_factor=1, config={"max.message.bytes": "100"})]
    )
    futures[topic].result(30)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "iot_pipeline.ingestion", "--bootstrap-servers",
             kafka_resource.bootstrap_servers, "--topic", topic, "--no-create-topics", "--max-events", "200",
             "--rate", "0", "--no-metrics", "--no-progress", "--json"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        admin.delete_topics([topic], operation_timeout=10)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["records"] == 200 and summary["delivery_errors"] == 200
    assert "200 record(s) were not delivered" in proc.stderr
    assert "too large" in proc.stderr.lower()

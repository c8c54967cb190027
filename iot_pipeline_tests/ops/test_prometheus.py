"""Prometheus configuration and alert rules, checked and unit-tested with promtool (Debian: prometheus)."""

from __future__ import annotations

import subprocess

import yaml

from iot_pipeline_tests.ops.support import DEPLOY, KNOWN_METRICS, referenced_metrics, require_tool

PROMETHEUS = DEPLOY / "prometheus"
REQUIRED_ALERTS = {
    "IotStreamConsumerLagHigh",
    "IotSimulatorDown",
    "IotQuarantineShareHigh",
    "IotStreamBatchDurationHigh",
    "IotEndToEndLatencyHigh",
    "IotNoNewBronzePartition",
    "IotAssetFreshnessFailed",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = require_tool("promtool", "prometheus")
    return subprocess.run([tool, *args], capture_output=True, text=True, cwd=PROMETHEUS, timeout=120)


def alert_rules() -> list[dict]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_accepts_the_configuration() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_scrape_targets_are_the_simulator_and_the_stream() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets["iot-simulator"] == ["simulator:9108"]
    assert targets["iot-stream"] == ["stream:9109"]
    assert targets["iot-dagster-freshness"] == ["freshness-metrics:9110"]


def test_the_required_alerts_exist_and_read_only_known_metrics() -> None:
    rules = alert_rules()
    assert {r["alert"] for r in rules} >= REQUIRED_ALERTS
    for rule in rules:
        unknown = referenced_metrics(rule["expr"]) - KNOWN_METRICS
        assert not unknown, f"{rule['alert']} reads metrics the brief does not define: {unknown}"
        assert rule["labels"]["severity"] in ("warning", "critical")
    lag = next(r for r in rules if r["alert"] == "IotStreamConsumerLagHigh")
    assert lag["for"] == "5m"


def test_every_alert_has_a_firing_and_a_silent_unit_test() -> None:
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    for rule in alert_rules():
        mine = [c for c in cases if c["alertname"] == rule["alert"]]
        assert any(c["exp_alerts"] for c in mine), f"{rule['alert']}: no test where it fires"
        assert any(not c["exp_alerts"] for c in mine), f"{rule['alert']}: no test where it stays silent"


def test_a_broken_expectation_makes_promtool_fail(tmp_path) -> None:
    """The unit tests can fail: flip one expectation and promtool must report it."""
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())
    first = tests["tests"][0]["alert_rule_test"][-1]
    assert first["exp_alerts"], "the first test's last case is expected to fire"
    first["exp_alerts"] = []
    tests["rule_files"] = [str(PROMETHEUS / "alerts.yml")]
    broken = tmp_path / "broken_test.yml"
    broken.write_text(yaml.safe_dump(tests))
    result = promtool("test", "rules", str(broken))
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr

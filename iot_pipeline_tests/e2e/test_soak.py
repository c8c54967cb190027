"""The live local stack converges: the short (CI) form of ``benchmarks/soak.py``.

Real Kafka, ``dagster dev`` (webserver and daemon) with the local instance's settings, the stream as a
Dagster run, simulator waves with late and duplicate events into yesterday's last two hours, then the
ledger from the instance and the lake (see the script's docstring for the targets).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.spark, pytest.mark.slow, pytest.mark.soak]

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(1500)
def test_the_live_stack_converges_under_late_and_duplicate_events(tmp_path: Path) -> None:
    out = tmp_path / "ledger.json"
    cmd = [
        sys.executable, str(REPO / "benchmarks" / "soak.py"), "--minutes", "1.5", "--wave-seconds", "30",
        "--events", "3000", "--settle-minutes", "1", "--quiet-seconds", "150", "--yesterday-only",
        "--state", str(tmp_path / "state"), "--json", str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"},
                          capture_output=True, text=True, timeout=1400)  # fmt: skip
    print(proc.stdout[-6000:])
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    ledger = json.loads(out.read_text())
    assert ledger["checks"] == {k: True for k in ledger["checks"]}, ledger["checks"]
    assert ledger["max_spark_runs_at_once"] <= ledger["spark_run_limit"]
    assert ledger["max_in_flight_per_partition"] <= 1 and not ledger["failed"]
    day = min(ledger["days"])
    assert ledger["days"][day] and all(v["silver"] == v["bronze_distinct"] for v in ledger["hours"].values())
    assert proc.returncode == 0

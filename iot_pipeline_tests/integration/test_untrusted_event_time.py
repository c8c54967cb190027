"""Event time is untrusted: future-stamped events from an outside producer (kcat) cannot poison the pipeline.

The report that started this: fifty normal events plus one stamped three hours ahead and one stamped
``9999-12-31T23:30:00Z``, produced with kcat, moved the stream's watermark to the year 9999 and every
sensor tick failed from then on. Here the same records go through a real broker and the real stream;
both are quarantined as ``future_timestamp``, the watermark stays behind the clock, and the sensors'
ticks complete without closing the current hour. A watermark persisted by an older version is
ignored with a warning instead of trusted forever.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pyarrow.dataset as pads
import pytest
from pyspark.sql import SparkSession

from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import SparkResource
from iot_pipeline.sensors import sensor_resources
from iot_pipeline.sensors.hourly import bronze_hours_sensor
from iot_pipeline.storage.layout import LakeLayout
from iot_pipeline.storage.watermark import parse_watermark
from iot_pipeline.streaming.resource import SparkStreamingResource, StreamMode
from iot_pipeline.streaming.state import WatermarkPublisher, write_watermark

NOW = datetime.now(timezone.utc)


def _event(ts: datetime | str, i: int) -> str:
    stamp = ts if isinstance(ts, str) else ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return json.dumps(
        {
            "event_id": str(uuid.UUID(int=i + 1)),
            "device_id": f"dev-{i % 5}",
            "device_type": "temperature",
            "event_timestamp": stamp,
            "event_duration": 10.0 + i,
            "value": 20.5,
        }
    )


@pytest.mark.kafka
@pytest.mark.spark
def test_future_stamped_events_from_kcat_are_quarantined_and_the_sensor_keeps_working(
    spark_resource: SparkResource, kafka_resource: KafkaResource, tmp_path: Path
) -> None:
    kcat = shutil.which("kcat")
    assert kcat, "kcat is installed by scripts/setup.sh --test"
    base = NOW.replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    lines = [_event(base + timedelta(seconds=60 * i), i) for i in range(50)]
    lines += [_event(NOW + timedelta(hours=3), 100), _event("9999-12-31T23:30:00Z", 101)]
    produced = subprocess.run(
        [kcat, "-P", "-b", kafka_resource.bootstrap_servers, "-t", kafka_resource.topic],
        input="\n".join(lines) + "\n",
        text=True,
        capture_output=True,
        timeout=60,
    )
    assert produced.returncode == 0, produced.stderr

    lake = LakeResource(root=str(tmp_path / "lake"))
    stream = SparkStreamingResource(spark=spark_resource, kafka=kafka_resource, lake=lake, metrics_port=0)
    totals = stream.run(StreamMode.AVAILABLE_NOW, log=lambda _: None)
    assert (totals.input_rows, totals.bronze_rows) == (52, 50)
    assert totals.quarantined == {"future_timestamp": 2}
    days = {p.name for p in (tmp_path / "lake" / "bronze" / "events").iterdir() if p.is_dir()}
    assert "event_date=9999-12-31" not in days

    watermark = parse_watermark(json.loads(Path(LakeLayout(lake.root).stream_watermark).read_text()))
    assert watermark is not None and watermark <= datetime.now(timezone.utc)

    instance = dg.DagsterInstance.ephemeral()
    with dg.build_sensor_context(
        instance=instance, resources={"lake": lake, **sensor_resources()}
    ) as context:
        tick = bronze_hours_sensor(context)
    requested = {r.partition_key for r in tick.run_requests or []}
    current = NOW.strftime("%Y-%m-%d-%H:00")
    assert current not in requested  # the open hour stays open
    bronze = pads.dataset(str(tmp_path / "lake" / "bronze" / "events"), partitioning="hive").to_table()
    assert bronze.num_rows == 50


@pytest.mark.spark
def test_a_persisted_future_watermark_is_ignored_with_a_warning(spark: SparkSession, tmp_path: Path) -> None:
    layout = LakeLayout(str(tmp_path / "lake"))
    write_watermark(layout, datetime(9999, 12, 31, 23, 20, tzinfo=timezone.utc))
    warnings: list[str] = []
    publisher = WatermarkPublisher(layout, timedelta(minutes=10), warn=warnings.append)
    assert publisher.current is None
    assert len(warnings) == 1 and "9999-12-31" in warnings[0]

    # The next accepted event sets it again, and no candidate passes the clock.
    clock = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)
    publisher.clock = lambda: clock
    publisher.observe(clock + timedelta(minutes=3))  # within the clock-skew tolerance of the contract
    assert publisher.current == clock - timedelta(minutes=10)
    assert parse_watermark(json.loads(Path(layout.stream_watermark).read_text())) == publisher.current

    # A restart keeps a plausible value.
    restarted = WatermarkPublisher(layout, timedelta(minutes=10), warn=warnings.append, clock=lambda: clock)
    assert restarted.current == publisher.current and len(warnings) == 1

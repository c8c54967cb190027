"""Sensors never crash on what the lake holds: odd directory names, far-future hours, a poisoned watermark."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest
from dagster_aws.s3 import S3Resource

from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.sensors.daily import daily_rollup_sensor
from iot_pipeline.sensors.hourly import bronze_hours_sensor
from iot_pipeline.sensors.settings import SensorSettingsResource
from iot_pipeline.storage.layout import LakeLayout
from iot_pipeline.storage.listing import LocalLakeListing
from iot_pipeline.storage.watermark import trusted_watermark

NOW = datetime.now(timezone.utc).replace(minute=30, second=0, microsecond=0)


def _mkfile(root: Path, rel: str) -> None:
    path = root / "bronze" / "events" / rel / "ingest_batch=0" / "part-0.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * 10)


@pytest.fixture()
def hostile_lake(tmp_path: Path) -> Path:
    good = NOW - timedelta(hours=3)
    _mkfile(tmp_path, f"event_date={good:%Y-%m-%d}/event_hour={good.hour}")
    for rel in (
        "event_date=9999-12-31/event_hour=23",  # its end is past datetime.max
        "event_date=9999-12-31/event_hour=22",  # a usable hour, far in the future
        "event_date=2026-13-45/event_hour=1",  # no such date
        "event_date=0000-01-01/event_hour=1",
        "event_date=not-a-date/event_hour=1",
        f"event_date={good:%Y-%m-%d}/event_hour=24",
        f"event_date={good:%Y-%m-%d}/event_hour=-1",
        f"event_date={good:%Y-%m-%d}/event_hour=x",
    ):
        _mkfile(tmp_path, rel)
    (tmp_path / "bronze" / "events" / "_SUCCESS").write_text("")
    state = Path(LakeLayout(str(tmp_path)).stream_watermark)
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"watermark": "9999-12-31T23:20:00+00:00"}))
    return tmp_path


def test_listing_skips_and_names_unusable_partition_directories(hostile_lake: Path) -> None:
    skipped: list[str] = []
    hours = LocalLakeListing().hours(str(hostile_lake / "bronze" / "events"), skipped=skipped)
    good = NOW - timedelta(hours=3)
    assert hours == [good.replace(minute=0), datetime(9999, 12, 31, 22, tzinfo=timezone.utc)]
    assert sorted(skipped) == sorted(
        [
            "event_date=9999-12-31/event_hour=23",
            "event_date=2026-13-45",
            "event_date=0000-01-01",
            "event_date=not-a-date",
            f"event_date={good:%Y-%m-%d}/event_hour=24",
            f"event_date={good:%Y-%m-%d}/event_hour=-1",
            f"event_date={good:%Y-%m-%d}/event_hour=x",
        ]
    )


@pytest.mark.parametrize(
    ("doc", "trusted"),
    [
        ({"watermark": (NOW - timedelta(minutes=20)).isoformat()}, True),
        ({"watermark": (NOW + timedelta(minutes=2)).isoformat()}, True),  # within the clock skew
        ({"watermark": (NOW + timedelta(hours=3)).isoformat()}, False),
        ({"watermark": "9999-12-31T23:20:00+00:00"}, False),
        ({"watermark": "not a time"}, False),
        ({"watermark": 12}, False),
        (None, False),
    ],
)
def test_only_a_plausible_watermark_is_trusted(doc: object, trusted: bool) -> None:
    notes: list[str] = []
    value = trusted_watermark(doc, NOW, notes)
    assert (value is not None) is trusted
    assert bool(notes) is (not trusted and doc is not None)


def test_a_future_watermark_never_closes_the_current_hour(hostile_lake: Path) -> None:
    notes: list[str] = []
    settings = SensorSettingsResource(grace_minutes=15)
    closed = settings.closed_until(LakeLayout(str(hostile_lake)), LocalLakeListing(), NOW, notes)
    assert closed == NOW - timedelta(minutes=15)
    assert len(notes) == 1 and "9999-12-31" in notes[0]


def _context(root: Path, instance: dg.DagsterInstance) -> dg.SensorEvaluationContext:
    return dg.build_sensor_context(
        instance=instance,
        resources={
            "lake": LakeResource(root=str(root)),
            "sensor_settings": SensorSettingsResource(),
            "s3": S3Resource(),
        },
    )


def test_sensor_ticks_complete_on_a_hostile_lake(hostile_lake: Path) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        hourly = bronze_hours_sensor(_context(hostile_lake, instance))
        requested = [r.partition_key for r in hourly.run_requests or []]
        good = NOW - timedelta(hours=3)
        assert requested == [f"{good:%Y-%m-%d-%H}:00"]  # neither the far-future hour nor junk
        daily = daily_rollup_sensor(_context(hostile_lake, instance))
        assert daily.run_requests == [] or daily.run_requests is None or daily.skip_reason

"""Spark half of the S3 end-to-end test, run as ``python -m iot_pipeline_tests.e2e.s3_pipeline_driver``.

A separate interpreter because S3A packages and settings only take effect when a SparkSession starts,
and ``getOrCreate`` in the test process would reuse the suite's shared session (no S3A). It runs what
the local e2e test runs, with the lake on ``s3a://``: stream (available-now) -> hourly sensor tick ->
hourly runs -> second tick -> daily sensor tick -> daily run, and writes a JSON summary; the test
process makes the assertions. Configuration comes in as one JSON argument plus the AWS_*/IOT_S3_ENDPOINT
environment, as in production.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    import dagster as dg

    from iot_pipeline.assets import ASSETS
    from iot_pipeline.checks import CHECKS
    from iot_pipeline.resources.kafka import KafkaResource
    from iot_pipeline.resources.lake import LakeResource
    from iot_pipeline.resources.spark import SparkResource
    from iot_pipeline.sensors import sensor_resources
    from iot_pipeline.sensors.daily import daily_rollup_sensor
    from iot_pipeline.sensors.hourly import bronze_hours_sensor
    from iot_pipeline.sensors.settings import SensorSettingsResource
    from iot_pipeline.streaming.resource import SparkStreamingResource, StreamMode
    from iot_pipeline_tests.e2e.test_pipeline_e2e import RANGE_TAGS, contiguous_ranges

    endpoint, region = os.environ["IOT_S3_ENDPOINT"], os.environ["AWS_REGION"]
    seconds: dict[str, float] = {}
    mark = time.monotonic()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.monotonic()
        seconds[name] = round(now - mark, 1)
        mark = now

    spark = SparkResource(
        master="local[2]",
        shuffle_partitions=4,
        driver_memory="2g",
        stop_on_teardown=False,
        s3=True,
        s3_endpoint=endpoint,
        s3_region=region,
        s3_path_style=True,
        spark_config={
            "spark.pyspark.python": sys.executable,
            "spark.default.parallelism": "4",
            "spark.ui.enabled": "false",
        },
    )
    kafka = KafkaResource(
        bootstrap_servers=cfg["bootstrap"], topic=cfg["topic"], quarantine_topic=cfg["quarantine_topic"]
    )
    lake = LakeResource(root=cfg["root"])
    session = spark.build_session()
    lap("session")
    try:
        stream = SparkStreamingResource(spark=spark, kafka=kafka, lake=lake, metrics_port=0)
        totals = stream.run(StreamMode.AVAILABLE_NOW, log=lambda _: None)
        lap("stream")

        instance = dg.DagsterInstance.ephemeral()
        resources = {"spark": spark, "lake": lake, "kafka": kafka, **sensor_resources()}
        # One run request per hour (no ranged backfills), so every hour carries its fingerprint tags.
        sensor_res = {
            "lake": lake,
            **sensor_resources(),
            "sensor_settings": SensorSettingsResource(backfill_min_partitions=10**6),
        }
        with dg.build_sensor_context(instance=instance, resources=sensor_res) as context:
            hourly = bronze_hours_sensor(context)
        keys = [r.partition_key for r in hourly.run_requests]
        lap("hourly_tick")
        hourly_ok = True
        for start, end in contiguous_ranges(keys):
            result = dg.materialize(
                [*ASSETS, *CHECKS],
                selection=dg.AssetSelection.assets(["silver", "events"], ["silver", "device_minute_stats"]),
                tags=dict(zip(RANGE_TAGS, (start, end), strict=True)),
                instance=instance,
                resources=resources,
            )
            hourly_ok = hourly_ok and result.success
        lap("hourly_runs")
        with dg.build_sensor_context(
            instance=instance, resources=sensor_res, cursor=hourly.cursor
        ) as context:
            again = bronze_hours_sensor(context)
        with dg.build_sensor_context(instance=instance, resources=sensor_res) as context:
            daily = daily_rollup_sensor(context)
        days = sorted(r.partition_key for r in daily.run_requests)
        lap("second_tick_and_daily_tick")
        result = dg.materialize(
            [*ASSETS, *CHECKS],
            selection=dg.AssetSelection.assets(
                ["gold", "daily_event_duration_p95"], ["gold", "daily_device_type_summary"]
            ),
            partition_key=cfg["day"],
            instance=instance,
            resources=resources,
        )
        mats = [
            m
            for m in result.get_asset_materialization_events()
            if m.asset_key == dg.AssetKey(["gold", "daily_event_duration_p95"])
        ]
        lap("daily_run")
        return {
            "input_rows": totals.input_rows,
            "quarantined": totals.quarantined,
            "hourly_keys": keys,
            "hourly_tags": [dict(r.tags) for r in hourly.run_requests],
            "hourly_success": hourly_ok,
            "second_tick_requests": len(again.run_requests or []),
            "daily_days": days,
            "daily_success": result.success,
            "gold_metadata": str(mats[-1].materialization.metadata) if mats else "",
            "seconds": seconds,
        }
    finally:
        session.stop()


def main(argv: list[str]) -> int:
    cfg = json.loads(argv[1])
    summary = run(cfg)
    with open(cfg["out"], "w", encoding="utf-8") as fh:
        json.dump(summary, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

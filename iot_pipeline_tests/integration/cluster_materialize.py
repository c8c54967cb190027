"""Materialise one hour of silver and its day of gold on a given Spark master, in a fresh process.

``SparkSession.getOrCreate`` reuses any session the process already has (the test suite shares one
``local[2]`` session), so ``test_spark_cluster`` runs this module as a subprocess to get a driver of
its own: ``python -m iot_pipeline_tests.integration.cluster_materialize MASTER LAKE HOUR DAY``.
"""

from __future__ import annotations

import argparse
import sys
import time

import dagster as dg

from iot_pipeline.assets.daily_event_duration_p95 import daily_event_duration_p95
from iot_pipeline.assets.device_minute_stats import device_minute_stats
from iot_pipeline.assets.external import EXTERNAL_ASSETS
from iot_pipeline.assets.silver_events import events
from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.resources.lake import LakeResource
from iot_pipeline.resources.spark import SparkResource
from iot_pipeline.storage.s3 import s3_resource

NO_REPLAY = {"ops": {"silver__events": {"config": {"replay_missing_hours": False}}}}


def spark_resource(master: str) -> SparkResource:
    return SparkResource(
        master=master,
        shuffle_partitions=4,
        driver_memory="1g",
        # One session (one application on the cluster) for both runs; stopped at the end of main.
        stop_on_teardown=False,
        spark_config={
            # Executors (separate JVMs under the worker) start Python with the driver's interpreter.
            "spark.pyspark.python": sys.executable,
            "spark.executor.memory": "768m",
            "spark.cores.max": "1",
            "spark.default.parallelism": "4",
            "spark.ui.enabled": "false",
        },
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("master")
    parser.add_argument("lake")
    parser.add_argument("hour", help="hourly partition key, e.g. 2026-02-03-10:00")
    parser.add_argument("day", help="daily partition key, e.g. 2026-02-03")
    args = parser.parse_args(argv)
    spark = spark_resource(args.master)
    res = {
        "spark": spark,
        "lake": LakeResource(root=args.lake),
        "kafka": KafkaResource(),
        "s3": s3_resource(),
    }
    t0 = time.monotonic()
    silver = dg.materialize(
        [*EXTERNAL_ASSETS, events, device_minute_stats],
        partition_key=args.hour,
        resources=res,
        run_config=NO_REPLAY,
    )
    t1 = time.monotonic()
    gold = dg.materialize([*EXTERNAL_ASSETS, daily_event_duration_p95], partition_key=args.day, resources=res)
    t2 = time.monotonic()
    spark.build_session().stop()
    print(f"silver {t1 - t0:.1f}s ok={silver.success}; gold {t2 - t1:.1f}s ok={gold.success}", flush=True)
    return 0 if silver.success and gold.success else 1


if __name__ == "__main__":
    raise SystemExit(main())

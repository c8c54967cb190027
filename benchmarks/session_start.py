"""Benchmark: a run's Spark session start: connectors resolved by Ivy (baseline), from the class path, and
with the class-data archive.

Every run that starts its own driver (the CLI, CI, a deployment without the Spark Connect server) and
the stream pay the session start. ``spark.jars.packages`` makes Spark resolve the connectors with Ivy
and copy every resolved jar into the session's scratch directory; ``SparkResource`` gives a local
driver the jars an earlier session resolved on its class path instead (``connector_jars``), and maps
the machine's class-data archive of Spark's classes (``resources/class_data.py``). This script
starts each kind of session in a fresh process (as a run does), ``--repeat`` times, with the
production settings of ``SparkResource`` (local lake, and with ``--s3`` also the S3A connector),
and prints the time to a session that answered a first query and the size of the jar copies. The
two kinds without the archive run with ``-Xshare:auto``: the JDK's own archive of its classes only.

    .venv/bin/python benchmarks/session_start.py --repeat 3
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import time

MODES = ("packages", "classpath", "archive")
WITHOUT_ARCHIVE = "-Xshare:auto"  # an explicit choice: SparkResource then adds no archive of its own


def child(mode: str, s3: bool) -> None:
    from pyspark.sql import SparkSession

    from iot_pipeline.resources.spark import SparkResource

    resource = SparkResource(s3=s3, spark_config={"spark.ui.enabled": "false"})
    conf = resource.session_config()
    if mode == "packages":
        conf.pop("spark.driver.extraClassPath", None)
        conf["spark.jars.packages"] = ",".join(resource.packages())
    elif "spark.driver.extraClassPath" not in conf:
        sys.exit("no class path recorded yet: run a packages session first")
    java_options = conf.get("spark.driver.extraJavaOptions", "")
    if mode != "archive":
        conf["spark.driver.extraJavaOptions"] = WITHOUT_ARCHIVE
    elif "ArchiveClassesAtExit" not in java_options and "SharedArchiveFile" not in java_options:
        print(json.dumps({"seconds": None, "copied_mb": 0}))  # another driver is recording the archive
        return
    started = time.perf_counter()
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, str(value))
    session = builder.getOrCreate()
    session.range(1000).selectExpr("sum(id)").collect()
    seconds = time.perf_counter() - started
    jvm = session.sparkContext._jvm
    copied = sum(
        os.path.getsize(p) for p in glob.glob(jvm.org.apache.spark.SparkFiles.getRootDirectory() + "/*")
    )
    session.stop()
    recording = "ArchiveClassesAtExit" in java_options and mode == "archive"  # no measurement: it records
    print(json.dumps({"seconds": None if recording else seconds, "copied_mb": copied / 1e6}))


def recorded_archive(s3: bool, timeout: float = 300) -> None:
    """Start archive sessions until one maps the archive (the first records it when its JVM exits)."""
    deadline = time.monotonic() + timeout
    while measure("archive", s3)["seconds"] is None:
        if time.monotonic() > deadline:
            sys.exit("no class-data archive recorded: is the Ivy directory writable?")
        time.sleep(5)


def measure(mode: str, s3: bool) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", mode, *(["--s3"] if s3 else [])]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3, help="sessions per kind")
    p.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    p.add_argument("--s3", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args.s3)
        return
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    for s3 in (False, True):
        measure("packages", s3)  # resolves once and records the class path, as a machine's first run does
        recorded_archive(s3)
        results = {mode: [] for mode in MODES}
        for _ in range(args.repeat):
            for mode in MODES:  # interleaved, so drift in the machine's load hits both alike
                results[mode].append(measure(mode, s3))
        base = statistics.median(r["seconds"] for r in results["packages"])
        for mode in MODES:
            times = [r["seconds"] for r in results[mode]]
            median = statistics.median(times)
            print(
                f"{'S3A + Kafka' if s3 else 'Kafka':11s} {mode:9s}: session and first query median {median:5.2f}s "
                f"({', '.join(f'{t:.2f}' for t in times)}), jars copied {results[mode][0]['copied_mb']:4.0f} MB, "
                f"{median / base:.2f}x the packages session"
            )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

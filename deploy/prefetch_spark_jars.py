"""Cache the Spark connector jars at image build time, so containers start without Maven Central.

Spark resolves ``spark.jars.packages`` with Ivy at every session start; once the artifacts sit in the
Ivy cache (``spark.jars.ivy`` in ``deploy/spark/spark-defaults.conf``) that resolution is offline. The
coordinates come from the project's own code, so the image caches exactly what the resources ask for:
the Kafka source matching the installed PySpark, and hadoop-aws with the AWS SDK bundle it pins.
"""

from __future__ import annotations

import argparse
import sys


def project_packages() -> list[str]:
    from iot_pipeline.resources.spark import kafka_connector_package
    from iot_pipeline.storage.s3 import hadoop_aws_packages

    return [kafka_connector_package(), *hadoop_aws_packages()]


def ivy_jar_name(coordinate: str) -> str:
    """File name Ivy gives a resolved artifact in ``<ivy>/jars``: ``group_artifact-version.jar``."""
    group, artifact, version = coordinate.split(":")
    return f"{group}_{artifact}-{version}.jar"


def prefetch(packages: list[str], ivy_dir: str | None = None) -> list[str]:
    """Start (and stop) a local SparkSession that resolves ``packages``; returns the jars Spark loaded."""
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master("local[1]")
        .appName("iot-pipeline-prefetch-jars")
        .config("spark.jars.packages", ",".join(packages))
        .config("spark.ui.enabled", "false")
    )
    if ivy_dir:
        builder = builder.config("spark.jars.ivy", ivy_dir)
    spark = builder.getOrCreate()
    try:
        jars = spark.sparkContext.getConf().get("spark.jars", "")
    finally:
        spark.stop()
    return [j for j in jars.split(",") if j]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Cache the Spark connector jars in the Ivy cache.")
    parser.add_argument("--packages", nargs="+", help="Maven coordinates (default: what the project uses)")
    parser.add_argument("--ivy-dir", help="Ivy directory (default: spark.jars.ivy of SPARK_CONF_DIR)")
    args = parser.parse_args(argv)
    packages = args.packages or project_packages()
    jars = prefetch(packages, args.ivy_dir)
    loaded = {j.rsplit("/", 1)[-1] for j in jars}
    missing = [p for p in packages if ivy_jar_name(p) not in loaded]
    if missing:
        print(f"Spark did not load {missing}; it loaded {sorted(loaded)}", file=sys.stderr)
        return 1
    print(f"cached {len(jars)} jars for {', '.join(packages)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The Dagster job an operator launches (UI or CLI) to run the stream."""

from typing import Literal

import dagster as dg
from pydantic import Field

from iot_pipeline.resources.spark import SPARK_RUN_TAG
from iot_pipeline.streaming.resource import SparkStreamingResource

STREAM_JOB = "stream_to_bronze_job"


class StreamConfig(dg.Config):
    mode: Literal["continuous", "available_now"] = Field(
        default="continuous",
        description="continuous: micro-batches until the run is terminated; available_now: drain Kafka, then stop.",
    )


@dg.op(
    description="Runs the Kafka -> bronze/quarantine stream until terminated (or drained, in available_now).",
    tags={"kind": "spark"},
)
def run_stream(
    context: dg.OpExecutionContext, config: StreamConfig, streaming: SparkStreamingResource
) -> None:
    totals = streaming.run(config.mode, log=context.log.info, run_id=context.run_id)
    context.log.info(
        f"stream stopped after {totals.batches} batches: {totals.input_rows} records, "
        f"{totals.bronze_rows} to bronze, quarantined {totals.quarantined or 'none'}, "
        f"{len(totals.hours)} event hour(s) touched"
    )


@dg.job(
    name=STREAM_JOB,
    description=(
        "Long-running Spark Structured Streaming job: Kafka topic -> validated bronze Parquet (hourly "
        "partitions) + quarantine. Terminate the run to stop it; it resumes from its checkpoint."
    ),
    tags={SPARK_RUN_TAG: "stream"},
)
def stream_to_bronze_job() -> None:
    run_stream()

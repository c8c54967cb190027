"""Fault injection against the real pipeline, and the loss/duplicate ledger it ends with.

One :class:`Plan` is a scenario: events flow from a producer thread into real Kafka while the stream
runs as a real Dagster run (``dagster job execute ... stream_to_bronze_job``, its own process group),
and the plan's faults are injected while they flow: kill -9 of the stream at random points (then a
restart, as a run retry would), a second stream launched on the same checkpoint, kill -9 and restart
of the broker, MinIO stopped and restarted. Then the settle phase: the producer stops, the stream
catches up with Kafka's end offsets and is stopped gracefully, and ``silver/events`` is materialised
over every touched hour with ``dagster asset materialize`` (a process of its own), optionally killed
with SIGKILL mid-write or hit by a MinIO outage, then run again. The ledger compares what Kafka
stored (distinct event ids, by partition/offset) with bronze, quarantine and silver.

The pytest form (``iot_pipeline_tests/faults``, ``pytest -m faults``) runs short plans; the full
ones (10 kills, 60 s outages) are ``benchmarks/fault_ledger.py``. Both use this module.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow.dataset as pads
from pyarrow import fs as pafs

from iot_pipeline.ingestion.faults import FaultRates
from iot_pipeline.ingestion.fuzz import ANY, FuzzRecord, ledger
from iot_pipeline.ingestion.generator import EventGenerator
from iot_pipeline.resources.kafka import KafkaResource
from iot_pipeline.services.kafka_broker import KafkaBroker
from iot_pipeline.services.minio import MinioServer
from iot_pipeline.storage.layout import LakeLayout, is_local, local_path
from iot_pipeline.storage.s3 import DEFAULT_REGION, client_env, lake_filesystem, s3_client
from iot_pipeline.streaming.checkpoint import CheckpointError, end_offsets, read_state
from iot_pipeline.streaming.lock import lock_path

REPO = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).parent / "dagster")
FAULTS = FaultRates(anomaly=0.01, duplicate=0.05, malformed=0.02, late=0.03)


def log(message: str) -> None:
    print(f"[faults {datetime.now(timezone.utc):%H:%M:%S}] {message}", flush=True)


# ---------------------------------------------------------------------------------------------------
# The lake, read from outside Spark


@dataclass
class Lake:
    root: str  # a local directory or s3a://bucket/prefix
    env: dict[str, str] = field(default_factory=dict)  # AWS_* / IOT_S3_ENDPOINT for an S3 lake

    @property
    def layout(self) -> LakeLayout:
        return LakeLayout(self.root)

    @property
    def local(self) -> bool:
        return is_local(self.root)

    def rows(self, dataset: str, columns: list[str]) -> list[tuple]:
        """Rows of a Hive-partitioned dataset (pyarrow skips ``_``/``.`` paths, like Spark)."""
        fs, path = lake_filesystem(dataset)
        if fs.get_file_info(path).type == pafs.FileType.NotFound:
            return []
        table = pads.dataset(path, filesystem=fs, format="parquet", partitioning="hive").to_table(
            columns=columns
        )
        return list(zip(*(table.column(c).to_pylist() for c in columns), strict=True))

    def paths(self, dataset: str) -> list[str]:
        """Every file under a dataset, hidden staging paths included (what a careless glob sees)."""
        fs, path = lake_filesystem(dataset)
        if fs.get_file_info(path).type == pafs.FileType.NotFound:
            return []
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
        return [i.path for i in infos if i.type == pafs.FileType.File]

    def staging_leftovers(self) -> list[str]:
        layout = self.layout
        out = []
        for dataset in (layout.bronze_events, layout.quarantine_events, layout.silver_events):
            out += [p for p in self.paths(dataset) if "/.spark-staging-" in p or "/_temporary/" in p]
        return out

    def plant_staging_leftover(self, age_s: float = 3600) -> str | None:
        """A copy of a bronze data file where a killed dynamic-overwrite write leaves one
        (``bronze/events/.spark-staging-<id>/...``), aged past the stream's cleanup grace."""
        fs, root = lake_filesystem(self.layout.bronze_events)
        source = next((p for p in self.paths(self.layout.bronze_events) if "/event_date=" in p
                       and "/.spark-staging-" not in p and p.endswith(".parquet")), None)  # fmt: skip
        if source is None:
            return None
        target = f"{root}/.spark-staging-planted{source[len(root) :]}"
        fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        fs.copy_file(source, target)
        if self.local:  # the files and directories of a write killed an hour ago
            then = time.time() - age_s
            path = Path(target)
            while path.name != ".spark-staging-planted":
                os.utime(path, (then, then))
                path = path.parent
            os.utime(path, (then, then))
        return target

    def lock_exists(self) -> bool:
        fs, path = lake_filesystem(lock_path(self.layout, "bronze"))
        return fs.get_file_info(path).type != pafs.FileType.NotFound


# ---------------------------------------------------------------------------------------------------
# Events flowing into Kafka


class Feed:
    """A producer thread sending simulator records (late events, resends, malformed ones) at ``rate``
    per second until stopped; what Kafka acknowledged is kept by partition and offset."""

    def __init__(self, kafka: KafkaResource, rate: float, seed: int, speedup: float = 5.0) -> None:
        self.kafka = kafka
        self.rate = rate
        start = (datetime.now(timezone.utc) - timedelta(hours=7)).replace(minute=50, second=0, microsecond=0)
        # Event time runs ``speedup`` times faster than the clock, so a few minutes cross an hour, and
        # a scenario of up to an hour stays in closed hours (the current hour is no partition yet).
        self.generator = EventGenerator(
            seed=seed, start=start, faults=FAULTS, events_per_second=rate / speedup
        )
        self.stored: dict[tuple[int, int], FuzzRecord] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-feed", daemon=True)

    def start(self) -> Feed:
        self._thread.start()
        return self

    def _run(self) -> None:
        producer = self.kafka.producer(
            **{"enable.idempotence": True, "acks": "all", "linger.ms": 20, "message.timeout.ms": 600_000}
        )
        records = self.generator.stream()
        t0, sent = time.monotonic(), 0
        while not self._stop.is_set():
            due = int((time.monotonic() - t0) * self.rate)
            while sent < due:
                r = next(records)
                event = r.event
                record = FuzzRecord(
                    r.key.encode(),
                    r.value,
                    None if event is not None else ANY,
                    r.kind,
                    event["event_id"] if event is not None else None,
                )
                producer.produce(
                    self.kafka.topic, key=r.key, value=r.value, on_delivery=self._delivered(record)
                )
                sent += 1
            producer.poll(0.05)
        if producer.flush(600) != 0:
            self.errors.append("records still undelivered after 600 s")

    def _delivered(self, record: FuzzRecord) -> Callable[[Any, Any], None]:
        def callback(err: Any, msg: Any) -> None:
            if err is not None:
                self.errors.append(str(err))
            else:
                self.stored[(msg.partition(), msg.offset())] = record

        return callback

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(660)

    def hours(self) -> list[datetime]:
        """Every event hour a valid event was sent for (late events included)."""
        out = set()
        for r in self.stored.values():
            if r.event_id is not None:
                ts = json.loads(r.value)["event_timestamp"]
                t = datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(timezone.utc)
                out.add(t.replace(minute=0, second=0, microsecond=0))
        return sorted(out)


# ---------------------------------------------------------------------------------------------------
# Processes: the stream and the hourly runs, each a Dagster process in its own process group


def pipeline_env(lake: Lake, kafka: KafkaResource, home: Path) -> dict[str, str]:
    return {
        **os.environ,
        **lake.env,
        "DAGSTER_HOME": str(home),
        "IOT_LAKE_ROOT": lake.root,
        "IOT_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "IOT_KAFKA_TOPIC": kafka.topic,
        "IOT_KAFKA_QUARANTINE_TOPIC": kafka.quarantine_topic,
        "IOT_SPARK_MASTER": "local[2]",
        "IOT_STREAM_TRIGGER_SECONDS": "2",
        "IOT_STREAM_METRICS_PORT": "0",
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }


def spawn(cmd: list[str], env: dict[str, str], log_file: Path) -> subprocess.Popen:
    with log_file.open("ab") as out:
        return subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """The whole process group: the Python process, its Spark JVM and anything they started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(60)


def tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def stream_cmd(workdir: Path) -> list[str]:
    """The stream as a Dagster run (the code location's in-process executor: one process, the lease's pid)."""
    return [DAGSTER, "job", "execute", "-m", "iot_pipeline.definitions", "-j", "stream_to_bronze_job"]


class Stream:
    """The stream as a Dagster run; restarted after a kill or a failure (what a run retry does)."""

    def __init__(self, lake: Lake, kafka: KafkaResource, env: dict[str, str], workdir: Path) -> None:
        self.lake, self.kafka, self.env, self.workdir = lake, kafka, env, workdir
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.failed = 0  # exited on its own with an error (e.g. its store went away)
        self.killed = 0

    @property
    def log_file(self) -> Path:
        return self.workdir / f"stream-{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        self.proc = spawn(stream_cmd(self.workdir), self.env, self.log_file)

    def wait_started(self, timeout_s: float) -> None:
        """Until the query runs (Spark's start-up takes minutes on a busy machine)."""
        deadline = time.monotonic() + timeout_s
        while "stream started" not in tail(self.log_file, 10**6):
            self.supervise()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the stream did not start in {timeout_s:.0f}s:\n{tail(self.log_file)}")
            time.sleep(0.5)

    def close(self) -> None:
        """Whatever happened, no process of this stream outlives the scenario."""
        if self.proc is not None:
            kill_group(self.proc)

    def committed(self) -> int:
        try:
            batch = read_state(self.lake.layout).last_committed_batch
        except (CheckpointError, OSError, ValueError):
            return -1
        return -1 if batch is None else batch

    def supervise(self) -> None:
        """Restart a stream that ended on its own (after a store outage, say), as a retry would."""
        if self.proc is not None and self.proc.poll() is not None:
            self.failed += 1
            log(
                f"stream ended with {self.proc.returncode}; restarting. Log tail:\n{tail(self.log_file, 800)}"
            )
            self.start()

    def wait_commits(self, more: int, timeout_s: float) -> None:
        target = self.committed() + more
        deadline = time.monotonic() + timeout_s
        while self.committed() < target:
            self.supervise()
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"stream committed no batch {target} in {timeout_s:.0f}s:\n{tail(self.log_file)}"
                )
            time.sleep(0.3)

    def kill9(self) -> None:
        assert self.proc is not None
        kill_group(self.proc)
        self.killed += 1

    def caught_up(self) -> bool:
        try:
            state = read_state(self.lake.layout)
            ends = end_offsets(self.kafka)
        except Exception:
            return False
        committed = state.committed_offsets.get(self.kafka.topic, {})
        return all(committed.get(p, 0) >= end for p, end in ends.items())

    def settle(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.caught_up():
            self.supervise()
            if time.monotonic() > deadline:
                raise TimeoutError(f"stream did not catch up in {timeout_s:.0f}s:\n{tail(self.log_file)}")
            time.sleep(1)

    def stop(self, timeout_s: float = 120) -> int | None:
        """SIGTERM (Dagster interrupts the op; the stream stops after its batch), then SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            kill_group(self.proc)
            return None
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # the JVM, if it outlived its parent


def partition_key(hour: datetime) -> str:
    return hour.strftime("%Y-%m-%d-%H:00")


def silver_cmd(hours: list[datetime]) -> list[str]:
    return [
        DAGSTER, "asset", "materialize", "-m", "iot_pipeline.definitions",
        "--select", "silver/events,silver/event_id_index",
        "--partition-range", f"{partition_key(hours[0])}...{partition_key(hours[-1])}",
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Services the faults hit


@dataclass
class Services:
    """How a plan reaches the broker and MinIO it disturbs (None: that fault is not available)."""

    kill_broker: Callable[[], None] | None = None
    start_broker: Callable[[], None] | None = None
    kill_minio: Callable[[], None] | None = None
    start_minio: Callable[[], None] | None = None


@contextlib.contextmanager
def outage(stop: Callable[[], None], start: Callable[[], None], seconds: float, what: str) -> Iterator[None]:
    log(f"{what} down for {seconds:.0f}s")
    stop()
    try:
        yield
        time.sleep(seconds)
    finally:
        start()
        log(f"{what} back")


# ---------------------------------------------------------------------------------------------------
# Scenarios and the ledger


@dataclass
class Plan:
    name: str
    stream_kills: int = 0
    second_stream: bool = False
    broker_restart: bool = False
    minio_outage_stream_s: float = 0.0
    hourly_kill: bool = False
    minio_outage_hourly_s: float = 0.0
    rate: float = 40.0  # records per second while the faults happen
    min_feed_s: float = 20.0
    seed: int = 11


@dataclass
class FaultLedger:
    scenario: str
    produced_records: int = 0
    produced_ids: int = 0
    bronze_rows: int = 0
    quarantined: int = 0
    records_missing: int = 0  # Kafka records in neither bronze nor quarantine
    records_twice: int = 0  # Kafka records landed more than once
    silver_rows: int = 0
    silver_ids: int = 0
    lost: int = 0  # produced event ids not in silver
    duplicated: int = 0  # silver rows beyond one per event id
    unexpected: int = 0  # event ids in silver nobody produced
    runs_failed: int = 0  # stream and hourly runs killed or ended with an error
    runs_retried: int = 0
    stream_kills: int = 0
    seconds: float = 0.0
    checks: dict[str, bool] = field(default_factory=dict)  # scenario-specific outcomes
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.produced_ids > 0
            and not (self.lost or self.duplicated or self.unexpected)
            and not (self.records_missing or self.records_twice)
            and all(self.checks.values())
        )

    def table_row(self) -> str:
        return (
            f"{self.scenario:<26} {self.produced_ids:>9,} {self.silver_ids:>9,} {self.lost:>5} "
            f"{self.duplicated:>5} {self.quarantined:>7,} {self.runs_failed:>6} {self.runs_retried:>7} "
            f"{self.seconds:>6.0f}s  {'PASS' if self.ok else 'FAIL'}"
        )


TABLE_HEADER = (
    f"{'scenario':<26} {'produced':>9} {'silver':>9} {'lost':>5} {'dup':>5} {'quarant':>7} "
    f"{'failed':>6} {'retried':>7} {'time':>7}  result"
)


def count_ledger(book: FaultLedger, feed: Feed, lake: Lake) -> None:
    layout = lake.layout
    bronze = lake.rows(layout.bronze_events, ["kafka_partition", "kafka_offset"])
    quarantine = lake.rows(layout.quarantine_events, ["kafka_partition", "kafka_offset", "reason"])
    coords = ledger(feed.stored, bronze, quarantine)
    silver = [r[0] for r in lake.rows(layout.silver_events, ["event_id"])]
    produced = {r.event_id for r in feed.stored.values() if r.event_id is not None}
    in_silver = Counter(silver)
    book.produced_records = len(feed.stored)
    book.produced_ids = len(produced)
    book.bronze_rows = coords.bronze
    book.quarantined = coords.quarantined
    book.records_missing = coords.missing
    book.records_twice = coords.duplicated + coords.in_both
    book.silver_rows = len(silver)
    book.silver_ids = len(in_silver)
    book.lost = len(produced - set(in_silver))
    book.duplicated = len(silver) - len(in_silver)
    book.unexpected = len(set(in_silver) - produced)


def run_hourly(
    lake: Lake, env: dict[str, str], hours: list[datetime], workdir: Path, book: FaultLedger,
    services: Services, plan: Plan,
) -> None:  # fmt: skip
    """silver/events over the hours; the plan's hourly fault first, then retries until it succeeds."""
    procs: list[subprocess.Popen] = []
    try:
        _run_hourly(lake, env, hours, workdir, book, services, plan, procs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                kill_group(proc)


def _run_hourly(
    lake: Lake, env: dict[str, str], hours: list[datetime], workdir: Path, book: FaultLedger,
    services: Services, plan: Plan, procs: list[subprocess.Popen],
) -> None:  # fmt: skip
    attempt = 0

    def start() -> tuple[subprocess.Popen, Path]:
        nonlocal attempt
        attempt += 1
        path = workdir / f"silver-{attempt}.log"
        procs.append(spawn(silver_cmd(hours), env, path))
        return procs[-1], path

    if plan.hourly_kill:
        proc, path = start()
        deadline = time.monotonic() + 600
        while proc.poll() is None and time.monotonic() < deadline:
            if any(
                "/.spark-staging-" in p or "/_temporary/" in p for p in lake.paths(lake.layout.silver_events)
            ):
                break
            time.sleep(0.1)
        if proc.poll() is None:
            kill_group(proc)
            book.checks["hourly run killed mid-write"] = True
            log("silver run killed with SIGKILL while writing")
        else:
            book.checks["hourly run killed mid-write"] = False
            book.notes.append(f"the silver run ended ({proc.returncode}) before a write could be hit")
        book.runs_failed += 1
    if plan.minio_outage_hourly_s:
        assert services.kill_minio and services.start_minio
        proc, path = start()
        deadline = time.monotonic() + 600
        while proc.poll() is None and time.monotonic() < deadline and "STEP_START" not in tail(path, 20_000):
            time.sleep(0.5)
        time.sleep(3)  # into the step: Spark is reading or writing the lake
        with outage(services.kill_minio, services.start_minio, plan.minio_outage_hourly_s, "MinIO"):
            pass
        code = proc.wait(900)
        book.checks["hourly run survived or failed cleanly"] = True
        if code != 0:
            book.runs_failed += 1
            log(f"silver run during the outage ended with {code}")
        else:
            return
    for retry in range(3):
        proc, path = start()
        code = proc.wait(900)
        if attempt > 1 or retry:
            book.runs_retried += 1
        if code == 0:
            return
        book.runs_failed += 1
        log(f"silver run failed ({code}):\n{tail(path)}")
    book.notes.append("silver never succeeded after 3 retries")
    book.checks["silver materialised"] = False


def second_stream(env: dict[str, str], workdir: Path, first: Stream, book: FaultLedger) -> None:
    """A second launch on the same checkpoint must fail fast, naming the running stream."""
    path = workdir / "second-stream.log"
    t0 = time.monotonic()
    proc = spawn(stream_cmd(workdir), env, path)
    try:
        code = proc.wait(900)  # Dagster and Spark start first: minutes on a busy machine
    except subprocess.TimeoutExpired:
        code = None
    finally:
        if proc.poll() is None:
            kill_group(proc)
    seconds = time.monotonic() - t0
    text = tail(path, 20_000)
    match = re.search(r"Another stream is running on checkpoint .*?Dagster run ([0-9a-f-]{36})", text)
    # The refusal names the running stream by its Dagster run id, which the first stream's log shows.
    named = match is not None and match.group(1) in tail(first.log_file, 10**7)
    book.checks["second stream refused, naming the first"] = code not in (0, None) and named
    book.checks["first stream still running"] = first.proc is not None and first.proc.poll() is None
    log(f"second stream exited {code} after {seconds:.0f}s; names the first: {named}")
    if not named:
        book.notes.append(f"second stream output: {text[-1500:]}")


def inject(
    plan: Plan, lake: Lake, stream: Stream, feed: Feed, env: dict[str, str], workdir: Path,
    book: FaultLedger, services: Services, rng: random.Random, t0: float,
) -> None:  # fmt: skip
    """The plan's faults, in order, while the feed runs; then the feed stops (settle phase)."""
    stream.wait_commits(2, 900)
    for i in range(plan.stream_kills):
        stream.wait_commits(rng.randint(1, 3), 900)
        time.sleep(rng.uniform(0, 2.5))  # anywhere in a batch: reading, writing, committing
        stream.kill9()
        log(f"kill -9 #{i + 1} of the stream (committed batch {stream.committed()})")
        planted = None
        if i == plan.stream_kills - 1:
            natural = lake.staging_leftovers()
            planted = lake.plant_staging_leftover()  # so the checks never depend on where a kill hit
            book.notes.append(f"{len(natural)} staging file(s) left by the last kill, 1 planted")
            if lake.local:
                book.checks["documented globs ignore staging leftovers"] = documented_globs_agree(lake, book)
        stream.start()
        if planted and lake.local:  # S3 has no way to age an object past the grace; readers still skip it
            stream.wait_started(900)  # the stream cleans old leftovers under its lease before it reads
            book.checks["stale staging leftovers removed by the restarted stream"] = (
                planted not in lake.staging_leftovers()
            )
    if plan.second_stream:
        stream.wait_commits(1, 900)
        second_stream(env, workdir, stream, book)
    if plan.broker_restart:
        assert services.kill_broker and services.start_broker
        stream.wait_commits(1, 900)
        with outage(services.kill_broker, services.start_broker, 5, "Kafka broker (kill -9)"):
            pass
        stream.wait_commits(2, 900)
    if plan.minio_outage_stream_s:
        assert services.kill_minio and services.start_minio
        stream.wait_commits(1, 900)
        with outage(services.kill_minio, services.start_minio, plan.minio_outage_stream_s, "MinIO"):
            pass
        stream.wait_commits(2, 900)
    remaining = plan.min_feed_s - (time.monotonic() - t0)
    if remaining > 0:
        time.sleep(remaining)
    feed.stop()


def run_plan(
    plan: Plan, lake: Lake, kafka: KafkaResource, services: Services, workdir: Path,
    settle_timeout_s: float = 600,
) -> FaultLedger:  # fmt: skip
    """Run one scenario end to end and return its ledger (never raises for a missed target)."""
    t0 = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    home = workdir / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = pipeline_env(lake, kafka, home)
    book = FaultLedger(plan.name)
    rng = random.Random(plan.seed)
    stream = Stream(lake, kafka, env, workdir)
    feed = Feed(kafka, plan.rate, plan.seed)
    try:
        stream.start()
        stream.wait_started(900)
        feed.start()
        log(f"{plan.name}: feeding {plan.rate:.0f} records/s, lake {lake.root}")
        inject(plan, lake, stream, feed, env, workdir, book, services, rng, t0)
        stream.settle(settle_timeout_s)
        code = stream.stop()
    finally:
        feed.stop()
        stream.close()
    book.notes.append(f"stream exit code after SIGTERM: {code}")
    book.checks["lease released on stop"] = not lake.lock_exists()
    book.stream_kills = stream.killed
    book.runs_failed += stream.killed + stream.failed
    book.runs_retried += stream.starts - 1
    if feed.errors:
        book.notes.append(f"producer errors: {feed.errors[:3]}")
    hours = feed.hours()
    run_hourly(lake, env, hours, workdir, book, services, plan)
    count_ledger(book, feed, lake)
    book.seconds = time.monotonic() - t0
    log(f"{plan.name}: {json.dumps(book.__dict__, default=str)}")
    return book


def runbook_globs() -> list[str]:
    """The DuckDB globs of the runbook's "Faults and recovery" section, relative to the lake root."""
    text = (REPO / "docs" / "operations.md").read_text()
    section = text[text.index("## Faults and recovery") :]
    return re.findall(r"'\.local/lake/([^']+\.parquet)'", section)


def documented_globs_agree(lake: Lake, book: FaultLedger) -> bool:
    """The runbook's DuckDB globs count the same rows as Spark-style readers (which skip hidden
    directories); what a ``**`` glob would count is noted, to show what the leftovers would add."""
    import duckdb

    root = local_path(lake.root)
    globs = runbook_globs()
    if len(globs) < 2:
        book.notes.append(f"the runbook names {len(globs)} DuckDB glob(s), expected bronze and quarantine")
        return False

    def count(glob: str) -> int:
        try:
            sql = f"SELECT count(*) FROM read_parquet('{root}/{glob}', hive_partitioning = true)"
            return duckdb.sql(sql).fetchall()[0][0]
        except duckdb.IOException:  # no file matches yet
            return 0

    agree = True
    for glob in globs:
        dataset = f"{lake.root}/{glob.split('/')[0]}/{glob.split('/')[1]}"
        spark_like = len(lake.rows(dataset, ["kafka_offset"]))
        documented = count(glob)
        try:
            careless: int | str = count(f"{glob.split('/')[0]}/{glob.split('/')[1]}/**/*.parquet")
        except duckdb.Error as exc:  # a half-written file of a killed write: what '**' runs into
            careless = f"fails ({str(exc).splitlines()[0][:80]})"
        book.notes.append(
            f"{glob.split('/')[0]}: documented glob {documented}, '**' {careless}, pyarrow {spark_like}"
        )
        agree = agree and documented == spark_like
    return agree


@dataclass
class FaultMinio:
    server: MinioServer
    user: str
    password: str
    binary: Path

    def env(self) -> dict[str, str]:
        return client_env(self.server.endpoint, self.user, self.password)

    def kill(self) -> None:
        """An outage as a crash: SIGKILL, no shutdown."""
        pid = self.server.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)

    def start(self) -> None:
        self.server.start(self.user, self.password, binary=self.binary, wait_seconds=120)

    def make_bucket(self) -> str:
        client = s3_client(
            self.server.endpoint, DEFAULT_REGION, path_style=True, credentials=(self.user, self.password)
        )
        name = f"faults-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=name)
        return name


def fault_services(broker: KafkaBroker | None = None, minio: FaultMinio | None = None) -> Services:
    """The faults a plan may inject into these services: kill -9 and restart of each."""
    services = Services()
    if broker is not None:

        def kill() -> None:
            pid = broker.pid()
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 30
                while broker.pid() is not None and time.monotonic() < deadline:
                    time.sleep(0.1)

        services.kill_broker, services.start_broker = kill, lambda: broker.start(timeout_s=300)
    if minio is not None:
        services.kill_minio, services.start_minio = minio.kill, minio.start
    return services

"""A real single-node Apache Kafka 4.x broker (KRaft, combined broker+controller) as a local process.

No Docker: the broker jars come from Maven Central through the machine's Maven (cached outside the
repository, so later starts need no network) and run on the machine's Java. The process is started
detached with a pid file under its state directory, so ``start`` returns and a ``stop`` from another
process (the CLI, a Makefile target) finds it again.

With ``security`` the broker also serves a SASL_SSL listener (SCRAM over TLS, as production clusters
do), with a certificate signed by a throwaway CA that :func:`make_tls` generates with ``openssl``; the
PLAINTEXT listener stays for the broker's own health checks and inter-broker traffic.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from iot_pipeline.services.maven import require_tool, resolve_classpath
from iot_pipeline.services.paths import cache_dir
from iot_pipeline.services.processes import (
    StateFile,
    free_ports,
    listening,
    port_in_use,
    read_pid,
    tail_log,
)

# Newest 4.x release Maven Central serves (checked 4.1.1 ... 4.4.0); log4j matches what Kafka 4.4.0 is
# built against. Kafka's POMs pin slf4j-api 1.7.36, which cannot see the SLF4J 2 binding of
# log4j-slf4j2-impl (the broker would log nothing), so slf4j-api 2.x is named explicitly.
KAFKA_VERSION = "4.4.0"
LOG4J_VERSION = "2.25.5"
SLF4J_VERSION = "2.0.17"
HOST = "127.0.0.1"
JAVA_HINT = "install a JDK 17+ (Debian: apt-get install openjdk-17-jdk-headless)."

_LOG4J2_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <RollingFile name="server" fileName="{log}" filePattern="{log}.%i">
      <PatternLayout pattern="[%d{{ISO8601}}] %p %m (%c)%n"/>
      <Policies><SizeBasedTriggeringPolicy size="20 MB"/></Policies>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="server"/></Root>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Logger name="org.apache.kafka.controller" level="INFO"/>
  </Loggers>
</Configuration>
"""


class KafkaBrokerError(RuntimeError):
    """The local broker could not be fetched, formatted, started or stopped; the message says why."""


class PortInUseError(KafkaBrokerError):
    """A port the broker needs is taken; the message names the setting that chooses it."""


@dataclass(frozen=True)
class TlsFiles:
    """A CA and the broker's key store signed by it (PKCS#12, the format Kafka's JVM reads natively)."""

    ca_file: Path
    keystore: Path
    keystore_password: str = field(repr=False)


def make_tls(directory: Path, host: str = HOST, days: int = 7) -> TlsFiles:
    """A throwaway CA and a broker certificate for ``host`` (IP and DNS names), made with ``openssl``.

    Nothing here is secret beyond the test or local session: keys are generated, never committed.
    """
    openssl = require_tool("openssl", "install openssl (Debian: apt-get install openssl).")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    password = secrets.token_hex(16)
    ca_key, ca_pem = directory / "ca.key", directory / "ca.pem"
    key, csr, pem = directory / "broker.key", directory / "broker.csr", directory / "broker.pem"
    ext = directory / "broker.ext"
    ext.write_text(
        f"subjectAltName=IP:{host},DNS:localhost\nextendedKeyUsage=serverAuth\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
    )
    keystore = directory / "broker.p12"

    def run(*args: str) -> None:
        result = subprocess.run([openssl, *args], capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise KafkaBrokerError(f"openssl {args[0]} failed: {result.stderr.strip()}")

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca_pem),
        "-days", str(days), "-subj", "/CN=iot-pipeline local Kafka CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={host}")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_pem), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(pem), "-days", str(days), "-extfile", str(ext))  # fmt: skip
    run("pkcs12", "-export", "-in", str(pem), "-inkey", str(key), "-certfile", str(ca_pem),
        "-name", "broker", "-out", str(keystore), "-passout", f"pass:{password}")  # fmt: skip
    for private in (ca_key, key, keystore):
        private.chmod(0o600)
    return TlsFiles(ca_pem, keystore, password)


@dataclass(frozen=True)
class BrokerSecurity:
    """A SASL_SSL listener on ``port``: TLS from ``tls``, SCRAM logins for ``users`` (name -> password)."""

    port: int
    tls: TlsFiles
    users: dict[str, str] = field(repr=False)
    mechanism: str = "SCRAM-SHA-512"

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    healthy: bool
    pid: int | None
    bootstrap_servers: str
    state_dir: Path
    log_file: Path


def new_cluster_id() -> str:
    """What ``kafka-storage random-uuid`` prints, without paying a JVM start.

    Kafka's ``Uuid.randomUuid``: 16 random bytes, URL-safe base64 without padding, never starting
    with '-' (it would read as a command-line flag); the all-zero and metadata-topic ids are reserved.
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-") and text not in ("AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAQ"):
            return text


@dataclass
class KafkaBroker:
    """One broker+controller node whose data, config, logs and pid file live in ``state_dir``.

    The ports are written into ``server.properties`` at every start; keep them stable for a given
    state directory (the controller endpoint is recorded in the KRaft metadata at format time).
    """

    state_dir: Path
    port: int = 9092
    controller_port: int = 9093
    heap: str = "512m"
    version: str = KAFKA_VERSION
    security: BrokerSecurity | None = None

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).resolve()
        self._child: subprocess.Popen[bytes] | None = None

    # -- paths -------------------------------------------------------------------------------------
    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"

    data_dir = StateFile("data")
    log_file = StateFile("logs", "server.log")  # the broker's own log (log4j2, rolled at 20 MB)
    stdout_file = StateFile("logs", "kafka.out")  # JVM stdout/stderr: a crash before logging starts
    pid_file = StateFile("kafka.pid")
    properties_file = StateFile("server.properties")
    log4j_file = StateFile("log4j2.xml")

    @property
    def formatted(self) -> bool:
        return (self.data_dir / "meta.properties").exists()

    # -- setup -------------------------------------------------------------------------------------
    def coordinates(self) -> list[str]:
        return [
            f"org.apache.kafka:kafka_2.13:{self.version}",
            f"org.apache.logging.log4j:log4j-core:{LOG4J_VERSION}",
            f"org.apache.logging.log4j:log4j-slf4j2-impl:{LOG4J_VERSION}",
            f"org.slf4j:slf4j-api:{SLF4J_VERSION}",
        ]

    def fetch(self) -> list[Path]:
        """Resolve the broker's jars (first call downloads, later calls read the cache); write configs."""
        require_tool("java", JAVA_HINT)
        classpath = resolve_classpath(f"kafka-{self.version}", self.coordinates())
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log4j_file.write_text(_LOG4J2_XML.format(log=self.log_file))
        self.properties_file.write_text(self.server_properties())
        if self.security is not None:
            self.properties_file.chmod(0o600)  # holds the key store's password
        return classpath

    def _listeners(self) -> str:
        listeners = f"PLAINTEXT://{self.bootstrap_servers},CONTROLLER://{HOST}:{self.controller_port}"
        if self.security is not None:
            listeners += f",SASL_SSL://{self.security.bootstrap_servers}"
        return listeners

    def _security_properties(self) -> dict[str, str]:
        sec = self.security
        if sec is None:
            return {}
        prefix = "listener.name.sasl_ssl"
        return {
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL",
            "sasl.enabled.mechanisms": sec.mechanism,
            f"{prefix}.ssl.keystore.type": "PKCS12",
            f"{prefix}.ssl.keystore.location": str(sec.tls.keystore),
            f"{prefix}.ssl.keystore.password": sec.tls.keystore_password,
            f"{prefix}.{sec.mechanism.lower()}.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
        }

    def _running_listeners(self) -> str:
        for line in self.properties_file.read_text().splitlines():
            if line.startswith("listeners="):
                return line.split("=", 1)[1]
        return ""

    def server_properties(self) -> str:
        ctl = f"{HOST}:{self.controller_port}"
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": ctl,
            "listeners": self._listeners(),
            "advertised.listeners": self._listeners(),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            # One node: every internal topic has exactly one replica.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "5",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "num.partitions": "3",
            # Consumers in tests and the stream join at once instead of after 3 s.
            "group.initial.rebalance.delay.ms": "0",
            # Room for oversized-record tests (the contract's limit is ~1 MB).
            "message.max.bytes": str(2 * 1024 * 1024),
            "replica.fetch.max.bytes": str(2 * 1024 * 1024),
            "num.network.threads": "2",
            "num.io.threads": "4",
            **self._security_properties(),
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    # -- class-data sharing ------------------------------------------------------------------------
    # A JVM that maps an AppCDS archive of Kafka's classes starts the broker much faster (measured in
    # docs/local-kafka.md). The first broker records the archive when it exits cleanly; ``stop`` then
    # moves it into the cache, keyed by the exact classpath. A stale or broken archive is ignored by
    # the JVM (-Xshare:auto), so this only ever costs the one-time dump.
    def _cds_archive(self, classpath: list[Path]) -> Path:
        digest = hashlib.sha256(os.pathsep.join(map(str, classpath)).encode()).hexdigest()[:12]
        return cache_dir() / "kafka" / f"kafka-{self.version}-{digest}.jsa"

    @property
    def _cds_pending(self) -> Path:
        return self.state_dir / "cds" / "kafka.jsa"

    def _cds_options(self, classpath: list[Path], record: bool) -> list[str]:
        archive = self._cds_archive(classpath)
        if archive.exists():
            return [f"-XX:SharedArchiveFile={archive}", "-Xlog:cds*=off"]
        if not record:
            return []
        self._cds_pending.parent.mkdir(parents=True, exist_ok=True)
        self._cds_pending.unlink(missing_ok=True)
        (self._cds_pending.parent / "target").write_text(str(archive))
        return [f"-XX:ArchiveClassesAtExit={self._cds_pending}", "-Xlog:cds*=off"]

    def _promote_cds_archive(self) -> None:
        target_file = self._cds_pending.parent / "target"
        if not (self._cds_pending.exists() and target_file.exists()):
            return
        target = Path(target_file.read_text().strip())
        if not target.exists() and self._cds_pending.stat().st_size > 0:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
            shutil.copyfile(self._cds_pending, partial)
            os.replace(partial, target)  # atomic: concurrent brokers never map a half-written file
        self._cds_pending.unlink(missing_ok=True)

    def _java(
        self, classpath: list[Path], *args: str, heap: str = "256m", record_cds: bool = False
    ) -> list[str]:
        java = require_tool("java", JAVA_HINT)
        return [
            java,
            f"-Xmx{heap}",
            *self._cds_options(classpath, record_cds),
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.log4j_file}",
            "-cp",
            os.pathsep.join(str(p) for p in classpath),
            *args,
        ]

    def format_storage(self, classpath: list[Path]) -> bool:
        """Format the log directory once; an already formatted directory keeps its data."""
        if self.formatted:
            return False
        # SCRAM credentials live in the KRaft metadata: written at format time, before the first start.
        scram = [
            arg
            for name, password in (self.security.users.items() if self.security else ())
            for arg in ("--add-scram", f"{self.security.mechanism}=[name={name},password={password}]")
        ]
        fmt = self._java(
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "-t",
            new_cluster_id(),
            "-c",
            str(self.properties_file),
            *scram,
        )
        result = subprocess.run(fmt, capture_output=True, text=True)
        if result.returncode != 0:
            raise KafkaBrokerError(f"StorageTool format failed:\n{result.stdout}{result.stderr}")
        return True

    # -- process -----------------------------------------------------------------------------------
    def pid(self) -> int | None:
        """The pid of this state directory's broker if it is alive (checked against its command line).

        A broker this object spawned is judged by its process handle alone: between fork and exec its
        command line is still the caller's, which would read as "exited during start-up".
        """
        if self._child is not None:
            if self._child.poll() is None:
                return self._child.pid
            self._child = None
        pid = read_pid(self.pid_file)  # judged below by /proc: a zombie, or a reused pid
        if pid is None:
            return None
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return None
        cmdline = self._cmdline(pid)
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":  # exited, not yet reaped
            return None
        if str(self.properties_file).encode() not in cmdline:  # pid reused by another process
            return None
        return pid

    @staticmethod
    def _cmdline(pid: int) -> list[bytes]:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError):
            return []

    def _check_ports(self) -> None:
        for port, setting in (
            (self.port, "the broker port (--port, or the port in IOT_KAFKA_BOOTSTRAP_SERVERS)"),
            (self.controller_port, "the controller port (--controller-port or IOT_KAFKA_CONTROLLER_PORT)"),
            *([(self.security.port, "the SASL_SSL port (--sasl-ssl-port)")] if self.security else []),
        ):
            if port_in_use(port):
                raise PortInUseError(
                    f"Port {HOST}:{port} is already in use by another process, so the Kafka broker cannot "
                    f"bind it. Stop that process or choose another value for {setting}."
                )

    def start(self, timeout_s: float = 90.0) -> bool:
        """Start the broker detached and wait until it answers; False if it was already running."""
        if self.pid() is not None:
            running = self._running_listeners()
            if running != self._listeners():
                raise KafkaBrokerError(
                    f"A Kafka broker from {self.state_dir} is already running with listeners {running}; "
                    f"stop it first to change its ports to {self._listeners()}."
                )
            self.wait_healthy(timeout_s)
            return False
        self._check_ports()
        classpath = self.fetch()
        self.format_storage(classpath)
        cmd = self._java(
            classpath,
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "kafka.Kafka",
            str(self.properties_file),
            heap=self.heap,
            record_cds=True,
        )
        with self.stdout_file.open("wb") as out:
            self._child = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                start_new_session=True,  # survives the caller's Ctrl-C and exit
            )
        self.pid_file.write_text(f"{self._child.pid}\n")
        try:
            self.wait_healthy(timeout_s)
        except KafkaBrokerError:
            self.stop()
            raise
        return True

    def _early_exit_error(self) -> KafkaBrokerError:
        return KafkaBrokerError(
            f"The Kafka broker exited during start-up. Last lines of {self.log_file}:\n"
            f"{tail_log(self.log_file, 40)}\n--- {self.stdout_file} ---\n{tail_log(self.stdout_file, 20)}"
        )

    def healthy(self, timeout_s: float = 5.0, bootstrap_servers: str | None = None) -> bool:
        """The broker answers a metadata request that names a broker and an active controller."""
        bootstrap_servers = bootstrap_servers or self.bootstrap_servers
        if not listening(int(bootstrap_servers.rsplit(":", 1)[1])):
            return False
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 2})
        try:
            metadata = admin.list_topics(timeout=timeout_s)
        except KafkaException:
            return False
        return len(metadata.brokers) >= 1 and metadata.controller_id >= 0

    def wait_healthy(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.pid() is None:
                raise self._early_exit_error()
            if self.healthy(timeout_s=min(5.0, max(0.5, deadline - time.monotonic()))):
                return
            time.sleep(0.2)
        raise KafkaBrokerError(
            f"The Kafka broker at {self.bootstrap_servers} did not become healthy within {timeout_s:.0f}s. "
            f"Last lines of {self.log_file}:\n{tail_log(self.log_file, 40)}"
        )

    def stop(self, timeout_s: float = 30.0) -> bool:
        """SIGTERM (controlled shutdown), then SIGKILL after ``timeout_s``; False if it was not running.

        A broker that records the class-data archive gets 90 s more: the one-time dump at exit is
        CPU-bound and slow on a busy machine (docs/local-kafka.md), and a kill would throw it away.
        """
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        recording = f"-XX:ArchiveClassesAtExit={self._cds_pending}".encode() in self._cmdline(pid)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s + (90.0 if recording else 0.0)
        while time.monotonic() < deadline and self._alive(pid):
            time.sleep(0.1)
        if self._alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while self._alive(pid):
                time.sleep(0.1)
            self._cds_pending.unlink(missing_ok=True)  # possibly half-written
        self._promote_cds_archive()
        self._child = None
        self.pid_file.unlink(missing_ok=True)
        return True

    def _alive(self, pid: int) -> bool:
        if self._child is not None and self._child.pid == pid:
            return self._child.poll() is None  # also reaps our own child
        return self.pid() == pid

    def status(self) -> BrokerStatus:
        """What runs from this state directory; the address comes from the running broker's config."""
        pid = self.pid()
        bootstrap = self.bootstrap_servers
        if pid is not None:
            plaintext = self._running_listeners().split(",")[0]
            bootstrap = plaintext.removeprefix("PLAINTEXT://") or bootstrap
        return BrokerStatus(
            running=pid is not None,
            healthy=pid is not None and self.healthy(timeout_s=3.0, bootstrap_servers=bootstrap),
            pid=pid,
            bootstrap_servers=bootstrap,
            state_dir=self.state_dir,
            log_file=self.log_file,
        )


@contextlib.contextmanager
def broker_for_benchmark(bootstrap: str | None, heap: str = "1g") -> Iterator[str]:
    """``bootstrap`` when given (a running broker), else a throwaway broker on free ports, stopped after."""
    if bootstrap:
        yield bootstrap
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="iot-bench-kafka-") as tmp:
        port, controller = free_ports(2)
        b = KafkaBroker(Path(tmp), port=port, controller_port=controller, heap=heap)
        b.start(timeout_s=300)
        try:
            yield b.bootstrap_servers
        finally:
            b.stop()

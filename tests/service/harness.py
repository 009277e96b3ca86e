"""Helpers of the service integration tests: configs, topics, producers, monitor processes.

The tests run the real service -- ``driftline run --config FILE`` as a
subprocess (or :class:`monitor.service.run.Service` in-process where a test needs
its Prometheus registry) -- against the real broker and database fixtures of
``tests/conftest.py``. Everything here is bounded: every wait has a timeout,
every process started through :class:`MonitorPool` is killed at teardown.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from prometheus_client import CollectorRegistry

from monitor.analyses.reference import build_profile
from monitor.config.service import ServiceConfig
from monitor.metrics import Metrics
from monitor.service.run import Service, load_runtimes
from monitor.store import Store, WindowSummaryRow
from monitor.streaming.evaluate import Evaluator
from monitor.streaming.ingest import Ingestor
from tests.servers import free_port, unique_name
from tests.service.streams import Stream

REPO = Path(__file__).resolve().parents[2]
PARTITIONS = 4
#: The consumer backend of the configs :func:`write_config` writes (``kafka-python`` when
#: unset). The ``kafka_backend`` fixture of ``tests/service/conftest.py`` sets it per test;
#: setting it by hand runs any service test on the other backend.
BACKEND_ENV = "DRIFTLINE_TEST_KAFKA_BACKEND"


# --- names, topics and configs ---


@dataclass(frozen=True)
class Names:
    """Topic names of one test (shared by every monitor of that test) and its model."""

    predictions: str
    labels: str
    dead_letter: str
    model: str

    @classmethod
    def fresh(cls, model: str = "credit") -> Names:
        return cls(
            predictions=unique_name("predictions"),
            labels=unique_name("labels"),
            dead_letter=unique_name("dead"),
            model=model,
        )


def create_topics(bootstrap: str, names: Iterable[str], partitions: int = PARTITIONS) -> None:
    """Create ``names`` with ``partitions`` partitions each (the broker would auto-create 4)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names]
        )
    finally:
        admin.close()


def write_config(
    path: Path,
    *,
    bootstrap: str,
    names: Names,
    group: str,
    database_url: str,
    consumer: dict[str, Any] | None = None,
    scheduler: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None,
    client_options: dict[str, Any] | None = None,
    http_port: int = 0,
) -> Path:
    """Write a service config for the tests' broker settings and return its path.

    Defaults: fast group joins (session 2 s, heartbeat 0.5 s), checkpoints every
    0.2 s, evaluation every 0.5 s, 1-minute windows without lateness; the HTTP
    API on ``http_port`` (0: any free port, so that monitors never clash); the
    consumer backend named by :data:`BACKEND_ENV` (kafka-python when unset).
    """
    data: dict[str, Any] = {
        "broker": {"bootstrap_servers": [bootstrap]},
        "topics": {
            "predictions": names.predictions,
            "labels": names.labels,
            "dead_letter": names.dead_letter,
        },
        "consumer": {
            "group_id": group,
            "session_timeout_ms": 2000,
            "heartbeat_interval_ms": 500,
            "checkpoint_interval_s": 0.2,
            "idle_timeout_s": 5,
            "max_poll_records": 200,
            **(consumer or {}),
        },
        "database": {"url": database_url},
        "http": {"host": "127.0.0.1", "port": http_port},
        "scheduler": {"evaluate_interval_s": 0.5, "claim_stale_after_s": 3, **(scheduler or {})},
        "models": [
            {
                "name": names.model,
                "window": {"size": "1m", "allowed_lateness": "0s", "min_records": 50},
                "drift": {"correction": "bh"},
                **(model or {}),
            }
        ],
    }
    if client_options:
        data["broker"]["client_options"] = client_options
    backend = os.environ.get(BACKEND_ENV, "").strip()
    if backend and "backend" not in data["consumer"]:
        data["consumer"]["backend"] = backend
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    ServiceConfig.load(path)  # fail here, not in a subprocess, if the config is invalid
    return path


def store_reference(
    database_url: str, config_path: Path, stream: Stream, frame: pd.DataFrame | None = None
) -> None:
    """Store the reference profile of ``frame`` (default: the stream's) as the model's version 1.

    As ``driftline reference build`` does; nothing is stored if the model has a profile.
    """
    config = ServiceConfig.load(config_path)
    model = config.models[0]
    data = stream.reference() if frame is None else frame
    store = Store.connect(database_url)
    try:
        if store.latest_profile(model.name) is None:
            store.save_profile(model.name, build_profile(model, data).to_bytes())
    finally:
        store.close()


# --- producing ---


def producer(bootstrap: str) -> KafkaProducer:
    """A producer that survives broker restarts (no idempotence: see DESIGN.md)."""
    return KafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, enable_idempotence=False, acks=1, retries=5
    )


def produce(bootstrap: str, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
    """Send ``(key, value)`` records in order and wait until the broker has them all."""
    client = producer(bootstrap)
    try:
        futures = [client.send(topic, key=key, value=value) for key, value in records]
        client.flush(timeout=30)
        for future in futures:
            future.get(timeout=10)  # raises if a record was not written
    finally:
        client.close(timeout=5)


class PacedProducer:
    """Produces chunks of records on a background thread, one chunk every ``pace_s``.

    ``produced`` is the number of records acknowledged so far; an error ends the
    thread and is raised again by :meth:`join`.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        chunks: Sequence[Sequence[tuple[bytes | None, bytes]]],
        pace_s: float,
        *,
        before_chunk: Callable[[int], None] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.chunks = chunks
        self.pace_s = pace_s
        self.before_chunk = before_chunk
        self.produced = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="paced-producer", daemon=True)

    def start(self) -> PacedProducer:
        self._thread.start()
        return self

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            for index, chunk in enumerate(self.chunks):
                if self._stop.is_set():
                    return
                if self.before_chunk is not None:
                    self.before_chunk(index)
                started = time.monotonic()
                produce(self.bootstrap, self.topic, chunk)
                self.produced += len(chunk)
                self._stop.wait(max(self.pace_s - (time.monotonic() - started), 0.0))
        except BaseException as error:  # re-raised by join()
            self.error = error

    def join(self, timeout: float = 60.0) -> None:
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._stop.set()
            raise AssertionError(f"producer still running after {timeout} s")
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


# --- monitor processes ---


@dataclass(eq=False)
class Monitor:
    """One ``driftline run`` subprocess; its output goes to ``log_path``.

    ``env`` is added to this process's environment (credentials, say) and
    ``args`` to the command line (``--log-level DEBUG``, say).
    """

    config_path: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> Monitor:
        assert not self.alive, "already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts} ---\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "monitor.cli",
                    "run",
                    "--config",
                    str(self.config_path),
                    *self.args,
                ],
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            )
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no last checkpoint, no leaving the group."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM (a clean stop with a last checkpoint), SIGKILL after ``grace`` seconds."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


@dataclass
class MonitorPool:
    """Creates :class:`Monitor` processes and kills every one of them at teardown."""

    directory: Path
    monitors: list[Monitor] = field(default_factory=list)

    def new(
        self,
        config_path: Path,
        name: str,
        *,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> Monitor:
        monitor = Monitor(config_path, self.directory / f"{name}.log", dict(env or {}), args)
        self.monitors.append(monitor)
        return monitor

    def kill_all(self) -> None:
        for monitor in self.monitors:
            monitor.kill()

    def logs(self) -> str:
        """Every monitor's output (tail), for assertion messages."""
        parts = []
        for monitor in self.monitors:
            # The scheduler logs every job run at INFO: leave those out.
            lines = [line for line in monitor.log().splitlines() if "apscheduler" not in line]
            text = "\n".join(lines)
            parts.append(f"===== {monitor.log_path.name} =====\n{text[-6000:]}")
        return "\n".join(parts)


# --- waiting and reading results ---


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    message: str | Callable[[], str],
    interval: float = 0.05,
) -> None:
    """Return once ``condition()`` is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message() if callable(message) else message)
        time.sleep(interval)


def stored_offsets(store: Store, group: str, topic: str) -> dict[int, int]:
    """``{partition: next offset}`` checkpointed in the database for ``group``."""
    return {p: row.next_offset for p, row in store.progress(group, topic).items()}


def summaries(store: Store, model: str) -> list[WindowSummaryRow]:
    """Every evaluated window of ``model``, oldest first."""
    return sorted(store.window_summaries(model, limit=10_000), key=lambda s: s.window_start)


Snapshot = dict[float, dict[str, Any]]


def snapshot(store: Store, model: str) -> Snapshot:
    """Every stored result of ``model`` by window start: summary and per-feature rows."""
    out: Snapshot = {}
    for summary in summaries(store, model):
        features = {
            (f.feature, f.method): {
                "kind": f.kind,
                "statistic": f.statistic,
                "p_value": f.p_value,
                "threshold": f.threshold,
                "drift": f.drift,
                "effect_size": f.effect_size,
                "missing_share": f.missing_share,
                "status": f.status,
            }
            for f in store.feature_results(model, summary.window_start)
        }
        out[summary.window_start] = {
            "window_end": summary.window_end,
            "rows": summary.rows,
            "status": summary.status,
            "dataset_drift": summary.dataset_drift,
            "drift_share": summary.drift_share,
            "prediction_drift": summary.prediction_drift,
            "details": dict(summary.details),
            "features": features,
        }
    return out


def _same(a: Any, b: Any, rel: float) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k], rel) for k in a)
    if isinstance(a, float) and isinstance(b, float) and not isinstance(a, bool):
        if math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=rel, abs_tol=rel)
    return bool(a == b) and type(a) is type(b)


def assert_same_results(actual: Snapshot, expected: Snapshot, *, rel: float = 1e-9) -> None:
    """Assert two runs stored the same windows with the same results.

    Counts, statuses, kinds and drift verdicts must be equal; floating-point
    statistics equal to ``rel`` (a window's partial sketches hold sums, and
    sums of the same numbers added in other batches may differ in the last
    bits -- nothing else may differ).
    """
    assert sorted(actual) == sorted(expected), (
        f"evaluated windows differ: {sorted(actual)} != {sorted(expected)}"
    )
    for start in expected:
        a, e = actual[start], expected[start]
        assert a.keys() == e.keys()
        for key in e:
            assert _same(a[key], e[key], rel), (
                f"window {start}: {key} differs:\n  got      {a[key]!r}\n  expected {e[key]!r}"
            )


def expected_rows(stream: Stream, windows: Iterable[int]) -> dict[float, int]:
    """``{window start: records produced in it}``."""
    return {stream.window_start(i): stream.per_window for i in windows}


@contextmanager
def opened(database_url: str) -> Iterator[Store]:
    """A :class:`Store` on ``database_url``, closed on exit."""
    store = Store.connect(database_url)
    try:
        yield store
    finally:
        store.close()


@contextmanager
def running_service(config_path: Path) -> Iterator[Service]:
    """The service in this process (no HTTP API), stopped on exit; tests read its registry."""
    service = Service(ServiceConfig.load(config_path), registry=CollectorRegistry())
    service.start(http=False)
    try:
        yield service
    finally:
        service.stop(timeout=15)


def sample(service: Service, name: str, labels: dict[str, str]) -> float | None:
    """The current value of one metric sample of an in-process service (None if unset)."""
    value: float | None = service.registry.get_sample_value(name, labels)
    return value


#: A model section that adds joint drift on small row samples: runs that must store equal
#: results then also need equal samples (keyed by partition and offset, merged exactly).
JOINT_DRIFT: dict[str, Any] = {
    "multivariate": {
        "methods": ["pca_reconstruction", "mmd"],
        "reference_rows": 300,
        "current_rows": 100,
    }
}


def reference_results(
    tmp_path: Path,
    *,
    bootstrap: str,
    names: Names,
    stream: Stream,
    timeout: float = 60.0,
    model: dict[str, Any] | None = None,
) -> Snapshot:
    """Results of one uninterrupted in-process run over the whole topic (own group, SQLite).

    Consumes every produced record of ``stream``, checkpoints, evaluates every due
    window and returns :func:`snapshot` of what it stored. ``model`` adds sections
    to the model's config, as in :func:`write_config`.
    """
    url = f"sqlite:///{tmp_path / 'reference-run.db'}"
    path = write_config(
        tmp_path / "reference-run.yaml",
        bootstrap=bootstrap,
        names=names,
        group=unique_name("reference"),
        database_url=url,
        consumer={"max_poll_records": 2000},
        model=model,
    )
    store_reference(url, path, stream)
    config = ServiceConfig.load(path)
    total = stream.windows * stream.per_window
    with opened(url) as store:
        runtimes = load_runtimes(config, store)
        metrics = Metrics(CollectorRegistry())
        ingestor = Ingestor(config, store, runtimes, metrics)
        try:
            deadline = time.monotonic() + timeout
            while True:
                ingestor.poll_once(timeout_ms=200)
                done = sum(
                    state.next_offset or 0
                    for tp, state in ingestor.states.items()
                    if tp.topic == names.predictions
                )
                if done >= total:
                    break
                assert time.monotonic() < deadline, f"reference run read {done} of {total}"
            ingestor.checkpoint()
        finally:
            ingestor.close()
        Evaluator(config, store, runtimes, metrics, owner="reference").run_once()
        return snapshot(store, stream.model)


class TcpProxy:
    """A TCP forwarder to ``target``: :meth:`stop` is an outage, :meth:`start` the recovery.

    Stopping closes the listening socket (new connections are refused) and every
    forwarded connection (clients see them reset), like a database host that
    went away; starting again listens on the same port.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._running = threading.Event()

    def start(self) -> TcpProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self._listener = listener
        self._running.set()
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        self._running.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            for sock in self._sockets:
                _close(sock)
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while self._running.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                if not self._running.is_set():
                    _close(client)
                    _close(upstream)
                    return
                self._sockets |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets -= {src, dst}
            _close(src)
            _close(dst)


def _close(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()

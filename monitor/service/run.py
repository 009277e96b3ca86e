"""The running service: store, model runtimes, ingestion thread, scheduled evaluation.

``driftline run --config FILE`` builds a :class:`Service` and calls
:meth:`Service.run`; tests and the demo use :meth:`Service.start` and
:meth:`Service.stop` around their own work.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import CollectorRegistry

from monitor.alerting.alertmanager import AlertmanagerRefresher
from monitor.alerting.delivery import deliverer
from monitor.alerting.rules import AlertRules
from monitor.analyses.model import ModelRuntimes, ProfileVersions, runtime_of
from monitor.analyses.reference import build_reference, check_reference_columns
from monitor.config.service import ModelConfig, ServiceConfig
from monitor.datafiles import read_table
from monitor.http.app import create_app
from monitor.http.server import ApiServer, serve
from monitor.metrics import Metrics
from monitor.store import Store
from monitor.store.alerting import AlertStore, SqlOutbox
from monitor.streaming.evaluate import Evaluator
from monitor.streaming.ingest import Ingestor
from monitor.streaming.kafka_security import KafkaLogin

log = logging.getLogger(__name__)


class ServiceError(RuntimeError):
    """The service cannot start; the message says what to fix."""


class IngestionError(ServiceError):
    """Ingestion stopped on an error it cannot recover from (``cause``); the service stops too.

    :meth:`Service.run` raises it so that ``driftline run`` exits non-zero and
    a supervisor restarts the process (and alerts on the restarts).
    """

    def __init__(self, cause: BaseException) -> None:
        detail = " ".join(str(cause).split())[:500]
        super().__init__(
            f"ingestion stopped on an unrecoverable error: {type(cause).__name__}: {detail}"
        )
        self.cause = cause


def load_runtimes(config: ServiceConfig, store: Store) -> ModelRuntimes:
    """Return every configured model's runtimes: one per stored reference profile version.

    Each window uses the version in force at its start (see
    :class:`~monitor.analyses.model.ModelRuntimes`; :meth:`Service.reload_references`
    adds versions stored later). A model without a stored profile gets one
    built from its configured ``reference`` file (and stored as version 1,
    with its performance estimator when the model has ``performance_estimation``);
    a model with neither cannot be monitored and is an error naming the model
    and the two ways to fix it. A newest stored profile that does not fit the
    config (data-quality bounds on a column it lacks) is an error too; an older
    one is left out with a warning.
    """
    models = {}
    for model in config.models:
        rows = store.profiles_since(model.name)
        if not rows:
            version, _ = _profile_from_file(model, store)
            rows = [row for row in store.profiles_since(model.name) if row.version == version]
        versions: ProfileVersions | None = None
        for row in rows:
            stored = store.profile(model.name, row.version)
            if stored is None:
                continue
            try:
                runtime = runtime_of(model, row.version, stored)
            except ValueError as error:
                if row is rows[-1]:
                    raise ServiceError(str(error)) from error
                # An older version the config outgrew: its windows use the next older one.
                log.warning("reference version %d left out: %s", row.version, error)
                continue
            if versions is None:
                versions = ProfileVersions((runtime,), (-math.inf,))
            else:
                versions = versions.added(runtime, row.effective_from)
        if versions is None:
            raise ServiceError(f"model {model.name!r}: its reference profiles cannot be read")
        models[model.name] = versions
    return ModelRuntimes(models)


def _profile_from_file(model: ModelConfig, store: Store) -> tuple[int, bytes]:
    if model.reference is None:
        raise ServiceError(
            f"model {model.name!r} has no reference profile: set models[].reference in the "
            f"config or run `driftline reference build --model {model.name} --file TRAIN`"
        )
    try:
        frame = read_table(model.reference, "reference")
        # The same column check as `driftline reference build`: a misnamed prediction
        # column would otherwise be profiled as a feature without a word.
        check_reference_columns(model, [str(c) for c in frame.columns])
        reference = build_reference(model, frame)
    except ValueError as error:  # InputError, refused columns, an estimator that cannot be fitted
        raise ServiceError(str(error)) from error
    payload = reference.to_bytes()
    return store.save_profile(model.name, payload), payload


class Service:
    """Everything ``driftline run`` runs, on one process."""

    def __init__(
        self,
        config: ServiceConfig,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # Refuse to start before connecting to anything when the API's token variable
        # is named but unset (the config itself rejects open writes beyond loopback).
        config.http_write_token()
        self.config = config
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.store = Store.connect(config.database_url())
        self.store.checkpoint_observer = self.metrics.observe_checkpoint
        self.runtimes = load_runtimes(config, self.store)
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._clock = clock
        # A refused SASL login is no reason to exit (a supervisor would restart the process
        # in a loop): the HTTP API serves, /readyz says why it is not ready, and the ingest
        # thread retries the login with a bounded backoff (monitor.streaming.kafka_security).
        self.kafka_login = KafkaLogin(config)
        self.ingestor: Ingestor | None = (
            self._new_ingestor() if self.kafka_login.accepted() else None
        )
        self.evaluator = Evaluator(
            config, self.store, self.runtimes, self.metrics, self.owner, clock=clock
        )
        # The alerting layer: rules over the stored windows (in event-time order, once, by
        # whichever process moves a model's rule cursor) and delivery from the outbox.
        self.alert_store = AlertStore(self.store)
        self.outbox = SqlOutbox(self.store)
        self.alert_rules = AlertRules(
            config,
            self.store,
            self.alert_store,
            metrics=self.metrics,
            watermark=lambda model: self.evaluator.watermark(self.runtimes[model]),
            watermarks=self.evaluator.watermarks,
            clock=clock,
        )
        self.deliverer = deliverer(config, self.outbox, self.metrics, owner=self.owner)
        # Alertmanager ends an alert by itself unless it is re-posted: firing incidents are.
        self.alertmanager = AlertmanagerRefresher(config, self.alert_store, clock=clock)
        self._watch_alerts()
        self.api = create_app(config, self.store, self.registry, self.metrics)
        self.http: ApiServer | None = None
        self.scheduler = BackgroundScheduler(timezone="UTC")
        scheduler = config.scheduler
        self._every(scheduler.evaluate_interval_s, self._evaluate, "evaluate")
        self._every(scheduler.evaluate_interval_s, self.reload_references, "reload-references")
        self._every(scheduler.retention_interval_s, self._retention, "retention")
        self._every(config.alerts.interval_s, self._alert, "alerts")
        refresh = self.alertmanager.interval_s
        if config.alerts.enabled and refresh is not None:
            self._every(refresh, self._refresh_alertmanager, "alertmanager-refresh")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._consume, name="driftline-ingest", daemon=True)
        self._delivery = threading.Thread(
            target=self.deliverer.run_forever,
            args=(self._stop,),
            name="driftline-delivery",
            daemon=True,
        )
        #: Why the ingestion thread stopped by itself (None while it runs, or after a clean stop).
        self.failure: BaseException | None = None

    def _every(self, seconds: float, job: Callable[[], object], name: str) -> None:
        """Run ``job`` every ``seconds``; a run still going when the next is due skips it."""
        self.scheduler.add_job(
            job, "interval", seconds=seconds, id=name, max_instances=1, coalesce=True
        )

    def start(self, *, http: bool = True) -> None:
        """Start the HTTP API (unless ``http`` is false), consuming and the periodic jobs."""
        if http:
            self.http = serve(self.api, self.config.http.host, self.config.http.port)
        self._thread.start()
        if self.config.alerts.enabled:
            self._delivery.start()
        self.scheduler.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the HTTP API, consuming (after a last checkpoint) and the jobs; close the store."""
        if self.http is not None:
            self.http.stop()  # also flushes and closes the API's Kafka producer
        self._stop.set()
        self._thread.join(timeout)
        self.scheduler.shutdown(wait=True)
        if self._delivery.is_alive():
            self._delivery.join(timeout)
        self.deliverer.close()
        self.store.close()

    def run(self) -> None:
        """Run until interrupted (SIGINT/SIGTERM raise KeyboardInterrupt/SystemExit).

        If ingestion stops by itself -- an exception escaped the ingest loop,
        which handles every record and every outage it can recover from -- the
        service stops and :class:`IngestionError` is raised: a process that
        consumes nothing must not keep running, nor exit as if all were well.
        """
        self.start()
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.stop()
        if self.failure is not None:
            raise IngestionError(self.failure) from self.failure

    def _consume(self) -> None:
        try:
            ingestor = self.ingestor
            if ingestor is None:
                if not self.kafka_login.wait(self._stop):
                    return  # stopped while the broker refused the login
                ingestor = self.ingestor = self._new_ingestor()
            ingestor.run(self._stop)
        except BaseException as error:  # reported by run(); the traceback is logged here
            log.exception("ingestion stopped")
            self.failure = error

    def _new_ingestor(self) -> Ingestor:
        return Ingestor(self.config, self.store, self.runtimes, self.metrics, clock=self._clock)

    def _evaluate(self) -> None:
        try:
            self.evaluator.run_once()
            # Labels that arrived after their window was evaluated: recompute its quality.
            self.evaluator.refresh_labels()
        except Exception:  # a database outage must not kill the scheduler: retried next run
            log.exception("window evaluation failed; retrying at the next interval")

    def reload_references(self) -> None:
        """Learn the reference versions stored since (by any process): no restart needed.

        The ingestor also does this at every checkpoint; this job keeps the
        evaluator current while ingestion waits (a broker outage, say).
        """
        try:
            self.runtimes.refresh(self.store)
        except Exception:  # a database outage must not kill the scheduler: retried next run
            log.exception("reloading reference profiles failed; retrying at the next interval")

    def _alert(self) -> None:
        try:
            self.alert_rules.run_once()
        except Exception:  # a database outage must not kill the scheduler: retried next run
            log.exception("alert rules failed; retrying at the next interval")

    def _refresh_alertmanager(self) -> None:
        try:
            self.alertmanager.run_once()
        except Exception:  # a database outage must not kill the scheduler
            log.exception("Alertmanager refresh failed; retrying at the next interval")

    def _watch_alerts(self) -> None:
        """Let the alert gauges read open incidents and the outbox backlog at scrape time."""
        self.metrics.watch_alerts(self.alert_store.open_incident_counts, self.outbox.counts)

    def _retention(self) -> None:
        try:
            marks = self.evaluator.watermarks()
        except Exception:  # a database outage must not kill the scheduler: retried next run
            log.exception("retention clean-up failed: watermarks unreadable")
            return
        for runtime in self.runtimes.values():
            mark = marks.get(runtime.name)
            if mark is None:
                continue
            cutoff = mark - runtime.config.retention.predictions
            try:
                removed = self.store.delete_older_than(runtime.name, cutoff)
                removed += self.store.delete_partials_before(
                    runtime.name, mark - runtime.config.partials_kept_s()
                )
                if runtime.config.retention.results is not None:
                    removed += self.store.delete_results_before(
                        runtime.name, mark - runtime.config.retention.results
                    )
            except Exception:
                log.exception("retention clean-up failed for %s", runtime.name)
                continue
            if removed:
                log.info("retention: removed %d rows of %s", removed, runtime.name)

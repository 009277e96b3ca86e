"""Delayed labels: labels that arrive after their window was evaluated update its quality.

The model's prediction is a class (``prediction.field: label``) and labels are
joined. Every window is evaluated before any label exists; then the true
labels of window 3's predictions arrive (with event times hours later, as a
labelling pipeline sends them), in two batches. After each batch the service
must re-evaluate window 3 -- accuracy and label coverage recomputed exactly,
stored in the window's details -- and the ``driftline_model_quality`` and
``driftline_label_coverage_ratio`` gauges must show them. Labels of window 0,
which ended more than ``labels.max_delay`` before the watermark, are stored
but do not reopen it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

from tests.servers import unique_name
from tests.service.harness import (
    Names,
    create_topics,
    opened,
    produce,
    running_service,
    sample,
    store_reference,
    summaries,
    wait_until,
    write_config,
)
from tests.service.streams import Stream

pytestmark = pytest.mark.integration

STREAM = Stream(model="credit", windows=9, per_window=200, drift_from=100)
LATE_WINDOW = 3  # its labels arrive after every window was evaluated
EXPIRED_WINDOW = 0  # ended more than max_delay before the watermark
SEED = 7
#: Measured besides accuracy for a classifier without a positive class (analyses/quality.py).
LABEL_METRICS = ("macro_precision", "macro_recall", "macro_f1")


def predicted(score: float) -> str:
    return "approve" if score >= 0.5 else "decline"


def prediction_records(index: int) -> list[tuple[bytes, bytes]]:
    out = []
    for row in STREAM.window_rows(index).itertuples(index=False):
        value = {
            "model": STREAM.model,
            "request_id": row.request_id,
            "timestamp": math.floor(row.event_time * 1000),
            "features": {
                name: getattr(row, name)
                for name in ("amount", "tenure", "utilization", "region", "channel")
            },
            "prediction": {"label": predicted(row.prediction), "score": row.prediction},
        }
        out.append((row.request_id.encode(), orjson.dumps(value)))
    return out


def label_records(index: int, rows: slice) -> tuple[list[tuple[bytes, bytes]], int]:
    """True labels of some of window ``index``'s predictions, and how many are correct."""
    frame = STREAM.window_rows(index).iloc[rows]
    rng = np.random.default_rng(SEED + index)
    out, correct = [], 0
    # Label event times are hours after the predictions: labels are not windowed.
    when = math.floor((STREAM.window_start(index) + 3 * 3600) * 1000)
    for row in frame.itertuples(index=False):
        guess = predicted(row.prediction)
        truth = guess if rng.random() < 0.7 else ("decline" if guess == "approve" else "approve")
        correct += truth == guess
        value = {"model": STREAM.model, "request_id": row.request_id, "label": truth}
        out.append((row.request_id.encode(), orjson.dumps({**value, "timestamp": when})))
    return out, correct


def test_late_labels_recompute_the_quality_of_an_evaluated_window(kafka_broker, tmp_path: Path):
    bootstrap = kafka_broker.bootstrap
    names = Names.fresh(STREAM.model)
    create_topics(bootstrap, [names.predictions, names.labels])
    url = f"sqlite:///{tmp_path / 'labels.db'}"
    config = write_config(
        tmp_path / "labels.yaml",
        bootstrap=bootstrap,
        names=names,
        group=unique_name("labels"),
        database_url=url,
        model={
            "prediction": {"field": "label"},
            "labels": {"enabled": True, "max_delay": "5m"},
        },
    )
    reference = STREAM.reference()
    reference["prediction"] = np.where(reference["prediction"] >= 0.5, "approve", "decline")
    store_reference(url, config, STREAM, pd.DataFrame(reference))
    evaluated = [STREAM.window_start(i) for i in range(STREAM.windows - 1)]
    start = STREAM.window_start(LATE_WINDOW)
    model = {"model": STREAM.model}
    accuracy = {"model": STREAM.model, "metric": "accuracy"}

    with running_service(config) as service, opened(url) as store:

        def details(window_start: float) -> dict:
            found = [s for s in summaries(store, STREAM.model) if s.window_start == window_start]
            return dict(found[0].details) if found else {}

        produce(
            bootstrap,
            names.predictions,
            [r for i in range(STREAM.windows) for r in (prediction_records(i))],
        )
        wait_until(
            lambda: [s.window_start for s in summaries(store, STREAM.model)] == evaluated,
            45,
            "the windows were not evaluated",
        )
        before = details(start)
        assert (before["labelled"], before["predictions_stored"], before["quality"]) == (
            0,
            STREAM.per_window,
            {},
        )
        assert sample(service, "driftline_label_coverage_ratio", model) is None

        # First batch: half of window 3's predictions get their label, and window 0's all.
        first, correct_first = label_records(LATE_WINDOW, slice(0, 100))
        expired, _ = label_records(EXPIRED_WINDOW, slice(0, None))
        produce(bootstrap, names.labels, first + expired)
        wait_until(
            lambda: details(start)["labelled"] == 100,
            30,
            lambda: f"window {LATE_WINDOW} was not re-evaluated: {details(start)}",
        )
        after = details(start)
        # Labels approve/decline and no positive_label: label metrics, no score metrics.
        assert set(after["quality"]) == {"accuracy", *LABEL_METRICS}
        assert after["quality"]["accuracy"] == pytest.approx(correct_first / 100, abs=1e-12)
        wait_until(
            lambda: sample(service, "driftline_label_coverage_ratio", model) == 0.5,
            10,
            "label coverage gauge not updated",
        )
        assert sample(service, "driftline_model_quality", accuracy) == pytest.approx(
            correct_first / 100, abs=1e-12
        )

        # Second batch, later still: 50 more labels of the same window.
        second, correct_second = label_records(LATE_WINDOW, slice(100, 150))
        produce(bootstrap, names.labels, second)
        wait_until(
            lambda: details(start)["labelled"] == 150,
            30,
            lambda: f"window {LATE_WINDOW} was not re-evaluated again: {details(start)}",
        )
        expected = (correct_first + correct_second) / 150
        assert details(start)["quality"]["accuracy"] == pytest.approx(expected, abs=1e-12)
        wait_until(
            lambda: sample(service, "driftline_label_coverage_ratio", model) == 0.75,
            10,
            "label coverage gauge not updated after the second batch",
        )
        assert sample(service, "driftline_model_quality", accuracy) == pytest.approx(
            expected, abs=1e-12
        )
        # Window 0's labels are stored, but it ended more than max_delay before the
        # watermark: its results are final.
        assert (
            store.label_coverage(STREAM.model, STREAM.window_start(0), STREAM.window_start(1))[0]
            == STREAM.per_window
        )
        assert details(STREAM.window_start(0))["labelled"] == 0
        # Re-evaluation changed quality only: the drift results of the window are the same.
        assert details(start)["profile_version"] == before["profile_version"]
        assert service._thread.is_alive()

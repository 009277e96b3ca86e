"""Online change detection inside each window, through the real broker and SQLite.

A classifier's predictions and labels stream into the in-process service. In
window 1 the model starts failing halfway (the error rate jumps from about 0.1
to 0.5 at a known record); window 0 is stationary; window 2 only moves the
watermark. Each window's ``details["change_detection"]`` must equal the
detectors of :mod:`detectors.online` run directly on the window's scores and
error indicators in event-time order, and ADWIN must place the change in
window 1 after the record where it happened, with that record's event time.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import orjson
import pytest

from detectors.online import ONLINE_DETECTORS
from tests.servers import unique_name
from tests.service.harness import (
    Names,
    create_topics,
    opened,
    produce,
    running_service,
    store_reference,
    summaries,
    wait_until,
    write_config,
)
from tests.service.streams import CATEGORICAL, NUMERIC, Stream

pytestmark = pytest.mark.integration

PER_WINDOW = 1200
CHANGE_AT = 600  # index of the first record of window 1 whose error rate is 0.5
DETECTORS = ("adwin", "page_hinkley")
PAGE_HINKLEY = {"threshold": 5.0}


def direct(name: str, values: list[float], times: list[float]) -> dict:
    """Run one detector over ``values`` as the module documents: indices and event times."""
    detector = ONLINE_DETECTORS.create(name, **(PAGE_HINKLEY if name == "page_hinkley" else {}))
    changes = [
        {"index": i, "event_time": t}
        for i, (x, t) in enumerate(zip(values, times, strict=True))
        if detector.update(x)
    ]
    return {"changes": changes, "n_changes": detector.n_detections}


def test_each_window_reports_where_its_error_rate_changed(kafka_broker, tmp_path: Path) -> None:
    stream = Stream(model=unique_name("change"), windows=3, per_window=PER_WINDOW, drift_from=9)
    bootstrap = kafka_broker.bootstrap
    names = Names.fresh(stream.model)
    create_topics(bootstrap, [names.predictions, names.labels])
    url = f"sqlite:///{tmp_path / 'change.db'}"
    config = write_config(
        tmp_path / "change.yaml",
        bootstrap=bootstrap,
        names=names,
        group=unique_name("change"),
        database_url=url,
        model={
            "prediction": {"field": "score", "task": "classification"},
            "labels": {"enabled": True, "max_delay": "30m"},
            "change_detection": {
                "detectors": list(DETECTORS),
                "parameters": {"page_hinkley": PAGE_HINKLEY},
            },
        },
    )
    store_reference(url, config, stream)
    rng = np.random.default_rng(11)
    records, labels, expected = [], [], {}
    for index in range(stream.windows):
        rows = stream.window_rows(index)
        wrong_rate = np.full(len(rows), 0.1)
        if index == 1:
            wrong_rate[CHANGE_AT:] = 0.5
        wrong = rng.random(len(rows)) < wrong_rate
        times = [math.floor(t * 1000) / 1000 for t in rows["event_time"]]
        for i, row in enumerate(rows.itertuples(index=False)):
            value = {
                "model": stream.model,
                "request_id": row.request_id,
                "timestamp": math.floor(row.event_time * 1000),
                "features": {name: getattr(row, name) for name in (*NUMERIC, *CATEGORICAL)},
                "prediction": {"label": "yes", "score": float(row.prediction)},
            }
            records.append((row.request_id.encode(), orjson.dumps(value)))
            label = {
                "model": stream.model,
                "request_id": row.request_id,
                "label": "no" if wrong[i] else "yes",
            }
            labels.append((row.request_id.encode(), orjson.dumps(label)))
        scores = rows["prediction"].astype(float).tolist()
        errors = wrong.astype(float).tolist()
        expected[stream.window_start(index)] = {
            "score": {name: direct(name, scores, times) for name in DETECTORS},
            "error": {name: direct(name, errors, times) for name in DETECTORS},
        }
    starts = [stream.window_start(i) for i in range(stream.windows - 1)]

    with running_service(config), opened(url) as store:

        def labelled() -> dict[float, int]:
            return {
                s.window_start: s.details.get("labelled", 0) for s in summaries(store, stream.model)
            }

        produce(bootstrap, names.predictions, records)
        produce(bootstrap, names.labels, labels)
        wait_until(
            lambda: all(labelled().get(s) == PER_WINDOW for s in starts),
            90,
            lambda: f"windows not evaluated with every label: {labelled()}",
        )
        found = {s.window_start: dict(s.details) for s in summaries(store, stream.model)}

    for start in starts:
        result = found[start]["change_detection"]
        for stream_name in ("score", "error"):
            got = result["streams"][stream_name]
            assert got["points"] == PER_WINDOW
            for name in DETECTORS:
                detector = got["detectors"][name]
                want = expected[start][stream_name][name]
                assert detector["n_changes"] == want["n_changes"], (start, stream_name, name)
                assert detector["changes"] == want["changes"], (start, stream_name, name)
    quiet, changed = (found[s]["change_detection"]["streams"]["error"] for s in starts)
    assert not quiet["detectors"]["adwin"]["detected"]
    first = changed["detectors"]["adwin"]["changes"][0]
    assert CHANGE_AT <= first["index"] < CHANGE_AT + 300, first
    window = stream.window_rows(1)
    assert first["event_time"] == pytest.approx(window["event_time"][first["index"]], abs=1e-3)

"""Every evaluated window reports data quality, measured model quality and estimated performance.

A binary classifier ("default" vs "repaid", the score is the probability of
"default", true outcomes drawn from it: well calibrated) streams five
evaluated windows through the real broker into the in-process service, on
SQLite and on PostgreSQL. The service builds the reference from the
configured file, fitting the CBPE on its ``outcome`` and ``prediction``
columns. Labels for 80% of the predictions arrive after the predictions.

* Data quality: window 1 has 8% of ``amount`` missing, under the configured
  ``missing: 0.10`` (the default 0.05 would fail it), and passes; window 4 has
  30% of ``tenure`` missing and 10% of ``utilization`` above the reference's
  range, and fails exactly those two checks; the others pass every check.
* Model quality equals scikit-learn's metrics on the labelled rows the test
  sent (ROC AUC and average precision within the reported histogram bounds).
* The estimate equals ``CBPE`` fitted on the same reference file and applied
  to the window's scores, and is close to the accuracy realized on the labels.
* The gauges show the newest window's values, and the HTTP API's window
  details carry the same results.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from sklearn import metrics as skm

from detectors.performance import CBPE
from monitor.datafiles import read_table
from monitor.store.result_json import window_details
from tests.servers import unique_name
from tests.service.harness import (
    Names,
    create_topics,
    opened,
    produce,
    running_service,
    sample,
    summaries,
    wait_until,
    write_config,
)
from tests.service.streams import CATEGORICAL, NUMERIC, Stream

pytestmark = pytest.mark.integration

WINDOWS = 6  # the last one only pushes the watermark past the others
PER_WINDOW = 400
LABELLED_SHARE = 0.8
POSITIVE = "default"
THRESHOLD = 0.5
MISSING_OK_WINDOW = 1  # 8% of amount missing: passes with data_quality.missing 0.10
BAD_WINDOW = 4  # 30% of tenure missing, 10% of utilization out of range
LABEL_METRICS = ("accuracy", "macro_precision", "macro_recall", "macro_f1")
POSITIVE_METRICS = ("precision", "recall", "f1")
SCORE_METRICS = ("log_loss", "brier_score", "expected_calibration_error")


@dataclass(frozen=True)
class Window:
    """One window as produced: its records, and the labels sent for some of them."""

    records: list[tuple[bytes, bytes]]
    scores: np.ndarray
    predicted: np.ndarray
    truth: np.ndarray
    labelled: np.ndarray  # mask of the rows whose label was sent
    labels: list[tuple[bytes, bytes]]


def predicted_class(scores: np.ndarray) -> np.ndarray:
    return np.where(scores >= THRESHOLD, POSITIVE, "repaid")


def build_window(stream: Stream, index: int) -> Window:
    rows = stream.window_rows(index)
    rng = np.random.default_rng(500 + index)
    scores = rows["prediction"].to_numpy()
    truth = np.where(rng.random(len(rows)) < scores, POSITIVE, "repaid")
    labelled = rng.random(len(rows)) < LABELLED_SHARE
    predicted = predicted_class(scores)
    # Injected data-quality problems (the scores stay those of the clean values).
    missing_amount = rng.random(len(rows)) < 0.08 if index == MISSING_OK_WINDOW else None
    records, labels = [], []
    for i, row in enumerate(rows.itertuples(index=False)):
        features = {name: getattr(row, name) for name in (*NUMERIC, *CATEGORICAL)}
        if missing_amount is not None and missing_amount[i]:
            features["amount"] = None
        if index == BAD_WINDOW:
            if i % 10 < 3:
                features["tenure"] = None
            if i % 10 == 5:
                features["utilization"] = 5.0  # the reference's utilization lies in [0, 1]
        value = {
            "model": stream.model,
            "request_id": row.request_id,
            "timestamp": math.floor(row.event_time * 1000),
            "features": features,
            "prediction": {"label": str(predicted[i]), "score": float(scores[i])},
        }
        records.append((row.request_id.encode(), orjson.dumps(value)))
        if labelled[i]:
            label = {"model": stream.model, "request_id": row.request_id, "label": str(truth[i])}
            label["timestamp"] = math.floor((row.event_time + 30) * 1000)
            labels.append((row.request_id.encode(), orjson.dumps(label)))
    return Window(records, scores, predicted, truth, labelled, labels)


def reference_file(stream: Stream, path: Path) -> Path:
    """The model's training data with its true outcome, as a Parquet file."""
    frame = stream.reference()
    rng = np.random.default_rng(99)
    frame["outcome"] = np.where(rng.random(len(frame)) < frame["prediction"], POSITIVE, "repaid")
    frame.to_parquet(path)
    return path


def expected_quality(window: Window) -> dict[str, float]:
    """scikit-learn's metrics on the window's labelled rows."""
    mask = window.labelled
    y_true, y_pred, scores = window.truth[mask], window.predicted[mask], window.scores[mask]
    y = (y_true == POSITIVE).astype(float)
    bins = np.searchsorted(np.linspace(0, 1, 16)[1:-1], scores, side="left")
    ece = sum(abs(scores[bins == b].sum() - y[bins == b].sum()) for b in range(15)) / len(y)
    return {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "macro_precision": skm.precision_score(y_true, y_pred, average="macro"),
        "macro_recall": skm.recall_score(y_true, y_pred, average="macro"),
        "macro_f1": skm.f1_score(y_true, y_pred, average="macro"),
        "precision": skm.precision_score(y_true, y_pred, pos_label=POSITIVE),
        "recall": skm.recall_score(y_true, y_pred, pos_label=POSITIVE),
        "f1": skm.f1_score(y_true, y_pred, pos_label=POSITIVE),
        "roc_auc": skm.roc_auc_score(y, scores),
        "average_precision": skm.average_precision_score(y, scores),
        "log_loss": skm.log_loss(y, scores),
        "brier_score": skm.brier_score_loss(y, scores),
        "expected_calibration_error": float(ece),
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL: a fresh SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'quality.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


def test_windows_report_data_quality_model_quality_and_estimated_performance(
    kafka_broker, database: str, tmp_path: Path
) -> None:
    stream = Stream(
        model=unique_name("quality"), windows=WINDOWS, per_window=PER_WINDOW, drift_from=100
    )
    bootstrap = kafka_broker.bootstrap
    names = Names.fresh(stream.model)
    create_topics(bootstrap, [names.predictions, names.labels])
    reference = reference_file(stream, tmp_path / "train.parquet")
    config = write_config(
        tmp_path / "quality.yaml",
        bootstrap=bootstrap,
        names=names,
        group=unique_name("quality"),
        database_url=database,
        model={
            "reference": str(reference),
            "prediction": {"field": "score", "positive_label": POSITIVE},
            "labels": {"enabled": True, "max_delay": "30m"},
            "data_quality": {"missing": 0.10},
            "performance_estimation": {"target": "outcome", "threshold": THRESHOLD},
        },
    )
    windows = [build_window(stream, i) for i in range(WINDOWS)]
    evaluated = list(range(WINDOWS - 1))
    starts = [stream.window_start(i) for i in evaluated]
    frame = read_table(reference)
    estimator = CBPE.fit(frame["outcome"], frame["prediction"], POSITIVE, threshold=THRESHOLD)

    with running_service(config) as service, opened(database) as store:

        def details() -> dict[float, dict]:
            return {s.window_start: dict(s.details) for s in summaries(store, stream.model)}

        def labels_joined() -> bool:
            found = details()
            return all(
                found.get(start, {}).get("labelled") == int(windows[i].labelled.sum())
                for i, start in zip(evaluated, starts, strict=True)
            )

        produce(bootstrap, names.predictions, [r for w in windows for r in w.records])
        produce(bootstrap, names.labels, [r for w in windows[:-1] for r in w.labels])
        wait_until(
            labels_joined,
            60,
            lambda: (
                f"windows not evaluated with every label: "
                f"{ {k: v.get('labelled') for k, v in details().items()} }"
            ),
        )
        found = details()
        assert sorted(found) == starts

        realized, estimated = [], []
        for i, start in zip(evaluated, starts, strict=True):
            window, d = windows[i], found[start]

            # Data quality, with the configured thresholds.
            checks = d["data_quality"]["checks"]
            failed = {(c["check"], c["feature"]) for c in checks if not c["passed"]}
            if i == BAD_WINDOW:
                assert failed == {("missing", "tenure"), ("out_of_range", "utilization")}
            else:
                assert failed == set(), (i, failed)
            assert d["data_quality"]["passed"] is (i != BAD_WINDOW)
            missing = {c["feature"]: c for c in checks if c["check"] == "missing"}
            assert missing["tenure"]["threshold"] == pytest.approx(0.10)
            if i == MISSING_OK_WINDOW:
                assert 0.05 < missing["amount"]["value"] <= 0.10
            if i == BAD_WINDOW:
                assert missing["tenure"]["value"] == 0.3
                out = [c for c in checks if c["check"] == "out_of_range"]
                assert {c["feature"]: c["value"] for c in out}["utilization"] == 0.1

            # Model quality: scikit-learn on the labelled rows.
            quality, report = d["quality"], d["quality_report"]
            expected = expected_quality(window)
            assert set(quality) == set(expected)
            for name in (*LABEL_METRICS, *POSITIVE_METRICS, *SCORE_METRICS):
                assert quality[name] == pytest.approx(expected[name], rel=1e-9, abs=1e-12), name
            for name in ("roc_auc", "average_precision"):
                bound = report[f"{name}_bound"]
                assert abs(quality[name] - expected[name]) <= bound + 1e-12, name
                assert bound < 5e-3
            assert (report["positive_label"], report["rows"]) == (POSITIVE, window.labelled.sum())

            # Estimated performance: CBPE on the same reference and the window's scores.
            estimate = d["estimated_performance"]
            direct = estimator.estimate(window.scores)
            assert estimate["estimator"] == estimator.model
            assert (estimate["rows"], estimate["window_rows"], estimate["coverage"]) == (
                PER_WINDOW,
                PER_WINDOW,
                1.0,
            )
            for name in ("accuracy", "f1", "roc_auc", "precision", "recall"):
                assert estimate[name] == pytest.approx(getattr(direct, name), rel=1e-9), name
            realized.append(quality["accuracy"])
            estimated.append(estimate["accuracy"])

        # Calibrated scores: the label-free estimate tracks the realized accuracy
        # (a window's realized accuracy on ~320 labels varies by about 0.025 itself).
        gaps = np.abs(np.array(realized) - np.array(estimated))
        assert gaps.max() < 0.08, (realized, estimated)
        assert abs(np.mean(realized) - np.mean(estimated)) < 0.03, (realized, estimated)

        # Gauges: the newest evaluated (and labelled) window, BAD_WINDOW.
        newest = found[stream.window_start(BAD_WINDOW)]
        model = stream.model
        for metric, value in newest["quality"].items():
            labels = {"model": model, "metric": metric}
            assert sample(service, "driftline_model_quality", labels) == value, metric
        for metric in ("roc_auc", "accuracy", "f1"):
            labels = {"model": model, "metric": metric}
            assert (
                sample(service, "driftline_model_quality_estimated", labels)
                == (newest["estimated_performance"][metric])
            ), metric
        labels = {"model": model, "metric": "precision"}
        assert sample(service, "driftline_model_quality_estimated", labels) is None
        missing = {
            c["feature"]: c["value"]
            for c in newest["data_quality"]["checks"]
            if c["check"] == "missing"
        }
        for feature in (*NUMERIC, *CATEGORICAL):
            labels = {"model": model, "feature": feature}
            assert sample(service, "driftline_feature_missing_ratio", labels) == missing[feature]

        # The HTTP API serves the same details.
        with TestClient(service.api) as client:
            response = client.get(f"/api/models/{model}/windows", params={"limit": 1})
        assert response.status_code == 200
        served = response.json()["windows"][0]["details"]
        assert served["data_quality"] == newest["data_quality"]
        assert served["estimated_performance"]["accuracy"] == pytest.approx(
            newest["estimated_performance"]["accuracy"]
        )
        assert served["quality"] == pytest.approx(newest["quality"])


def test_reference_build_stores_the_fitted_estimator(tmp_path: Path, capsys) -> None:
    """``driftline reference build`` stores the profile with the CBPE the config asks for."""
    from monitor.analyses.model import StoredReference
    from monitor.cli import EXIT_OK, EXIT_USAGE, main
    from monitor.store import Store

    stream = Stream(model=unique_name("built"), windows=1, per_window=10, drift_from=9)
    names = Names.fresh(stream.model)
    reference = reference_file(stream, tmp_path / "train.parquet")
    database = f"sqlite:///{tmp_path / 'built.db'}"
    model = {
        "prediction": {"field": "score", "positive_label": POSITIVE},
        "labels": {"enabled": True},
        "performance_estimation": {"target": "outcome", "threshold": THRESHOLD},
    }
    config = write_config(
        tmp_path / "built.yaml",
        bootstrap="127.0.0.1:9",
        names=names,
        group=unique_name("built"),
        database_url=database,
        model=model,
    )
    args = ["reference", "build", "--config", str(config), "--model", stream.model]
    assert main([*args, "--file", str(reference)]) == EXIT_OK
    assert "performance estimator" in capsys.readouterr().out
    store = Store.connect(database)
    try:
        stored = StoredReference.from_bytes(store.profile(stream.model, 1) or b"")
    finally:
        store.close()
    frame = read_table(reference)
    expected = CBPE.fit(frame["outcome"], frame["prediction"], POSITIVE, threshold=THRESHOLD)
    assert stored.estimator == expected
    assert "outcome" not in stored.profile.specs
    # A training file without the target column: one sentence, exit 2, nothing stored.
    frame.drop(columns="outcome").to_parquet(tmp_path / "no_target.parquet")
    assert main([*args, "--file", str(tmp_path / "no_target.parquet")]) == EXIT_USAGE
    assert "performance_estimation.target" in capsys.readouterr().err


def test_estimates_need_no_labels_and_no_request_ids(tmp_path: Path) -> None:
    """Each partial keeps a CBPE sketch of its scores: the estimate is exact without labels.

    Through ``replay`` (records without a ``request_id``, labels disabled, batches of
    5,000 lines, so windows merge partials of several batches): every window's
    estimate equals ``CBPE.estimate`` on that window's scores, with coverage 1.
    """
    from monitor.config.service import ServiceConfig
    from monitor.service.replay import replay

    stream = Stream(model="unlabelled", windows=4, per_window=2600, drift_from=2)
    reference = reference_file(stream, tmp_path / "train.parquet")
    config_path = tmp_path / "unlabelled.yaml"
    config_path.write_text(
        orjson.dumps(
            {
                "database": {"url": f"sqlite:///{tmp_path / 'u.db'}"},
                "models": [
                    {
                        "name": stream.model,
                        "reference": str(reference),
                        "window": {"size": "1m", "allowed_lateness": "0s", "min_records": 50},
                        "prediction": {"field": "score", "positive_label": POSITIVE},
                        "performance_estimation": {"target": "outcome", "threshold": THRESHOLD},
                    }
                ],
            }
        ).decode()
    )
    config = ServiceConfig.load(config_path)
    assert not config.models[0].labels.enabled
    log = tmp_path / "log.jsonl"
    lines = []
    for index in range(stream.windows):
        for _, value in stream.records(index):
            record = orjson.loads(value)
            del record["request_id"]
            lines.append(orjson.dumps(record))
    log.write_bytes(b"\n".join(lines))
    frame = read_table(reference)
    estimator = CBPE.fit(frame["outcome"], frame["prediction"], POSITIVE, threshold=THRESHOLD)
    result = replay(config, log)
    assert len(result.windows) == stream.windows
    for outcome in result.windows:
        index = round((outcome.window_start - stream.window_start(0)) / 60)
        estimate = window_details(outcome)["estimated_performance"]
        direct = estimator.estimate(stream.window_rows(index)["prediction"].to_numpy())
        assert (estimate["rows"], estimate["coverage"]) == (stream.per_window, 1.0)
        for name in ("accuracy", "f1", "roc_auc", "precision", "recall"):
            assert estimate[name] == pytest.approx(getattr(direct, name), rel=1e-9), name
        assert window_details(outcome)["predictions_stored"] == 0

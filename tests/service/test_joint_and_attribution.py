"""Multivariate and attribution drift in the service's windows, through ``replay`` on SQLite.

Each window's stored ``details`` are checked against the library run directly on
the same rows: the window's row sample rebuilt from the log (keyed by line number,
as replay keys records) for the multivariate methods and the model-explained
attribution, and the records' ``explanations`` for attribution from records.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry

from detectors.attribution import (
    AttributionSummary,
    attribution_drift,
    comparable_statistics,
    drift_impact_ranking,
)
from detectors.multivariate import MULTIVARIATE_METHODS
from detectors.sample import RowSample
from monitor.analyses.attribution import sample_frame
from monitor.analyses.model import PREDICTION, StoredReference
from monitor.analyses.reference import build_reference
from monitor.config.service import ServiceConfig
from monitor.metrics import Metrics
from monitor.service.replay import replay
from monitor.store import Store
from monitor.store.result_json import window_details
from monitor.streaming.sketching import record_keys

T0 = 1_800_000_000.0
ROWS = 800  # per window
WINDOWS = 6
CHANGE_FROM = 3  # first window whose joint distribution (or attribution) changed


def correlated(rows: int, rho: float, rng: np.random.Generator) -> pd.DataFrame:
    """x, y standard normal with correlation ``rho`` (marginals never move), a noise column."""
    x = rng.normal(size=rows)
    y = rho * x + math.sqrt(1 - rho * rho) * rng.normal(size=rows)
    region = rng.choice(["EU", "US", "APAC"], rows, p=[0.5, 0.3, 0.2])
    return pd.DataFrame({"x": x, "y": y, "z": rng.normal(size=rows), "region": region})


def window_frames(rho_after: float, seed: int = 7) -> list[pd.DataFrame]:
    """One frame per window; from :data:`CHANGE_FROM` on, x and y have correlation ``rho_after``."""
    frames = []
    for index in range(WINDOWS):
        rng = np.random.default_rng(seed * 100 + index)
        frames.append(correlated(ROWS, 0.9 if index < CHANGE_FROM else rho_after, rng))
    return frames


def write_log(path: Path, frames: list[pd.DataFrame], explanations: Any = None) -> None:
    """Write the windows' records (event time inside window i, 60 s windows) to ``path``."""
    lines = []
    for index, frame in enumerate(frames):
        shap = None if explanations is None else explanations(index, frame)
        for i, row in enumerate(frame.itertuples(index=False)):
            record: dict[str, Any] = {
                "model": "joint",
                "timestamp": math.floor((T0 + index * 60 + i * 60 / len(frame)) * 1000),
                "features": {"x": row.x, "y": row.y, "z": row.z, "region": row.region},
                "prediction": float(row.x + row.y),
            }
            if shap is not None:
                record["explanations"] = {k: float(v[i]) for k, v in shap.items()}
            lines.append(orjson.dumps(record))
    path.write_bytes(b"\n".join(lines))


def configured(tmp_path: Path, model: dict[str, Any], reference: pd.DataFrame) -> ServiceConfig:
    """Write a config for model ``joint`` with ``model``'s extra sections; store its reference."""
    path = tmp_path / "service.yaml"
    body = {
        "database": {"url": f"sqlite:///{tmp_path / 'd.db'}"},
        "models": [
            {
                "name": "joint",
                "window": {"size": "1m", "allowed_lateness": "0s", "min_records": 50},
                **model,
            }
        ],
    }
    path.write_text(textwrap.dedent(orjson.dumps(body).decode()))
    config = ServiceConfig.load(path)
    store = Store.connect(config.database_url())
    store.save_profile("joint", build_reference(config.model("joint"), reference).to_bytes())
    store.close()
    return config


def window_sample(frame: pd.DataFrame, first_line: int, size: int, specs: Any) -> RowSample:
    """The window's row sample as the service builds it: features keyed by log line number."""
    names = [n for n in specs if n != PREDICTION]
    lines = np.arange(first_line, first_line + len(frame))
    return RowSample.from_rows(
        names,
        [specs[n].levels for n in names],
        np.column_stack([specs[n].encode(frame[n].reset_index(drop=True)) for n in names]),
        record_keys(0, lines),
        size=size,
        hashed=True,
    )


def stored_reference(config: ServiceConfig) -> StoredReference:
    store = Store.connect(config.database_url())
    try:
        stored = store.latest_profile("joint")
        assert stored is not None
        return StoredReference.from_bytes(stored[1])
    finally:
        store.close()


def test_a_correlation_that_breaks_is_found_by_every_method_and_no_marginal_test(tmp_path):
    methods = ["pca_reconstruction", "domain_classifier", "mmd"]
    # alpha 0.01: 9 no-change tests (3 windows x 3 methods) stay clean with probability ~0.91
    # whatever the seed, while a correlation of 0.9 that vanishes is found with ~certainty.
    section = {
        "methods": methods,
        "reference_rows": 1500,
        "current_rows": 700,
        "seed": 3,
        "alpha": 0.01,
    }
    reference = correlated(4000, 0.9, np.random.default_rng(1))
    config = configured(tmp_path, {"multivariate": section}, reference)
    frames = window_frames(rho_after=0.0)
    log = tmp_path / "log.jsonl"
    write_log(log, frames)
    registry = CollectorRegistry()
    result = replay(config, log, Metrics(registry))
    stored = stored_reference(config)
    assert stored.profile.sample is not None
    assert stored.profile.sample.rows == 1500
    specs = stored.profile.specs
    windows = {round((o.window_start - T0) / 60): o for o in result.windows}
    assert sorted(windows) == list(range(WINDOWS))
    marginal = {False: 0, True: 0}  # univariate x/y flags in unchanged / changed windows
    for index, outcome in windows.items():
        joint = window_details(outcome)["multivariate"]
        # The same methods on the same samples, run directly.
        current = window_sample(frames[index], 1 + index * ROWS, 700, specs)
        expected = [
            MULTIVARIATE_METHODS.create(name, alpha=0.01, seed=3)
            .compare(stored.profile.sample, current)
            .to_dict()
            for name in methods
        ]
        assert joint["methods"] == expected
        assert joint["rows_current"] == 700
        assert joint["rows_reference"] == 1500
        changed = index >= CHANGE_FROM
        assert [m["drift"] for m in joint["methods"]] == [changed] * 3, (index, joint)
        assert joint["drift"] is changed
        assert outcome.drift is not None
        marginal[changed] += sum(f.drift for f in outcome.drift.features if f.name in ("x", "y"))
    # Marginals do not move: the univariate tests flag x and y no more often (by chance)
    # after the change than before it.
    assert marginal[True] <= marginal[False] + 1, marginal
    last = window_details(windows[WINDOWS - 1])["multivariate"]["methods"]
    for method in last:
        labels = {"model": "joint", "method": method["method"]}
        assert registry.get_sample_value("driftline_multivariate_drift_detected", labels) == 1.0
        assert registry.get_sample_value(
            "driftline_multivariate_drift_score", labels
        ) == pytest.approx(method["statistic"])


def linear_shap(weights: dict[str, float], means: dict[str, float], frame: pd.DataFrame) -> dict:
    """SHAP values of a linear model: ``w_j (x_j - mean_j)``."""
    return {k: w * (frame[k].to_numpy() - means[k]) for k, w in weights.items()}


def test_attribution_from_the_records_explanations_ranks_the_feature_the_model_uses(tmp_path):
    reference = correlated(3000, 0.0, np.random.default_rng(2))
    means = {"x": 0.0, "y": 0.0, "z": 0.0}
    before = {"x": 1.0, "y": 0.5, "z": 0.05}
    after = {"x": 1.0, "y": 1.5, "z": 0.05}  # the model leans on y three times as much
    for name, values in linear_shap(before, means, reference).items():
        reference[f"shap_{name}"] = values
    section = {"source": "explanations", "alpha": 0.05, "threshold": 0.25}
    config = configured(tmp_path, {"attribution": section}, reference)
    stored = stored_reference(config)
    assert stored.attribution is not None
    assert stored.attribution.rows == 3000
    assert not any(name.startswith("shap_") for name in stored.profile.specs)
    frames = window_frames(rho_after=0.0)
    frames = [f.assign(x=f["x"] + (0.5 if i >= CHANGE_FROM else 0.0)) for i, f in enumerate(frames)]

    def explanations(index: int, frame: pd.DataFrame) -> dict:
        return linear_shap(after if index >= CHANGE_FROM else before, means, frame)

    log = tmp_path / "log.jsonl"
    write_log(log, frames, explanations)
    registry = CollectorRegistry()
    result = replay(config, log, Metrics(registry))
    for outcome in result.windows:
        index = round((outcome.window_start - T0) / 60)
        details = window_details(outcome)
        current = AttributionSummary.from_values(pd.DataFrame(explanations(index, frames[index])))
        expected = attribution_drift(
            stored.attribution, current, threshold=0.25, alpha=0.05, share_threshold=0.1
        )
        assert details["attribution"] == {"source": "explanations", **expected.to_dict()}
        drifted = {f["name"] for f in details["attribution"]["features"] if f["drift"]}
        assert drifted == ({"y"} if index >= CHANGE_FROM else set()), (index, drifted)
        assert outcome.drift is not None
        ranking = drift_impact_ranking(
            comparable_statistics(outcome.drift), stored.attribution.importance()
        )
        assert [d["name"] for d in details["drift_impact"]] == [d.name for d in ranking]
        if index >= CHANGE_FROM:
            # x drifted and the model relies on it most: it heads the ranking.
            assert details["drift_impact"][0]["name"] == "x"
    labels = {"model": "joint", "feature": "y"}
    assert registry.get_sample_value("driftline_attribution_drift_detected", labels) == 1.0


def test_attribution_from_a_model_explains_the_window_sample(tmp_path):
    joblib = pytest.importorskip("joblib")
    from sklearn.ensemble import GradientBoostingRegressor

    from monitor.analyses.explain import explain

    reference = correlated(2000, 0.5, np.random.default_rng(3))
    target = 2.0 * reference["x"] + 0.3 * reference["y"] + 0.5 * (reference["region"] == "EU")
    inputs = reference[["x", "y", "z"]]
    model = GradientBoostingRegressor(n_estimators=30, max_depth=3, random_state=0)
    model.fit(inputs, target)
    model_path = tmp_path / "model.joblib"
    joblib.dump(model, model_path)
    section = {"source": "model", "model": str(model_path), "window_rows": 300, "max_rows": 500}
    config = configured(tmp_path, {"attribution": section}, reference)
    stored = stored_reference(config)
    assert stored.attribution is not None
    assert stored.attribution.rows == 500
    frames = window_frames(rho_after=0.5)
    # From CHANGE_FROM on, x barely varies: the model's output no longer depends on it much.
    frames = [f.assign(x=f["x"] * (0.2 if i >= CHANGE_FROM else 1.0)) for i, f in enumerate(frames)]
    log = tmp_path / "log.jsonl"
    write_log(log, frames)
    result = replay(config, log)
    specs = stored.profile.specs
    for outcome in result.windows:
        index = round((outcome.window_start - T0) / 60)
        details = window_details(outcome)["attribution"]
        sample = window_sample(frames[index], 1 + index * ROWS, 300, specs)
        shap = explain(model, sample_frame(sample, dict(specs)), max_tree_rows=300)
        current = AttributionSummary.from_values(shap.values)
        assert details["rows"] == {"reference": 500, "current": 300}
        by_name = {f["name"]: f for f in details["features"]}
        for name, value in current.mean_abs().items():
            assert by_name[name]["current_mean_abs"] == pytest.approx(value, rel=1e-12)
        assert by_name["x"]["drift"] is (index >= CHANGE_FROM), (index, by_name["x"])


def test_sample_frame_decodes_categories_and_drops_unknown_labels():
    frame = pd.DataFrame(
        {
            "n": [1.5, None, 3.0],
            "flag": [True, False, True],
            "code": [3, 7, 3],
            "c": ["a", "b", "zz"],
        }
    )
    from detectors.profile import ReferenceProfile

    reference = pd.DataFrame(
        {"n": [1.0, 2.0], "flag": [True, False], "code": [3, 7], "c": ["a", "b"]}
    )
    profile = ReferenceProfile.from_frame(
        reference,
        {"n": "numeric", "flag": "categorical", "code": "categorical", "c": "categorical"},
    )
    sample = RowSample.from_frame(frame, profile.specs, size=10)
    decoded = sample_frame(sample, dict(profile.specs))
    rows = {(r.c if r.c is not None else "?"): r for r in decoded.itertuples(index=False)}
    assert rows["a"].flag is True
    assert rows["a"].code == 3
    assert rows["a"].n == 1.5
    assert rows["b"].flag is False
    assert rows["b"].code == 7
    assert math.isnan(rows["b"].n)
    assert rows["?"].c is None  # "zz" is not a reference category


def test_bad_sections_are_config_errors(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "models:\n  - name: m\n    attribution: {source: model}\n"
        "    multivariate: {methods: [nope]}\n"
    )
    with pytest.raises(ValueError, match="attribution") as error:
        ServiceConfig.load(path)
    message = str(error.value)
    assert "source: model needs model" in message
    assert "unknown multivariate method 'nope'" in message


def test_a_profile_stored_before_the_sections_reports_errors_not_results(tmp_path):
    """Sections turned on for a model whose stored profile predates them: clear errors."""
    reference = correlated(1000, 0.9, np.random.default_rng(4))
    config = configured(tmp_path, {}, reference)  # stored without sample or SHAP summary
    body = {
        "database": {"url": config.database_url()},
        "models": [
            {
                "name": "joint",
                "window": {"size": "1m", "allowed_lateness": "0s", "min_records": 50},
                "multivariate": {"methods": ["pca_reconstruction"]},
                "attribution": {"source": "explanations"},
            }
        ],
    }
    path = tmp_path / "later.yaml"
    path.write_text(orjson.dumps(body).decode())
    later = ServiceConfig.load(path)
    log = tmp_path / "log.jsonl"
    write_log(log, window_frames(rho_after=0.9)[:2])
    result = replay(later, log)
    details = window_details(result.windows[0])
    assert "without a row sample" in details["multivariate"]["error"]
    assert "without SHAP values" in details["attribution"]["error"]
    assert details["drift_impact"] == []


def test_attribution_without_reference_shap_values_or_a_model_is_refused(tmp_path):
    reference = correlated(500, 0.0, np.random.default_rng(5))
    with pytest.raises(ValueError, match=r"add columns named 'shap_' \+ feature"):
        configured(tmp_path, {"attribution": {"source": "explanations"}}, reference)

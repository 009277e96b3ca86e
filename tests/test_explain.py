"""SHAP values from a saved model: loading, tree and sampled explainers, record explanations.

Checks are against closed forms, not against shap itself: additivity (SHAP
values plus the expected value give the model's output on every row) and, for
models linear in their output, ``SHAP_j = w_j (x_j - mean of the background_j)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from detectors.attribution import AttributionSummary
from monitor.analyses.explain import (
    ModelLoadError,
    ShapValues,
    explain,
    explanations_frame,
    is_tree_model,
    load_model,
    shap_values,
)
from monitor.records import PredictionRecord, decode_prediction

ADDITIVITY = 1e-6


def make_data(rows: int = 600, features: int = 5, seed: int = 0) -> tuple[pd.DataFrame, Any]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(rows, features)), columns=[f"f{j}" for j in range(features)])
    logit = 1.5 * X["f0"] - X["f1"] + 0.5 * X["f2"] * X["f0"]
    y = (logit + rng.logistic(size=rows) > 0).astype(int)
    return X, y


def saved(model: Any, tmp_path: Path) -> Any:
    """Dump ``model`` with joblib and load it back through :func:`load_model`."""
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    return load_model(path)


def background_sample(X: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    """The rows the sampled explainer draws as its background (same rule, same seed)."""
    rng = np.random.default_rng(seed)
    return X.iloc[np.sort(rng.choice(len(X), size, replace=False))]


def assert_additive(result: ShapValues, output: np.ndarray) -> None:
    total = result.values.sum(axis=1).to_numpy() + result.expected_value
    np.testing.assert_allclose(total, output, rtol=0, atol=ADDITIVITY)


# --- tree ensembles ----------------------------------------------------------------------------


def test_gradient_boosting_explains_log_odds(tmp_path: Path) -> None:
    X, y = make_data()
    model = saved(GradientBoostingClassifier(n_estimators=50, random_state=0).fit(X, y), tmp_path)
    result = explain(model, X)
    assert (result.explainer, result.output, result.positive_class) == ("tree", "log_odds", 1)
    assert list(result.values.columns) == list(X.columns)
    assert result.values.index.equals(X.index)  # every row, no sampling
    assert_additive(result, model.decision_function(X))


def test_random_forest_explains_probability(tmp_path: Path) -> None:
    X, y = make_data()
    model = saved(RandomForestClassifier(n_estimators=30, random_state=0).fit(X, y), tmp_path)
    result = explain(model, X)
    assert (result.explainer, result.output) == ("tree", "probability")
    assert_additive(result, model.predict_proba(X)[:, 1])


def test_negative_class_of_a_binary_model(tmp_path: Path) -> None:
    X, y = make_data()
    boosted = saved(GradientBoostingClassifier(n_estimators=20, random_state=0).fit(X, y), tmp_path)
    positive = explain(boosted, X)
    negative = explain(boosted, X, positive_class=0)
    np.testing.assert_allclose(negative.values, -positive.values)
    assert_additive(negative, -boosted.decision_function(X))
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    assert_additive(explain(forest, X, positive_class=0), forest.predict_proba(X)[:, 0])


def test_multiclass_needs_a_positive_class() -> None:
    X, y = make_data()
    labels = np.where(X["f1"] > 0.5, "high", np.where(y == 1, "yes", "no"))
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, labels)
    with pytest.raises(ValueError, match="3 classes: choose positive_class"):
        explain(model, X)
    with pytest.raises(ValueError, match="not one of the model's classes"):
        explain(model, X, positive_class="maybe")
    result = explain(model, X, positive_class="high")
    k = list(model.classes_).index("high")
    assert_additive(result, model.predict_proba(X)[:, k])


def test_regressor_and_column_order(tmp_path: Path) -> None:
    X, _ = make_data()
    target = 2 * X["f0"] - X["f3"] ** 2
    model = saved(
        GradientBoostingRegressor(n_estimators=30, random_state=0).fit(X, target), tmp_path
    )
    result = explain(model, X[list(reversed(X.columns))])  # reordered to the model's columns
    assert (result.explainer, result.positive_class) == ("tree", None)
    assert list(result.values.columns) == list(X.columns)
    assert_additive(result, model.predict(X))
    with pytest.raises(ValueError, match="applies to classifiers only"):
        explain(model, X, positive_class=1)
    with pytest.raises(ValueError, match=r"lacks the model's input columns \['f4'\]"):
        explain(model, X.drop(columns="f4"))


def test_tree_rows_can_be_bounded() -> None:
    X, y = make_data()
    model = GradientBoostingClassifier(n_estimators=10, random_state=0).fit(X, y)
    result = explain(model, X, max_tree_rows=50, seed=4)
    assert result.explainer == "tree"
    assert len(result.values) == 50
    assert result.values.index.equals(explain(model, X, max_tree_rows=50, seed=4).values.index)
    assert_additive(result, model.decision_function(X.loc[result.values.index]))
    with pytest.raises(ValueError, match="max_tree_rows"):
        explain(model, X, max_tree_rows=0)


def test_histogram_gradient_boosting_is_a_tree_model() -> None:
    X, y = make_data()
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, y)
    assert is_tree_model(model)
    result = explain(model, X)
    assert result.explainer == "tree"
    assert_additive(result, model.decision_function(X))


def test_tree_model_detection() -> None:
    X, y = make_data(rows=50)
    assert is_tree_model(GradientBoostingClassifier(n_estimators=2).fit(X, y))
    assert is_tree_model(RandomForestClassifier(n_estimators=2).fit(X, y))
    assert not is_tree_model(LogisticRegression().fit(X, y))
    assert not is_tree_model(make_pipeline(StandardScaler(), RandomForestClassifier()))


def test_unsupported_tree_variant_falls_back_to_sampling() -> None:
    X, y = make_data(rows=300)
    # shap's TreeExplainer refuses gradient boosting with a custom initial estimator.
    model = GradientBoostingClassifier(
        n_estimators=10, init=LogisticRegression(), random_state=0
    ).fit(X, y)
    result = explain(model, X, max_rows=5)
    assert (result.explainer, result.output) == ("sampled", "decision_function")
    assert_additive(result, model.decision_function(X.loc[result.values.index]))


# --- the sampled explainer ---------------------------------------------------------------------


@pytest.mark.parametrize("features", [3, 5, 12])
def test_sampled_explainer_matches_the_linear_closed_form(features: int, tmp_path: Path) -> None:
    X, y = make_data(rows=400, features=features, seed=features)
    model = saved(LogisticRegression().fit(X, y), tmp_path)
    assert not is_tree_model(model)
    result = explain(model, X, background=X, max_rows=40, max_background=100, seed=3)
    assert (result.explainer, result.output) == ("sampled", "decision_function")
    assert len(result.values) == 40
    explained = X.loc[result.values.index]
    background = background_sample(X, 100, seed=3)
    closed = (explained - background.mean()) * model.coef_[0]
    np.testing.assert_allclose(result.values, closed, rtol=0, atol=1e-6)
    assert result.expected_value == pytest.approx(
        float(model.decision_function(background).mean()), abs=1e-9
    )
    assert_additive(result, model.decision_function(explained))


class Product:
    """A model with an interaction: ``f(x) = x0 * x1`` (``x2`` unused)."""

    def predict(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        return X[:, 0] * X[:, 1]


def test_sampled_explainer_is_exact_for_few_features() -> None:
    # Interventional SHAP values of x0 * x1 against background rows b, with m = mean b:
    # phi_0 = ((x0 m1 - mean(b0 b1)) + (x0 x1 - m0 x1)) / 2, phi_1 symmetric, phi_2 = 0.
    rng = np.random.default_rng(5)
    X = pd.DataFrame(rng.normal(1.0, 1.0, size=(200, 3)), columns=["x0", "x1", "x2"])
    result = explain(Product(), X, max_rows=30, max_background=60, seed=2)
    assert (result.explainer, result.output) == ("sampled", "predict")
    b = background_sample(X, 60, seed=2).to_numpy()
    m0, m1, m01 = b[:, 0].mean(), b[:, 1].mean(), (b[:, 0] * b[:, 1]).mean()
    x = X.loc[result.values.index].to_numpy()
    phi0 = ((x[:, 0] * m1 - m01) + (x[:, 0] * x[:, 1] - m0 * x[:, 1])) / 2
    phi1 = ((x[:, 1] * m0 - m01) + (x[:, 0] * x[:, 1] - x[:, 0] * m1)) / 2
    np.testing.assert_allclose(result.values["x0"], phi0, atol=1e-9)
    np.testing.assert_allclose(result.values["x1"], phi1, atol=1e-9)
    np.testing.assert_allclose(result.values["x2"], 0.0, atol=1e-12)
    assert result.expected_value == pytest.approx(m01, abs=1e-12)


def test_sampled_explainer_on_a_pipeline() -> None:
    X, y = make_data(rows=300)
    X = X * [1.0, 10.0, 0.1, 1.0, 5.0] + [0.0, 100.0, -3.0, 0.0, 1.0]
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    result = explain(pipeline, X, max_rows=25, seed=1)
    scaler, logistic = pipeline[0], pipeline[-1]
    weights = logistic.coef_[0] / scaler.scale_  # linear in the raw inputs
    background = background_sample(X, 100, seed=1)
    closed = (X.loc[result.values.index] - background.mean()) * weights
    np.testing.assert_allclose(result.values, closed, rtol=0, atol=1e-6)


def test_sampled_explainer_is_seeded_and_bounded() -> None:
    X, _ = make_data(rows=500)
    target = X @ np.array([1.0, -2.0, 0.0, 0.5, 3.0])
    model = LinearRegression().fit(X.to_numpy(), target)  # fitted without column names
    first = explain(model, X, max_rows=30, max_background=50, seed=7)
    again = explain(model, X, max_rows=30, max_background=50, seed=7)
    other = explain(model, X, max_rows=30, max_background=50, seed=8)
    assert first.output == "predict"
    assert first.values.equals(again.values)
    assert not first.values.index.equals(other.values.index)
    assert first.values.index.is_monotonic_increasing
    assert_additive(first, model.predict(X.loc[first.values.index].to_numpy()))
    assert len(explain(model, X.iloc[:10], max_rows=30).values) == 10  # fewer rows: all of them


def test_shap_values_and_empty_input() -> None:
    X, y = make_data(rows=200)
    model = GradientBoostingClassifier(n_estimators=5, random_state=0).fit(X, y)
    frame = shap_values(model, X.iloc[:7])
    assert frame.shape == (7, 5)
    empty = explain(model, X.iloc[:0])
    assert empty.values.shape == (0, 5)
    with pytest.raises(ValueError, match="max_rows"):
        explain(model, X, max_rows=0)
    with pytest.raises(TypeError, match="DataFrame"):
        explain(model, X.to_numpy())  # type: ignore[arg-type]


def test_tree_shap_values_feed_an_attribution_summary() -> None:
    X, y = make_data(rows=1_000)
    model = GradientBoostingClassifier(n_estimators=30, random_state=0).fit(X, y)
    summary = AttributionSummary.from_values(shap_values(model, X))
    importance = summary.importance()
    assert max(importance, key=importance.__getitem__) == "f0"
    assert importance["f4"] < 0.05  # noise feature


# --- loading -----------------------------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"model\.joblib.*no such file"):
        load_model(tmp_path / "model.joblib")
    with pytest.raises(ModelLoadError, match="not a regular file"):
        load_model(tmp_path)


def test_file_that_is_not_a_pickle(tmp_path: Path) -> None:
    path = tmp_path / "model.joblib"
    path.write_text("age,income\n42,51000\n")
    with pytest.raises(ModelLoadError, match="not a joblib or pickle file"):
        load_model(path)


def test_pickle_that_is_not_a_model(tmp_path: Path) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump({"weights": [1, 2, 3]}, path)
    with pytest.raises(ModelLoadError, match="holds a dict, not a model with a predict method"):
        load_model(path)


def test_pickle_that_needs_a_missing_package(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    # Protocol 0: GLOBAL "not_a_pkg_x Model", STOP -- unpickling imports not_a_pkg_x.
    path.write_bytes(b"cnot_a_pkg_x\nModel\n.")
    with pytest.raises(ModelLoadError, match="needs the package 'not_a_pkg_x'"):
        load_model(path)


# --- explanations from records -----------------------------------------------------------------


def record(explanations: str | None) -> PredictionRecord:
    body = '{"model": "m", "timestamp": 0, "features": {"a": 1}, "prediction": 0.5'
    if explanations is not None:
        body += f', "explanations": {explanations}'
    decoded = decode_prediction((body + "}").encode())
    assert isinstance(decoded, PredictionRecord)
    return decoded


def test_explanations_frame_from_records() -> None:
    records = [
        record('{"age": 0.5, "income": -1}'),
        record(None),
        record("{}"),
        record('{"income": 2.0, "region": NaN, "tenure": 0.25}'),
    ]
    assert records[0].explanations == {"age": 0.5, "income": -1.0}
    frame = explanations_frame(records)
    assert list(frame.columns) == ["age", "income", "tenure"]
    assert len(frame) == 2
    assert (frame.dtypes == np.float64).all()
    np.testing.assert_array_equal(frame.to_numpy(), [[0.5, -1.0, np.nan], [np.nan, 2.0, 0.25]])
    chosen = explanations_frame(records, features=["income", "age"])
    assert list(chosen.columns) == ["income", "age"]
    np.testing.assert_array_equal(chosen.to_numpy(), [[-1.0, 0.5], [2.0, np.nan]])
    summary = AttributionSummary.from_values(frame)
    assert summary.counts.tolist() == [1, 2, 1]
    assert summary.mean_abs()["income"] == 1.5


def test_explanations_frame_without_explanations() -> None:
    frame = explanations_frame([record(None)], features=["a", "b"])
    assert frame.shape == (0, 2)
    assert (frame.dtypes == np.float64).all()
    assert explanations_frame([]).shape == (0, 0)

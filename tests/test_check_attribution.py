"""``driftline check --model``: SHAP attribution drift and features ordered by drift impact."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import GradientBoostingRegressor

from detectors.attribution import AttributionSummary
from monitor.analyses.explain import explain
from monitor.cli import EXIT_OK, EXIT_USAGE, main

FEATURES = ["f0", "f1", "f2", "f3"]


def frame(n: int, seed: int, shift: dict[str, float] | None = None) -> pd.DataFrame:
    """Four features; the target depends on f0 strongly, f1 weakly, f2 and f3 not at all."""
    rng = np.random.default_rng(seed)
    data = pd.DataFrame({name: rng.normal(size=n) for name in FEATURES})
    for name, delta in (shift or {}).items():
        data[name] += delta
    data["y"] = 3 * data["f0"] + 0.5 * data["f1"] + rng.normal(0, 0.1, n)
    return data


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("attribution")
    reference = frame(3_000, 1)
    model = GradientBoostingRegressor(n_estimators=40, max_depth=3, random_state=0)
    model.fit(reference[FEATURES], reference["y"])
    paths = {"model": folder / "model.joblib", "ref": folder / "ref.parquet"}
    joblib.dump(model, paths["model"])
    reference.to_parquet(paths["ref"])
    # f3 (ignored by the model) moves much more than f0 (what the model relies on).
    paths["cur"] = folder / "cur.parquet"
    frame(3_000, 2, shift={"f0": 0.4, "f3": 1.5}).to_parquet(paths["cur"])
    return paths


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = main(["check", "--format", "json", *args])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


def test_features_are_ordered_by_drift_impact(files, capsys):
    code, out = run_json(
        capsys,
        "--reference",
        str(files["ref"]),
        "--current",
        str(files["cur"]),
        "--target",
        "y",
        "--model",
        str(files["model"]),
    )
    assert code == EXIT_OK
    statistics = {f["name"]: f["effect_size"] for f in out["features"]}
    assert statistics["f3"] > statistics["f0"]  # by severity alone f3 would come first
    impact = out["drift_impact"]
    assert impact[0]["name"] == "f0"
    assert [f["name"] for f in out["features"]] == [d["name"] for d in impact]
    by_name = {d["name"]: d for d in impact}
    assert by_name["f3"]["importance"] < 0.02 < 0.6 < by_name["f0"]["importance"]
    assert sum(d["importance"] for d in impact) == pytest.approx(1.0)
    for d in impact:
        assert d["impact"] == pytest.approx(statistics[d["name"]] * d["importance"])
    # The attribution itself: the tree explainer on a seeded sample of 2,000 rows a side;
    # f0's mean |SHAP| grew: its values moved away from the reference mean.
    attribution = out["attribution"]
    assert attribution["explainer"] == "tree"
    assert attribution["explained_rows"] == {"reference": 2000, "current": 2000}
    f0 = next(f for f in attribution["features"] if f["name"] == "f0")
    assert f0["current_mean_abs"] > f0["reference_mean_abs"]


def test_attribution_equals_the_explainer_on_the_same_rows(files, capsys, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("attribution:\n  max_rows: 5000\n")  # every row: no sampling
    code, out = run_json(
        capsys,
        "--reference",
        str(files["ref"]),
        "--current",
        str(files["cur"]),
        "--target",
        "y",
        "--model",
        str(files["model"]),
        "--config",
        str(config),
    )
    assert code == EXIT_OK
    model = joblib.load(files["model"])
    current = pd.read_parquet(files["cur"])[FEATURES]
    expected = AttributionSummary.from_values(explain(model, current).values).mean_abs()
    reported = {f["name"]: f["current_mean_abs"] for f in out["attribution"]["features"]}
    assert reported == pytest.approx(expected, rel=1e-9)


def test_without_model_the_keys_are_null_and_order_is_by_severity(files, capsys):
    code, out = run_json(capsys, "--reference", str(files["ref"]), "--current", str(files["cur"]))
    assert code == EXIT_OK
    assert out["attribution"] is None
    assert out["drift_impact"] is None
    assert out["features"][0]["name"] == "f3"


def test_a_missing_or_unusable_model_is_one_sentence(files, capsys, tmp_path):
    base = ["check", "--reference", str(files["ref"]), "--current", str(files["cur"])]
    assert main([*base, "--model", str(tmp_path / "absent.joblib")]) == EXIT_USAGE
    assert "absent.joblib" in capsys.readouterr().err
    text = tmp_path / "not_a_model.joblib"
    text.write_text("hello")
    assert main([*base, "--model", str(text)]) == EXIT_USAGE
    assert "Traceback" not in capsys.readouterr().err
    pd.read_parquet(files["cur"]).drop(columns="f1").to_parquet(tmp_path / "cur.parquet")
    code = main(
        [
            "check",
            "--reference",
            str(files["ref"]),
            "--current",
            str(tmp_path / "cur.parquet"),
            "--model",
            str(files["model"]),
        ]
    )
    assert code == EXIT_USAGE
    assert "'f1'" in capsys.readouterr().err


def test_table_shows_impact_and_attribution(files, capsys):
    code = main(
        [
            "check",
            "--reference",
            str(files["ref"]),
            "--current",
            str(files["cur"]),
            "--model",
            str(files["model"]),
        ]
    )
    out = capsys.readouterr().out
    assert code == EXIT_OK
    assert "by drift impact" in out
    assert "Attribution drift (tree explainer" in out

"""``driftline check --target --prediction``: model quality and CBPE, against scikit-learn."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from detectors.performance import CBPE
from monitor.check.quality import infer_task
from monitor.cli import EXIT_OK, EXIT_USAGE, main

CONTRACT_KEYS = {"dataset_drift", "drift_share", "features"}


def classifier_frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """A calibrated binary classifier: the score is the true probability of y = 1."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(shift, 1, n), rng.normal(0, 1, n)
    score = 1 / (1 + np.exp(-(1.5 * x1 - x2)))
    y = (rng.random(n) < score).astype(int)
    return pd.DataFrame({"x1": x1, "x2": x2, "score": score, "y": y})


def regression_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n)
    y = 3 * x + rng.normal(0, 1, n) + 10
    return pd.DataFrame({"x": x, "y": y, "yhat": 3 * x + 10 + rng.normal(0, 0.5, n)})


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = main(["check", "--format", "json", *args])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


def write(frame: pd.DataFrame, path: Path) -> str:
    frame.to_parquet(path)
    return str(path)


def test_binary_scores_quality_equals_scikit_learn_and_cbpe(tmp_path, capsys):
    reference, current = classifier_frame(6_000, 1), classifier_frame(6_000, 2, shift=0.6)
    code, out = run_json(
        capsys,
        "--reference",
        write(reference, tmp_path / "ref.parquet"),
        "--current",
        write(current, tmp_path / "cur.parquet"),
        "--target",
        "y",
        "--prediction",
        "score",
    )
    assert code == EXIT_OK
    assert set(out) >= CONTRACT_KEYS
    assert "y" not in {f["name"] for f in out["features"]}  # the target is not a feature
    quality = out["quality"]
    assert quality["task"] == "binary_scores"
    assert quality["positive_label"] == "1"
    y, score = current["y"], current["score"]
    predicted = (score >= 0.5).astype(int)
    realized = quality["current"]
    assert realized["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted), abs=1e-12)
    assert realized["macro_f1"] == pytest.approx(
        skm.f1_score(y, predicted, average="macro"), abs=1e-12
    )
    assert abs(realized["roc_auc"] - skm.roc_auc_score(y, score)) <= realized["roc_auc_bound"]
    assert realized["log_loss"] == pytest.approx(skm.log_loss(y, score), rel=1e-9)
    assert realized["brier_score"] == pytest.approx(skm.brier_score_loss(y, score), rel=1e-9)
    reference_accuracy = skm.accuracy_score(reference["y"], (reference["score"] >= 0.5))
    assert quality["reference"]["accuracy"] == pytest.approx(reference_accuracy, abs=1e-12)
    # The estimate is the library's CBPE fitted on the reference, applied to the current scores.
    estimated = out["estimated_performance"]
    direct = CBPE.fit(reference["y"], reference["score"]).estimate(score)
    assert estimated["estimate"]["accuracy"] == pytest.approx(direct.accuracy, abs=1e-12)
    assert estimated["estimate"]["roc_auc"] == pytest.approx(direct.roc_auc, abs=1e-12)
    # Calibrated scores: the label-free estimate lands near the realized values.
    assert estimated["realized"]["accuracy"] == realized["accuracy"]
    assert abs(estimated["estimate"]["accuracy"] - realized["accuracy"]) < 0.02
    assert abs(estimated["estimate"]["roc_auc"] - realized["roc_auc"]) < 0.02
    assert abs(estimated["estimate"]["f1"] - estimated["realized"]["f1"]) < 0.02


def test_without_labels_in_the_current_file_only_the_estimate_is_given(tmp_path, capsys):
    reference, current = classifier_frame(3_000, 3), classifier_frame(3_000, 4)
    code, out = run_json(
        capsys,
        "--reference",
        write(reference, tmp_path / "ref.parquet"),
        "--current",
        write(current.drop(columns="y"), tmp_path / "cur.parquet"),
        "--target",
        "y",
        "--prediction",
        "score",
    )
    assert code == EXIT_OK
    assert out["quality"]["current"] is None
    assert any("no 'y' column" in note for note in out["quality"]["notes"])
    assert out["estimated_performance"]["realized"] is None
    assert 0.5 < out["estimated_performance"]["estimate"]["roc_auc"] <= 1


def test_regression_quality_equals_scikit_learn(tmp_path, capsys):
    reference, current = regression_frame(4_000, 5), regression_frame(4_000, 6)
    current.loc[:9, "yhat"] = np.nan  # left out, and said so
    code, out = run_json(
        capsys,
        "--reference",
        write(reference, tmp_path / "ref.parquet"),
        "--current",
        write(current, tmp_path / "cur.parquet"),
        "--target",
        "y",
        "--prediction",
        "yhat",
    )
    assert code == EXIT_OK
    quality = out["quality"]
    assert quality["task"] == "regression"
    assert out["estimated_performance"] is None
    kept = current.dropna()
    realized = quality["current"]
    assert realized["rows"] == len(kept) == 3_990
    assert realized["mae"] == pytest.approx(skm.mean_absolute_error(kept.y, kept.yhat), rel=1e-9)
    assert realized["rmse"] == pytest.approx(
        np.sqrt(skm.mean_squared_error(kept.y, kept.yhat)), rel=1e-9
    )
    assert realized["r2"] == pytest.approx(skm.r2_score(kept.y, kept.yhat), rel=1e-9)
    assert realized["mape"] == pytest.approx(
        skm.mean_absolute_percentage_error(kept.y, kept.yhat), rel=1e-9
    )
    assert any("10 current rows" in note for note in quality["notes"])


def test_label_classifier_quality_equals_scikit_learn(tmp_path, capsys):
    rng = np.random.default_rng(7)
    labels = np.array(["approve", "reject", "review"])

    def frame(n: int) -> pd.DataFrame:
        truth = rng.choice(labels, n, p=[0.5, 0.3, 0.2])
        wrong = rng.random(n) < 0.25
        predicted = np.where(wrong, rng.choice(labels, n), truth)
        return pd.DataFrame({"x": rng.normal(size=n), "label": truth, "decision": predicted})

    reference, current = frame(3_000), frame(3_000)
    code, out = run_json(
        capsys,
        "--reference",
        write(reference, tmp_path / "ref.parquet"),
        "--current",
        write(current, tmp_path / "cur.parquet"),
        "--target",
        "label",
        "--prediction",
        "decision",
    )
    assert code == EXIT_OK
    realized = out["quality"]["current"]
    assert out["quality"]["task"] == "classification"
    assert realized["accuracy"] == pytest.approx(
        skm.accuracy_score(current.label, current.decision), abs=1e-12
    )
    assert realized["macro_f1"] == pytest.approx(
        skm.f1_score(current.label, current.decision, average="macro"), abs=1e-12
    )
    assert out["estimated_performance"] is None


def test_scores_of_text_labels_need_a_positive_label(tmp_path, capsys):
    reference = classifier_frame(1_000, 8)
    reference["y"] = np.where(reference["y"] == 1, "bad", "good")
    ref = write(reference, tmp_path / "ref.parquet")
    code = main(
        ["check", "--reference", ref, "--current", ref, "--target", "y", "--prediction", "score"]
    )
    assert code == EXIT_USAGE
    assert "quality.positive_label" in capsys.readouterr().err
    config = tmp_path / "config.yaml"
    config.write_text("quality:\n  positive_label: bad\n")
    code, out = run_json(
        capsys,
        "--reference",
        ref,
        "--current",
        ref,
        "--target",
        "y",
        "--prediction",
        "score",
        "--config",
        str(config),
    )
    assert code == EXIT_OK
    assert out["quality"]["positive_label"] == "bad"
    predicted = np.where(reference["score"] >= 0.5, "bad", "good")
    assert out["quality"]["current"]["accuracy"] == pytest.approx(
        skm.accuracy_score(reference["y"], predicted), abs=1e-12
    )


def test_a_bad_quality_config_names_the_field(tmp_path, capsys):
    reference = classifier_frame(500, 9)
    ref = write(reference, tmp_path / "ref.parquet")
    config = tmp_path / "config.yaml"
    config.write_text("quality:\n  threshold: 1.5\n")
    code = main(["check", "--reference", ref, "--current", ref, "--config", str(config)])
    assert code == EXIT_USAGE
    assert "quality.threshold" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("truth", "predicted", "task"),
    [
        ([0, 1, 1, 0], [0.1, 0.8, 0.6, 0.3], "binary_scores"),
        ([0, 1, 1, 0], [0, 1, 0, 0], "classification"),
        (["a", "b", "c", "a"], ["a", "b", "b", "a"], "classification"),
        ([1, 2, 3, 2], [1, 2, 2, 2], "classification"),
        ([1.5, 2.5, 3.1, 0.2], [1.4, 2.2, 3.0, 0.4], "regression"),
        ([True, False, True, True], [0.9, 0.2, 0.7, 0.4], "binary_scores"),
    ],
)
def test_task_inference(truth, predicted, task):
    frame = pd.DataFrame({"t": truth, "p": predicted})
    assert infer_task(frame, "t", "p") == task


def test_table_output_shows_the_quality_table(tmp_path, capsys):
    reference, current = classifier_frame(2_000, 10), classifier_frame(2_000, 11)
    code = main(
        [
            "check",
            "--reference",
            write(reference, tmp_path / "ref.parquet"),
            "--current",
            write(current, tmp_path / "cur.parquet"),
            "--target",
            "y",
            "--prediction",
            "score",
        ]
    )
    out = capsys.readouterr().out
    assert code == EXIT_OK
    assert "Model quality (binary_scores)" in out
    assert "estimated (CBPE)" in out
    assert "Data quality" in out

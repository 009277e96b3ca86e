"""A reference file's prediction, target and score columns: checked, refused or announced.

``driftline reference build`` (through :func:`monitor.cli.main`) and
``POST /api/models/{model}/reference`` (through the FastAPI app on a real
SQLite store) share :func:`monitor.analyses.reference.check_reference_columns`: a file
whose prediction, target or score column is missing or ambiguous is refused
with the same message (exit 2 / 422) and nothing is stored; a stored one is
described role by role.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from detectors.kinds import ColumnKind
from monitor.analyses.model import PREDICTION, StoredReference
from monitor.analyses.reference import ReferenceColumnsError, build_profile, check_reference_columns
from monitor.cli import EXIT_OK, EXIT_USAGE, main
from monitor.config.service import ModelConfig, ServiceConfig
from monitor.http.app import create_app
from monitor.metrics import Metrics
from monitor.store import Store

ROWS = 300

#: The models of the test config, by name.
MODELS: dict[str, dict[str, Any]] = {
    "credit": {},  # every default: prediction.field score, prediction.column "prediction"
    "renamed": {"prediction": {"column": "score"}},
    "no-prediction": {"prediction": {"column": None}},
    "estimated": {
        "prediction": {"field": "score", "positive_label": 1},
        "performance_estimation": {"target": "outcome"},
        "columns": {"ignore": ["request_id"]},
    },
    "own-score": {
        "prediction": {"field": "label", "positive_label": "yes"},
        "performance_estimation": {"target": "outcome", "score": "proba"},
    },
    "declared": {"columns": {"kinds": {"score": "numeric"}}},
}


def training(seed: int = 0, **columns: Any) -> pd.DataFrame:
    """Three features (two numeric, one categorical) and the given extra columns."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.normal(45, 12, ROWS),
            "income": rng.lognormal(10, 0.5, ROWS),
            "region": rng.choice(["EU", "US", "APAC"], ROWS),
        }
    )
    for name, values in columns.items():
        frame[name] = values
    return frame


def scores(seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random(ROWS)


def outcomes(seed: int = 2) -> np.ndarray:
    return (np.random.default_rng(seed).random(ROWS) < scores()).astype(int)


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'reference.db'}"


@pytest.fixture
def config_file(tmp_path: Path, database: str) -> Path:
    path = tmp_path / "driftline.yaml"
    models = [{"name": name, **settings} for name, settings in MODELS.items()]
    path.write_text(yaml.safe_dump({"database": {"url": database}, "models": models}))
    return path


@pytest.fixture
def store(database: str) -> Iterator[Store]:
    store = Store.connect(database)
    yield store
    store.close()


@pytest.fixture
def client(config_file: Path, store: Store) -> Iterator[TestClient]:
    registry = CollectorRegistry()
    config = ServiceConfig.load(config_file)
    app = create_app(config, store, registry, Metrics(registry), broker_check=lambda: None)
    with TestClient(app) as client:
        yield client


def build(
    config_file: Path, tmp_path: Path, model: str, frame: pd.DataFrame, capsys: Any
) -> tuple[int, str, str]:
    """Run ``driftline reference build`` on ``frame``; return (exit code, stdout, stderr)."""
    path = tmp_path / f"{model}.parquet"
    frame.to_parquet(path)
    code = main(
        ["reference", "build", "--config", str(config_file), "--model", model, "--file", str(path)]
    )
    out, err = capsys.readouterr()
    return code, out, err


def upload(client: TestClient, model: str, frame: pd.DataFrame) -> Any:
    csv = frame.to_csv(index=False).encode()
    return client.post(f"/api/models/{model}/reference", files={"file": ("train.csv", csv)})


def refused_alike(
    config_file: Path, tmp_path: Path, client: TestClient, capsys: Any, model: str, frame: Any
) -> str:
    """Assert both paths refuse ``frame`` with one message and store nothing; return it."""
    code, out, err = build(config_file, tmp_path, model, frame, capsys)
    assert (code, out) == (EXIT_USAGE, "")
    prefix = "driftline reference: "
    assert err.startswith(prefix)
    message = err.removeprefix(prefix).strip()
    assert "\n" not in message  # one sentence per problem, never wrapped mid-way
    response = upload(client, model, frame)
    assert response.status_code == 422, response.text
    assert response.json() == {"detail": message}
    stored = Store.connect(ServiceConfig.load(config_file).database_url())
    try:
        assert stored.latest_profile(model) is None
    finally:
        stored.close()
    return message


# --- refused -----------------------------------------------------------------------------------


def test_prediction_column_missing(
    config_file: Path, tmp_path: Path, client: TestClient, capsys: Any
) -> None:
    message = refused_alike(config_file, tmp_path, client, capsys, "credit", training())
    assert message == (
        "model 'credit': the file has no prediction column 'prediction' (prediction.column). "
        "The file's columns: 'age', 'income', 'region'. Fix: add the model's predictions on "
        "these rows as a column 'prediction', or set prediction.column in model 'credit' to the "
        "column that holds them; if the file holds no predictions, set prediction.column: null "
        "(windows then report no prediction drift)."
    )


def test_prediction_column_named_after_prediction_field(
    config_file: Path, tmp_path: Path, client: TestClient, capsys: Any
) -> None:
    """The reported case: the score column is named ``score`` (prediction.field), not
    ``prediction``; stored, it became a feature and prediction drift was always null."""
    frame = training(score=scores())
    message = refused_alike(config_file, tmp_path, client, capsys, "credit", frame)
    assert message.startswith(
        "model 'credit': the file has no prediction column 'prediction' (prediction.column); "
        "did you mean 'score'? It is named like the prediction (prediction.field: score). "
        "The file's columns: 'age', 'income', 'region', 'score'. "
        "Fix: set prediction.column: score in model 'credit' (or rename column 'score' to "
        "'prediction')"
    )


def test_target_missing_when_performance_estimation_needs_it(
    config_file: Path, tmp_path: Path, client: TestClient, capsys: Any
) -> None:
    frame = training(prediction=scores(), truth=outcomes())
    message = refused_alike(config_file, tmp_path, client, capsys, "estimated", frame)
    assert message.startswith(
        "model 'estimated': the file has no target column 'outcome' "
        "(performance_estimation.target), which the performance estimator is fitted on; "
        "did you mean 'truth'?"
    )
    assert "set performance_estimation.target" in message


def test_score_missing_when_performance_estimation_needs_it(
    config_file: Path, tmp_path: Path, client: TestClient, capsys: Any
) -> None:
    frame = training(prediction=np.where(scores() > 0.5, "yes", "no"), outcome=outcomes())
    message = refused_alike(config_file, tmp_path, client, capsys, "own-score", frame)
    assert "no score column 'proba' (performance_estimation.score)" in message


@pytest.mark.parametrize(
    ("model", "extra", "column", "says"),
    [
        # Both the prediction column and a score column nothing claims.
        ("credit", {"prediction": 0.5, "score": 0.5}, "score", "named like a prediction"),
        # True labels left in the file without a role.
        ("credit", {"prediction": 0.5, "label": 1}, "label", "looks like the true labels"),
        ("credit", {"prediction": 0.5, "Outcome": 1}, "Outcome", "looks like the true labels"),
        # prediction.column names another column, and "prediction" is still there.
        ("renamed", {"score": 0.5, "prediction": 0.5}, "prediction", "reserved"),
        # No prediction declared, but the file has one under the field's name.
        ("no-prediction", {"score": 0.5}, "score", "set prediction.column: score"),
    ],
)
def test_ambiguous_columns_are_refused(
    config_file: Path,
    tmp_path: Path,
    client: TestClient,
    capsys: Any,
    model: str,
    extra: dict[str, Any],
    column: str,
    says: str,
) -> None:
    message = refused_alike(config_file, tmp_path, client, capsys, model, training(**extra))
    assert f"'{column}'" in message
    assert says in message
    assert "Fix: " in message
    assert "The file's columns: " in message


# --- stored, and said so -----------------------------------------------------------------------


def test_stored_reference_is_described_role_by_role(
    config_file: Path, tmp_path: Path, capsys: Any, store: Store
) -> None:
    frame = training(prediction=scores())
    assert build(config_file, tmp_path, "credit", frame, capsys) == (
        EXIT_OK,
        "Stored reference profile version 1 of 'credit': 4 columns, 300 rows.\n"
        "  prediction: column 'prediction', compared with the records' prediction.score "
        "(numeric)\n"
        "  target: none\n"
        "  score: none\n"
        "  features: 3 (1 categorical, 2 numeric): age, income, region\n"
        "  note: no target or score (performance_estimation is not configured): no performance "
        "estimator is fitted, windows get no estimated_performance\n",
        "",
    )
    stored = StoredReference.from_bytes(store.profile("credit", 1) or b"")
    assert list(stored.profile.specs) == ["age", "income", "region", PREDICTION]


def test_estimated_model_lists_target_score_and_left_out_columns(
    config_file: Path, tmp_path: Path, capsys: Any, store: Store
) -> None:
    frame = training(prediction=scores(), outcome=outcomes(), request_id=np.arange(ROWS))
    frame["logged_at"] = pd.Timestamp("2026-01-01", tz="UTC")  # profiled as nothing
    code, out, err = build(config_file, tmp_path, "estimated", frame, capsys)
    assert (code, err) == (EXIT_OK, "")
    assert out.splitlines() == [
        "Stored reference profile and its performance estimator version 1 of 'estimated': "
        "4 columns, 300 rows.",
        "  prediction: column 'prediction', compared with the records' prediction.score (numeric)",
        "  target: column 'outcome' (performance_estimation.target)",
        "  score: the prediction column 'prediction' (performance_estimation.score)",
        "  features: 3 (1 categorical, 2 numeric): age, income, region",
        "  not profiled: logged_at (no kind could be inferred: a date/time, or no value)",
        "  left out: request_id (columns.ignore)",
    ]
    stored = StoredReference.from_bytes(store.profile("estimated", 1) or b"")
    assert stored.estimator is not None


def test_prediction_column_setting_profiles_that_column_as_the_prediction(
    config_file: Path, tmp_path: Path, capsys: Any, store: Store, client: TestClient
) -> None:
    """``prediction.column: score`` is the fix the refusal suggests: it stores the same
    profile as a file whose column is named ``prediction``."""
    frame = training(score=scores())
    code, out, _ = build(config_file, tmp_path, "renamed", frame, capsys)
    assert code == EXIT_OK
    assert "  prediction: column 'score', compared with the records' prediction.score" in out
    stored = StoredReference.from_bytes(store.profile("renamed", 1) or b"")
    expected = build_profile(ModelConfig(name="x"), frame.rename(columns={"score": PREDICTION}))
    assert stored.profile.specs == expected.specs
    assert stored.profile.specs[PREDICTION].kind is ColumnKind.NUMERIC
    # The HTTP upload stores the same profile.
    response = upload(client, "renamed", frame)
    assert response.status_code == 201, response.text
    assert response.json()["columns"] == ["age", "income", "region", PREDICTION]


def test_no_prediction_column_when_the_config_says_so(
    config_file: Path, tmp_path: Path, capsys: Any, client: TestClient
) -> None:
    code, out, _ = build(config_file, tmp_path, "no-prediction", training(), capsys)
    assert code == EXIT_OK
    assert "  prediction: none (prediction.column: null)" in out
    assert "  note: no prediction column (prediction.column: null): no prediction drift" in out
    response = upload(client, "no-prediction", training())
    assert response.status_code == 201, response.text
    assert response.json()["columns"] == ["age", "income", "region"]


def test_a_declared_feature_is_not_ambiguous(
    config_file: Path, tmp_path: Path, capsys: Any
) -> None:
    """A credit model's feature may be called ``score``: ``columns.kinds`` says it is one."""
    frame = training(prediction=scores(), score=scores(seed=5))
    code, out, _ = build(config_file, tmp_path, "declared", frame, capsys)
    assert code == EXIT_OK
    assert "  features: 4 (1 categorical, 3 numeric): age, income, region, score" in out


# --- the check alone ---------------------------------------------------------------------------


def model(**settings: Any) -> ModelConfig:
    return ModelConfig.model_validate({"name": "m", **settings})


def test_check_returns_each_columns_role() -> None:
    config = model(
        prediction={"field": "label", "positive_label": "yes"},
        performance_estimation={"target": "outcome", "score": "proba"},
        columns={"ignore": ["id"]},
        attribution={"source": "explanations"},
    )
    columns = ["id", "age", "prediction", "proba", "outcome", "shap_age"]
    plan = check_reference_columns(config, columns)
    assert (plan.prediction, plan.target, plan.score) == ("prediction", "outcome", "proba")
    assert plan.features == ("age",)
    assert dict(plan.left_out) == {
        "id": "columns.ignore",
        "shap_age": "SHAP values (attribution.reference_prefix)",
    }
    assert plan.notes == ()


@pytest.mark.parametrize(
    ("settings", "columns", "column"),
    [
        ({}, ["a"], "prediction"),
        ({"prediction": {"column": "p"}}, ["a", "prediction"], "p"),
        ({"columns": {"ignore": ["prediction"]}}, ["a", "prediction"], "prediction"),
        (
            {"prediction": {"field": "label"}},
            ["a", "prediction", "predicted_label"],
            "predicted_label",
        ),
        ({"prediction": {"field": "label"}}, ["a", "prediction", "y_true"], "y_true"),
        (
            {"prediction": {"column": None}, "performance_estimation": {"target": "t"}},
            ["a", "t"],
            "prediction",
        ),
        (
            {
                "prediction": {"column": "t"},
                "performance_estimation": {"target": "t", "score": "s"},
            },
            ["a", "t", "s"],
            "t",
        ),
    ],
)
def test_check_refuses(settings: dict[str, Any], columns: list[str], column: str) -> None:
    with pytest.raises(ReferenceColumnsError) as caught:
        check_reference_columns(model(**settings), columns)
    assert caught.value.column == column
    assert caught.value.columns == tuple(columns)
    assert isinstance(caught.value, ValueError)  # the CLI's exit 2 and one-line message


def test_check_accepts_ignored_lookalikes() -> None:
    config = model(columns={"ignore": ["score", "label"]})
    plan = check_reference_columns(config, ["a", "prediction", "score", "label"])
    assert plan.features == ("a",)
    assert dict(plan.left_out) == {"score": "columns.ignore", "label": "columns.ignore"}


def test_a_reference_file_in_the_config_is_checked_when_the_service_starts(
    tmp_path: Path, database: str, store: Store
) -> None:
    """``models[].reference``, profiled at start-up, gets the same refusal as the CLI."""
    from monitor.service.run import ServiceError, load_runtimes

    misnamed = tmp_path / "train.parquet"
    training(score=scores()).to_parquet(misnamed)
    path = tmp_path / "service.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "database": {"url": database},
                "models": [{"name": "credit", "reference": str(misnamed)}],
            }
        )
    )
    with pytest.raises(ServiceError, match="did you mean 'score'"):
        load_runtimes(ServiceConfig.load(path), store)
    assert store.latest_profile("credit") is None  # nothing stored

    training(prediction=scores()).to_parquet(misnamed)
    runtimes = load_runtimes(ServiceConfig.load(path), store)
    assert runtimes["credit"].profile_version == 1

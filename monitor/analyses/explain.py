"""SHAP values for attribution drift: from a model file, or from the records' ``explanations``.

Attribution drift (:mod:`detectors.attribution`) needs per-row SHAP values of
the reference and of each window. They come from one of two places:

* the serving side computed them and sent them in the prediction record's
  optional ``explanations`` field: :func:`explanations_frame` turns decoded
  records into a frame of them (no model needed here);
* driftline computes them from the model: :func:`load_model` reads the model
  file named in the configuration and :func:`explain` computes SHAP values
  for a frame of feature rows with the ``shap`` package.

.. warning::

   **Loading a model file executes code.** joblib and pickle files are
   programs: unpickling one runs whatever callables the file names, with this
   process's permissions. :func:`load_model` must only ever be given the path
   written in driftline's configuration by its operator -- never a path (or
   file contents) that arrived in an HTTP request, a Kafka record, an uploaded
   reference or any other input an untrusted party can influence, and the
   configured file must be writable only by people who may run code as the
   monitor. driftline itself calls it with the configured path only.

Which explainer
---------------
* Tree ensembles that shap's ``TreeExplainer`` supports -- scikit-learn's
  decision trees, random forests, extra trees, gradient boosting and
  histogram gradient boosting, LightGBM and XGBoost (recognised by class name;
  neither library is imported here) -- get exact Tree SHAP values
  ("tree_path_dependent": no background data needed) for every row, in
  polynomial time (``max_tree_rows`` bounds the rows if needed). Should shap
  refuse such a model (e.g. gradient boosting with a custom ``init``
  estimator) the sampled explainer is used instead.
* Any other model with ``predict`` gets a sampled, model-agnostic explainer:
  ``shap.Explainer`` over the model's prediction function with an independent
  masker on a background of at most ``max_background`` (default 100) rows of
  the reference (or of the data, when no background is given), drawn without
  replacement with ``seed``. With ``M`` features the algorithm is whichever
  of shap's two costs fewer evaluations of the background per row: the exact
  explainer (``2^M``, every coalition: exact SHAP values) when
  ``2^M <= PERMUTATIONS x (2M + 1)``, i.e. up to 7 features, else the
  permutation explainer with :data:`PERMUTATIONS` random feature orders, each
  also run backwards (a Monte Carlo estimate, exact for models additive in
  their features such as linear or logistic regression on the explained
  scale). The values are additive either way: per row their sum plus
  ``expected_value`` is the model's output. At most ``max_rows`` (default
  1,000) rows are explained, drawn without replacement with ``seed``: about
  16 s for 1,000 rows of a 20-feature logistic regression on this project's
  2-core benchmark machine. The first sampled explanation in a process also
  JIT-compiles shap's numba helpers (6-9 s, once). shap re-seeds NumPy's
  global random generator with ``seed``.

Which output
------------
SHAP values explain one number per row; :attr:`ShapValues.output` says which.

* Regressors: the prediction.
* Classifiers: the positive class's output. ``positive_class`` is a label of
  ``model.classes_``; by default the last one, which is scikit-learn's positive
  class of a binary problem (the column ``predict_proba(X)[:, 1]``). With more
  than two classes it must be given. Tree ensembles explain their raw output
  (``tree_output``): log-odds for gradient boosting, LightGBM and XGBoost
  classifiers, the class probability for random forests and single trees. The
  sampled explainer explains ``decision_function`` for binary classifiers that
  have one (log-odds for logistic regression, where SHAP values are then
  linear in the features: ``w_j (x_j - mean_j)``) and ``predict_proba`` of the
  positive class otherwise. Attribution drift compares a model with itself, so
  the scale only has to be the same for the reference and the windows: explain
  both with the same model and settings.

``shap`` takes about two seconds and 300 MB to import (numba); it is imported
on the first call that needs it, not with this module.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from monitor.records import PredictionRecord

__all__ = [
    "DEFAULT_BACKGROUND_ROWS",
    "DEFAULT_MAX_ROWS",
    "PERMUTATIONS",
    "TREE_MODEL_CLASSES",
    "ModelLoadError",
    "ShapValues",
    "explain",
    "explanations_frame",
    "is_tree_model",
    "load_model",
    "shap_values",
]

#: Rows of the background (reference) sample of the sampled explainer.
DEFAULT_BACKGROUND_ROWS: Final = 100
#: Rows the sampled explainer explains at most (a seeded sample of the data beyond that).
DEFAULT_MAX_ROWS: Final = 1000

#: Random feature orders (each also run backwards) per row of the permutation explainer.
PERMUTATIONS: Final = 10

#: Classes (by module path, subclasses included) explained with shap's TreeExplainer.
TREE_MODEL_CLASSES: Final = (
    "sklearn.tree.DecisionTreeClassifier",
    "sklearn.tree.DecisionTreeRegressor",
    "sklearn.ensemble.RandomForestClassifier",
    "sklearn.ensemble.RandomForestRegressor",
    "sklearn.ensemble.ExtraTreesClassifier",
    "sklearn.ensemble.ExtraTreesRegressor",
    "sklearn.ensemble.GradientBoostingClassifier",
    "sklearn.ensemble.GradientBoostingRegressor",
    "sklearn.ensemble.HistGradientBoostingClassifier",
    "sklearn.ensemble.HistGradientBoostingRegressor",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "lightgbm.sklearn.LGBMRegressor",
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
    "xgboost.sklearn.XGBRegressor",
)


class ModelLoadError(ValueError):
    """The configured model file is missing, unreadable or does not hold a model."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"cannot load the model {str(path)!r}: {problem}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ShapValues:
    """Per-row SHAP values of one model on a frame of rows.

    ``values`` has one row per explained row (indexed like the input; a seeded
    sample of it when rows are bounded) and one column per feature.
    ``values.sum(axis=1) + expected_value`` is the model's ``output`` on those
    rows. ``explainer`` is ``"tree"``, ``"sampled"`` or ``"none"`` (no rows);
    ``output`` names what is explained: ``"log_odds"``, ``"probability"`` or
    ``"raw_value"`` (tree ensembles, shap's ``tree_output``), or the model
    method for the sampled explainer (``"decision_function"``,
    ``"predict_proba"``, ``"predict"``). ``positive_class`` is the class
    explained (None for regressors).
    """

    values: pd.DataFrame
    expected_value: float
    explainer: str
    output: str
    positive_class: Any = None


def load_model(path: str | os.PathLike[str]) -> Any:
    """Return the model stored with joblib (or pickle) in the configured file ``path``.

    SECURITY: this executes code from the file (see the module docstring).
    Only pass the path from driftline's configuration, never one from a
    request, a record or an upload.

    Raises :class:`ModelLoadError` when the file does not exist, cannot be
    unpickled (not a joblib/pickle file, or it needs a package that is not
    installed) or holds an object without a ``predict`` method.
    """
    file = Path(path)
    if not file.exists():
        raise ModelLoadError(file, "no such file")
    if not file.is_file():
        raise ModelLoadError(file, "not a regular file")
    import joblib  # type: ignore[import-untyped]

    try:
        model = joblib.load(file)
    except ModuleNotFoundError as error:
        raise ModelLoadError(
            file, f"it needs the package {error.name!r}; install the model's dependencies"
        ) from error
    except Exception as error:  # unpickling reports a bad file in many ways
        raise ModelLoadError(
            file, f"not a joblib or pickle file ({type(error).__name__}: {error})"
        ) from error
    if not callable(getattr(model, "predict", None)):
        raise ModelLoadError(
            file, f"it holds a {type(model).__name__}, not a model with a predict method"
        )
    return model


def is_tree_model(model: Any) -> bool:
    """Return whether ``model`` is one of :data:`TREE_MODEL_CLASSES` (or a subclass)."""
    for cls in type(model).__mro__:
        name = f"{cls.__module__}.{cls.__qualname__}"
        for path in TREE_MODEL_CLASSES:
            module, _, qualname = path.rpartition(".")
            # scikit-learn defines its classes in private modules (sklearn.ensemble._gb).
            if cls.__qualname__ == qualname and (
                name == path or cls.__module__.startswith(module + ".")
            ):
                return True
    return False


def explain(
    model: Any,
    data: pd.DataFrame,
    *,
    background: pd.DataFrame | None = None,
    positive_class: Any = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_background: int = DEFAULT_BACKGROUND_ROWS,
    max_tree_rows: int | None = None,
    seed: int = 0,
) -> ShapValues:
    """Return the SHAP values of ``model`` on the rows of ``data``; see the module docstring.

    ``data`` holds the model's input columns (reordered to the model's
    ``feature_names_in_`` when it has them). ``background`` (reference rows)
    and ``max_background`` and ``max_rows`` concern the sampled explainer
    only. Tree ensembles are explained on every row unless ``max_tree_rows``
    is set (their cost grows with depth: about 0.05 ms per row for 100 trees of
    depth 3 but 3.6 ms for depth 8 on one core, see
    ``benchmarks/shap_attribution.py``); ``seed`` draws every row sample.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1; got {max_rows!r}")
    if max_background < 1:
        raise ValueError(f"max_background must be at least 1; got {max_background!r}")
    if max_tree_rows is not None and max_tree_rows < 1:
        raise ValueError(f"max_tree_rows must be at least 1 or None; got {max_tree_rows!r}")
    frame = _model_frame(model, data, "data")
    classes = _classes(model)
    positive = _positive_class(classes, positive_class)
    if len(frame) == 0:
        empty = pd.DataFrame(columns=frame.columns, dtype=np.float64)
        return ShapValues(
            values=empty, expected_value=float("nan"), explainer="none", output="none"
        )
    if is_tree_model(model):
        rows = frame if max_tree_rows is None else _sample(frame, max_tree_rows, seed)
        result = _tree(model, rows, classes, positive)
        if result is not None:
            return result
    reference = frame if background is None else _model_frame(model, background, "background")
    return _sampled(model, frame, reference, classes, positive, max_rows, max_background, seed)


def shap_values(model: Any, data: pd.DataFrame, **options: Any) -> pd.DataFrame:
    """Return only the per-row SHAP values frame of :func:`explain` (same options)."""
    return explain(model, data, **options).values


def explanations_frame(
    records: Iterable[PredictionRecord], features: Sequence[str] | None = None
) -> pd.DataFrame:
    """Return the ``explanations`` of prediction records as a frame of SHAP values.

    One row per record that has at least one explanation (records without
    them are skipped), one float column per feature: ``features`` in that
    order (other explained features are dropped), or by default every
    explained feature in order of first appearance. A feature a record does
    not explain is NaN, which :class:`detectors.attribution.AttributionSummary`
    does not count.
    """
    rows = [r.explanations for r in records if r.explanations]
    columns = (
        list(features) if features is not None else list(dict.fromkeys(k for r in rows for k in r))
    )
    if not rows:
        return pd.DataFrame({name: pd.Series(dtype=np.float64) for name in columns})
    return pd.DataFrame.from_records(rows, columns=columns).astype(np.float64)


def _model_frame(model: Any, data: pd.DataFrame, role: str) -> pd.DataFrame:
    """``data`` with the model's columns in the model's order (when the model knows them)."""
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"{role} must be a pandas DataFrame; got {type(data).__name__}")
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return data
    wanted = [str(n) for n in names]
    missing = [n for n in wanted if n not in data.columns]
    if missing:
        raise ValueError(f"{role} lacks the model's input columns {missing}")
    return data[wanted]


def _classes(model: Any) -> list[Any] | None:
    """The classifier's classes, or None for a regressor."""
    classes = getattr(model, "classes_", None)
    if classes is None or not (
        callable(getattr(model, "predict_proba", None))
        or callable(getattr(model, "decision_function", None))
    ):
        return None
    return list(np.asarray(classes).tolist())


def _positive_class(classes: list[Any] | None, positive: Any) -> Any:
    if classes is None:
        if positive is not None:
            raise ValueError(
                "positive_class applies to classifiers only; this model has no classes_"
            )
        return None
    if positive is None:
        if len(classes) > 2:
            raise ValueError(
                f"the model has {len(classes)} classes: choose positive_class among {classes}"
            )
        return classes[-1]
    if positive not in classes:
        raise ValueError(f"positive_class {positive!r} is not one of the model's classes {classes}")
    return positive


def _pick(
    values: Any, base: Any, classes: list[Any] | None, positive: Any
) -> tuple[np.ndarray, np.ndarray]:
    """The positive class's SHAP values (n, features) and base values (n,)."""
    values = np.asarray(values, dtype=np.float64)
    base = np.asarray(base, dtype=np.float64)
    if values.ndim == 3:  # one slice per class (e.g. forests' probabilities)
        if classes is None or values.shape[2] != len(classes):
            raise ValueError(f"unexpected multi-output SHAP values of shape {values.shape}")
        k = classes.index(positive)
        return values[:, :, k], base.reshape(len(values), -1)[:, k]
    base = base.reshape(-1)
    if classes is not None and positive != classes[-1]:
        # A single output of a binary classifier is the margin of classes_[1]; the other
        # class's margin is its negative.
        return -values, -base
    return values, base


def _tree(
    model: Any, frame: pd.DataFrame, classes: list[Any] | None, positive: Any
) -> ShapValues | None:
    """Tree SHAP values, or None when shap does not support this particular model."""
    import shap  # type: ignore[import-untyped]
    from shap.utils._exceptions import InvalidModelError  # type: ignore[import-untyped]

    try:
        explainer = shap.TreeExplainer(model)
    except (InvalidModelError, NotImplementedError):  # shap's "not (yet) supported"
        return None
    explanation = explainer(frame, check_additivity=True)
    values, base = _pick(explanation.values, explanation.base_values, classes, positive)
    return ShapValues(
        values=pd.DataFrame(values, index=frame.index, columns=frame.columns),
        expected_value=float(base[0]),
        explainer="tree",
        output=str(getattr(explainer.model, "tree_output", "raw")),
        positive_class=positive,
    )


def _sampled(
    model: Any,
    frame: pd.DataFrame,
    reference: pd.DataFrame,
    classes: list[Any] | None,
    positive: Any,
    max_rows: int,
    max_background: int,
    seed: int,
) -> ShapValues:
    import shap

    if len(reference) == 0:
        raise ValueError("background must have at least one row")
    reference = _sample(reference, max_background, seed)
    frame = _sample(frame, max_rows, seed + 1)
    output, predict = _prediction_function(model, frame, classes, positive)
    masker = shap.maskers.Independent(reference.to_numpy(), max_samples=len(reference))
    features = len(frame.columns)
    evaluations = PERMUTATIONS * (2 * features + 1)
    exact = 2**features <= evaluations
    explainer = shap.Explainer(
        predict,
        masker,
        algorithm="exact" if exact else "permutation",
        feature_names=[str(c) for c in frame.columns],
        seed=seed,
    )
    options = {} if exact else {"max_evals": evaluations}  # max_evals // (2M + 1) orders
    explanation = explainer(frame.to_numpy(), silent=True, **options)
    values = np.asarray(explanation.values, dtype=np.float64)
    base = np.asarray(explanation.base_values, dtype=np.float64).reshape(-1)
    return ShapValues(
        values=pd.DataFrame(values, index=frame.index, columns=frame.columns),
        expected_value=float(base[0]),
        explainer="sampled",
        output=output,
        positive_class=positive,
    )


def _sample(frame: pd.DataFrame, limit: int, seed: int) -> pd.DataFrame:
    """At most ``limit`` rows of ``frame``, drawn without replacement with ``seed``, in order."""
    if len(frame) <= limit:
        return frame
    rng = np.random.default_rng(seed)
    return frame.iloc[np.sort(rng.choice(len(frame), limit, replace=False))]


def _prediction_function(
    model: Any, frame: pd.DataFrame, classes: list[Any] | None, positive: Any
) -> tuple[str, Any]:
    """The explained output's name and a function of a 2-d array returning it per row."""
    columns, dtypes = frame.columns, frame.dtypes.to_dict()
    uniform = all(dtype == np.float64 for dtype in dtypes.values())
    named = getattr(model, "feature_names_in_", None) is not None

    def rows(matrix: np.ndarray) -> Any:
        # The masker hands over plain arrays. A model fitted on a DataFrame wants its column
        # names (and non-float columns their dtypes); others take the array as it is, which
        # saves most of the per-call cost (this runs tens of times per explained row).
        if uniform and not named:
            return matrix
        rebuilt = pd.DataFrame(matrix, columns=columns, copy=False)
        return rebuilt if uniform else rebuilt.astype(dtypes)

    if classes is None:
        return "predict", lambda m: np.asarray(model.predict(rows(m)), dtype=np.float64)
    decision = getattr(model, "decision_function", None)
    if len(classes) == 2 and callable(decision):
        sign = 1.0 if positive == classes[1] else -1.0
        return "decision_function", lambda m: sign * np.asarray(decision(rows(m)), np.float64)
    if not callable(getattr(model, "predict_proba", None)):
        raise ValueError(
            f"{type(model).__name__} has neither predict_proba nor a binary decision_function"
        )
    k = classes.index(positive)
    return "predict_proba", lambda m: np.asarray(model.predict_proba(rows(m)))[:, k]

"""What the service knows about each monitored model while it runs.

A :class:`ModelRuntime` ties a model's config to the reference profile its
windows are sketched on. The profile holds the model's features and, under
the reserved name :data:`PREDICTION`, its prediction (score or label), so
prediction drift is computed like feature drift.

A stored reference (:class:`StoredReference`) is the profile and, for a model
with ``performance_estimation``, the :class:`~detectors.performance.CBPE`
fitted on the reference's target and score. Both travel in the one JSON
payload of the profile store row: the profile's own keys plus the sibling key
:data:`ESTIMATOR_KEY`. ``ReferenceProfile.from_dict`` reads only its own keys,
so older code still reads new rows, and rows stored before this key existed
read as a reference without an estimator.

Before a reference file is profiled by ``driftline reference build`` or the
HTTP upload, :func:`check_reference_columns` decides what each of its columns
is for (prediction, target, score, feature, left out) and refuses a file whose
prediction, target or score column is missing or ambiguous, with a
:class:`ReferenceColumnsError` naming the column, the file's columns and the
config key to change.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from operator import itemgetter
from typing import Any, Protocol, Self, TypeVar

import numpy as np
import numpy.typing as npt
import orjson
import pandas as pd

from detectors._arrays import FloatArray
from detectors.attribution import AttributionSummary
from detectors.drift import DriftSettings
from detectors.kinds import ColumnKind
from detectors.labels import canonical_label
from detectors.performance import CBPE, CBPESketch
from detectors.profile import ReferenceProfile
from detectors.quality import DataQualityThresholds
from detectors.sample import RowSample, UInt64Array, candidate_rows, hash_ids
from detectors.sketch import (
    CategoricalSketch,
    CategoricalSpec,
    FeatureSketch,
    NumericSketch,
    NumericSpec,
    WindowSketch,
)
from monitor.attribution import explanation_columns, reference_attribution
from monitor.config import ModelConfig
from monitor.records import PredictionRecord
from monitor.windows import WindowSpec

log = logging.getLogger(__name__)

#: Name of the prediction column in reference files and profiles (not usable as a feature name).
PREDICTION = "prediction"
#: Key of the fitted performance estimator beside the profile's keys in a stored reference.
ESTIMATOR_KEY = "performance_estimation"
#: Key of the reference's SHAP summary beside the profile's keys in a stored reference.
ATTRIBUTION_KEY = "attribution"
#: Key of a partial's CBPE sketch (the scores of its records) in its payload.
PERFORMANCE_KEY = "performance"
#: Column names (compared case-insensitively) that usually hold a model's outputs. With
#: ``prediction.field`` and ``predicted_<field>``/``prediction_<field>`` they are what
#: :func:`check_reference_columns` calls "named like a prediction".
PREDICTION_LIKE_NAMES = frozenset(
    {"prediction", "predictions", "predicted", "pred", "preds", "y_pred", "yhat", "y_hat"}
    | {"score", "scores", "proba", "probability"}
)
#: Column names (compared case-insensitively) that usually hold the true labels.
TARGET_LIKE_NAMES = frozenset(
    {"target", "label", "labels", "y", "y_true", "truth", "ground_truth", "true_label"}
    | {"actual", "outcome"}
)


@dataclass(frozen=True, slots=True)
class ModelRuntime:
    """A model's config, its reference profile (and version) and derived settings.

    ``window``, ``settings`` and ``data_quality`` are derived once here: the
    hot path reads the window for every record. ``estimator`` is the
    performance estimator stored with the profile and ``attribution`` the
    reference's SHAP summary (None without them).
    Raises ``ValueError`` if ``data_quality.bounds`` names something that is
    not a numeric feature of the profile.
    """

    config: ModelConfig
    profile: ReferenceProfile
    profile_version: int
    estimator: CBPE | None = None
    attribution: AttributionSummary | None = None
    window: WindowSpec = field(init=False)
    settings: DriftSettings = field(init=False)
    feature_names: tuple[str, ...] = field(init=False)
    data_quality: DataQualityThresholds = field(init=False)
    sample_size: int | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "window", self.config.window.spec)
        object.__setattr__(self, "sample_size", window_sample_size(self.config))
        object.__setattr__(self, "settings", self.config.drift.settings())
        names = tuple(n for n in self.profile.specs if n != PREDICTION)
        object.__setattr__(self, "feature_names", names)
        object.__setattr__(self, "data_quality", self.config.data_quality.thresholds())
        for name in self.config.data_quality.bounds:
            spec = self.profile.specs.get(name)
            if spec is None or spec.kind is not ColumnKind.NUMERIC:
                numeric = sorted(
                    n for n, s in self.profile.specs.items() if s.kind is ColumnKind.NUMERIC
                )
                raise ValueError(
                    f"model {self.name!r}: data_quality.bounds names {name!r}, which is not a "
                    f"numeric column of reference profile version {self.profile_version} "
                    f"(numeric: {', '.join(numeric) or 'none'})"
                )

    @property
    def name(self) -> str:
        """The model's name."""
        return self.config.name

    @property
    def estimates_performance(self) -> bool:
        """Whether the partials keep a CBPE sketch of the scores (an estimator is stored)."""
        return self.estimator is not None and self.config.performance_estimation is not None

    @property
    def explained_by_records(self) -> bool:
        """Whether the partials sum the records' ``explanations`` (attribution from them)."""
        return (
            self.config.attribution is not None and self.config.attribution.source == "explanations"
        )

    @property
    def prediction(self) -> str | None:
        """:data:`PREDICTION` when the profile has a prediction column, else None."""
        return PREDICTION if PREDICTION in self.profile.specs else None


def window_sample_size(config: ModelConfig) -> int | None:
    """Return how many rows each window's row sample keeps for ``config`` (None: no sample).

    Multivariate drift compares ``multivariate.current_rows`` rows; attribution
    with ``source: model`` explains ``attribution.window_rows`` rows.
    """
    sizes = []
    if config.multivariate is not None:
        sizes.append(config.multivariate.current_rows)
    if config.attribution is not None and config.attribution.source == "model":
        sizes.append(config.attribution.window_rows)
    return max(sizes) if sizes else None


def reference_sample_size(config: ModelConfig) -> int | None:
    """Return how many reference rows the profile's row sample keeps (None: no sample)."""
    if config.multivariate is not None:
        return config.multivariate.reference_rows
    if config.attribution is not None and config.attribution.source == "model":
        return config.attribution.max_rows  # the sampled explainer's background
    return None


def build_profile(config: ModelConfig, frame: pd.DataFrame) -> ReferenceProfile:
    """Return the reference profile of ``frame`` for ``config``'s model.

    The prediction column, if the frame has the one ``prediction.column``
    names (default :data:`PREDICTION`), is profiled under the name
    :data:`PREDICTION` with the kind the config gives the prediction; with
    ``prediction.column: null`` there is none (and a column named
    :data:`PREDICTION` is left out: that name is reserved). Ignored columns
    are left out, and so are ``performance_estimation``'s target column and
    its score column (unless that is the prediction column): they are not
    features, and the records do not carry them. This does not check that
    the columns are there: :func:`check_reference_columns` does, first.

    With ``multivariate`` (or attribution explained by a model) the profile
    also keeps a sample of :func:`reference_sample_size` reference rows over
    the features (not the prediction), keyed by
    :func:`~detectors.sample.row_keys` -- the reference's side of the
    windows' joint-drift tests. Columns holding the reference's SHAP values
    (:func:`monitor.attribution.explanation_columns`) are left out.
    """
    frame = _with_prediction_column(config, frame)
    kinds: dict[str, Any] = {k: v for k, v in config.columns.kinds.items() if k in frame.columns}
    if PREDICTION in frame.columns:
        kinds[PREDICTION] = config.prediction.kind
    left_out = set(config.columns.ignore)
    estimation = config.performance_estimation
    if estimation is not None:
        left_out |= {estimation.target, _score_column(config) or estimation.score} - {PREDICTION}
    left_out |= set(explanation_columns(config, [str(c) for c in frame.columns]))
    columns = [c for c in frame.columns if c not in left_out]
    profile = ReferenceProfile.from_frame(
        frame[columns],
        kinds,
        bins=config.drift.bins,
        max_categories=config.drift.max_categories,
    )
    size = reference_sample_size(config)
    if size is None:
        return profile
    specs = {name: spec for name, spec in profile.specs.items() if name != PREDICTION}
    sample = RowSample.from_frame(frame[list(specs)], specs, size=size)
    return replace(profile, reference=replace(profile.reference, sample=sample))


def _with_prediction_column(config: ModelConfig, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ``prediction.column`` renamed :data:`PREDICTION` (idempotent).

    With ``prediction.column: null`` a column named :data:`PREDICTION` is
    dropped: the name is reserved for the prediction. Raises ``ValueError``
    when the frame has both ``prediction.column`` and a :data:`PREDICTION`
    column that is not in ``columns.ignore``.
    """
    column = config.prediction.column
    if column == PREDICTION:
        return frame
    if column is None or column not in frame.columns:
        return frame.drop(columns=PREDICTION) if column is None and PREDICTION in frame else frame
    if PREDICTION in frame.columns:
        if PREDICTION not in config.columns.ignore:
            raise ValueError(
                f"the reference has both prediction.column {column!r} and a column "
                f"{PREDICTION!r}: drop one, or add {PREDICTION!r} to columns.ignore"
            )
        frame = frame.drop(columns=PREDICTION)
    return frame.rename(columns={column: PREDICTION})


def _score_column(config: ModelConfig) -> str | None:
    """The column the estimator is fitted on, after :func:`_with_prediction_column`."""
    estimation = config.performance_estimation
    if estimation is None:
        return None
    if estimation.score in (PREDICTION, config.prediction.column):
        return PREDICTION
    return estimation.score


class ReferenceColumnsError(ValueError):
    """A reference file whose prediction, target or score column is missing or ambiguous.

    The message says, in this order: the model, what is wrong with which
    column, the file's columns, and the fix (the config key to set, or the
    column to rename). ``column`` is the missing or ambiguous column's name.
    """

    def __init__(
        self, model: str, problem: str, *, column: str, columns: Sequence[str], fix: str
    ) -> None:
        self.model = model
        self.column = column
        self.columns = tuple(columns)
        self.fix = fix
        shown = ", ".join(repr(c) for c in self.columns[:50]) or "none"
        if len(self.columns) > 50:
            shown += f" and {len(self.columns) - 50} more"
        super().__init__(f"model {model!r}: {problem}. The file's columns: {shown}. Fix: {fix}.")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReferenceColumns:
    """What each column of a reference file is for (see :func:`check_reference_columns`).

    ``prediction`` is the file's column profiled as the prediction (None:
    ``prediction.column: null``); ``target`` and ``score`` are the columns the
    performance estimator is fitted on (None without
    ``performance_estimation``; ``score`` may be the prediction column).
    ``features`` are the columns profiled as features, in file order (a
    column whose kind cannot be inferred, such as a date, is still dropped by
    the profile); ``left_out`` maps each other column to the reason; ``notes``
    say what will not be computed and why.
    """

    model: str
    prediction: str | None
    target: str | None
    score: str | None
    features: tuple[str, ...]
    left_out: Mapping[str, str]
    notes: tuple[str, ...]


def check_reference_columns(config: ModelConfig, columns: Sequence[str]) -> ReferenceColumns:
    """Decide what each of a reference file's ``columns`` is for, or refuse the file.

    The one check behind ``driftline reference build`` and
    ``POST /api/models/{model}/reference``, run before anything is profiled
    or stored. Raises :class:`ReferenceColumnsError` when:

    1. the file has no ``prediction.column`` (default ``prediction``); the
       message suggests a column named like a prediction (``prediction.field``,
       ``predicted_<field>``, ``prediction_<field>`` or one of
       :data:`PREDICTION_LIKE_NAMES`, e.g. ``score``) when there is one.
       ``prediction.column: null`` says the reference has no predictions;
    2. ``prediction.column`` is also in ``columns.ignore``, or the file has a
       column named ``prediction`` besides another ``prediction.column`` (the
       name is reserved for the prediction; ignore it to keep the other);
    3. ``performance_estimation`` is configured and its ``target`` is missing
       or is the prediction column, or its ``score`` is missing (``score:
       prediction``, the default, means the prediction column, which then must
       exist);
    4. a column that has no role would be profiled as a feature although its
       name says it is a prediction (as above) or a target (one of
       :data:`TARGET_LIKE_NAMES`, e.g. ``label`` or ``outcome``): records
       carry predictions in ``prediction`` and labels in label records, never
       in ``features``, so every window would report it missing. A column
       named in ``columns.kinds`` is a declared feature and never refused;
       one in ``columns.ignore`` is left out.

    Without ``performance_estimation`` the file needs no target: the returned
    ``notes`` say that no performance estimator is fitted. Names are compared
    case-insensitively for the "named like" rules and exactly otherwise.

    >>> from monitor.config import ModelConfig
    >>> plan = check_reference_columns(ModelConfig(name="m"), ["age", "prediction"])
    >>> plan.prediction, plan.target, plan.features
    ('prediction', None, ('age',))
    >>> try:
    ...     check_reference_columns(ModelConfig(name="m"), ["age", "score"])
    ... except ReferenceColumnsError as error:
    ...     print(error.column, "|", error.fix.split(" (")[0])
    prediction | set prediction.column: score in model 'm'
    """
    names = [str(c) for c in columns]
    present = set(names)
    model = config.name
    prediction = config.prediction
    column = prediction.column
    estimation = config.performance_estimation
    ignored = set(config.columns.ignore)
    declared = set(config.columns.kinds)
    explained = set(explanation_columns(config, names))

    def refuse(problem: str, name: str, fix: str) -> ReferenceColumnsError:
        return ReferenceColumnsError(model, problem, column=name, columns=names, fix=fix)

    field = prediction.field
    like_prediction = PREDICTION_LIKE_NAMES | {field, f"predicted_{field}", f"prediction_{field}"}
    like_target = TARGET_LIKE_NAMES - like_prediction
    target = estimation.target if estimation is not None else None

    def guesses(like: frozenset[str] | set[str], taken: set[str | None]) -> list[str]:
        return [n for n in names if n.lower() in like and n not in ignored and n not in taken]

    # 1-2. The prediction column.
    if column is not None and column not in present:
        found = guesses(like_prediction, {target})
        hint = ""
        fix = (
            f"add the model's predictions on these rows as a column {column!r}, or set "
            f"prediction.column in model {model!r} to the column that holds them"
        )
        if found:
            hint = (
                f"; did you mean {found[0]!r}? It is named like the prediction "
                f"(prediction.field: {field})"
            )
            fix = (
                f"set prediction.column: {found[0]} in model {model!r} (or rename column "
                f"{found[0]!r} to {column!r})"
            )
        raise refuse(
            f"the file has no prediction column {column!r} (prediction.column){hint}",
            column,
            f"{fix}; if the file holds no predictions, set prediction.column: null "
            "(windows then report no prediction drift)",
        )
    if column is not None and column in ignored:
        raise refuse(
            f"the prediction column {column!r} (prediction.column) is also in columns.ignore",
            column,
            f"remove {column!r} from columns.ignore, or set prediction.column: null if the "
            "reference should have no prediction",
        )
    if column != PREDICTION and PREDICTION in present and PREDICTION not in ignored:
        said = "null" if column is None else repr(column)
        raise refuse(
            f"the file has a column {PREDICTION!r} but prediction.column is {said}; the name "
            f"{PREDICTION!r} is reserved for the prediction and cannot be a feature",
            PREDICTION,
            f"set prediction.column: {PREDICTION} if it holds the predictions, else add "
            f"{PREDICTION!r} to columns.ignore or drop it from the file",
        )

    # 3. The performance estimator's target and score.
    score: str | None = None
    if estimation is not None:
        if target is not None and target == column:
            raise refuse(
                f"performance_estimation.target {target!r} is the prediction column "
                "(prediction.column); the target holds the true labels",
                target,
                "set performance_estimation.target to the column with the true labels",
            )
        if target is not None and target not in present:
            found = guesses(like_target, {column})
            hint = f"; did you mean {found[0]!r}?" if found else ""
            raise refuse(
                f"the file has no target column {target!r} (performance_estimation.target), "
                f"which the performance estimator is fitted on{hint}",
                target,
                "add the true labels as a column "
                f"{target!r}, or set performance_estimation.target to the column that holds "
                "them, or remove performance_estimation from the model",
            )
        if estimation.score in (PREDICTION, column):
            if column is None:
                raise refuse(
                    "performance_estimation.score is the prediction column (the default), but "
                    "prediction.column is null",
                    estimation.score,
                    "set performance_estimation.score to the column with the positive class's "
                    "score",
                )
            score = column
        elif estimation.score not in present:
            found = guesses(like_prediction, {column, target})
            hint = f"; did you mean {found[0]!r}?" if found else ""
            raise refuse(
                f"the file has no score column {estimation.score!r} "
                f"(performance_estimation.score), which the performance estimator is fitted "
                f"on{hint}",
                estimation.score,
                "add the positive class's scores as a column "
                f"{estimation.score!r}, or set performance_estimation.score to the column "
                "that holds them",
            )
        else:
            score = estimation.score

    # 4. Columns without a role whose names say they are not features.
    roles = {n for n in (column, target, score) if n is not None}
    unassigned = [
        n
        for n in names
        if n not in roles and n not in ignored and n not in explained and n != PREDICTION
    ]
    for name in unassigned:
        if name in declared:
            continue
        if name.lower() in like_prediction:
            where = "" if column is None else f" besides the prediction column {column!r}"
            raise refuse(
                f"column {name!r} is named like a prediction (prediction.field: {field}) but "
                f"has no role{where}: it would be profiled as a feature, and records carry "
                "predictions in 'prediction', not in 'features', so every window would report "
                "it missing",
                name,
                f"add {name!r} to columns.ignore if it is not a model input, or to "
                "columns.kinds if the records carry it as a feature"
                + (
                    f", or set prediction.column: {name} if it holds the predictions"
                    if column is None or column == PREDICTION
                    else ""
                ),
            )
        if name.lower() in like_target:
            raise refuse(
                f"column {name!r} looks like the true labels but has no role: it would be "
                "profiled as a feature, and records do not carry labels in 'features', so "
                "every window would report it missing",
                name,
                f"add {name!r} to columns.ignore, set performance_estimation.target: {name} to "
                "fit the label-free performance estimator on it, or add it to columns.kinds "
                "if the records carry it as a feature",
            )

    left_out: dict[str, str] = {}
    for name in names:
        if name in roles:
            continue
        if name in ignored:
            left_out[name] = "columns.ignore"
        elif name in explained:
            left_out[name] = "SHAP values (attribution.reference_prefix)"
        elif name == PREDICTION:
            left_out[name] = "reserved name; prediction.column is null"
    notes = []
    if column is None:
        notes.append("no prediction column (prediction.column: null): no prediction drift")
    if estimation is None:
        notes.append(
            "no target or score (performance_estimation is not configured): no performance "
            "estimator is fitted, windows get no estimated_performance"
        )
    return ReferenceColumns(
        model=model,
        prediction=column,
        target=target,
        score=score,
        features=tuple(n for n in unassigned),
        left_out=left_out,
        notes=tuple(notes),
    )


def describe_reference(
    columns: ReferenceColumns, reference: StoredReference, config: ModelConfig
) -> list[str]:
    """Return one line per role saying what a stored reference holds, for the user to check.

    The prediction column and what it is compared with, the target and score
    columns, the number of profiled features of each kind (and their names,
    up to 20), the columns left out and why, and ``columns.notes``.
    """
    specs = reference.profile.specs
    lines = []
    if columns.prediction is None:
        lines.append("prediction: none (prediction.column: null)")
    elif PREDICTION in specs:
        lines.append(
            f"prediction: column {columns.prediction!r}, compared with the records' "
            f"prediction.{config.prediction.field} ({specs[PREDICTION].kind.value})"
        )
    else:
        lines.append(
            f"prediction: column {columns.prediction!r} has no usable value: not profiled, "
            "no prediction drift"
        )
    lines.append(
        f"target: column {columns.target!r} (performance_estimation.target)"
        if columns.target is not None
        else "target: none"
    )
    if columns.score is None:
        lines.append("score: none")
    elif columns.score == columns.prediction:
        lines.append(
            f"score: the prediction column {columns.score!r} (performance_estimation.score)"
        )
    else:
        lines.append(f"score: column {columns.score!r} (performance_estimation.score)")
    features = [name for name in specs if name != PREDICTION]
    kinds = Counter(specs[name].kind.value for name in features)
    counted = ", ".join(f"{kinds[k]} {k}" for k in sorted(kinds)) or "none"
    shown = ", ".join(features[:20]) + (
        f" and {len(features) - 20} more" if len(features) > 20 else ""
    )
    lines.append(f"features: {len(features)} ({counted}){': ' + shown if shown else ''}")
    dropped = [name for name in columns.features if name not in specs]
    if dropped:
        lines.append(
            f"not profiled: {', '.join(dropped)} (no kind could be inferred: a date/time, "
            "or no value)"
        )
    if columns.left_out:
        reasons: dict[str, list[str]] = {}
        for name, why in columns.left_out.items():
            reasons.setdefault(why, []).append(name)
        lines.append(
            "left out: " + "; ".join(f"{', '.join(n)} ({why})" for why, n in reasons.items())
        )
    lines.extend(f"note: {note}" for note in columns.notes)
    return lines


@dataclass(frozen=True, slots=True)
class StoredReference:
    """What a profile store row holds: the profile, the fitted estimator, the SHAP summary."""

    profile: ReferenceProfile
    estimator: CBPE | None = None
    attribution: AttributionSummary | None = None

    def to_bytes(self) -> bytes:
        """Serialise as the profile's JSON with the estimator and SHAP summary beside its keys."""
        if self.estimator is None and self.attribution is None:
            return self.profile.to_bytes()
        data = self.profile.to_dict()
        if self.estimator is not None:
            data[ESTIMATOR_KEY] = self.estimator.to_dict()
        if self.attribution is not None:
            data[ATTRIBUTION_KEY] = self.attribution.to_dict()
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, payload: bytes) -> StoredReference:
        """Read :meth:`to_bytes` output, or a bare profile stored before those keys existed."""
        data = json.loads(payload)
        estimator = data.get(ESTIMATOR_KEY)
        attribution = data.get(ATTRIBUTION_KEY)
        return cls(
            profile=ReferenceProfile.from_dict(data),
            estimator=None if estimator is None else CBPE.from_dict(estimator),
            attribution=None if attribution is None else AttributionSummary.from_dict(attribution),
        )


def build_reference(config: ModelConfig, frame: pd.DataFrame) -> StoredReference:
    """Return the profile of ``frame``, its fitted CBPE and its SHAP summary, as configured.

    Raises ``ValueError`` (one sentence naming the column or setting) when the
    estimator cannot be fitted -- a missing column, no usable rows, labels of
    a single class, or a positive class that cannot be inferred -- or the
    reference's SHAP values can be neither read nor computed.
    """
    frame = _with_prediction_column(config, frame)
    profile = build_profile(config, frame)
    features = [name for name in profile.specs if name != PREDICTION]
    return StoredReference(
        profile,
        fit_estimator(config, frame),
        reference_attribution(config, frame, features),
    )


def fit_estimator(config: ModelConfig, frame: pd.DataFrame) -> CBPE | None:
    """Return the CBPE of ``config.performance_estimation`` fitted on ``frame`` (None if unset).

    Rows without a target or without a finite score are left out of the fit.
    The positive class is ``prediction.positive_label``, or inferred from the
    target's labels as scikit-learn does (1 for {0, 1} and {-1, 1}, true for
    {false, true}).
    """
    estimation = config.performance_estimation
    if estimation is None:
        return None
    frame = _with_prediction_column(config, frame)
    score_column = _score_column(config) or estimation.score
    for role, column, name in (
        ("target", estimation.target, estimation.target),
        ("score", score_column, estimation.score),
    ):
        if column not in frame.columns:
            raise ValueError(
                f"the reference has no column {name!r} (performance_estimation.{role} of "
                f"model {config.name!r})"
            )
    target = frame[estimation.target]
    score = pd.to_numeric(frame[score_column], errors="coerce").astype(np.float64)
    usable = target.notna().to_numpy() & np.isfinite(score.to_numpy())
    if not usable.any():
        raise ValueError(
            f"the reference has no row with both a target ({estimation.target!r}) and a "
            f"finite score ({estimation.score!r}) to fit performance_estimation on"
        )
    if not usable.all():
        log.warning(
            "model %s: %d reference rows without a target or a finite score are left out of "
            "the performance estimator",
            config.name,
            int((~usable).sum()),
        )
    try:
        return CBPE.fit(
            target[usable].map(canonical_label),
            score[usable].to_numpy(),
            config.prediction.positive,
            threshold=estimation.threshold,
            calibration=estimation.calibration,
        )
    except ValueError as error:
        raise ValueError(
            f"cannot fit performance_estimation of model {config.name!r} on the reference: {error}"
        ) from error


def record_keys(partition: int, offsets: Sequence[int]) -> UInt64Array:
    """Return the row-sample keys of records at ``offsets`` of ``partition`` (64-bit hashes).

    A record's place in the log identifies it uniquely and is the same on
    every re-read, so window samples are exact and reproducible (see
    :mod:`detectors.sample`); request ids are optional and may repeat.
    """
    positions = np.asarray(offsets, dtype=np.uint64) | (np.uint64(partition) << np.uint64(48))
    return hash_ids(positions)


def sketch_records(
    runtime: ModelRuntime,
    records: Sequence[PredictionRecord],
    rows: int | None = None,
    *,
    keys: UInt64Array | None = None,
    sample_bound: np.uint64 | None = None,
) -> WindowSketch:
    """Return the sketch of ``records`` on the model's profile (columnar, no data frame).

    Features absent from a record count as missing. ``rows`` overrides the row
    count (default ``len(records)``). When the model keeps window samples
    (``runtime.sample_size``), the sketch also holds the bottom-k sample of the
    records' features keyed by ``keys`` (one 64-bit hash per record, from
    :func:`record_keys`); without ``keys`` the records are keyed by their
    position in ``records``, which is right only for a single call per window.
    ``sample_bound`` is the :attr:`~detectors.sample.RowSample.bound` of the
    sample this one will be merged into: rows above it are not encoded, which
    keeps the merge exact and makes a full window's sample cost a hash per record.
    """
    specs = runtime.profile.specs
    names = runtime.feature_names
    columns: dict[str, Sequence[Any]] = {}
    if names:
        # One C-level lookup per record and a transpose, instead of one .get per value.
        pick = itemgetter(*names) if len(names) > 1 else (lambda f: (f[names[0]],))
        picked: list[tuple[Any, ...]] = []
        for record in records:
            try:
                picked.append(pick(record.features))
            except KeyError:  # a record without some feature: those values are missing
                picked.append(tuple(record.features.get(n) for n in names))
        if picked:
            columns = dict(zip(names, zip(*picked, strict=True), strict=True))
    if PREDICTION in specs:
        key = runtime.config.prediction.field
        columns[PREDICTION] = [r.prediction.get(key) for r in records]
    features: dict[str, FeatureSketch] = {}
    encoded: dict[str, FloatArray] = {}
    positions: npt.NDArray[np.intp] | None = None
    if runtime.sample_size is not None:
        if keys is None:
            keys = hash_ids(np.arange(len(records), dtype=np.int64))
        positions = candidate_rows(keys, runtime.sample_size, sample_bound)
    for name, spec in specs.items():
        values = list(columns.get(name, ()))
        if isinstance(spec, NumericSpec):
            features[name], array = _numeric(spec, values)
            if positions is not None:
                chosen = array[positions]
                encoded[name] = np.where(np.isfinite(chosen), chosen, np.nan)
        else:
            features[name] = _categorical(spec, values)
            if positions is not None and name != PREDICTION:
                chosen_values = [values[i] for i in positions]
                encoded[name] = spec.encode(pd.Series(chosen_values, dtype=object))
    sample = None
    if positions is not None and keys is not None:
        sample = _sample(runtime, encoded, keys[positions], len(records))
    return WindowSketch(
        rows=len(records) if rows is None else rows, features=features, sample=sample
    )


def _sample(
    runtime: ModelRuntime, encoded: dict[str, FloatArray], keys: UInt64Array, seen: int
) -> RowSample:
    """The bottom-k sample of the encoded candidate rows (the prediction is not sampled)."""
    names = runtime.feature_names
    specs = runtime.profile.specs
    matrix = (
        np.column_stack([encoded[name] for name in names])
        if names and keys.size
        else np.empty((keys.size, len(names)), dtype=np.float64)
    )
    return RowSample.from_rows(
        names,
        [specs[name].levels for name in names],
        matrix,
        keys,
        size=runtime.sample_size or 1,
        hashed=True,
        seen=seen,
    )


def score_sketch(runtime: ModelRuntime, records: Sequence[PredictionRecord]) -> CBPESketch:
    """Return the CBPE sketch of the records' finite scores (records without one are skipped).

    Needs ``runtime.estimator``; the sketch is the estimator's (see
    :meth:`detectors.performance.CBPE.sketch`), so sketches of one profile
    version merge exactly.
    """
    if runtime.estimator is None:
        raise ValueError(f"model {runtime.name!r} has no performance estimator")
    scores = [r.prediction.get("score") for r in records]
    finite = [s for s in scores if s is not None and math.isfinite(s)]
    return runtime.estimator.sketch(np.asarray(finite, dtype=np.float64))


def _numeric(spec: NumericSpec, values: list[Any]) -> tuple[NumericSketch, FloatArray]:
    """The sketch of ``values`` and the values as floats, row-aligned (NaN where not a number)."""
    invalid = 0
    try:
        # None becomes NaN and booleans 0/1 in one C-level pass.
        array = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        converted = []
        for value in values:
            if value is None or isinstance(value, int | float):
                converted.append(np.nan if value is None else float(value))
            else:  # a string in a numeric feature: a type violation, not a missing value
                converted.append(np.nan)
                invalid += 1
        array = np.array(converted, dtype=np.float64)
    nan = np.isnan(array)
    finite = np.isfinite(array)
    missing = int(nan.sum()) - invalid
    infinite = int(array.size - finite.sum() - nan.sum())
    sketch = NumericSketch.from_values(
        spec, array[finite], missing=missing, infinite=infinite, invalid=invalid
    )
    return sketch, array


def _categorical(spec: CategoricalSpec, values: list[Any]) -> CategoricalSketch:
    raw = Counter(values)
    missing = raw.pop(None, 0)
    if all(isinstance(value, str) for value in raw):
        return CategoricalSketch.from_counts(spec, raw, missing)
    kinds = set(map(type, values))
    if bool in kinds and (int in kinds or float in kinds):
        # Hashing merges True, 1 and 1.0 into one key; label such columns value by value.
        labels = Counter(canonical_label(value) for value in values if value is not None)
    else:
        # Equal keys have equal labels (1 and 1.0 both label "1"): label each distinct
        # value once instead of every value (integer counts, booleans, numeric codes).
        labels = Counter()
        for value, count in raw.items():
            labels[canonical_label(value)] += count
    return CategoricalSketch.from_counts(spec, labels, missing)


class _Mergeable(Protocol):
    def merge(self, other: Self, /) -> Self: ...


M = TypeVar("M", bound=_Mergeable)


def merge_optional(known: M | None, new: M | None) -> M | None:
    """Return ``known`` merged with ``new`` (either alone when the other is None)."""
    if known is None or new is None:
        return known if new is None else new
    return known.merge(new)


@dataclass(frozen=True, slots=True)
class PartialPayload:
    """What a stored partial holds besides its row count.

    ``sketch`` is binned on profile ``profile_version``; ``attribution`` sums
    the records' ``explanations`` (models whose attribution comes from them)
    and ``performance`` is the CBPE sketch of the records' scores (models with
    ``performance_estimation``); both None otherwise.
    """

    profile_version: int
    sketch: WindowSketch
    attribution: AttributionSummary | None = None
    performance: CBPESketch | None = None


def sketch_to_bytes(
    profile_version: int,
    sketch: WindowSketch,
    attribution: AttributionSummary | None = None,
    performance: CBPESketch | None = None,
) -> bytes:
    """Serialise a partial sketch with the profile version whose bins it uses.

    ``attribution`` and ``performance`` go under the keys ``"attribution"``
    and ``"performance"`` when given.
    """
    data: dict[str, Any] = {"profile_version": profile_version, "sketch": sketch.to_dict()}
    if attribution is not None:
        data[ATTRIBUTION_KEY] = attribution.to_dict()
    if performance is not None:
        data[PERFORMANCE_KEY] = performance.to_dict()
    return orjson.dumps(data)


def partial_from_bytes(
    payload: bytes, profile_for: Callable[[int], ReferenceProfile]
) -> PartialPayload:
    """Return the :class:`PartialPayload` of :func:`sketch_to_bytes` output.

    ``profile_for`` returns the profile of a version (a mapping's
    ``__getitem__`` or a loader); the sketch is rebuilt on that profile's
    specs. The payload is parsed once.
    """
    data = orjson.loads(payload)
    version = int(data["profile_version"])
    attribution = data.get(ATTRIBUTION_KEY)
    performance = data.get(PERFORMANCE_KEY)
    return PartialPayload(
        version,
        WindowSketch.from_dict(profile_for(version).specs, data["sketch"]),
        None if attribution is None else AttributionSummary.from_dict(attribution),
        None if performance is None else CBPESketch.from_dict(performance),
    )


def sketch_from_bytes(
    payload: bytes, profile_for: Callable[[int], ReferenceProfile]
) -> tuple[int, WindowSketch]:
    """Return ``(profile_version, sketch)`` from :func:`sketch_to_bytes` output."""
    partial = partial_from_bytes(payload, profile_for)
    return partial.profile_version, partial.sketch

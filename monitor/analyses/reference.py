"""Building a model's stored reference from a reference file.

Before a reference file is profiled by ``driftline reference build`` or the
HTTP upload, :func:`check_reference_columns` decides what each of its columns
is for (prediction, target, score, feature, left out) and refuses a file whose
prediction, target or score column is missing or ambiguous, with a
:class:`ReferenceColumnsError` naming the column, the file's columns and the
config key to change. :func:`build_reference` profiles it, fits the CBPE and
summarises its SHAP values, as the model's config asks.
:func:`store_reference` stores it as the model's next profile version, in
force from the first window that starts after the data already consumed.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from detectors.labels import canonical_label
from detectors.performance import CBPE
from detectors.profile import ReferenceProfile
from detectors.sample import RowSample
from monitor.analyses.attribution import explanation_columns, reference_attribution
from monitor.analyses.model import PREDICTION, StoredReference, reference_sample_size
from monitor.config.service import ModelConfig, ServiceConfig
from monitor.store import Store
from monitor.store.repository import StoredProfileRow
from monitor.windows import WindowSpec

log = logging.getLogger(__name__)

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
    (:func:`monitor.analyses.attribution.explanation_columns`) are left out.
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

    >>> from monitor.config.service import ModelConfig
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


def next_window_start(spec: WindowSpec, event_time: float) -> float:
    """Return the start of the first window of ``spec`` that starts after ``event_time``.

    >>> next_window_start(WindowSpec(60.0), 125.0), next_window_start(WindowSpec(60.0), 120.0)
    (180.0, 180.0)
    """
    step = spec.step_s
    k = math.floor(event_time / step) + 1
    # Division rounds: nudge k so that (k - 1) * step <= event_time < k * step holds exactly.
    while k * step <= event_time:
        k += 1
    while (k - 1) * step > event_time:
        k -= 1
    return float(k * step)


def store_reference(
    store: Store,
    config: ServiceConfig,
    model: ModelConfig,
    reference: StoredReference,
    *,
    model_version: str | None = None,
) -> StoredProfileRow:
    """Store ``reference`` as ``model``'s next profile version; return what was stored.

    The version is in force from the first window starting after the
    *frontier*: the largest event time checkpointed on any partition of the
    predictions topic by the config's consumer group. Every process computes a
    window's version from its start alone, so they all switch at that same
    window. With nothing consumed yet it is in force from the start.
    """
    spec = model.window.spec
    return store.save_profile_after_progress(
        model.name,
        reference.to_bytes(),
        group_id=config.consumer.group_id,
        topic=config.topics.predictions,
        next_window_start=lambda frontier: next_window_start(spec, frontier),
        model_version=model_version,
    )

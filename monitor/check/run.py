"""``driftline check``: a batch drift report of a current data file against a reference file.

It runs the service's own path (reference profile, sketch of the current
rows, the configured methods), so a window holding the same rows gives the
same answer in the service.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pandas as pd

from detectors.drift import (
    PARALLEL_ROWS,
    DriftReport,
    FeatureDrift,
    compare_frames,
    compare_sketches,
)
from detectors.kinds import check_compatible, infer_kinds
from detectors.profile import ReferenceProfile
from detectors.quality import DataQualityReport, data_quality
from monitor.config.drift import CheckConfig
from monitor.datafiles import InputError, read_table

if TYPE_CHECKING:
    # --model, --multivariate and --target with --prediction import their modules when
    # asked for: a plain check does not pay for them (see tests/test_check_imports.py).
    from detectors.multivariate import MultivariateResult
    from monitor.check.attribution import CheckAttribution
    from monitor.check.quality import CheckQuality


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """A drift report, the current data's quality checks, and the model's quality if asked for.

    ``quality`` is set when both ``--target`` and ``--prediction`` were given.
    """

    report: DriftReport
    missing_columns: tuple[str, ...]
    target: str | None
    data_quality: DataQualityReport
    quality: CheckQuality | None = None
    attribution: CheckAttribution | None = None
    multivariate: tuple[MultivariateResult, ...] | None = None

    def ordered_features(self) -> tuple[FeatureDrift, ...]:
        """The features in output order: by drift impact with ``--model``, else by severity."""
        by_severity = self.report.by_severity()
        if self.attribution is None:
            return by_severity
        rank = {d.name: i for i, d in enumerate(self.attribution.ranking)}
        return tuple(sorted(by_severity, key=lambda f: rank.get(f.name, len(rank))))

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object printed by ``--format json``.

        The contract's keys (``dataset_drift``, ``drift_share``, ``features``,
        ...) come first and keep their shapes; ``data_quality``, ``quality`` and
        ``estimated_performance`` are added beside them (null when not computed).
        """
        payload = self.report.to_dict()
        payload["missing_columns"] = list(self.missing_columns)
        payload["target"] = self.target
        payload["data_quality"] = self.data_quality.to_dict()
        payload["quality"] = None if self.quality is None else self.quality.quality_dict()
        payload["estimated_performance"] = (
            None if self.quality is None else self.quality.estimated_dict()
        )
        if self.attribution is not None:
            by_name = {f["name"]: f for f in payload["features"]}
            payload["features"] = [by_name[f.name] for f in self.ordered_features()]
        payload["attribution"] = (
            None if self.attribution is None else self.attribution.attribution_dict()
        )
        payload["drift_impact"] = (
            None if self.attribution is None else self.attribution.ranking_list()
        )
        payload["multivariate"] = (
            None if self.multivariate is None else [r.to_dict() for r in self.multivariate]
        )
        return payload

    @property
    def multivariate_drift(self) -> bool:
        """True when a multivariate method found drift (``--fail-on-drift`` counts it)."""
        return any(r.drift for r in self.multivariate or ())

    @property
    def drift_found(self) -> bool:
        """True when the dataset, the prediction or the joint distribution drifted."""
        prediction = self.report.prediction
        return (
            self.report.dataset_drift
            or bool(prediction and prediction.drift)
            or self.multivariate_drift
        )


def run_check(
    reference_path: str | Path,
    current_path: str | Path,
    config: CheckConfig,
    *,
    target: str | None = None,
    prediction: str | None = None,
    model: str | Path | None = None,
    multivariate: bool = False,
    exact: bool = False,
) -> CheckResult:
    """Read both files, validate them against each other and compare them.

    Raises :class:`~monitor.datafiles.InputError` with one sentence for bad input,
    and ``ColumnTypeError`` when a column changed type between the files.
    """
    reference = read_table(reference_path, "reference")
    current = read_table(current_path, "current")
    return check_frames(
        reference,
        current,
        config,
        target=target,
        prediction=prediction,
        model=model,
        multivariate=multivariate,
        exact=exact,
    )


def check_frames(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    config: CheckConfig,
    *,
    target: str | None = None,
    prediction: str | None = None,
    model: str | Path | None = None,
    multivariate: bool = False,
    exact: bool = False,
) -> CheckResult:
    """Like :func:`run_check`, on data frames already in memory."""
    for role, column in (("target", target), ("prediction", prediction)):
        if column is not None and column not in reference.columns:
            raise InputError(f"{role} column {column!r} is not in the reference data")
    ignored = set(config.columns.ignore) | ({target} if target else set())
    shared = [c for c in reference.columns if c in set(current.columns) and c not in ignored]
    if not shared:
        raise InputError("the reference and current data share no columns to compare")
    missing = tuple(c for c in reference.columns if c not in current.columns and c not in ignored)
    if prediction is not None and prediction in missing:
        raise InputError(f"prediction column {prediction!r} is not in the current data")
    overrides = {k: v for k, v in config.columns.kinds.items() if k in shared}
    kinds = infer_kinds(reference[shared], overrides)
    if not kinds:
        raise InputError("no column of the reference data can be monitored (all empty or dates)")
    for name, kind in kinds.items():
        check_compatible(name, kind, current[name])
    columns = list(kinds)
    settings = config.drift.settings()
    large = max(len(reference), len(current)) >= PARALLEL_ROWS
    threads = min(4, os.cpu_count() or 1) if large else 1
    # The service's path: a reference profile and the sketch of the current rows.
    profile = ReferenceProfile.from_frame(
        reference[columns], kinds, bins=config.drift.bins, threads=threads
    )
    sketch = profile.sketch(current[columns], threads=threads)
    if exact:
        report = compare_frames(
            reference[columns],
            current[columns],
            settings,
            kinds=kinds,
            prediction=prediction,
            exact=True,
            bins=config.drift.bins,
        )
    else:
        report = compare_sketches(profile, sketch, settings, prediction=prediction)
    current_columns = [c for c in current.columns if c not in ignored]
    quality = None
    if target is not None and prediction is not None:
        from monitor.check.quality import check_quality

        quality = check_quality(
            reference, current, target=target, prediction=prediction, settings=config.quality
        )
    attribution = None
    if model is not None:
        from monitor.check.attribution import check_attribution

        not_inputs = tuple(c for c in (target, prediction) if c is not None)
        attribution = check_attribution(
            reference, current, model, report, config.attribution, exclude=not_inputs
        )
    joint = None
    if multivariate:
        from monitor.check.multivariate import check_multivariate

        features = [c for c in columns if c != prediction]
        joint = check_multivariate(profile, reference, current, features, config.multivariate)
    return CheckResult(
        report=report,
        missing_columns=missing,
        target=target,
        data_quality=data_quality(profile, sketch, current_columns=current_columns),
        quality=quality,
        attribution=attribution,
        multivariate=joint,
    )


def to_json(result: CheckResult) -> bytes:
    """Return the ``--format json`` output (one object, newline-terminated)."""
    return orjson.dumps(result.to_dict(), option=orjson.OPT_APPEND_NEWLINE)

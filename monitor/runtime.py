"""What the service knows about each monitored model while it runs.

A :class:`ModelRuntime` ties a model's config to the reference profile its
windows are sketched on. The profile holds the model's features and, under
the reserved name :data:`PREDICTION`, its prediction (score or label), so
prediction drift is computed like feature drift.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import numpy as np
import orjson
import pandas as pd

from detectors._arrays import canonical_label
from detectors.drift import DriftSettings
from detectors.profile import ReferenceProfile
from detectors.sketch import (
    CategoricalSketch,
    CategoricalSpec,
    FeatureSketch,
    NumericSketch,
    NumericSpec,
    WindowSketch,
)
from monitor.config import ModelConfig
from monitor.records import PredictionRecord
from monitor.windows import WindowSpec

#: Name of the prediction column in reference files and profiles (not usable as a feature name).
PREDICTION = "prediction"


@dataclass(frozen=True, slots=True)
class ModelRuntime:
    """A model's config, its reference profile (and version) and derived settings.

    ``window`` and ``settings`` are derived once here: the hot path reads the
    window for every record.
    """

    config: ModelConfig
    profile: ReferenceProfile
    profile_version: int
    window: WindowSpec = field(init=False)
    settings: DriftSettings = field(init=False)
    feature_names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "window", self.config.window.spec)
        object.__setattr__(self, "settings", self.config.drift.settings())
        names = tuple(n for n in self.profile.specs if n != PREDICTION)
        object.__setattr__(self, "feature_names", names)

    @property
    def name(self) -> str:
        """The model's name."""
        return self.config.name

    @property
    def prediction(self) -> str | None:
        """:data:`PREDICTION` when the profile has a prediction column, else None."""
        return PREDICTION if PREDICTION in self.profile.specs else None


def build_profile(config: ModelConfig, frame: pd.DataFrame) -> ReferenceProfile:
    """Return the reference profile of ``frame`` for ``config``'s model.

    The prediction column, if the frame has one named :data:`PREDICTION`, is
    profiled with the kind the config gives the prediction; ignored columns
    are left out.
    """
    kinds: dict[str, Any] = {k: v for k, v in config.columns.kinds.items() if k in frame.columns}
    if PREDICTION in frame.columns:
        kinds[PREDICTION] = config.prediction.kind
    columns = [c for c in frame.columns if c not in set(config.columns.ignore)]
    return ReferenceProfile.from_frame(
        frame[columns],
        kinds,
        bins=config.drift.bins,
        max_categories=config.drift.max_categories,
    )


def sketch_records(
    runtime: ModelRuntime, records: Sequence[PredictionRecord], rows: int | None = None
) -> WindowSketch:
    """Return the sketch of ``records`` on the model's profile (columnar, no data frame).

    Features absent from a record count as missing. ``rows`` overrides the row
    count (default ``len(records)``).
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
    for name, spec in specs.items():
        values = list(columns.get(name, ()))
        if isinstance(spec, NumericSpec):
            features[name] = _numeric(spec, values)
        else:
            features[name] = _categorical(spec, values)
    return WindowSketch(rows=len(records) if rows is None else rows, features=features)


def _numeric(spec: NumericSpec, values: list[Any]) -> NumericSketch:
    invalid = 0
    try:
        # None becomes NaN and booleans 0/1 in one C-level pass.
        array = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        converted = []
        for value in values:
            if value is None or isinstance(value, int | float):
                converted.append(np.nan if value is None else float(value))
            else:
                invalid += 1
        array = np.array(converted, dtype=np.float64)
    nan = np.isnan(array)
    finite = np.isfinite(array)
    infinite = int(array.size - finite.sum() - nan.sum())
    return NumericSketch.from_values(
        spec, array[finite], missing=int(nan.sum()), infinite=infinite, invalid=invalid
    )


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


def sketch_to_bytes(profile_version: int, sketch: WindowSketch) -> bytes:
    """Serialise a partial sketch with the profile version whose bins it uses."""
    return orjson.dumps({"profile_version": profile_version, "sketch": sketch.to_dict()})


def sketch_from_bytes(
    payload: bytes, profile_for: Callable[[int], ReferenceProfile]
) -> tuple[int, WindowSketch]:
    """Return ``(profile_version, sketch)`` from :func:`sketch_to_bytes` output.

    ``profile_for`` returns the profile of a version (a mapping's
    ``__getitem__`` or a loader); the sketch is rebuilt on that profile's
    specs. The payload is parsed once.
    """
    data = orjson.loads(payload)
    version = int(data["profile_version"])
    return version, WindowSketch.from_dict(profile_for(version).specs, data["sketch"])

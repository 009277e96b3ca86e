"""What the service knows about each monitored model while it runs, and its stored reference.

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
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from detectors.attribution import AttributionSummary
from detectors.drift import DriftSettings
from detectors.kinds import ColumnKind
from detectors.performance import CBPE
from detectors.profile import ReferenceProfile
from detectors.quality import DataQualityThresholds
from monitor.config.service import ModelConfig
from monitor.windows import WindowSpec

log = logging.getLogger(__name__)


#: Name of the prediction column in reference files and profiles (not usable as a feature name).
PREDICTION = "prediction"


#: Key of the fitted performance estimator beside the profile's keys in a stored reference.
ESTIMATOR_KEY = "performance_estimation"


#: Key of the reference's SHAP summary beside the profile's keys in a stored reference.
ATTRIBUTION_KEY = "attribution"


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

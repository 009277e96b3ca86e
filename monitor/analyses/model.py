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

Reference versions
    A model may have several stored references (profile versions, each
    optionally naming the ``model_version`` it describes, each with the start
    of the first window it is in force for, ``effective_from``).
    :class:`ModelRuntimes` holds one :class:`ModelRuntime` per version and
    picks a window's by the window's start: the newest version whose
    ``effective_from`` is at or before it (None counts as the beginning of
    time). The choice depends on the window alone, so every partition, every
    process and every rebalance sketches one window on one profile.
    :meth:`ModelRuntimes.refresh` learns versions stored since (the ingest loop
    calls it at every checkpoint, the service's scheduler every
    ``scheduler.evaluate_interval_s``): no restart is needed.

Mixed model versions in one window
    Windows are per model, not per model version: when two model versions
    serve at once (a canary), the records of both fall into the same windows
    and are compared with the one reference in force for each window. The
    records' ``model_version`` does not select the reference. To monitor a
    canary on its own, give its records their own model name (and configure
    that model with its own reference).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from detectors.attribution import AttributionSummary
from detectors.drift import DriftSettings
from detectors.kinds import ColumnKind
from detectors.performance import CBPE
from detectors.profile import ReferenceProfile
from detectors.quality import DataQualityThresholds
from monitor.config.service import ModelConfig
from monitor.windows import WindowSpec

if TYPE_CHECKING:
    from monitor.store import Store

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


def runtime_of(config: ModelConfig, version: int, payload: bytes) -> ModelRuntime:
    """Return the runtime of profile ``version`` (a stored reference's bytes) of ``config``.

    Warns when the model estimates performance and the reference has no
    estimator; raises ``ValueError`` as :class:`ModelRuntime` does.
    """
    reference = StoredReference.from_bytes(payload)
    if config.performance_estimation is not None and reference.estimator is None:
        log.warning(
            "model %s: reference profile version %d has no performance estimator; "
            "its windows get no estimated performance until a reference is stored with "
            "performance_estimation configured",
            config.name,
            version,
        )
    return ModelRuntime(
        config,
        reference.profile,
        version,
        estimator=reference.estimator,
        attribution=reference.attribution,
    )


@dataclass(frozen=True, slots=True)
class ProfileVersions:
    """One model's runtimes, oldest profile version first, each with its ``effective_from``.

    ``starts[i]`` is the start of the first window ``runtimes[i]`` is in force
    for (``-inf``: from the beginning). Raises ``ValueError`` if empty or if
    the two differ in length.
    """

    runtimes: tuple[ModelRuntime, ...]
    starts: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.runtimes or len(self.runtimes) != len(self.starts):
            raise ValueError("ProfileVersions needs one start per runtime, and at least one")

    @property
    def latest(self) -> ModelRuntime:
        """The newest version's runtime."""
        return self.runtimes[-1]

    def at(self, window_start: float) -> ModelRuntime:
        """The runtime of the newest version in force at ``window_start``.

        Windows before every version's ``effective_from`` (a first reference
        stored after other models' data) use the oldest version.
        """
        for index in range(len(self.runtimes) - 1, -1, -1):
            if self.starts[index] <= window_start:
                return self.runtimes[index]
        return self.runtimes[0]

    def version(self, version: int) -> ModelRuntime | None:
        """The runtime of profile ``version``, or None if it is not known here."""
        for runtime in self.runtimes:
            if runtime.profile_version == version:
                return runtime
        return None

    def added(self, runtime: ModelRuntime, effective_from: float | None) -> ProfileVersions:
        """A copy with ``runtime`` (a newer version) added, in force from ``effective_from``."""
        start = -math.inf if effective_from is None else effective_from
        return ProfileVersions((*self.runtimes, runtime), (*self.starts, start))


class ModelRuntimes(Mapping[str, ModelRuntime]):
    """Every monitored model's runtimes, one per stored profile version, chosen by window start.

    As a mapping it gives each model's *newest* runtime (config, window, name:
    what does not depend on the version). :meth:`at` picks the runtime a
    window is sketched and evaluated on; :meth:`refresh` adds versions stored
    since. Reads never lock: a refresh replaces a model's
    :class:`ProfileVersions` in one assignment.
    """

    def __init__(self, versions: Mapping[str, ProfileVersions]) -> None:
        self._versions = dict(versions)
        self._lock = threading.Lock()
        # Per model, the newest version left out as unusable: not read (nor logged) again.
        self._left_out: dict[str, int] = {}

    @classmethod
    def of(cls, runtimes: Mapping[str, ModelRuntime]) -> ModelRuntimes:
        """Wrap ``{name: runtime}`` (one version each, in force from the start)."""
        if isinstance(runtimes, ModelRuntimes):
            return runtimes
        return cls({name: ProfileVersions((r,), (-math.inf,)) for name, r in runtimes.items()})

    def __getitem__(self, name: str) -> ModelRuntime:
        return self._versions[name].latest

    def __iter__(self) -> Iterator[str]:
        return iter(self._versions)

    def __len__(self) -> int:
        return len(self._versions)

    def versions(self, name: str) -> ProfileVersions:
        """Every known version of model ``name``."""
        return self._versions[name]

    def at(self, name: str, window_start: float) -> ModelRuntime:
        """The runtime the window of model ``name`` starting at ``window_start`` uses."""
        return self._versions[name].at(window_start)

    def version(self, name: str, version: int) -> ModelRuntime | None:
        """The runtime of profile ``version`` of model ``name``, or None if not known here."""
        return self._versions[name].version(version)

    def profiles(self) -> dict[str, dict[int, ReferenceProfile]]:
        """``{model: {version: profile}}`` of every known version (to decode stored partials)."""
        return {
            name: {r.profile_version: r.profile for r in versions.runtimes}
            for name, versions in self._versions.items()
        }

    def seen(self, name: str) -> int:
        """The newest reference version of ``name`` known: in force here, or left out."""
        with self._lock:
            known = max(r.profile_version for r in self._versions[name].runtimes)
            return max(known, self._left_out.get(name, 0))

    def refresh(self, store: Store) -> list[ModelRuntime]:
        """Add the profile versions stored since the newest known one; return their runtimes.

        A version that does not fit the model's config (see :class:`ModelRuntime`)
        is logged and left out -- by every process alike, so windows still agree.
        """
        added: list[ModelRuntime] = []
        with self._lock:
            known_versions = {
                name: max(
                    max(r.profile_version for r in versions.runtimes),
                    self._left_out.get(name, 0),
                )
                for name, versions in self._versions.items()
            }
        # One query for every model, outside the lock: the ingestor's checkpoint reads
        # seen() under it, and per-model queries held it for seconds with 500 models.
        newer = store.profiles_since_many(known_versions)
        if not newer:
            return added
        with self._lock:
            for name, rows in newer.items():
                versions = self._versions[name]
                known = max(
                    max(r.profile_version for r in versions.runtimes), self._left_out.get(name, 0)
                )
                for row in rows:
                    if row.version <= known:  # added by a concurrent refresh meanwhile
                        continue
                    payload = store.profile(name, row.version)
                    if payload is None:
                        continue
                    try:
                        runtime = runtime_of(versions.latest.config, row.version, payload)
                    except ValueError as error:
                        log.error("reference version %d left out: %s", row.version, error)
                        self._left_out[name] = row.version
                        continue
                    versions = versions.added(runtime, row.effective_from)
                    added.append(runtime)
                    log.info(
                        "model %s: reference profile version %d (model version %s) in force "
                        "from window start %s",
                        name,
                        row.version,
                        row.model_version or "-",
                        "the beginning" if row.effective_from is None else row.effective_from,
                    )
                self._versions[name] = versions
        return added


def as_runtimes(runtimes: Mapping[str, ModelRuntime] | Sequence[ModelRuntime]) -> ModelRuntimes:
    """``runtimes`` as :class:`ModelRuntimes` (a plain mapping: one version per model)."""
    if isinstance(runtimes, ModelRuntimes):
        return runtimes
    if isinstance(runtimes, Mapping):
        return ModelRuntimes.of(runtimes)
    return ModelRuntimes.of({r.name: r for r in runtimes})

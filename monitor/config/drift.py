"""The ``drift`` and ``columns`` sections of a config file, validated with pydantic.

``driftline check --config FILE`` reads these two sections; the service reads
the same sections per model. Validation errors name the file, the field and
what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from detectors.decisions import Correction
from detectors.drift import DEFAULT_EFFECT_CONFIDENCE, DEFAULT_MIN_EFFECT_SIZE, DriftSettings
from detectors.kinds import ColumnKind
from detectors.methods import DRIFT_METHODS
from detectors.multivariate import MULTIVARIATE_METHODS
from detectors.profile import DEFAULT_BINS, DEFAULT_MAX_CATEGORIES


class ConfigError(ValueError):
    """A config file is missing, not YAML, or fails validation; the message says where and why."""


class DriftSection(BaseModel):
    """How features are compared and decided (see ``detectors.drift.DriftSettings``).

    ``min_effect_size`` (default 0.03; null or 0: off) is the materiality
    threshold on the effect size, ``min_effect_sizes`` overrides it per
    feature, and ``effect_confidence`` (default 0.95; null: the plain
    estimate) is the confidence of the effect size's lower bound.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    numeric_method: str = "ks"
    categorical_method: str = "chi_square"
    methods: dict[str, str] = Field(default_factory=dict)
    thresholds: dict[str, float] = Field(default_factory=dict)
    alpha: float = Field(0.05, gt=0, lt=1)
    correction: Literal["none", "bonferroni", "bh"] = "bh"
    min_effect_size: float | None = Field(DEFAULT_MIN_EFFECT_SIZE, ge=0, le=1)
    min_effect_sizes: dict[str, float] = Field(default_factory=dict)
    effect_confidence: float | None = Field(DEFAULT_EFFECT_CONFIDENCE, gt=0, lt=1)
    drift_share: float = Field(0.5, gt=0, le=1)
    min_samples: int = Field(1, ge=1)
    bins: int = Field(DEFAULT_BINS, ge=10, multiple_of=10)
    max_categories: int = Field(DEFAULT_MAX_CATEGORIES, ge=1)

    @field_validator("numeric_method", "categorical_method")
    @classmethod
    def _known_default(cls, value: str) -> str:
        if value not in DRIFT_METHODS:
            raise ValueError(
                f"unknown method {value!r}; available: {', '.join(DRIFT_METHODS.names())}"
            )
        return value

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, value: dict[str, str]) -> dict[str, str]:
        for feature, name in value.items():
            if name not in DRIFT_METHODS:
                raise ValueError(
                    f"unknown method {name!r} for {feature!r}; available: "
                    f"{', '.join(DRIFT_METHODS.names())}"
                )
        return value

    @field_validator("min_effect_sizes")
    @classmethod
    def _effect_sizes(cls, value: dict[str, float]) -> dict[str, float]:
        for feature, size in value.items():
            if not 0 <= size <= 1:
                raise ValueError(f"min_effect_sizes[{feature!r}] must be in [0, 1], got {size}")
        return value

    @field_validator("thresholds")
    @classmethod
    def _known_thresholds(cls, value: dict[str, float]) -> dict[str, float]:
        for name, threshold in value.items():
            if name not in DRIFT_METHODS:
                raise ValueError(f"threshold for unknown method {name!r}")
            if threshold <= 0:
                raise ValueError(f"threshold for {name!r} must be positive, got {threshold}")
        return value

    def settings(self) -> DriftSettings:
        """Return the detectors-level settings this section describes."""
        return DriftSettings(
            numeric_method=self.numeric_method,
            categorical_method=self.categorical_method,
            methods=self.methods,
            thresholds=self.thresholds,
            alpha=self.alpha,
            correction=Correction(self.correction),
            min_effect_size=self.min_effect_size,
            min_effect_sizes=self.min_effect_sizes,
            effect_confidence=self.effect_confidence,
            drift_share=self.drift_share,
            min_samples=self.min_samples,
        )


class ColumnsSection(BaseModel):
    """Which columns are monitored and as what kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kinds: dict[str, ColumnKind] = Field(default_factory=dict)
    ignore: list[str] = Field(default_factory=list)


class QualitySection(BaseModel):
    """How ``check --target --prediction`` scores the model (see ``monitor.check.quality``).

    ``task``: ``auto`` infers it from the columns; ``binary_scores`` (the
    prediction is the positive class's score), ``classification`` (the
    prediction is a label) or ``regression`` force it. ``positive_label``: the
    label a score is the probability of (inferred for {0, 1}, {-1, 1} and
    {false, true}). ``threshold``: a score at or above it predicts the positive
    label.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Literal["auto", "binary_scores", "classification", "regression"] = "auto"
    positive_label: str | None = None
    threshold: float = Field(0.5, gt=0, lt=1)

    @field_validator("positive_label", mode="before")
    @classmethod
    def _label_as_text(cls, value: object) -> object:
        # YAML reads `positive_label: 1` as an int and `true` as a bool; labels are compared
        # as canonical strings.
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(int(value)) if float(value).is_integer() else str(value)
        return value


class AttributionSection(BaseModel):
    """How ``check --model`` compares SHAP attributions (see ``monitor.check.attribution``).

    ``max_rows`` rows of each file (a seeded sample) are explained; a feature's
    attribution drifts when its mean |SHAP| changed by at least ``threshold``
    (relative) and, unless ``alpha`` is null, a Welch-type test rejects at
    ``alpha``; ``share_threshold`` (null: off) applies to the total variation
    distance between the two normalised importance vectors.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_rows: int = Field(2000, ge=10)
    seed: int = 0
    threshold: float = Field(0.25, gt=0)
    alpha: float | None = Field(0.05, gt=0, lt=1)
    share_threshold: float | None = Field(0.1, gt=0, le=1)


class MultivariateSection(BaseModel):
    """The multivariate methods ``check --multivariate`` runs (see ``monitor.check.multivariate``).

    ``methods`` from ``pca_reconstruction``, ``domain_classifier``, ``mmd``;
    each decides at ``alpha`` and draws its random choices from ``seed``.
    ``reference_rows``/``current_rows``: the row samples' sizes.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    methods: list[str] = Field(
        default_factory=lambda: ["pca_reconstruction", "domain_classifier", "mmd"]
    )
    alpha: float = Field(0.05, gt=0, lt=1)
    seed: int = Field(0, ge=0)
    reference_rows: int = Field(2000, ge=10)
    current_rows: int = Field(1000, ge=10)

    @field_validator("methods")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        known = MULTIVARIATE_METHODS.names()
        for name in value:
            if name not in known:
                raise ValueError(f"unknown multivariate method {name!r}; available: {known}")
        return value


class CheckConfig(BaseModel):
    """The sections of a config file that ``driftline check`` uses; other sections are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    drift: DriftSection = DriftSection()
    columns: ColumnsSection = ColumnsSection()
    quality: QualitySection = QualitySection()
    attribution: AttributionSection = AttributionSection()
    multivariate: MultivariateSection = MultivariateSection()


def load_check_config(path: str | Path | None) -> CheckConfig:
    """Return the validated config in ``path``, or the defaults when ``path`` is None."""
    if path is None:
        return CheckConfig()
    import yaml  # only a config file needs it

    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file not found: {file}")
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{file} must hold a mapping of sections, got {type(data).__name__}")
    try:
        return CheckConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(file, exc)) from exc


def format_validation_error(file: Path, exc: ValidationError) -> str:
    """Return one line per problem: ``FILE: field.path: what was expected (got VALUE)``."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        got = (
            f" (got {error['input']!r})" if "input" in error and error["type"] != "missing" else ""
        )
        lines.append(f"{file}: {where}: {error['msg']}{got}")
    return "\n".join(lines)

"""The ``change_detection`` section of a model's config: online change detectors per window.

Configuration only: :class:`ChangeDetectionSection` names the detectors of
:mod:`detectors.online`, the streams they read and their parameters, and
checks them when the config is loaded. :mod:`monitor.analyses.change_detection` runs
them over each window's streams (its module docstring describes the streams
and the result). Kept apart from that module, as :mod:`monitor.config.drift`
is from the drift tests, so that :mod:`monitor.config.service` imports no analysis
module (checked by import-linter).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Annotated, Any, Final, Literal, TypeAlias

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from detectors.errors import InvalidParameterError
from detectors.online import ONLINE_DETECTORS, ChangeDetector, UnknownDetectorError

__all__ = [
    "DEFAULT_SEED",
    "STREAMS",
    "ChangeDetectionSection",
    "ParameterValue",
    "StreamName",
]

#: A stream the detectors can read (see :mod:`monitor.analyses.change_detection`).
StreamName: TypeAlias = Literal["score", "error"]
#: Every stream, in the order results are reported.
STREAMS: Final[tuple[StreamName, ...]] = ("score", "error")
#: Seed given to a detector that draws random numbers when its parameters give none.
DEFAULT_SEED: Final = 0


def _not_boolean(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("must be a number (or a string, as Page-Hinkley's mode), not a boolean")
    return value


#: A detector parameter: a number, or a string (Page-Hinkley's ``mode``); never a boolean.
ParameterValue: TypeAlias = Annotated[
    StrictInt | StrictFloat | StrictStr, BeforeValidator(_not_boolean)
]


class ChangeDetectionSection(BaseModel):
    """Which online change detectors run over which streams of each window.

    ``detectors``
        Names of registered online change detectors
        (:data:`detectors.online.ONLINE_DETECTORS`: ``adwin``, ``cusum``,
        ``ddm``, ``kswin``, ``page_hinkley``), each listed once. The default,
        ADWIN and Page-Hinkley, both have few false alarms at their default
        parameters and read any real-valued stream.
    ``streams``
        ``score`` and/or ``error`` (:mod:`monitor.analyses.change_detection`), each
        listed once; default both. Every detector runs on every stream
        listed. DDM reads only 0/1 values, so it is refused with the score
        stream (list it with ``streams: [error]`` for a classifier).
    ``parameters``
        Keyword parameters per detector, by detector name, e.g.
        ``{"page_hinkley": {"threshold": 20, "mode": "up"}}``; a detector not
        named here runs with its defaults. Each set is checked by building the
        detector, so an unknown parameter or a value out of range is an error
        of this section naming the detector and the parameter. Thresholds are
        in units of the stream (Page-Hinkley's ``threshold`` of 50 suits
        neither a 0..1 score nor a 0/1 error stream on short windows:
        lower it). Booleans are refused rather than read as 0/1.
    ``max_points``
        The most points of a stream fed per window: the most recent ones
        (:mod:`monitor.analyses.change_detection`); default 100,000.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    detectors: list[str] = Field(default_factory=lambda: ["adwin", "page_hinkley"], min_length=1)
    streams: list[StreamName] = Field(default_factory=lambda: list(STREAMS), min_length=1)
    parameters: dict[str, dict[str, ParameterValue]] = Field(default_factory=dict)
    max_points: int = Field(100_000, ge=1)

    @field_validator("detectors")
    @classmethod
    def _known_detectors(cls, value: list[str]) -> list[str]:
        for name in value:
            try:
                ONLINE_DETECTORS[name]
            except UnknownDetectorError as error:
                raise ValueError(str(error)) from None
        _refuse_repeats("detectors", value)
        return value

    @field_validator("streams")
    @classmethod
    def _distinct_streams(cls, value: list[StreamName]) -> list[StreamName]:
        _refuse_repeats("streams", value)
        return value

    @model_validator(mode="after")
    def _parameters_build_detectors(self) -> ChangeDetectionSection:
        for name, params in self.parameters.items():
            if name not in self.detectors:
                raise ValueError(
                    f"parameters are given for change detector {name!r}, which is not in "
                    f"detectors ({', '.join(self.detectors)}): add it there or remove its "
                    "parameters"
                )
            accepted = _parameter_names(name)
            for key in params:
                if key not in accepted:
                    raise ValueError(
                        f"unknown parameter {key!r} of change detector {name!r}; "
                        f"its parameters: {', '.join(accepted)}"
                    )
            try:
                self.build(name)
            except InvalidParameterError as error:
                raise ValueError(f"parameters of change detector {name!r}: {error}") from None
        if "score" in self.streams:
            binary = [name for name in self.detectors if self._reads_only_indicators(name)]
            if binary:
                raise ValueError(
                    f"{', '.join(binary)} reads only 0/1 error indicators, not scores: "
                    "list it with streams: [error] only, or remove it"
                )
        return self

    def detector_parameters(self, name: str) -> dict[str, Any]:
        """Return the keyword arguments detector ``name`` is built with.

        Its ``parameters``, plus ``seed = DEFAULT_SEED`` when its constructor
        takes a seed and none is given.
        """
        params: dict[str, Any] = dict(self.parameters.get(name, {}))
        if "seed" in _parameter_names(name) and "seed" not in params:
            params["seed"] = DEFAULT_SEED
        return params

    def build(self, name: str) -> ChangeDetector:
        """Return a new detector ``name`` with its :meth:`detector_parameters`."""
        return ONLINE_DETECTORS.create(name, **self.detector_parameters(name))

    def check_task(self, task: str) -> None:
        """Raise ``ValueError`` if a detector cannot read the error stream of ``task``.

        A regression model's error stream is an absolute error, which a
        detector reading only 0/1 values (DDM) refuses. The section alone does
        not know the task: call this from the model's configuration, with
        ``prediction.task``.
        """
        if task == "classification" or "error" not in self.streams:
            return
        binary = [name for name in self.detectors if self._reads_only_indicators(name)]
        if binary:
            raise ValueError(
                f"{', '.join(binary)} reads only 0/1 error indicators, but the error stream "
                f"of a {task} model is an absolute error: remove it"
            )

    def _reads_only_indicators(self, name: str) -> bool:
        """Whether detector ``name`` refuses a value other than 0 and 1 (DDM does)."""
        try:
            self.build(name).update(0.5)
        except InvalidParameterError:
            return True
        return False


def _parameter_names(name: str) -> list[str]:
    """The constructor parameters of the detector registered as ``name``, in order."""
    cls = ONLINE_DETECTORS[name]
    return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]


def _refuse_repeats(field: str, values: Sequence[str]) -> None:
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{field} lists {', '.join(map(repr, repeated))} more than once")

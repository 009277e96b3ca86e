"""A partial's stored payload (sketch, SHAP summary, CBPE sketch) and merging partials."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, Self, TypeVar

import orjson

from detectors.attribution import AttributionSummary
from detectors.performance import CBPESketch
from detectors.profile import ReferenceProfile
from detectors.sketch import WindowSketch
from monitor.analyses.model import ATTRIBUTION_KEY

#: Key of a partial's CBPE sketch (the scores of its records) in its payload.
PERFORMANCE_KEY = "performance"


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

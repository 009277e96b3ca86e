"""Retraining hooks: a ``retrain.requested`` event as the request that starts a job.

The payload (:class:`RetrainRequest`) is read from the event's ``details``:

- ``features`` (or ``drifted``, the key :mod:`alerts.rules` writes for drift rules): the
  drifted features, a list of objects with ``name`` and optional ``method``, ``statistic``
  and ``impact``; ranked here by ``impact``, largest first, features without one last in
  their given order;
- ``measured_quality`` / ``estimated_quality``: metric name -> value (labelled and
  label-free estimates), each optional;
- ``reference_version``: the reference profile compared against, optional.

Per :attr:`~alerts.targets.RetrainTarget.kind`:

- ``generic``: POST the webhook event body to ``url``.
- ``airflow`` (Airflow 3 REST API): ``POST {url}/api/v2/dags/{dag_id}/dagRuns`` with
  ``{"logical_date": null, "dag_run_id": "driftline-<event id>", "conf": <payload>}``; a
  repeated ``dag_run_id`` is refused with 409, so a retried event starts one run.
- ``prefect`` (Prefect 3): ``POST {api}/deployments/{deployment_id}/create_flow_run`` with
  ``{"parameters": <payload>, "idempotency_key": <event id>}``. ``{api}`` is ``{url}/api``,
  or ``url`` itself when its path already has an ``api`` segment (``PREFECT_API_URL``,
  Prefect Cloud's ``.../api/accounts/<id>/workspaces/<id>``). The flow must accept the
  payload's keys as parameters, or one dict parameter named by ``prefect_parameter``.
- ``github`` (Actions): ``POST {url}/repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches``
  with ``{"ref": ref, "inputs": {...}}``. Inputs are strings and the workflow must declare
  each of :data:`GITHUB_INPUTS`; GitHub allowed 10 inputs for a long time (25 now), so
  driftline keeps to 10. All inputs together are kept under 65,535 characters (GitHub's
  limit), measured as their JSON; the lowest-impact features are left out of ``payload``
  and ``features`` to fit, and an event that does not fit even without them is refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlsplit

import orjson

from alerts.events import AlertEvent, EventType, event_body, iso_utc
from alerts.formats import JSON, HttpRequest
from alerts.signing import EVENT_ID_HEADER
from alerts.targets import DEFAULT_GITHUB_API, RetrainTarget

#: The ``workflow_dispatch`` inputs a GitHub workflow triggered by driftline declares.
GITHUB_INPUTS: Final = (
    "model",
    "model_version",
    "window_start",
    "window_end",
    "event_id",
    "reason",
    "features",
    "payload",
)
GITHUB_MAX_INPUTS: Final = 10
GITHUB_MAX_INPUTS_CHARS: Final = 65_535
GITHUB_API_VERSION: Final = "2022-11-28"
AIRFLOW_RUN_ID_PREFIX: Final = "driftline-"


class RetrainError(ValueError):
    """A retrain request cannot be built; ``name`` is the offending field or parameter."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(f"{name}: {message}")


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftedFeature:
    """One drifted feature: its test (``method``, ``statistic``) and drift ``impact``."""

    name: str
    method: str | None = None
    statistic: float | None = None
    impact: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Returns ``{"name", "method", "statistic", "impact"}``."""
        return {
            "name": self.name,
            "method": self.method,
            "statistic": self.statistic,
            "impact": self.impact,
        }


def _number(value: object, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RetrainError(field, f"must be a number or null; got {value!r}")
    # NaN or infinity means "not measured" (JSON has neither; orjson would write null).
    return float(value) if math.isfinite(value) else None


def _quality(value: object, field: str) -> dict[str, float | None] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise RetrainError(field, f"must be an object of metric -> value; got {value!r}")
    return {str(k): _number(v, f"{field}.{k}") for k, v in value.items()}


def _features(value: object) -> tuple[DriftedFeature, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise RetrainError("details.features", f"must be a list; got {value!r}")
    features = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise RetrainError(f"details.features[{i}]", "must be an object with a string 'name'")
        method = item.get("method")
        features.append(
            DriftedFeature(
                name=item["name"],
                method=method if isinstance(method, str) else None,
                statistic=_number(item.get("statistic"), f"details.features[{i}].statistic"),
                impact=_number(item.get("impact"), f"details.features[{i}].impact"),
            )
        )
    # A stable sort: ties, and features without an impact, keep the order the rule gave.
    return tuple(sorted(features, key=lambda f: (f.impact is None, -(f.impact or 0.0))))


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrainRequest:
    """What a retraining job is told: the model, the window, why, and what drifted (ranked)."""

    event_id: str
    model: str
    model_version: str | None
    window_start: float
    window_end: float
    reason: str
    features: tuple[DriftedFeature, ...]
    measured_quality: Mapping[str, float | None] | None
    estimated_quality: Mapping[str, float | None] | None
    reference_version: str | None

    @classmethod
    def from_event(cls, event: AlertEvent) -> RetrainRequest:
        """Returns the request of a ``retrain.requested`` event, read from its ``details``."""
        if event.type is not EventType.RETRAIN_REQUESTED:
            raise RetrainError("event.type", f"must be retrain.requested; got {event.type.value}")
        details = event.details
        reference = details.get("reference_version")
        if reference is not None and not isinstance(reference, str):
            raise RetrainError("details.reference_version", f"must be a string; got {reference!r}")
        return cls(
            event_id=event.id,
            model=event.model,
            model_version=event.model_version,
            window_start=event.window_start,
            window_end=event.window_end,
            reason=event.summary,
            features=_features(details.get("features", details.get("drifted"))),
            measured_quality=_quality(details.get("measured_quality"), "details.measured_quality"),
            estimated_quality=_quality(
                details.get("estimated_quality"), "details.estimated_quality"
            ),
            reference_version=reference,
        )

    def to_dict(self, *, max_features: int | None = None) -> dict[str, Any]:
        """Returns the JSON-ready payload; ``max_features`` keeps only the highest-impact ones."""
        kept = self.features if max_features is None else self.features[:max_features]
        payload: dict[str, Any] = {
            "event_id": self.event_id,
            "model": self.model,
            "model_version": self.model_version,
            "window": {"start": iso_utc(self.window_start), "end": iso_utc(self.window_end)},
            "reason": self.reason,
            "features": [feature.to_dict() for feature in kept],
            "measured_quality": self.measured_quality,
            "estimated_quality": self.estimated_quality,
            "reference_version": self.reference_version,
        }
        if len(kept) < len(self.features):
            payload["features_omitted"] = len(self.features) - len(kept)
        return payload

    def to_json(self, *, max_features: int | None = None) -> bytes:
        """Returns :meth:`to_dict` as compact JSON bytes."""
        return orjson.dumps(self.to_dict(max_features=max_features))


def _segment(value: str) -> str:
    return quote(value, safe="")


def _field(value: str | None, name: str) -> str:
    # RetrainTarget's validator requires the fields of each kind; this narrows the type.
    if value is None:
        raise RetrainError(name, "is required for this kind of retrain target")
    return value


def _post(
    url: str,
    body: Any,
    event: AlertEvent,
    headers: Mapping[str, str] | None,
    own: Mapping[str, str] | None = None,
) -> HttpRequest:
    merged = {"Content-Type": JSON, EVENT_ID_HEADER: event.id, **(own or {})}
    taken = {key.lower() for key in merged}
    merged.update({k: v for k, v in (headers or {}).items() if k.lower() not in taken})
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return HttpRequest(method="POST", url=url, headers=tuple(merged.items()), body=data)


def airflow_body(request: RetrainRequest) -> dict[str, Any]:
    """Returns the Airflow 3 ``dagRuns`` body (``dag_run_id`` derived from the event id)."""
    return {
        "logical_date": None,
        "dag_run_id": AIRFLOW_RUN_ID_PREFIX + request.event_id,
        "conf": request.to_dict(),
    }


def prefect_body(request: RetrainRequest, *, parameter: str | None = None) -> dict[str, Any]:
    """Returns the Prefect 3 ``create_flow_run`` body, the event id as ``idempotency_key``."""
    payload = request.to_dict()
    return {
        "parameters": payload if parameter is None else {parameter: payload},
        "idempotency_key": request.event_id,
    }


def _github_inputs(request: RetrainRequest, kept: int) -> dict[str, str]:
    return {
        "model": request.model,
        "model_version": request.model_version or "",
        "window_start": iso_utc(request.window_start),
        "window_end": iso_utc(request.window_end),
        "event_id": request.event_id,
        "reason": request.reason,
        "features": ",".join(feature.name for feature in request.features[:kept]),
        "payload": request.to_json(max_features=kept).decode(),
    }


def _inputs_chars(inputs: Mapping[str, str]) -> int:
    return len(orjson.dumps(inputs).decode())


def github_inputs(request: RetrainRequest) -> dict[str, str]:
    """Returns the ``workflow_dispatch`` inputs (strings, :data:`GITHUB_INPUTS`) for ``request``.

    Leaves out the lowest-impact features when needed to stay within
    :data:`GITHUB_MAX_INPUTS_CHARS`; raises :class:`RetrainError` if even none fits.
    """
    if _inputs_chars(_github_inputs(request, 0)) > GITHUB_MAX_INPUTS_CHARS:
        raise RetrainError(
            "inputs",
            f"the GitHub workflow inputs exceed {GITHUB_MAX_INPUTS_CHARS} characters even "
            "without features (a long summary or quality map?)",
        )
    # The largest number of features that fits (fitting is monotone in the number kept).
    low, high = 0, len(request.features)
    while low < high:
        middle = (low + high + 1) // 2
        if _inputs_chars(_github_inputs(request, middle)) <= GITHUB_MAX_INPUTS_CHARS:
            low = middle
        else:
            high = middle - 1
    return _github_inputs(request, low)


def _prefect_api(url: str) -> str:
    segments = urlsplit(url).path.split("/")
    return url if "api" in segments else url + "/api"


def render_retrain_request(
    event: AlertEvent, target: RetrainTarget, *, headers: Mapping[str, str] | None = None
) -> HttpRequest:
    """Returns the request that starts ``target``'s job for a ``retrain.requested`` ``event``.

    ``headers`` are the resolved extra headers (:func:`alerts.targets.target_headers`:
    ``headers_env`` and ``Authorization``).
    """
    request = RetrainRequest.from_event(event)
    if target.kind == "generic":
        return _post(_field(target.url, "url"), event_body(event), event, headers)
    if target.kind == "airflow":
        dag = _segment(_field(target.dag_id, "dag_id"))
        url = f"{_field(target.url, 'url')}/api/v2/dags/{dag}/dagRuns"
        return _post(url, airflow_body(request), event, headers)
    if target.kind == "prefect":
        deployment = _segment(_field(target.deployment_id, "deployment_id"))
        url = f"{_prefect_api(_field(target.url, 'url'))}/deployments/{deployment}/create_flow_run"
        return _post(url, prefect_body(request, parameter=target.prefect_parameter), event, headers)
    names = (target.owner, target.repo, "actions", "workflows", target.workflow)
    path = "/".join(_segment(_field(name, "owner/repo/workflow")) for name in names)
    body = {"ref": target.ref or "main", "inputs": github_inputs(request)}
    own = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": GITHUB_API_VERSION}
    url = f"{target.url or DEFAULT_GITHUB_API}/repos/{path}/dispatches"
    return _post(url, body, event, headers, own)

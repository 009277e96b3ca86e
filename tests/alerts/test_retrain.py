"""Retraining hooks: the payload and the Airflow, Prefect, GitHub and generic requests."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from pydantic import TypeAdapter, ValidationError

from alerts.events import AlertEvent, EventType, event_body, event_id
from alerts.retrain import (
    GITHUB_INPUTS,
    GITHUB_MAX_INPUTS,
    GITHUB_MAX_INPUTS_CHARS,
    RetrainError,
    RetrainRequest,
    _github_inputs,
    github_inputs,
    render_retrain_request,
)
from alerts.targets import RetrainTarget, SecretNotSetError, Target, target_headers
from tests.alerts.test_events import make_event

DETAILS = {
    "features": [
        {"name": "age", "statistic": 0.12, "impact": 0.01},
        {"name": "income", "method": "ks", "statistic": 0.31, "impact": 0.2},
        {"name": "zip", "statistic": 0.5},  # no impact: ranked last
        {"name": "debt", "statistic": 0.2, "impact": 0.05},
    ],
    "measured_quality": {"accuracy": 0.81, "f1": None},
    "estimated_quality": {"roc_auc": 0.77},
    "reference_version": "ref-2025-12",
}


def retrain_event(**overrides: Any) -> AlertEvent:
    fields: dict[str, Any] = {
        "id": event_id("credit-risk", "retrain", "", "inc-9", "retrain.requested"),
        "type": EventType.RETRAIN_REQUESTED,
        "rule": "retrain",
        "subject": "",
        "incident": "inc-9",
        "summary": "drift on income persisted for 3 windows",
        "details": DETAILS,
    }
    fields.update(overrides)
    return make_event(**fields)


def retrain_target(**fields: Any) -> RetrainTarget:
    return RetrainTarget.model_validate({"name": "job", **fields})


def test_request_reads_details_and_ranks_features_by_impact() -> None:
    event = retrain_event()
    request = RetrainRequest.from_event(event)
    assert [f.name for f in request.features] == ["income", "debt", "age", "zip"]
    assert request.features[0].method == "ks"
    assert request.features[3].impact is None
    payload = request.to_dict()
    assert payload == {
        "event_id": event.id,
        "model": "credit-risk",
        "model_version": "7",
        "window": {"start": "2025-12-31T23:00:00Z", "end": "2026-01-01T00:00:00Z"},
        "reason": "drift on income persisted for 3 windows",
        "features": [
            {"name": "income", "method": "ks", "statistic": 0.31, "impact": 0.2},
            {"name": "debt", "method": None, "statistic": 0.2, "impact": 0.05},
            {"name": "age", "method": None, "statistic": 0.12, "impact": 0.01},
            {"name": "zip", "method": None, "statistic": 0.5, "impact": None},
        ],
        "measured_quality": {"accuracy": 0.81, "f1": None},
        "estimated_quality": {"roc_auc": 0.77},
        "reference_version": "ref-2025-12",
    }
    assert orjson.loads(request.to_json()) == payload
    assert request.to_dict(max_features=1)["features_omitted"] == 3


def test_request_reads_the_rules_drifted_key_and_tolerates_missing_details() -> None:
    drifted = {"drifted": [{"name": "a", "statistic": 0.1, "impact": None}]}
    assert [f.name for f in RetrainRequest.from_event(retrain_event(details=drifted)).features] == [
        "a"
    ]
    empty = RetrainRequest.from_event(retrain_event(details={}))
    assert empty.features == ()
    assert empty.measured_quality is None
    assert empty.reference_version is None


@pytest.mark.parametrize(
    ("details", "name"),
    [
        ({"features": "income"}, "details.features"),
        ({"features": [{"statistic": 1.0}]}, "details.features[0]"),
        ({"features": [{"name": "a", "impact": "high"}]}, "details.features[0].impact"),
        ({"measured_quality": [0.8]}, "details.measured_quality"),
        ({"estimated_quality": {"auc": "x"}}, "details.estimated_quality.auc"),
        ({"reference_version": 3}, "details.reference_version"),
    ],
)
def test_request_refuses_malformed_details(details: dict[str, Any], name: str) -> None:
    with pytest.raises(RetrainError) as raised:
        RetrainRequest.from_event(retrain_event(details=details))
    assert raised.value.name == name


def test_only_retrain_events_make_requests() -> None:
    with pytest.raises(RetrainError, match=r"retrain\.requested"):
        RetrainRequest.from_event(make_event())


def test_airflow_request() -> None:
    event = retrain_event()
    target = retrain_target(kind="airflow", url="http://127.0.0.1:8080/", dag_id="retrain_credit")
    request = render_retrain_request(event, target, headers={"Authorization": "Bearer jwt"})
    assert request.method == "POST"
    assert request.url == "http://127.0.0.1:8080/api/v2/dags/retrain_credit/dagRuns"
    body = orjson.loads(request.body)
    assert list(body) == ["logical_date", "dag_run_id", "conf"]
    assert body["logical_date"] is None
    assert body["dag_run_id"] == "driftline-" + event.id
    assert body["conf"] == RetrainRequest.from_event(event).to_dict()
    assert request.header("Authorization") == "Bearer jwt"
    assert request.header("X-Driftline-Event-Id") == event.id
    # A retry of the same event reuses the run id, which Airflow refuses with 409.
    assert render_retrain_request(event, target).body == request.body


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:4200", "http://127.0.0.1:4200/api/deployments/{id}/create_flow_run"),
        ("http://127.0.0.1:4200/api", "http://127.0.0.1:4200/api/deployments/{id}/create_flow_run"),
        (
            "https://api.prefect.cloud/api/accounts/a1/workspaces/w1",
            "https://api.prefect.cloud/api/accounts/a1/workspaces/w1/deployments/{id}/create_flow_run",
        ),
    ],
)
def test_prefect_request(url: str, expected: str) -> None:
    deployment = "0d5e2a3c-7d65-4c3b-9d0e-3f1e4f1a2b3c"
    event = retrain_event()
    request = render_retrain_request(
        event, retrain_target(kind="prefect", url=url, deployment_id=deployment)
    )
    assert request.url == expected.format(id=deployment)
    body = orjson.loads(request.body)
    assert body == {
        "parameters": RetrainRequest.from_event(event).to_dict(),
        "idempotency_key": event.id,
    }


def test_prefect_parameter_wraps_the_payload() -> None:
    target = retrain_target(
        kind="prefect", url="http://p:4200", deployment_id="d", prefect_parameter="request"
    )
    body = orjson.loads(render_retrain_request(retrain_event(), target).body)
    assert list(body["parameters"]) == ["request"]
    assert body["parameters"]["request"]["model"] == "credit-risk"


def test_github_request() -> None:
    event = retrain_event()
    target = retrain_target(
        kind="github", owner="acme", repo="models", workflow="retrain.yml", ref="release"
    )
    request = render_retrain_request(event, target)
    assert request.url == (
        "https://api.github.com/repos/acme/models/actions/workflows/retrain.yml/dispatches"
    )
    assert request.header("Accept") == "application/vnd.github+json"
    assert request.header("X-GitHub-Api-Version") == "2022-11-28"
    body = orjson.loads(request.body)
    assert body["ref"] == "release"
    inputs = body["inputs"]
    assert tuple(inputs) == GITHUB_INPUTS
    assert len(inputs) <= GITHUB_MAX_INPUTS == 10
    assert all(isinstance(value, str) for value in inputs.values())
    assert inputs["model"] == "credit-risk"
    assert inputs["model_version"] == "7"
    assert inputs["window_start"] == "2025-12-31T23:00:00Z"
    assert inputs["window_end"] == "2026-01-01T00:00:00Z"
    assert inputs["event_id"] == event.id
    assert inputs["reason"] == event.summary
    assert inputs["features"] == "income,debt,age,zip"
    assert orjson.loads(inputs["payload"]) == RetrainRequest.from_event(event).to_dict()


def test_github_defaults_ref_main_and_empty_version() -> None:
    target = retrain_target(kind="github", owner="acme", repo="models", workflow="123")
    body = orjson.loads(render_retrain_request(retrain_event(model_version=None), target).body)
    assert body["ref"] == "main"
    assert body["inputs"]["model_version"] == ""


def test_github_inputs_drop_lowest_impact_features_to_fit() -> None:
    features = [
        {"name": f"feature_{i:05d}", "statistic": 0.5, "impact": float(i)} for i in range(3000)
    ]
    request = RetrainRequest.from_event(retrain_event(details={"features": features}))
    inputs = github_inputs(request)
    assert len(orjson.dumps(inputs).decode()) <= GITHUB_MAX_INPUTS_CHARS
    payload = orjson.loads(inputs["payload"])
    kept = len(payload["features"])
    assert 0 < kept < 3000
    assert payload["features_omitted"] == 3000 - kept
    assert payload["features"][0]["name"] == "feature_02999"  # highest impact kept
    assert inputs["features"].split(",") == [f["name"] for f in payload["features"]]
    # Maximal: one more feature would not fit.
    assert len(orjson.dumps(_github_inputs(request, kept + 1)).decode()) > GITHUB_MAX_INPUTS_CHARS


def test_github_inputs_refuse_what_cannot_fit() -> None:
    event = retrain_event(summary="x" * (GITHUB_MAX_INPUTS_CHARS + 1))
    with pytest.raises(RetrainError, match="65535"):
        github_inputs(RetrainRequest.from_event(event))


def test_generic_request_posts_the_event_body() -> None:
    event = retrain_event()
    target = retrain_target(kind="generic", url="https://jobs.example.test/retrain")
    request = render_retrain_request(event, target)
    assert request.url == "https://jobs.example.test/retrain"
    assert request.body == event_body(event)
    assert request.header("Content-Type") == "application/json"


def test_auth_headers_from_env() -> None:
    bearer = retrain_target(kind="generic", url="https://j.test", token_env="JOB_TOKEN")
    assert target_headers(bearer, {"JOB_TOKEN": "tok"}) == {"Authorization": "Bearer tok"}
    basic = retrain_target(kind="prefect", url="https://p.test", deployment_id="d", basic_env="PA")
    expected = "Basic " + base64.b64encode(b"admin:pass").decode()
    assert target_headers(basic, {"PA": "admin:pass"}) == {"Authorization": expected}
    with pytest.raises(SecretNotSetError, match="PA") as raised:
        target_headers(basic, {"PA": "no-colon"})
    assert "no-colon" not in str(raised.value)
    with pytest.raises(SecretNotSetError, match="JOB_TOKEN"):
        target_headers(bearer, {})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "airflow", "url": "http://a"}, "dag_id"),
        ({"kind": "prefect", "url": "http://p"}, "deployment_id"),
        ({"kind": "github", "owner": "o", "repo": "r"}, "workflow"),
        ({"kind": "generic"}, "url"),
        (
            {"kind": "airflow", "url": "http://a", "dag_id": "d", "deployment_id": "x"},
            "does not use",
        ),
        ({"kind": "generic", "url": "http://a", "token_env": "A", "basic_env": "B"}, "at most one"),
        ({"kind": "github", "owner": "o", "repo": "r/../x", "workflow": "w"}, "owner, repo"),
        ({"kind": "cron", "url": "http://a"}, "kind"),
        (
            {
                "kind": "generic",
                "url": "http://a",
                "token_env": "T",
                "headers_env": {"authorization": "X"},
            },
            "Authorization",
        ),
    ],
)
def test_retrain_target_validation(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        retrain_target(**fields)


def test_target_union_discriminates_on_type() -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(list[Target])
    targets = adapter.validate_python(
        [
            {"type": "webhook", "name": "w", "url": "http://w"},
            {"type": "alertmanager", "name": "am", "url": "http://am:9093"},
            {
                "type": "retrain",
                "name": "r",
                "kind": "github",
                "owner": "o",
                "repo": "r",
                "workflow": "w",
            },
        ]
    )
    assert [type(t).__name__ for t in targets] == [
        "WebhookTarget",
        "AlertmanagerTarget",
        "RetrainTarget",
    ]
    with pytest.raises(ValidationError, match="type"):
        adapter.validate_python([{"type": "pager", "name": "p", "url": "http://p"}])


def test_non_finite_numbers_mean_not_measured() -> None:
    details = {
        "features": [{"name": "a", "statistic": float("nan"), "impact": float("inf")}],
        "measured_quality": {"accuracy": float("nan")},
    }
    request = RetrainRequest.from_event(retrain_event(details=details))
    assert request.features[0].statistic is None
    assert request.features[0].impact is None
    assert request.measured_quality == {"accuracy": None}

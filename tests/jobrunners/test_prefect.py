"""A ``retrain.requested`` event starts a real Prefect 3 flow run, exactly once per event.

One test uses the server, for the reason given in ``test_airflow.py`` (each xdist worker
that asks for the session fixture would start a server of its own).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from alerts.formats import HttpRequest
from alerts.retrain import RetrainRequest, render_retrain_request
from alerts.targets import RetrainTarget, target_headers
from tests.alerts.test_retrain import retrain_event
from tests.jobrunners.runners import Prefect, Response, http, poll
from tests.servers import unique_name

pytestmark = [pytest.mark.jobrunners, pytest.mark.integration]

AUTH_ENV = "DRIFTLINE_TEST_PREFECT_AUTH"
#: Generous: a run completed 2.7 s after the request here; CI machines may be slower.
RUN_TIMEOUT = 120.0
TERMINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


#: A busy Prefect server (its SQLite database locked by a running flow) answers 503; the
#: delivery engine retries any 5xx, so the test does too, a few times, before asserting.
UNAVAILABLE_RETRIES = 5


def send(request: HttpRequest) -> Response:
    """Sends a rendered request as the delivery engine does: method, url, headers, body."""
    for _ in range(UNAVAILABLE_RETRIES):
        answer = http(request.method, request.url, headers=dict(request.headers), body=request.body)
        if answer.status != 503:
            return answer
        time.sleep(1.0)
    return answer


def prefect_target(prefect: Prefect, deployment: str, **fields: Any) -> RetrainTarget:
    return RetrainTarget.model_validate(
        {
            "name": "prefect",
            "kind": "prefect",
            "url": prefect.url,
            "deployment_id": prefect.deployments[deployment],
            "basic_env": AUTH_ENV,
            **fields,
        }
    )


def wait_finished(prefect: Prefect, run_id: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        answer = prefect.call("GET", f"/flow_runs/{run_id}")
        assert answer.status == 200, answer.body
        run: dict[str, Any] = answer.json()
        return run if run["state_type"] in TERMINAL else None

    try:
        return poll(finished, timeout=RUN_TIMEOUT, what=f"flow run {run_id} finished")
    except TimeoutError as error:
        pytest.fail(f"{error}\n{prefect.logs()}")


def recorded(prefect: Prefect, run_id: str) -> Any:
    """What the flow itself was given (it records every parameter, defaults included)."""
    return json.loads((prefect.record_dir / f"{run_id}.json").read_text())


def test_retrain_events_run_the_flows_once_with_their_payload(prefect: Prefect) -> None:
    environ = {AUTH_ENV: prefect.auth}
    # The payload's keys as the flow's parameters (a target without prefect_parameter).
    event = retrain_event(incident=unique_name("inc"))
    payload = RetrainRequest.from_event(event).to_dict()
    target = prefect_target(prefect, "keys")
    refused = send(render_retrain_request(event, target))  # without credentials
    assert refused.status == 401, refused.body
    headers = target_headers(target, environ)
    answer = send(render_retrain_request(event, target, headers=headers))
    assert answer.status == 201, answer.body
    created = answer.json()
    assert created["deployment_id"] == prefect.deployments["keys"]
    assert created["parameters"] == payload
    assert created["idempotency_key"] == event.id

    # The payload as one parameter (prefect_parameter: request), sent while the first runs.
    wrapped_event = retrain_event(incident=unique_name("inc"))
    wrapped_target = prefect_target(prefect, "wrapped", prefect_parameter="request")
    wrapped_answer = send(
        render_retrain_request(
            wrapped_event, wrapped_target, headers=target_headers(wrapped_target, environ)
        )
    )
    assert wrapped_answer.status == 201, wrapped_answer.body

    run = wait_finished(prefect, created["id"])
    assert run["state_type"] == "COMPLETED", prefect.logs()
    assert run["parameters"] == payload
    flow_got = recorded(prefect, run["id"])
    assert flow_got == {**payload, "features_omitted": None}
    assert flow_got["window"] == {"start": "2025-12-31T23:00:00Z", "end": "2026-01-01T00:00:00Z"}
    assert [f["name"] for f in flow_got["features"]] == ["income", "debt", "age", "zip"]

    wrapped_run = wait_finished(prefect, wrapped_answer.json()["id"])
    assert wrapped_run["state_type"] == "COMPLETED", prefect.logs()
    wrapped_payload = RetrainRequest.from_event(wrapped_event).to_dict()
    assert recorded(prefect, wrapped_run["id"]) == {"request": wrapped_payload}

    # A re-sent event carries the same idempotency key: Prefect returns the same run
    # (status 200 instead of 201) and starts nothing.
    again = send(render_retrain_request(event, target, headers=headers))
    assert again.status in (200, 201), again.body
    assert again.json()["id"] == created["id"]
    runs = prefect.call(
        "POST",
        "/flow_runs/filter",
        {"deployments": {"id": {"any_": [prefect.deployments["keys"]]}}, "limit": 200},
    )
    assert runs.status == 200, runs.body
    assert [r["idempotency_key"] for r in runs.json()] == [event.id]

    # Unlike Airflow's, Prefect's 409 is a refusal, not a duplicate: parameters the flow
    # does not accept (here: the payload's keys for a flow that takes one `request`).
    misconfigured = prefect_target(prefect, "wrapped")
    mismatch_event = retrain_event(incident=unique_name("inc"))
    mismatch = send(
        render_retrain_request(
            mismatch_event, misconfigured, headers=target_headers(misconfigured, environ)
        )
    )
    assert mismatch.status == 409, mismatch.body
    assert "Validation failed" in mismatch.json()["detail"]

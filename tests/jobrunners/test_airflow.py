"""A ``retrain.requested`` event starts a real Airflow 3 DAG run, exactly once per event.

One test uses the server: ``make test`` spreads tests over two xdist workers and each
worker that asks for the session fixture starts an Airflow of its own (about 1 GB), and
``--dist loadgroup`` cannot keep tests together with pytest 9.2 (pytest-xdist issue 1386).
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import orjson
import pytest

from alerts.formats import HttpRequest
from alerts.retrain import AIRFLOW_RUN_ID_PREFIX, RetrainRequest, render_retrain_request
from alerts.targets import RetrainTarget, target_headers
from tests.alerts.test_retrain import retrain_event
from tests.jobrunners.runners import AIRFLOW_DAG_ID, HERE, Airflow, Response, http, poll
from tests.servers import unique_name

pytestmark = [pytest.mark.jobrunners, pytest.mark.integration]

TOKEN_ENV = "DRIFTLINE_TEST_AIRFLOW_TOKEN"
TRIGGER_PATH = "/api/v2/dags/{dag_id}/dagRuns"
#: Generous: a run took 1.4-6 s here; a loaded CI machine may take much longer.
RUN_TIMEOUT = 120.0
FINISHED = ("success", "failed")


def send(request: HttpRequest) -> Response:
    """Sends a rendered request as the delivery engine does: method, url, headers, body."""
    return http(request.method, request.url, headers=dict(request.headers), body=request.body)


def airflow_target(airflow: Airflow) -> RetrainTarget:
    return RetrainTarget.model_validate(
        {
            "name": "airflow",
            "kind": "airflow",
            "url": airflow.url,
            "dag_id": AIRFLOW_DAG_ID,
            "token_env": TOKEN_ENV,
        }
    )


def validate_trigger_body(python: str, body: bytes) -> dict[str, Any]:
    """Validates ``body`` against the airflow package's OpenAPI description (its own venv)."""
    checked = subprocess.run(
        [python, str(HERE / "openapi_check.py"), "POST", TRIGGER_PATH],
        input=body,
        capture_output=True,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(checked.stdout)
    return result


def test_trigger_body_matches_the_openapi_description(airflow_python: str) -> None:
    event = retrain_event(incident=unique_name("inc"))
    target = RetrainTarget(name="a", kind="airflow", url="http://127.0.0.1:1", dag_id="d")
    result = validate_trigger_body(airflow_python, render_retrain_request(event, target).body)
    assert result == {"schema": "#/components/schemas/TriggerDAGRunPostBody", "errors": []}
    # The check itself catches what Airflow would refuse: no logical_date, an unknown key.
    bad = orjson.dumps({"dag_run_id": "x", "conf": {}, "execution_date": None})
    messages = [e["message"] for e in validate_trigger_body(airflow_python, bad)["errors"]]
    assert any("'logical_date' is a required property" in m for m in messages), messages
    assert any("execution_date" in m for m in messages), messages


def test_retrain_event_runs_the_dag_once_with_its_payload(airflow: Airflow) -> None:
    event = retrain_event(incident=unique_name("inc"))
    payload = RetrainRequest.from_event(event).to_dict()
    run_id = AIRFLOW_RUN_ID_PREFIX + event.id
    target = airflow_target(airflow)
    # Without the token (an unset token_env is refused earlier, by target_headers).
    refused = send(render_retrain_request(event, target))
    assert refused.status == 401, refused.body

    headers = target_headers(target, {TOKEN_ENV: airflow.token()})
    request = render_retrain_request(event, target, headers=headers)
    answer = send(request)
    assert answer.status == 200, answer.body
    created = answer.json()
    assert created["dag_run_id"] == run_id
    assert created["conf"] == payload

    token = airflow.token()

    def finished() -> dict[str, Any] | None:
        run = airflow.api("GET", f"/dags/{AIRFLOW_DAG_ID}/dagRuns/{run_id}", token)
        assert run.status == 200, run.body
        state: dict[str, Any] = run.json()
        return state if state["state"] in FINISHED else None

    try:
        run = poll(finished, timeout=RUN_TIMEOUT, what=f"DAG run {run_id} finished")
    except TimeoutError as error:
        pytest.fail(f"{error}\n{airflow.logs()}")
    assert run["state"] == "success", airflow.logs()
    assert run["conf"] == payload
    assert run["run_type"] == "manual"
    # What the task itself was given, not only what the API stored.
    recorded = json.loads((airflow.record_dir / f"{run_id}.json").read_text())
    assert recorded == payload
    assert recorded["model"] == "credit-risk"
    assert recorded["window"] == {"start": "2025-12-31T23:00:00Z", "end": "2026-01-01T00:00:00Z"}
    assert [f["name"] for f in recorded["features"]] == ["income", "debt", "age", "zip"]

    # A re-sent event (a retry after a lost answer) reuses the run id: Airflow answers 409
    # and starts nothing, so a 409 from an airflow target means "already delivered".
    again = send(render_retrain_request(event, target, headers=headers))
    assert again.status == 409, again.body
    runs = airflow.api("GET", f"/dags/{AIRFLOW_DAG_ID}/dagRuns?limit=100", token).json()
    assert [r["dag_run_id"] for r in runs["dag_runs"]].count(run_id) == 1

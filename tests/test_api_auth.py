"""Authenticated HTTP writes (monitor/http/app.py, ``http`` in monitor/config/service.py).

Every test that talks HTTP serves the real app with uvicorn on a free
127.0.0.1 port (:func:`monitor.http.app.serve`) and sends real requests with
httpx2, on a real SQLite store; ``driftline run`` is started as a real process.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import orjson
import pytest
from prometheus_client import CollectorRegistry

from monitor.config.service import ConfigError, ServiceConfig, is_loopback_host
from monitor.http.app import create_app
from monitor.http.server import ApiServer, serve
from monitor.metrics import Metrics
from monitor.service.run import Service
from monitor.store import Store
from tests import servers

TOKEN = "dl-test-token-7fQx2Lp9Vw"  # searched for in logs and output: it must never appear
TOKEN_ENV = "DRIFTLINE_TEST_API_TOKEN"
# A reference file of the test model: two features and the model's score.
CSV = b"age,region,prediction\n" + b"".join(
    f"{20 + i % 50},{'EU' if i % 3 else 'US'},{i % 10 / 10}\n".encode() for i in range(200)
)


def make_config(bootstrap: str = "127.0.0.1:9", **http: Any) -> ServiceConfig:
    return ServiceConfig.model_validate(
        {
            "broker": {"bootstrap_servers": [bootstrap]},
            "topics": {"predictions": "preds", "labels": "labs", "dead_letter": "dead"},
            "http": http,
            "models": [{"name": "credit"}],
        }
    )


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    return TOKEN


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.connect(f"sqlite:///{tmp_path / 'api.db'}")
    yield store
    store.close()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def running(store: Store, registry: CollectorRegistry) -> Iterator[Any]:
    """``running(config)`` serves the app of ``config`` on 127.0.0.1 and returns a client."""
    started: list[tuple[ApiServer, httpx2.Client]] = []

    def start(config: ServiceConfig, **options: Any) -> httpx2.Client:
        options.setdefault("broker_check", lambda: None)
        # The first app counts in the test's registry; later ones need their own.
        own = registry if not started else CollectorRegistry()
        app = create_app(config, store, own, Metrics(own), **options)
        server = serve(app, "127.0.0.1", 0, access_log=True)
        client = httpx2.Client(base_url=server.url, timeout=10)
        started.append((server, client))
        return client

    yield start
    for server, client in started:
        client.close()
        server.stop()


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def upload(client: httpx2.Client, headers: dict[str, str] | None = None) -> httpx2.Response:
    return client.post(
        "/api/models/credit/reference", files={"file": ("train.csv", CSV)}, headers=headers
    )


def invalid_records(registry: CollectorRegistry) -> float:
    value = registry.get_sample_value(
        "driftline_records_invalid_total", {"model": "credit", "reason": "missing_field"}
    )
    return value or 0.0


MALFORMED = [
    pytest.param({}, id="no-header"),
    pytest.param({"Authorization": ""}, id="empty"),
    pytest.param({"Authorization": "Bearer"}, id="no-token"),
    pytest.param({"Authorization": f"Basic {TOKEN}"}, id="basic-scheme"),
    pytest.param({"Authorization": f"Bearer{TOKEN}"}, id="no-space"),
    pytest.param({"X-Api-Token": TOKEN}, id="other-header"),
]
WRONG = [
    pytest.param("nope", id="other"),
    pytest.param(TOKEN[:-1], id="prefix"),
    pytest.param(TOKEN + "x", id="longer"),
    pytest.param(TOKEN.upper(), id="case"),
]


# --- writes ----------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("headers", MALFORMED)
def test_a_write_without_a_token_is_401(
    running: Any, token: str, store: Store, registry: CollectorRegistry, headers: dict[str, str]
) -> None:
    client = running(make_config(write_token_env=TOKEN_ENV))
    for response in (
        upload(client, headers),
        client.post("/api/records", json={"model": "credit"}, headers=headers),
    ):
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "Authorization: Bearer" in response.json()["detail"]
    assert store.latest_profile("credit") is None  # nothing written
    assert invalid_records(registry) == 0  # the body was never looked at


@pytest.mark.integration
@pytest.mark.parametrize("wrong", WRONG)
def test_a_write_with_a_wrong_token_is_403(
    running: Any, token: str, store: Store, registry: CollectorRegistry, wrong: str
) -> None:
    client = running(make_config(write_token_env=TOKEN_ENV))
    for response in (
        upload(client, bearer(wrong)),
        client.post("/api/records", json={"model": "credit"}, headers=bearer(wrong)),
    ):
        assert response.status_code == 403, response.text
        assert "WWW-Authenticate" not in response.headers
        assert response.json() == {"detail": "the bearer token is not valid"}
    assert store.latest_profile("credit") is None
    assert invalid_records(registry) == 0


@pytest.mark.integration
def test_a_write_with_the_token_takes_effect(
    running: Any, token: str, store: Store, registry: CollectorRegistry
) -> None:
    client = running(make_config(write_token_env=TOKEN_ENV))
    response = upload(client, bearer(token))
    assert response.status_code == 201, response.text
    assert response.json()["version"] == 1
    stored = store.latest_profile("credit")
    assert stored is not None
    assert stored[0] == 1
    [model] = client.get("/api/models").json()
    assert model["profile_version"] == 1
    # The scheme is case-insensitive (RFC 7235).
    assert upload(client, {"Authorization": f"bearer {token}"}).json()["version"] == 2

    # Records with the token are validated and counted (a broker is not needed to reject
    # an invalid one; test_records_with_the_token_reach_the_real_broker produces valid ones).
    response = client.post("/api/records", json={"model": "credit"}, headers=bearer(token))
    assert response.status_code == 422
    assert response.json()["rejected"][0]["reason"] == "missing_field"
    assert invalid_records(registry) == 1


@pytest.mark.integration
def test_no_token_hides_which_models_exist(running: Any, token: str) -> None:
    client = running(make_config(write_token_env=TOKEN_ENV))
    response = client.post("/api/models/ghost/reference", files={"file": ("t.csv", CSV)})
    assert response.status_code == 401  # not 404: the caller learns nothing
    assert client.post("/api/models/ghost/reference", headers=bearer("x")).status_code == 403
    response = client.post(
        "/api/models/ghost/reference", files={"file": ("t.csv", CSV)}, headers=bearer(token)
    )
    assert response.status_code == 404


@pytest.mark.integration
def test_writes_on_loopback_without_a_token_are_open_with_a_warning(
    running: Any, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="monitor.http.app"):
        client = running(make_config())  # 127.0.0.1, no write_token_env
    [warning] = [r for r in caplog.records if r.name == "monitor.http.app"]
    assert warning.levelno == logging.WARNING
    assert "http.write_token_env" in warning.getMessage()
    assert "\n" not in warning.getMessage()
    assert upload(client).status_code == 201
    assert upload(client, bearer("anything")).status_code == 201  # no token to check against
    assert store.latest_profile("credit") is not None


@pytest.mark.integration
def test_writes_can_be_disabled(running: Any, token: str, store: Store) -> None:
    # Disabled writes need no token, even beyond loopback.
    assert ServiceConfig.model_validate(
        {"http": {"host": "0.0.0.0", "writes": "disabled"}, "models": [{"name": "a"}]}
    )
    for config in (make_config(writes="disabled"), make_config(writes=False)):
        client = running(config)
        for headers in ({}, bearer(token)):
            response = upload(client, headers)
            assert response.status_code == 403
            assert "http.writes: disabled" in response.json()["detail"]
            response = client.post("/api/records", json={"model": "credit"}, headers=headers)
            assert response.status_code == 403
        assert client.get("/api/models").status_code == 200
    # With a token configured too, the token does not turn writes back on.
    client = running(make_config(write_token_env=TOKEN_ENV, writes="disabled"))
    assert upload(client, bearer(token)).status_code == 403
    assert store.latest_profile("credit") is None


# --- reads -----------------------------------------------------------------------------------


OPEN_ALWAYS = ("/healthz", "/readyz", "/openapi.json", "/docs")
READS = ("/api/models", "/api/models/credit/windows", "/metrics")


@pytest.mark.integration
def test_reads_are_open_by_default(running: Any, token: str) -> None:
    client = running(make_config(write_token_env=TOKEN_ENV))
    for path in (*OPEN_ALWAYS, *READS):
        assert client.get(path).status_code == 200, path
        assert client.get(path, headers=bearer("wrong")).status_code == 200, path


@pytest.mark.integration
def test_reads_need_the_token_when_configured(running: Any, token: str) -> None:
    client = running(make_config(write_token_env=TOKEN_ENV, auth_reads=True))
    for path in READS:
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert client.get(path, headers={"Authorization": "Basic x"}).status_code == 401, path
        assert client.get(path, headers=bearer("wrong")).status_code == 403, path
        assert client.get(path, headers=bearer(token)).status_code == 200, path
    assert "driftline_" in client.get("/metrics", headers=bearer(token)).text
    for path in OPEN_ALWAYS:  # probes and the schema stay open
        assert client.get(path).status_code == 200, path
    assert upload(client, bearer(token)).status_code == 201


@pytest.mark.integration
def test_openapi_declares_the_bearer_scheme(running: Any, token: str) -> None:
    def security(client: httpx2.Client) -> dict[tuple[str, str], Any]:
        schema = client.get("/openapi.json").json()
        assert schema["components"]["securitySchemes"] == {
            "bearerToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "The token held by the environment variable named in "
                "http.write_token_env.",
            }
        }
        return {
            (method, path): operation.get("security")
            for path, methods in schema["paths"].items()
            for method, operation in methods.items()
        }

    writes = {
        ("post", "/api/records"),
        ("post", "/api/models/{model}/reference"),
        ("post", "/api/events/{event_id}/redeliver"),
    }
    reads = {
        ("get", "/api/models"),
        ("get", "/api/models/{model}/windows"),
        ("get", "/metrics"),
        ("get", "/api/alerts"),
        ("get", "/api/events"),
    }
    default = security(running(make_config(write_token_env=TOKEN_ENV)))
    assert {key for key, value in default.items() if value} == writes
    assert all(default[key] == [{"bearerToken": []}] for key in writes)
    closed = security(running(make_config(write_token_env=TOKEN_ENV, auth_reads=True)))
    assert {key for key, value in closed.items() if value} == writes | reads
    schema = running(make_config(write_token_env=TOKEN_ENV)).get("/openapi.json").json()
    assert {"401", "403"} <= set(schema["paths"]["/api/records"]["post"]["responses"])


# --- configuration and start-up ------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("::ffff:10.0.0.1", False),
        ("monitor.internal", False),
    ],
)
def test_open_writes_are_refused_beyond_loopback(tmp_path: Path, host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback
    path = tmp_path / "service.yaml"
    path.write_text(f"http: {{host: '{host}'}}\nmodels: [{{name: a}}]\n")
    if loopback:
        assert ServiceConfig.load(path).http.host == host
        return
    with pytest.raises(ConfigError) as caught:
        ServiceConfig.load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: http: ")
    assert f"host {host!r} is not a loopback address" in message
    assert "write_token_env" in message
    assert "writes: disabled" in message
    for fix in ("write_token_env: API_TOKEN", "writes: disabled"):
        path.write_text(f"http: {{host: '{host}', {fix}}}\nmodels: [{{name: a}}]\n")
        assert ServiceConfig.load(path).http.host == host


def test_auth_reads_needs_a_token(tmp_path: Path) -> None:
    path = tmp_path / "service.yaml"
    path.write_text("http: {auth_reads: true}\nmodels: [{name: a}]\n")
    with pytest.raises(ConfigError, match=r"auth_reads: true needs write_token_env"):
        ServiceConfig.load(path)


@pytest.mark.parametrize(
    ("http", "field"),
    [
        (f"{{write_token: {TOKEN}}}", "http.write_token"),
        (f"{{token: {TOKEN}}}", "http.token"),
        (f"{{write_token_env: {TOKEN}}}", "http.write_token_env"),  # the value, not a name
    ],
)
def test_a_literal_token_in_the_file_is_rejected_without_echoing_it(
    tmp_path: Path, http: str, field: str
) -> None:
    path = tmp_path / "service.yaml"
    path.write_text(f"http: {http}\nmodels: [{{name: a}}]\n")
    with pytest.raises(ConfigError) as caught:
        ServiceConfig.load(path)
    message = str(caught.value)
    assert f"{path}: {field}: " in message
    assert "value not shown" in message
    assert TOKEN not in message
    assert TOKEN.lower() not in message


def test_an_unset_token_variable_stops_the_service_before_it_connects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    database = tmp_path / "never.db"
    config = ServiceConfig.model_validate(
        {
            "database": {"url": f"sqlite:///{database}"},
            "http": {"host": "0.0.0.0", "write_token_env": TOKEN_ENV},
            "models": [{"name": "credit"}],
        }
    )
    expected = rf"http\.write_token_env: environment variable {TOKEN_ENV} is not set"
    with pytest.raises(ConfigError, match=expected):
        Service(config, registry=CollectorRegistry())
    assert not database.exists()  # refused before the store was opened
    monkeypatch.setenv(TOKEN_ENV, "")
    with pytest.raises(ConfigError, match=f"{TOKEN_ENV} is empty"):
        config.http_write_token()


@pytest.mark.integration
def test_serve_refuses_open_writes_beyond_loopback(
    store: Store, registry: CollectorRegistry
) -> None:
    app = create_app(make_config(), store, registry, Metrics(registry), broker_check=lambda: None)
    port = servers.free_port()
    with pytest.raises(ConfigError, match=r"refusing to serve the HTTP API on 0\.0\.0\.0"):
        serve(app, "0.0.0.0", port)
    assert not servers.port_open("127.0.0.1", port)


def driftline(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("driftline")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "monitor.cli"]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE")}
    return {**env, **extra}


def service_yaml(tmp_path: Path, http: str) -> tuple[Path, Path]:
    database = tmp_path / "monitor.db"
    path = tmp_path / "service.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            broker: {{bootstrap_servers: ["127.0.0.1:{servers.free_port()}"]}}
            database: {{url: "sqlite:///{database}"}}
            http: {http}
            models:
              - name: credit
            """
        )
    )
    return path, database


@pytest.mark.integration
def test_driftline_run_refuses_open_writes_beyond_loopback(tmp_path: Path) -> None:
    path, database = service_yaml(tmp_path, "{host: 0.0.0.0, port: 0}")
    result = driftline("run", "--config", str(path), env=clean_env())
    assert result.returncode == 2, result
    assert "host '0.0.0.0' is not a loopback address" in result.stderr
    assert "write_token_env" in result.stderr
    assert not database.exists()  # nothing was connected


@pytest.mark.integration
def test_driftline_run_refuses_an_unset_token_variable(tmp_path: Path) -> None:
    path, database = service_yaml(
        tmp_path, f"{{host: 0.0.0.0, port: 0, write_token_env: {TOKEN_ENV}}}"
    )
    result = driftline("run", "--config", str(path), env=clean_env())
    assert result.returncode == 2, result
    assert f"environment variable {TOKEN_ENV} is not set" in " ".join(result.stderr.split())
    assert not database.exists()
    # The production example names its token variable and refuses to start without it.
    production = Path(__file__).resolve().parents[1] / "config" / "service-production.yaml"
    result = driftline("run", "--config", str(production), env=clean_env())
    assert result.returncode == 2, result
    assert "DRIFTLINE_API_TOKEN is not set" in " ".join(result.stderr.split())


@pytest.mark.integration
def test_driftline_run_never_prints_the_token(tmp_path: Path) -> None:
    # The token is read, the database opened, and the start fails later (no reference).
    path, database = service_yaml(
        tmp_path, f"{{host: 0.0.0.0, port: 0, write_token_env: {TOKEN_ENV}}}"
    )
    result = driftline(
        "run", "--config", str(path), "--log-level", "DEBUG", env=clean_env(**{TOKEN_ENV: TOKEN})
    )
    assert result.returncode == 2, result
    assert "has no reference profile" in result.stderr
    assert database.exists()  # it got past the token check
    assert TOKEN not in result.stdout + result.stderr


# --- secrecy ---------------------------------------------------------------------------------


@pytest.mark.integration
def test_the_token_never_appears_in_logs(
    running: Any,
    token: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    client = running(make_config(write_token_env=TOKEN_ENV, auth_reads=True))
    assert upload(client, bearer(token)).status_code == 201
    for value in (TOKEN + "x", TOKEN[:-1], TOKEN.upper()):
        response = upload(client, bearer(value))
        assert response.status_code == 403
        assert value not in response.text
    assert upload(client).status_code == 401
    assert (
        client.post("/api/records", content=b"not json", headers=bearer(token)).status_code == 400
    )
    assert client.get("/api/models", headers=bearer(token)).status_code == 200
    assert client.get("/metrics", headers=bearer(token + "!")).status_code == 403
    assert client.get("/readyz").status_code == 200
    assert TOKEN not in repr(client.get("/openapi.json").text)
    out, err = capfd.readouterr()
    assert caplog.records  # uvicorn's access log, at least, was captured
    logged = caplog.text + out + err
    assert TOKEN not in logged
    assert TOKEN.upper() not in logged
    assert TOKEN[:-1] not in logged


def test_the_app_state_holds_no_token(
    store: Store, registry: CollectorRegistry, token: str
) -> None:
    app = create_app(
        make_config(write_token_env=TOKEN_ENV),
        store,
        registry,
        Metrics(registry),
        broker_check=lambda: None,
    )
    state = app.state.driftline
    assert TOKEN not in repr(state)
    assert all(TOKEN not in repr(value) for value in vars(state).values())


# --- with a real broker ----------------------------------------------------------------------


@pytest.mark.integration
def test_records_with_the_token_reach_the_real_broker(
    kafka_broker: Any, store: Store, registry: CollectorRegistry, token: str
) -> None:
    from tests.test_api import record

    topic = servers.unique_name("preds")
    config = ServiceConfig.model_validate(
        {
            "broker": {"bootstrap_servers": [kafka_broker.bootstrap]},
            "topics": {"predictions": topic, "labels": servers.unique_name("labs")},
            "http": {"write_token_env": TOKEN_ENV},
            "models": [{"name": "credit"}],
        }
    )
    app = create_app(config, store, registry, Metrics(registry), broker_check=lambda: None)
    server = serve(app, "127.0.0.1", 0)
    try:
        with httpx2.Client(base_url=server.url, timeout=30) as client:
            assert client.post("/api/records", json=record()).status_code == 401
            assert (
                client.post("/api/records", json=record(), headers=bearer("x")).status_code == 403
            )
            response = client.post("/api/records", json=record(), headers=bearer(token))
            assert response.status_code == 200, response.text
            assert response.json() == {"accepted": 1, "rejected": []}
    finally:
        server.stop()
    [produced] = servers.read_topic(kafka_broker.bootstrap, topic, 1, timeout=10)
    assert orjson.loads(produced.value) == record()

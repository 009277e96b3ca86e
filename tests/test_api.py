"""The HTTP API (monitor/http/app.py) on a real SQLite store, a fresh registry and the real broker.

Unit tests inject a fake producer and broker check; the ``integration`` ones
produce to the Tansu broker and read the topic back, check readiness against
it, and serve the app over real HTTP with uvicorn.
"""

from __future__ import annotations

import io
import json
import math
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from monitor.config.service import ServiceConfig
from monitor.http.app import create_app
from monitor.http.health import (
    BrokerUnreachable,
    CachedCheck,
    kafka_broker_check,
    kafka_producer_factory,
)
from monitor.http.server import serve
from monitor.metrics import CONTENT_TYPE, Metrics
from monitor.store import FeatureResultRow, Store, WindowSummaryRow, create_engine
from tests import servers

T0 = 1_800_000_000.0


class Sent:
    """A fake producer's completed write."""

    def get(self, timeout: float | None = None) -> None:
        return None


class FakeProducer:
    """Records what would have gone to Kafka."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, int]] = []
        self.closed = False

    def send(self, topic: str, *, value: bytes, key: bytes | None, timestamp_ms: int) -> Sent:
        self.sent.append((topic, key, value, timestamp_ms))
        return Sent()

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


def make_config(bootstrap: str = "127.0.0.1:9", **topics: str) -> ServiceConfig:
    return ServiceConfig.model_validate(
        {
            "broker": {"bootstrap_servers": [bootstrap]},
            "topics": topics or {"predictions": "preds", "labels": "labs", "dead_letter": "dead"},
            "models": [
                {"name": "credit", "window": {"size": "1m", "hop": "30s"}},
                {"name": "fraud", "prediction": {"field": "label"}},
            ],
        }
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.connect(f"sqlite:///{tmp_path / 'api.db'}")
    yield store
    store.close()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def producer() -> FakeProducer:
    return FakeProducer()


def build(
    store: Store,
    registry: CollectorRegistry,
    config: ServiceConfig | None = None,
    **options: Any,
) -> FastAPI:
    options.setdefault("broker_check", lambda: None)
    return create_app(config or make_config(), store, registry, Metrics(registry), **options)


@pytest.fixture
def client(
    store: Store, registry: CollectorRegistry, producer: FakeProducer
) -> Iterator[TestClient]:
    app = build(store, registry, producer_factory=lambda: producer, clock=lambda: T0)
    with TestClient(app) as client:
        yield client
    # The producer is created at the first valid record and closed by the lifespan at shutdown.
    assert producer.closed == bool(producer.sent)


def record(model: str = "credit", request_id: str | None = "r1", **extra: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "model": model,
        "timestamp": "2027-01-15T08:00:00Z",
        "features": {"age": 42, "region": "EU"},
        "prediction": {"score": 0.8},
        **extra,
    }
    if request_id is not None:
        value["request_id"] = request_id
    return value


def invalid_count(registry: CollectorRegistry, model: str, reason: str) -> float | None:
    return registry.get_sample_value(
        "driftline_records_invalid_total", {"model": model, "reason": reason}
    )


def add_window(store: Store, model: str, start: float, drift: bool = False) -> None:
    summary = WindowSummaryRow(
        model=model,
        window_start=start,
        window_end=start + 60,
        rows=500,
        status="ok",
        dataset_drift=drift,
        drift_share=0.5 if drift else 0.0,
        prediction_drift=None,
        details={"profile_version": 1, "nan": math.nan},
    )
    features = [
        FeatureResultRow(
            model=model,
            window_start=start,
            feature=name,
            method="ks",
            kind="numeric",
            statistic=0.3 if drift else 0.01,
            p_value=1e-9 if drift else math.nan,
            threshold=0.05,
            drift=drift,
            effect_size=None,
            missing_share=0.0,
            status="ok",
        )
        for name in ("age", "income")
    ]
    store.finish_window(model, start, summary, features)


# --- operations ------------------------------------------------------------------------------


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_ok(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_readyz_broker_down(store: Store, registry: CollectorRegistry) -> None:
    def down() -> None:
        raise ConnectionRefusedError("connection refused")

    with TestClient(build(store, registry, broker_check=down)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "database": "ok",
        "broker": "unreachable: ConnectionRefusedError: connection refused",
    }


def test_readyz_database_down_masks_the_password(registry: CollectorRegistry) -> None:
    # Nothing listens on port 9: the connection is refused at once.
    store = Store(create_engine("postgresql+psycopg://monitor:s3cret@127.0.0.1:9/driftline"))
    try:
        with TestClient(build(store, registry)) as client:
            response = client.get("/readyz")
    finally:
        store.close()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["broker"] == "ok"
    assert body["database"].startswith("unreachable: ")
    assert "s3cret" not in response.text


def test_a_database_outage_is_503_on_reads(registry: CollectorRegistry, tmp_path: Path) -> None:
    store = Store(create_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}"))
    with TestClient(build(store, registry)) as client:
        response = client.get("/api/models")
    assert response.status_code == 503
    assert "database" in response.json()["detail"]


def test_cached_check_reuses_results_for_ttl() -> None:
    now = [0.0]
    outcomes = [None, RuntimeError("down"), None]
    calls = []

    def check() -> None:
        calls.append(now[0])
        outcome = outcomes[len(calls) - 1]
        if outcome is not None:
            raise outcome

    cached = CachedCheck(check, ttl_s=5.0, clock=lambda: now[0])
    cached()
    now[0] = 4.9
    cached()
    now[0] = 5.0
    with pytest.raises(BrokerUnreachable, match="down"):
        cached()
    now[0] = 9.0
    with pytest.raises(BrokerUnreachable, match="down"):  # the failure is cached too
        cached()
    now[0] = 10.0
    cached()
    assert calls == [0.0, 5.0, 10.0]
    with pytest.raises(ValueError, match="ttl_s"):
        CachedCheck(check, ttl_s=-1, clock=time.monotonic)


def test_metrics_exposition(client: TestClient, registry: CollectorRegistry) -> None:
    client.post("/api/records", json={"model": "credit"})  # one invalid record
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE
    assert "# TYPE driftline_records_total counter" in response.text
    assert (
        'driftline_records_invalid_total{model="credit",reason="missing_field"} 1.0'
        in response.text
    )


def test_openapi_lists_every_endpoint_with_response_models(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {path: sorted(methods) for path, methods in schema["paths"].items()} == {
        "/healthz": ["get"],
        "/readyz": ["get"],
        "/metrics": ["get"],
        "/api/models": ["get"],
        "/api/models/{model}/windows": ["get"],
        "/api/records": ["post"],
        "/api/models/{model}/reference": ["post"],
        "/api/alerts": ["get"],
        "/api/events": ["get"],
        "/api/events/{event_id}/redeliver": ["post"],
    }
    components = schema["components"]["schemas"]
    for name in (
        "Health",
        "Readiness",
        "ModelInfo",
        "WindowPage",
        "IngestResult",
        "Incident",
        "AlertEventOut",
        "Redelivered",
    ):
        assert name in components, name
    records = schema["paths"]["/api/records"]["post"]
    assert set(records["requestBody"]["content"]) == {"application/json", "application/x-ndjson"}
    assert {"200", "207", "400", "413", "422", "503"} <= set(records["responses"])
    reference = schema["paths"]["/api/models/{model}/reference"]["post"]
    assert "multipart/form-data" in reference["requestBody"]["content"]
    assert reference["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ReferenceResult"
    }
    assert client.get("/docs").status_code == 200


# --- models and windows ----------------------------------------------------------------------


def test_models_before_and_after_results(client: TestClient, store: Store) -> None:
    before = client.get("/api/models").json()
    assert [m["name"] for m in before] == ["credit", "fraud"]
    assert before[0] == {
        "name": "credit",
        "window": {"size_s": 60.0, "hop_s": 30.0, "allowed_lateness_s": 300.0, "min_records": 100},
        "prediction": {"field": "score", "kind": "numeric"},
        "profile_version": None,
        "last_window": None,
    }
    assert before[1]["prediction"] == {"field": "label", "kind": "categorical"}

    store.save_profile("credit", b"v1")
    store.save_profile("credit", b"v2")
    add_window(store, "credit", T0)
    add_window(store, "credit", T0 + 60, drift=True)
    credit = client.get("/api/models").json()[0]
    assert credit["profile_version"] == 2
    assert credit["last_window"] == {
        "window_start": T0 + 60,
        "window_end": T0 + 120,
        "start": "2027-01-15T08:01:00Z",
        "end": "2027-01-15T08:02:00Z",
        "rows": 500,
        "status": "ok",
        "dataset_drift": True,
        "drift_share": 0.5,
    }


def test_windows_paginate_newest_first(client: TestClient, store: Store) -> None:
    starts = [T0 + 60 * i for i in range(5)]
    for start in starts:
        add_window(store, "credit", start, drift=start == starts[-1])
    add_window(store, "fraud", T0)

    seen: list[float] = []
    pages = 0
    cursor: float | None = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["before"] = cursor
        page = client.get("/api/models/credit/windows", params=params).json()
        pages += 1
        assert page["model"] == "credit"
        seen += [w["window_start"] for w in page["windows"]]
        cursor = page["next"]
        if cursor is None:
            break
        assert cursor == page["windows"][-1]["window_start"]
    assert (seen, pages) == (sorted(starts, reverse=True), 3)

    newest = client.get("/api/models/credit/windows", params={"limit": 1}).json()["windows"][0]
    assert newest["dataset_drift"] is True
    assert newest["details"] == {"profile_version": 1, "nan": None}  # NaN is not JSON
    assert [(f["feature"], f["method"], f["drift"]) for f in newest["features"]] == [
        ("age", "ks", True),
        ("income", "ks", True),
    ]
    assert newest["features"][0]["p_value"] == 1e-9
    oldest = client.get("/api/models/credit/windows", params={"before": starts[1]}).json()
    assert [w["window_start"] for w in oldest["windows"]] == [starts[0]]
    assert oldest["windows"][0]["features"][0]["p_value"] is None
    assert oldest["next"] is None
    exact = client.get("/api/models/credit/windows", params={"limit": 5}).json()
    assert (len(exact["windows"]), exact["next"]) == (5, None)


def test_windows_of_unknown_model_is_404(client: TestClient) -> None:
    response = client.get("/api/models/nope/windows")
    assert response.status_code == 404
    assert response.json() == {"detail": "unknown model 'nope'; configured models: credit, fraud"}


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 501}, {"before": "nan"}])
def test_windows_query_is_validated(client: TestClient, params: dict[str, Any]) -> None:
    response = client.get("/api/models/credit/windows", params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "query"


def test_windows_limit_bounds_are_accepted(client: TestClient) -> None:
    for limit in (1, 500):
        response = client.get("/api/models/credit/windows", params={"limit": limit})
        assert response.status_code == 200
        assert response.json() == {"model": "credit", "windows": [], "next": None}


# --- record ingest (fake producer) -----------------------------------------------------------


def test_a_mixed_batch_produces_only_valid_records(
    client: TestClient, producer: FakeProducer, registry: CollectorRegistry
) -> None:
    batch = [
        record(request_id="a"),
        record(model="ghost"),
        record(features=[1, 2]),
        42,
        record(request_id=None, timestamp=None),
    ]
    response = client.post("/api/records", json=batch)
    assert response.status_code == 207
    body = response.json()
    assert body["accepted"] == 2
    assert [(r["index"], r["reason"], r["field"]) for r in body["rejected"]] == [
        (1, "unknown_model", "model"),
        (2, "wrong_type", "features"),
        (3, "not_an_object", None),
    ]
    assert body["rejected"][1]["detail"] == "features must be an object, got an array."
    assert [(topic, key, orjson.loads(value)) for topic, key, value, _ in producer.sent] == [
        ("preds", b"a", batch[0]),
        ("preds", None, batch[4]),
    ]
    # Records without timestamp take the arrival time from the Kafka timestamp.
    assert {sent[3] for sent in producer.sent} == {int(T0 * 1000)}
    assert invalid_count(registry, "unknown", "unknown_model") == 1
    assert invalid_count(registry, "credit", "wrong_type") == 1
    assert invalid_count(registry, "unknown", "not_an_object") == 1
    assert registry.get_sample_value("driftline_records_total", {"model": "credit"}) is None


def test_a_single_record_is_produced_byte_for_byte(
    client: TestClient, producer: FakeProducer
) -> None:
    raw = b'{"model": "fraud", "request_id": 7, "features": {"x": NaN}, "prediction": "ok"}'
    response = client.post("/api/records", content=raw)
    assert (response.status_code, response.json()) == (200, {"accepted": 1, "rejected": []})
    assert producer.sent == [("preds", b"7", raw, int(T0 * 1000))]


def test_json_lines_report_line_numbers(client: TestClient, producer: FakeProducer) -> None:
    lines = [json.dumps(record(request_id="a")), "", "{broken", json.dumps(record(request_id="b"))]
    response = client.post(
        "/api/records",
        content="\r\n".join(lines) + "\n",
        headers={"content-type": "application/x-ndjson"},
    )
    assert response.status_code == 207
    assert [(r["index"], r["reason"]) for r in response.json()["rejected"]] == [
        (2, "malformed_json")
    ]
    assert [key for _, key, _, _ in producer.sent] == [b"a", b"b"]
    assert [value for _, _, value, _ in producer.sent] == [lines[0].encode(), lines[3].encode()]


def test_labels_go_to_the_labels_topic(client: TestClient, producer: FakeProducer) -> None:
    labels = [
        {"model": "credit", "request_id": "a", "label": "approve"},
        {"model": "credit", "label": "deny"},
    ]
    response = client.post("/api/records", params={"kind": "label"}, json=labels)
    assert response.status_code == 207
    assert response.json()["rejected"][0]["reason"] == "missing_field"
    assert [(topic, key) for topic, key, _, _ in producer.sent] == [("labs", b"a")]
    assert client.post("/api/records", params={"kind": "nope"}, json=labels).status_code == 422


def test_all_invalid_is_422_and_nothing_is_produced(
    client: TestClient, producer: FakeProducer
) -> None:
    response = client.post("/api/records", json=[record(model="ghost"), {"model": "credit"}])
    assert response.status_code == 422
    assert response.json()["accepted"] == 0
    assert producer.sent == []


def test_an_empty_array_accepts_nothing(client: TestClient) -> None:
    response = client.post("/api/records", json=[])
    assert (response.status_code, response.json()) == (200, {"accepted": 0, "rejected": []})


@pytest.mark.parametrize(
    ("content", "content_type", "message"),
    [
        (b"{not json", "application/json", "not valid JSON"),
        (b'{"a": 1}\n{"b": 2}', "application/json", "application/x-ndjson"),
        (b"42", "application/json", "must be a JSON object, a JSON array"),
        (b'"text"', "text/plain", "must be a JSON object, a JSON array"),
        (b"  \n", "application/json", "empty"),
        (b"\n\n", "application/x-ndjson", "empty"),
    ],
)
def test_an_unusable_body_is_400(
    client: TestClient, producer: FakeProducer, content: bytes, content_type: str, message: str
) -> None:
    response = client.post("/api/records", content=content, headers={"content-type": content_type})
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert producer.sent == []


def test_bodies_and_records_over_the_limits(store: Store, registry: CollectorRegistry) -> None:
    config = make_config()
    config = config.model_copy(
        update={"consumer": config.consumer.model_copy(update={"max_record_bytes": 200})}
    )
    producer = FakeProducer()
    app = build(store, registry, config, producer_factory=lambda: producer, max_body_bytes=1000)
    with TestClient(app) as client:
        response = client.post("/api/records", json=[record()] * 20)
        assert response.status_code == 413
        assert response.json() == {"detail": "the request body exceeds the limit of 1000 bytes"}

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
            yield b"["
            for _ in range(20):
                yield json.dumps(record()).encode() + b","
            yield b"{}]"

        assert client.post("/api/records", content=chunks()).status_code == 413
        big = record(features={"note": "x" * 300})
        response = client.post("/api/records", json=[big, record()])
        assert response.status_code == 207
        assert response.json()["rejected"][0]["reason"] == "oversized"
    assert invalid_count(registry, "unknown", "oversized") == 1
    assert len(producer.sent) == 1
    default = create_app(make_config(), store, CollectorRegistry(), Metrics(CollectorRegistry()))
    assert default.state.driftline.max_body_bytes == 16 << 20


def test_a_broker_failure_is_503_and_retried_with_a_new_producer(
    store: Store, registry: CollectorRegistry
) -> None:
    attempts: list[FakeProducer] = []

    def factory() -> FakeProducer:
        if not attempts:
            attempts.append(FakeProducer())
            raise ConnectionError("no broker at sasl://user:hunter2@broker:9092")
        attempts.append(FakeProducer())
        return attempts[-1]

    with TestClient(build(store, registry, producer_factory=factory)) as client:
        response = client.post("/api/records", json=[record(), {"model": "credit"}])
        assert response.status_code == 503
        rejected = response.json()["rejected"]
        assert [(r["index"], r["reason"]) for r in rejected] == [
            (0, "broker_unavailable"),
            (1, "missing_field"),
        ]
        assert "hunter2" not in response.text
        assert "***" in rejected[0]["detail"]
        assert client.post("/api/records", json=record()).status_code == 200
    assert len(attempts[1].sent) == 1
    # A record the broker did not take is not an invalid record.
    assert invalid_count(registry, "unknown", "broker_unavailable") is None


class FailingProducer(FakeProducer):
    """Raises ``errors[request_id]`` from ``send`` for the records it names."""

    def __init__(self, errors: dict[bytes | None, Exception]) -> None:
        super().__init__()
        self.errors = errors
        self.attempts = 0

    def send(self, topic: str, *, value: bytes, key: bytes | None, timestamp_ms: int) -> Sent:
        self.attempts += 1
        if key in self.errors:
            raise self.errors[key]
        return super().send(topic, value=value, key=key, timestamp_ms=timestamp_ms)


def test_a_record_too_large_for_the_producer_is_rejected_alone(
    store: Store, registry: CollectorRegistry
) -> None:
    from kafka.errors import MessageSizeTooLargeError

    producer = FailingProducer({b"big": MessageSizeTooLargeError("over max_request_size")})
    with TestClient(build(store, registry, producer_factory=lambda: producer)) as client:
        batch = [record(request_id="a"), record(request_id="big"), record(request_id="b")]
        response = client.post("/api/records", json=batch)
    assert response.status_code == 207
    assert [(r["index"], r["reason"]) for r in response.json()["rejected"]] == [(1, "oversized")]
    assert [key for _, key, _, _ in producer.sent] == [b"a", b"b"]
    assert invalid_count(registry, "credit", "oversized") == 1


def test_a_blocked_send_fails_the_rest_without_trying_them(
    store: Store, registry: CollectorRegistry
) -> None:
    from kafka.errors import KafkaTimeoutError

    producer = FailingProducer({b"a": KafkaTimeoutError("no metadata within max_block_ms")})
    with TestClient(build(store, registry, producer_factory=lambda: producer)) as client:
        batch = [record(request_id=key) for key in ("a", "b", "c")]
        response = client.post("/api/records", json=batch)
    assert response.status_code == 503
    rejected = response.json()["rejected"]
    assert [r["reason"] for r in rejected] == ["broker_unavailable"] * 3
    assert all("max_block_ms" in r["detail"] for r in rejected)
    assert producer.attempts == 1


# --- reference upload ------------------------------------------------------------------------


def reference_frame(rows: int = 200) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [20 + i % 50 for i in range(rows)],
            "income": [1000.0 * (i % 17) for i in range(rows)],
            "region": ["EU" if i % 3 else "US" for i in range(rows)],
            "prediction": [(i % 10) / 10 for i in range(rows)],
        }
    )


def test_reference_upload_in_every_format(client: TestClient, store: Store) -> None:
    frame = reference_frame()
    parquet = io.BytesIO()
    frame.to_parquet(parquet)
    uploads: list[dict[str, Any]] = [
        {"files": {"file": ("train.csv", frame.to_csv(index=False).encode(), "text/csv")}},
        {"files": {"file": ("train.parquet", parquet.getvalue(), "application/octet-stream")}},
        {
            "params": {"format": "jsonl"},
            "content": frame.to_json(orient="records", lines=True).encode(),
        },
        {
            "content": frame.to_csv(index=False).encode(),
            "headers": {"content-type": "text/csv"},
        },
    ]
    for version, upload in enumerate(uploads, start=1):
        response = client.post("/api/models/credit/reference", **upload)
        assert response.status_code == 201, response.text
        assert response.json() == {
            "model": "credit",
            "version": version,
            "columns": ["age", "income", "region", "prediction"],
            "rows": 200,
        }
    stored = store.latest_profile("credit")
    assert stored is not None
    assert stored[0] == 4
    assert client.get("/api/models").json()[0]["profile_version"] == 4


@pytest.mark.parametrize(
    ("upload", "message"),
    [
        (
            {"files": {"file": ("train.csv", b"", "text/csv")}},
            "cannot read reference file train.csv as csv",
        ),
        (
            {"files": {"file": ("train.parquet", b"not parquet", "application/octet-stream")}},
            "cannot read reference file train.parquet as parquet",
        ),
        ({"files": {"file": ("train.csv", b"a,b\n", "text/csv")}}, "train.csv has no rows"),
        ({"files": {"file": ("train.xlsx", b"a\n1\n", "application/vnd.ms-excel")}}, "format"),
        ({"content": b"a,b\n1,2\n"}, "cannot tell the format of the request body"),
        ({"data": {"other": "x"}, "files": {"nofile": ("a.csv", b"a\n1\n")}}, "named 'file'"),
    ],
)
def test_a_bad_reference_file_is_400(
    client: TestClient, store: Store, upload: dict[str, Any], message: str
) -> None:
    response = client.post("/api/models/credit/reference", **upload)
    assert response.status_code == 400, response.text
    assert message in response.json()["detail"]
    assert "driftline-upload" not in response.text  # no temporary paths in messages
    assert store.latest_profile("credit") is None


def test_reference_of_unknown_model_is_404(client: TestClient) -> None:
    response = client.post(
        "/api/models/nope/reference", files={"file": ("t.csv", b"a\n1\n", "text/csv")}
    )
    assert response.status_code == 404


def test_reference_over_the_limit_is_413(store: Store, registry: CollectorRegistry) -> None:
    with TestClient(build(store, registry, max_reference_bytes=100)) as client:
        csv = reference_frame().to_csv(index=False).encode()
        multipart = client.post("/api/models/credit/reference", files={"file": ("t.csv", csv)})
        raw = client.post("/api/models/credit/reference?format=csv", content=csv)
    assert (multipart.status_code, raw.status_code) == (413, 413)
    assert store.latest_profile("credit") is None


def test_create_app_validates_its_limits(store: Store, registry: CollectorRegistry) -> None:
    with pytest.raises(ValueError, match="max_body_bytes"):
        build(store, registry, max_body_bytes=0)
    with pytest.raises(ValueError, match="produce_timeout_s"):
        build(store, CollectorRegistry(), produce_timeout_s=0)


# --- real broker and real HTTP ---------------------------------------------------------------


@pytest.mark.integration
def test_records_reach_the_real_broker(
    kafka_broker: servers.Broker, store: Store, registry: CollectorRegistry
) -> None:
    topics = {
        "predictions": servers.unique_name("preds"),
        "labels": servers.unique_name("labels"),
        "dead_letter": servers.unique_name("dead"),
    }
    config = make_config(kafka_broker.bootstrap, **topics)
    app = create_app(
        config, store, registry, Metrics(registry), broker_check=kafka_broker_check(config)
    )
    predictions = [record(request_id=f"req-{i}") for i in range(5)]
    batch = [*predictions[:3], record(model="ghost"), *predictions[3:], {"model": "credit"}]
    labels = [{"model": "credit", "request_id": "req-0", "label": 1}, {"model": "fraud"}]
    with TestClient(app) as client:
        assert client.get("/readyz").json()["broker"] == "ok"
        response = client.post("/api/records", json=batch)
        assert response.status_code == 207
        assert response.json()["accepted"] == 5
        assert [r["index"] for r in response.json()["rejected"]] == [3, 6]
        response = client.post("/api/records", params={"kind": "label"}, json=labels)
        assert response.status_code == 207

    produced = servers.read_topic(kafka_broker.bootstrap, topics["predictions"], 5, timeout=10)
    assert sorted((m.key, orjson.loads(m.value)) for m in produced) == sorted(
        (p["request_id"].encode(), p) for p in predictions
    )
    [label] = servers.read_topic(kafka_broker.bootstrap, topics["labels"], 1, timeout=10)
    assert (label.key, orjson.loads(label.value)) == (b"req-0", labels[0])
    assert invalid_count(registry, "unknown", "unknown_model") == 1
    assert invalid_count(registry, "credit", "missing_field") == 1  # the prediction
    assert invalid_count(registry, "fraud", "missing_field") == 1  # the label


@pytest.mark.integration
def test_default_broker_check_against_a_real_and_a_missing_broker(
    kafka_broker: servers.Broker,
) -> None:
    kafka_broker_check(make_config(kafka_broker.bootstrap))()
    missing = make_config(f"127.0.0.1:{servers.free_port()}")
    with pytest.raises(BrokerUnreachable, match="bootstrap"):
        kafka_broker_check(missing, timeout_s=0.3)()


@pytest.mark.integration
def test_default_producer_factory_builds_a_kafka_producer(kafka_broker: servers.Broker) -> None:
    producer = kafka_producer_factory(make_config(kafka_broker.bootstrap))()
    try:
        assert producer.send(servers.unique_name("t"), value=b"{}", key=None, timestamp_ms=1).get(
            timeout=10
        )
    finally:
        producer.close(timeout=5)


@pytest.mark.integration
def test_serve_over_real_http(store: Store, registry: CollectorRegistry) -> None:
    producer = FakeProducer()
    port = servers.free_port()
    server = serve(build(store, registry, producer_factory=lambda: producer), "127.0.0.1", port)
    try:
        assert (server.port, server.url) == (port, f"http://127.0.0.1:{port}")
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as response:
            assert (response.status, json.load(response)) == (200, {"status": "ok"})
        request = urllib.request.Request(
            f"{server.url}/api/records", data=json.dumps(record()).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.load(response)["accepted"] == 1
    finally:
        server.stop()
    assert not server.thread.is_alive()
    assert producer.closed  # uvicorn ran the lifespan's shutdown
    assert not servers.port_open("127.0.0.1", port)


@pytest.mark.integration
def test_serve_reports_a_port_in_use(store: Store, registry: CollectorRegistry) -> None:
    first = serve(build(store, registry), "127.0.0.1", 0)
    try:
        assert first.port > 0
        with pytest.raises(OSError, match="could not listen"):
            serve(build(store, CollectorRegistry()), "127.0.0.1", first.port)
    finally:
        first.stop()

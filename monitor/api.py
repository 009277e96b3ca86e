"""The HTTP API: health, readiness, metrics, models and windows, record ingest, references.

:func:`create_app` builds a FastAPI application on the service's config,
store and metrics; :func:`serve` runs it with uvicorn in a background thread.
The OpenAPI description is at ``/openapi.json`` and interactive docs at
``/docs``.

========================================  ==============================================
``GET /healthz``                          the process is alive
``GET /readyz``                           the database and the broker answer (else 503)
``GET /metrics``                          Prometheus exposition of every ``driftline_*``
``GET /api/models``                       configured models, profile version, last window
``GET /api/models/{model}/windows``       evaluated windows, newest first, paginated
``POST /api/records``                     prediction (or ``?kind=label``) records to Kafka
``POST /api/models/{model}/reference``    a new reference profile from a data file
========================================  ==============================================

Decisions where the brief is silent
-----------------------------------
Authentication
    When the config names a token (``http.write_token_env``), both ``POST``
    endpoints need ``Authorization: Bearer <token>``: no header, another
    scheme or an empty token is 401 with ``WWW-Authenticate: Bearer``, a
    wrong token 403. The check runs before the body is read and before the
    model is looked up, so a refused request uploads nothing and learns no
    model names. Tokens are compared in constant time (SHA-256 digests of
    both with :func:`hmac.compare_digest`, so not even the length leaks) and
    never logged. ``http.auth_reads: true`` puts ``GET /api/...`` and
    ``/metrics`` behind the same token; ``/healthz``, ``/readyz``,
    ``/openapi.json`` and ``/docs`` always stay open (probes; the schema
    holds no data). ``http.writes: disabled`` answers both ``POST`` endpoints
    with 403 whatever the token. Writes without a token are open to anyone:
    :class:`~monitor.config.HttpSection` allows that only on a loopback host,
    :func:`create_app` logs a one-line warning and :func:`serve` refuses a
    non-loopback address.
Record ingest goes through Kafka
    ``POST /api/records`` validates each record exactly as the consumer does
    (:func:`~monitor.records.decode_prediction` or
    :func:`~monitor.records.decode_label`, then :func:`~monitor.records.route`)
    and produces the valid ones, byte for byte as validated, to the
    predictions or labels topic with key ``request_id``. Windows are built only
    by the consumer group, so HTTP records get the same exactly-once windows
    as any other. Invalid records are not produced; they are counted in
    ``driftline_records_invalid_total{model, reason}`` (model ``unknown``
    unless it is a configured one) and listed in the response. A record
    without ``timestamp`` gets the arrival time as its Kafka timestamp, which
    the consumer uses as its event time. ``driftline_records_total`` is not
    touched here: the consumer counts the records it windows.
Request bodies
    One JSON object, a JSON array of records, or JSON lines with
    ``Content-Type: application/x-ndjson`` (or ``application/jsonl``); every
    other content type is read as JSON, so ``curl -d @file.json`` works. In
    JSON lines, blank lines are skipped and ``index`` is the 0-based line
    number; in an array it is the position. The body may be at most
    ``max_body_bytes`` (default: 1000 records of ``consumer.max_record_bytes``,
    capped at :data:`DEFAULT_MAX_BODY_BYTES`), each record at most
    ``consumer.max_record_bytes``.
Ingest status codes
    200 every record accepted; 207 some accepted, some rejected; 422 none
    accepted because every record is invalid; 503 none accepted and the
    broker failed for some (reason ``broker_unavailable``, not counted as
    invalid: those records may be retried as they are); 400 the body is not
    JSON, not an object or array, or empty; 413 too large. Delivery is
    at-least-once: a record reported ``broker_unavailable`` after a timeout
    may still have been written, and a retry then duplicates it.
Readiness
    The database is pinged on every probe; the broker check (default: a
    metadata request with a short timeout, after one SASL login when the
    config uses SASL, so that refused credentials are reported as such) is
    cached for a few seconds, its failures too, so that frequent probes do
    not hammer the broker. Messages
    never hold passwords: URLs are masked with :func:`~monitor.store.mask_url`
    and the configured Kafka secrets are replaced by ``***``.
New references apply on restart
    ``POST /api/models/{model}/reference`` stores the next profile version;
    the running service keeps sketching on the profile it loaded at start
    until it is restarted. Swapping the profile of a running model would mix
    two bin layouts inside one window (each partition's partial is sketched on
    the profile it was started with), so it waits for a clean restart.
    For a model with ``performance_estimation`` the upload must hold the
    target and score columns: the fitted estimator is stored with the profile
    (400 naming the column if it cannot be fitted). A file whose prediction,
    target or score column is missing or ambiguous is refused with 422 and
    the message ``driftline reference build`` prints
    (:func:`~monitor.runtime.check_reference_columns`); nothing is stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import math
import re
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Protocol

import orjson
import uvicorn
from fastapi import FastAPI, HTTPException, Query, Request, Response, Security
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import MessageSizeTooLargeError
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import UploadFile

from monitor.config import ConfigError, ModelConfig, ServiceConfig, is_loopback_host
from monitor.kafka_security import KafkaAuthenticationError, check_kafka_credentials, uses_sasl
from monitor.metrics import CONTENT_TYPE, Metrics, render
from monitor.records import (
    InvalidReason,
    InvalidRecord,
    LabelRecord,
    PredictionRecord,
    decode_label,
    decode_prediction,
    route,
)
from monitor.runtime import (
    ReferenceColumnsError,
    StoredReference,
    build_reference,
    check_reference_columns,
)
from monitor.store import FeatureResultRow, Store, StoreError, WindowSummaryRow, mask_url
from monitor.tables import InputError, read_table

__all__ = [
    "BROKER_CHECK_TTL_S",
    "BROKER_UNAVAILABLE",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_REFERENCE_BYTES",
    "ApiServer",
    "BrokerCheck",
    "BrokerUnreachable",
    "CachedCheck",
    "ErrorDetail",
    "FeatureResult",
    "Health",
    "IngestResult",
    "LastWindow",
    "ModelInfo",
    "PredictionSettings",
    "Producer",
    "Readiness",
    "ReferenceResult",
    "Rejection",
    "SendResult",
    "Window",
    "WindowPage",
    "WindowSettings",
    "create_app",
    "kafka_broker_check",
    "kafka_producer_factory",
    "serve",
]

log = logging.getLogger(__name__)

#: Cap of a ``POST /api/records`` body unless ``max_body_bytes`` is given: 16 MiB.
DEFAULT_MAX_BODY_BYTES: Final = 16 << 20
#: Cap of an uploaded reference file unless ``max_reference_bytes`` is given: 512 MiB.
DEFAULT_MAX_REFERENCE_BYTES: Final = 512 << 20
#: How long the default broker check's result is reused, in seconds.
BROKER_CHECK_TTL_S: Final = 5.0

#: Rejection reason of a valid record the broker did not take (not an ``InvalidReason``).
BROKER_UNAVAILABLE: Final = "broker_unavailable"

_NDJSON_TYPES: Final = frozenset(
    {"application/x-ndjson", "application/jsonl", "application/json-lines"}
)
_FORMAT_SUFFIX: Final[Mapping[str, str]] = {"csv": ".csv", "parquet": ".parquet", "jsonl": ".jsonl"}
_SUFFIX_FORMAT: Final[Mapping[str, str]] = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
_CONTENT_TYPE_FORMAT: Final[Mapping[str, str]] = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "application/parquet": "parquet",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/json-lines": "jsonl",
}
# Kafka option values that must never appear in a message. Not the SASL user name: it is
# no secret, the operator needs it to tell which login was refused, and replacing a short
# name such as "kafka" everywhere would garble messages.
_SECRET_OPTIONS: Final = ("sasl_plain_password", "ssl_password")
_URL_IN_TEXT: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+")
# Reads the Authorization header for the token checks and declares the scheme in OpenAPI;
# 401 and 403 are raised by _State.authorize, not by FastAPI.
_BEARER: Final = HTTPBearer(
    auto_error=False,
    scheme_name="bearerToken",
    description="The token held by the environment variable named in http.write_token_env.",
)
# Producer defaults that keep a request from hanging for a minute on a dead broker;
# options in the config (broker.client_options) override them.
_PRODUCER_DEFAULTS: Final[Mapping[str, Any]] = {
    "linger_ms": 5,
    "max_block_ms": 10_000,
    "bootstrap_timeout_ms": 10_000,
}


# --- injected collaborators ----------------------------------------------------------------


class SendResult(Protocol):
    """What :meth:`Producer.send` returns: a future of the write."""

    def get(self, timeout: float | None = None) -> Any:
        """Wait up to ``timeout`` seconds for the write; raise if it failed."""
        ...


class Producer(Protocol):
    """The part of ``kafka.KafkaProducer`` the API uses (tests pass a fake)."""

    def send(self, topic: str, *, value: bytes, key: bytes | None, timestamp_ms: int) -> SendResult:
        """Queue one record for ``topic``; return a future of its write."""
        ...

    def close(self, timeout: float | None = None) -> None:
        """Flush and close."""
        ...


#: A readiness check of the broker: returns if reachable, raises (any exception) if not.
BrokerCheck = Callable[[], None]


class BrokerUnreachable(ConnectionError):  # noqa: N818 -- reads as a state, like the built-ins
    """The broker did not answer a readiness check; the message says why (no secrets)."""


def kafka_producer_factory(config: ServiceConfig) -> Callable[[], Producer]:
    """Return a factory of ``KafkaProducer`` objects built from ``config``'s broker options.

    The producer waits at most 10 s for metadata or buffer space
    (``max_block_ms``) unless ``broker.client_options`` says otherwise.
    """

    def factory() -> Producer:
        producer: Producer = KafkaProducer(
            **{**_PRODUCER_DEFAULTS, **config.kafka_producer_options()}
        )
        return producer

    return factory


def kafka_broker_check(config: ServiceConfig, *, timeout_s: float = 2.0) -> BrokerCheck:
    """Return a check that asks the broker for cluster metadata, giving up after ``timeout_s``.

    It connects with the config's bootstrap servers and security options and
    raises :class:`BrokerUnreachable` (secrets scrubbed) when the broker does
    not answer. With SASL it first logs in once
    (:func:`~monitor.kafka_security.check_kafka_credentials`): refused
    credentials fail at once with the message naming the user, mechanism,
    broker and password variable, instead of after the admin client's
    bootstrap timeout as "Unable to bootstrap". Not cached: wrap it in
    :class:`CachedCheck`.
    """

    def check() -> None:
        accepted = KafkaAdminClient.DEFAULT_CONFIG
        try:
            if uses_sasl(config):
                check_kafka_credentials(config, timeout_s=timeout_s)
            options = {k: v for k, v in config.kafka_producer_options().items() if k in accepted}
            timeout_ms = max(1, int(timeout_s * 1000))
            options.update(request_timeout_ms=timeout_ms, bootstrap_timeout_ms=timeout_ms)
            admin = KafkaAdminClient(**options)
            try:
                admin.describe_cluster()
            finally:
                admin.close()
        except KafkaAuthenticationError as error:  # one sentence already, without secrets
            raise BrokerUnreachable(_scrub(config, str(error))) from None
        except Exception as error:
            raise BrokerUnreachable(_scrub(config, _describe(error))) from None

    return check


class CachedCheck:
    """A check whose outcome, success or failure, is reused for ``ttl_s`` seconds.

    Concurrent callers wait for one check instead of each starting their own.
    A cached failure is raised again as :class:`BrokerUnreachable` with the
    first failure's message.

    >>> calls = []
    >>> check = CachedCheck(lambda: calls.append(1), ttl_s=5.0, clock=lambda: 0.0)
    >>> check(); check(); len(calls)
    1
    """

    def __init__(
        self,
        check: BrokerCheck,
        ttl_s: float = BROKER_CHECK_TTL_S,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not ttl_s >= 0:
            raise ValueError(f"ttl_s must be at least 0 seconds, got {ttl_s!r}")
        self.check = check
        self.ttl_s = ttl_s
        self.clock = clock
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._failure: str | None = None

    def __call__(self) -> None:
        """Return if the (possibly cached) check passed; raise :class:`BrokerUnreachable` if not."""
        with self._lock:
            now = self.clock()
            if self._checked_at is None or now - self._checked_at >= self.ttl_s:
                try:
                    self.check()
                    self._failure = None
                except BrokerUnreachable as error:  # its message already says why
                    self._failure = str(error)
                except Exception as error:
                    self._failure = _describe(error)
                self._checked_at = now
            failure = self._failure
        if failure is not None:
            raise BrokerUnreachable(failure)


# --- response models -----------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Health(_Out):
    """The process is alive."""

    status: Literal["ok"] = "ok"


class Readiness(_Out):
    """Whether the service can do its work: each dependency is ``"ok"`` or why not."""

    status: Literal["ok", "unavailable"]
    database: str = Field(description='"ok", or "unreachable: ..." (URL password masked)')
    broker: str = Field(description='"ok", or "unreachable: ..."')


class WindowSettings(_Out):
    """A model's event-time windows, in seconds."""

    size_s: float
    hop_s: float | None = Field(description="null for tumbling windows")
    allowed_lateness_s: float
    min_records: int


class PredictionSettings(_Out):
    """Which part of the prediction is monitored, and as which kind of column."""

    field: Literal["score", "label"]
    kind: str


class LastWindow(_Out):
    """The outcome of one evaluated window (times in epoch seconds and ISO 8601 UTC)."""

    window_start: float
    window_end: float
    start: str
    end: str
    rows: int
    status: str = Field(description='"ok" or "insufficient_data"')
    dataset_drift: bool
    drift_share: float | None


class ModelInfo(_Out):
    """A configured model, its newest reference profile and its last evaluated window."""

    name: str
    window: WindowSettings
    prediction: PredictionSettings
    profile_version: int | None = Field(description="newest stored reference; null if none")
    last_window: LastWindow | None


class FeatureResult(_Out):
    """One drift test of one feature in a window; ``p_value`` is null for distances."""

    feature: str
    method: str
    kind: str
    statistic: float | None
    p_value: float | None
    threshold: float | None
    drift: bool
    effect_size: float | None
    missing_share: float | None
    status: str


class Window(LastWindow):
    """An evaluated window with every feature's result."""

    prediction_drift: bool | None
    evaluated_at: float | None
    details: dict[str, Any]
    features: list[FeatureResult]


class WindowPage(_Out):
    """Windows newest first; pass ``next`` as ``before`` for the next page (null: no more)."""

    model: str
    windows: list[Window]
    next: float | None


class Rejection(_Out):
    """A record that was not produced, and why; ``index`` is its position in the body."""

    index: int
    reason: str = Field(description="an invalid-record reason, or broker_unavailable")
    detail: str
    field: str | None = None


class IngestResult(_Out):
    """How many records went to Kafka, and which did not."""

    accepted: int
    rejected: list[Rejection]


class ReferenceResult(_Out):
    """The reference profile stored from an upload."""

    model: str
    version: int
    columns: list[str]
    rows: int


class ErrorDetail(_Out):
    """An error: one sentence saying what is wrong."""

    detail: str


# --- the application -----------------------------------------------------------------------


def create_app(
    config: ServiceConfig,
    store: Store,
    registry: CollectorRegistry,
    metrics: Metrics,
    *,
    producer_factory: Callable[[], Producer] | None = None,
    broker_check: BrokerCheck | None = None,
    max_body_bytes: int | None = None,
    max_reference_bytes: int = DEFAULT_MAX_REFERENCE_BYTES,
    produce_timeout_s: float = 30.0,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """Return the HTTP API of a service with ``config``, ``store``, ``registry`` and ``metrics``.

    ``producer_factory`` makes the Kafka producer of ``POST /api/records``
    (default :func:`kafka_producer_factory`); it is called at the first
    request, again after a failure, and its producer is closed at shutdown.
    ``broker_check`` is the readiness check of the broker (default
    :func:`kafka_broker_check` cached for :data:`BROKER_CHECK_TTL_S` seconds;
    a given one is used as is). ``max_body_bytes`` limits an ingest body
    (default ``min(1000 * consumer.max_record_bytes, DEFAULT_MAX_BODY_BYTES)``),
    ``max_reference_bytes`` an uploaded reference file, ``produce_timeout_s``
    the wait for the broker's acknowledgements. ``clock`` gives the arrival
    time of records (epoch seconds).

    The write endpoints need the bearer token of
    :meth:`~monitor.config.ServiceConfig.http_write_token` (``ConfigError``
    if its variable is unset), or are off with ``http.writes: disabled``;
    with ``http.auth_reads`` the reads need it too. Without a token, writes
    are open and a warning is logged.
    """
    if max_body_bytes is None:
        max_body_bytes = min(1000 * config.consumer.max_record_bytes, DEFAULT_MAX_BODY_BYTES)
    for name, value in (
        ("max_body_bytes", max_body_bytes),
        ("max_reference_bytes", max_reference_bytes),
    ):
        if value < 1:
            raise ValueError(f"{name} must be at least 1 byte, got {value!r}")
    if not produce_timeout_s > 0:
        raise ValueError(f"produce_timeout_s must be positive, got {produce_timeout_s!r}")
    if broker_check is None:
        broker_check = CachedCheck(kafka_broker_check(config), clock=time.monotonic)
    token = config.http_write_token()
    writes_enabled = config.http.writes == "enabled"
    if writes_enabled and token is None:
        log.warning(
            "HTTP writes are open to anyone who reaches %s:%d: no token configured "
            "(http.write_token_env); allowed on a loopback address only",
            config.http.host,
            config.http.port,
        )
    state = _State(
        config=config,
        store=store,
        registry=registry,
        metrics=metrics,
        producer_factory=producer_factory or kafka_producer_factory(config),
        broker_check=broker_check,
        max_body_bytes=max_body_bytes,
        max_reference_bytes=max_reference_bytes,
        produce_timeout_s=produce_timeout_s,
        clock=clock,
        token_digest=None if token is None else _digest(token.encode("utf-8")),
        auth_reads=config.http.auth_reads,
        writes_enabled=writes_enabled,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(state.close)

    app = FastAPI(
        title="driftline",
        summary="Drift monitoring of machine-learning models in production.",
        version=_version(),
        lifespan=lifespan,
    )
    app.state.driftline = state

    @app.exception_handler(StoreError)
    async def _store_error(_request: Request, error: StoreError) -> JSONResponse:
        log.warning("request failed: %s", error)
        return JSONResponse({"detail": str(error)}, status_code=HTTPStatus.SERVICE_UNAVAILABLE)

    @app.exception_handler(SQLAlchemyError)
    async def _database_error(_request: Request, error: SQLAlchemyError) -> JSONResponse:
        # SQLAlchemy's message holds the SQL and its parameters: name the error only.
        log.error("request failed on a database error", exc_info=error)
        detail = f"database error ({type(error).__name__}); see the service log"
        return JSONResponse({"detail": detail}, status_code=HTTPStatus.SERVICE_UNAVAILABLE)

    _add_routes(app, state)
    return app


@dataclass(kw_only=True)
class _State:
    """What the routes share; the producer is created lazily and replaced after a failure."""

    config: ServiceConfig
    store: Store
    registry: CollectorRegistry
    metrics: Metrics
    producer_factory: Callable[[], Producer]
    broker_check: BrokerCheck
    max_body_bytes: int
    max_reference_bytes: int
    produce_timeout_s: float
    clock: Callable[[], float]
    #: SHA-256 of the bearer token (None: no token configured); the token itself is not kept.
    token_digest: bytes | None = field(repr=False)
    auth_reads: bool
    writes_enabled: bool
    known: frozenset[str] = field(init=False)
    _producer: Producer | None = field(init=False, default=None)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.known = frozenset(model.name for model in self.config.models)

    def model(self, name: str) -> ModelConfig:
        """The configured model ``name``, or a 404 naming the configured ones."""
        if name not in self.known:
            known = ", ".join(sorted(self.known))
            raise HTTPException(
                HTTPStatus.NOT_FOUND, f"unknown model {name!r}; configured models: {known}"
            )
        return self.config.model(name)

    def authorize(self, credentials: HTTPAuthorizationCredentials | None) -> None:
        """Return if ``credentials`` hold the token (or none is configured); else 401 or 403."""
        if self.token_digest is None:
            return
        if credentials is None:
            raise HTTPException(
                HTTPStatus.UNAUTHORIZED,
                "this endpoint needs the header Authorization: Bearer <token>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        # Starlette decodes header bytes as Latin-1: encoding back gives the bytes sent.
        given = _digest(credentials.credentials.encode("latin-1"))
        if not hmac.compare_digest(given, self.token_digest):
            raise HTTPException(HTTPStatus.FORBIDDEN, "the bearer token is not valid")

    def producer(self) -> Producer:
        """The shared producer, created at first use."""
        with self._lock:
            if self._producer is None:
                self._producer = self.producer_factory()
            return self._producer

    def drop_producer(self, broken: Producer) -> None:
        """Close ``broken`` so that the next request creates a fresh producer."""
        with self._lock:
            if self._producer is not broken:
                return
            self._producer = None
        with contextlib.suppress(Exception):
            broken.close(timeout=0)

    def close(self) -> None:
        """Flush and close the producer, if one was created."""
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=self.produce_timeout_s)

    def scrub(self, text: str) -> str:
        """``text`` with URL passwords masked and the configured Kafka secrets removed."""
        return _scrub(self.config, text)


_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    HTTPStatus.NOT_FOUND: {"model": ErrorDetail, "description": "Unknown model."},
    HTTPStatus.SERVICE_UNAVAILABLE: {"model": ErrorDetail, "description": "Database unavailable."},
}
_AUTH_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    HTTPStatus.UNAUTHORIZED: {
        "model": ErrorDetail,
        "description": "No bearer token, or a malformed Authorization header.",
    },
    HTTPStatus.FORBIDDEN: {
        "model": ErrorDetail,
        "description": "A wrong token (or, on writes, http.writes: disabled).",
    },
}

_PREDICTION_SCHEMA: Final[dict[str, Any]] = {
    "title": "PredictionRecord",
    "type": "object",
    "required": ["model", "features", "prediction"],
    "properties": {
        "model": {"type": "string"},
        "model_version": {"type": ["string", "integer", "null"]},
        "request_id": {"type": ["string", "integer", "null"]},
        "timestamp": {
            "type": ["string", "number", "null"],
            "description": "ISO 8601 with offset, or epoch milliseconds; default: arrival time",
        },
        "features": {
            "type": "object",
            "additionalProperties": {"type": ["number", "string", "boolean", "null"]},
        },
        "prediction": {
            "description": '{"label": ..., "score": ...}, a number, or a class',
            "type": ["object", "number", "string", "integer", "boolean"],
        },
        "explanations": {"type": ["object", "null"], "additionalProperties": {"type": "number"}},
    },
}
_LABEL_SCHEMA: Final[dict[str, Any]] = {
    "title": "LabelRecord",
    "type": "object",
    "required": ["model", "request_id", "label"],
    "properties": {
        "model": {"type": "string"},
        "request_id": {"type": ["string", "integer"]},
        "label": {"type": ["string", "number", "boolean"]},
        "timestamp": {"type": ["string", "number", "null"]},
    },
}
_RECORD_SCHEMA: Final[dict[str, Any]] = {"oneOf": [_PREDICTION_SCHEMA, _LABEL_SCHEMA]}
_RECORDS_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"oneOf": [_RECORD_SCHEMA, {"type": "array", "items": _RECORD_SCHEMA}]}
            },
            "application/x-ndjson": {
                "schema": {"type": "string", "description": "one JSON record per line"}
            },
        },
    }
}
_REFERENCE_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "a .csv, .parquet or .jsonl file",
                        }
                    },
                }
            },
            "text/csv": {"schema": {"type": "string"}},
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
            "application/x-ndjson": {"schema": {"type": "string"}},
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary", "description": "needs ?format="}
            },
        },
    }
}


def _add_routes(app: FastAPI, state: _State) -> None:
    """Declare every endpoint of ``app`` on ``state``."""

    async def writable(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)],
    ) -> None:
        """Let a write through if writes are enabled and the request holds the token."""
        if not state.writes_enabled:
            raise HTTPException(
                HTTPStatus.FORBIDDEN, "writes are disabled on this service (http.writes: disabled)"
            )
        state.authorize(credentials)

    async def readable(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)],
    ) -> None:
        """Let a read through if the request holds the token (with ``http.auth_reads``)."""
        state.authorize(credentials)

    write_auth = [Security(writable)]
    read_auth = [Security(readable)] if state.auth_reads else []
    read_errors = _AUTH_ERRORS if state.auth_reads else {}

    @app.get("/healthz", response_model=Health, tags=["operations"])
    def healthz() -> Health:
        """Liveness: answers as long as the process serves HTTP."""
        return Health()

    @app.get(
        "/readyz",
        response_model=Readiness,
        tags=["operations"],
        responses={HTTPStatus.SERVICE_UNAVAILABLE: {"model": Readiness}},
    )
    def readyz(response: Response) -> Readiness:
        """Readiness: the database answers a query and the broker answers a metadata request."""
        try:
            state.store.ping()
            database = "ok"
        except StoreError as error:
            database = error.reason
        except Exception as error:
            database = f"unreachable: {state.scrub(_describe(error))}"
        try:
            state.broker_check()
            broker = "ok"
        except BrokerUnreachable as error:  # its message already says why
            broker = f"unreachable: {state.scrub(str(error))}"
        except Exception as error:
            broker = f"unreachable: {state.scrub(_describe(error))}"
        ready = database == "ok" and broker == "ok"
        if not ready:
            response.status_code = HTTPStatus.SERVICE_UNAVAILABLE
        return Readiness(status="ok" if ready else "unavailable", database=database, broker=broker)

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=Response,
        dependencies=read_auth,
        responses={
            HTTPStatus.OK: {
                "content": {CONTENT_TYPE: {"schema": {"type": "string"}}},
                "description": "Prometheus text exposition format.",
            },
            **read_errors,
        },
    )
    def metrics() -> Response:
        """Every ``driftline_*`` metric, in the Prometheus text format."""
        return Response(render(state.registry), media_type=CONTENT_TYPE)

    @app.get(
        "/api/models",
        response_model=list[ModelInfo],
        tags=["models"],
        dependencies=read_auth,
        responses={
            HTTPStatus.SERVICE_UNAVAILABLE: _ERRORS[HTTPStatus.SERVICE_UNAVAILABLE],
            **read_errors,
        },
    )
    def list_models() -> list[ModelInfo]:
        """The configured models with their newest reference version and last evaluated window."""
        out = []
        for model in state.config.models:
            stored = state.store.latest_profile(model.name)
            last = state.store.window_summaries(model.name, 1)
            out.append(
                ModelInfo(
                    name=model.name,
                    window=WindowSettings(
                        size_s=model.window.size,
                        hop_s=model.window.hop,
                        allowed_lateness_s=model.window.allowed_lateness,
                        min_records=model.window.min_records,
                    ),
                    prediction=PredictionSettings(
                        field=model.prediction.field, kind=model.prediction.kind.value
                    ),
                    profile_version=None if stored is None else stored[0],
                    last_window=LastWindow(**_summary_fields(last[0])) if last else None,
                )
            )
        return out

    @app.get(
        "/api/models/{model}/windows",
        response_model=WindowPage,
        tags=["models"],
        dependencies=read_auth,
        responses={**_ERRORS, **read_errors},
    )
    def list_windows(
        model: Annotated[str, PathParam(description="a configured model's name")],
        limit: Annotated[int, Query(ge=1, le=500, description="windows per page")] = 50,
        before: Annotated[
            float | None,
            Query(
                allow_inf_nan=False,
                description="only windows starting before this epoch second (the last `next`)",
            ),
        ] = None,
    ) -> WindowPage:
        """The model's evaluated windows, newest first, each with its feature results."""
        name = state.model(model).name
        # One more than asked tells whether another page exists.
        rows = state.store.window_summaries(name, limit + 1, before)
        page = rows[:limit]
        windows = [
            Window(
                **_summary_fields(row),
                prediction_drift=row.prediction_drift,
                evaluated_at=row.evaluated_at,
                details=_json_safe(dict(row.details)),
                features=[
                    _feature(result)
                    for result in state.store.feature_results(name, row.window_start)
                ],
            )
            for row in page
        ]
        cursor = page[-1].window_start if len(rows) > limit else None
        return WindowPage(model=name, windows=windows, next=cursor)

    @app.post(
        "/api/records",
        response_model=IngestResult,
        tags=["ingest"],
        openapi_extra=_RECORDS_BODY,
        dependencies=write_auth,
        responses={
            **_AUTH_ERRORS,
            HTTPStatus.MULTI_STATUS: {"model": IngestResult, "description": "Some rejected."},
            HTTPStatus.BAD_REQUEST: {"model": ErrorDetail, "description": "Body not usable."},
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE: {"model": ErrorDetail},
            HTTPStatus.UNPROCESSABLE_ENTITY: {
                "model": IngestResult,
                "description": "Every record invalid (or a bad query parameter).",
            },
            HTTPStatus.SERVICE_UNAVAILABLE: {
                "model": IngestResult,
                "description": "The broker took none of the valid records.",
            },
        },
    )
    async def post_records(
        request: Request,
        response: Response,
        kind: Annotated[
            Literal["prediction", "label"],
            Query(description="whether the body holds prediction or label records"),
        ] = "prediction",
    ) -> IngestResult:
        """Validate prediction (or label) records and produce the valid ones to Kafka.

        The body is one JSON record, a JSON array of records, or JSON lines
        (``Content-Type: application/x-ndjson``). Records are checked exactly
        as the consumer checks them; valid ones go to the predictions (or
        labels) topic keyed by ``request_id``, invalid ones are counted in
        ``driftline_records_invalid_total`` and listed with their reason.
        """
        body = await _read_body(request, state.max_body_bytes)
        ndjson = _media_type(request) in _NDJSON_TYPES
        status, result = await run_in_threadpool(_ingest, state, body, ndjson, kind)
        response.status_code = status
        return result

    @app.post(
        "/api/models/{model}/reference",
        response_model=ReferenceResult,
        status_code=HTTPStatus.CREATED,
        tags=["models"],
        openapi_extra=_REFERENCE_BODY,
        dependencies=write_auth,
        responses={
            **_ERRORS,
            **_AUTH_ERRORS,
            HTTPStatus.BAD_REQUEST: {"model": ErrorDetail, "description": "Unusable file."},
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE: {"model": ErrorDetail},
        },
    )
    async def post_reference(
        request: Request,
        model: Annotated[str, PathParam(description="a configured model's name")],
        fmt: Annotated[
            Literal["csv", "parquet", "jsonl"] | None,
            Query(
                alias="format",
                description="the file's format; default: from its name or content type",
            ),
        ] = None,
    ) -> ReferenceResult:
        """Build the model's next reference profile from a CSV, Parquet or JSON-lines file.

        Send the file as a multipart upload (field ``file``) or as the raw
        body with ``?format=`` or a matching ``Content-Type``. The new version
        is stored at once; the running service uses it after a restart.
        """
        config = state.model(model)
        with tempfile.TemporaryDirectory(prefix="driftline-upload-") as directory:
            path, shown = await _receive_file(request, Path(directory), fmt, state)
            frame_profile = await run_in_threadpool(_profile_file, config, path, shown)
        reference, rows = frame_profile
        payload = reference.to_bytes()
        version = await run_in_threadpool(state.store.save_profile, config.name, payload)
        return ReferenceResult(
            model=config.name, version=version, columns=list(reference.profile.specs), rows=rows
        )


# --- record ingest -------------------------------------------------------------------------


def _ingest(
    state: _State, body: bytes, ndjson: bool, kind: Literal["prediction", "label"]
) -> tuple[int, IngestResult]:
    """Validate and produce the records of ``body``; return the status code and the result."""
    items = _split_lines(body) if ndjson else _split_json(body)
    config = state.config
    limit = config.consumer.max_record_bytes
    arrival_ms = int(state.clock() * 1000)
    topic = config.topics.labels if kind == "label" else config.topics.predictions
    rejected: list[Rejection] = []
    valid: list[_Outgoing] = []
    for index, raw in items:
        decoded: PredictionRecord | LabelRecord | InvalidRecord
        if kind == "label":
            decoded = route(decode_label(raw, arrival_ms, max_bytes=limit), state.known)
        else:
            decoded = route(decode_prediction(raw, arrival_ms, max_bytes=limit), state.known)
        if isinstance(decoded, InvalidRecord):
            reason = decoded.reason.value
            state.metrics.records_invalid_total.labels(
                model=decoded.model or "unknown", reason=reason
            ).inc()
            rejected.append(
                Rejection(index=index, reason=reason, detail=decoded.detail, field=decoded.field)
            )
        else:
            key = None if decoded.request_id is None else decoded.request_id.encode()
            valid.append(_Outgoing(index, decoded.model, key, raw))
    failed = _produce(state, topic, valid, arrival_ms) if valid else []
    rejected.extend(failed)
    rejected.sort(key=lambda rejection: rejection.index)
    accepted = len(valid) - len(failed)
    if not rejected:
        status = HTTPStatus.OK
    elif accepted:
        status = HTTPStatus.MULTI_STATUS
    elif failed:
        status = HTTPStatus.SERVICE_UNAVAILABLE
    else:
        status = HTTPStatus.UNPROCESSABLE_ENTITY
    return status, IngestResult(accepted=accepted, rejected=rejected)


@dataclass(frozen=True, slots=True)
class _Outgoing:
    """A valid record on its way to Kafka: its index in the body, model, key and value."""

    index: int
    model: str
    key: bytes | None
    value: bytes


def _produce(
    state: _State, topic: str, records: list[_Outgoing], timestamp_ms: int
) -> list[Rejection]:
    """Produce ``records`` and wait for the broker's acknowledgements; return the failures.

    A record over the producer's ``max_request_size`` is rejected as
    ``oversized`` (and counted as invalid) and the others still go. Any other
    failure of ``send`` (no metadata or buffer space within ``max_block_ms``)
    fails the records not yet sent too, instead of blocking again for each.
    """

    def unavailable(index: int, error: BaseException | str) -> Rejection:
        why = error if isinstance(error, str) else state.scrub(_describe(error))
        return Rejection(
            index=index,
            reason=BROKER_UNAVAILABLE,
            detail=f"the broker did not take the record: {why}",
        )

    try:
        producer = state.producer()
    except Exception as error:
        return [unavailable(record.index, error) for record in records]
    pending: list[tuple[int, SendResult]] = []
    failed: list[Rejection] = []
    cause: str | None = None
    for record in records:
        if cause is not None:
            failed.append(unavailable(record.index, cause))
            continue
        try:
            future = producer.send(
                topic, value=record.value, key=record.key, timestamp_ms=timestamp_ms
            )
        except MessageSizeTooLargeError as error:
            reason = InvalidReason.OVERSIZED.value
            state.metrics.records_invalid_total.labels(model=record.model, reason=reason).inc()
            detail = f"The record is too large for the Kafka producer: {_describe(error)}"
            failed.append(Rejection(index=record.index, reason=reason, detail=detail))
            continue
        except Exception as error:
            cause = state.scrub(_describe(error))
            failed.append(unavailable(record.index, cause))
            continue
        pending.append((record.index, future))
    deadline = time.monotonic() + state.produce_timeout_s
    for index, future in pending:
        try:
            future.get(timeout=max(0.0, deadline - time.monotonic()))
        except Exception as error:
            failed.append(unavailable(index, error))
    if not pending or len(failed) == len(records):
        # Nothing went through: start over with a fresh producer next time (after a broker
        # restart kafka-python's idempotent producer stays unusable).
        state.drop_producer(producer)
    return failed


def _split_lines(body: bytes) -> list[tuple[int, bytes]]:
    """The non-blank lines of a JSON-lines body, with their 0-based line numbers."""
    if not body.strip():
        raise HTTPException(HTTPStatus.BAD_REQUEST, "the request body is empty")
    return [
        (number, line.rstrip(b"\r"))
        for number, line in enumerate(body.split(b"\n"))
        if line.strip()
    ]


def _split_json(body: bytes) -> list[tuple[int, bytes]]:
    """The records of a JSON body: the object itself, or each element of an array."""
    if not body.strip():
        raise HTTPException(HTTPStatus.BAD_REQUEST, "the request body is empty")
    try:
        doc = orjson.loads(body)
        encode: Callable[[Any], bytes] = orjson.dumps
    except orjson.JSONDecodeError as error:
        # The slow path accepts NaN and Infinity, as record decoding does.
        try:
            doc = json.loads(body.decode("utf-8"))
        except (ValueError, RecursionError):
            hint = (
                "; for JSON lines send Content-Type: application/x-ndjson"
                if b"\n" in body.strip()
                else ""
            )
            raise HTTPException(
                HTTPStatus.BAD_REQUEST, f"the request body is not valid JSON: {error}{hint}"
            ) from None

        def encode(value: Any) -> bytes:
            return json.dumps(value).encode("ascii")

    if isinstance(doc, dict):
        return [(0, body)]  # validated byte for byte as it arrived
    if isinstance(doc, list):
        return [(index, encode(item)) for index, item in enumerate(doc)]
    raise HTTPException(
        HTTPStatus.BAD_REQUEST,
        "the request body must be a JSON object, a JSON array of objects, or JSON lines "
        "(Content-Type: application/x-ndjson)",
    )


# --- request bodies ------------------------------------------------------------------------


class _BodyTooLargeError(Exception):
    """The request body grew past its limit while being read."""


def _too_large(limit: int) -> HTTPException:
    return HTTPException(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the request body exceeds the limit of {limit} bytes"
    )


def _check_length(request: Request, limit: int) -> None:
    """Refuse at once a body whose declared ``Content-Length`` is over ``limit``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)


async def _read_body(request: Request, limit: int) -> bytes:
    """The whole body, or 413 as soon as it exceeds ``limit`` bytes."""
    _check_length(request, limit)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _limited(request: Request, limit: int) -> Request:
    """A view of ``request`` whose body raises :class:`_BodyTooLargeError` past ``limit`` bytes."""
    received = 0

    async def receive() -> MutableMapping[str, Any]:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _BodyTooLargeError
        return message

    return Request(request.scope, receive)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _receive_file(
    request: Request, directory: Path, fmt: str | None, state: _State
) -> tuple[Path, str]:
    """Save the uploaded file in ``directory``; return its path and the name shown in messages."""
    limit = state.max_reference_bytes
    _check_length(request, limit)
    media_type = _media_type(request)
    if media_type == "multipart/form-data":
        try:
            form = await _limited(request, limit).form(max_files=1, max_fields=10)
        except _BodyTooLargeError:
            raise _too_large(limit) from None
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise HTTPException(
                    HTTPStatus.BAD_REQUEST, "the multipart body needs a file part named 'file'"
                )
            shown = upload.filename or "the uploaded file"
            fmt = (
                fmt
                or _SUFFIX_FORMAT.get(Path(upload.filename or "").suffix.lower())
                or _CONTENT_TYPE_FORMAT.get((upload.content_type or "").split(";")[0].lower())
            )
            path = directory / ("upload" + _suffix(fmt, shown))
            with path.open("wb") as out:
                while chunk := await upload.read(1 << 20):
                    out.write(chunk)
        finally:
            await form.close()
        return path, shown
    shown = "the request body"
    fmt = fmt or _CONTENT_TYPE_FORMAT.get(media_type)
    path = directory / ("upload" + _suffix(fmt, shown))
    size = 0
    with path.open("wb") as out:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            out.write(chunk)
    return path, shown


def _suffix(fmt: str | None, shown: str) -> str:
    if fmt is None:
        raise HTTPException(
            HTTPStatus.BAD_REQUEST,
            f"cannot tell the format of {shown}: name it .csv, .parquet or .jsonl, "
            "send a matching Content-Type, or pass ?format=csv|parquet|jsonl",
        )
    return _FORMAT_SUFFIX[fmt]


def _profile_file(config: ModelConfig, path: Path, shown: str) -> tuple[StoredReference, int]:
    """Read ``path`` and build ``config``'s reference of it; 400 with one sentence if unusable.

    422 with :func:`~monitor.runtime.check_reference_columns`'s message (the
    one ``driftline reference build`` prints) when the prediction, target or
    score column is missing or ambiguous. With ``performance_estimation`` the
    reference also holds the estimator fitted on the file's target and score
    columns.
    """
    try:
        frame = read_table(path, "reference")
        check_reference_columns(config, [str(c) for c in frame.columns])
        reference = build_reference(config, frame)
    except ReferenceColumnsError as error:
        raise HTTPException(HTTPStatus.UNPROCESSABLE_ENTITY, str(error)) from None
    except (ValueError, KeyError, TypeError) as error:  # InputError is a ValueError
        message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
        message = message.replace(str(path), shown)
        if not isinstance(error, InputError):
            message = f"cannot profile {shown}: {message}"
        raise HTTPException(HTTPStatus.BAD_REQUEST, message) from None
    if not reference.profile.specs:
        raise HTTPException(HTTPStatus.BAD_REQUEST, f"{shown} has no column that can be profiled")
    return reference, len(frame)


# --- helpers -------------------------------------------------------------------------------


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _finite(value: float | None) -> float | None:
    """``value``, or None when unknown (NaN or infinite cannot be written as JSON)."""
    return None if value is None or not math.isfinite(value) else value


def _json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None, recursively."""
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _summary_fields(row: WindowSummaryRow) -> dict[str, Any]:
    return {
        "window_start": row.window_start,
        "window_end": row.window_end,
        "start": _iso(row.window_start),
        "end": _iso(row.window_end),
        "rows": row.rows,
        "status": row.status,
        "dataset_drift": row.dataset_drift,
        "drift_share": _finite(row.drift_share),
    }


def _feature(row: FeatureResultRow) -> FeatureResult:
    return FeatureResult(
        feature=row.feature,
        method=row.method,
        kind=row.kind,
        statistic=_finite(row.statistic),
        p_value=_finite(row.p_value),
        threshold=_finite(row.threshold),
        drift=row.drift,
        effect_size=_finite(row.effect_size),
        missing_share=_finite(row.missing_share),
        status=row.status,
    )


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


def _describe(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _scrub(config: ServiceConfig, text: str) -> str:
    """``text`` with URLs' passwords masked and configured Kafka secrets replaced by ``***``."""
    text = _URL_IN_TEXT.sub(lambda match: mask_url(match.group(0)), text)
    secrets: list[str] = []
    broker = config.broker
    names = (broker.sasl_password_env, broker.ssl_password_env, broker.sasl_username_env)
    if any(name is not None for name in names):
        with contextlib.suppress(Exception):  # an unset variable: nothing to scrub
            options = config.kafka_producer_options()
            secrets = [str(options[key]) for key in _SECRET_OPTIONS if options.get(key)]
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("driftline")
    except PackageNotFoundError:
        return "0+unknown"


# --- serving -------------------------------------------------------------------------------


@dataclass(eq=False)
class ApiServer:
    """A uvicorn server running an app in a background thread; :meth:`stop` ends it."""

    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to shut down (closing the producer) and wait up to ``timeout`` s."""
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(timeout)


def serve(
    app: FastAPI,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    start_timeout: float = 10.0,
    access_log: bool = False,
) -> ApiServer:
    """Run ``app`` with uvicorn on ``host:port`` in a daemon thread; return once it listens.

    ``port`` 0 picks a free port (see :attr:`ApiServer.port`). uvicorn does
    not touch the logging configuration (the service's own applies) and
    installs no signal handlers in a thread. Raises ``OSError`` if it cannot
    listen, ``TimeoutError`` if it does not start within ``start_timeout`` s,
    and ``ConfigError`` before listening if ``app`` (from :func:`create_app`)
    takes writes without a token and ``host`` is not a loopback address.
    """
    state = getattr(app.state, "driftline", None)
    if (
        isinstance(state, _State)
        and state.writes_enabled
        and state.token_digest is None
        and not is_loopback_host(host)
    ):
        raise ConfigError(
            f"refusing to serve the HTTP API on {host}: writes are enabled without a token; "
            "set http.write_token_env, or http.writes: disabled, or a loopback host"
        )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=access_log,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run()
        except BaseException as error:  # uvicorn exits with SystemExit(1) when it cannot bind
            failure.append(error)

    thread = threading.Thread(target=run, name=f"driftline-http-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive():
            cause = failure[0] if failure else None
            raise OSError(f"the HTTP API could not listen on {host}:{port}") from cause
        if time.monotonic() > deadline:
            server.should_exit = True
            thread.join(start_timeout)
            raise TimeoutError(f"the HTTP API did not start on {host}:{port} in {start_timeout} s")
        time.sleep(0.01)
    bound = port
    for listener in server.servers:
        for sock in listener.sockets:
            bound = int(sock.getsockname()[1])
            break
    return ApiServer(server=server, thread=thread, host=host, port=bound)

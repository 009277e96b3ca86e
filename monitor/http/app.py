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
    :class:`~monitor.config.service.HttpSection` allows that only on a loopback host,
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
New references apply from the next window
    ``POST /api/models/{model}/reference`` stores the next profile version
    (``?model_version=`` names the model version it describes). It is in
    force from the first window that starts after the event times already
    consumed (``effective_from`` in the response); every running process
    learns it within a checkpoint or an evaluation interval and sketches
    those windows on it, without a restart. Earlier windows keep the profile
    they started with: one window never mixes two bin layouts.
    For a model with ``performance_estimation`` the upload must hold the
    target and score columns: the fitted estimator is stored with the profile
    (400 naming the column if it cannot be fitted). A file whose prediction,
    target or score column is missing or ambiguous is refused with 422 and
    the message ``driftline reference build`` prints
    (:func:`~monitor.analyses.reference.check_reference_columns`); nothing is stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Final, Literal

from fastapi import FastAPI, HTTPException, Query, Request, Response, Security
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import UploadFile

from monitor.alerting import operator
from monitor.analyses.model import StoredReference
from monitor.analyses.reference import (
    ReferenceColumnsError,
    build_reference,
    check_reference_columns,
    store_reference,
)
from monitor.config.service import ModelConfig, ServiceConfig
from monitor.datafiles import InputError, read_table
from monitor.http.health import (
    BrokerCheck,
    BrokerUnreachable,
    CachedCheck,
    Producer,
    describe_error,
    kafka_broker_check,
    kafka_producer_factory,
    scrub_secrets,
)
from monitor.http.ingest import (
    DEFAULT_MAX_BODY_BYTES,
    NDJSON_TYPES,
    BodyTooLargeError,
    check_length,
    ingest_records,
    limited,
    read_body,
    request_media_type,
    too_large,
)
from monitor.http.schemas import (
    AUTH_ERRORS,
    ERRORS,
    RECORDS_BODY,
    REFERENCE_BODY,
    AlertEventOut,
    ErrorDetail,
    Health,
    Incident,
    IngestResult,
    LastWindow,
    ModelInfo,
    PredictionSettings,
    Readiness,
    Redelivered,
    ReferenceResult,
    Window,
    WindowPage,
    WindowSettings,
    feature_result,
    json_safe,
    summary_fields,
)
from monitor.metrics import CONTENT_TYPE, Metrics, render
from monitor.store import Store, StoreError

log = logging.getLogger(__name__)


#: Cap of an uploaded reference file unless ``max_reference_bytes`` is given: 512 MiB.
DEFAULT_MAX_REFERENCE_BYTES: Final = 512 << 20


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


# Reads the Authorization header for the token checks and declares the scheme in OpenAPI;
# 401 and 403 are raised by ApiState.authorize, not by FastAPI.
_BEARER: Final = HTTPBearer(
    auto_error=False,
    scheme_name="bearerToken",
    description="The token held by the environment variable named in http.write_token_env.",
)


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
    :meth:`~monitor.config.service.ServiceConfig.http_write_token` (``ConfigError``
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
    state = ApiState(
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
class ApiState:
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
        return scrub_secrets(self.config, text)


def _add_routes(app: FastAPI, state: ApiState) -> None:
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
    read_errors = AUTH_ERRORS if state.auth_reads else {}

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
            database = f"unreachable: {state.scrub(describe_error(error))}"
        try:
            state.broker_check()
            broker = "ok"
        except BrokerUnreachable as error:  # its message already says why
            broker = f"unreachable: {state.scrub(str(error))}"
        except Exception as error:
            broker = f"unreachable: {state.scrub(describe_error(error))}"
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
            HTTPStatus.SERVICE_UNAVAILABLE: ERRORS[HTTPStatus.SERVICE_UNAVAILABLE],
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
                    last_window=LastWindow(**summary_fields(last[0])) if last else None,
                )
            )
        return out

    @app.get(
        "/api/models/{model}/windows",
        response_model=WindowPage,
        tags=["models"],
        dependencies=read_auth,
        responses={**ERRORS, **read_errors},
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
                **summary_fields(row),
                prediction_drift=row.prediction_drift,
                evaluated_at=row.evaluated_at,
                details=json_safe(dict(row.details)),
                features=[
                    feature_result(result)
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
        openapi_extra=RECORDS_BODY,
        dependencies=write_auth,
        responses={
            **AUTH_ERRORS,
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
        body = await read_body(request, state.max_body_bytes)
        ndjson = request_media_type(request) in NDJSON_TYPES
        status, result = await run_in_threadpool(ingest_records, state, body, ndjson, kind)
        response.status_code = status
        return result

    @app.get(
        "/api/alerts",
        response_model=list[Incident],
        tags=["alerts"],
        dependencies=read_auth,
        responses={**read_errors},
    )
    def list_alerts(
        model: Annotated[str | None, Query(description="only this model's incidents")] = None,
        state_: Annotated[
            Literal["firing", "resolved"] | None,
            Query(alias="state", description="only firing or only resolved incidents"),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[Incident]:
        """The incidents, most recently updated first (``driftline alerts list``)."""
        rows = operator.incidents(state.store, model=model, status=state_, limit=limit)
        return [Incident(**operator.incident_json(r)) for r in rows]

    @app.get(
        "/api/events",
        response_model=list[AlertEventOut],
        tags=["alerts"],
        dependencies=read_auth,
        responses={**read_errors},
    )
    def list_events(
        model: Annotated[str | None, Query(description="only this model's events")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[AlertEventOut]:
        """The alert events, newest first, with each target's delivery state and every attempt."""
        found = operator.events(state.store, model=model, limit=limit)
        return [AlertEventOut(**operator.event_json(d)) for d in found]

    @app.post(
        "/api/events/{event_id}/redeliver",
        response_model=Redelivered,
        tags=["alerts"],
        dependencies=write_auth,
        responses={
            **AUTH_ERRORS,
            HTTPStatus.NOT_FOUND: {"model": ErrorDetail, "description": "Unknown event."},
        },
    )
    def redeliver_event(
        event_id: Annotated[str, PathParam(description="the event's id")],
        target: Annotated[str | None, Query(description="only this target")] = None,
    ) -> Redelivered:
        """Queue a dead event for delivery again (to every target it is dead for, or ``target``)."""
        try:
            done = operator.redeliver(state.store, event_id, target=target)
        except operator.UnknownEventError as error:
            raise HTTPException(HTTPStatus.NOT_FOUND, str(error)) from None
        except ValueError as error:
            raise HTTPException(HTTPStatus.BAD_REQUEST, str(error)) from None
        return Redelivered(
            id=done.event_id, requeued=list(done.requeued), not_dead=list(done.not_dead)
        )

    @app.post(
        "/api/models/{model}/reference",
        response_model=ReferenceResult,
        # model_version and effective_from are left out when None (none given, from the start).
        response_model_exclude_none=True,
        status_code=HTTPStatus.CREATED,
        tags=["models"],
        openapi_extra=REFERENCE_BODY,
        dependencies=write_auth,
        responses={
            **ERRORS,
            **AUTH_ERRORS,
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
        model_version: Annotated[
            str | None,
            Query(description="the model version the reference describes", max_length=200),
        ] = None,
    ) -> ReferenceResult:
        """Build the model's next reference profile from a CSV, Parquet or JSON-lines file.

        Send the file as a multipart upload (field ``file``) or as the raw
        body with ``?format=`` or a matching ``Content-Type``. The new version
        is stored at once and used from ``effective_from`` on: the first
        window starting after the data already consumed, in every process.
        """
        config = state.model(model)
        with tempfile.TemporaryDirectory(prefix="driftline-upload-") as directory:
            path, shown = await _receive_file(request, Path(directory), fmt, state)
            frame_profile = await run_in_threadpool(_profile_file, config, path, shown)
        reference, rows = frame_profile
        stored = await run_in_threadpool(
            lambda: store_reference(
                state.store, state.config, config, reference, model_version=model_version
            )
        )
        start = stored.effective_from
        return ReferenceResult(
            model=config.name,
            version=stored.version,
            columns=list(reference.profile.specs),
            rows=rows,
            model_version=stored.model_version,
            effective_from=None if start is None else datetime.fromtimestamp(start, UTC),
        )


async def _receive_file(
    request: Request, directory: Path, fmt: str | None, state: ApiState
) -> tuple[Path, str]:
    """Save the uploaded file in ``directory``; return its path and the name shown in messages."""
    limit = state.max_reference_bytes
    check_length(request, limit)
    media_type = request_media_type(request)
    if media_type == "multipart/form-data":
        try:
            form = await limited(request, limit).form(max_files=1, max_fields=10)
        except BodyTooLargeError:
            raise too_large(limit) from None
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
                raise too_large(limit)
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

    422 with :func:`~monitor.analyses.reference.check_reference_columns`'s message (the
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


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("driftline")
    except PackageNotFoundError:
        return "0+unknown"


__all__ = [
    "DEFAULT_MAX_REFERENCE_BYTES",
    "ApiState",
    "create_app",
]

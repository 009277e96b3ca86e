"""``POST /api/records``: split a body into records, validate each as the consumer does, produce."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final, Literal

import orjson
from fastapi import HTTPException, Request
from kafka.errors import MessageSizeTooLargeError

from monitor.http.health import SendResult, describe_error
from monitor.http.schemas import IngestResult, Rejection
from monitor.records import (
    InvalidReason,
    InvalidRecord,
    LabelRecord,
    PredictionRecord,
    decode_label,
    decode_prediction,
    route,
)

if TYPE_CHECKING:  # the app's state, an annotation only: the app imports this module
    from monitor.http.app import ApiState

log = logging.getLogger(__name__)

#: Cap of a ``POST /api/records`` body unless ``max_body_bytes`` is given: 16 MiB.
DEFAULT_MAX_BODY_BYTES: Final = 16 << 20


#: Rejection reason of a valid record the broker did not take (not an ``InvalidReason``).
BROKER_UNAVAILABLE: Final = "broker_unavailable"


NDJSON_TYPES: Final = frozenset(
    {"application/x-ndjson", "application/jsonl", "application/json-lines"}
)


# --- record ingest -------------------------------------------------------------------------


def ingest_records(
    state: ApiState, body: bytes, ndjson: bool, kind: Literal["prediction", "label"]
) -> tuple[int, IngestResult]:
    """Validate and produce the records of ``body``; return the status code and the result."""
    items = split_lines(body) if ndjson else split_json(body)
    config = state.config
    limit = config.consumer.max_record_bytes
    arrival_ms = int(state.clock() * 1000)
    topic = config.topics.labels if kind == "label" else config.topics.predictions
    rejected: list[Rejection] = []
    valid: list[Outgoing] = []
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
            valid.append(Outgoing(index, decoded.model, key, raw))
    failed = produce(state, topic, valid, arrival_ms) if valid else []
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
class Outgoing:
    """A valid record on its way to Kafka: its index in the body, model, key and value."""

    index: int
    model: str
    key: bytes | None
    value: bytes


def produce(
    state: ApiState, topic: str, records: list[Outgoing], timestamp_ms: int
) -> list[Rejection]:
    """Produce ``records`` and wait for the broker's acknowledgements; return the failures.

    A record over the producer's ``max_request_size`` is rejected as
    ``oversized`` (and counted as invalid) and the others still go. Any other
    failure of ``send`` (no metadata or buffer space within ``max_block_ms``)
    fails the records not yet sent too, instead of blocking again for each.
    """

    def unavailable(index: int, error: BaseException | str) -> Rejection:
        why = error if isinstance(error, str) else state.scrub(describe_error(error))
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
            detail = f"The record is too large for the Kafka producer: {describe_error(error)}"
            failed.append(Rejection(index=record.index, reason=reason, detail=detail))
            continue
        except Exception as error:
            cause = state.scrub(describe_error(error))
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


def split_lines(body: bytes) -> list[tuple[int, bytes]]:
    """The non-blank lines of a JSON-lines body, with their 0-based line numbers."""
    if not body.strip():
        raise HTTPException(HTTPStatus.BAD_REQUEST, "the request body is empty")
    return [
        (number, line.rstrip(b"\r"))
        for number, line in enumerate(body.split(b"\n"))
        if line.strip()
    ]


def split_json(body: bytes) -> list[tuple[int, bytes]]:
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


class BodyTooLargeError(Exception):
    """The request body grew past its limit while being read."""


def too_large(limit: int) -> HTTPException:
    return HTTPException(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the request body exceeds the limit of {limit} bytes"
    )


def check_length(request: Request, limit: int) -> None:
    """Refuse at once a body whose declared ``Content-Length`` is over ``limit``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or 413 as soon as it exceeds ``limit`` bytes."""
    check_length(request, limit)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def limited(request: Request, limit: int) -> Request:
    """A view of ``request`` whose body raises :class:`BodyTooLargeError` past ``limit`` bytes."""
    received = 0

    async def receive() -> MutableMapping[str, Any]:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLargeError
        return message

    return Request(request.scope, receive)


def request_media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


__all__ = [
    "BROKER_UNAVAILABLE",
    "DEFAULT_MAX_BODY_BYTES",
    "NDJSON_TYPES",
    "BodyTooLargeError",
    "Outgoing",
    "check_length",
    "ingest_records",
    "limited",
    "produce",
    "read_body",
    "request_media_type",
    "split_json",
    "split_lines",
    "too_large",
]

"""The dead-letter topic: what an invalid record becomes there, and when it cannot be written.

The ingest loop hands every invalid record to a :class:`DeadLetterWriter`,
which writes it to ``topics.dead_letter`` with its key and value and three
headers: ``driftline-reason`` (an :class:`~monitor.records.InvalidReason`
value), ``driftline-detail`` (one sentence, at most 1,000 bytes) and
``driftline-source`` (``topic/partition/offset`` of the original record).

Fitting
    A record can be invalid *because* it is huge: a broker accepts a 5 MB
    value that compresses well under its 1 MiB limit, and forwarding it
    uncompressed cannot work (kafka-python refuses anything over the
    producer's ``max_request_size`` with ``MessageSizeTooLargeError``). So a
    value -- or a key -- longer than ``dead_letter.max_value_bytes``
    (default 64 KiB) is cut to that size, and cut further when its headers
    would not leave room under ``max_request_size``; the header
    ``driftline-truncated`` (``driftline-key-truncated`` for the key) then
    holds the original size in bytes. If the broker still refuses it as too
    large (a dead-letter topic whose ``max.message.bytes`` is below the cap),
    it is sent once more with no key and an empty value: the headers alone,
    so that its reason and source coordinates get there. The whole record
    stays in its source topic at the offset named by ``driftline-source``. A
    record with neither key nor value (which kafka-python cannot send) is
    written with an empty key.
Failures
    Dead letters are acknowledged at the next checkpoint, before the offsets
    move past their records (:meth:`DeadLetterWriter.flush`):

    - a retriable error (broker unreachable, no partition leader, unknown
      topic, timeouts) is retried: the checkpoint fails, the ingest loop
      pauses consumption and retries it with a bounded backoff. Once the
      dead-letter topic has failed for ``dead_letter.retry_timeout_s``
      (default 60 s) without a single successful write, the records still
      unwritten are given up; while it goes on failing, later records are
      given up after one attempt, until a write succeeds again. (A write in
      flight fails only when the producer gives up on it, after its
      ``delivery_timeout_ms``; past the deadline the checkpoint no longer
      waits for such writes, which are accounted for when they complete);
    - any other error -- too large for the producer or the broker, not
      authorized, invalid topic, or anything else retrying cannot fix -- is
      given up at once.

    The ingest loop's producer is not idempotent by default
    (``monitor.streaming.ingest.DEAD_LETTER_PRODUCER_DEFAULTS``): kafka-python's
    idempotent producer fails every later send once the broker refused one
    record for good, which would turn one too-large letter into the loss of
    all that follow.

    A given-up record stays counted in ``driftline_records_invalid_total``,
    is counted in ``driftline_dead_letter_failures_total{reason}`` (the values
    of :class:`FailureReason`) and logged at WARNING with its source
    coordinates; the partition moves on. Records are never lost silently,
    and one record can never stop a partition.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from kafka.errors import (
    AuthorizationError,
    InvalidTopicError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
)

from monitor.metrics import Metrics

__all__ = [
    "DEFAULT_MAX_VALUE_BYTES",
    "DETAIL_HEADER",
    "KEY_TRUNCATED_HEADER",
    "REASON_HEADER",
    "SOURCE_HEADER",
    "TRUNCATED_HEADER",
    "DeadLetterError",
    "DeadLetterRecord",
    "DeadLetterWriter",
    "FailureReason",
    "dead_letter_record",
    "failure_reason",
]

log = logging.getLogger(__name__)

#: Header names on dead-lettered records.
REASON_HEADER = "driftline-reason"
DETAIL_HEADER = "driftline-detail"
SOURCE_HEADER = "driftline-source"
#: Present when the value (the key) was cut: its original size in bytes, in ASCII digits.
TRUNCATED_HEADER = "driftline-truncated"
KEY_TRUNCATED_HEADER = "driftline-key-truncated"
#: Default of ``dead_letter.max_value_bytes``.
DEFAULT_MAX_VALUE_BYTES = 64 * 1024
#: kafka-python's default ``max_request_size``.
DEFAULT_MAX_REQUEST_SIZE = 1024 * 1024
#: Longest ``driftline-detail`` header.
MAX_DETAIL_BYTES = 1000
#: Room kept in a request for a record's framing (the batch header and the record's
#: varints take under 100 bytes) beyond its key, value and headers.
FRAMING_BYTES = 128
#: Longest wait for in-flight dead letters at a checkpoint; those still in flight
#: are waited for again at the next attempt.
FLUSH_TIMEOUT_S = 10.0


class FailureReason(StrEnum):
    """Why a dead letter was given up: the value set of the metric label ``reason``."""

    #: Over the producer's ``max_request_size`` or the broker's ``max.message.bytes``.
    TOO_LARGE = "too_large"
    #: No permission to write the dead-letter topic (ACLs).
    NOT_AUTHORIZED = "not_authorized"
    #: The broker refuses the topic name (an internal topic, say).
    INVALID_TOPIC = "invalid_topic"
    #: Retriable errors for longer than ``dead_letter.retry_timeout_s``.
    RETRIES_EXHAUSTED = "retries_exhausted"
    #: Any other error that retrying cannot fix.
    REJECTED = "rejected"


def failure_reason(error: BaseException) -> FailureReason | None:
    """Return why a write that failed with ``error`` cannot succeed; None if a retry may.

    >>> from kafka.errors import KafkaTimeoutError, TopicAuthorizationFailedError
    >>> failure_reason(MessageSizeTooLargeError()).value
    'too_large'
    >>> failure_reason(TopicAuthorizationFailedError()).value
    'not_authorized'
    >>> print(failure_reason(KafkaTimeoutError()))
    None
    >>> failure_reason(TypeError("not bytes")).value
    'rejected'
    """
    if isinstance(error, MessageSizeTooLargeError | RecordListTooLargeError):
        return FailureReason.TOO_LARGE
    if isinstance(error, AuthorizationError):
        return FailureReason.NOT_AUTHORIZED
    if isinstance(error, InvalidTopicError):
        return FailureReason.INVALID_TOPIC
    if isinstance(error, KafkaError) and error.retriable:
        return None
    return FailureReason.REJECTED


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetterRecord:
    """One record for the dead-letter topic, built by :func:`dead_letter_record`.

    ``source`` is ``topic/partition/offset`` of the invalid record and
    ``reason`` its :class:`~monitor.records.InvalidReason` value (both are
    headers too); ``key`` and ``value`` are cut to fit, ``key_size`` and
    ``value_size`` are their original sizes in bytes (None when null).
    """

    source: str
    reason: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    key_size: int | None
    value_size: int | None

    def without_payload(self) -> DeadLetterRecord:
        """Return this record with an empty value and no key: the headers alone.

        Sent when the broker refuses the record as too large (a topic whose
        ``max.message.bytes`` is below the cap): its reason and source
        coordinates still reach the topic. A null value stays null.
        """
        cut = (TRUNCATED_HEADER, KEY_TRUNCATED_HEADER)
        headers = [h for h in self.headers if h[0] not in cut]
        if self.value_size:
            headers.append((TRUNCATED_HEADER, str(self.value_size).encode()))
        if self.key_size:
            headers.append((KEY_TRUNCATED_HEADER, str(self.key_size).encode()))
        value = None if self.value is None else b""
        return replace(
            self, key=b"" if value is None else None, value=value, headers=tuple(headers)
        )


def dead_letter_record(
    topic: str,
    partition: int,
    offset: int,
    *,
    key: bytes | None,
    value: bytes | None,
    reason: str,
    detail: str,
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    max_request_size: int = DEFAULT_MAX_REQUEST_SIZE,
) -> DeadLetterRecord:
    """Return the dead letter of the record at ``topic/partition/offset``, cut to fit.

    A value longer than ``max_value_bytes``, or than what the headers and key
    leave of ``max_request_size``, is cut and gets the ``driftline-truncated``
    header; a key longer than ``max_value_bytes`` is cut and gets
    ``driftline-key-truncated``.

    >>> letter = dead_letter_record(
    ...     "predictions", 3, 1234, key=b"k", value=b"x" * 5_000_000,
    ...     reason="oversized", detail="The record is 5000000 bytes.",
    ... )
    >>> len(letter.value), dict(letter.headers)["driftline-truncated"]
    (65536, b'5000000')
    >>> dict(letter.headers)["driftline-source"]
    b'predictions/3/1234'
    >>> small = dead_letter_record(
    ...     "predictions", 0, 7, key=None, value=b"{}", reason="missing_field", detail="..."
    ... )
    >>> small.value, "driftline-truncated" in dict(small.headers)
    (b'{}', False)
    """
    source = f"{topic}/{partition}/{offset}"
    key_size = None if key is None else len(key)
    value_size = None if value is None else len(value)
    headers = [
        (REASON_HEADER, reason.encode()),
        (DETAIL_HEADER, detail.encode()[:MAX_DETAIL_BYTES]),
        (SOURCE_HEADER, source.encode()),
    ]
    if key is not None and len(key) > max_value_bytes:
        headers.append((KEY_TRUNCATED_HEADER, str(len(key)).encode()))
        key = key[:max_value_bytes]
    if key is None and value is None:
        key = b""  # kafka-python refuses a record with neither: keep the value a tombstone
    if value is not None:
        marker = (TRUNCATED_HEADER, str(len(value)).encode())
        overhead = FRAMING_BYTES + len(key or b"") + _headers_size([*headers, marker])
        room = max(0, min(max_value_bytes, max_request_size - overhead))
        if len(value) > room:
            headers.append(marker)
            value = value[:room]
    return DeadLetterRecord(
        source=source,
        reason=reason,
        key=key,
        value=value,
        headers=tuple(headers),
        key_size=key_size,
        value_size=value_size,
    )


def _headers_size(headers: list[tuple[str, bytes]]) -> int:
    return sum(len(name.encode()) + len(value) for name, value in headers)


class DeadLetterError(RuntimeError):
    """Some dead letters are not written yet; the checkpoint must wait and try again."""

    def __init__(self, count: int, topic: str, cause: BaseException | None) -> None:
        why = f": {type(cause).__name__}: {cause}" if cause is not None else " (still in flight)"
        super().__init__(f"{count} dead letters not written to {topic} yet{why}")
        self.count = count
        self.topic = topic


@dataclass(eq=False, slots=True)
class _Pending:
    record: DeadLetterRecord
    future: Any = None  # in flight, or None: to be sent (again)
    done: bool = False  # written, or given up
    stripped: bool = False  # refused as too large once: now sent without key and value


class DeadLetterWriter:
    """Writes dead letters to ``topic`` with ``producer``; see the module docstring.

    ``metrics`` receives ``driftline_dead_letter_failures_total``;
    ``max_value_bytes`` and ``retry_timeout_s`` are the ``dead_letter``
    settings; ``clock`` measures how long the topic has been failing.
    """

    def __init__(
        self,
        producer: Any,
        topic: str,
        metrics: Metrics,
        *,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        retry_timeout_s: float = 60.0,
        clock: Callable[[], float] = time.time,
        flush_timeout_s: float = FLUSH_TIMEOUT_S,
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.metrics = metrics
        self.max_value_bytes = max_value_bytes
        self.retry_timeout_s = retry_timeout_s
        self.clock = clock
        self.flush_timeout_s = flush_timeout_s
        self._pending: list[_Pending] = []
        # Since when writes have failed with retriable errors and none succeeded.
        self._failing_since: float | None = None
        self._last_error: BaseException | None = None

    @property
    def pending(self) -> int:
        """Return the number of dead letters neither acknowledged nor given up."""
        return len(self._pending)

    def add(
        self,
        topic: str,
        partition: int,
        offset: int,
        *,
        key: bytes | None,
        value: bytes | None,
        reason: str,
        detail: str,
    ) -> None:
        """Queue the dead letter of the record at ``topic/partition/offset`` and send it.

        Never raises: a write that cannot succeed is given up (counted and
        logged). While the topic is failing with retriable errors the letter
        waits for the next :meth:`flush` instead of being sent, so that a
        broker that does not answer blocks the ingest loop once, not once per
        record.
        """
        record = dead_letter_record(
            topic,
            partition,
            offset,
            key=key,
            value=value,
            reason=reason,
            detail=detail,
            max_value_bytes=self.max_value_bytes,
            max_request_size=self._max_request_size(),
        )
        pending = _Pending(record)
        self._pending.append(pending)
        if not any(p.future is None and not p.done for p in self._pending[:-1]):
            self._send(pending)
        self._pending = [p for p in self._pending if not p.done]

    def flush(self) -> None:
        """Wait for every queued dead letter; raise :class:`DeadLetterError` if some must wait.

        Letters whose write failed with a retriable error are sent again
        (stopping at the first that fails again); letters that cannot be
        written are given up, and so are all unsent ones once the topic has
        failed for ``retry_timeout_s``. Returns once every letter is written
        or given up -- or the topic has failed for that long -- and only then
        may the checkpoint move the offsets past them.
        """
        if not self._pending:
            return
        for pending in self._pending:
            if pending.future is None and not pending.done:
                self._send(pending)
                if not pending.done and pending.future is None:
                    break  # failing again: the rest waits for the next attempt
        with contextlib.suppress(KafkaTimeoutError):  # still in flight: waited for next time
            self.producer.flush(timeout=self.flush_timeout_s)
        finished = [p for p in self._pending if p.future is not None and p.future.is_done]
        if any(p.future.succeeded() for p in finished):
            self._failing_since = None  # the topic takes writes
        for pending in finished:
            if pending.future.succeeded():
                pending.done = True
            else:
                self._failed(pending, pending.future.exception)
        failing = self._failing_since
        expired = failing is not None and self.clock() - failing >= self.retry_timeout_s
        if expired:
            for pending in self._pending:
                if pending.future is None and not pending.done:
                    self._give_up(pending, FailureReason.RETRIES_EXHAUSTED, self._last_error)
        self._pending = [p for p in self._pending if not p.done]
        # Past the deadline, letters still in flight (the producer retries them for up to its
        # delivery_timeout_ms) no longer hold the checkpoint back: they are accounted for,
        # written or given up, when they complete.
        if self._pending and not expired:
            unsent = any(p.future is None for p in self._pending)
            raise DeadLetterError(
                len(self._pending), self.topic, self._last_error if unsent else None
            )

    def _send(self, pending: _Pending) -> None:
        """Hand ``pending`` to the producer; a failure is handled (retried or given up)."""
        record = pending.record
        try:
            pending.future = self.producer.send(
                self.topic, key=record.key, value=record.value, headers=list(record.headers)
            )
        except Exception as error:  # raised before sending: too large, no metadata, ...
            pending.future = None
            self._failed(pending, error)

    def _failed(self, pending: _Pending, error: BaseException) -> None:
        reason = failure_reason(error)
        if reason is FailureReason.TOO_LARGE and not pending.stripped:
            # Over the topic's max.message.bytes (or the headers fill max_request_size):
            # the reason and the source coordinates may still fit.
            pending.record = pending.record.without_payload()
            pending.stripped = True
            self._send(pending)
            return
        if reason is not None:
            self._give_up(pending, reason, error)
            return
        pending.future = None  # sent again at the next flush
        self._last_error = error
        if self._failing_since is None:
            self._failing_since = self.clock()

    def _give_up(
        self, pending: _Pending, reason: FailureReason, error: BaseException | None
    ) -> None:
        pending.done = True
        pending.future = None
        self.metrics.dead_letter_failures_total.labels(reason=reason.value).inc()
        record = pending.record
        cause = " ".join(f"{type(error).__name__}: {error}".split())[:500] if error else "-"
        log.warning(
            "invalid record %s (%s) could not be written to dead-letter topic %s and is "
            "skipped (%s): %s",
            record.source,
            record.reason,
            self.topic,
            reason.value,
            cause,
        )

    def _max_request_size(self) -> int:
        config = getattr(self.producer, "config", None)
        if isinstance(config, dict):
            return int(config.get("max_request_size", DEFAULT_MAX_REQUEST_SIZE))
        return DEFAULT_MAX_REQUEST_SIZE

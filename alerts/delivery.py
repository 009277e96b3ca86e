"""Webhook delivery from the outbox: claim due events, send them concurrently, record outcomes.

A :class:`Deliverer` is one delivery worker (one lease ``owner``). Several may share one
outbox, in one process or many: the outbox's leases make each event held by one of them
at a time, so with a receiver that answers, each event is sent once; when a worker dies
mid-batch its events are sent again by another after the lease expires (at-least-once:
receivers de-duplicate on the event id).

What the request looks like is not this module's business: an injected ``render``
turns an :class:`~alerts.outbox.OutboxEvent` into a request (:class:`HttpRequest`) at
each attempt, so that signature timestamps are fresh, and an injected ``send`` makes it.
The default sender, :class:`UrllibSender`, uses the standard library.

Outcomes of an attempt: a 2xx status is ``delivered``; any other status is
``http_error``; ``timeout`` and ``connection_error`` when no response came back (a
request that could not be rendered or made at all counts as ``connection_error``). A
failed attempt is retried after :func:`~alerts.backoff.next_delay`, unless the event is
older than ``policy.max_age_s``: then the attempt's outcome is ``dead`` and the event is
kept, dead, until someone redelivers it.

Logs name the event id, the target, the outcome, the status and the exception's type,
never URLs, headers or bodies (URLs and headers can carry secrets).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from alerts.backoff import DeliveryPolicy, next_delay
from alerts.outbox import AttemptResult, DeliveryAttempt, Outbox, OutboxEvent, Outcome

log = logging.getLogger(__name__)

#: The longest error text stored with an attempt.
MAX_ERROR_CHARS = 200
#: The most bytes of a response body read (and discarded) before the connection closes.
MAX_RESPONSE_BYTES = 64 * 1024


class HttpRequest(Protocol):
    """What a renderer returns: any object with these attributes fits."""

    @property
    def method(self) -> str:
        """The HTTP method, e.g. ``"POST"``."""
        ...

    @property
    def url(self) -> str:
        """The absolute URL."""
        ...

    @property
    def headers(self) -> Sequence[tuple[str, str]]:
        """The headers as ``(name, value)`` pairs."""
        ...

    @property
    def body(self) -> bytes:
        """The raw body."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class Request:
    """A plain :class:`HttpRequest` (for tests and simple renderers)."""

    method: str
    url: str
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""


#: Renders an event into the request of one attempt; ``now`` is the attempt's time (Unix s).
Render = Callable[[OutboxEvent, float], HttpRequest]
#: Makes a request with a timeout (seconds); returns the HTTP status. Raises
#: ``TimeoutError`` when the receiver did not answer in time and any other exception
#: when no response came back (connection refused or reset, DNS, TLS, ...).
Send = Callable[[HttpRequest, float], int]


class DeliveryMetrics(Protocol):
    """Where a :class:`Deliverer` reports; the service implements it with Prometheus."""

    def delivered(self, target: str, outcome: Outcome) -> None:
        """Counts one attempt's outcome (``driftline_webhook_deliveries_total``)."""
        ...

    def backlog(self, pending: int, dead: int) -> None:
        """Sets the outbox's sizes (``driftline_outbox_events{state}``)."""
        ...


class NullMetrics:
    """A :class:`DeliveryMetrics` that discards everything."""

    def delivered(self, target: str, outcome: Outcome) -> None:
        """Does nothing."""

    def backlog(self, pending: int, dead: int) -> None:
        """Does nothing."""


class DeliveryError(ValueError):
    """A :class:`Deliverer` argument is invalid; ``name`` is the parameter."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(f"{name}: {message}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A webhook answered with a redirect is not delivered: following it would send the
    # signed body to a URL nobody configured.
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: object,
        code: int,
        msg: str,
        headers: object,
        newurl: str,
    ) -> None:
        return None


class UrllibSender:
    """The default ``send``: one HTTP request with ``urllib.request``, redirects not followed.

    Returns the status of any response (3xx, 4xx and 5xx included); raises
    ``TimeoutError`` on a timeout and ``OSError`` (``urllib.error.URLError``) when the
    connection failed. ``proxies`` is passed to ``urllib.request.ProxyHandler``
    (``None``: the environment's ``*_proxy`` variables; ``{}``: no proxy).
    """

    def __init__(self, *, proxies: Mapping[str, str] | None = None) -> None:
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler(None if proxies is None else dict(proxies)), _NoRedirect()
        )

    def __call__(self, request: HttpRequest, timeout_s: float) -> int:
        """Sends ``request``; returns the response's status."""
        prepared = urllib.request.Request(
            request.url, data=request.body, method=request.method, headers=dict(request.headers)
        )
        try:
            with self._opener.open(prepared, timeout=timeout_s) as response:
                response.read(MAX_RESPONSE_BYTES)
                status: int = response.status
                return status
        except urllib.error.HTTPError as error:
            with error:
                return error.code
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):
                raise TimeoutError(str(error.reason)) from error
            raise


@dataclass(frozen=True, kw_only=True, slots=True)
class DeliveryReport:
    """What one :meth:`Deliverer.run_once` did: events claimed, and attempts by result.

    ``retried`` attempts failed and were scheduled again; ``dead`` ones failed and gave
    their event up; ``skipped`` events were claimed but not sent (their lease was too
    close to expiring); ``lost`` outcomes were ignored by the outbox because this
    deliverer had lost the event's lease.
    """

    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    skipped: int = 0
    lost: int = 0


def _describe(error: BaseException) -> str:
    """Returns a short text of a failure that holds no URL, header or body."""
    reason = getattr(error, "reason", None)
    if isinstance(reason, BaseException):
        error = reason
    # An OSError's text is its errno's; other exceptions (ValueError from urllib for a
    # malformed URL, a renderer's KeyError) may quote the URL or a header, which can hold
    # secrets: only their type is kept.
    if isinstance(error, OSError) and error.strerror:
        return f"{type(error).__name__}: {error.strerror}"[:MAX_ERROR_CHARS]
    if isinstance(error, TimeoutError):
        return "TimeoutError: timed out"
    return type(error).__name__


class Deliverer:
    """Delivers due outbox events to their targets, ``policy.concurrency`` requests at a time.

    ``owner`` names this worker's leases (default: a random one); ``clock`` returns Unix
    seconds; ``rng`` draws backoff jitter; ``sleep`` pauses :meth:`run_forever` when
    nothing is due (default: waiting on its ``stop`` event). The thread pool is made once
    and reused; :meth:`close` (or leaving a ``with`` block) shuts it down.
    """

    def __init__(
        self,
        *,
        outbox: Outbox,
        render: Render,
        send: Send | None = None,
        policy: DeliveryPolicy | None = None,
        owner: str | None = None,
        clock: Callable[[], float] = time.time,
        metrics: DeliveryMetrics | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        if owner is not None and not owner:
            raise DeliveryError("owner", "must be a non-empty string or None")
        self.outbox = outbox
        self.render = render
        self.send: Send = UrllibSender() if send is None else send
        self.policy = DeliveryPolicy() if policy is None else policy
        self.owner = f"deliverer-{uuid.uuid4().hex[:12]}" if owner is None else owner
        self.clock = clock
        self.metrics: DeliveryMetrics = NullMetrics() if metrics is None else metrics
        self.rng = random.Random() if rng is None else rng
        self._sleep = sleep
        self._rng_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(
            max_workers=self.policy.concurrency, thread_name_prefix="driftline-webhook"
        )
        self._closed = False

    def __enter__(self) -> Deliverer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Waits for requests in flight, then stops the thread pool; idempotent."""
        self._closed = True
        self._pool.shutdown(wait=True)

    def _attempt(self, event: OutboxEvent) -> DeliveryAttempt | None:
        started = self.clock()
        # Sending an event whose lease could expire during the request risks a second
        # deliverer sending it too; leave it to expire and be claimed again instead.
        if event.lease_expires_at is not None and started + self.policy.timeout_s >= (
            event.lease_expires_at
        ):
            return None
        number = event.attempts + 1
        status: int | None = None
        error: str | None = None
        outcome: Outcome
        try:
            request = self.render(event, started)
            status = self.send(request, self.policy.timeout_s)
        except TimeoutError as failure:
            outcome, error = "timeout", _describe(failure)
        except Exception as failure:
            outcome, error = "connection_error", _describe(failure)
        else:
            if 200 <= status < 300:
                outcome = "delivered"
            else:
                outcome, error = "http_error", f"HTTP {status}"
        return DeliveryAttempt(
            event_id=event.event_id,
            target=event.target,
            attempt=number,
            started_at=started,
            finished_at=self.clock(),
            outcome=outcome,
            status_code=status,
            error=error,
        )

    def _decide(self, event: OutboxEvent, attempt: DeliveryAttempt) -> AttemptResult:
        """What ``attempt`` makes of ``event``: delivered, retried later, or dead (too old)."""
        policy = self.policy
        if attempt.outcome == "delivered":
            return AttemptResult(attempt=attempt, state="delivered")
        if attempt.finished_at - event.created_at >= policy.max_age_s:
            return AttemptResult(attempt=dataclasses.replace(attempt, outcome="dead"), state="dead")
        with self._rng_lock:
            delay = next_delay(
                attempt.attempt,
                base_s=policy.backoff_base_s,
                factor=policy.backoff_factor,
                max_s=policy.backoff_max_s,
                rng=self.rng,
            )
        return AttemptResult(
            attempt=attempt, state="pending", next_attempt_at=attempt.finished_at + delay
        )

    def _report(self, result: AttemptResult, kept: bool) -> str:
        """Count and log one recorded attempt; returns the :class:`DeliveryReport` field."""
        attempt = result.attempt
        field = {"delivered": "delivered", "dead": "dead", "pending": "retried"}[result.state]
        self.metrics.delivered(attempt.target, attempt.outcome)
        # One line per retry would flood the log during a receiver's outage: retries are
        # INFO (the metric counts them); giving up and losing a lease are WARNING.
        if not kept or field == "dead":
            log_level = logging.WARNING
        else:
            log_level = logging.DEBUG if field == "delivered" else logging.INFO
        log.log(
            log_level,
            "webhook %s to %s: attempt %d %s (status %s%s)%s",
            attempt.event_id,
            attempt.target,
            attempt.attempt,
            attempt.outcome,
            attempt.status_code,
            f", {attempt.error}" if attempt.error else "",
            "" if kept else "; ignored: lease lost to another deliverer",
        )
        return field if kept else "lost"

    def run_once(self) -> DeliveryReport:
        """Claims one batch of due events, sends them and records each outcome; returns counts."""
        if self._closed:
            raise DeliveryError("self", "this Deliverer is closed")
        policy = self.policy
        batch = self.outbox.claim(self.owner, self.clock(), policy.lease_s, policy.batch_size)
        tally = dict.fromkeys(("delivered", "retried", "dead", "skipped", "lost"), 0)
        futures = {self._pool.submit(self._attempt, event): event for event in batch}
        # Outcomes are recorded from this thread only, so an outbox needs no more thread
        # safety per deliverer than one caller at a time.
        results = []
        for future in as_completed(futures):
            attempt = future.result()
            if attempt is None:
                tally["skipped"] += 1
                continue
            results.append(self._decide(futures[future], attempt))
        # One call (one database transaction) for the whole batch: per-event commits were
        # most of the cost of delivery from a SQL outbox.
        for result, kept in zip(results, self.outbox.record(self.owner, results), strict=True):
            tally[self._report(result, kept)] += 1
        counts = self.outbox.counts()
        self.metrics.backlog(counts.get("pending", 0), counts.get("dead", 0))
        return DeliveryReport(claimed=len(batch), **tally)

    def run_forever(self, stop: threading.Event) -> None:
        """Runs :meth:`run_once` until ``stop`` is set, pausing when a batch was not full."""
        while not stop.is_set():
            try:
                report = self.run_once()
            except Exception:
                # A store outage must not end delivery: log it and try again after a pause.
                log.exception("webhook delivery round failed")
                report = DeliveryReport()
            if report.claimed < self.policy.batch_size:
                if self._sleep is None:
                    stop.wait(self.policy.idle_sleep_s)
                else:
                    self._sleep(self.policy.idle_sleep_s)

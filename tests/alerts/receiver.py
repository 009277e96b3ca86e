"""A real local webhook receiver for tests and benchmarks: HTTP on 127.0.0.1, scriptable.

::

    with Receiver(statuses=[500, 500]) as receiver:   # the first two requests get 500
        ...POST to receiver.url...
        receiver.accepted["<event id>"]               # 2xx answers per event id

Scripting, per request in arrival order: ``statuses`` (popped, then ``default_status``)
and ``delays`` (seconds to wait before answering, popped, then ``default_delay_s``), so
that a client with a small timeout times out. :meth:`Receiver.stop` closes the listening
socket (connections are refused) and :meth:`Receiver.start` listens again on the same
port. ``verify(headers, body) -> bool`` checks a signature: a request it rejects gets 401.

Every request is recorded (:attr:`Receiver.requests`); ``accepted`` counts the 2xx
answers per event id (``X-Driftline-Event-Id``, else ``webhook-id``, else ``ce-id``);
``max_in_flight`` is the most requests handled at once.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

from alerts.delivery import Deliverer
from alerts.outbox import Outbox

EVENT_ID_HEADERS = ("x-driftline-event-id", "webhook-id", "ce-id")

#: ``verify(headers, body)``: headers with lower-case names.
Verify = Callable[[Mapping[str, str], bytes], bool]


@dataclass(frozen=True, kw_only=True, slots=True)
class ReceivedRequest:
    """One request as the receiver saw it, and what it answered."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    status: int

    @property
    def event_id(self) -> str | None:
        """The event id header's value, or ``None``."""
        lower = {name.lower(): value for name, value in self.headers}
        return next((lower[name] for name in EVENT_ID_HEADERS if name in lower), None)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        """Keeps test output quiet."""

    def do_POST(self) -> None:
        self.server.receiver._handle(self)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops the SYNs of a burst of concurrent clients,
    # which then retry after a second.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], receiver: Receiver) -> None:
        self.receiver = receiver
        super().__init__(address, _Handler)


class Receiver:
    """A scriptable HTTP webhook receiver on 127.0.0.1 (a free port), a context manager."""

    def __init__(
        self,
        *,
        statuses: Iterable[int] = (),
        delays: Iterable[float] = (),
        default_status: int = 200,
        default_delay_s: float = 0.0,
        verify: Verify | None = None,
        record_bodies: bool = True,
    ) -> None:
        self._lock = threading.Lock()
        self.statuses = list(statuses)
        self.delays = list(delays)
        self.default_status = default_status
        self.default_delay_s = default_delay_s
        self.verify = verify
        self.record_bodies = record_bodies
        self.requests: list[ReceivedRequest] = []
        self.accepted: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.port = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        """The receiver's base URL, ``http://127.0.0.1:PORT/hook``."""
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def running(self) -> bool:
        """Whether the receiver is listening."""
        return self._server is not None

    def script(self, *, statuses: Iterable[int] = (), delays: Iterable[float] = ()) -> None:
        """Appends answers for the next requests (statuses and delays, in arrival order)."""
        with self._lock:
            self.statuses.extend(statuses)
            self.delays.extend(delays)

    def start(self) -> Receiver:
        """Listens (on the previous port after a :meth:`stop`); returns the receiver."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"receiver-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Closes the listening socket (new connections are refused); keeps what was recorded."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()  # ends the scripted waits of requests in flight
        server.shutdown()
        server.server_close()
        thread.join()
        self._server = self._thread = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def received_ids(self) -> Counter[str]:
        """Counts every request per event id, whatever was answered."""
        with self._lock:
            return Counter(r.event_id for r in self.requests if r.event_id is not None)

    def _handle(self, handler: _Handler) -> None:
        answered = False
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            status = self.statuses.pop(0) if self.statuses else self.default_status
            delay = self.delays.pop(0) if self.delays else self.default_delay_s
        try:
            length = int(handler.headers.get("Content-Length") or 0)
            body = handler.rfile.read(length) if length else b""
            headers = tuple((name, value) for name, value in handler.headers.items())
            lower = {name.lower(): value for name, value in headers}
            if self.verify is not None and not self.verify(lower, body):
                status = 401
            if delay > 0 and self._stopping.wait(delay):
                return
            request = ReceivedRequest(
                method=handler.command,
                path=handler.path,
                headers=headers,
                body=body if self.record_bodies else b"",
                status=status,
            )
            with self._lock:
                self.requests.append(request)
                if 200 <= status < 300 and request.event_id is not None:
                    self.accepted[request.event_id] += 1
                # No longer in flight once answered: the client may send its next request
                # as soon as it reads the answer, before this handler returns.
                self.in_flight -= 1
                answered = True
            try:
                handler.send_response(status)
                if 300 <= status < 400:
                    handler.send_header("Location", self.url + "/redirected")
                handler.send_header("Content-Length", "2")
                handler.send_header("Connection", "close")
                handler.end_headers()
                handler.wfile.write(b"ok")
                handler.close_connection = True
            except OSError:
                pass  # the client gave up (timed out) before the answer
        finally:
            if not answered:
                with self._lock:
                    self.in_flight -= 1


def run_deliverers(deliverers: Sequence[Deliverer], outbox: Outbox, delivered: int) -> None:
    """Run ``deliverers`` in threads until ``outbox`` counts ``delivered`` events, then close them.

    30 s bound a hang; they are not a speed requirement.
    """
    stop = threading.Event()
    threads = [threading.Thread(target=d.run_forever, args=(stop,)) for d in deliverers]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 30
        while outbox.counts()["delivered"] < delivered and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        for deliverer in deliverers:
            deliverer.close()

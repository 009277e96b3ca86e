"""The demo's local webhook receiver: verifies every signature and counts what arrives.

It stands in for the team's own endpoint and job runner: ``/hooks`` takes the
signed driftline webhooks (``X-Driftline-Signature``, checked with the
secret the demo put in its environment; a bad or stale one gets 401),
``/retrain`` the generic retraining requests. Each event id is counted once
(delivery is at-least-once: a retried event may arrive twice).
"""

from __future__ import annotations

import http.server
import threading
from collections import Counter
from dataclasses import dataclass, field

import orjson

from alerts.signing import SIGNATURE_HEADER, SignatureError, verify_driftline_signature


@dataclass
class Received:
    """What the receiver has accepted so far (ids once each) and how many it refused."""

    types: Counter[str] = field(default_factory=Counter)
    ids: set[str] = field(default_factory=set)
    retrain: list[dict[str, object]] = field(default_factory=list)
    verified: int = 0
    rejected: int = 0


class DemoReceiver:
    """A webhook receiver on 127.0.0.1 (a free port) for the demo; ``url`` is its base URL."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.received = Received()
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the demo's table shows what arrived."""

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = receiver._take(self.path, self.headers.get(SIGNATURE_HEADER), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="demo-receiver", daemon=True
        )

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> DemoReceiver:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def snapshot(self) -> Received:
        """A copy of what was received so far."""
        with self._lock:
            r = self.received
            return Received(Counter(r.types), set(r.ids), list(r.retrain), r.verified, r.rejected)

    def _take(self, path: str, signature: str | None, body: bytes) -> int:
        try:
            event = orjson.loads(body)
        except orjson.JSONDecodeError:
            return 400
        with self._lock:
            if path.startswith("/retrain"):
                if event.get("id") not in {r.get("id") for r in self.received.retrain}:
                    self.received.retrain.append(event)
                return 204
            try:
                verify_driftline_signature(self.secret, signature or "", body)
            except SignatureError:
                self.received.rejected += 1
                return 401
            self.received.verified += 1
            if event.get("id") not in self.received.ids:
                self.received.ids.add(str(event.get("id")))
                self.received.types[str(event.get("type"))] += 1
        return 204


__all__ = ["DemoReceiver", "Received"]

"""A driftline webhook receiver using only the standard library.

Run: DRIFTLINE_WEBHOOK_SECRET=... python receiver_example.py PORT
"""

import hashlib
import hmac
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ.get("DRIFTLINE_WEBHOOK_SECRET", "").encode()
TOLERANCE_S = 300  # reject replays of requests older (or newer) than 5 minutes
seen: set[str] = set()  # event ids already handled: delivery is at-least-once


def verify(header: str, body: bytes) -> bool:
    """True if header is a fresh X-Driftline-Signature of body."""
    pairs = [part.strip().partition("=") for part in header.split(",")]
    t = [value for key, _, value in pairs if key == "t"]
    if len(t) != 1 or not (t[0].isascii() and t[0].isdigit()):
        return False
    if abs(time.time() - int(t[0])) > TOLERANCE_S:
        return False
    expected = hmac.new(SECRET, t[0].encode() + b"." + body, hashlib.sha256).hexdigest().encode()
    return any(hmac.compare_digest(expected, v.encode()) for key, _, v in pairs if key == "v1")


class Receiver(BaseHTTPRequestHandler):
    """Answers 204 to correctly signed POSTs, 401 to others."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        ok = verify(self.headers.get("X-Driftline-Signature", ""), body)
        self.send_response(204 if ok else 401)
        self.end_headers()
        event_id = self.headers.get("X-Driftline-Event-Id", "")
        if ok and event_id not in seen:
            seen.add(event_id)
            print(event_id, body.decode(), flush=True)  # handle the event here


if __name__ == "__main__":
    if not SECRET:
        sys.exit("set DRIFTLINE_WEBHOOK_SECRET")
    HTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver).serve_forever()

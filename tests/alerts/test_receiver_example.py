"""The README's standard-library receiver, run as a real process and sent real requests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from alerts.formats import HttpRequest, render_request
from alerts.targets import WebhookTarget
from tests.alerts.test_events import make_event

SCRIPT = Path(__file__).resolve().parents[2] / "alerts" / "receiver_example.py"
SECRET = "receiver-test-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def receiver() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    env = {**os.environ, "DRIFTLINE_WEBHOOK_SECRET": SECRET}
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            assert process.poll() is None, "the receiver exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("the receiver did not listen within 10 s")
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/hook", process
    finally:
        # SIGTERM: a background process of a non-interactive shell ignores SIGINT.
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def send(request: HttpRequest) -> int:
    http = urllib.request.Request(
        request.url, data=request.body, headers=dict(request.headers), method=request.method
    )
    try:
        with urllib.request.urlopen(http, timeout=5) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code


def signed(url: str, secret: str, now: float) -> HttpRequest:
    target = WebhookTarget(name="example", url=url, secret_env="DRIFTLINE_WEBHOOK_SECRET")
    return render_request(make_event(), target, now=now, secret=SecretStr(secret))


def test_receiver_accepts_signed_and_rejects_forged_and_stale(
    receiver: tuple[str, subprocess.Popen[str]],
) -> None:
    url, process = receiver
    # The receiver reads the real clock, so requests are signed at the real time.
    now = time.time()
    good = signed(url, SECRET, now)
    assert send(good) == 204
    assert send(good) == 204  # a retry is acknowledged but handled once
    assert send(signed(url, "wrong-secret", now)) == 401
    # 5 minutes is the tolerance; 310 s keeps a margin for whole-second timestamps (a time
    # of now + 301 floors to now + 300.x, which is inside it once the request takes 0.x s).
    assert send(signed(url, SECRET, now - 310)) in (400, 401)
    assert send(signed(url, SECRET, now + 310)) in (400, 401)
    unsigned = HttpRequest(method="POST", url=url, headers=(), body=good.body)
    assert send(unsigned) == 401
    tampered = HttpRequest(method="POST", url=url, headers=good.headers, body=good.body + b" ")
    assert send(tampered) == 401

    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=10)
    lines = output.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(make_event().id + " {")


def test_receiver_example_stays_short_and_standard_library_only() -> None:
    source = SCRIPT.read_text()
    assert len(source.splitlines()) <= 50
    imports = {
        line.split()[1].split(".")[0]
        for line in source.splitlines()
        if line.startswith(("import ", "from "))
    }
    assert imports <= set(sys.stdlib_module_names)


def test_the_readme_shows_this_very_receiver() -> None:
    """The README's snippet is the file these tests run, verbatim (no second copy to drift)."""
    root = Path(__file__).resolve().parents[2]
    example = (root / "alerts" / "receiver_example.py").read_text()
    assert f"```python\n{example}```" in (root / "README.md").read_text()

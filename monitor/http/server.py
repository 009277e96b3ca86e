"""Running the API with uvicorn in a background thread, bound to loopback unless configured."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from monitor.config.service import ConfigError, is_loopback_host
from monitor.http.app import ApiState

log = logging.getLogger(__name__)

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
        isinstance(state, ApiState)
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


__all__ = [
    "ApiServer",
    "serve",
]

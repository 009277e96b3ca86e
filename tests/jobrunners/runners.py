"""Real job runners for the retrain tests: Apache Airflow 3 and Prefect 3, started and stopped.

Each runs from its own virtualenv under ``.cache`` (``make jobrunners``), because their
pins conflict with ours. Everything binds to 127.0.0.1 on free ports and keeps its state
(SQLite databases, logs, the records the jobs write) in a directory the caller owns.
Processes start in a session of their own and are stopped as a group: SIGTERM, then
SIGKILL after a grace period, so workers they forked do not outlive them.

- :func:`start_airflow`: ``airflow db migrate``, then ``api-server``, ``scheduler`` and
  ``dag-processor`` as three processes (``airflow standalone`` leaves children running on
  SIGTERM), LocalExecutor with ``PARALLELISM=2``, the simple auth manager with a passwords
  file, and the DAG ``driftline_retrain`` (``dags/driftline_retrain.py``).
- :func:`start_prefect`: ``prefect server start`` with Basic auth
  (``PREFECT_SERVER_API_AUTH_STRING``) and ``prefect_flow.py`` serving the flows.

The facts these follow (versions, settings, timings) are in ``docs/job-runners.md``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.servers import LOCALHOST, REPO, ServerStartError, free_port

HERE = Path(__file__).resolve().parent
AIRFLOW_VENV = REPO / ".cache" / "airflow-venv"
PREFECT_VENV = REPO / ".cache" / "prefect-venv"
#: The stamp ``make jobrunners`` writes once a virtualenv is complete (``-<version>``).
STAMP_GLOB = ".installed-*"
AIRFLOW_DAG_ID = "driftline_retrain"
#: Where the DAG and the flows write what they were given (one JSON file per run).
RECORD_DIR_ENV = "DRIFTLINE_RETRAIN_RECORD_DIR"
PREFECT_FLOWS = {
    "keys": ("driftline-retrain", "keys"),
    "wrapped": ("driftline-retrain-wrapped", "wrapped"),
}

T = TypeVar("T")


class RunnerUnavailable(RuntimeError):  # noqa: N818 -- as tests.servers.BrokerUnavailable
    """A job runner's virtualenv is missing: ``make jobrunners`` builds it."""


# --- HTTP ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Response:
    """An HTTP answer: status and body (parsed as JSON when it is JSON, else ``None``)."""

    status: int
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


def http(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    json_body: Any = None,
    timeout: float = 30.0,
) -> Response:
    """Sends one request with urllib and returns its answer, whatever the status."""
    all_headers = dict(headers or {})
    if json_body is not None:
        body = json.dumps(json_body).encode()
        all_headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data=body, headers=all_headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return Response(answer.status, answer.read())
    except urllib.error.HTTPError as error:
        return Response(error.code, error.read())


def poll(check: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.25) -> T:
    """Calls ``check`` until it returns something other than ``None`` and returns that.

    Raises :class:`TimeoutError` naming ``what`` after ``timeout`` seconds. Connection
    errors count as "not yet" (a server that is still starting refuses connections).
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = check()
        except (OSError, urllib.error.URLError) as error:
            result, last_error = None, error
        if result is not None:
            return result
        if time.monotonic() > deadline:
            suffix = f" (last error: {last_error})" if last_error else ""
            raise TimeoutError(f"{what}: not within {timeout} s{suffix}")
        time.sleep(interval)


# --- processes -----------------------------------------------------------------------------


@dataclass(eq=False)
class Process:
    """A server process started in a session of its own, its output in ``log_path``."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def alive(self) -> bool:
        """True while the process has not exited."""
        return self.process.poll() is None

    def log(self, tail: int = 4000) -> str:
        """The last ``tail`` characters of the process's output (for failure messages)."""
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def terminate(self) -> None:
        """Sends SIGTERM to the process group (the process and what it forked)."""
        self._signal(self.process.pid, signal.SIGTERM)

    def finish(self, deadline: float) -> int:
        """Waits for the group to exit until ``deadline`` (monotonic), then SIGKILLs it."""
        group = self.process.pid  # start_new_session: the group id is the leader's pid
        while time.monotonic() < deadline and self._group_alive(group):
            time.sleep(0.1)
        if self._group_alive(group):
            self._signal(group, signal.SIGKILL)
        return self.process.wait()

    def stop(self, grace: float = 15.0) -> int:
        """SIGTERM to the process group, SIGKILL what is left after ``grace`` s; the status."""
        self.terminate()
        return self.finish(time.monotonic() + grace)

    def _group_alive(self, group: int) -> bool:
        if self.process.poll() is None:  # also reaps the leader once it exited
            return True
        try:
            os.killpg(group, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    @staticmethod
    def _signal(group: int, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signum)


def spawn(name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path) -> Process:
    """Starts ``argv`` in a new session with ``env``, stdout and stderr to ``log_dir/name.log``."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
        )
    return Process(name, process, log_path)


def _base_env(prefixes: tuple[str, ...]) -> dict[str, str]:
    # A developer's own AIRFLOW__* / PREFECT_* settings must not leak into the servers.
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def venv_python(venv: Path, make_target: str) -> Path:
    python = venv / "bin" / "python"
    if not any(venv.glob(STAMP_GLOB)) or not python.is_file():
        raise RunnerUnavailable(
            f"{venv.relative_to(REPO)} is not installed: run `make {make_target}`"
        )
    return python


@dataclass(eq=False)
class _Runner:
    """Processes started together, stopped together (in reverse order)."""

    home: Path
    processes: list[Process] = field(default_factory=list)

    def check_alive(self) -> None:
        """Raises :class:`ServerStartError` with its output if a process has exited."""
        for process in self.processes:
            if not process.alive:
                raise ServerStartError(
                    f"{process.name} exited with status {process.process.returncode}:\n"
                    f"{process.log()}"
                )

    def logs(self) -> str:
        """The tail of every process's output."""
        return "\n".join(f"--- {p.name} ---\n{p.log()}" for p in self.processes)

    def stop(self, grace: float = 15.0) -> None:
        """Stops the processes in reverse order (SIGTERM, SIGKILL after ``grace`` s each).

        In reverse: Prefect's runner pauses its deployments through the server on SIGTERM,
        and hangs until killed if the server is already gone.
        """
        for process in reversed(self.processes):
            process.stop(grace)


# --- Airflow -------------------------------------------------------------------------------


@dataclass(eq=False)
class Airflow(_Runner):
    """A running Airflow 3: ``url`` is the api-server, a user ``username``/``password``."""

    url: str = ""
    username: str = "driftline"
    password: str = ""
    record_dir: Path = Path()

    def token(self) -> str:
        """A JWT from ``POST /auth/token`` (the simple auth manager's login; 201)."""
        answer = http(
            "POST",
            f"{self.url}/auth/token",
            json_body={"username": self.username, "password": self.password},
        )
        if answer.status not in (200, 201):
            raise ServerStartError(f"POST /auth/token: {answer.status} {answer.body[:300]!r}")
        return str(answer.json()["access_token"])

    def stop(self, grace: float = 15.0) -> None:
        """Stops the three processes at once (SIGTERM, SIGKILL after ``grace`` s).

        At once: the scheduler and the api-server each take about 5 s to shut down, and
        neither needs the other to.
        """
        for process in self.processes:
            process.terminate()
        deadline = time.monotonic() + grace
        for process in self.processes:
            process.finish(deadline)

    def api(self, method: str, path: str, token: str, json_body: Any = None) -> Response:
        """Calls ``{url}/api/v2{path}`` with a Bearer ``token``."""
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        return http(method, f"{self.url}/api/v2{path}", headers=headers, json_body=json_body)


def airflow_env(home: Path, port: int, password_file: Path, record_dir: Path) -> dict[str, str]:
    """The environment of every Airflow process of :func:`start_airflow`."""
    url = f"http://{LOCALHOST}:{port}"
    return {
        **_base_env(("AIRFLOW",)),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # The default (32) forks 32 workers at scheduler start.
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "driftline:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file),
        "AIRFLOW__API__HOST": LOCALHOST,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        # One secret for every process: the scheduler's task tokens must verify at the API.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        RECORD_DIR_ENV: str(record_dir),
        "NO_COLOR": "1",
    }


def start_airflow(home: Path, *, timeout: float = 180.0) -> Airflow:
    """Starts Airflow in ``home`` (an empty directory) and returns it once it can run the DAG.

    Ready means: ``/api/v2/monitor/health`` reports the scheduler and the dag-processor
    healthy and ``GET /api/v2/dags/driftline_retrain`` answers 200 (the DAG is parsed).
    Raises :class:`RunnerUnavailable` without the virtualenv and :class:`ServerStartError`
    (with the processes' output) if it does not get there within ``timeout`` seconds.
    """
    python = venv_python(AIRFLOW_VENV, "jobrunners")
    airflow = [str(python), "-m", "airflow"]
    (home / "dags").mkdir(parents=True)
    shutil.copy(HERE / "dags" / "driftline_retrain.py", home / "dags")
    record_dir = home / "records"
    record_dir.mkdir()
    logs = home / "process-logs"
    logs.mkdir()
    password = secrets.token_urlsafe(16)
    password_file = home / "passwords.json"
    password_file.write_text(json.dumps({"driftline": password}))
    port = free_port()
    env = airflow_env(home, port, password_file, record_dir)
    runner = Airflow(home, url=f"http://{LOCALHOST}:{port}", password=password)
    runner.record_dir = record_dir
    try:
        migrate = subprocess.run(
            [*airflow, "db", "migrate"],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if migrate.returncode != 0:
            output = (migrate.stdout + migrate.stderr).decode(errors="replace")[-4000:]
            raise ServerStartError(f"airflow db migrate: status {migrate.returncode}:\n{output}")
        for command in ("api-server", "scheduler", "dag-processor"):
            runner.processes.append(spawn(command, [*airflow, command], env, logs))

        def ready() -> bool | None:
            runner.check_alive()
            health = http("GET", f"{runner.url}/api/v2/monitor/health", timeout=5)
            if health.status != 200:
                return None
            status = health.json()
            components = ("metadatabase", "scheduler", "dag_processor")
            if any(status.get(c, {}).get("status") != "healthy" for c in components):
                return None
            dag = runner.api("GET", f"/dags/{AIRFLOW_DAG_ID}", runner.token())
            return True if dag.status == 200 else None

        poll(ready, timeout=timeout, what="Airflow healthy with the DAG parsed", interval=0.5)
    except BaseException as error:
        output = runner.logs()
        runner.stop()
        if isinstance(error, TimeoutError | ServerStartError):
            raise ServerStartError(f"Airflow did not start: {error}\n{output}") from None
        raise
    return runner


# --- Prefect -------------------------------------------------------------------------------


@dataclass(eq=False)
class Prefect(_Runner):
    """A running Prefect 3 server (``api`` is ``{url}/api``) and the runner serving the flows.

    ``auth`` is the ``user:password`` of ``PREFECT_SERVER_API_AUTH_STRING``;
    ``deployments`` maps ``"keys"`` and ``"wrapped"`` to deployment ids.
    """

    url: str = ""
    auth: str = ""
    record_dir: Path = Path()
    deployments: dict[str, str] = field(default_factory=dict)

    @property
    def api(self) -> str:
        """The API base, ``{url}/api`` (what ``PREFECT_API_URL`` is set to)."""
        return f"{self.url}/api"

    def call(self, method: str, path: str, json_body: Any = None) -> Response:
        """Calls ``{api}{path}`` with Basic auth."""
        basic = base64.b64encode(self.auth.encode()).decode()
        headers = {"Authorization": f"Basic {basic}", "Accept": "application/json"}
        return http(method, f"{self.api}{path}", headers=headers, json_body=json_body)


def prefect_env(home: Path, port: int, auth: str, record_dir: Path) -> dict[str, str]:
    """The environment of the Prefect server and of the process serving the flows."""
    return {
        **_base_env(("PREFECT_",)),
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        "PREFECT_SERVER_API_AUTH_STRING": auth,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        # The client side (flow.serve's runner): same server, same credentials.
        "PREFECT_API_URL": f"http://{LOCALHOST}:{port}/api",
        "PREFECT_API_AUTH_STRING": auth,
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        RECORD_DIR_ENV: str(record_dir),
        "NO_COLOR": "1",
    }


def start_prefect(home: Path, *, timeout: float = 180.0) -> Prefect:
    """Starts a Prefect server and the flows' runner in ``home``; returns once both serve.

    Ready means: ``/api/health`` answers and both deployments of ``prefect_flow.py`` exist.
    Raises :class:`RunnerUnavailable` without the virtualenv and :class:`ServerStartError`
    (with the processes' output) if it does not get there within ``timeout`` seconds.
    """
    python = venv_python(PREFECT_VENV, "jobrunners")
    record_dir = home / "records"
    record_dir.mkdir(parents=True)
    logs = home / "process-logs"
    logs.mkdir()
    port = free_port()
    auth = f"driftline:{secrets.token_urlsafe(16)}"
    env = prefect_env(home, port, auth, record_dir)
    runner = Prefect(home, url=f"http://{LOCALHOST}:{port}", auth=auth, record_dir=record_dir)
    server = [str(python), "-m", "prefect", "server", "start"]
    try:
        runner.processes.append(
            spawn("server", [*server, "--host", LOCALHOST, "--port", str(port)], env, logs)
        )

        def healthy() -> bool | None:
            runner.check_alive()
            return True if runner.call("GET", "/health").status == 200 else None

        poll(healthy, timeout=timeout, what="Prefect server healthy", interval=0.5)
        runner.processes.append(
            spawn("serve", [str(python), str(HERE / "prefect_flow.py")], env, logs)
        )

        def deployments() -> dict[str, str] | None:
            runner.check_alive()
            found = {}
            for key, (flow, name) in PREFECT_FLOWS.items():
                answer = runner.call("GET", f"/deployments/name/{flow}/{name}")
                if answer.status != 200:
                    return None
                found[key] = str(answer.json()["id"])
            return found

        runner.deployments = poll(deployments, timeout=timeout, what="Prefect deployments")
    except BaseException as error:
        output = runner.logs()
        runner.stop()
        if isinstance(error, TimeoutError | ServerStartError):
            raise ServerStartError(f"Prefect did not start: {error}\n{output}") from None
        raise
    return runner

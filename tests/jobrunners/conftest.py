"""Session fixtures: a real Apache Airflow 3 and a real Prefect 3 (:mod:`.runners`).

- ``airflow``: api-server, scheduler and dag-processor serving the DAG ``driftline_retrain``.
- ``prefect``: a Prefect server and ``prefect_flow.py``'s runner serving two deployments.

One of each per test session (per xdist worker that needs it), stopped at the end (SIGTERM,
then SIGKILL) and their directory deleted. Without the virtualenvs (``make jobrunners``)
the tests skip, and fail under ``CI=true``; a runner that is installed but does not start
is an error everywhere.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

from tests import servers
from tests.jobrunners import runners


class _Stoppable(Protocol):
    def stop(self) -> None: ...


Runner = TypeVar("Runner", bound=_Stoppable)

# These import airflow or prefect (installed only in their own virtualenvs): pytest's
# --doctest-modules must not import them.
collect_ignore = ["dags", "prefect_flow.py", "openapi_check.py"]


def _running(
    tmp_path_factory: pytest.TempPathFactory, name: str, start: Callable[[Path], Runner]
) -> Iterator[Runner]:
    """Start a runner in a fresh directory; stop it and delete the directory at the end.

    A runner that is not installed (``RunnerUnavailable``) skips, and fails under CI=true.
    """
    base = tmp_path_factory.mktemp(name)
    try:
        runner = start(base / "home")
    except runners.RunnerUnavailable as error:
        shutil.rmtree(base, ignore_errors=True)
        servers.skip_or_fail(str(error))
    try:
        yield runner
    finally:
        runner.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[runners.Airflow]:
    """A running Airflow 3; ``.url`` is its api-server, ``.token()`` logs in."""
    yield from _running(tmp_path_factory, "airflow", runners.start_airflow)


@pytest.fixture(scope="session")
def prefect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[runners.Prefect]:
    """A running Prefect 3 server with the flows served; ``.deployments`` has their ids."""
    yield from _running(tmp_path_factory, "prefect", runners.start_prefect)


@pytest.fixture(scope="session")
def airflow_python() -> str:
    """The Airflow virtualenv's python (for tools that need the airflow package)."""
    try:
        return str(runners.venv_python(runners.AIRFLOW_VENV, "jobrunners"))
    except runners.RunnerUnavailable as error:
        servers.skip_or_fail(str(error))

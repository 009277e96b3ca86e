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
from collections.abc import Iterator

import pytest

from tests import servers
from tests.jobrunners import runners

# These import airflow or prefect (installed only in their own virtualenvs): pytest's
# --doctest-modules must not import them.
collect_ignore = ["dags", "prefect_flow.py", "openapi_check.py"]


@pytest.fixture(scope="session")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[runners.Airflow]:
    """A running Airflow 3; ``.url`` is its api-server, ``.token()`` logs in."""
    base = tmp_path_factory.mktemp("airflow")
    try:
        runner = runners.start_airflow(base / "home")
    except runners.RunnerUnavailable as error:
        shutil.rmtree(base, ignore_errors=True)
        servers.skip_or_fail(str(error))
    try:
        yield runner
    finally:
        runner.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def prefect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[runners.Prefect]:
    """A running Prefect 3 server with the flows served; ``.deployments`` has their ids."""
    base = tmp_path_factory.mktemp("prefect")
    try:
        runner = runners.start_prefect(base / "home")
    except runners.RunnerUnavailable as error:
        shutil.rmtree(base, ignore_errors=True)
        servers.skip_or_fail(str(error))
    try:
        yield runner
    finally:
        runner.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_python() -> str:
    """The Airflow virtualenv's python (for tools that need the airflow package)."""
    try:
        return str(runners.venv_python(runners.AIRFLOW_VENV, "jobrunners"))
    except runners.RunnerUnavailable as error:
        servers.skip_or_fail(str(error))

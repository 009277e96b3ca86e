"""PostgreSQL for the integration suite: a private cluster the suite starts, or a given server.

No server runs when a machine or CI starts. ``make test`` installs Debian's
``postgresql`` when its binaries are missing (``make servers``); each pytest
worker then runs :func:`start_cluster`: ``initdb`` into a temporary folder and
``pg_ctl start`` on a free port of 127.0.0.1, as the ``postgres`` user when
running as root (the server refuses to run as root). The cluster is stopped
(``pg_ctl stop -m immediate``) and deleted at the end of the session.

To use an existing server instead, set :data:`POSTGRES_ADMIN_URL_ENV` to a libpq
URL of a role that may create databases (``postgresql://user@host:port/db``).
Either way every test session gets fresh databases (:func:`postgres_database`).
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tests.servers import LOCALHOST, ServerStartError, free_port, skip_or_fail, unique_name

#: A libpq URL of an existing server to use instead of starting a cluster.
POSTGRES_ADMIN_URL_ENV = "DRIFTLINE_TEST_POSTGRES_URL"
#: A folder holding ``initdb`` and ``pg_ctl``, if they are not where Debian puts them.
POSTGRES_BIN_ENV = "DRIFTLINE_TEST_POSTGRES_BIN"
#: The OS user the server runs as when the suite runs as root.
SERVER_USER = "postgres"

# Test settings: durability off (a crashed test cluster is thrown away anyway), enough
# connections for scale-out tests with several processes and pools.
_SERVER_OPTIONS = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    "-c max_connections=300 -c shared_buffers=64MB"
)


class PostgresUnavailable(RuntimeError):  # noqa: N818 -- reads as a state
    """No PostgreSQL binaries (``make servers`` installs Debian's ``postgresql``)."""


def binaries() -> Path:
    """The folder with ``initdb`` and ``pg_ctl``: the env override, Debian's newest, or PATH."""
    candidates: list[Path] = []
    if os.environ.get(POSTGRES_BIN_ENV):
        candidates.append(Path(os.environ[POSTGRES_BIN_ENV]))
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates += debian
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    raise PostgresUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl): run `make servers` (installs "
        f"Debian's postgresql), set {POSTGRES_BIN_ENV}, or set {POSTGRES_ADMIN_URL_ENV} to "
        "an existing server"
    )


_RUNNING: set[PostgresCluster] = set()


@dataclass(eq=False)
class PostgresCluster:
    """A private PostgreSQL cluster in ``directory`` serving 127.0.0.1:``port``."""

    directory: Path
    port: int
    bin_dir: Path

    @property
    def admin_url(self) -> str:
        """libpq URL of the ``postgres`` database as the ``postgres`` superuser (trust auth)."""
        return f"postgresql://postgres@{LOCALHOST}:{self.port}/postgres"

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self.directory / "data"

    def _run(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        """Run a server binary as :data:`SERVER_USER` when root, else as ourselves."""
        argv = [str(self.bin_dir / command[0]), *command[1:]]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", SERVER_USER, "--", *argv]
        return subprocess.run(argv, capture_output=True, timeout=timeout, check=False)

    def start(self) -> PostgresCluster:
        """``initdb`` (first time) and ``pg_ctl start``; return once it accepts connections."""
        if not (self.data_dir / "PG_VERSION").exists():
            done = self._run(
                "initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8"
            )
            if done.returncode != 0:
                raise ServerStartError(f"initdb failed: {(done.stdout + done.stderr).decode()}")
        options = f"-h {LOCALHOST} -p {self.port} -k {self.directory} {_SERVER_OPTIONS}"
        done = self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.directory / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        )
        if done.returncode != 0:
            raise ServerStartError(
                f"pg_ctl start failed: {(done.stdout + done.stderr).decode()}\n{self.log()}"
            )
        _RUNNING.add(self)
        return self

    def stop(self) -> None:
        """Stop the server at once (``-m immediate``) and delete the cluster's folder."""
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        _RUNNING.discard(self)
        shutil.rmtree(self.directory, ignore_errors=True)

    def log(self) -> str:
        """The server's log so far (for failure messages)."""
        try:
            return (self.directory / "server.log").read_text(errors="replace")
        except OSError:
            return ""


def start_cluster() -> PostgresCluster:
    """Create and start a private cluster on a free port; raise :class:`PostgresUnavailable`."""
    bin_dir = binaries()
    directory = Path(tempfile.mkdtemp(prefix="driftline-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam(SERVER_USER)
        os.chown(directory, user.pw_uid, user.pw_gid)
    cluster = PostgresCluster(directory=directory, port=free_port(), bin_dir=bin_dir)
    try:
        return cluster.start()
    except BaseException:
        cluster.stop()
        raise


@atexit.register
def _stop_forgotten_clusters() -> None:
    """Never leave a server behind, even if a session ended without its teardown."""
    for cluster in list(_RUNNING):
        cluster.stop()


# --- databases ------------------------------------------------------------------------------


def redacted(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


def sqlalchemy_url(admin_url: str, database: str) -> str:
    """The SQLAlchemy URL (psycopg 3 driver) of ``database`` on the server of ``admin_url``."""
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(scheme="postgresql+psycopg", path=f"/{database}"))


def create_database(admin_url: str, prefix: str = "driftline_test") -> str:
    """Create a uniquely named, empty database on the server of ``admin_url``; return its name.

    Calls :func:`skip_or_fail` when psycopg is missing or the server is unreachable.
    """
    try:
        import psycopg
    except ImportError:
        skip_or_fail('psycopg is not installed: `.venv/bin/pip install "psycopg[binary]"`')
    name = unique_name(f"{prefix}_{os.getpid()}")
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # name: [a-z0-9_] only
    except psycopg.OperationalError as error:
        reason = " ".join(str(error).split())
        skip_or_fail(f"PostgreSQL is not reachable at {redacted(admin_url)}: {reason}")
    return name


def drop_database(admin_url: str, name: str) -> None:
    """Drop database ``name``, disconnecting any session still using it."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """Context manager: a fresh database's SQLAlchemy URL on ``admin_url``'s server, dropped after.

    Skips (fails under ``CI=true``) when the server cannot be reached.
    """
    name = create_database(admin_url)
    try:
        yield sqlalchemy_url(admin_url, name)
    finally:
        drop_database(admin_url, name)

"""``driftline run`` against Apache Kafka's SASL_PLAINTEXT (SCRAM-SHA-512) listener.

The credentials come from environment variables named in the config
(``broker.sasl_username_env``, ``broker.sasl_password_env``) and set only in
the subprocess's environment. Every test asserts that the password never
appears in the process's output, whatever happens.

- Right credentials: records flow end to end into windows; the consumer, the
  dead-letter producer, the API's record producer and ``/readyz`` all log in.
- Wrong password: one clear ERROR line naming the broker, mechanism, user and
  password variable; the process stays up, serves HTTP, answers ``/readyz``
  with 503 and that reason, and retries quietly.
- A login that starts to be accepted while the service waits (the user is
  created late) is picked up by the retries, and records are consumed; a
  credential deleted while running turns ``/readyz`` to 503.
- ``--log-level DEBUG``: kafka-python logs its admin client's configuration
  (with the password) at DEBUG; the service's log redacts it.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from kafka import KafkaAdminClient
from kafka.admin import UserScramCredentialDeletion, UserScramCredentialUpsertion

from monitor.config.service import ServiceConfig
from tests import apache_kafka
from tests.servers import free_port, read_topic, unique_name
from tests.service.harness import (
    Monitor,
    MonitorPool,
    Names,
    create_topics,
    opened,
    produce,
    store_reference,
    summaries,
    wait_until,
    write_config,
)
from tests.service.streams import Stream

pytestmark = pytest.mark.integration

USER_ENV = "KAFKA_USER"
PASSWORD_ENV = "KAFKA_PASSWORD"
MECHANISM = apache_kafka.SCRAM_MECHANISM


@pytest.fixture
def broker(kafka_broker: Any) -> apache_kafka.KafkaServer:
    """The suite's Apache Kafka, which has the SASL listener (an external one may not)."""
    if not isinstance(kafka_broker, apache_kafka.KafkaServer):
        pytest.skip("an external Kafka: its SASL listener is not the suite's")
    return kafka_broker


# --- driftline run with credentials in its environment ---


@dataclass(eq=False)
class Driftline:
    """One ``driftline run`` subprocess (a harness :class:`Monitor`), its HTTP API on ``port``."""

    monitor: Monitor
    port: int

    @property
    def alive(self) -> bool:
        return self.monitor.alive

    def log(self) -> str:
        return self.monitor.log()

    def stop(self) -> int | None:
        """SIGTERM and wait; SIGKILL after a grace period. Returns the exit status."""
        return self.monitor.stop(grace=15.0)

    def get(self, path: str) -> tuple[int, dict[str, Any]]:
        """``(status, JSON body)`` of ``GET path``."""
        return self.request("GET", path)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


@dataclass
class Launcher:
    """Starts ``driftline run`` processes with credentials in their environment.

    Every process is killed at teardown (by the ``monitors`` fixture's pool).
    """

    monitors: MonitorPool

    def start(
        self, config: Path, port: int, env: dict[str, str], *, log_level: str = "INFO"
    ) -> Driftline:
        name = f"driftline-{len(self.monitors.monitors)}"
        monitor = self.monitors.new(config, name, env=env, args=("--log-level", log_level))
        return Driftline(monitor.start(), port)


@pytest.fixture
def launcher(monitors: MonitorPool) -> Launcher:
    return Launcher(monitors)


@dataclass(frozen=True)
class Setup:
    """A SASL service config, its database and topics, and the stream its tests produce."""

    config: Path
    url: str
    names: Names
    port: int
    stream: Stream


def sasl_setup(
    tmp_path: Path,
    broker: apache_kafka.KafkaServer,
    *,
    windows: int = 4,
    tls_cafile: Path | None = None,
) -> Setup:
    """Topics (through the PLAINTEXT listener), a SQLite database with the reference, and a
    config that logs in on the SASL listener with the credentials of :data:`USER_ENV` and
    :data:`PASSWORD_ENV`: SASL_PLAINTEXT, or SASL_SSL trusting ``tls_cafile`` when given."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    stream = Stream(model=unique_name("sasl"), windows=windows, per_window=150, drift_from=99)
    names = Names.fresh(stream.model)
    create_topics(broker.bootstrap, [names.predictions, names.labels])
    create_topics(broker.bootstrap, [names.dead_letter], partitions=1)
    url = f"sqlite:///{tmp_path / 'sasl.db'}"
    port = free_port()
    path = write_config(
        tmp_path / "sasl.yaml",
        bootstrap=broker.sasl_bootstrap if tls_cafile is None else broker.sasl_ssl_bootstrap,
        names=names,
        group=unique_name("sasl"),
        database_url=url,
        consumer={"idle_timeout_s": 2},
        http_port=port,
    )
    data = yaml.safe_load(path.read_text())
    data["broker"].update(
        security_protocol="SASL_PLAINTEXT" if tls_cafile is None else "SASL_SSL",
        sasl_mechanism=MECHANISM,
        sasl_username_env=USER_ENV,
        sasl_password_env=PASSWORD_ENV,
    )
    if tls_cafile is not None:
        data["broker"]["ssl_cafile"] = str(tls_cafile)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    ServiceConfig.load(path)
    store_reference(url, path, stream)
    return Setup(config=path, url=url, names=names, port=port, stream=stream)


def credentials(user: str, password: str) -> dict[str, str]:
    return {USER_ENV: user, PASSWORD_ENV: password}


def refusal(user: str, broker: apache_kafka.KafkaServer) -> str:
    """The start of the one-line refusal the service must log and ``/readyz`` must show."""
    return (
        f"Kafka authentication failed for user {user} ({MECHANISM}) at "
        f"{broker.sasl_bootstrap}; check ${PASSWORD_ENV}"
    )


def wait_for_windows(setup: Setup, driftline: Driftline, timeout: float = 90.0) -> None:
    """Wait until every window but the last is evaluated with all of its records."""
    stream = setup.stream
    starts = [stream.window_start(i) for i in range(stream.windows - 1)]
    with opened(setup.url) as store:

        def evaluated() -> list[tuple[float, int]]:
            return [(s.window_start, s.rows) for s in summaries(store, stream.model)]

        wait_until(
            lambda: [start for start, _ in evaluated()] == starts,
            timeout,
            lambda: f"windows evaluated: {evaluated()} of {starts}\n{driftline.log()[-5000:]}",
            interval=0.3,
        )
        assert [rows for _, rows in evaluated()] == [stream.per_window] * len(starts)


def wait_ready(driftline: Driftline, timeout: float = 30.0) -> None:
    wait_until(
        lambda: driftline.get("/readyz")[0] == 200,
        timeout,
        lambda: f"/readyz: {driftline.get('/readyz')}\n{driftline.log()[-3000:]}",
        interval=0.5,
    )


def wait_for_http(driftline: Driftline, timeout: float = 30.0) -> None:
    def answers() -> bool:
        assert driftline.alive, f"driftline exited:\n{driftline.log()[-3000:]}"
        try:
            return driftline.get("/healthz")[0] == 200
        except OSError:
            return False

    wait_until(answers, timeout, lambda: f"no HTTP API:\n{driftline.log()[-3000:]}", 0.2)


def scram(admin_bootstrap: str, *alterations: Any) -> None:
    """Apply SCRAM credential upserts/deletions on the broker (through PLAINTEXT)."""
    admin = KafkaAdminClient(bootstrap_servers=admin_bootstrap)
    try:
        errors = admin.alter_user_scram_credentials(list(alterations))
    finally:
        admin.close()
    assert not any(errors.values()), errors


def loud_lines(log: str, about: str) -> list[str]:
    """The WARNING and ERROR lines of ``log`` that contain ``about``."""
    return [
        line
        for line in log.splitlines()
        if (" ERROR " in line or " WARNING " in line) and about in line
    ]


# --- the tests ---


def test_right_credentials_consume_end_to_end(
    broker: apache_kafka.KafkaServer, tmp_path: Path, launcher: Launcher
) -> None:
    setup = sasl_setup(tmp_path, broker)
    password = broker.scram_password
    driftline = launcher.start(
        setup.config, setup.port, credentials(apache_kafka.SCRAM_USER, password)
    )
    wait_for_http(driftline)
    stream = setup.stream
    records = [r for w in range(stream.windows) for r in stream.records(w)]
    bad = [(b"bad-1", b"{not json"), (b"bad-2", b'{"model": "nope", "features": {}}')]
    produce(broker.bootstrap, setup.names.predictions, records + bad)

    wait_for_windows(setup, driftline)
    # The dead-letter producer logged in too: both invalid records are on its topic.
    letters = read_topic(broker.bootstrap, setup.names.dead_letter, len(bad))
    assert sorted(r.key for r in letters) == [b"bad-1", b"bad-2"]
    # So did the API's record producer (the response waits for the broker's acks) ...
    value = orjson.loads(stream.records(stream.windows - 1)[0][1])
    status, body = driftline.request("POST", "/api/records", [value])
    assert (status, body) == (200, {"accepted": 1, "rejected": []})
    # ... and the readiness check.
    wait_ready(driftline)

    assert driftline.alive
    assert driftline.stop() == 0
    log = driftline.log()
    assert "Kafka authentication failed" not in log
    assert password not in log


def test_sasl_ssl_with_the_test_ca_consumes_end_to_end_and_an_unknown_ca_is_not_ready(
    kafka_factory: apache_kafka.KafkaFactory, tmp_path: Path, launcher: Launcher
) -> None:
    """SCRAM-SHA-512 over TLS (a CA and certificate made by the test); a CA that did not sign
    the broker's certificate keeps the service up, not ready, and quiet about the password."""
    broker = kafka_factory(tls=True)
    assert broker.ca_file is not None
    setup = sasl_setup(tmp_path / "good", broker, tls_cafile=broker.ca_file)
    password = broker.scram_password
    driftline = launcher.start(
        setup.config, setup.port, credentials(apache_kafka.SCRAM_USER, password)
    )
    wait_for_http(driftline)
    stream = setup.stream
    produce(
        broker.bootstrap,
        setup.names.predictions,
        [r for w in range(stream.windows) for r in stream.records(w)],
    )
    wait_for_windows(setup, driftline)
    wait_ready(driftline)
    assert driftline.stop() == 0
    assert password not in driftline.log()

    other_ca, _ = apache_kafka.make_certificates(tmp_path / "other-ca")
    wrong = sasl_setup(tmp_path / "wrong", broker, tls_cafile=other_ca)
    untrusting = launcher.start(
        wrong.config, wrong.port, credentials(apache_kafka.SCRAM_USER, password)
    )
    wait_for_http(untrusting)
    wait_until(
        lambda: untrusting.get("/readyz")[0] == 503,
        30,
        lambda: f"/readyz: {untrusting.get('/readyz')}\n{untrusting.log()[-3000:]}",
        interval=0.5,
    )
    _, body = untrusting.get("/readyz")
    assert "check broker.ssl_cafile" in json.dumps(body), body
    time.sleep(2)
    assert untrusting.alive, untrusting.log()[-3000:]
    assert untrusting.stop() == 0
    log = untrusting.log()
    assert password not in log
    assert len(loud_lines(log, "check broker.ssl_cafile")) == 1, log[-3000:]


def test_a_wrong_password_is_one_clear_error_a_503_and_quiet_retries(
    broker: apache_kafka.KafkaServer, tmp_path: Path, launcher: Launcher
) -> None:
    setup = sasl_setup(tmp_path, broker)
    wrong = f"wrong-{secrets.token_hex(8)}"
    started = time.monotonic()
    driftline = launcher.start(
        setup.config,
        setup.port,
        credentials(apache_kafka.SCRAM_USER, wrong),
        log_level="DEBUG",  # not even DEBUG lines may hold the password
    )
    expected = refusal(apache_kafka.SCRAM_USER, broker)
    wait_until(
        lambda: expected in driftline.log(),
        30,
        lambda: f"no clear error in the log:\n{driftline.log()[-4000:]}",
        interval=0.2,
    )
    # Recognised at start-up, not after kafka-python's 30 s bootstrap timeout.
    assert time.monotonic() - started < 20
    wait_for_http(driftline)

    status, body = driftline.get("/readyz")
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["database"] == "ok"
    assert expected in body["broker"]

    time.sleep(8)  # retries at about 1, 2 and 4 s: all refused again, none logged again
    assert driftline.alive
    log = driftline.log()
    assert log.count("not consuming until it succeeds") == 1
    refusals = loud_lines(log, "monitor.streaming.kafka_security")
    assert len(refusals) == 1, "\n".join(refusals)
    assert expected in refusals[0]
    # kafka-python's own lines about the refused logins are demoted to DEBUG.
    assert loud_lines(log, " kafka.") == []
    assert "Kafka login still refused" in log  # the retries, at DEBUG
    assert driftline.get("/healthz") == (200, {"status": "ok"})

    assert driftline.stop() == 0  # a clean stop while waiting, not a crash
    log = driftline.log()
    assert wrong not in log
    assert wrong not in json.dumps(body)


def test_a_login_accepted_later_is_picked_up_and_a_revoked_one_is_reported(
    broker: apache_kafka.KafkaServer, tmp_path: Path, launcher: Launcher
) -> None:
    setup = sasl_setup(tmp_path, broker, windows=3)
    user = unique_name("late")
    password = secrets.token_urlsafe(12)
    driftline = launcher.start(setup.config, setup.port, credentials(user, password))
    expected = refusal(user, broker)
    try:
        wait_until(
            lambda: expected in driftline.log(),
            30,
            lambda: f"no clear error in the log:\n{driftline.log()[-4000:]}",
            interval=0.2,
        )
        wait_for_http(driftline)
        assert driftline.get("/readyz")[0] == 503

        scram(broker.bootstrap, UserScramCredentialUpsertion(user, MECHANISM, password))
        stream = setup.stream
        records = [r for w in range(stream.windows) for r in stream.records(w)]
        produce(broker.bootstrap, setup.names.predictions, records)
        wait_for_windows(setup, driftline)  # the retries (backoff <= 30 s) logged in
        assert f"Kafka accepted the credentials of user {user}" in driftline.log()
        wait_ready(driftline)

        # Revoked while running: authenticated connections keep working (Kafka checks
        # credentials at login), but the readiness check logs in afresh and says so.
        scram(broker.bootstrap, UserScramCredentialDeletion(user, MECHANISM))

        def readiness() -> tuple[int, dict[str, Any]]:
            return driftline.get("/readyz")

        wait_until(
            lambda: readiness()[0] == 503 and expected in readiness()[1]["broker"],
            30,
            lambda: f"/readyz: {readiness()}",
            interval=0.5,
        )
        assert driftline.alive
    finally:
        code = driftline.stop()
    assert code == 0
    assert password not in driftline.log()


def test_debug_logs_never_hold_the_password(
    broker: apache_kafka.KafkaServer, tmp_path: Path, launcher: Launcher
) -> None:
    setup = sasl_setup(tmp_path, broker)
    password = broker.scram_password
    driftline = launcher.start(
        setup.config,
        setup.port,
        credentials(apache_kafka.SCRAM_USER, password),
        log_level="DEBUG",
    )
    wait_for_http(driftline)
    wait_ready(driftline)  # the readiness check's admin client logs its configuration
    assert driftline.stop() == 0
    log = driftline.log()
    assert "Starting KafkaAdminClient with configuration" in log
    assert "'sasl_plain_password': '***'" in log
    assert password not in log

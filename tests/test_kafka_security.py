"""Unit tests of :mod:`monitor.streaming.kafka_security` that need no broker.

The login checks against a real Apache Kafka are in
``tests/service/test_kafka_auth.py``; here the retry and logging policy of
:class:`KafkaLogin` (with an injected check and clock) and the log redaction.
"""

from __future__ import annotations

import logging
import sys
import threading

import pytest

from monitor.config.service import ServiceConfig
from monitor.streaming.kafka_security import (
    KafkaAuthenticationError,
    KafkaLogin,
    KafkaUnreachableError,
    SecretRedactor,
    redact_secrets_in_logs,
)

SASL = ServiceConfig.model_validate(
    {
        "broker": {
            "bootstrap_servers": ["kafka:9093"],
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username_env": "KAFKA_USER",
            "sasl_password_env": "KAFKA_PASSWORD",
        },
        "models": [{"name": "m"}],
    }
)


def refused(user: str = "svc") -> KafkaAuthenticationError:
    return KafkaAuthenticationError(
        server="kafka:9093",
        mechanism="SCRAM-SHA-512",
        username=user,
        check="$KAFKA_PASSWORD",
        detail="broker: invalid credentials",
    )


class Broker:
    """A login check that refuses while ``refusing`` is set; counts its calls."""

    def __init__(self) -> None:
        self.refusing: KafkaAuthenticationError | BaseException | None = refused()
        self.calls = 0

    def __call__(self, _config: ServiceConfig) -> None:
        self.calls += 1
        if self.refusing is not None:
            raise self.refusing


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_refusal_is_logged_once_then_as_a_reminder(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    broker = Broker()
    login = KafkaLogin(SASL, remind_every_s=600, check=broker, clock=lambda: now[0])
    with caplog.at_level(logging.DEBUG, logger="monitor.streaming.kafka_security"):
        for _ in range(20):
            assert not login.accepted()
            now[0] += 10
        assert len(errors(caplog)) == 1
        assert errors(caplog)[0].startswith(
            "Kafka authentication failed for user svc (SCRAM-SHA-512) at kafka:9093; "
            "check $KAFKA_PASSWORD (broker: invalid credentials); not consuming"
        )
        now[0] += 600
        assert not login.accepted()
        assert len(errors(caplog)) == 2
        assert "21 attempts so far" in errors(caplog)[1]
        # Another user (a new setting to check) is news at once.
        broker.refusing = refused("other")
        assert not login.accepted()
        assert len(errors(caplog)) == 3
        broker.refusing = None
        assert login.accepted()
        assert login.refusal is None
    accepted = [r.getMessage() for r in caplog.records if "accepted" in r.getMessage()]
    assert accepted == [
        "Kafka accepted the credentials of user other after 22 refused attempts; "
        "starting to consume"
    ]


def test_backoff_doubles_to_its_bound_and_stop_ends_the_wait() -> None:
    broker = Broker()
    login = KafkaLogin(SASL, max_backoff_s=4, check=broker)
    delays = []
    for _ in range(5):
        login.accepted()
        delays.append(login._backoff_s)
    assert delays == [1, 2, 4, 4, 4]
    stop = threading.Event()
    stop.set()
    assert login.wait(stop) is False


def test_wait_returns_once_the_broker_accepts() -> None:
    broker = Broker()
    login = KafkaLogin(SASL, max_backoff_s=0.01, check=broker)
    assert not login.accepted()
    broker.refusing = None
    assert login.wait(threading.Event()) is True
    assert broker.calls == 2


def test_an_unreachable_broker_or_no_sasl_does_not_hold_the_service_back() -> None:
    broker = Broker()
    broker.refusing = KafkaUnreachableError("no Kafka bootstrap server answered")
    assert KafkaLogin(SASL, check=broker).accepted()
    plain = ServiceConfig.model_validate({"models": [{"name": "m"}]})
    assert KafkaLogin(plain, check=broker).accepted()
    assert broker.calls == 1  # not called without SASL


def test_redaction_covers_arguments_tracebacks_and_bytes_reprs() -> None:
    secret = "p@ss'word\\"
    redactor = SecretRedactor([secret])
    record = logging.LogRecord(
        "kafka.admin.client",
        logging.DEBUG,
        __file__,
        1,
        "Starting KafkaAdminClient with configuration: %s",
        ({"sasl_plain_password": secret},),
        None,
    )
    assert redactor.filter(record)
    assert secret not in record.getMessage()
    assert "'sasl_plain_password': " in record.getMessage()
    # kafka-python logs a SASL PLAIN request's bytes: the password as a bytes repr.
    plain = logging.LogRecord("k", logging.DEBUG, __file__, 1, "%r", (secret.encode(),), None)
    redactor.filter(plain)
    assert repr(secret.encode())[2:-1] not in plain.getMessage()
    try:
        raise RuntimeError(f"failed with {secret}")
    except RuntimeError:
        failed = logging.LogRecord("k", logging.ERROR, __file__, 1, "x", None, sys.exc_info())
    redactor.filter(failed)
    assert failed.exc_text is not None
    assert secret not in failed.exc_text
    assert "failed with ***" in failed.exc_text


def test_the_redactor_is_added_to_each_handler_once() -> None:
    handler = logging.Handler()
    first = redact_secrets_in_logs([], handlers=[handler])
    assert redact_secrets_in_logs([], handlers=[handler]) is first
    assert handler.filters == [first]

"""Readiness checks: the broker (metadata after a SASL login, cached) and secret-free messages."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

from kafka import KafkaAdminClient, KafkaProducer

from monitor.config.service import ServiceConfig
from monitor.store import mask_url
from monitor.streaming.kafka_security import (
    KafkaAuthenticationError,
    check_kafka_credentials,
    uses_sasl,
)

log = logging.getLogger(__name__)

#: How long the default broker check's result is reused, in seconds.
BROKER_CHECK_TTL_S: Final = 5.0


# Kafka option values that must never appear in a message. Not the SASL user name: it is
# no secret, the operator needs it to tell which login was refused, and replacing a short
# name such as "kafka" everywhere would garble messages.
_SECRET_OPTIONS: Final = ("sasl_plain_password", "ssl_password")


_URL_IN_TEXT: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+")


# Producer defaults that keep a request from hanging for a minute on a dead broker;
# options in the config (broker.client_options) override them.
PRODUCER_DEFAULTS: Final[Mapping[str, Any]] = {
    "linger_ms": 5,
    "max_block_ms": 10_000,
    "bootstrap_timeout_ms": 10_000,
}


# --- injected collaborators ----------------------------------------------------------------


class SendResult(Protocol):
    """What :meth:`Producer.send` returns: a future of the write."""

    def get(self, timeout: float | None = None) -> Any:
        """Wait up to ``timeout`` seconds for the write; raise if it failed."""
        ...


class Producer(Protocol):
    """The part of ``kafka.KafkaProducer`` the API uses (tests pass a fake)."""

    def send(self, topic: str, *, value: bytes, key: bytes | None, timestamp_ms: int) -> SendResult:
        """Queue one record for ``topic``; return a future of its write."""
        ...

    def close(self, timeout: float | None = None) -> None:
        """Flush and close."""
        ...


#: A readiness check of the broker: returns if reachable, raises (any exception) if not.
BrokerCheck = Callable[[], None]


class BrokerUnreachable(ConnectionError):  # noqa: N818 -- reads as a state, like the built-ins
    """The broker did not answer a readiness check; the message says why (no secrets)."""


def kafka_producer_factory(config: ServiceConfig) -> Callable[[], Producer]:
    """Return a factory of ``KafkaProducer`` objects built from ``config``'s broker options.

    The producer waits at most 10 s for metadata or buffer space
    (``max_block_ms``) unless ``broker.client_options`` says otherwise.
    """

    def factory() -> Producer:
        producer: Producer = KafkaProducer(
            **{**PRODUCER_DEFAULTS, **config.kafka_producer_options()}
        )
        return producer

    return factory


def kafka_broker_check(config: ServiceConfig, *, timeout_s: float = 2.0) -> BrokerCheck:
    """Return a check that asks the broker for cluster metadata, giving up after ``timeout_s``.

    It connects with the config's bootstrap servers and security options and
    raises :class:`BrokerUnreachable` (secrets scrubbed) when the broker does
    not answer. With SASL it first logs in once
    (:func:`~monitor.streaming.kafka_security.check_kafka_credentials`): refused
    credentials fail at once with the message naming the user, mechanism,
    broker and password variable, instead of after the admin client's
    bootstrap timeout as "Unable to bootstrap". Not cached: wrap it in
    :class:`CachedCheck`.
    """

    def check() -> None:
        accepted = KafkaAdminClient.DEFAULT_CONFIG
        try:
            if uses_sasl(config):
                check_kafka_credentials(config, timeout_s=timeout_s)
            options = {k: v for k, v in config.kafka_producer_options().items() if k in accepted}
            timeout_ms = max(1, int(timeout_s * 1000))
            options.update(request_timeout_ms=timeout_ms, bootstrap_timeout_ms=timeout_ms)
            admin = KafkaAdminClient(**options)
            try:
                admin.describe_cluster()
            finally:
                admin.close()
        except KafkaAuthenticationError as error:  # one sentence already, without secrets
            raise BrokerUnreachable(scrub_secrets(config, str(error))) from None
        except Exception as error:
            raise BrokerUnreachable(scrub_secrets(config, describe_error(error))) from None

    return check


class CachedCheck:
    """A check whose outcome, success or failure, is reused for ``ttl_s`` seconds.

    Concurrent callers wait for one check instead of each starting their own.
    A cached failure is raised again as :class:`BrokerUnreachable` with the
    first failure's message.

    >>> calls = []
    >>> check = CachedCheck(lambda: calls.append(1), ttl_s=5.0, clock=lambda: 0.0)
    >>> check(); check(); len(calls)
    1
    """

    def __init__(
        self,
        check: BrokerCheck,
        ttl_s: float = BROKER_CHECK_TTL_S,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not ttl_s >= 0:
            raise ValueError(f"ttl_s must be at least 0 seconds, got {ttl_s!r}")
        self.check = check
        self.ttl_s = ttl_s
        self.clock = clock
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._failure: str | None = None

    def __call__(self) -> None:
        """Return if the (possibly cached) check passed; raise :class:`BrokerUnreachable` if not."""
        with self._lock:
            now = self.clock()
            if self._checked_at is None or now - self._checked_at >= self.ttl_s:
                try:
                    self.check()
                    self._failure = None
                except BrokerUnreachable as error:  # its message already says why
                    self._failure = str(error)
                except Exception as error:
                    self._failure = describe_error(error)
                self._checked_at = now
            failure = self._failure
        if failure is not None:
            raise BrokerUnreachable(failure)


def describe_error(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def scrub_secrets(config: ServiceConfig, text: str) -> str:
    """``text`` with URLs' passwords masked and configured Kafka secrets replaced by ``***``."""
    text = _URL_IN_TEXT.sub(lambda match: mask_url(match.group(0)), text)
    secrets: list[str] = []
    broker = config.broker
    names = (broker.sasl_password_env, broker.ssl_password_env, broker.sasl_username_env)
    if any(name is not None for name in names):
        with contextlib.suppress(Exception):  # an unset variable: nothing to scrub
            options = config.kafka_producer_options()
            secrets = [str(options[key]) for key in _SECRET_OPTIONS if options.get(key)]
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


__all__ = [
    "BROKER_CHECK_TTL_S",
    "PRODUCER_DEFAULTS",
    "BrokerCheck",
    "BrokerUnreachable",
    "CachedCheck",
    "Producer",
    "SendResult",
    "describe_error",
    "kafka_broker_check",
    "kafka_producer_factory",
    "scrub_secrets",
]

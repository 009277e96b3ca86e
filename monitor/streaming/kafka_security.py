"""Authenticated Kafka: a start-up login check, waiting for valid credentials, secret-free logs.

kafka-python does not report refused credentials clearly: a ``KafkaConsumer``
or ``KafkaProducer`` built with a wrong SASL password blocks in its bootstrap
for ``bootstrap_timeout_ms`` (30 s) and then raises ``KafkaTimeoutError:
Unable to bootstrap``, while its network layer logs the refusal at WARNING or
ERROR -- sometimes as ``SaslAuthenticationFailedError``, sometimes only as
``socket disconnected``: Apache Kafka sends its error response and closes the
connection at once, and kafka-python 3.0 drops the response when the close
arrives in the same read.

:func:`check_kafka_credentials` therefore opens *one* connection itself (TCP,
TLS, ``ApiVersions``, then the SASL exchange) with kafka-python's own
connection classes and decides from how far it got: a connection refused or
closed *during the SASL exchange* -- after the broker answered
``ApiVersions`` -- is an authentication failure, reported as
:class:`KafkaAuthenticationError`, whose one-line message names the broker,
the mechanism, the user name and the environment variable holding the
password (never the password). It takes well under a second on a reachable
broker.

:class:`KafkaLogin` is what the service does with it: check at start-up, and
while the credentials are refused, wait and check again with a bounded
exponential backoff (1 s doubling to :data:`MAX_LOGIN_BACKOFF_S`), logging the
refusal once at ERROR and then at most every :data:`LOGIN_REMINDER_S` seconds
(or when the user, broker or setting to check changes). A broker certificate
that ``broker.ssl_cafile`` does not verify is reported the same way (check
``broker.ssl_cafile``): both are settings only a person can fix. The process stays up
meanwhile and serves HTTP; ``/readyz`` runs the same check and answers 503
with the same message.

:func:`redact_secrets_in_logs` installs a filter on the root logger's handlers
that replaces configured secrets in every record: kafka-python logs its admin
client's whole configuration (password included) at DEBUG, and the raw SASL
PLAIN request (user name and password) too.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final
from urllib.parse import urlsplit

from kafka.errors import (
    IllegalSaslStateError,
    KafkaError,
    SaslAuthenticationFailedError,
    UnsupportedSaslMechanismError,
)
from kafka.net import KafkaConnectionManager, NetworkSelector

from monitor.config.service import ServiceConfig

__all__ = [
    "LOGIN_CHECK_TIMEOUT_S",
    "LOGIN_REMINDER_S",
    "MAX_LOGIN_BACKOFF_S",
    "KafkaAuthenticationError",
    "KafkaLogin",
    "KafkaUnreachableError",
    "SecretRedactor",
    "check_kafka_credentials",
    "config_secrets",
    "redact_secrets_in_logs",
    "uses_sasl",
]

log = logging.getLogger(__name__)

#: How long one login check waits for a broker (connection, TLS and SASL), in seconds.
LOGIN_CHECK_TIMEOUT_S: Final = 5.0
#: Longest wait between two login checks while the credentials are refused, in seconds.
MAX_LOGIN_BACKOFF_S: Final = 30.0
#: While the credentials stay refused, the refusal is logged again at most this often.
LOGIN_REMINDER_S: Final = 600.0

# Options of kafka-python's connection manager the check passes on. Not api_version: the
# check tells the SASL phase of a connection by the broker's ApiVersions answer.
_CONNECTION_KEYS: Final = frozenset(KafkaConnectionManager.DEFAULT_CONFIG) - {
    "api_version",
    "bootstrap_servers",
    "metrics",
}
_SELECTOR_KEYS: Final = frozenset(NetworkSelector.DEFAULT_CONFIG)


class KafkaAuthenticationError(ConnectionError):
    """The broker refused the configured credentials (or the SASL setup) at ``server``.

    The message is one line: the user, the mechanism, the broker, what to
    check (the environment variable holding the password, or the setting at
    fault) and, in parentheses, what the broker said. It never holds a secret.
    """

    def __init__(
        self,
        *,
        server: str,
        mechanism: str,
        username: str | None,
        check: str,
        detail: str,
    ) -> None:
        self.server = server
        self.mechanism = mechanism
        self.username = username
        self.check = check
        self.detail = detail
        user = f" for user {username}" if username else ""
        super().__init__(
            f"Kafka authentication failed{user} ({mechanism}) at {server}; check {check} ({detail})"
        )


class KafkaUnreachableError(ConnectionError):
    """No bootstrap server could be connected to; the message gives each server's reason."""


def uses_sasl(config: ServiceConfig) -> bool:
    """Return whether ``config`` logs in to Kafka with SASL (``SASL_PLAINTEXT`` or ``SASL_SSL``)."""
    return config.broker.security_protocol.startswith("SASL_")


def check_kafka_credentials(
    config: ServiceConfig, *, timeout_s: float = LOGIN_CHECK_TIMEOUT_S
) -> None:
    """Log in to one of ``config``'s bootstrap servers and return if the broker accepts.

    Tries the servers in order, each with one connection of at most
    ``timeout_s`` seconds, and returns at the first that completes TCP, TLS
    (``SSL``/``SASL_SSL``), ``ApiVersions`` and the SASL exchange. Raises
    :class:`KafkaAuthenticationError` as soon as a broker refuses the login
    (credentials are cluster-wide: no other server is tried), and
    :class:`KafkaUnreachableError` if no server could be connected to.
    ``ConfigError`` if a variable named by a ``*_env`` field is unset.
    kafka-python's own log lines about this connection are demoted to DEBUG:
    the caller reports the outcome.
    """
    options = config.kafka_producer_options()
    password = options.get("sasl_plain_password")
    timeout_ms = max(1, round(timeout_s * 1000))
    connection = {key: value for key, value in options.items() if key in _CONNECTION_KEYS}
    connection.update(
        request_timeout_ms=timeout_ms,
        socket_connection_setup_timeout_ms=timeout_ms,
        socket_connection_setup_timeout_max_ms=timeout_ms,
    )
    failures = []
    with _kafka_logs_demoted():
        for server in options["bootstrap_servers"]:
            error, in_sasl = _connect_once(server, connection, timeout_ms)
            if error is None:
                return
            refusal = _refusal(config, server, error, in_sasl=in_sasl, password=password)
            if refusal is not None:
                raise refusal
            failures.append(f"{server}: {_describe(error, password)}")
    raise KafkaUnreachableError(f"no Kafka bootstrap server answered: {'; '.join(failures)}")


def _connect_once(
    server: str, options: dict[str, Any], timeout_ms: int
) -> tuple[BaseException | None, bool]:
    """Open and close one connection to ``server``: (None or the error, whether SASL had begun).

    The connection's event loop runs on this thread (no IO thread is
    started), so everything kafka-python logs about it is logged here.
    """
    net = NetworkSelector(**{k: v for k, v in options.items() if k in _SELECTOR_KEYS})
    manager = KafkaConnectionManager(net, bootstrap_servers=[server], **options)
    connections: list[Any] = []

    async def connect() -> None:
        node = manager.cluster.bootstrap_brokers()[0]
        conn = manager.get_connection(
            node.node_id,
            timeout_ms=timeout_ms,
            pop_on_close=False,
            refresh_metadata_on_err=False,
            reset_backoff_on_connect=False,
        )
        connections.append(conn)
        await manager.wait_for(conn.init_future, timeout_ms + 1000)

    try:
        net.run(connect)
    except Exception as error:
        # ApiVersions answered (the broker's versions are known) and then the connection
        # failed: it failed in the SASL exchange, the only step after ApiVersions.
        in_sasl = bool(connections) and connections[0].broker_version_data is not None
        return error, in_sasl
    finally:
        manager.close()
        net.close()
    return None, False


def _refusal(
    config: ServiceConfig,
    server: str,
    error: BaseException,
    *,
    in_sasl: bool,
    password: str | None,
) -> KafkaAuthenticationError | None:
    """The :class:`KafkaAuthenticationError` that ``error`` means, or None if it is no refusal."""
    broker = config.broker
    if not uses_sasl(config) or broker.sasl_mechanism is None:
        return None
    password_env = broker.sasl_password_env
    username_env = broker.sasl_username_env
    credentials = f"${password_env}" if password_env else "the SASL credentials"
    if username_env:
        credentials += f" and ${username_env}"
    if isinstance(error, SaslAuthenticationFailedError):
        check, detail = credentials, f"broker: {_broker_message(error, password)}"
    elif isinstance(error, UnsupportedSaslMechanismError):
        check = "broker.sasl_mechanism"
        detail = f"broker: {_broker_message(error, password)}"
    elif isinstance(error, IllegalSaslStateError):
        check = "broker.security_protocol"
        detail = "the listener does not expect a SASL login"
    elif _certificate_refused(error):
        check = "broker.ssl_cafile"
        detail = f"the broker's TLS certificate was not accepted: {_describe(error, password)}"
    elif in_sasl:
        check = credentials
        detail = (
            "the broker closed the connection during the SASL exchange, as Kafka does when it "
            "refuses the credentials or the mechanism"
        )
    else:
        return None
    username = None
    if username_env:
        username = config.kafka_producer_options().get("sasl_plain_username")
    return KafkaAuthenticationError(
        server=server,
        mechanism=broker.sasl_mechanism,
        username=username,
        check=check,
        detail=detail,
    )


def _certificate_refused(error: BaseException) -> bool:
    """Whether ``error`` (or an error it wraps) is a failed TLS certificate verification."""
    seen: BaseException | None = error
    for _ in range(5):  # a short cause chain: KafkaConnectionError wrapping the SSL error
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(
            seen
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _broker_message(error: BaseException, password: str | None) -> str:
    """What the broker said: the error's text without kafka-python's class-name prefixes."""
    text = " ".join(str(error.args[0] if error.args else error).split())
    name = f"{type(error).__name__}: "
    while text.startswith(name):
        text = text[len(name) :]
    text = text or getattr(error, "description", "") or type(error).__name__
    return _without(text, password)


def _describe(error: BaseException, password: str | None) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    if not isinstance(error, KafkaError) and type(error).__name__ not in text:
        text = f"{type(error).__name__}: {text}"
    return _without(text, password)


def _without(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


# --- waiting for valid credentials -------------------------------------------------------


class KafkaLogin:
    """The service's Kafka login: checked at start-up, and retried while it is refused.

    :meth:`accepted` checks once; :meth:`wait` checks until the broker
    accepts or ``stop`` is set, sleeping 1 s, 2 s, 4 s, ... up to
    ``max_backoff_s`` between checks. A refusal is logged at ERROR the first
    time, again when the user, broker or setting to check changes, and otherwise at most every
    ``remind_every_s`` seconds (the attempts in between at DEBUG). Only
    refusals hold the service back: an unreachable broker is left to the
    Kafka clients, which wait for it themselves. Configs without SASL are
    not checked. ``check`` (default :func:`check_kafka_credentials`) and
    ``clock`` are injectable.
    """

    def __init__(
        self,
        config: ServiceConfig,
        *,
        max_backoff_s: float = MAX_LOGIN_BACKOFF_S,
        remind_every_s: float = LOGIN_REMINDER_S,
        check: Callable[[ServiceConfig], None] = check_kafka_credentials,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not max_backoff_s > 0:
            raise ValueError(f"max_backoff_s must be positive, got {max_backoff_s!r}")
        if not remind_every_s >= 0:
            raise ValueError(f"remind_every_s must be at least 0, got {remind_every_s!r}")
        self.config = config
        self.max_backoff_s = max_backoff_s
        self.remind_every_s = remind_every_s
        self.check = check
        self.clock = clock
        #: The latest refusal, or None while the broker accepts the login.
        self.refusal: KafkaAuthenticationError | None = None
        self._logged_at: float | None = None
        self._logged_key: str | None = None
        self._attempts = 0
        self._backoff_s = 0.0

    def accepted(self) -> bool:
        """Check the login once: False if the broker refuses it (logged), else True."""
        if not uses_sasl(self.config):
            return True
        try:
            self.check(self.config)
        except KafkaAuthenticationError as error:
            self._refused(error)
            return False
        except KafkaUnreachableError as error:
            # Not a refusal: the clients wait for the broker and report it themselves.
            log.debug("Kafka login check: %s", error)
        if self.refusal is not None:
            attempts = self._attempts
            log.warning(
                "Kafka accepted the credentials of user %s after %d refused attempt%s; "
                "starting to consume",
                self.refusal.username or "-",
                attempts,
                "" if attempts == 1 else "s",
            )
        self.refusal = None
        self._logged_at = self._logged_key = None
        self._attempts = 0
        self._backoff_s = 0.0
        return True

    def wait(self, stop: threading.Event) -> bool:
        """Check until the broker accepts the login (True) or ``stop`` is set (False)."""
        while not stop.is_set():
            if self.refusal is not None and stop.wait(self._backoff_s):
                break
            if self.accepted():
                return True
        return False

    def _refused(self, error: KafkaAuthenticationError) -> None:
        self.refusal = error
        self._attempts += 1
        self._backoff_s = min(max(2 * self._backoff_s, 1.0), self.max_backoff_s)
        now = self.clock()
        message = str(error)
        # What the broker said may vary between attempts (see the module docstring): a
        # different user, broker or setting to check is news, another wording is not.
        key = f"{error.server} {error.mechanism} {error.username} {error.check}"
        due = self._logged_at is None or now - self._logged_at >= self.remind_every_s
        if due or key != self._logged_key:
            again = f", {self._attempts} attempts so far" if self._attempts > 1 else ""
            log.error(
                "%s; not consuming until it succeeds: retrying with backoff up to %g s%s",
                message,
                self.max_backoff_s,
                again,
            )
            self._logged_at = now
            self._logged_key = key
        else:
            log.debug("Kafka login still refused (attempt %d): %s", self._attempts, message)


# --- kafka-python's log lines about the check ----------------------------------------------

_demoted = threading.local()
_filters_lock = threading.Lock()
_filtered: set[str] = set()


class _DemoteOnThisThread(logging.Filter):
    """Demotes to DEBUG the records logged on a thread inside :func:`_kafka_logs_demoted`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(_demoted, "active", False) or record.levelno <= logging.DEBUG:
            return True
        # Handlers do not look at the loggers' levels again: drop what DEBUG would not show.
        if not logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
            return False
        record.levelno = logging.DEBUG
        record.levelname = logging.getLevelName(logging.DEBUG)
        return True


_DEMOTE = _DemoteOnThisThread()


@contextlib.contextmanager
def _kafka_logs_demoted() -> Iterator[None]:
    """Demote kafka-python's records logged on this thread to DEBUG while the block runs.

    Logger filters see only the records of their own logger, so the filter is
    added to every ``kafka.*`` logger (once). Other threads -- the consumer's
    and the producers' IO threads -- are not affected.
    """
    with _filters_lock:
        for name, logger in list(logging.root.manager.loggerDict.items()):
            kafka = name == "kafka" or name.startswith("kafka.")
            if kafka and name not in _filtered and isinstance(logger, logging.Logger):
                logger.addFilter(_DEMOTE)
                _filtered.add(name)
    _demoted.active = True
    try:
        yield
    finally:
        _demoted.active = False


# --- secrets in log records ----------------------------------------------------------------


class SecretRedactor(logging.Filter):
    """A handler filter that replaces each of ``secrets`` by ``***`` in every record.

    It rewrites the formatted message (and the formatted traceback, if any)
    in place, so every handler after it sees the redacted text.

    >>> redactor = SecretRedactor(["hunter2"])
    >>> record = logging.LogRecord("x", logging.INFO, __file__, 1, "pw=%s", ("hunter2",), None)
    >>> redactor.filter(record), record.getMessage()
    (True, 'pw=***')
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Redact ``secrets`` too (and their ``repr`` inside bytes, as kafka-python logs them)."""
        for secret in secrets:
            if secret:
                self.secrets.add(secret)
                escaped = repr(secret.encode("utf-8"))[2:-1]
                if escaped != secret:
                    self.secrets.add(escaped)

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place; never drops it."""
        if not self.secrets:
            return True
        message = record.getMessage()
        redacted = self._redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        return True

    def _redact(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


_REDACTOR = SecretRedactor()


def config_secrets(config: ServiceConfig) -> list[str]:
    """Return the secret values ``config`` reads from the environment (those that are set).

    The SASL password, the SSL key password, the HTTP API's token and the
    password of the database URL. A variable that is not set is skipped (the
    component that needs it reports it).
    """
    secrets: list[str] = []
    with contextlib.suppress(Exception):
        options = config.kafka_producer_options()
        secrets += [
            str(options[k]) for k in ("sasl_plain_password", "ssl_password") if k in options
        ]
    with contextlib.suppress(Exception):
        token = config.http_write_token()
        if token:
            secrets.append(token)
    with contextlib.suppress(Exception):
        password = urlsplit(config.database_url()).password
        if password:
            secrets.append(password)
    return secrets


def redact_secrets_in_logs(
    secrets: Iterable[str], handlers: Iterable[logging.Handler] | None = None
) -> SecretRedactor:
    """Replace ``secrets`` by ``***`` in every record the root logger's handlers emit.

    Adds one shared :class:`SecretRedactor` to each of ``handlers`` (default:
    the root logger's, so call it after the logging configuration) and returns
    it. Calling it again adds secrets and handlers; nothing is added twice.
    """
    _REDACTOR.add(secrets)
    for handler in logging.root.handlers if handlers is None else handlers:
        if _REDACTOR not in handler.filters:
            handler.addFilter(_REDACTOR)
    return _REDACTOR

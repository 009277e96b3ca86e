"""The service's YAML configuration (``driftline run --config FILE``), validated with pydantic.

:meth:`ServiceConfig.load` returns a frozen, fully validated config or raises
:class:`~monitor.config.drift.ConfigError`, whose message names the file, the
field path and what was expected. Every section rejects unknown keys.

>>> config = ServiceConfig.model_validate({"models": [{"name": "credit-risk"}]})
>>> config.models[0].window.spec
WindowSpec(size_s=3600.0, hop_s=None, allowed_lateness_s=300.0)
>>> config.models[0].prediction.kind
<ColumnKind.NUMERIC: 'numeric'>
>>> config.database_url()
'sqlite:///driftline.db'

Decisions where the brief is silent
-----------------------------------
Secrets
    The file holds the *names* of environment variables (``*_env`` fields),
    read when :meth:`ServiceConfig.kafka_consumer_options`,
    :meth:`~ServiceConfig.kafka_producer_options` or
    :meth:`~ServiceConfig.database_url` is called. Before validation the raw
    file is searched for secret-looking keys (``password``, ``secret``,
    ``token``, ... anywhere outside the per-feature maps of ``drift`` and
    ``columns``) and for a database URL with a password; both are rejected
    without echoing the value. Environment variable names must be upper case
    (``[A-Z_][A-Z0-9_]*``), which also catches a secret pasted into an
    ``*_env`` field -- again without echoing it. The returned option dicts
    hold the secrets: never log them. The HTTP API's bearer token is one of
    these secrets (``http.write_token_env``, read by
    :meth:`ServiceConfig.http_write_token` when the service starts).
HTTP writes
    Writes enabled without a token are accepted only on a loopback ``http.host``;
    on any other address the config is rejected (:class:`HttpSection`).
Paths
    Relative paths (``reference``, ``ssl_*file``) are relative to the config
    file's directory (when read by :meth:`ServiceConfig.load`), so a config
    works from any working directory. They are
    not checked at load time (a config is validated on machines that lack
    them); SSL files are checked when the Kafka options are built.
Durations
    ``window``, ``retention`` and ``labels`` durations, and every ``*_s``
    field, take seconds or strings such as ``"30s"``, ``"5m"``, ``"1h"``
    (:func:`monitor.windows.parse_duration`).
Kafka
    ``client_options`` must be kafka-python consumer or producer options; each
    client receives the ones it accepts. Options set by a dedicated field
    (``group_id``, ``sasl_plain_password``, ...) or owned by the service
    (serializers, ``enable_auto_commit``) are rejected there. The consumer
    never auto-commits: offsets are stored in the database with the partial
    sketches and committed to Kafka afterwards, for lag tooling only.
Windows
    A hopping window may overlap at most :data:`MAX_OVERLAPPING_WINDOWS`
    others (``size / hop``): every record updates that many sketches.
Quality
    ``prediction.task`` (classification or regression) chooses the measured
    quality metrics and ``prediction.positive_label`` names the class the
    score is the probability of (:class:`PredictionSection`);
    ``data_quality`` holds the data-quality thresholds
    (:class:`DataQualitySection`, defaults = the library's) and
    ``performance_estimation`` the label-free estimate's reference columns
    (:class:`PerformanceEstimationSection`). Checks that need the reference
    profile (bounds naming numeric features) run when the service starts.
Joint and attribution drift
    ``multivariate`` (:class:`MultivariateWindowSection`) and ``attribution``
    (:class:`AttributionWindowSection`) are off unless present, as is
    ``change_detection``
    (:class:`monitor.config.change_detection.ChangeDetectionSection`: online
    change detectors over each window's scores and errors, which needs
    ``labels.enabled``). Both change
    what the reference stores (a row sample, a SHAP summary), so turning them
    on for a model whose profile is already stored needs a new reference
    (``driftline reference build``); until then its windows report an error
    under those keys instead of a result.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import parse_qsl, urlsplit

import yaml
from kafka import KafkaConsumer, KafkaProducer
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    FiniteFloat,
    PrivateAttr,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from alerts.backoff import DeliveryPolicy
from alerts.rules import RulesConfig
from alerts.targets import Target
from detectors.kinds import ColumnKind
from detectors.labels import canonical_label
from detectors.quality import DataQualityThresholds
from monitor.config.change_detection import ChangeDetectionSection
from monitor.config.drift import (
    AttributionSection,
    ColumnsSection,
    ConfigError,
    DriftSection,
    MultivariateSection,
    format_validation_error,
)
from monitor.windows import WindowSpec, parse_duration

__all__ = [
    "MAX_OVERLAPPING_WINDOWS",
    "AttributionWindowSection",
    "BrokerSection",
    "ConfigError",
    "ConsumerSection",
    "DataQualitySection",
    "DatabaseSection",
    "DeadLetterSection",
    "HttpSection",
    "LabelsSection",
    "ModelConfig",
    "MultivariateWindowSection",
    "PerformanceEstimationSection",
    "PredictionSection",
    "RetentionSection",
    "SchedulerSection",
    "ServiceConfig",
    "TopicsSection",
    "WindowSection",
    "is_loopback_host",
]

#: Largest ``size / hop`` of a hopping window (each record updates that many window sketches).
MAX_OVERLAPPING_WINDOWS: Final = 100

_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
_SECRET_WORDS = ("password", "passwd", "secret", "token", "credential", "api_key", "apikey")
# Sections of a model keyed by feature and method names (not searched for secret words).
_FEATURE_KEYED = ("drift", "columns", "data_quality")
_REFERENCE_SUFFIXES = (".csv", ".parquet", ".pq", ".jsonl", ".ndjson", ".json")

# client_options keys that a dedicated field or the service itself sets.
_RESERVED_CLIENT_OPTIONS: Final[Mapping[str, str]] = {
    "bootstrap_servers": "broker.bootstrap_servers",
    "security_protocol": "broker.security_protocol",
    "sasl_mechanism": "broker.sasl_mechanism",
    "sasl_plain_username": "broker.sasl_username_env",
    "sasl_plain_password": "broker.sasl_password_env",
    "ssl_cafile": "broker.ssl_cafile",
    "ssl_certfile": "broker.ssl_certfile",
    "ssl_keyfile": "broker.ssl_keyfile",
    "ssl_password": "broker.ssl_password_env",
    "group_id": "consumer.group_id",
    "session_timeout_ms": "consumer.session_timeout_ms",
    "heartbeat_interval_ms": "consumer.heartbeat_interval_ms",
    "max_poll_interval_ms": "consumer.max_poll_interval_ms",
    "max_poll_records": "consumer.max_poll_records",
    "auto_offset_reset": "consumer.auto_offset_reset",
}
_SERVICE_CLIENT_OPTIONS: Final = frozenset(
    {
        "enable_auto_commit",
        "key_deserializer",
        "value_deserializer",
        "key_serializer",
        "value_serializer",
        "default_offset_commit_callback",
        "consumer_timeout_ms",
        "kafka_client",
        "selector",
        "ssl_context",
        "socket_options",
        "sasl_oauth_token_provider",
        "metric_reporters",
        "partitioner",
        "transactional_id",
    }
)
_CONSUMER_KEYS: Final = frozenset(KafkaConsumer.DEFAULT_CONFIG)
# kafka-python consumer options and their librdkafka names (consumer.backend confluent);
# None: dropped (no librdkafka counterpart needed). Others are refused for that backend.
_LIBRDKAFKA_NAMES: Final[Mapping[str, str | None]] = {
    "bootstrap_servers": "bootstrap.servers",
    "client_id": "client.id",
    "group_id": "group.id",
    "group_instance_id": "group.instance.id",
    "session_timeout_ms": "session.timeout.ms",
    "heartbeat_interval_ms": "heartbeat.interval.ms",
    "max_poll_interval_ms": "max.poll.interval.ms",
    "max_poll_records": None,  # the ingest loop's consume() batch size
    "auto_offset_reset": "auto.offset.reset",
    "isolation_level": "isolation.level",
    "enable_auto_commit": "enable.auto.commit",
    "security_protocol": "security.protocol",
    "sasl_mechanism": "sasl.mechanism",
    "sasl_plain_username": "sasl.username",
    "sasl_plain_password": "sasl.password",
    "sasl_kerberos_service_name": "sasl.kerberos.service.name",
    "ssl_cafile": "ssl.ca.location",
    "ssl_certfile": "ssl.certificate.location",
    "ssl_keyfile": "ssl.key.location",
    "ssl_password": "ssl.key.password",
    "ssl_crlfile": "ssl.crl.location",
    "ssl_ciphers": "ssl.cipher.suites",
    "ssl_check_hostname": "ssl.endpoint.identification.algorithm",
    "fetch_min_bytes": "fetch.min.bytes",
    "fetch_max_bytes": "fetch.max.bytes",
    "fetch_max_wait_ms": "fetch.wait.max.ms",
    "max_partition_fetch_bytes": "max.partition.fetch.bytes",
    "request_timeout_ms": "socket.timeout.ms",
    "retry_backoff_ms": "retry.backoff.ms",
    "reconnect_backoff_ms": "reconnect.backoff.ms",
    "reconnect_backoff_max_ms": "reconnect.backoff.max.ms",
    "metadata_max_age_ms": "metadata.max.age.ms",
    "connections_max_idle_ms": "connections.max.idle.ms",
    "receive_buffer_bytes": "socket.receive.buffer.bytes",
    "send_buffer_bytes": "socket.send.buffer.bytes",
    "check_crcs": "check.crcs",
    "api_version": None,  # librdkafka asks the broker (ApiVersionRequest)
    "api_version_auto_timeout_ms": "api.version.request.timeout.ms",
}
_PRODUCER_KEYS: Final = frozenset(KafkaProducer.DEFAULT_CONFIG)


# --- field types -------------------------------------------------------------------------------


def _env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise ValueError(
            "must be the name of an environment variable (upper-case letters, digits, underscores)"
        )
    return value


def _topic_name(value: str) -> str:
    if not _TOPIC_NAME.fullmatch(value) or value in (".", ".."):
        raise ValueError("a Kafka topic name is 1 to 249 of the characters A-Z a-z 0-9 . _ -")
    return value


def _config_path(value: Path, info: ValidationInfo) -> Path:
    value = value.expanduser()
    base = (info.context or {}).get("base_dir")
    if base is not None and not value.is_absolute():
        value = Path(base) / value
    return value


#: The name of an environment variable holding a secret.
EnvName = Annotated[str, AfterValidator(_env_name)]
#: A file path; relative paths are relative to the config file's directory.
ConfigPath = Annotated[Path, AfterValidator(_config_path)]
#: A positive duration in seconds, written as a number or as "30s", "5m", "1h", ...
Seconds = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
#: A duration in seconds that may be zero.
NonNegativeSeconds = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
TopicName = Annotated[str, AfterValidator(_topic_name)]
ModelName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]


_DISABLED = ("off", "inf", ".inf")


def _disabled_as_inf(value: Any) -> Any:
    # null, false or "off" (which YAML reads as false) disables a check, as math.inf does
    # in DataQualityThresholds.
    if value is None or value is False:
        return math.inf
    if isinstance(value, str) and value.strip().lower() in _DISABLED:
        return math.inf
    if value is True:
        raise ValueError("must be a number >= 0, or off / false / null to disable the check")
    return value


def _label_value(value: Any) -> Any:
    if value is None or isinstance(value, str | int):  # bool is an int
        return value
    raise ValueError(
        "must be a label as the label records write it: a string, an integer or a boolean"
    )


#: A class label: a string, an integer or a boolean.
LabelValue = Annotated[StrictStr | StrictBool | StrictInt | None, BeforeValidator(_label_value)]
#: An allowed increase of a data-quality ratio, or a count: >= 0; null, "off" or .inf disables.
Allowance = Annotated[float, BeforeValidator(_disabled_as_inf), Field(ge=0)]
_DATA_QUALITY_DEFAULTS: Final = DataQualityThresholds()


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- sections ----------------------------------------------------------------------------------


class BrokerSection(_Section):
    """How to reach Kafka; secrets are given as names of environment variables."""

    bootstrap_servers: list[str] = Field(default_factory=lambda: ["localhost:9092"], min_length=1)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: (
        Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI", "AWS_MSK_IAM"] | None
    ) = None
    sasl_username_env: EnvName | None = None
    sasl_password_env: EnvName | None = None
    ssl_cafile: ConfigPath | None = None
    ssl_certfile: ConfigPath | None = None
    ssl_keyfile: ConfigPath | None = None
    ssl_password_env: EnvName | None = None
    client_options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_ports(cls, value: list[str]) -> list[str]:
        for server in value:
            host, _, port = server.rpartition(":") if ":" in server else (server, "", "")
            if (
                not host
                or any(c.isspace() for c in server)
                or (port and not (port.isdigit() and 0 < int(port) < 65536))
            ):
                raise ValueError(f"{server!r} is not HOST or HOST:PORT")
        return value

    @field_validator("client_options")
    @classmethod
    def _known_client_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if key in _RESERVED_CLIENT_OPTIONS:
                raise ValueError(f"{key!r} is set by {_RESERVED_CLIENT_OPTIONS[key]}, not here")
            if key in _SERVICE_CLIENT_OPTIONS:
                raise ValueError(f"{key!r} is controlled by driftline and cannot be set")
            if key not in _CONSUMER_KEYS | _PRODUCER_KEYS:
                raise ValueError(f"{key!r} is not a kafka-python consumer or producer option")
        return value

    @model_validator(mode="after")
    def _consistent_security(self) -> BrokerSection:
        sasl = self.security_protocol.startswith("SASL_")
        ssl = self.security_protocol.endswith("SSL")
        if sasl and self.sasl_mechanism is None:
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_mechanism")
        sasl_fields = ("sasl_mechanism", "sasl_username_env", "sasl_password_env")
        if not sasl and any(getattr(self, name) is not None for name in sasl_fields):
            raise ValueError("sasl_* fields need security_protocol SASL_PLAINTEXT or SASL_SSL")
        ssl_fields = ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password_env")
        if not ssl and any(getattr(self, name) is not None for name in ssl_fields):
            raise ValueError("ssl_* fields need security_protocol SSL or SASL_SSL")
        if self.ssl_password_env is not None and self.ssl_keyfile is None:
            raise ValueError("ssl_password_env (the key file's password) needs ssl_keyfile")
        credentials = self.sasl_username_env is not None, self.sasl_password_env is not None
        if self.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            if not all(credentials):
                raise ValueError(
                    f"sasl_mechanism {self.sasl_mechanism} needs sasl_username_env and "
                    "sasl_password_env"
                )
        elif any(credentials):
            raise ValueError(
                f"sasl_username_env/sasl_password_env are not used by {self.sasl_mechanism}"
            )
        if self.sasl_mechanism == "AWS_MSK_IAM" and self.security_protocol != "SASL_SSL":
            raise ValueError("sasl_mechanism AWS_MSK_IAM needs security_protocol SASL_SSL")
        return self


class TopicsSection(_Section):
    """Kafka topic names: where predictions and labels are read, where bad records go."""

    predictions: TopicName = "predictions"
    labels: TopicName = "labels"
    dead_letter: TopicName = "driftline-dead-letter"

    @model_validator(mode="after")
    def _distinct(self) -> TopicsSection:
        names = [self.predictions, self.labels, self.dead_letter]
        if len(set(names)) != len(names):
            raise ValueError(f"predictions, labels and dead_letter must differ, got {names}")
        return self


class DeadLetterSection(_Section):
    """What an invalid record becomes on ``topics.dead_letter``, and how long writes are retried.

    ``max_value_bytes`` caps the value and the key written there. A longer
    value is cut to that many bytes (0 keeps only the headers: the reason and
    the source topic/partition/offset) and marked with a ``driftline-truncated``
    header holding its original size; the cut is smaller still when the headers
    would not leave room under the producer's ``max_request_size``. The default,
    64 KiB, sits far below the producer's and the brokers' default limits
    (about 1 MiB each), so that a record the broker accepted compressed -- and
    that is oversized for that very reason -- still fits uncompressed.
    ``retry_timeout_s`` bounds how long dead-letter writes failing with a
    retriable error (broker unreachable, no partition leader, timeouts) are
    retried, with consumption paused; then they are given up. A non-retriable
    failure (too large, not authorized, invalid topic) is given up at once.
    A given-up record is counted in
    ``driftline_dead_letter_failures_total{reason}``, logged with its source
    coordinates and skipped: the partition moves on (see
    :mod:`monitor.streaming.dead_letter`).
    """

    max_value_bytes: int = Field(65536, ge=0)
    retry_timeout_s: Seconds = 60.0


class ConsumerSection(_Section):
    """The Kafka consumer group and when consumed state is checkpointed to the database."""

    group_id: str = Field("driftline", min_length=1)
    session_timeout_ms: int = Field(45000, gt=0)
    heartbeat_interval_ms: int = Field(3000, gt=0)
    max_poll_interval_ms: int = Field(300000, gt=0)
    max_poll_records: int = Field(2000, ge=1)
    checkpoint_interval_s: Seconds = 5.0
    checkpoint_records: int = Field(50000, ge=1)
    idle_timeout_s: Seconds = 60.0
    max_record_bytes: int = Field(1048576, ge=1)
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    #: ``read_committed`` (the default): records of transactions that were aborted, or are
    #: still open, are never read, as a transactional upstream (Kafka Streams, Flink with
    #: exactly-once sinks) intends. ``read_uncommitted`` reads them all at once.
    isolation_level: Literal["read_committed", "read_uncommitted"] = "read_committed"
    #: The Kafka client library of the consumer: ``kafka-python`` (pure Python, always
    #: installed) or ``confluent`` (librdkafka through confluent-kafka, the
    #: ``driftline[confluent]`` extra; faster). Same checkpoints, rebalances and dead
    #: letters, and the same assignor protocol names; a group mixing both is not tested.
    backend: Literal["kafka-python", "confluent"] = "kafka-python"

    @field_validator("backend")
    @classmethod
    def _backend_installed(cls, value: str) -> str:
        if value == "confluent":
            try:
                import confluent_kafka  # noqa: F401
            except ImportError:
                raise ValueError(
                    "backend confluent needs the confluent-kafka package: "
                    "pip install 'driftline[confluent]' (or use backend kafka-python)"
                ) from None
        return value

    def attended_within_s(self) -> float:
        """Return how recently a partition's progress row must be rewritten to count as attended.

        A consumer rewrites its partitions' rows at every checkpoint, so a row
        older than three checkpoint intervals (at least 1 s) belongs to a
        consumer that is gone or stuck. Half the idle timeout at most: a
        partition is idle only ``idle_timeout_s`` after its last record, so a
        dead consumer's partitions stop being attended -- and hold the
        watermark back until a new owner reads them -- well before they could
        pass for idle.
        """
        return min(max(3 * self.checkpoint_interval_s, 1.0), self.idle_timeout_s / 2)

    @model_validator(mode="after")
    def _heartbeat_below_session(self) -> ConsumerSection:
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ValueError(
                f"heartbeat_interval_ms ({self.heartbeat_interval_ms}) must be below "
                f"session_timeout_ms ({self.session_timeout_ms}); a third of it is usual"
            )
        return self


class DatabaseSection(_Section):
    """The SQLAlchemy URL, written here or read from the environment variable ``url_env``."""

    url: str | None = Field(None, pattern=r"^[A-Za-z][A-Za-z0-9+.-]*://")
    url_env: EnvName | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DatabaseSection:
        if self.url is not None and self.url_env is not None:
            raise ValueError("set url or url_env, not both")
        return self


def is_loopback_host(host: str) -> bool:
    """Return whether ``host`` is a loopback address: in 127.0.0.0/8, ``::1`` or ``localhost``.

    Any other name or address, ``0.0.0.0`` and ``::`` included, may be reachable
    from other machines.

    >>> [is_loopback_host(h) for h in ("127.0.0.1", "127.3.2.1", "::1", "[::1]", "LocalHost")]
    [True, True, True, True, True]
    >>> [is_loopback_host(h) for h in ("0.0.0.0", "::", "10.1.2.3", "monitor.internal")]
    [False, False, False, False]
    """
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name in ("localhost", "localhost."):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False  # another host name: it may resolve to anything
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _writes_switch(value: Any) -> Any:
    # YAML reads `writes: off` / `writes: false` as a boolean.
    if value is True:
        return "enabled"
    if value is False:
        return "disabled"
    return value


class HttpSection(_Section):
    """Where the HTTP API and ``/metrics`` listen (port 0: any free port), and who may write.

    ``write_token_env`` names the environment variable holding the API's
    bearer token (read when the service starts, never written in the file).
    With a token, ``POST /api/records`` and ``POST /api/models/{model}/reference``
    need ``Authorization: Bearer <token>``; with ``auth_reads: true`` so do
    ``GET /api/...`` and ``/metrics`` (``/healthz`` and ``/readyz`` stay open for
    probes). ``writes: disabled`` turns both write endpoints off (403 for
    everyone). Writes enabled without a token are refused on any ``host``
    but a loopback one (:func:`is_loopback_host`): anyone who reached the port
    could replace a reference and silence drift detection.
    """

    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(8000, ge=0, le=65535)
    write_token_env: EnvName | None = None
    auth_reads: bool = False
    writes: Annotated[Literal["enabled", "disabled"], BeforeValidator(_writes_switch)] = "enabled"

    @model_validator(mode="after")
    def _token_where_needed(self) -> HttpSection:
        if self.auth_reads and self.write_token_env is None:
            raise ValueError(
                "auth_reads: true needs write_token_env: the name of the environment variable "
                "holding the API's bearer token"
            )
        open_writes = self.writes == "enabled" and self.write_token_env is None
        if open_writes and not is_loopback_host(self.host):
            raise ValueError(
                f"host {self.host!r} is not a loopback address and writes are enabled "
                "without a token: set write_token_env to the name of an environment "
                "variable holding a bearer token, or set writes: disabled, or bind "
                "host: 127.0.0.1"
            )
        return self


class SchedulerSection(_Section):
    """How often the periodic jobs run."""

    evaluate_interval_s: Seconds = 5.0
    retention_interval_s: Seconds = 3600.0
    claim_stale_after_s: Seconds = 300.0


class PredictionSection(_Section):
    """Which part of the prediction is monitored, and how quality is measured against labels.

    ``field`` is monitored for drift, as ``kind`` (inferred from ``field``).
    ``task`` says which quality metrics the joined labels give (see
    :mod:`monitor.analyses.quality`): ``classification`` (accuracy, precision, recall,
    F1 and, with a score and a positive label, ROC AUC, average precision,
    log loss, Brier score, ECE) or ``regression`` (MAE, RMSE, MAPE, R², mean
    error). When not given it is ``classification`` if ``field`` is ``label``,
    ``positive_label`` is set or the model has ``performance_estimation``,
    else ``regression`` (the prediction is a number).

    ``positive_label`` is the class whose probability the record's ``score``
    is. Labels are compared as strings the way :func:`canonical_label` writes
    them (``1``, ``1.0`` and ``"1"`` are one class; ``true``/``false`` for
    booleans), so write it as it appears in the label records. When not
    given, it is inferred as scikit-learn's ``pos_label=None`` does: ``1``
    for labels within {0, 1} or {-1, 1}, ``true`` for {false, true}; other
    labels then give no score metrics. A performance estimator stored with
    the reference profile brings its own positive label (fitted on the
    reference's target), used when this field is not set.

    ``column`` is the reference file's column that holds the model's
    predictions on the reference rows (default ``prediction``): it is
    profiled as the prediction, and each window's ``field`` is compared with
    it. ``null`` says the reference holds no predictions: the profile has no
    prediction and windows report no prediction drift.
    ``driftline reference build`` and the reference upload refuse a file
    without that column (see :func:`monitor.analyses.reference.check_reference_columns`).
    """

    field: Literal["score", "label"] = "score"
    column: Annotated[str, Field(min_length=1)] | None = "prediction"
    kind: ColumnKind = ColumnKind.NUMERIC
    task: Literal["classification", "regression"] = "regression"
    positive_label: LabelValue = None

    @model_validator(mode="before")
    @classmethod
    def _infer_kind(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        field = data.get("field", "score")
        if data.get("kind") is None:
            kind = {"score": ColumnKind.NUMERIC, "label": ColumnKind.CATEGORICAL}.get(field)
            if kind is not None:
                data = {**data, "kind": kind}
        if data.get("task") is None:
            classifier = field == "label" or data.get("positive_label") is not None
            data = {**data, "task": "classification" if classifier else "regression"}
        return data

    @model_validator(mode="after")
    def _positive_needs_classes(self) -> PredictionSection:
        if self.positive_label is not None and self.task != "classification":
            raise ValueError(
                f"positive_label ({self.positive_label!r}) is for task: classification; "
                "a regression model has no positive class"
            )
        return self

    @property
    def positive(self) -> str | None:
        """``positive_label`` as the canonical string labels are compared as, or None."""
        return None if self.positive_label is None else canonical_label(self.positive_label)


class WindowSection(_Section):
    """The model's event-time windows; :attr:`spec` is the :class:`WindowSpec` they describe."""

    size: Seconds = 3600.0
    hop: Seconds | None = None
    allowed_lateness: NonNegativeSeconds = 300.0
    min_records: int = Field(100, ge=1)

    @model_validator(mode="after")
    def _hop_fits(self) -> WindowSection:
        if self.hop is not None:
            if self.hop > self.size:
                raise ValueError(
                    f"hop ({self.hop:g}s) must not exceed size ({self.size:g}s); "
                    "omit hop for tumbling windows"
                )
            if self.size / self.hop > MAX_OVERLAPPING_WINDOWS:
                raise ValueError(
                    f"size / hop is {self.size / self.hop:g}: every record would update that "
                    f"many windows; use at most {MAX_OVERLAPPING_WINDOWS}"
                )
        return self

    @property
    def spec(self) -> WindowSpec:
        """Return the :class:`WindowSpec` of these windows."""
        return WindowSpec(self.size, self.hop, self.allowed_lateness)


class RetentionSection(_Section):
    """How long stored predictions (for label joins) and partial sketches are kept.

    ``partials``: the per-partition partial sketches of evaluated windows are
    deleted once the window ended this long before the watermark (results,
    claims and offsets stay). The service keeps them longer when late-label
    re-evaluation (``labels.max_delay``) or a ``rolling_reference`` still
    needs them: see :meth:`ModelConfig.partials_kept_s`.

    ``results`` (default: none, kept forever): evaluated windows' results
    (summaries and feature rows) are deleted once the window ended this long
    before the watermark, and their claims once their partials are gone too;
    with it set, the database stops growing once every retention is reached
    (docs/capacity.md). Keep it longer than ``labels.max_delay`` and than the
    history the alert backtest and dashboards should read.
    """

    predictions: Seconds = 7 * 86400.0
    partials: Seconds = 7 * 86400.0
    results: Seconds | None = None


class ModelMetricsSection(_Section):
    """Which Prometheus series the model's windows export (docs/metrics-cardinality.md).

    ``per_feature`` False drops the model's per-feature series
    (``driftline_feature_drift_score``, ``_p_value``, ``_detected``,
    ``driftline_feature_missing_ratio`` and the attribution extensions); the
    per-model series (drift share, prediction drift, window size and end,
    quality) stay. The results are stored and served by the API either way.
    """

    per_feature: bool = True


class LabelsSection(_Section):
    """Whether ground-truth labels are joined, and how late they may arrive."""

    enabled: bool = False
    max_delay: Seconds = 2 * 86400.0


class DataQualitySection(_Section):
    """Thresholds of the per-window data-quality checks (:func:`detectors.quality.data_quality`).

    The fields are those of :class:`~detectors.quality.DataQualityThresholds`,
    with its defaults: ``missing``, ``type_violation``, ``out_of_range`` and
    ``unseen_category`` are allowed increases of a ratio over the reference's
    own ratio; ``new_features`` and ``absent_features`` allowed counts; null,
    ``off`` or ``.inf`` disables a check; ``constant: false`` disables the
    constant-column check. ``bounds`` maps numeric features to inclusive
    ``[low, high]`` that replace the reference's range in ``out_of_range``
    (``.inf``/``-.inf`` for one side); the service checks at start that each
    names a numeric feature of the reference profile.
    """

    missing: Allowance = _DATA_QUALITY_DEFAULTS.missing
    type_violation: Allowance = _DATA_QUALITY_DEFAULTS.type_violation
    out_of_range: Allowance = _DATA_QUALITY_DEFAULTS.out_of_range
    unseen_category: Allowance = _DATA_QUALITY_DEFAULTS.unseen_category
    constant: StrictBool = _DATA_QUALITY_DEFAULTS.constant
    new_features: Allowance = _DATA_QUALITY_DEFAULTS.new_features
    absent_features: Allowance = _DATA_QUALITY_DEFAULTS.absent_features
    bounds: dict[str, tuple[float, float]] = Field(default_factory=dict)

    @field_validator("bounds")
    @classmethod
    def _ordered_bounds(
        cls, value: dict[str, tuple[float, float]]
    ) -> dict[str, tuple[float, float]]:
        for feature, (low, high) in value.items():
            if math.isnan(low) or math.isnan(high) or low > high:
                raise ValueError(
                    f"bounds of {feature!r} must be [low, high] with low <= high, "
                    f"got [{low}, {high}]"
                )
        return value

    def thresholds(self) -> DataQualityThresholds:
        """Return the detectors-level thresholds this section describes."""
        return DataQualityThresholds(
            missing=self.missing,
            type_violation=self.type_violation,
            out_of_range=self.out_of_range,
            unseen_category=self.unseen_category,
            constant=self.constant,
            new_features=self.new_features,
            absent_features=self.absent_features,
            bounds=dict(self.bounds),
        )


class PerformanceEstimationSection(_Section):
    """Label-free performance estimation (CBPE) of a binary classifier with a score.

    At reference build time a :class:`~detectors.performance.CBPE` is fitted
    on the reference file's ``target`` column (true labels) and ``score``
    column (the positive class's probability; default ``prediction``, the
    reference's prediction column, which holds the score when
    ``prediction.field`` is ``score``), and stored with the profile. Both
    columns are left out of the profile. Each evaluated window is then
    estimated from the scores of its stored predictions; rows with ``score >=
    threshold`` are predicted positive. ``calibration``: ``auto`` (isotonic
    calibration when it lowers the reference's held-out calibration error),
    ``isotonic`` or ``none``. Labels are not needed: each partial keeps the
    CBPE sketch of its records' scores (see docs/service-internals.md).
    """

    target: str = Field(min_length=1)
    score: str = Field("prediction", min_length=1)
    threshold: FiniteFloat = 0.5
    calibration: Literal["auto", "isotonic", "none"] = "auto"

    @model_validator(mode="after")
    def _distinct_columns(self) -> PerformanceEstimationSection:
        if self.target == self.score:
            raise ValueError(f"target and score must be different columns, both are {self.score!r}")
        if self.target == "prediction":
            raise ValueError(
                "target must name the reference's true-label column, not its prediction column"
            )
        return self


class MultivariateWindowSection(MultivariateSection):
    """Joint (multivariate) drift of each window's features (:mod:`detectors.multivariate`).

    The fields are those of ``check``'s ``multivariate`` section: ``methods``
    (``pca_reconstruction``, ``domain_classifier``, ``mmd``), ``alpha``,
    ``seed``, ``reference_rows`` (the reference's row sample, kept with the
    profile) and ``current_rows`` (each window's row sample). Each partial
    sketch then also keeps a bottom-k sample of its rows keyed by the record's
    partition and offset, so the merged window sample is the same whatever the
    partitioning, restarts or process count (see docs/service-internals.md).
    ``max_levels`` of a categorical feature's reference categories get their
    own one-hot indicator. Changing ``reference_rows`` needs a new reference
    (``driftline reference build``).
    """

    max_levels: int = Field(10, ge=1, le=100)


class AttributionWindowSection(AttributionSection):
    """Attribution (SHAP) drift of each window and its drift-impact ranking.

    Computed by :mod:`monitor.analyses.attribution`.

    ``source`` says where a window's SHAP values come from:

    * ``explanations`` (default): the records' ``explanations`` field, summed
      exactly per partial over every record that has one;
    * ``model``: the joblib model file ``model`` explains the window's row
      sample (at most ``window_rows`` rows, decoded from the sample: see
      :mod:`monitor.analyses.attribution` for what that loses).

    The reference's SHAP values are the reference file's columns named
    ``reference_prefix`` + feature (``shap_income``, ...), left out of the
    profile, or else ``model`` explaining at most ``max_rows`` reference rows
    (seeded with ``seed``) when ``driftline reference build`` runs. The
    thresholds (``threshold``, ``alpha``, ``share_threshold``) are those of
    ``check``'s ``attribution`` section; a feature needs ``min_samples`` SHAP
    values on both sides to be decided.

    Loading a model file executes code (pickle): only the configured path is
    ever loaded, and it must be writable only by people trusted to run code
    as the monitor.
    """

    source: Literal["explanations", "model"] = "explanations"
    model: ConfigPath | None = None
    reference_prefix: str = Field("shap_", min_length=1)
    window_rows: int = Field(500, ge=10, le=100_000)
    min_samples: int = Field(30, ge=1)

    @model_validator(mode="after")
    def _model_for_model_source(self) -> AttributionWindowSection:
        if self.source == "model" and self.model is None:
            raise ValueError("source: model needs model: the path of the joblib model file")
        return self


class DeliverySection(_Section):
    """How alert events are delivered from the outbox (:class:`alerts.backoff.DeliveryPolicy`).

    An attempt that fails is retried with exponential backoff and full jitter
    (``backoff_base_s`` doubling up to ``backoff_max_s``) until the event is
    ``max_age_s`` old; it is then dead: kept, counted and listed, and can be
    re-delivered by hand. At most ``concurrency`` requests are in flight per
    process; ``lease_s`` must cover a whole batch (checked).
    """

    timeout_s: Seconds = 10.0
    max_age_s: Seconds = 86_400.0
    backoff_base_s: Seconds = 1.0
    backoff_max_s: Seconds = 300.0
    concurrency: int = Field(8, ge=1, le=64)
    lease_s: Seconds = 120.0
    batch_size: int = Field(32, ge=1, le=1000)

    @model_validator(mode="after")
    def _valid_policy(self) -> DeliverySection:
        self.policy()  # InvalidPolicyError is a ValueError: reported with the section's path
        return self

    def policy(self) -> DeliveryPolicy:
        """The delivery engine's policy of these settings."""
        return DeliveryPolicy(
            timeout_s=self.timeout_s,
            max_age_s=self.max_age_s,
            backoff_base_s=self.backoff_base_s,
            backoff_max_s=self.backoff_max_s,
            concurrency=self.concurrency,
            lease_s=self.lease_s,
            batch_size=self.batch_size,
        )


class AlertsSection(_Section):
    """Where alert events go and how they are delivered; each model's rules are its own.

    ``targets`` (:mod:`alerts.targets`): ``webhook`` (every event type it
    accepts), ``alertmanager`` (the incidents: fired and resolved) and
    ``retrain`` (``retrain.requested`` only). Secrets are names of environment
    variables. ``interval_s`` is how often the rules read newly evaluated
    windows and the outbox is polled; ``source`` is the CloudEvents ``source``;
    ``retrain_pending_s`` how long a retraining request stays open (see
    :mod:`monitor.alerting.rules`).
    """

    enabled: bool = True
    targets: list[Target] = Field(default_factory=list)
    delivery: DeliverySection = DeliverySection()
    interval_s: Seconds = 2.0
    source: str = Field("/driftline", min_length=1)
    #: How long (event time) a retraining request stays open unless a new model version
    #: answers it; while open, no second request is sent for the model.
    retrain_pending_s: Seconds = 7 * 86_400.0

    @field_validator("targets")
    @classmethod
    def _unique_targets(cls, targets: list[Target]) -> list[Target]:
        names = [t.name for t in targets]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"target names must be unique; repeated: {', '.join(twice)}")
        return targets


class ModelConfig(_Section):
    """One monitored model: its reference, prediction, windows, drift settings and retention."""

    name: ModelName
    reference: ConfigPath | None = None
    prediction: PredictionSection = PredictionSection()
    window: WindowSection = WindowSection()
    drift: DriftSection = DriftSection()
    columns: ColumnsSection = ColumnsSection()
    retention: RetentionSection = RetentionSection()
    labels: LabelsSection = LabelsSection()
    metrics: ModelMetricsSection = ModelMetricsSection()
    #: Compare each window with the merge of the previous N windows instead of the stored
    #: profile (which still gives the bins); None: always the profile.
    rolling_reference: int | None = Field(None, ge=1, le=1000)
    data_quality: DataQualitySection = DataQualitySection()
    performance_estimation: PerformanceEstimationSection | None = None
    multivariate: MultivariateWindowSection | None = None
    attribution: AttributionWindowSection | None = None
    change_detection: ChangeDetectionSection | None = None
    #: Alert rules (:mod:`alerts.rules`); unset: the defaults, ``rules: []``: none.
    alerts: RulesConfig = RulesConfig()

    @model_validator(mode="before")
    @classmethod
    def _estimation_means_classification(cls, data: Any) -> Any:
        # A model with performance_estimation is a classifier unless it says otherwise.
        if isinstance(data, dict) and data.get("performance_estimation") is not None:
            prediction = data.get("prediction")
            if prediction is None:
                return {**data, "prediction": {"task": "classification"}}
            if isinstance(prediction, dict) and prediction.get("task") is None:
                return {**data, "prediction": {**prediction, "task": "classification"}}
        return data

    @field_validator("performance_estimation")
    @classmethod
    def _estimation_fits_the_model(
        cls, value: PerformanceEstimationSection | None, info: ValidationInfo
    ) -> PerformanceEstimationSection | None:
        if value is None:
            return value
        prediction = info.data.get("prediction")
        if prediction is not None and prediction.task != "classification":
            raise ValueError(
                "estimates a binary classifier's quality: set prediction.task: classification"
            )
        if prediction is not None and prediction.field == "label" and value.score == "prediction":
            raise ValueError(
                "score: the reference's prediction column holds labels (prediction.field: "
                "label); name the reference column that holds the positive class's score"
            )
        return value

    @field_validator("change_detection")
    @classmethod
    def _change_detection_fits_the_model(
        cls, value: ChangeDetectionSection | None, info: ValidationInfo
    ) -> ChangeDetectionSection | None:
        if value is None:
            return value
        labels = info.data.get("labels")
        if labels is not None and not labels.enabled:
            raise ValueError(
                "needs labels.enabled: true -- the score and error streams are read from the "
                "predictions the service stores for label joins"
            )
        prediction = info.data.get("prediction")
        if prediction is not None:
            value.check_task(prediction.task)
        return value

    @field_validator("reference")
    @classmethod
    def _reference_format(cls, value: Path | None) -> Path | None:
        if value is not None and value.suffix.lower() not in _REFERENCE_SUFFIXES:
            raise ValueError(
                f"reference must be a CSV, Parquet or JSON-lines file "
                f"({', '.join(_REFERENCE_SUFFIXES)}), got {value.name!r}"
            )
        return value

    def partials_kept_s(self) -> float:
        """Return how long after its end an evaluated window keeps its partial sketches.

        ``retention.partials``, raised to what the service still reads: a
        re-evaluation after late labels (``labels.max_delay``) and the rolling
        reference (``rolling_reference`` previous windows) merge stored
        partials. One window size of margin covers hopping windows.
        """
        size = self.window.spec.size_s
        needed = [self.retention.partials]
        if self.labels.enabled:
            needed.append(self.labels.max_delay + size)
        if self.rolling_reference is not None:
            needed.append((self.rolling_reference + 1) * size)
        return max(needed)

    @model_validator(mode="after")
    def _retention_covers_labels(self) -> ModelConfig:
        if self.labels.enabled and self.retention.predictions < self.labels.max_delay:
            raise ValueError(
                f"retention.predictions ({self.retention.predictions:g}s) is shorter than "
                f"labels.max_delay ({self.labels.max_delay:g}s): late labels would find no "
                "prediction to join"
            )
        return self


# --- the whole file ----------------------------------------------------------------------------


class ServiceConfig(_Section):
    """The validated service configuration; build it with :meth:`load`."""

    broker: BrokerSection = BrokerSection()
    topics: TopicsSection = TopicsSection()
    consumer: ConsumerSection = ConsumerSection()
    dead_letter: DeadLetterSection = DeadLetterSection()
    database: DatabaseSection = DatabaseSection()
    http: HttpSection = HttpSection()
    scheduler: SchedulerSection = SchedulerSection()
    alerts: AlertsSection = AlertsSection()
    models: list[ModelConfig] = Field(min_length=1)

    _source: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _backend_options(self) -> ServiceConfig:
        if self.consumer.backend != "confluent":
            return self
        unmapped = sorted(
            key
            for key in self.broker.client_options
            if key in _CONSUMER_KEYS and key not in _LIBRDKAFKA_NAMES
        )
        if unmapped:
            raise ValueError(
                f"broker.client_options {', '.join(unmapped)} have no librdkafka equivalent: "
                "remove them or use consumer.backend kafka-python"
            )
        if self.broker.sasl_mechanism == "AWS_MSK_IAM":
            raise ValueError("sasl_mechanism AWS_MSK_IAM needs consumer.backend kafka-python")
        return self

    @field_validator("models")
    @classmethod
    def _unique_names(cls, value: list[ModelConfig]) -> list[ModelConfig]:
        seen: set[str] = set()
        for model in value:
            if model.name in seen:
                raise ValueError(f"duplicate model name {model.name!r}: names must be unique")
            seen.add(model.name)
        return value

    @classmethod
    def load(cls, path: str | Path) -> ServiceConfig:
        """Return the validated config in the YAML file ``path``; raise ``ConfigError`` if not."""
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"config file not found: {file}")
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file}: not valid YAML: {_yaml_problem(exc)}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: cannot be read: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{file}: must hold a mapping of sections, got {type(data).__name__}")
        _reject_secrets(file, data)
        try:
            config = cls.model_validate(data, context={"base_dir": file.parent})
        except ValidationError as exc:
            raise ConfigError(format_validation_error(file, exc)) from exc
        config._source = file
        return config

    @property
    def source(self) -> Path | None:
        """Return the file this config was loaded from (None when built in code)."""
        return self._source

    def model(self, name: str) -> ModelConfig:
        """Return the model named ``name``; raise ``KeyError`` listing the known names if absent."""
        for model in self.models:
            if model.name == name:
                return model
        raise KeyError(f"no model {name!r} in the config; known: {[m.name for m in self.models]}")

    def kafka_consumer_options(self) -> dict[str, Any]:
        """Return keyword arguments for ``kafka.KafkaConsumer`` (with secrets: do not log them)."""
        consumer = self.consumer
        options = {
            **self._kafka_common_options(_CONSUMER_KEYS),
            "group_id": consumer.group_id,
            "session_timeout_ms": consumer.session_timeout_ms,
            "heartbeat_interval_ms": consumer.heartbeat_interval_ms,
            "max_poll_interval_ms": consumer.max_poll_interval_ms,
            "max_poll_records": consumer.max_poll_records,
            "auto_offset_reset": consumer.auto_offset_reset,
            "isolation_level": consumer.isolation_level,
            "enable_auto_commit": False,
        }
        # kafka-python's own assignors can hand out an empty assignment from incomplete
        # metadata and never rejoin (monitor/kafka_assignors.py); client_options may override.
        from monitor.kafka_assignors import ASSIGNORS  # kafka's coordinator: only when consuming

        options.setdefault("partition_assignment_strategy", ASSIGNORS)
        return options

    def confluent_consumer_options(self) -> dict[str, Any]:
        """Return the librdkafka configuration of ``confluent_kafka.Consumer`` (with secrets).

        The same settings as :meth:`kafka_consumer_options`, under librdkafka's
        names (:data:`_LIBRDKAFKA_NAMES`); ``client_options`` without a librdkafka
        equivalent raise ``ConfigError`` naming them. librdkafka's own
        ``range,roundrobin`` assignors replace driftline's kafka-python ones (same
        protocol names and algorithms, eager rebalancing).
        """
        options = self.kafka_consumer_options()
        options.pop("partition_assignment_strategy", None)
        unmapped = sorted(k for k in options if k not in _LIBRDKAFKA_NAMES)
        if unmapped:
            raise ConfigError(
                f"{self._where()}broker.client_options: {', '.join(unmapped)} "
                "have no librdkafka equivalent; remove them or use consumer.backend kafka-python"
            )
        if options.get("sasl_mechanism") == "AWS_MSK_IAM":
            raise ConfigError(
                f"{self._where()}broker.sasl_mechanism: AWS_MSK_IAM is not supported by "
                "consumer.backend confluent; use kafka-python"
            )
        out: dict[str, Any] = {}
        for key, value in options.items():
            name = _LIBRDKAFKA_NAMES[key]
            if name is None:
                continue
            if key == "bootstrap_servers":
                value = ",".join(value)
            elif key == "ssl_check_hostname":
                name, value = "ssl.endpoint.identification.algorithm", "https" if value else "none"
            out[name] = value
        # Offsets are stored in the database; Kafka's are committed explicitly afterwards.
        out["enable.auto.commit"] = False
        out["enable.auto.offset.store"] = False
        return out

    def kafka_producer_options(self) -> dict[str, Any]:
        """Return keyword arguments for ``kafka.KafkaProducer`` (with secrets: do not log them)."""
        return self._kafka_common_options(_PRODUCER_KEYS)

    def database_url(self) -> str:
        """Return the SQLAlchemy URL: ``database.url``, the value of ``url_env``, or the default."""
        database = self.database
        if database.url_env is None:
            return database.url or "sqlite:///driftline.db"
        url = self._env("database.url_env", database.url_env, "the database URL")
        if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url):
            raise ConfigError(
                f"{self._where()}database.url_env: environment variable {database.url_env} "
                "does not hold a URL of the form DIALECT[+DRIVER]://..."
            )
        return url

    def http_write_token(self) -> str | None:
        """Return the HTTP API's bearer token, or None when ``http.write_token_env`` is not set.

        The token is the value of the environment variable named by
        ``http.write_token_env``; raises ``ConfigError`` naming the variable
        (never a value) when it is unset or empty. The result is a secret:
        never log it.
        """
        name = self.http.write_token_env
        if name is None:
            return None
        return self._env("http.write_token_env", name, "the HTTP API's bearer token")

    def _kafka_common_options(self, accepted: frozenset[str]) -> dict[str, Any]:
        broker = self.broker
        options: dict[str, Any] = {
            "bootstrap_servers": list(broker.bootstrap_servers),
            "security_protocol": broker.security_protocol,
            "client_id": "driftline",
        }
        if broker.sasl_mechanism is not None:
            options["sasl_mechanism"] = broker.sasl_mechanism
        if broker.sasl_username_env is not None:
            options["sasl_plain_username"] = self._env(
                "broker.sasl_username_env", broker.sasl_username_env, "the SASL user name"
            )
        if broker.sasl_password_env is not None:
            options["sasl_plain_password"] = self._env(
                "broker.sasl_password_env", broker.sasl_password_env, "the SASL password"
            )
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            file: Path | None = getattr(broker, name)
            if file is not None:
                if not file.is_file():
                    raise ConfigError(f"{self._where()}broker.{name}: file not found: {file}")
                options[name] = str(file)
        if broker.ssl_password_env is not None:
            options["ssl_password"] = self._env(
                "broker.ssl_password_env", broker.ssl_password_env, "the SSL key file's password"
            )
        options.update({k: v for k, v in broker.client_options.items() if k in accepted})
        return options

    def _env(self, field: str, name: str, holds: str) -> str:
        value = os.environ.get(name)
        if not value:
            state = "is empty" if value == "" else "is not set"
            raise ConfigError(
                f"{self._where()}{field}: environment variable {name} {state} "
                f"(it must hold {holds})"
            )
        return value

    def _where(self) -> str:
        return f"{self._source}: " if self._source is not None else ""


# --- secrets in the raw file -------------------------------------------------------------------


def _reject_secrets(file: Path, data: Mapping[str, Any]) -> None:
    """Raise ``ConfigError`` if the raw file holds a secret; the message never shows its value."""

    def where(path: tuple[str | int, ...]) -> str:
        return ".".join(str(part) for part in path)

    def walk(node: Any, path: tuple[str | int, ...]) -> None:
        if isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, (*path, index))
            return
        if not isinstance(node, dict):
            return
        for key, value in node.items():
            here = (*path, str(key))
            name = str(key).lower()
            if name.endswith("_env"):
                if not (isinstance(value, str) and _ENV_NAME.fullmatch(value)):
                    raise ConfigError(
                        f"{file}: {where(here)}: must be the NAME of an environment variable "
                        "(upper-case letters, digits, underscores) holding the secret, not the "
                        "secret itself (value not shown)"
                    )
            elif any(word in name for word in _SECRET_WORDS):
                raise ConfigError(
                    f"{file}: {where(here)}: secrets must not be written in the config file; "
                    f"put it in an environment variable and give that variable's name in "
                    f"{_env_field_for(name, str(here[0]))} (value not shown)"
                )
            # These sections are keyed by feature and method names, not settings.
            if not (len(path) == 2 and path[0] == "models" and name in _FEATURE_KEYED):
                walk(value, here)

    walk(data, ())
    database = data.get("database")
    url = database.get("url") if isinstance(database, dict) else None
    if isinstance(url, str) and _url_has_password(url):
        raise ConfigError(
            f"{file}: database.url: contains a password; put the whole URL in an environment "
            "variable and give that variable's name in database.url_env (value not shown)"
        )


def _env_field_for(key: str, section: str) -> str:
    if section == "http" and "token" in key:
        return "http.write_token_env"
    if "ssl" in key:
        return "broker.ssl_password_env"
    if "sasl" in key or key == "password":
        return "broker.sasl_password_env"
    return "the matching *_env field"


def _url_has_password(url: str) -> bool:
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return False
    return bool(password) or any("password" in k.lower() for k, _ in parse_qsl(parts.query))


def _yaml_problem(exc: yaml.YAMLError) -> str:
    # The problem and position only: PyYAML's own message quotes the offending line,
    # which may hold a secret.
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return type(exc).__name__

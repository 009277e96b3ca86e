"""The service configuration (monitor/config/service.py): examples, defaults, errors, secrets."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest

from detectors.kinds import ColumnKind
from detectors.quality import DataQualityThresholds
from monitor.config.drift import ConfigError, DriftSection
from monitor.config.service import ServiceConfig
from monitor.windows import WindowSpec

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
SERVICE_CONFIGS = sorted(CONFIG_DIR.glob("service-*.yaml"))
SECRET = "s3cr3t-Hunter2-value"  # a fake secret that output is searched for

MINIMAL = "models:\n  - name: credit-risk\n"


def write(tmp_path: Path, text: str, name: str = "service.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def load_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        ServiceConfig.load(path)
    message = str(caught.value)
    assert str(path) in message  # every message names the file
    return message


# --- example files -----------------------------------------------------------------------------


def test_there_are_example_service_configs() -> None:
    names = {path.name for path in SERVICE_CONFIGS}
    assert {"service-demo.yaml", "service-production.yaml"} <= names


@pytest.mark.parametrize("path", SERVICE_CONFIGS, ids=lambda path: path.name)
def test_every_example_config_loads(path: Path) -> None:
    config = ServiceConfig.load(path)
    assert config.models
    assert config.source == path
    for model in config.models:
        assert isinstance(model.window.spec, WindowSpec)


def test_demo_config(monkeypatch: pytest.MonkeyPatch) -> None:
    config = ServiceConfig.load(CONFIG_DIR / "service-demo.yaml")
    assert [m.name for m in config.models] == ["credit-risk"]
    assert config.model("credit-risk").window.spec == WindowSpec(60.0, None, 5.0)
    assert config.broker.bootstrap_servers[0].startswith("127.0.0.1:")
    assert config.database_url().startswith("sqlite:///")
    options = config.kafka_consumer_options()
    assert options["security_protocol"] == "PLAINTEXT"
    assert options["enable_auto_commit"] is False


def test_production_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = CONFIG_DIR / "service-production.yaml"
    config = ServiceConfig.load(path)
    assert config.broker.security_protocol == "SASL_SSL"
    assert len(config.models) == 2
    assert all(m.window.hop is not None for m in config.models)  # hopping windows
    assert config.model("credit-risk").window.spec == WindowSpec(3600.0, 900.0, 300.0)
    assert config.model("credit-risk").prediction.kind is ColumnKind.CATEGORICAL
    credit = config.model("credit-risk")
    assert credit.multivariate is not None
    assert credit.change_detection is not None
    assert credit.partials_kept_s() == 14 * 86400.0  # retention.partials covers max_delay
    assert config.database.url_env == "DRIFTLINE_DATABASE_URL"
    # Bound beyond loopback, so HTTP writes need the token in DRIFTLINE_API_TOKEN.
    assert config.http.host == "0.0.0.0"
    assert config.http.write_token_env == "DRIFTLINE_API_TOKEN"

    monkeypatch.setenv("KAFKA_USERNAME", "driftline")
    monkeypatch.setenv("KAFKA_PASSWORD", SECRET)
    monkeypatch.setenv("DRIFTLINE_DATABASE_URL", f"postgresql+psycopg://u:{SECRET}@db/driftline")
    monkeypatch.setenv("DRIFTLINE_API_TOKEN", SECRET)
    # The CA file of the example does not exist here: building options says so.
    with pytest.raises(ConfigError, match=r"broker\.ssl_cafile: file not found") as caught:
        config.kafka_consumer_options()
    assert str(path) in str(caught.value)
    assert config.database_url() == f"postgresql+psycopg://u:{SECRET}@db/driftline"
    assert config.http_write_token() == SECRET


# --- defaults ----------------------------------------------------------------------------------


def test_defaults(tmp_path: Path) -> None:
    config = ServiceConfig.load(write(tmp_path, MINIMAL))
    assert config.broker.bootstrap_servers == ["localhost:9092"]
    assert config.broker.security_protocol == "PLAINTEXT"
    assert (config.topics.predictions, config.topics.labels, config.topics.dead_letter) == (
        "predictions",
        "labels",
        "driftline-dead-letter",
    )
    consumer = config.consumer
    assert consumer.group_id == "driftline"
    assert (consumer.session_timeout_ms, consumer.heartbeat_interval_ms) == (45000, 3000)
    assert (consumer.max_poll_interval_ms, consumer.max_poll_records) == (300000, 2000)
    assert (consumer.checkpoint_interval_s, consumer.checkpoint_records) == (5.0, 50000)
    assert (consumer.idle_timeout_s, consumer.max_record_bytes) == (60.0, 1048576)
    assert consumer.auto_offset_reset == "earliest"
    assert config.database_url() == "sqlite:///driftline.db"
    assert (config.http.host, config.http.port) == ("127.0.0.1", 8000)
    assert (config.http.write_token_env, config.http.auth_reads) == (None, False)
    assert config.http.writes == "enabled"  # open: allowed on loopback only
    assert config.http_write_token() is None
    scheduler = config.scheduler
    assert (scheduler.evaluate_interval_s, scheduler.retention_interval_s) == (5.0, 3600.0)
    assert scheduler.claim_stale_after_s == 300.0
    model = config.model("credit-risk")
    assert model.reference is None
    assert (model.prediction.field, model.prediction.kind) == ("score", ColumnKind.NUMERIC)
    assert model.window.spec == WindowSpec(3600.0, None, 300.0)
    assert model.window.min_records == 100
    assert model.drift == DriftSection()
    assert model.retention.predictions == 7 * 86400
    assert (model.labels.enabled, model.labels.max_delay) == (False, 2 * 86400)


def test_prediction_kind_is_inferred_from_the_field_unless_given(tmp_path: Path) -> None:
    config = ServiceConfig.load(
        write(
            tmp_path,
            """\
            models:
              - {name: a, prediction: {field: label}}
              - {name: b, prediction: {field: score}}
              - {name: c, prediction: {field: label, kind: numeric}}
            """,
        )
    )
    kinds = [m.prediction.kind for m in config.models]
    assert kinds == [ColumnKind.CATEGORICAL, ColumnKind.NUMERIC, ColumnKind.NUMERIC]


def test_durations_and_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    config = ServiceConfig.load(
        write(
            tmp_path,
            """\
            consumer: {checkpoint_interval_s: 500ms, idle_timeout_s: 2m}
            scheduler: {evaluate_interval_s: 1}
            models:
              - name: a
                reference: refs/a.parquet
                window: {size: 1h, hop: 15m, allowed_lateness: 0}
                retention: {predictions: 3d}
                labels: {enabled: true, max_delay: 1d}
            """,
            name="conf/service.yaml",
        )
    )
    assert config.consumer.checkpoint_interval_s == 0.5
    assert config.consumer.idle_timeout_s == 120.0
    assert config.scheduler.evaluate_interval_s == 1.0
    model = config.model("a")
    assert model.window.spec == WindowSpec(3600.0, 900.0, 0.0)
    assert model.reference == tmp_path / "conf" / "refs" / "a.parquet"
    assert model.retention.predictions == 3 * 86400
    with pytest.raises(KeyError, match="known"):
        config.model("b")


def test_drift_and_columns_reuse_the_check_sections(tmp_path: Path) -> None:
    config = ServiceConfig.load(
        write(
            tmp_path,
            """\
            models:
              - name: a
                drift: {numeric_method: psi, thresholds: {psi: 0.2}}
                columns: {kinds: {api_token_count: numeric}, ignore: [password_hash]}
            """,
        )
    )
    model = config.model("a")
    assert isinstance(model.drift, DriftSection)
    assert model.drift.settings().numeric_method == "psi"
    # Feature names that merely look like secrets are not secrets.
    assert model.columns.ignore == ["password_hash"]


# --- errors: each names the file and the field -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        pytest.param(
            "broker: {bootstrap_server: ['k:9092']}\n" + MINIMAL,
            "broker.bootstrap_server",
            "Extra inputs are not permitted",
            id="unknown-key",
        ),
        pytest.param(
            "kafka: {}\n" + MINIMAL, "kafka", "Extra inputs are not permitted", id="unknown-section"
        ),
        pytest.param(
            "consumer: {max_poll_records: many}\n" + MINIMAL,
            "consumer.max_poll_records",
            "valid integer",
            id="wrong-type",
        ),
        pytest.param(
            "models:\n  - {name: a, window: {size: 1x}}\n",
            "models.0.window.size",
            "invalid duration '1x'",
            id="bad-duration",
        ),
        pytest.param(
            "consumer: {idle_timeout_s: 0s}\n" + MINIMAL,
            "consumer.idle_timeout_s",
            "greater than 0",
            id="zero-duration",
        ),
        pytest.param(
            "models:\n  - {name: a}\n  - {name: b}\n  - {name: a}\n",
            "models",
            "duplicate model name 'a'",
            id="duplicate-model",
        ),
        pytest.param(
            "models:\n  - {name: a, window: {size: 1h, hop: 2h}}\n",
            "models.0.window",
            "hop (7200s) must not exceed size (3600s)",
            id="hop-over-size",
        ),
        pytest.param(
            "models:\n  - {name: a, window: {size: 1d, hop: 1m}}\n",
            "models.0.window",
            "use at most 100",
            id="too-many-overlapping-windows",
        ),
        pytest.param("models: []\n", "models", "at least 1 item", id="no-models"),
        pytest.param("http: {port: 8000}\n", "models", "Field required", id="models-missing"),
        pytest.param(
            "models:\n  - {name: 'credit risk'}\n", "models.0.name", "pattern", id="bad-model-name"
        ),
        pytest.param(
            "models:\n  - {name: a, reference: train.xlsx}\n",
            "models.0.reference",
            "CSV, Parquet or JSON-lines",
            id="reference-format",
        ),
        pytest.param(
            "models:\n  - {name: a, drift: {numeric_method: magic}}\n",
            "models.0.drift.numeric_method",
            "unknown method 'magic'",
            id="drift-section",
        ),
        pytest.param(
            "models:\n  - {name: a, labels: {enabled: true, max_delay: 7d}, "
            "retention: {predictions: 1d}}\n",
            "models.0",
            "late labels would find no prediction",
            id="retention-shorter-than-label-delay",
        ),
        pytest.param(
            "topics: {dead_letter: predictions}\n" + MINIMAL,
            "topics",
            "must differ",
            id="same-topic-twice",
        ),
        pytest.param(
            "topics: {labels: 'my labels'}\n" + MINIMAL,
            "topics.labels",
            "Kafka topic name",
            id="bad-topic",
        ),
        pytest.param(
            "consumer: {session_timeout_ms: 2000, heartbeat_interval_ms: 2000}\n" + MINIMAL,
            "consumer",
            "heartbeat_interval_ms (2000) must be below session_timeout_ms (2000)",
            id="heartbeat-vs-session",
        ),
        pytest.param(
            "broker: {bootstrap_servers: ['kafka:port']}\n" + MINIMAL,
            "broker.bootstrap_servers",
            "not HOST or HOST:PORT",
            id="bad-bootstrap",
        ),
        pytest.param(
            "broker: {security_protocol: TLS}\n" + MINIMAL,
            "broker.security_protocol",
            "'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT' or 'SASL_SSL'",
            id="bad-protocol",
        ),
        pytest.param(
            "broker: {security_protocol: SASL_SSL}\n" + MINIMAL,
            "broker",
            "needs sasl_mechanism",
            id="sasl-without-mechanism",
        ),
        pytest.param(
            "broker: {security_protocol: SASL_SSL, sasl_mechanism: PLAIN, "
            "sasl_username_env: KAFKA_USER}\n" + MINIMAL,
            "broker",
            "needs sasl_username_env and sasl_password_env",
            id="sasl-plain-without-password",
        ),
        pytest.param(
            "broker: {ssl_cafile: ca.pem}\n" + MINIMAL,
            "broker",
            "ssl_* fields need security_protocol SSL or SASL_SSL",
            id="ssl-file-on-plaintext",
        ),
        pytest.param(
            "broker: {client_options: {group_id: other}}\n" + MINIMAL,
            "broker.client_options",
            "'group_id' is set by consumer.group_id",
            id="client-option-with-a-field",
        ),
        pytest.param(
            "broker: {client_options: {enable_auto_commit: true}}\n" + MINIMAL,
            "broker.client_options",
            "controlled by driftline",
            id="client-option-owned-by-the-service",
        ),
        pytest.param(
            "broker: {client_options: {linger: 5}}\n" + MINIMAL,
            "broker.client_options",
            "not a kafka-python consumer or producer option",
            id="client-option-unknown",
        ),
        pytest.param(
            "database: {url: 'sqlite:///a.db', url_env: DB_URL}\n" + MINIMAL,
            "database",
            "set url or url_env, not both",
            id="database-two-sources",
        ),
        pytest.param(
            "database: {url: driftline.db}\n" + MINIMAL,
            "database.url",
            "pattern",
            id="database-url-not-a-url",
        ),
    ],
)
def test_errors_name_the_file_and_the_field(
    tmp_path: Path, text: str, field: str, expected: str
) -> None:
    message = load_error(tmp_path, text)
    assert f": {field}: " in message
    assert expected in message


def test_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        ServiceConfig.load(tmp_path / "absent.yaml")
    assert "must hold a mapping" in load_error(tmp_path, "- just\n- a list\n")
    message = load_error(tmp_path, f"broker: {{sasl_password_env: [{SECRET}\nmodels: x\n")
    assert "not valid YAML" in message
    assert "line " in message
    assert SECRET not in message  # PyYAML would quote the offending line


# --- secrets -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field", "advice"),
    [
        (
            f"broker: {{sasl_plain_password: {SECRET}}}\n",
            "broker.sasl_plain_password",
            "broker.sasl_password_env",
        ),
        (f"broker: {{password: {SECRET}}}\n", "broker.password", "broker.sasl_password_env"),
        (f"password: {SECRET}\n", "password", "broker.sasl_password_env"),
        (
            f"broker: {{client_options: {{ssl_password: {SECRET}}}}}\n",
            "broker.client_options.ssl_password",
            "broker.ssl_password_env",
        ),
        (f"webhooks: [{{secret: {SECRET}}}]\n", "webhooks.0.secret", "*_env"),
        (f"models:\n  - {{name: a, api_token: {SECRET}}}\n", "models.0.api_token", "*_env"),
    ],
)
def test_a_secret_in_the_file_is_rejected_without_echoing_it(
    tmp_path: Path, text: str, field: str, advice: str
) -> None:
    message = load_error(tmp_path, text if "models:" in text else text + MINIMAL)
    assert f": {field}: secrets must not be written in the config file" in message
    assert advice in message
    assert SECRET not in message


@pytest.mark.parametrize(
    "text",
    [
        f"broker: {{security_protocol: SASL_SSL, sasl_mechanism: PLAIN, "
        f"sasl_username_env: KAFKA_USER, sasl_password_env: {SECRET}}}\n",
        "database: {url_env: 'postgresql://u:pw@db/x'}\n",
        "database: {url_env: [NOT_A_STRING]}\n",
    ],
)
def test_an_env_field_holding_a_value_is_rejected_without_echoing_it(
    tmp_path: Path, text: str
) -> None:
    message = load_error(tmp_path, text + MINIMAL)
    assert "must be the NAME of an environment variable" in message
    assert SECRET not in message
    assert "pw@" not in message


def test_a_database_url_with_a_password_is_rejected(tmp_path: Path) -> None:
    for url in (f"postgresql://driftline:{SECRET}@db/x", f"postgresql://db/x?password={SECRET}"):
        message = load_error(tmp_path, f"database: {{url: '{url}'}}\n" + MINIMAL)
        assert ": database.url: contains a password" in message
        assert "database.url_env" in message
        assert SECRET not in message


SASL_CONFIG = """\
broker:
  bootstrap_servers: [kafka:9093]
  security_protocol: SASL_SSL
  sasl_mechanism: SCRAM-SHA-256
  sasl_username_env: DRIFTLINE_TEST_KAFKA_USER
  sasl_password_env: DRIFTLINE_TEST_KAFKA_PASSWORD
  ssl_cafile: ca.pem
  ssl_certfile: certs/client.pem
  ssl_keyfile: certs/client.key
  ssl_password_env: DRIFTLINE_TEST_KEY_PASSWORD
  client_options:
    request_timeout_ms: 40000
    fetch_max_bytes: 1000000
    linger_ms: 5
consumer: {group_id: g, session_timeout_ms: 2000, heartbeat_interval_ms: 500}
database: {url_env: DRIFTLINE_TEST_DATABASE_URL}
"""


@pytest.fixture
def sasl_config(tmp_path: Path) -> Path:
    (tmp_path / "certs").mkdir()
    for name in ("ca.pem", "certs/client.pem", "certs/client.key"):
        (tmp_path / name).write_text("not really a certificate")
    return write(tmp_path, SASL_CONFIG + MINIMAL)


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_TEST_KAFKA_USER", "driftline")
    monkeypatch.setenv("DRIFTLINE_TEST_KAFKA_PASSWORD", SECRET)
    monkeypatch.setenv("DRIFTLINE_TEST_KEY_PASSWORD", SECRET + "-key")
    monkeypatch.setenv("DRIFTLINE_TEST_DATABASE_URL", f"postgresql+psycopg://u:{SECRET}@db/x")


@pytest.mark.usefixtures("secret_env")
def test_kafka_options_read_secrets_from_the_environment(sasl_config: Path, tmp_path: Path) -> None:
    config = ServiceConfig.load(sasl_config)
    consumer = config.kafka_consumer_options()
    assert consumer["bootstrap_servers"] == ["kafka:9093"]
    assert consumer["security_protocol"] == "SASL_SSL"
    assert consumer["sasl_mechanism"] == "SCRAM-SHA-256"
    assert consumer["sasl_plain_username"] == "driftline"
    assert consumer["sasl_plain_password"] == SECRET
    assert consumer["ssl_password"] == SECRET + "-key"
    assert consumer["ssl_cafile"] == str(tmp_path / "ca.pem")  # relative to the config file
    assert consumer["ssl_keyfile"] == str(tmp_path / "certs" / "client.key")
    assert consumer["group_id"] == "g"
    assert (consumer["session_timeout_ms"], consumer["heartbeat_interval_ms"]) == (2000, 500)
    assert consumer["enable_auto_commit"] is False
    assert consumer["request_timeout_ms"] == 40000
    assert consumer["fetch_max_bytes"] == 1000000
    assert "linger_ms" not in consumer  # producer only

    producer = config.kafka_producer_options()
    assert producer["sasl_plain_password"] == SECRET
    assert producer["linger_ms"] == 5
    assert producer["request_timeout_ms"] == 40000
    assert "fetch_max_bytes" not in producer  # consumer only
    assert "group_id" not in producer

    assert config.database_url() == f"postgresql+psycopg://u:{SECRET}@db/x"


def test_options_are_accepted_by_kafka_python(sasl_config: Path, secret_env: None) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    config = ServiceConfig.load(sasl_config)
    assert set(config.kafka_consumer_options()) <= set(KafkaConsumer.DEFAULT_CONFIG)
    assert set(config.kafka_producer_options()) <= set(KafkaProducer.DEFAULT_CONFIG)


@pytest.mark.usefixtures("secret_env")
def test_secrets_never_appear_in_repr_or_dumps(sasl_config: Path) -> None:
    config = ServiceConfig.load(sasl_config)
    config.kafka_consumer_options()
    config.kafka_producer_options()
    config.database_url()
    for text in (repr(config), str(config), config.model_dump_json(), repr(config.broker)):
        assert SECRET not in text
        assert "DRIFTLINE_TEST_KAFKA_PASSWORD" in repr(config)  # the name is shown, not the value


@pytest.mark.parametrize(
    ("variable", "field", "call"),
    [
        ("DRIFTLINE_TEST_KAFKA_USER", "broker.sasl_username_env", "kafka_consumer_options"),
        ("DRIFTLINE_TEST_KAFKA_PASSWORD", "broker.sasl_password_env", "kafka_producer_options"),
        ("DRIFTLINE_TEST_KEY_PASSWORD", "broker.ssl_password_env", "kafka_consumer_options"),
        ("DRIFTLINE_TEST_DATABASE_URL", "database.url_env", "database_url"),
    ],
)
@pytest.mark.usefixtures("secret_env")
def test_a_missing_environment_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, sasl_config: Path, variable: str, field: str, call: str
) -> None:
    config = ServiceConfig.load(sasl_config)  # loading does not need the variables
    monkeypatch.delenv(variable)
    with pytest.raises(ConfigError) as caught:
        getattr(config, call)()
    message = str(caught.value)
    assert message.startswith(f"{sasl_config}: {field}: environment variable {variable} is not set")
    assert SECRET not in message
    monkeypatch.setenv(variable, "")
    with pytest.raises(ConfigError, match=f"{variable} is empty"):
        getattr(config, call)()


def test_a_database_url_env_not_holding_a_url_is_not_echoed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = ServiceConfig.load(write(tmp_path, "database: {url_env: DB_URL}\n" + MINIMAL))
    monkeypatch.setenv("DB_URL", SECRET)
    with pytest.raises(ConfigError, match="DB_URL does not hold a URL") as caught:
        config.database_url()
    assert SECRET not in str(caught.value)


# --- quality: prediction task, data quality, performance estimation -------------------------


def test_quality_sections_default_to_the_library_defaults(tmp_path: Path) -> None:
    model = ServiceConfig.load(write(tmp_path, MINIMAL)).model("credit-risk")
    assert model.data_quality.thresholds() == DataQualityThresholds()
    assert model.performance_estimation is None
    assert (model.prediction.task, model.prediction.positive_label) == ("regression", None)


def test_the_task_is_inferred_unless_given(tmp_path: Path) -> None:
    config = ServiceConfig.load(
        write(
            tmp_path,
            """\
            models:
              - {name: a, prediction: {field: label}}
              - {name: b, prediction: {field: score}}
              - {name: c, prediction: {field: score, positive_label: 1}}
              - {name: d, prediction: {field: score, task: classification}}
              - name: e
                labels: {enabled: true}
                performance_estimation: {target: y}
            """,
        )
    )
    tasks = [m.prediction.task for m in config.models]
    assert tasks == ["classification", "regression"] + ["classification"] * 3
    assert config.model("c").prediction.positive == "1"


def test_quality_sections_are_read(tmp_path: Path) -> None:
    model = ServiceConfig.load(
        write(
            tmp_path,
            """\
            models:
              - name: credit
                prediction: {field: label, positive_label: true}
                labels: {enabled: true}
                data_quality:
                  missing: 0.1
                  out_of_range: off
                  unseen_category: null
                  constant: false
                  absent_features: 2
                  bounds: {amount: [0, .inf], token_count: [0, 10]}
                performance_estimation:
                  target: defaulted
                  score: p_default
                  threshold: 0.65
                  calibration: none
            """,
        )
    ).model("credit")
    assert model.data_quality.thresholds() == DataQualityThresholds(
        missing=0.1,
        out_of_range=math.inf,
        unseen_category=math.inf,
        constant=False,
        absent_features=2,
        bounds={"amount": (0.0, math.inf), "token_count": (0.0, 10.0)},
    )
    estimation = model.performance_estimation
    assert estimation is not None
    assert (estimation.target, estimation.score) == ("defaulted", "p_default")
    assert (estimation.threshold, estimation.calibration) == (0.65, "none")
    assert model.prediction.positive == "true"


def test_the_demo_config_estimates_performance() -> None:
    model = ServiceConfig.load(CONFIG_DIR / "service-demo.yaml").model("credit-risk")
    assert model.prediction.task == "classification"
    assert model.prediction.positive == "default"
    assert model.performance_estimation is not None
    assert model.performance_estimation.score == "score"


def test_the_demo_config_file_has_the_demo_s_model_settings(tmp_path: Path) -> None:
    """config/service-demo.yaml documents what `driftline demo` runs: the same model."""
    from monitor.demo.service import demo_config

    in_code = demo_config("127.0.0.1:9092", tmp_path, 8000)
    in_file = ServiceConfig.load(CONFIG_DIR / "service-demo.yaml")
    assert in_file.models == in_code.models
    assert in_file.consumer.model_dump(exclude={"group_id"}) == in_code.consumer.model_dump(
        exclude={"group_id"}
    )


QUALITY_MODEL = "models:\n  - name: m\n    labels: {enabled: true}\n"


@pytest.mark.parametrize(
    ("section", "field", "expected"),
    [
        ("data_quality: {missing: -0.1}", "data_quality.missing", "greater than or equal to 0"),
        ("data_quality: {out_of_range: lots}", "data_quality.out_of_range", "valid number"),
        ("data_quality: {constant: maybe}", "data_quality.constant", "valid boolean"),
        ("data_quality: {bounds: {amount: [5, 1]}}", "data_quality.bounds", "low <= high"),
        ("data_quality: {bounds: {amount: [1]}}", "data_quality.bounds.amount.1", "required"),
        ("data_quality: {missing: true}", "data_quality.missing", "off / false / null"),
        ("data_quality: {missng: 0.1}", "data_quality.missng", "Extra inputs"),
        ("performance_estimation: {score: s}", "performance_estimation.target", "Field required"),
        (
            "performance_estimation: {target: y, threshold: .nan}",
            "performance_estimation.threshold",
            "finite number",
        ),
        (
            "performance_estimation: {target: y, calibration: platt}",
            "performance_estimation.calibration",
            "'auto', 'isotonic' or 'none'",
        ),
        (
            "performance_estimation: {target: s, score: s}",
            "performance_estimation",
            "target and score must be different columns",
        ),
        (
            "performance_estimation: {target: y}\n    prediction: {task: regression}",
            "performance_estimation",
            "set prediction.task: classification",
        ),
        (
            "performance_estimation: {target: y}\n    prediction: {field: label}",
            "performance_estimation",
            "name the reference column that holds the positive class's score",
        ),
        (
            "prediction: {positive_label: 0.5}",
            "prediction.positive_label",
            "a string, an integer or a boolean",
        ),
        (
            "prediction: {task: regression, positive_label: yes}",
            "prediction",
            "a regression model has no positive class",
        ),
    ],
    ids=lambda value: value if " " not in value else None,
)
def test_quality_errors_name_the_field(
    tmp_path: Path, section: str, field: str, expected: str
) -> None:
    message = load_error(tmp_path, QUALITY_MODEL + "    " + section + "\n")
    assert f": models.0.{field}: " in message
    assert expected in message


def test_performance_estimation_does_not_need_labels() -> None:
    """Partials keep a CBPE sketch of the scores: no stored predictions are needed."""
    config = ServiceConfig.model_validate(
        {"models": [{"name": "m", "performance_estimation": {"target": "y"}}]}
    )
    model = config.models[0]
    assert not model.labels.enabled
    assert model.performance_estimation is not None
    assert model.prediction.task == "classification"


def test_partials_are_kept_as_long_as_late_labels_and_the_rolling_reference_need_them():
    def kept(**model: object) -> float:
        config = ServiceConfig.model_validate({"models": [{"name": "m", **model}]})
        return config.models[0].partials_kept_s()

    assert kept() == 7 * 86400.0
    assert kept(retention={"partials": "1h"}) == 3600.0
    # Late labels re-evaluate windows up to max_delay back: their partials must stay.
    labels = {"enabled": True, "max_delay": "2h"}
    assert kept(retention={"partials": "1h"}, labels=labels) == 2 * 3600.0 + 3600.0
    # A rolling reference of 5 one-hour windows merges partials 5 windows back.
    assert kept(retention={"partials": "1h"}, rolling_reference=5) == 6 * 3600.0

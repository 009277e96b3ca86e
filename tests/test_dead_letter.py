"""What an invalid record becomes on the dead-letter topic: cut to fit, marked, classified.

No broker here: :func:`monitor.streaming.dead_letter.dead_letter_record` is checked
against kafka-python's own size estimate (the one ``KafkaProducer.send``
enforces with ``max_request_size``), and the ``dead_letter`` config section
and the failure counter's declaration are checked as a user meets them. The
writer itself runs against a real broker in ``tests/service/test_poison_records.py``.
"""

from __future__ import annotations

import pytest
from kafka.errors import (
    InvalidTopicError,
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)
from kafka.record.default_records import DefaultRecordBatchBuilder
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from monitor.config.service import ServiceConfig
from monitor.metrics import EXTENSION_METRICS, METRICS, Metrics
from monitor.streaming.dead_letter import (
    DEFAULT_MAX_VALUE_BYTES,
    DETAIL_HEADER,
    KEY_TRUNCATED_HEADER,
    REASON_HEADER,
    SOURCE_HEADER,
    TRUNCATED_HEADER,
    FailureReason,
    dead_letter_record,
    failure_reason,
)

MIB = 1024 * 1024


def letter(value: bytes | None, key: bytes | None = b"key", **limits: int):
    return dead_letter_record(
        "predictions",
        2,
        4711,
        key=key,
        value=value,
        reason="oversized",
        detail=f"The record is {len(value or b'')} bytes, more than the limit of 1048576.",
        **limits,
    )


def kafka_size(record) -> int:
    """The size ``KafkaProducer.send`` compares with ``max_request_size``."""
    return int(
        DefaultRecordBatchBuilder.estimate_size_in_bytes(
            record.key, record.value, list(record.headers)
        )
    )


@pytest.mark.parametrize("size", [2_000_000, 5_000_000])
def test_a_value_far_over_the_limit_is_cut_to_the_default_cap_and_marked(size: int) -> None:
    value = b'{"model": "credit", "features": {"blob": "' + b"x" * size + b'"}}'
    record = letter(value)
    headers = dict(record.headers)
    assert record.value == value[:DEFAULT_MAX_VALUE_BYTES] == value[:65536]
    assert headers[TRUNCATED_HEADER] == str(len(value)).encode()
    assert headers[REASON_HEADER] == b"oversized"
    assert headers[SOURCE_HEADER] == b"predictions/2/4711"
    assert record.key == b"key"
    assert record.value_size == len(value)
    assert kafka_size(record) < MIB  # fits kafka-python's default max_request_size


def test_a_value_within_the_cap_is_forwarded_whole_without_a_marker() -> None:
    value = b"y" * DEFAULT_MAX_VALUE_BYTES
    record = letter(value)
    assert record.value == value
    assert TRUNCATED_HEADER not in dict(record.headers)


@pytest.mark.parametrize("max_request_size", [400, 1000, 5000, 70_000, MIB])
def test_the_cut_leaves_room_for_headers_under_max_request_size(max_request_size: int) -> None:
    """Whatever the producer's limit, the cut record passes its size check when it can."""
    record = letter(b"z" * 3 * MIB, max_request_size=max_request_size)
    assert kafka_size(record) <= max_request_size
    assert dict(record.headers)[TRUNCATED_HEADER] == str(3 * MIB).encode()
    assert len(record.value or b"") <= DEFAULT_MAX_VALUE_BYTES


def test_a_cap_of_zero_keeps_only_the_headers() -> None:
    record = letter(b"{}", max_value_bytes=0)
    assert record.value == b""
    assert dict(record.headers)[TRUNCATED_HEADER] == b"2"
    assert dict(record.headers)[SOURCE_HEADER] == b"predictions/2/4711"


def test_a_huge_key_is_cut_too_and_marked() -> None:
    record = letter(b"{}", key=b"k" * 200_000)
    assert record.key == b"k" * DEFAULT_MAX_VALUE_BYTES
    assert dict(record.headers)[KEY_TRUNCATED_HEADER] == b"200000"
    assert record.value == b"{}"
    assert kafka_size(record) < MIB


def test_the_detail_header_is_bounded() -> None:
    record = dead_letter_record(
        "labels", 0, 1, key=None, value=b"x", reason="wrong_type", detail="d" * 5000
    )
    assert dict(record.headers)[DETAIL_HEADER] == b"d" * 1000


def test_a_null_record_without_a_key_gets_an_empty_key() -> None:
    """kafka-python refuses to send a record with neither key nor value."""
    record = letter(None, key=None)
    assert (record.key, record.value) == (b"", None)
    assert TRUNCATED_HEADER not in dict(record.headers)


def test_without_payload_keeps_reason_source_and_original_sizes() -> None:
    record = letter(b"v" * 5_000_000, key=b"k" * 100_000)
    bare = record.without_payload()
    headers = dict(bare.headers)
    assert (bare.key, bare.value) == (None, b"")
    assert headers[TRUNCATED_HEADER] == b"5000000"
    assert headers[KEY_TRUNCATED_HEADER] == b"100000"
    assert headers[REASON_HEADER] == b"oversized"
    assert headers[SOURCE_HEADER] == b"predictions/2/4711"
    assert len(bare.headers) == len(record.headers)  # markers replaced, not repeated
    assert letter(None).without_payload().value is None  # a tombstone stays one


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (MessageSizeTooLargeError(), FailureReason.TOO_LARGE),
        (RecordListTooLargeError(), FailureReason.TOO_LARGE),
        (TopicAuthorizationFailedError(), FailureReason.NOT_AUTHORIZED),
        (InvalidTopicError(), FailureReason.INVALID_TOPIC),
        (ValueError("Partitioner did not assign a partition"), FailureReason.REJECTED),
        (KafkaTimeoutError(), None),
        (KafkaConnectionError(), None),
        (NotLeaderForPartitionError(), None),
        (UnknownTopicOrPartitionError(), None),
    ],
)
def test_failures_are_retried_only_when_a_retry_can_help(
    error: BaseException, reason: FailureReason | None
) -> None:
    assert failure_reason(error) == reason


def test_the_dead_letter_section_defaults_and_validation() -> None:
    base = {"models": [{"name": "credit"}]}
    config = ServiceConfig.model_validate(base)
    assert config.dead_letter.max_value_bytes == 65536
    assert config.dead_letter.retry_timeout_s == 60.0
    custom = ServiceConfig.model_validate(
        {**base, "dead_letter": {"max_value_bytes": 0, "retry_timeout_s": "5m"}}
    )
    assert (custom.dead_letter.max_value_bytes, custom.dead_letter.retry_timeout_s) == (0, 300.0)
    with pytest.raises(ValidationError, match="max_value_bytes"):
        ServiceConfig.model_validate({**base, "dead_letter": {"max_value_bytes": -1}})
    with pytest.raises(ValidationError, match="retry_timeout_s"):
        ServiceConfig.model_validate({**base, "dead_letter": {"retry_timeout_s": 0}})
    with pytest.raises(ValidationError, match="max_value_byte"):
        ServiceConfig.model_validate({**base, "dead_letter": {"max_value_byte": 10}})


def test_the_failure_counter_is_declared_beside_the_contract() -> None:
    [declaration] = [m for m in EXTENSION_METRICS if m.name.startswith("driftline_dead_letter")]
    assert declaration.name == "driftline_dead_letter_failures_total"
    assert declaration.name not in {m.name for m in METRICS}
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.dead_letter_failures_total.labels(reason=FailureReason.TOO_LARGE.value).inc()
    value = registry.get_sample_value(declaration.name, {"reason": "too_large"})
    assert value == 1.0

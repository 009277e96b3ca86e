"""Webhook formats, checked with independent implementations.

driftline signatures against our verifier and a hand-written HMAC; Standard Webhooks
against the ``standardwebhooks`` library; CloudEvents against the ``cloudevents`` SDK's
own HTTP binding parser (2.x API, ``cloudevents.core``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_binary_event, from_structured_event
from pydantic import SecretStr, ValidationError
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from alerts.events import event_body
from alerts.formats import HttpRequest, MissingSecretError, render_request
from alerts.signing import (
    BadSignatureError,
    InvalidSecretError,
    MalformedSignatureError,
    StaleSignatureError,
    driftline_signature,
    standard_webhooks_key,
    standard_webhooks_signature,
    verify_driftline_signature,
)
from alerts.targets import (
    SecretNotSetError,
    WebhookTarget,
    resolve_secret,
    target_headers,
)
from tests.alerts.test_events import NOW, make_event

SECRET = "s3cret-signing-key"
SW_SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def target(**fields: Any) -> WebhookTarget:
    return WebhookTarget.model_validate(
        {"name": "hook", "url": "https://example.test/hook", **fields}
    )


def header_dict(request: HttpRequest) -> dict[str, str]:
    return dict(request.headers)


# --- driftline ---------------------------------------------------------------------


def test_driftline_request_has_contract_headers_and_body() -> None:
    event = make_event()
    request = render_request(
        event, target(secret_env="HOOK_SECRET"), now=NOW, secret=SecretStr(SECRET)
    )
    assert (request.method, request.url) == ("POST", "https://example.test/hook")
    assert request.body == event_body(event)
    headers = header_dict(request)
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Driftline-Event-Id"] == event.id
    expected = hmac.new(SECRET.encode(), f"{int(NOW)}.".encode() + request.body, hashlib.sha256)
    assert headers["X-Driftline-Signature"] == f"t={int(NOW)},v1={expected.hexdigest()}"
    assert verify_driftline_signature(
        SECRET, headers["X-Driftline-Signature"], request.body, now=NOW + 10
    ) == int(NOW)


def test_driftline_without_secret_is_unsigned() -> None:
    request = render_request(make_event(), target(), now=NOW, secret=None)
    assert request.header("x-driftline-signature") is None
    assert request.header("X-DRIFTLINE-EVENT-ID") == make_event().id


def test_configured_secret_must_be_given() -> None:
    with pytest.raises(MissingSecretError, match="HOOK_SECRET"):
        render_request(make_event(), target(secret_env="HOOK_SECRET"), now=NOW, secret=None)


def test_verifier_rejects_tampered_body_wrong_secret_and_stale_or_future_times() -> None:
    body = event_body(make_event())
    header = driftline_signature(SECRET, body, timestamp=int(NOW))
    with pytest.raises(BadSignatureError):
        verify_driftline_signature(SECRET, header, body + b" ", now=NOW)
    with pytest.raises(BadSignatureError):
        verify_driftline_signature("other", header, body, now=NOW)
    with pytest.raises(StaleSignatureError):
        verify_driftline_signature(SECRET, header, body, now=NOW + 301)
    with pytest.raises(StaleSignatureError):
        verify_driftline_signature(SECRET, header, body, now=NOW - 301)
    assert verify_driftline_signature(SECRET, header, body, now=NOW + 300) == int(NOW)
    with pytest.raises(StaleSignatureError):
        verify_driftline_signature(SECRET, header, body, now=NOW + 61, tolerance_s=60)


def test_verifier_accepts_any_of_several_v1_signatures() -> None:
    body = b"{}"
    good = driftline_signature(SECRET, body, timestamp=int(NOW)).split(",")[1]
    header = f"t={int(NOW)},v1={'0' * 64},{good}"
    assert verify_driftline_signature(SECRET, header, body, now=NOW) == int(NOW)


@pytest.mark.parametrize(
    "header",
    ["", "v1=abc", f"t={int(NOW)}", f"t=1.5,v1={'0' * 64}", "t=1,t=2,v1=00", "garbage", "t=²,v1=0"],
)
def test_verifier_rejects_malformed_headers(header: str) -> None:
    with pytest.raises(MalformedSignatureError):
        verify_driftline_signature(SECRET, header, b"{}", now=NOW)


def test_verifier_survives_non_ascii_digest() -> None:
    with pytest.raises(BadSignatureError):
        verify_driftline_signature(SECRET, f"t={int(NOW)},v1=é", b"{}", now=NOW)


# --- standard webhooks ---------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    [
        SW_SECRET,
        SW_SECRET.removeprefix("whsec_"),  # no prefix: still base64, as the library reads it
        SW_SECRET.rstrip("="),  # unpadded
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # the spec's example secret
    ],
)
def test_standard_webhooks_signature_matches_the_library(secret: str) -> None:
    event = make_event()
    request = render_request(
        event,
        target(format="standard-webhooks", secret_env="SW_SECRET"),
        now=NOW,
        secret=SecretStr(secret),
    )
    headers = header_dict(request)
    assert headers["webhook-id"] == event.id
    assert headers["webhook-timestamp"] == str(int(NOW))
    assert headers["Content-Type"] == "application/json"
    assert request.body == event_body(event)
    library = Webhook(secret).sign(event.id, datetime.fromtimestamp(NOW, tz=UTC), request.body)
    assert headers["webhook-signature"] == library


def test_standard_webhooks_request_verifies_with_the_library() -> None:
    # The library checks the timestamp against its own clock, so sign "now" for real.
    now = time.time()
    request = render_request(
        make_event(),
        target(format="standard-webhooks", secret_env="SW_SECRET"),
        now=now,
        secret=SecretStr(SW_SECRET),
    )
    verified = Webhook(SW_SECRET).verify(request.body, header_dict(request))
    assert verified == orjson.loads(request.body)
    with pytest.raises(WebhookVerificationError):
        Webhook(SW_SECRET).verify(request.body + b" ", header_dict(request))
    other = "whsec_" + base64.b64encode(b"another-secret-another-secret!!").decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(request.body, header_dict(request))


def test_standard_webhooks_key_decodes_like_the_library() -> None:
    assert standard_webhooks_key(SW_SECRET) == b"0123456789abcdef0123456789abcdef"
    assert standard_webhooks_key(b"raw-key-bytes") == b"raw-key-bytes"
    signature = standard_webhooks_signature(SW_SECRET, "msg_1", int(NOW), b"{}")
    digest = hmac.new(
        b"0123456789abcdef0123456789abcdef", f"msg_1.{int(NOW)}.{{}}".encode(), "sha256"
    )
    assert signature == "v1," + base64.b64encode(digest.digest()).decode()


@pytest.mark.parametrize("secret", ["whsec_", "a", "whsec_é"])
def test_standard_webhooks_refuses_secrets_it_cannot_decode(secret: str) -> None:
    with pytest.raises(InvalidSecretError) as raised:
        standard_webhooks_key(secret)
    assert "é" not in str(raised.value)


def test_standard_webhooks_target_requires_a_secret() -> None:
    with pytest.raises(ValidationError, match="secret_env"):
        target(format="standard-webhooks")


# --- cloudevents -----------------------------------------------------------------------


def test_cloudevents_structured_parses_with_the_sdk() -> None:
    event = make_event()
    request = render_request(event, target(format="cloudevents"), now=NOW, secret=None)
    headers = header_dict(request)
    assert headers["Content-Type"] == "application/cloudevents+json"
    parsed = from_structured_event(HTTPMessage(headers=headers, body=request.body))
    assert parsed.get_specversion() == "1.0"
    assert parsed.get_id() == event.id
    assert parsed.get_type() == "io.driftline.drift.detected"
    assert parsed.get_source() == "/driftline"
    assert parsed.get_time() == datetime.fromtimestamp(event.created_at, tz=UTC)
    assert parsed.get_datacontenttype() == "application/json"
    assert parsed.get_data() == orjson.loads(event_body(event))
    assert "X-Driftline-Signature" not in headers


def test_cloudevents_binary_parses_with_the_sdk_and_is_signed() -> None:
    event = make_event(model="credit risk%v2")  # needs percent-encoding in ce- headers
    request = render_request(
        event,
        target(format="cloudevents", cloudevents_mode="binary", secret_env="HOOK_SECRET"),
        now=NOW,
        secret=SecretStr(SECRET),
        source="/driftline/prod",
    )
    headers = header_dict(request)
    assert headers["Content-Type"] == "application/json"
    assert headers["ce-id"] == event.id
    assert headers["ce-subject"] == "credit%20risk%25v2"
    assert request.body == event_body(event)
    parsed = from_binary_event(HTTPMessage(headers=headers, body=request.body))
    assert parsed.get_id() == event.id
    assert parsed.get_type() == "io.driftline.drift.detected"
    assert parsed.get_source() == "/driftline/prod"
    assert parsed.get_subject() == "credit risk%v2"
    assert parsed.get_time() == datetime.fromtimestamp(event.created_at, tz=UTC)
    assert parsed.get_data() == orjson.loads(event_body(event))
    verify_driftline_signature(SECRET, headers["X-Driftline-Signature"], request.body, now=NOW)


# --- targets, headers and secrets ---------------------------------------------------------


def test_extra_headers_are_added_but_cannot_override_the_format() -> None:
    request = render_request(
        make_event(),
        target(),
        now=NOW,
        secret=None,
        headers={"X-Team": "ml", "content-type": "text/plain"},
    )
    assert request.header("X-Team") == "ml"
    assert request.header("Content-Type") == "application/json"
    assert [k for k, _ in request.headers].count("content-type") == 0


def test_target_headers_read_env_and_name_the_missing_variable() -> None:
    hook = target(headers_env={"X-Api-Key": "HOOK_API_KEY"})
    assert target_headers(hook, {"HOOK_API_KEY": "k-123"}) == {"X-Api-Key": "k-123"}
    with pytest.raises(SecretNotSetError, match="HOOK_API_KEY") as raised:
        target_headers(hook, {})
    assert raised.value.name == "HOOK_API_KEY"


def test_resolve_secret_hides_the_value() -> None:
    secret = resolve_secret("HOOK_SECRET", {"HOOK_SECRET": SECRET})
    assert secret.get_secret_value() == SECRET
    assert SECRET not in repr(secret)
    assert SECRET not in str(secret)
    with pytest.raises(SecretNotSetError, match="HOOK_SECRET"):
        resolve_secret("HOOK_SECRET", {"HOOK_SECRET": ""})


def test_reprs_do_not_leak_secrets_or_header_values() -> None:
    hook = target(secret_env="HOOK_SECRET", headers_env={"Authorization": "HOOK_AUTH"})
    request = render_request(
        make_event(),
        hook,
        now=NOW,
        secret=SecretStr(SECRET),
        headers=target_headers(hook, {"HOOK_AUTH": "Bearer tok-xyz"}),
    )
    text = repr(request)
    assert "tok-xyz" not in text
    assert "v1=" not in text
    assert "Authorization" in text
    assert SECRET not in repr(hook)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": "ftp://example.test"}, "http"),
        ({"url": "https://user:pw@example.test/hook"}, "credentials"),
        ({"format": "xml"}, "format"),
        ({"secret_env": "not a name"}, "environment variable"),
        ({"headers_env": {"X-Driftline-Signature": "X"}}, "cannot be overridden"),
        ({"headers_env": {"webhook-id": "X"}}, "cannot be overridden"),
        ({"headers_env": {"Bad Header": "X"}}, "header name"),
        ({"events": []}, "at least one"),
        ({"events": ["drift.exploded"]}, "events"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_webhook_target_validation(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        target(**fields)


def test_webhook_target_event_filter() -> None:
    everything = target()
    assert all(everything.accepts(t) for t in ("drift.detected", "alert.resolved"))
    only = target(events=["retrain.requested", "retrain.requested"])
    assert only.events == (make_event(type="retrain.requested").type,)
    assert only.accepts("retrain.requested")
    assert not only.accepts("drift.detected")

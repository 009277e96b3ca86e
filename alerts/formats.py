"""Webhook request formats: one alert event as the HTTP request a target receives.

:func:`render_request` dispatches on the target's ``format``:

- ``driftline`` (the contract): the event body, ``X-Driftline-Event-Id`` and, when the
  target has a secret, ``X-Driftline-Signature``.
- ``standard-webhooks``: the same body with ``webhook-id`` (the event id),
  ``webhook-timestamp`` and ``webhook-signature`` (a secret is required).
- ``cloudevents``: CloudEvents 1.0 over HTTP, ``structured`` (the whole CloudEvent as
  ``application/cloudevents+json``) or ``binary`` (``ce-*`` headers, the event body as the
  HTTP body); ``id`` is the event id, ``type`` ``io.driftline.<event type>``, ``time`` the
  event's creation time, ``data`` the event body. Signed with ``X-Driftline-Signature`` (over
  the HTTP body as sent) when the target has a secret.

The same event rendered twice gives the same body, so a retry is byte-identical apart
from the signature's timestamp.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, urlsplit, urlunsplit

import orjson
from pydantic import SecretStr

from alerts.events import AlertEvent, body_dict, event_body, iso_utc
from alerts.signing import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    driftline_signature,
    standard_webhooks_signature,
)
from alerts.targets import WebhookTarget

JSON: Final = "application/json"
CLOUDEVENTS_JSON: Final = "application/cloudevents+json"
CLOUDEVENTS_TYPE_PREFIX: Final = "io.driftline."
#: The CloudEvents ``source`` unless the caller names another (a URI-reference).
DEFAULT_SOURCE: Final = "/driftline"
# CloudEvents HTTP binding 3.1.3.2: printable ASCII stays as is, except space, '"' and '%'.
_CE_SAFE: Final = "".join(c for c in map(chr, range(0x21, 0x7F)) if c not in ' "%')


class MissingSecretError(ValueError):
    """A target that signs its requests was rendered without its secret; ``name`` is the target."""

    def __init__(self, name: str, variable: str | None) -> None:
        self.name = name
        where = f" (environment variable {variable})" if variable else ""
        super().__init__(f"target {name!r} signs its requests; secret{where} was not given")


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpRequest:
    """An HTTP request ready to send. Its repr shows header names only, never values."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """Returns the value of header ``name`` (case-insensitive), or None."""
        lowered = name.lower()
        return next((value for key, value in self.headers if key.lower() == lowered), None)

    def __repr__(self) -> str:
        # Header values may be signatures or credentials; a URL may carry a token in its path
        # only by the user's choice, so only its query is dropped.
        parts = urlsplit(self.url)
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        names = [key for key, _ in self.headers]
        return (
            f"HttpRequest(method={self.method!r}, url={url!r}, headers={names!r}, "
            f"body=<{len(self.body)} bytes>)"
        )


def _merge(
    protocol: Mapping[str, str], extra: Mapping[str, str] | None
) -> tuple[tuple[str, str], ...]:
    merged = dict(protocol)
    taken = {key.lower() for key in protocol}
    for key, value in (extra or {}).items():
        # Targets cannot override the format's own headers (their config refuses it too).
        if key.lower() not in taken:
            merged[key] = value
    return tuple(merged.items())


def _ce_header(value: str) -> str:
    return quote(value, safe=_CE_SAFE)


def cloudevent_attributes(event: AlertEvent, *, source: str = DEFAULT_SOURCE) -> dict[str, str]:
    """Returns the CloudEvents 1.0 context attributes of ``event`` (without ``data``)."""
    return {
        "specversion": "1.0",
        "id": event.id,
        "source": source,
        "type": CLOUDEVENTS_TYPE_PREFIX + event.type.value,
        "subject": event.model,
        "time": iso_utc(event.created_at),
        "datacontenttype": JSON,
    }


def _driftline(
    event: AlertEvent, target: WebhookTarget, *, now: float, secret: SecretStr | None
) -> tuple[dict[str, str], bytes]:
    body = event_body(event)
    headers = {"Content-Type": JSON, EVENT_ID_HEADER: event.id}
    if secret is not None:
        headers[SIGNATURE_HEADER] = driftline_signature(
            secret.get_secret_value(), body, timestamp=int(now)
        )
    return headers, body


def _standard_webhooks(
    event: AlertEvent, target: WebhookTarget, *, now: float, secret: SecretStr | None
) -> tuple[dict[str, str], bytes]:
    if secret is None:
        raise MissingSecretError(target.name, target.secret_env)
    body = event_body(event)
    timestamp = int(now)
    signature = standard_webhooks_signature(secret.get_secret_value(), event.id, timestamp, body)
    headers = {
        "Content-Type": JSON,
        "webhook-id": event.id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }
    return headers, body


def _cloudevents(
    event: AlertEvent, target: WebhookTarget, *, now: float, secret: SecretStr | None, source: str
) -> tuple[dict[str, str], bytes]:
    attributes = cloudevent_attributes(event, source=source)
    headers: dict[str, str]
    if target.cloudevents_mode == "structured":
        structured = {**attributes, "data": body_dict(event)}
        body = orjson.dumps(structured, option=orjson.OPT_SERIALIZE_NUMPY)
        headers = {"Content-Type": CLOUDEVENTS_JSON}
    else:
        body = event_body(event)
        headers = {"Content-Type": attributes.pop("datacontenttype")}
        headers.update({f"ce-{name}": _ce_header(value) for name, value in attributes.items()})
    headers[EVENT_ID_HEADER] = event.id
    if secret is not None:
        headers[SIGNATURE_HEADER] = driftline_signature(
            secret.get_secret_value(), body, timestamp=int(now)
        )
    return headers, body


def render_request(
    event: AlertEvent,
    target: WebhookTarget,
    *,
    now: float,
    secret: SecretStr | None,
    headers: Mapping[str, str] | None = None,
    source: str = DEFAULT_SOURCE,
) -> HttpRequest:
    """Returns the POST request that delivers ``event`` to ``target`` in the target's format.

    ``now`` (Unix seconds) is the signature timestamp; ``secret`` the resolved
    ``target.secret_env`` (required when it is set); ``headers`` extra headers such as
    :func:`alerts.targets.target_headers` returns; ``source`` the CloudEvents source.
    """
    if target.secret_env is not None and secret is None:
        raise MissingSecretError(target.name, target.secret_env)
    if target.format == "driftline":
        own, body = _driftline(event, target, now=now, secret=secret)
    elif target.format == "standard-webhooks":
        own, body = _standard_webhooks(event, target, now=now, secret=secret)
    else:
        own, body = _cloudevents(event, target, now=now, secret=secret, source=source)
    return HttpRequest(method="POST", url=target.url, headers=_merge(own, headers), body=body)

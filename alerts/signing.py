"""Webhook signatures: driftline's ``X-Driftline-Signature`` and Standard Webhooks'.

driftline (the contract): ``t=<unix seconds>,v1=<hex HMAC-SHA256 over "<t>.<raw body>">``
keyed with the UTF-8 bytes of the secret. A receiver may accept several ``v1=`` values
(so a sender can sign with an old and a new secret while rotating).

Standard Webhooks: ``v1,<base64 HMAC-SHA256 over "<id>.<timestamp>.<body>">``. The key is
derived from the secret as the ``standardwebhooks`` library does (:func:`standard_webhooks_key`):
a ``whsec_`` prefix is removed and the rest is base64-decoded. A secret without the prefix is
base64-decoded too (the library makes no difference), so it must be base64 text; generate
one as ``whsec_`` + base64 of 24 to 64 random bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from typing import Final

SIGNATURE_HEADER: Final = "X-Driftline-Signature"
EVENT_ID_HEADER: Final = "X-Driftline-Event-Id"
#: How far a signature's timestamp may be from the verifier's clock, either way.
DEFAULT_TOLERANCE_S: Final = 300.0
STANDARD_WEBHOOKS_PREFIX: Final = "whsec_"


class SignatureError(ValueError):
    """A webhook signature does not verify; subclasses say why (never with the secret)."""


class MalformedSignatureError(SignatureError):
    """The signature header is not ``t=<unix seconds>,v1=<hex>[,v1=<hex>...]``."""


class StaleSignatureError(SignatureError):
    """The signature's timestamp is further from now than the tolerance allows."""


class BadSignatureError(SignatureError):
    """No ``v1`` value of the header matches the body and secret."""


class InvalidSecretError(ValueError):
    """A signing secret is empty or not in the form its format needs (the value is not shown)."""


def _key(secret: str | bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    if not key:
        raise InvalidSecretError("secret must not be empty")
    return key


def driftline_digest(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """Returns the hex HMAC-SHA256 of ``b"<timestamp>." + body`` keyed with ``secret``."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(_key(secret), message, hashlib.sha256).hexdigest()


def driftline_signature(secret: str | bytes, body: bytes, *, timestamp: int) -> str:
    """Returns the ``X-Driftline-Signature`` value ``t=<timestamp>,v1=<hex>`` for ``body``."""
    return f"t={timestamp},v1={driftline_digest(secret, timestamp, body)}"


def parse_driftline_signature(header: str) -> tuple[int, tuple[str, ...]]:
    """Returns ``(timestamp, v1 digests)`` of an ``X-Driftline-Signature`` header value."""
    timestamps: list[str] = []
    digests: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise MalformedSignatureError(f"{SIGNATURE_HEADER}: {part.strip()!r} is not key=value")
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            digests.append(value)
        # Other keys (future schemes) are ignored so that adding one does not break receivers.
    if len(timestamps) != 1 or not (timestamps[0].isascii() and timestamps[0].isdigit()):
        raise MalformedSignatureError(f"{SIGNATURE_HEADER}: needs exactly one t=<unix seconds>")
    if not digests:
        raise MalformedSignatureError(f"{SIGNATURE_HEADER}: needs at least one v1=<hex digest>")
    return int(timestamps[0]), tuple(digests)


def verify_driftline_signature(
    secret: str | bytes,
    header: str,
    body: bytes,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> int:
    """Checks an ``X-Driftline-Signature`` header against the raw ``body``; returns its timestamp.

    Raises :class:`MalformedSignatureError`, :class:`StaleSignatureError` (timestamp more
    than ``tolerance_s`` from ``now``, default the current time) or :class:`BadSignatureError`.
    """
    timestamp, digests = parse_driftline_signature(header)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise StaleSignatureError(
            f"{SIGNATURE_HEADER}: timestamp {timestamp} is {current - timestamp:+.0f} s from now; "
            f"tolerance is {tolerance_s:g} s"
        )
    expected = driftline_digest(secret, timestamp, body)
    # Bytes, not str: compare_digest raises TypeError on non-ASCII str from a hostile header.
    if not any(hmac.compare_digest(expected.encode(), d.encode()) for d in digests):
        raise BadSignatureError(f"{SIGNATURE_HEADER}: no v1 signature matches the body")
    return timestamp


def standard_webhooks_key(secret: str | bytes) -> bytes:
    """Returns the HMAC key of a Standard Webhooks secret, as the ``standardwebhooks`` library does.

    A ``str`` loses its ``whsec_`` prefix and is base64-decoded (unpadded accepted); ``bytes``
    are the key itself.
    """
    if isinstance(secret, bytes):
        return _key(secret)
    text = secret.removeprefix(STANDARD_WEBHOOKS_PREFIX)
    try:
        # The same decoding as standardwebhooks.Webhook, padding added for unpadded secrets.
        key = base64.b64decode(text + "==")
    except (binascii.Error, ValueError):
        raise InvalidSecretError(
            "a standard-webhooks secret must be base64 text, optionally prefixed with 'whsec_'"
        ) from None
    return _key(key)


def standard_webhooks_signature(
    secret: str | bytes, msg_id: str, timestamp: int, body: bytes
) -> str:
    """Returns the ``webhook-signature`` value ``v1,<base64>`` for ``body`` sent as ``msg_id``."""
    message = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(standard_webhooks_key(secret), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()

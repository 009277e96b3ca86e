"""Configuration of alert targets: webhooks, Alertmanager and retraining job runners.

A config file names environment variables, never secrets: ``secret_env``, ``token_env``,
``basic_env`` and the values of ``headers_env`` are variable names, read when a request is
built (:func:`resolve_secret`, :func:`target_headers`). A URL with credentials in it
(``https://user:pass@host``) is refused for the same reason. Resolved values are
:class:`pydantic.SecretStr`, whose repr and str hide them.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Annotated, Final, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from alerts.events import EventType

_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token
_TARGET_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_GITHUB_NAME: Final = re.compile(r"[A-Za-z0-9_.-]+")
#: Headers a target's ``headers_env`` may not set: the formats own them.
RESERVED_HEADERS: Final = frozenset(
    {"content-type", "content-length", "host", "x-driftline-signature", "x-driftline-event-id"}
)
_RESERVED_PREFIXES: Final = ("webhook-", "ce-")
DEFAULT_GITHUB_API: Final = "https://api.github.com"


class SecretNotSetError(ValueError):
    """An environment variable a target needs is unset or empty; ``name`` is the variable."""

    def __init__(
        self, name: str, purpose: str = "a target secret", problem: str = "is not set or is empty"
    ) -> None:
        self.name = name
        super().__init__(f"environment variable {name} ({purpose}) {problem}")


def _check_env_name(value: str | None, field: str) -> str | None:
    if value is not None and not _ENV_NAME.fullmatch(value):
        raise ValueError(f"{field} must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)")
    return value


def _check_url(value: str, field: str = "url") -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{field} must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"{field} must not contain credentials; name environment variables in "
            "headers_env (or token_env / basic_env) instead"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"{field} must not have a query or fragment")
    return value.rstrip("/")


class _Target(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    headers_env: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _TARGET_NAME.fullmatch(value):
            raise ValueError(
                "name must be letters, digits, '_', '.' or '-', starting with a letter or digit"
            )
        return value

    @field_validator("headers_env")
    @classmethod
    def _headers_env(cls, value: dict[str, str]) -> dict[str, str]:
        for header, env in value.items():
            lowered = header.lower()
            if not _HEADER_NAME.fullmatch(header):
                raise ValueError(f"headers_env: {header!r} is not a valid HTTP header name")
            if lowered in RESERVED_HEADERS or lowered.startswith(_RESERVED_PREFIXES):
                raise ValueError(
                    f"headers_env: {header!r} is set by driftline and cannot be overridden"
                )
            _check_env_name(env, f"headers_env[{header!r}]")
        return value


class WebhookTarget(_Target):
    """A webhook receiver: where events are POSTed, in which format, signed with which secret.

    ``events`` lists the event types it receives (default: all).
    """

    type: Literal["webhook"] = "webhook"
    url: str
    format: Literal["driftline", "standard-webhooks", "cloudevents"] = "driftline"
    cloudevents_mode: Literal["structured", "binary"] = "structured"
    secret_env: str | None = None
    events: tuple[EventType, ...] = tuple(EventType)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value)

    @field_validator("secret_env")
    @classmethod
    def _secret_env(cls, value: str | None) -> str | None:
        return _check_env_name(value, "secret_env")

    @field_validator("events")
    @classmethod
    def _events(cls, value: tuple[EventType, ...]) -> tuple[EventType, ...]:
        if not value:
            raise ValueError("events must name at least one event type")
        return tuple(dict.fromkeys(value))

    @model_validator(mode="after")
    def _secret_required(self) -> Self:
        if self.format == "standard-webhooks" and self.secret_env is None:
            raise ValueError(
                "format 'standard-webhooks' requires secret_env (its requests are always signed)"
            )
        return self

    def accepts(self, event_type: EventType | str) -> bool:
        """Returns whether this target receives events of ``event_type``."""
        return EventType(event_type) in self.events


class AlertmanagerTarget(_Target):
    """A Prometheus Alertmanager: ``url`` is its base, alerts go to ``{url}/api/v2/alerts``.

    ``resend_interval_s`` is how often firing alerts are re-sent; each says it ends
    ``3 * resend_interval_s`` after it was sent, so Alertmanager resolves an alert by itself
    if driftline stops re-sending it (as Prometheus does with its own alerts).
    """

    type: Literal["alertmanager"] = "alertmanager"
    url: str
    resend_interval_s: float = Field(default=60.0, gt=0, le=86_400)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value)


class RetrainTarget(_Target):
    """A retraining job runner, triggered by ``retrain.requested`` events.

    ``kind`` picks the API: ``generic`` POSTs the event body to ``url``; ``airflow`` needs
    ``dag_id``; ``prefect`` needs ``deployment_id`` (``prefect_parameter`` wraps the payload
    in one flow parameter of that name instead of passing its keys as parameters);
    ``github`` needs ``owner``, ``repo`` and ``workflow`` (``url`` defaults to
    ``https://api.github.com``). Authentication: at most one of ``token_env`` (Bearer) and
    ``basic_env`` (the variable holds ``user:password``), plus any ``headers_env``.
    """

    type: Literal["retrain"] = "retrain"
    kind: Literal["generic", "airflow", "prefect", "github"]
    url: str | None = None
    token_env: str | None = None
    basic_env: str | None = None
    dag_id: str | None = None
    deployment_id: str | None = None
    prefect_parameter: str | None = None
    owner: str | None = None
    repo: str | None = None
    workflow: str | None = None
    ref: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)

    @field_validator("token_env", "basic_env")
    @classmethod
    def _env(cls, value: str | None) -> str | None:
        return _check_env_name(value, "token_env / basic_env")

    @field_validator("owner", "repo", "workflow")
    @classmethod
    def _github_name(cls, value: str | None) -> str | None:
        if value is not None and not _GITHUB_NAME.fullmatch(value):
            raise ValueError("owner, repo and workflow must be letters, digits, '_', '.' or '-'")
        return value

    @model_validator(mode="after")
    def _kind_fields(self) -> Self:
        if self.token_env is not None and self.basic_env is not None:
            raise ValueError("set at most one of token_env and basic_env")
        has_auth_header = any(h.lower() == "authorization" for h in self.headers_env)
        if has_auth_header and (self.token_env or self.basic_env):
            raise ValueError(
                "headers_env sets Authorization; do not also set token_env or basic_env"
            )
        required = {
            "generic": ("url",),
            "airflow": ("url", "dag_id"),
            "prefect": ("url", "deployment_id"),
            "github": ("owner", "repo", "workflow"),
        }[self.kind]
        missing = [name for name in required if getattr(self, name) is None]
        if missing:
            raise ValueError(f"kind {self.kind!r} requires {', '.join(missing)}")
        own = {
            "airflow": {"dag_id"},
            "prefect": {"deployment_id", "prefect_parameter"},
            "github": {"owner", "repo", "workflow", "ref"},
        }
        foreign = sorted(
            name
            for kind, names in own.items()
            if kind != self.kind
            for name in names
            if getattr(self, name) is not None
        )
        if foreign:
            raise ValueError(f"kind {self.kind!r} does not use {', '.join(foreign)}")
        return self


#: Any target, told apart by its ``type`` (``webhook``, ``alertmanager``, ``retrain``).
Target = Annotated[WebhookTarget | AlertmanagerTarget | RetrainTarget, Field(discriminator="type")]


def resolve_secret(
    env_name: str, environ: Mapping[str, str], purpose: str = "a target secret"
) -> SecretStr:
    """Returns the value of environment variable ``env_name`` as a :class:`SecretStr`.

    Raises :class:`SecretNotSetError` naming the variable (never a value) when it is unset
    or empty.
    """
    value = environ.get(env_name, "")
    if not value:
        raise SecretNotSetError(env_name, purpose)
    return SecretStr(value)


def target_headers(
    target: WebhookTarget | AlertmanagerTarget | RetrainTarget, environ: Mapping[str, str]
) -> dict[str, str]:
    """Returns the extra request headers of ``target`` with their values read from ``environ``.

    These are the ``headers_env`` headers and, for a :class:`RetrainTarget`, its
    ``Authorization`` (Bearer from ``token_env``, Basic from ``basic_env``).
    """
    headers = {
        header: resolve_secret(env, environ, f"header {header}").get_secret_value()
        for header, env in target.headers_env.items()
    }
    if isinstance(target, RetrainTarget):
        if target.token_env is not None:
            token = resolve_secret(target.token_env, environ, "bearer token").get_secret_value()
            headers["Authorization"] = f"Bearer {token}"
        elif target.basic_env is not None:
            pair = resolve_secret(target.basic_env, environ, "user:password").get_secret_value()
            if ":" not in pair:
                raise SecretNotSetError(target.basic_env, "user:password", "has no ':'")
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    return headers

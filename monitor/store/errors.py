"""The one exception the store raises for an unusable database, and URL masking for messages."""

from __future__ import annotations

import re

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

# "scheme://user:secret@host" -> "scheme://user:***@host", for strings SQLAlchemy cannot parse.
_PASSWORD_IN_URL = re.compile(r"(?P<head>://[^:/@]*:)[^@]*@")


def mask_url(url: str | URL) -> str:
    """Return ``url`` as a string with its password replaced by ``***``.

    Works on URLs SQLAlchemy cannot parse too, so that error messages about a
    malformed URL do not leak the password either.

    >>> mask_url("postgresql+psycopg://monitor:s3cret@db:5432/driftline")
    'postgresql+psycopg://monitor:***@db:5432/driftline'
    >>> mask_url("sqlite:///driftline.db")
    'sqlite:///driftline.db'
    """
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return _PASSWORD_IN_URL.sub(r"\g<head>***@", url)


class StoreError(RuntimeError):
    """The database cannot be used: a bad URL, an unreachable server, a failed migration.

    The message names the database by its URL with the password masked;
    ``url`` holds that masked URL and ``reason`` the cause.
    """

    def __init__(self, url: str | URL, reason: str) -> None:
        self.url = mask_url(url)
        password = url.password if isinstance(url, URL) else _password(url)
        if password:
            reason = reason.replace(str(password), "***")
        self.reason = reason
        super().__init__(f"database {self.url}: {reason}")


def _password(url: str) -> str | None:
    try:
        password = make_url(url).password
    except (ArgumentError, ValueError):
        return None
    return None if password is None else str(password)

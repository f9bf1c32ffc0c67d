"""``TokenData``: an access token and when it stops being good, parsed from RFC 6749 responses.

A token is immutable: a refresh produces a new ``TokenData``, so one can be shared between
threads and compared by identity. Its repr never shows the access or refresh token.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from requestforge._clock import Clock, get_default_clock
from requestforge._exceptions import TokenResponseError

__all__ = ["TokenData"]

_SCHEMES = {"bearer": "Bearer", "mac": "MAC", "dpop": "DPoP"}


@dataclass(frozen=True, eq=True, repr=False)
class TokenData:
    """An access token, its type, expiry, refresh token and scope.

    ``expires_at`` is a timezone-aware UTC datetime, or None for a token that does not
    expire. ``issued_at`` records when the token was obtained; the :class:`TokenManager`
    uses it to size the expiry leeway to the token's lifetime.
    """

    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - a scheme name, not a secret
    expires_at: datetime | None = None
    refresh_token: str | None = None
    scope: str | None = None
    issued_at: datetime | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _check_secret("access_token", self.access_token, required=True)
        _check_secret("refresh_token", self.refresh_token, required=False)
        if not isinstance(self.token_type, str) or not self.token_type.strip():
            raise TokenResponseError(f"token_type must be a non-empty string: {self.token_type!r}")
        if self.scope is not None and not isinstance(self.scope, str):
            raise TokenResponseError(f"scope must be a string or None, got {self.scope!r}")
        for name in ("expires_at", "issued_at"):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, datetime) or value.utcoffset() is None:
                raise TokenResponseError(f"{name} must be a timezone-aware datetime, got {value!r}")
            object.__setattr__(self, name, value.astimezone(timezone.utc))

    @classmethod
    def from_response(cls, data: object, *, clock: Clock | None = None) -> TokenData:
        """Parse an RFC 6749 (section 5.1) token response body.

        ``expires_in`` may be an integer, a float or a numeric string (several providers
        send ``"3600"``); the expiry is counted from now on ``clock`` (the default clock).
        Anything malformed raises :class:`~requestforge.TokenResponseError`.
        """
        if not isinstance(data, Mapping):
            raise TokenResponseError(
                f"token response must be a JSON object, got {type(data).__name__}"
            )
        access_token = data.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise TokenResponseError("token response has no access_token string")
        token_type = data.get("token_type", "Bearer")
        if not isinstance(token_type, str) or not token_type.strip():
            raise TokenResponseError("token response has an invalid token_type")
        refresh_token = data.get("refresh_token")
        if refresh_token is not None and (not isinstance(refresh_token, str) or not refresh_token):
            raise TokenResponseError("token response has an invalid refresh_token")
        now = (clock or get_default_clock()).now()
        lifetime = _parse_expires_in(data.get("expires_in"))
        return cls(
            access_token=access_token,
            token_type=token_type,
            expires_at=None if lifetime is None else now + timedelta(seconds=lifetime),
            refresh_token=refresh_token,
            scope=_parse_scope(data.get("scope")),
            issued_at=now,
        )

    @property
    def is_expired(self) -> bool:
        """True once ``expires_at`` has passed on the default clock (no leeway)."""
        return self.expires_at is not None and get_default_clock().now() >= self.expires_at

    def expires_in(self, *, clock: Clock | None = None) -> float | None:
        """Seconds until ``expires_at`` (negative once expired), or None if it never expires."""
        if self.expires_at is None:
            return None
        return (self.expires_at - (clock or get_default_clock()).now()).total_seconds()

    @property
    def lifetime(self) -> float | None:
        """Seconds from ``issued_at`` to ``expires_at``, when both are known."""
        if self.expires_at is None or self.issued_at is None:
            return None
        return (self.expires_at - self.issued_at).total_seconds()

    @property
    def authorization_header(self) -> str:
        """The ``Authorization`` header value, e.g. ``Bearer abc``.

        The scheme is case-insensitive (RFC 6749 section 5.1) but some APIs reject a lower-case
        ``bearer``, so well-known schemes are sent in their canonical spelling.
        """
        scheme = _SCHEMES.get(self.token_type.lower(), self.token_type)
        return f"{scheme} {self.access_token}"

    def __repr__(self) -> str:
        expires = None if self.expires_at is None else self.expires_at.isoformat()
        return (
            f"TokenData(access_token='***', token_type={self.token_type!r}, "
            f"expires_at={expires!r}, refresh_token={'***' if self.refresh_token else None!r}, "
            f"scope={self.scope!r})"
        )


def _check_secret(name: str, value: object, *, required: bool) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not value:
        raise TokenResponseError(f"{name} must be a non-empty string")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        # A token goes into a header: whitespace or control characters would split it.
        raise TokenResponseError(f"{name} contains whitespace or control characters")


def _parse_expires_in(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise TokenResponseError("expires_in must be a number of seconds, got a boolean")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise TokenResponseError("expires_in is not a number") from None
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise TokenResponseError("expires_in must be a finite, non-negative number of seconds")
    return float(value)


def _parse_scope(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple) and all(isinstance(s, str) for s in value):
        return " ".join(value)  # some servers send a JSON array instead of RFC 6749's string
    raise TokenResponseError("scope must be a string or a list of strings")


#: Bumped when the stored layout changes; a storage treats any other version as a miss.
STORAGE_FORMAT_VERSION = 1


def encode_token(token: TokenData) -> bytes:
    """The token as versioned JSON, for storages shared between processes.

    Explicit fields instead of pickle: a shared cache is written by other processes (and
    other versions of this library), and unpickling what they wrote would run their code.
    """
    return json.dumps(
        {
            "v": STORAGE_FORMAT_VERSION,
            "access_token": token.access_token,
            "token_type": token.token_type,
            "expires_at": _iso(token.expires_at),
            "refresh_token": token.refresh_token,
            "scope": token.scope,
            "issued_at": _iso(token.issued_at),
        },
        separators=(",", ":"),
    ).encode()


def decode_token(raw: bytes | str) -> TokenData:
    """Read what :func:`encode_token` wrote; anything else raises ``ValueError``.

    The message describes the problem and never quotes the value, which may hold a token.
    """
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("stored token is not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("stored token is not a JSON object")
    if data.get("v") != STORAGE_FORMAT_VERSION:
        raise ValueError(f"stored token has format version {data.get('v')!r}, not 1")
    try:
        return TokenData(
            access_token=data["access_token"],
            token_type=data["token_type"],
            expires_at=_from_iso(data.get("expires_at")),
            refresh_token=data.get("refresh_token"),
            scope=data.get("scope"),
            issued_at=_from_iso(data.get("issued_at")),
        )
    except KeyError as exc:
        raise ValueError(f"stored token has no {exc.args[0]!r} field") from None


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def _from_iso(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("stored token has a non-string timestamp")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("stored token has a malformed timestamp") from None

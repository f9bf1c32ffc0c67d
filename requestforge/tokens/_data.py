"""``TokenData``: an access token and when it stops being good, parsed from RFC 6749 responses.

A token is immutable: a refresh produces a new ``TokenData``, so one can be shared between
threads and compared by identity. Its repr never shows the access or refresh token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Final

from requestforge._clock import Clock, get_default_clock
from requestforge._exceptions import TokenResponseError
from requestforge._secrets import Secrets, declare_secrets
from requestforge._validate import token_text, valid_token_type

__all__ = ["TokenData"]

_SCHEMES = {"bearer": "Bearer", "mac": "MAC", "dpop": "DPoP"}

#: The longest ``expires_in`` accepted: 10**10 s, about 317 years. Far beyond any real
#: lifetime, yet it admits the "never expires" conventions of real servers (2**31 - 1 and
#: 2**32 - 1 seconds) and keeps every expiry a representable datetime (before year 9999).
MAX_EXPIRES_IN: Final = 10**10
#: ``expires_in`` as a string: ASCII decimal digits, an optional fraction and exponent, short
#: (``float()`` alone would also take ``"1_000"``, ``"inf"`` and non-ASCII digits).
_NUMERIC = re.compile(r"[0-9]{1,20}(?:\.[0-9]{0,20})?(?:[eE][+-]?[0-9]{1,3})?")


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
        # The access token and scheme go into a header: printable, no spaces (see _validate).
        token_text("access_token", self.access_token, error=TokenResponseError)
        if self.refresh_token is not None:
            token_text("refresh_token", self.refresh_token, space=True, error=TokenResponseError)
        # Every token the library holds is known to be secret from the moment it exists
        # (one cheap set check per token once declared; see _secrets).
        declare_secrets(Secrets.of(values=(self.access_token, self.refresh_token)))
        valid_token_type("token_type", self.token_type, error=TokenResponseError)
        if self.scope is not None and not isinstance(self.scope, str):
            raise TokenResponseError(
                f"scope must be a string or None, got {type(self.scope).__name__}"
            )
        for name in ("expires_at", "issued_at"):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, datetime) or value.utcoffset() is None:
                raise TokenResponseError(f"{name} must be a timezone-aware datetime")
            try:
                object.__setattr__(self, name, value.astimezone(timezone.utc))
            except OverflowError:  # e.g. 0001-01-01 at +14:00 is before datetime.min in UTC
                raise TokenResponseError(f"{name} is out of datetime's range in UTC") from None

    @classmethod
    def from_response(cls, data: object, *, clock: Clock | None = None) -> TokenData:
        """Parse an RFC 6749 (section 5.1) token response body.

        ``expires_in`` may be an integer, a float or a numeric string (several providers
        send ``"3600"``), from 0 to :data:`MAX_EXPIRES_IN`; the expiry is counted from now on
        ``clock`` (the default clock). Anything malformed raises
        :class:`~requestforge.TokenResponseError`, whose message never quotes a token: a
        ``token_type`` that is not an RFC 9110 token (a space, CR/LF), an access token that is
        not printable ASCII without spaces, a refresh token that is not printable ASCII.
        """
        if not isinstance(data, Mapping):
            raise TokenResponseError(
                f"token response must be a JSON object, got {type(data).__name__}"
            )
        if not isinstance(data.get("access_token"), str):
            raise TokenResponseError("token response has no access_token string")
        now = (clock or get_default_clock()).now()
        lifetime = _parse_expires_in(data.get("expires_in"))
        try:
            expires_at = None if lifetime is None else now + timedelta(seconds=lifetime)
        except OverflowError:  # only for a clock set within 317 years of year 9999
            raise TokenResponseError("expires_in puts the expiry past year 9999") from None
        return cls(
            access_token=data["access_token"],
            token_type=data.get("token_type", "Bearer"),
            expires_at=expires_at,
            refresh_token=data.get("refresh_token"),
            scope=_parse_scope(data.get("scope")),
            issued_at=now,
        )

    @property
    def is_expired(self) -> bool:
        """True once ``expires_at`` has passed on the default clock (no leeway)."""
        return self.expired()

    def expired(self, *, clock: Clock | None = None) -> bool:
        """True once ``expires_at`` has passed on ``clock`` (the default clock if None), with
        no leeway: the one notion of "still valid", for a token nothing better replaces."""
        return (
            self.expires_at is not None and (clock or get_default_clock()).now() >= self.expires_at
        )

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


def _parse_expires_in(value: Any) -> float | None:
    """Seconds from 0 to ``MAX_EXPIRES_IN``. Compared before any conversion, so a huge int
    (``10**400``) is refused instead of overflowing ``float()`` or ``timedelta``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TokenResponseError("expires_in must be a number of seconds, got a boolean")
    if isinstance(value, str):
        stripped = value.strip()
        if len(stripped) > 48 or _NUMERIC.fullmatch(stripped) is None:
            raise TokenResponseError("expires_in is not a number")
        value = float(stripped)
    if not isinstance(value, int | float):
        raise TokenResponseError(f"expires_in must be a number, got {type(value).__name__}")
    if not 0 <= value <= MAX_EXPIRES_IN:  # also False for NaN
        raise TokenResponseError(
            f"expires_in must be from 0 to {MAX_EXPIRES_IN} seconds (about 317 years)"
        )
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


#: The largest stored value read: a record is a few KB even with a large JWT in it.
MAX_STORED_SIZE: Final = 1 << 20
#: A JSON string, escapes included, in linear time (the unrolled loop: no character can be
#: matched two ways, so a string without its closing quote fails without backtracking).
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def decode_token(raw: bytes | str) -> TokenData:
    """Read what :func:`encode_token` wrote; anything else raises
    :class:`~requestforge.TokenResponseError` (a ``ValueError``), so a storage can treat it as
    a miss. The message describes the problem and never quotes the value (it may hold a token).

    Depth-limited: a record is one flat object, so a value with a second ``{`` or any ``[``
    outside its strings is refused before ``json.loads`` sees it (see :func:`_is_flat`): a
    100,000-deep value costs one linear scan, not a RecursionError.
    """
    if isinstance(raw, bytes | bytearray):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise TokenResponseError("stored token is not UTF-8 text") from None
    if not isinstance(raw, str):
        raise TokenResponseError(f"stored token is a {type(raw).__name__}, not text")
    if len(raw) > MAX_STORED_SIZE:
        raise TokenResponseError(f"stored token is larger than {MAX_STORED_SIZE} characters")
    if not _is_flat(raw):
        raise TokenResponseError("stored token is not one flat JSON object")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: a second net, never expected
        raise TokenResponseError("stored token is not JSON") from None
    if not isinstance(data, dict):
        raise TokenResponseError("stored token is not a JSON object")
    version = data.get("v")
    if type(version) is not int or version != STORAGE_FORMAT_VERSION:
        shown = repr(version) if type(version) is int else type(version).__name__
        raise TokenResponseError(
            f"stored token has format version {shown}, not {STORAGE_FORMAT_VERSION}"
        )
    for name in ("access_token", "token_type"):
        if name not in data:
            raise TokenResponseError(f"stored token has no {name!r} field")
    return TokenData(
        access_token=data["access_token"],
        token_type=data["token_type"],
        expires_at=_from_iso(data.get("expires_at")),
        refresh_token=data.get("refresh_token"),
        scope=data.get("scope"),
        issued_at=_from_iso(data.get("issued_at")),
    )


def _is_flat(text: str) -> bool:
    """True if ``text`` has exactly one ``{`` and no ``[`` outside its JSON strings.

    Two ``str.count`` calls settle what :func:`encode_token` writes (tokens do not carry
    brackets); otherwise the strings are skipped one by one, linear in ``text``. An
    unterminated string is not JSON, so the scan stops there.
    """
    if "[" not in text and text.count("{") == 1:
        return True
    opened, pos = 0, 0
    while True:
        quote = text.find('"', pos)
        outside = text[pos:] if quote < 0 else text[pos:quote]
        opened += outside.count("{")
        if "[" in outside or opened > 1:
            return False
        if quote < 0:
            return opened == 1
        string = _JSON_STRING.match(text, quote)
        if string is None:
            return False
        pos = string.end()


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def _from_iso(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TokenResponseError("stored token has a non-string timestamp")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise TokenResponseError("stored token has a malformed timestamp") from None

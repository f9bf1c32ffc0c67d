"""``TokenData``: an access token and when it stops being good, parsed from RFC 6749 responses.

A token is immutable: a refresh produces a new ``TokenData``, so one can be shared between
threads and compared by identity. Its repr never shows the access or refresh token, nor the
value of a secret-named extra member (``id_token``).

Members of a response that ``TokenData`` does not parse into a field are kept in ``extra``
(issue 13): an immutable, hashable mapping of bounded JSON values (see :class:`_Extra`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Final

from requestforge._clock import Clock, get_default_clock
from requestforge._exceptions import TokenResponseError
from requestforge._redact import is_credential_field, redact_json
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

#: Response members parsed into a field of their own; every other member goes to ``extra``.
#: ``refresh_expires_in`` is Keycloak's, ``refresh_token_expires_in`` Azure's and GitHub's.
PARSED_MEMBERS: Final = frozenset(
    {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "scope",
        "issued_token_type",
        "refresh_expires_in",
        "refresh_token_expires_in",
    }
)
#: Bounds on ``extra``, so a token stays a small record that :func:`decode_token` reads back
#: without recursion: at most this many members...
MAX_EXTRA_MEMBERS: Final = 100
#: ...with names this long at most...
MAX_EXTRA_NAME: Final = 256
#: ...values nested at most this deep (a scalar is 0, ``cnf: {"jkt": ...}`` is 1)...
MAX_EXTRA_DEPTH: Final = 8
#: ...with at most this many objects and arrays in all...
MAX_EXTRA_CONTAINERS: Final = 1000
#: ...integers of this magnitude at most (a bigger one may not read back: CPython limits
#: ``int`` parsing to 4,300 digits)...
MAX_EXTRA_INT: Final = 2**64
#: ...and this many characters of canonical JSON in all (an Entra ``id_token`` with group
#: claims is tens of KB).
MAX_EXTRA_SIZE: Final = 256 * 1024


class _Unfit(Exception):
    """A value that is not a bounded JSON value; the message never quotes it."""


class _Extra(Mapping[str, Any]):
    """``TokenData.extra``: response members as canonical JSON, immutable and hashable.

    Each member is held as canonical JSON text (sorted keys, ASCII, no spaces), which is what
    equality and the hash compare and what the storage format writes. Reading a member gives
    its JSON value: a scalar as it is, an object or array as a fresh ``dict`` or ``list``
    each time, so no caller can change the token through it. The repr hides secret-named
    members (``id_token``) at any depth, and every string value under a credential name is
    declared secret, so logs and error messages redact it too.
    """

    __slots__ = ("_hash", "_items", "_scalars", "_texts")

    def __init__(self, members: Mapping[str, str], scalars: Mapping[str, object]) -> None:
        self._items = tuple(sorted(members.items()))
        self._texts = dict(self._items)
        self._scalars = dict(scalars)
        self._hash = hash(self._items)

    @classmethod
    def build(cls, members: Iterator[tuple[object, object]], *, strict: bool) -> _Extra:
        """Canonical members from ``(name, value)`` pairs. ``strict``: a member that is not a
        bounded JSON value raises :class:`TokenResponseError`; otherwise it is dropped (a
        server's odd extra member must not cost the access token beside it)."""
        texts: dict[str, str] = {}
        scalars: dict[str, object] = {}
        secrets: list[str] = []
        size = containers = 0
        for name, value in members:
            try:
                if not isinstance(name, str) or not 0 < len(name) <= MAX_EXTRA_NAME:
                    raise _Unfit(f"extra names must be strings of 1 to {MAX_EXTRA_NAME} characters")
                if name in PARSED_MEMBERS:
                    raise _Unfit(f"extra must not hold {name!r}, a member TokenData parses")
                if len(texts) >= MAX_EXTRA_MEMBERS:
                    raise _Unfit(f"extra holds more than {MAX_EXTRA_MEMBERS} members")
                found: list[str] = []
                counter = [containers]
                plain = _plain(value, 0, counter, found, secret=is_credential_field(name))
                text = json.dumps(plain, sort_keys=True, separators=(",", ":"), allow_nan=False)
                if size + len(text) + len(name) > MAX_EXTRA_SIZE:
                    raise _Unfit(f"extra is larger than {MAX_EXTRA_SIZE} characters of JSON")
            except _Unfit as exc:
                if strict:
                    raise TokenResponseError(str(exc)) from None
                continue
            size += len(text) + len(name)
            containers = counter[0]
            texts[name] = text
            if not isinstance(plain, dict | list):
                scalars[name] = plain
            secrets += found
        if secrets:
            declare_secrets(Secrets.of(values=secrets))
        return _NO_EXTRA if not texts else cls(texts, scalars)

    def json_members(self) -> tuple[tuple[str, str], ...]:
        """``(name, canonical JSON text)`` pairs, sorted by name: the storage format's view."""
        return self._items

    def __getitem__(self, name: str) -> Any:
        if name in self._scalars:
            return self._scalars[name]
        return json.loads(self._texts[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._texts)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._texts

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _Extra):
            return self._items == other._items
        return Mapping.__eq__(self, other)

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[type[_Extra], tuple[dict[str, str], dict[str, object]]]:
        # Rebuilt on unpickling, so the hash is that process's (str hashes are salted).
        return (_Extra, (self._texts, self._scalars))

    def __repr__(self) -> str:
        return repr(redact_json({name: self[name] for name in self._texts}))


_NO_EXTRA: Final = _Extra({}, {})


def _plain(
    value: object, depth: int, containers: list[int], found: list[str], *, secret: bool
) -> Any:
    """``value`` as plain JSON (dicts with string keys, lists, finite floats, bounded ints),
    checked against the bounds above; string values under a credential name go to ``found``.
    Recursion stops at :data:`MAX_EXTRA_DEPTH`, so a 100,000-deep value costs nine calls."""
    if not isinstance(value, Mapping | list | tuple):
        scalar = _plain_scalar(value)
        if secret and isinstance(scalar, str):
            found.append(scalar)
        return scalar
    if depth >= MAX_EXTRA_DEPTH:
        raise _Unfit(f"extra values must be nested at most {MAX_EXTRA_DEPTH} deep")
    containers[0] += 1
    if containers[0] > MAX_EXTRA_CONTAINERS:
        raise _Unfit(f"extra holds more than {MAX_EXTRA_CONTAINERS} objects and arrays")
    if isinstance(value, Mapping):
        plain: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Unfit("extra object keys must be strings")
            plain[key] = _plain(
                item, depth + 1, containers, found, secret=secret or is_credential_field(key)
            )
        return plain
    return [_plain(item, depth + 1, containers, found, secret=secret) for item in value]


def _plain_scalar(value: object) -> str | int | float | bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -MAX_EXTRA_INT <= value <= MAX_EXTRA_INT:
            raise _Unfit("extra integers must be within +-2**64")
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Unfit("extra numbers must be finite")
        return float(value)
    if isinstance(value, str):
        return str(value)
    raise _Unfit(f"extra values must be JSON values, got {type(value).__name__}")


@dataclass(frozen=True, eq=True, repr=False)
class TokenData:
    """An access token, its type, expiry, refresh token and scope.

    ``expires_at`` is a timezone-aware UTC datetime, or None for a token that does not
    expire. ``issued_at`` records when the token was obtained; the :class:`TokenManager`
    uses it to size the expiry leeway to the token's lifetime. A token whose ``expires_at``
    is not after its ``issued_at`` (``expires_in: 0``) is not cached: the manager hands it
    to the callers that asked for it and stores nothing.

    Keyword-only (issue 13): ``refresh_expires_at``, when the refresh token stops working
    (None: unknown or never; the manager then fetches instead of refreshing);
    ``issued_token_type``, RFC 8693's URI of what the token is; ``extra``, the response's
    other members (``id_token``, ``ext_expires_in``, ``instance_url``, ``cnf``, ...) as an
    immutable mapping of JSON values, bounded like the rest of the parser (at most 100
    members, 8 levels deep, 256 KiB of JSON). Objects and arrays in it read as fresh
    copies. Secret-named members (``id_token``) never appear in the repr, and their values
    are redacted from logs and error messages. Equality and the hash cover every field but
    ``issued_at``, ``extra`` included.
    """

    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - a scheme name, not a secret
    expires_at: datetime | None = None
    refresh_token: str | None = None
    scope: str | None = None
    issued_at: datetime | None = field(default=None, compare=False)
    refresh_expires_at: datetime | None = field(default=None, kw_only=True)
    issued_token_type: str | None = field(default=None, kw_only=True)
    extra: Mapping[str, Any] = field(default=_NO_EXTRA, kw_only=True)

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
        if self.issued_token_type is not None:
            token_text("issued_token_type", self.issued_token_type, error=TokenResponseError)
            if len(self.issued_token_type) > MAX_EXTRA_NAME:
                raise TokenResponseError(
                    f"issued_token_type is longer than {MAX_EXTRA_NAME} characters"
                )
        if not isinstance(self.extra, _Extra):
            if not isinstance(self.extra, Mapping):
                raise TokenResponseError(
                    f"extra must be a mapping, got {type(self.extra).__name__}"
                )
            object.__setattr__(self, "extra", _Extra.build(iter(self.extra.items()), strict=True))
        for name in ("expires_at", "issued_at", "refresh_expires_at"):
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

        The members that were ignored before issue 13 never make a response fail: a
        ``refresh_expires_in`` / ``refresh_token_expires_in`` that is not a number of seconds
        (or is 0, Keycloak's "no expiry" for offline tokens) leaves ``refresh_expires_at``
        None, an ``issued_token_type`` that is not a printable URI leaves it None, and an
        unknown member that is not a bounded JSON value is left out of ``extra``.
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
            refresh_expires_at=_refresh_expiry(data, now),
            issued_token_type=_lenient_token_type(data.get("issued_token_type")),
            extra=_Extra.build(
                ((k, v) for k, v in data.items() if k not in PARSED_MEMBERS), strict=False
            ),
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
        # The fields of issue 13 are shown only when set, so older reprs read as before;
        # extra shows its member names only (a value may be a secret or 256 KB long).
        later = ""
        if self.refresh_expires_at is not None:
            later += f", refresh_expires_at={self.refresh_expires_at.isoformat()!r}"
        if self.issued_token_type is not None:
            later += f", issued_token_type={self.issued_token_type!r}"
        if self.extra:
            later += f", extra=<{', '.join(self.extra)}>"
        return (
            f"TokenData(access_token='***', token_type={self.token_type!r}, "
            f"expires_at={expires!r}, refresh_token={'***' if self.refresh_token else None!r}, "
            f"scope={self.scope!r}{later})"
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


def _refresh_expiry(data: Mapping[str, Any], now: datetime) -> datetime | None:
    """When the refresh token expires, from Keycloak's ``refresh_expires_in`` or Azure's and
    GitHub's ``refresh_token_expires_in`` (the earlier if both); None when neither is a
    positive number of seconds (Keycloak sends 0 for an offline token that does not expire)."""
    expiries = []
    for name in ("refresh_expires_in", "refresh_token_expires_in"):
        try:
            seconds = _parse_expires_in(data.get(name))
            if seconds:
                expiries.append(now + timedelta(seconds=seconds))
        except (TokenResponseError, OverflowError):
            continue
    return min(expiries, default=None)


def _lenient_token_type(value: object) -> str | None:
    """RFC 8693's ``issued_token_type`` if it is a printable URI, else None."""
    if isinstance(value, str) and 0 < len(value) <= MAX_EXTRA_NAME and _URI.fullmatch(value):
        return value
    return None


_URI = re.compile(r"[\x21-\x7e]+")


def _parse_scope(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple) and all(isinstance(s, str) for s in value):
        return " ".join(value)  # some servers send a JSON array instead of RFC 6749's string
    raise TokenResponseError("scope must be a string or a list of strings")


#: Bumped when the stored layout changes; a storage treats any version it does not read as a
#: miss. 2 (issue 13) adds ``refresh_expires_at``, ``issued_token_type`` and ``extra``.
STORAGE_FORMAT_VERSION = 2
#: The versions :func:`decode_token` reads: 1 is what releases before issue 13 wrote.
READABLE_FORMAT_VERSIONS: Final = (1, 2)
#: How deep a stored record may nest: the record, ``extra`` and its values.
_MAX_RECORD_DEPTH: Final = 2 + MAX_EXTRA_DEPTH


def encode_token(token: TokenData) -> bytes:
    """The token as versioned JSON (format 2), for storages shared between processes.

    Explicit fields instead of pickle: a shared cache is written by other processes (and
    other versions of this library), and unpickling what they wrote would run their code.
    ``extra`` is written only when it has members, so a token without any is one flat
    object, as in format 1. ASCII only (non-ASCII is escaped), so the bytes are UTF-8.
    """
    record = json.dumps(
        {
            "v": STORAGE_FORMAT_VERSION,
            "access_token": token.access_token,
            "token_type": token.token_type,
            "expires_at": _iso(token.expires_at),
            "refresh_token": token.refresh_token,
            "scope": token.scope,
            "issued_at": _iso(token.issued_at),
            "refresh_expires_at": _iso(token.refresh_expires_at),
            "issued_token_type": token.issued_token_type,
        },
        separators=(",", ":"),
    )
    extra = token.extra
    if extra:
        members = extra.json_members() if isinstance(extra, _Extra) else ()
        body = ",".join(f"{json.dumps(name)}:{text}" for name, text in members)
        record = f'{record[:-1]},"extra":{{{body}}}}}'
    return record.encode()


#: The largest stored value read: a record is a few KB even with a large JWT in it.
MAX_STORED_SIZE: Final = 1 << 20
#: A JSON string, escapes included, in linear time (the unrolled loop: no character can be
#: matched two ways, so a string without its closing quote fails without backtracking).
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
#: What the nesting scan stops at: a bracket or the start of a string.
_STRUCTURE = re.compile(r'["{}\[\]]')


def decode_token(raw: bytes | str) -> TokenData:
    """Read what :func:`encode_token` wrote, in format 2 or format 1; anything else (a
    future version included) raises :class:`~requestforge.TokenResponseError` (a
    ``ValueError``), so a storage can treat it as a miss. The message describes the problem
    and never quotes the value (it may hold a token).

    Depth-limited: a record nests at most ``extra`` and its bounded values deep, so a value
    nested deeper, or with more objects and arrays than ``extra`` may hold, is refused by a
    linear scan before ``json.loads`` sees it (see :func:`_nesting_within`): a 100,000-deep
    value costs part of one scan, not a RecursionError.
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
    if not _nesting_within(raw):
        raise TokenResponseError("stored token nests too deep or wide, or is not JSON")
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # RecursionError: a second net, never expected
        raise TokenResponseError("stored token is not JSON") from None
    if not isinstance(data, dict):
        raise TokenResponseError("stored token is not a JSON object")
    version = data.get("v")
    if type(version) is not int or version not in READABLE_FORMAT_VERSIONS:
        shown = repr(version) if type(version) is int else type(version).__name__
        raise TokenResponseError(
            f"stored token has format version {shown}, not one of {READABLE_FORMAT_VERSIONS}"
        )
    for name in ("access_token", "token_type"):
        if name not in data:
            raise TokenResponseError(f"stored token has no {name!r} field")
    later: dict[str, Any] = {}
    if version >= 2:
        extra = data.get("extra", {})
        if not isinstance(extra, dict):
            raise TokenResponseError("stored token's extra is not a JSON object")
        later = {
            "refresh_expires_at": _from_iso(data.get("refresh_expires_at")),
            "issued_token_type": data.get("issued_token_type"),
            "extra": _Extra.build(iter(extra.items()), strict=True),
        }
    return TokenData(
        access_token=data["access_token"],
        token_type=data["token_type"],
        expires_at=_from_iso(data.get("expires_at")),
        refresh_token=data.get("refresh_token"),
        scope=data.get("scope"),
        issued_at=_from_iso(data.get("issued_at")),
        **later,
    )


def _no_constant(name: str) -> None:
    """``json.loads`` takes ``NaN`` and ``Infinity``, which are not JSON: refuse them."""
    raise ValueError(name)


def _nesting_within(text: str) -> bool:
    """True if ``text`` nests at most :data:`_MAX_RECORD_DEPTH` deep and holds at most one
    more object or array than ``extra`` may (the record itself), outside its JSON strings.

    The common record (no ``extra``, no brackets in its strings) is settled by two
    ``str.count`` calls; otherwise strings are skipped one by one and brackets counted,
    linear in ``text`` and stopped at the first excess. An unterminated string is not JSON,
    so the scan stops there.
    """
    if "[" not in text and text.count("{") == 1:
        return True
    depth = opened = pos = 0
    while True:
        found = _STRUCTURE.search(text, pos)
        if found is None:
            return True
        char = found.group()
        if char == '"':
            string = _JSON_STRING.match(text, found.start())
            if string is None:
                return False
            pos = string.end()
            continue
        pos = found.end()
        if char in "{[":
            depth += 1
            opened += 1
            if depth > _MAX_RECORD_DEPTH or opened > MAX_EXTRA_CONTAINERS + 2:
                return False
        else:
            depth -= 1


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

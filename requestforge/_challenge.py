"""``WWW-Authenticate`` challenges (RFC 9110 section 11.6.1), parsed in one place.

::

    WWW-Authenticate = #challenge
    challenge        = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
    auth-param       = token BWS "=" BWS ( token / quoted-string )

A comma separates both challenges and the auth-params of one challenge, so an element
``name=value`` belongs to the challenge before it and any other element starts a new one.
Several ``WWW-Authenticate`` headers are one list (``requests`` joins them with ", ").
The parser never raises: a server's malformed element is skipped up to the next comma.
Scheme and parameter names are case-insensitive (kept lower-cased in ``params``).

The token errors of RFC 6750 section 3 (``Bearer``) and RFC 9449 section 7.1 (``DPoP``) are
what :class:`~requestforge.TokenAuthHook` reads: :func:`token_errors`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

# No __all__: internal helpers, deliberately not public API (see tests/test_public_api.py).

#: The schemes whose ``error`` auth-param is an OAuth token error.
TOKEN_SCHEMES = frozenset({"bearer", "dpop"})

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*(?=[ \t]*(?:,|$))")
_OWS = " \t"


@dataclass(frozen=True)
class Challenge:
    """One challenge: its scheme as sent, its auth-params (lower-cased names, the first of a
    repeated name wins) or its token68."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    token68: str | None = None

    def is_scheme(self, name: str) -> bool:
        """True if the scheme is ``name``, ignoring case."""
        return self.scheme.lower() == name.lower()


def parse_challenges(values: str | Iterable[str] | None) -> tuple[Challenge, ...]:
    """The challenges in one ``WWW-Authenticate`` value or several, in order."""
    if values is None:
        return ()
    if isinstance(values, str):
        values = (values,)
    found: list[Challenge] = []
    for value in values:
        if isinstance(value, str):
            found.extend(_parse_one(value))
    return tuple(found)


def token_errors(challenges: Iterable[Challenge]) -> list[Challenge]:
    """The ``Bearer`` / ``DPoP`` challenges that carry an ``error``, in order."""
    return [c for c in challenges if c.scheme.lower() in TOKEN_SCHEMES and "error" in c.params]


def _parse_one(text: str) -> list[Challenge]:
    challenges: list[Challenge] = []
    scheme: str | None = None
    params: dict[str, str] = {}
    token68: str | None = None
    pos, end = 0, len(text)

    def close() -> None:
        if scheme is not None:
            challenges.append(Challenge(scheme, MappingProxyType(dict(params)), token68))

    while True:
        pos = _skip(text, pos, _OWS + ",")
        if pos >= end:
            break
        name = _TOKEN.match(text, pos)
        if name is None:
            pos = _next_comma(text, pos)
            continue
        after = _skip(text, name.end(), _OWS)
        if after < end and text[after] == "=" and scheme is not None and token68 is None:
            value, pos = _param_value(text, _skip(text, after + 1, _OWS))
            if value is None:
                pos = _next_comma(text, pos)
                continue
            params.setdefault(name.group().lower(), value)
            pos = _skip(text, pos, _OWS)
            if pos < end and text[pos] != ",":
                pos = _next_comma(text, pos)
            continue
        if after < end and text[after] == "=":
            pos = _next_comma(text, after)  # a parameter before any scheme
            continue
        close()
        scheme, params, token68 = name.group(), {}, None
        pos = after
        blob = _TOKEN68.match(text, pos) if pos > name.end() else None
        if blob is not None:
            token68, pos = blob.group(), blob.end()
        elif pos < end and text[pos] != "," and pos == name.end():
            pos = _next_comma(text, pos)  # "Bearer;junk": not a scheme we can read
            scheme = None
    close()
    return challenges


def _param_value(text: str, pos: int) -> tuple[str | None, int]:
    """A token or a quoted-string at ``pos`` (backslash escapes undone), and where it ends."""
    if pos < len(text) and text[pos] == '"':
        chars: list[str] = []
        pos += 1
        while pos < len(text):
            char = text[pos]
            if char == "\\" and pos + 1 < len(text):
                chars.append(text[pos + 1])
                pos += 2
                continue
            if char == '"':
                return "".join(chars), pos + 1
            chars.append(char)
            pos += 1
        return None, pos  # unterminated
    token = _TOKEN.match(text, pos)
    if token is None:
        return None, pos
    return token.group(), token.end()


def _skip(text: str, pos: int, chars: str) -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _next_comma(text: str, pos: int) -> int:
    """The position after the next comma outside a quoted-string (or the end)."""
    quoted = False
    while pos < len(text):
        char = text[pos]
        if quoted and char == "\\":
            pos += 2
            continue
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            return pos + 1
        pos += 1
    return pos

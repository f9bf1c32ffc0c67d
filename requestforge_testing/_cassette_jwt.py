"""The structure of a JWT a client signed, kept in a cassette next to its placeholder.

A client assertion (RFC 7523) or a DPoP proof (RFC 9449) is new on every run (a fresh
``jti``, ``iat`` and signature, often a fresh key), so a cassette cannot compare its value,
and a bare placeholder only promises that *a* secret was sent. What stays the same is its
shape, which is what a replay should check: the JOSE header's ``alg``, ``typ`` and ``kid``
(and for an embedded ``jwk`` its ``kty`` and ``crv``, never the key values), the claim
names, and the values of the claims that say what the JWT is for (``iss``, ``sub``,
``aud``, ``htm``, ``htu``). Every other member keeps its name and loses its value
(:data:`HIDDEN`): ``jti``, ``iat``, ``exp``, ``nbf``, ``ath`` and ``nonce`` change from run
to run or are derived from a secret, and the signature is left out whole.

Where such a JWT travels (:data:`JWT_HEADERS`, :data:`JWT_FIELDS`), the scrubber stores
``forge-scrubbed-<n> jwt{header}.{claims}``: the placeholder, then the summary as compact
JSON, its strings scrubbed like any text (a declared secret becomes a placeholder, a
loopback URL ``http://loopback-<n>.invalid``). Only requests carry these, so a replayed
response never hands the client a summary instead of a token.

Pure data in, data out, like ``_scrubbing``; comparing summaries is ``_cassette_match``'s.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from requestforge_testing._oauth_jose import BadJWT, parse_jwt

__all__ = [
    "HIDDEN",
    "JWT_FIELDS",
    "JWT_HEADERS",
    "SEPARATOR",
    "JwtSummary",
    "split_summary",
    "summarise",
]

#: Headers (lower case) whose value is a JWT the client signed: the DPoP proof.
JWT_HEADERS: Final = frozenset({"dpop"})
#: Form fields whose value is a JWT the client signed: RFC 7523's client assertion (section
#: 2.2) and JWT bearer grant assertion (section 2.1).
JWT_FIELDS: Final = frozenset({"client_assertion", "assertion"})
#: Between the placeholder and the summary.
SEPARATOR: Final = " jwt"
#: The value shown for a member whose value is not kept.
HIDDEN: Final = "*"
#: JOSE header members whose values are kept.
SHOWN_HEADER: Final = ("alg", "typ", "kid")
#: Members of an embedded ``jwk`` header that are kept (the rest are key material).
SHOWN_JWK: Final = ("kty", "crv")
#: Claims whose values are kept: who signed it, for whom, for which request.
SHOWN_CLAIMS: Final = ("iss", "sub", "aud", "htm", "htu")

_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class JwtSummary:
    """The kept structure of one JWT: header and claims, each member's value or
    :data:`HIDDEN`."""

    header: Mapping[str, Any]
    claims: Mapping[str, Any]

    def encode(self) -> str:
        """``{header}.{claims}`` as compact JSON with sorted keys: one line, stable."""
        return _compact(self.header) + "." + _compact(self.claims)

    def scrubbed(self, scrub: Callable[[str], str]) -> JwtSummary:
        """This summary with ``scrub`` applied to every kept string again (a stored one,
        scrubbed when a secret learned since could be in it)."""
        return JwtSummary(_rescrubbed(self.header, scrub), _rescrubbed(self.claims, scrub))

    @classmethod
    def decode(cls, text: str) -> JwtSummary | None:
        """The summary :meth:`encode` wrote, or None if ``text`` is not one."""
        decoder = json.JSONDecoder()
        try:
            header, end = decoder.raw_decode(text)
            if text[end : end + 1] != ".":
                return None
            claims, last = decoder.raw_decode(text, end + 1)
        except ValueError:
            return None
        if last != len(text) or not isinstance(header, dict) or not isinstance(claims, dict):
            return None
        return cls(header, claims)


def summarise(token: str, scrub: Callable[[str], str]) -> JwtSummary | None:
    """The summary of ``token`` if it is a compact JWS with a JSON header and claims (None
    otherwise); ``scrub`` is applied to every string value kept."""
    token = token.strip()
    if not all(_BASE64URL.fullmatch(part) for part in token.split(".")[:2]):
        return None
    try:
        parsed = parse_jwt(token)
    except BadJWT:
        return None
    header, claims = parsed.header, parsed.claims
    kept_header = {
        name: _jwk(value) if name == "jwk" else _kept(value, name in SHOWN_HEADER, scrub)
        for name, value in header.items()
    }
    kept_claims = {
        name: _kept(value, name in SHOWN_CLAIMS, scrub) for name, value in claims.items()
    }
    return JwtSummary(kept_header, kept_claims)


def split_summary(value: str) -> tuple[str, JwtSummary | None]:
    """``(placeholder, summary)`` of a stored value; ``(value, None)`` if it has none."""
    head, separator, rest = value.partition(SEPARATOR)
    if not separator or not rest.startswith("{"):
        return value, None
    summary = JwtSummary.decode(rest)
    return (head, summary) if summary is not None else (value, None)


def _compact(members: Mapping[str, Any]) -> str:
    return json.dumps(members, separators=(",", ":"), sort_keys=True)


def _kept(value: Any, shown: bool, scrub: Callable[[str], str]) -> Any:
    """A kept value: strings (or a list of them, as ``aud`` may be) scrubbed; anything
    else, and any member not shown, :data:`HIDDEN`."""
    if not shown:
        return HIDDEN
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return [scrub(item) for item in value]
    return HIDDEN


def _jwk(value: Any) -> Any:
    """An embedded public key's type and curve; never its key values."""
    if not isinstance(value, Mapping):
        return HIDDEN
    return {name: value[name] for name in SHOWN_JWK if isinstance(value.get(name), str)}


def _rescrubbed(members: Mapping[str, Any], scrub: Callable[[str], str]) -> dict[str, Any]:
    return {name: _again(value, scrub) for name, value in members.items()}


def _again(value: Any, scrub: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return value if value == HIDDEN else scrub(value)
    if isinstance(value, list):
        return [_again(item, scrub) for item in value]
    if isinstance(value, Mapping):
        return _rescrubbed(value, scrub)
    return value

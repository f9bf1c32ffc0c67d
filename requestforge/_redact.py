"""The one place that knows what a secret looks like.

Logging hooks, ``HttpRequest.to_curl()``, reprs and test cassettes all redact through
these functions, so a new kind of secret is taught to the library once. What components
declared (``_secrets.py``: exact names and values) is consulted first; the name-fragment
rules below are the second net for what nobody declared.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TypeVar, cast
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from requestforge._secrets import known_secrets, redact_known_values

__all__ = [
    "REDACTED",
    "is_credential_field",
    "is_secret_field",
    "is_secret_header",
    "redact_headers",
    "redact_json",
    "redact_pairs",
    "redact_text",
    "redact_url",
]

_V = TypeVar("_V")

#: What a redacted value is replaced with.
REDACTED = "[REDACTED]"

#: What redacted user info becomes; percent-encoded because brackets in the netloc of a URL
#: mean an IPv6 literal, and some Pythons' ``urlsplit`` reject ``[REDACTED]@host``.
_REDACTED_USERINFO = quote(REDACTED, safe="")

#: Header names (lower case) that always carry credentials.
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "apikey",
        "x-auth-token",
        "x-access-token",
        "x-csrf-token",
        "x-amz-security-token",
    }
)

#: Fragments that mark a header, query parameter or form field as secret wherever they
#: appear in its name (``X-Partner-Token``, ``client_secret``, ``db_password``, ``pwd``,
#: ``credentials``, ``X-Amz-Signature``, ``private_key``).
SECRET_NAME_FRAGMENTS = (
    "token",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "api-key",
    "api_key",
    "apikey",
    "credential",
    "signature",
    "private-key",
    "private_key",
    "privatekey",
    "session-id",
    "session_id",
    "sessionid",
)

#: Query/form field names that are secrets although no fragment above matches them.
SECRET_FIELDS = frozenset(
    {"assertion", "code", "key", "sig", "client_assertion", "otp", "pin", "jwt", "pass"}
)

#: Endings of names that contain a secret fragment but hold facts *about* a credential: its
#: type, lifetime, endpoint or supported methods (``token_type``, ``token_type_hint``,
#: ``refresh_token_expires_in``, ``token_endpoint``). Logs lose nothing by redacting them, so
#: :func:`is_secret_field` does; a cassette must keep them, or ``token_type: Bearer`` would
#: replay as a broken ``Authorization`` scheme.
CREDENTIAL_METADATA_SUFFIXES = (
    "_type",
    "_types",
    "_hint",
    "_expires_in",
    "_expires_at",
    "_endpoint",
    "_uri",
    "_url",
    "_supported",
    "_method",
    "_methods",
)


def is_secret_header(name: str) -> bool:
    """Whether a header with this name carries a credential."""
    lowered = name.lower()
    return (
        lowered in SECRET_HEADERS
        or lowered in known_secrets().headers
        or any(f in lowered for f in SECRET_NAME_FRAGMENTS)
    )


def is_secret_field(name: str) -> bool:
    """Whether a query parameter or form/JSON field with this name carries a credential."""
    lowered = name.lower()
    return (
        lowered in SECRET_FIELDS
        or lowered in known_secrets().fields
        or any(f in lowered for f in SECRET_NAME_FRAGMENTS)
    )


def is_credential_field(name: str) -> bool:
    """Whether a field holds a credential itself: :func:`is_secret_field` minus the fields
    that only describe one (:data:`CREDENTIAL_METADATA_SUFFIXES`).

    For replacing values that must still work afterwards (cassettes); for hiding values
    from people (logs, reprs), use the broader :func:`is_secret_field`.
    """
    lowered = name.lower()
    if lowered in SECRET_FIELDS or lowered in known_secrets().fields:
        return True
    return is_secret_field(name) and not lowered.endswith(CREDENTIAL_METADATA_SUFFIXES)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Return a copy of ``headers`` with every credential replaced by :data:`REDACTED`:
    secret names' whole values, and declared secret values inside any other header."""
    return {k: (REDACTED if is_secret_header(k) else _known(v)) for k, v in headers.items()}


def redact_pairs(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Redact the values of secret fields (and declared values in the others) of a
    sequence of ``(name, value)`` pairs."""
    return [(k, REDACTED if is_secret_field(k) else _known(v)) for k, v in pairs]


def redact_json(value: object) -> object:
    """Redact secret fields (and declared secret values) at any depth of a decoded JSON
    value."""
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and is_secret_field(k) else redact_json(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_json(v) for v in value]
    return _known(value)


def _known(value: _V) -> _V:
    """``value`` with declared secret values hidden, if it is a string."""
    if isinstance(value, str):
        return cast(_V, redact_known_values(value))
    return value


def redact_url(url: str) -> str:
    """Redact user info and secret query (or fragment) parameters of ``url``; keep the rest.

    Never raises: a URL that cannot be parsed keeps only what precedes its query.
    """
    try:
        return redact_known_values(_redact_parsed_url(url))
    except ValueError:  # e.g. "http://[::1/": show the part before any query, nothing secret
        head, sep, _ = url.partition("?")
        head = head.partition("#")[0]
        if "@" in head:
            scheme, slashes, _ = head.partition("//")
            prefix = f"{scheme}//" if slashes else ""
            head = f"{prefix}{_REDACTED_USERINFO}@{head.rpartition('@')[2]}"
        return redact_known_values(head) + (f"?{REDACTED}" if sep else "")


def _redact_parsed_url(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{_REDACTED_USERINFO}@{netloc.rpartition('@')[2]}"
    query = _redact_query(parts.query)
    fragment = _redact_query(parts.fragment)  # OAuth implicit grant: #access_token=...
    if netloc == parts.netloc and query == parts.query and fragment == parts.fragment:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def _redact_query(query: str) -> str:
    """A query string with the values of secret parameters redacted (unchanged if none)."""
    if "=" not in query:
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(is_secret_field(k) for k, _ in pairs):
        return urlencode(redact_pairs(pairs), safe="[]")
    return query


def redact_cookies(cookies: object) -> dict[str, str]:
    """Cookie names with every value replaced: a cookie is a credential as often as not.

    Takes a mapping or a ``CookieJar``; anything else gives an empty dict.
    """
    from http.cookiejar import CookieJar  # noqa: PLC0415 - rarely needed

    if isinstance(cookies, CookieJar):
        return {cookie.name: REDACTED for cookie in cookies}
    if isinstance(cookies, Mapping):
        return {str(name): REDACTED for name in cookies}
    return {}


def redact_text(text: str) -> str:
    """Free text (an exception message, a log line, server text) made safe to show.

    Hidden: every declared secret value; the secret parameters of any query string in it;
    the user info of any URL in it; the values of secret keys quoted as JSON
    (``"password": "..."``); and anything after ``Bearer`` that looks like a token.
    """
    if not text:
        return text
    if "=" in text:
        text = _QUERY_IN_TEXT.sub(_redact_query_match, text)
    if "@" in text:
        text = _USERINFO_IN_TEXT.sub(_REDACTED_USERINFO + "@", text)
    if '"' in text:
        text = _JSON_PAIR_IN_TEXT.sub(_redact_json_pair, text)
    if "earer" in text:
        text = _BEARER_IN_TEXT.sub(r"\1" + REDACTED, text)
    return redact_known_values(text)


#: A query or fragment inside free text: ``?a=1&b=2`` up to the first space or quote.
_QUERY_IN_TEXT = re.compile(r"(?<=[?#&])[^\s'\"<>]*=[^\s'\"<>]*")
#: ``user:password@`` right after ``scheme://`` in free text.
_USERINFO_IN_TEXT = re.compile(r"(?<=://)[^\s/?#@'\"<>]+@")
#: ``"name": "value"`` as JSON quotes it (the value possibly with escapes).
_JSON_PAIR_IN_TEXT = re.compile(r'"([^"\\]{1,100})"(\s*:\s*)"((?:[^"\\]|\\.)*)"')
#: ``Bearer <token>``, the token having at least one digit or punctuation mark, so that
#: prose such as "Bearer authentication" is left alone.
_BEARER_IN_TEXT = re.compile(
    r"\b([Bb]earer\s+)(?=[A-Za-z0-9._~+/-]*[0-9._~+/-])[A-Za-z0-9._~+/-]{6,}=*"
)


def _redact_query_match(match: re.Match[str]) -> str:
    return _redact_query(match.group(0))


def _redact_json_pair(match: re.Match[str]) -> str:
    if not is_secret_field(match.group(1)):
        return match.group(0)
    return f'"{match.group(1)}"{match.group(2)}"{REDACTED}"'

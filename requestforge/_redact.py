"""The one place that knows what a secret looks like.

Logging hooks, ``HttpRequest.to_curl()``, reprs and test cassettes all redact through
these functions, so a new kind of secret is taught to the library once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "is_credential_field",
    "is_secret_field",
    "is_secret_header",
    "redact_headers",
    "redact_json",
    "redact_pairs",
    "redact_url",
]

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
#: appear in its name (``X-Partner-Token``, ``client_secret``, ``db_password``).
SECRET_NAME_FRAGMENTS = ("token", "secret", "password", "passwd", "api-key", "api_key", "apikey")

#: Query/form field names that are secrets although no fragment above matches them.
SECRET_FIELDS = frozenset({"assertion", "code", "key", "sig", "signature", "client_assertion"})

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
    return lowered in SECRET_HEADERS or any(f in lowered for f in SECRET_NAME_FRAGMENTS)


def is_secret_field(name: str) -> bool:
    """Whether a query parameter or form/JSON field with this name carries a credential."""
    lowered = name.lower()
    return lowered in SECRET_FIELDS or any(f in lowered for f in SECRET_NAME_FRAGMENTS)


def is_credential_field(name: str) -> bool:
    """Whether a field holds a credential itself: :func:`is_secret_field` minus the fields
    that only describe one (:data:`CREDENTIAL_METADATA_SUFFIXES`).

    For replacing values that must still work afterwards (cassettes); for hiding values
    from people (logs, reprs), use the broader :func:`is_secret_field`.
    """
    lowered = name.lower()
    if lowered in SECRET_FIELDS:
        return True
    return is_secret_field(name) and not lowered.endswith(CREDENTIAL_METADATA_SUFFIXES)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Return a copy of ``headers`` with every credential replaced by :data:`REDACTED`."""
    return {k: (REDACTED if is_secret_header(k) else v) for k, v in headers.items()}


def redact_pairs(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Redact the values of secret fields in a sequence of ``(name, value)`` pairs."""
    return [(k, REDACTED if is_secret_field(k) else v) for k, v in pairs]


def redact_json(value: object) -> object:
    """Redact secret fields at any depth of a decoded JSON value."""
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and is_secret_field(k) else redact_json(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_json(v) for v in value]
    return value


def redact_url(url: str) -> str:
    """Redact user info and secret query (or fragment) parameters of ``url``; keep the rest.

    Never raises: a URL that cannot be parsed keeps only what precedes its query.
    """
    try:
        return _redact_parsed_url(url)
    except ValueError:  # e.g. "http://[::1/": show the part before any query, nothing secret
        head, sep, _ = url.partition("?")
        head = head.partition("#")[0]
        if "@" in head:
            scheme, slashes, _ = head.partition("//")
            prefix = f"{scheme}//" if slashes else ""
            head = f"{prefix}{_REDACTED_USERINFO}@{head.rpartition('@')[2]}"
        return head + (f"?{REDACTED}" if sep else "")


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

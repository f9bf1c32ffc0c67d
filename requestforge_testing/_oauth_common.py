"""What ``OAuthServer``'s modules share: the token request record, refusals, form parsing."""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import parse_qsl, unquote_plus, urlsplit, urlunsplit

from requestforge._redact import REDACTED, is_secret_field
from requestforge_testing._servers import RecordedRequest, Reply

__all__ = [
    "FORM",
    "NO_STORE",
    "Grant",
    "RecordedTokenRequest",
    "Refused",
    "Verified",
    "basic_credentials",
    "check_credentials",
    "check_seconds",
    "claimed_client",
    "form_of",
    "form_values",
    "refusal_reply",
    "repeated",
    "reply_error",
    "url_without_query",
]

FORM: Final = "application/x-www-form-urlencoded"
# RFC 6749 section 5.1: token responses must not be cached anywhere.
NO_STORE: Final = MappingProxyType({"Cache-Control": "no-store", "Pragma": "no-cache"})


@dataclass(frozen=True)
class RecordedTokenRequest:
    """One request to the token endpoint and how it was answered.

    ``auth_method`` is ``"basic"`` (HTTP Basic), ``"body"`` (``client_id`` form field) or
    None (no client identification): what the request claimed. ``client_auth_method`` is
    the RFC 7591 name of the method the server verified (``"client_secret_basic"``,
    ``"client_secret_post"``, ``"client_secret_jwt"``, ``"private_key_jwt"``,
    ``"tls_client_auth"`` or ``"none"``), None if authentication failed or was not asked.
    ``client_assertion_claims`` and ``assertion_claims`` (JWT bearer grant) hold the claims
    of verified assertions, ``dpop_jkt`` the thumbprint of a verified DPoP proof's key and
    ``exchange`` what a token exchange asked for (``audience`` and ``resource`` as tuples).
    ``thread_name`` names the server thread that served it. ``params`` holds the form
    fields as sent, secrets included; the repr hides them.
    """

    grant_type: str | None
    client_id: str | None
    auth_method: str | None
    params: Mapping[str, str]
    thread_name: str
    status: int
    error: str | None = None
    request: RecordedRequest | None = field(default=None, repr=False, compare=False)
    client_auth_method: str | None = None
    client_assertion_claims: Mapping[str, Any] | None = None
    assertion_claims: Mapping[str, Any] | None = None
    dpop_jkt: str | None = None
    exchange: Mapping[str, Any] | None = None

    def __repr__(self) -> str:
        shown = {k: (REDACTED if is_secret_field(k) else v) for k, v in self.params.items()}
        extra = "".join(
            f", {name}={value!r}"
            for name, value in (
                ("client_auth_method", self.client_auth_method),
                ("client_assertion_claims", self.client_assertion_claims),
                ("assertion_claims", self.assertion_claims),
                ("dpop_jkt", self.dpop_jkt),
                ("exchange", self.exchange),
            )
            if value is not None
        )
        return (
            f"RecordedTokenRequest(grant_type={self.grant_type!r}, client_id={self.client_id!r}, "
            f"auth_method={self.auth_method!r}, params={shown!r}, status={self.status}, "
            f"error={self.error!r}{extra})"
        )


@dataclass
class Verified:
    """What a token request proved, filled in as checks pass, for its record."""

    client_auth_method: str | None = None
    client_assertion_claims: Mapping[str, Any] | None = None
    assertion_claims: Mapping[str, Any] | None = None
    dpop_jkt: str | None = None
    exchange: Mapping[str, Any] | None = None


@dataclass
class Grant:
    """What a token was issued for; access and refresh tokens of one response share it."""

    client_id: str | None  # None: a grant a test's handler served without a client
    username: str | None
    scope: str | None
    expires_at: datetime | None = None
    revoked: bool = False
    jkt: str | None = None
    issued_at: datetime | None = None
    public: bool = False


class Refused(Exception):
    """Ends token request handling with an RFC 6749 section 5.2 error response."""

    def __init__(
        self,
        error: str,
        description: str,
        status: int = 400,
        headers: Mapping[str, str] = NO_STORE,
    ) -> None:
        super().__init__(error)
        self.error, self.description, self.status, self.headers = (
            error,
            description,
            status,
            headers,
        )


def refusal_reply(refused: Refused) -> Reply:
    body = {"error": refused.error, "error_description": refused.description}
    return Reply(status=refused.status, json=body, headers=refused.headers)


def form_of(request: RecordedRequest) -> dict[str, str]:
    """The form fields, the first value of each: what records and checks read."""
    return {name: values[0] for name, values in form_values(request).items()}


def form_values(request: RecordedRequest) -> dict[str, list[str]]:
    """Every value of every form field, in order (RFC 8693 repeats audience and resource)."""
    try:
        pairs = parse_qsl(request.body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return {}
    values: dict[str, list[str]] = {}
    for name, value in pairs:
        values.setdefault(name, []).append(value)
    return values


def repeated(request: RecordedRequest, allowed: frozenset[str] = frozenset()) -> bool:
    """Whether a field other than ``allowed`` was sent twice (RFC 6749 section 3.2)."""
    pairs = parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
    names = [name for name, _ in pairs if name not in allowed]
    return len(names) != len(set(names))


def claimed_client(
    request: RecordedRequest, form: Mapping[str, str]
) -> tuple[str | None, str | None]:
    """Who the request says it is, checked or not: for the record."""
    header = request.headers.get("Authorization")
    if header is not None and header[:6].lower() == "basic ":
        try:
            return basic_credentials(header)[0], "basic"
        except Refused:
            return None, "basic"
    if "client_id" in form:
        return form["client_id"], "body"
    return None, None


def basic_credentials(header: str) -> tuple[str, str]:
    """Decode ``Basic base64(urlencode(id):urlencode(secret))`` (RFC 6749 section 2.3.1)."""
    scheme, _, encoded = header.partition(" ")
    try:
        if scheme.lower() != "basic":
            raise ValueError(scheme)
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (ValueError, binascii.Error):
        headers = {**NO_STORE, "WWW-Authenticate": 'Basic realm="forge"'}
        raise Refused("invalid_client", "malformed Basic credentials", 401, headers) from None
    client_id, _, secret = decoded.partition(":")
    return unquote_plus(client_id), unquote_plus(secret)


def reply_error(reply: Reply) -> str | None:
    """The OAuth error code a reply carries, if it is an error with a JSON ``error``."""
    body = reply.json
    error = body.get("error") if reply.status >= 400 and isinstance(body, Mapping) else None
    return error if isinstance(error, str) else None


def url_without_query(url: str) -> str:
    """``url`` normalized (lower-case scheme and host, no default port) without query and
    fragment: how RFC 9449 section 4.3 compares ``htu``."""
    split = urlsplit(url)
    scheme, host = split.scheme.lower(), (split.hostname or "").lower()
    port = split.port
    default = {"http": 80, "https": 443}.get(scheme)
    netloc = host if port is None or port == default else f"{host}:{port}"
    return urlunsplit((scheme, netloc, split.path or "/", "", ""))


def check_credentials(name: str, pairs: object, *, allow_none: bool) -> dict[str, Any]:
    if not isinstance(pairs, Mapping):
        raise TypeError(f"{name} must be a mapping, got {type(pairs).__name__}")
    for key, value in pairs.items():
        ok = isinstance(value, str) or (allow_none and value is None)
        if not isinstance(key, str) or not key or not ok:
            raise ValueError(f"{name} must map non-empty names to strings, got {key!r}")
    return dict(pairs)


def check_seconds(name: str, value: float, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)

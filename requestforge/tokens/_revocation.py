"""Token revocation (RFC 7009) and introspection (RFC 7662) for the OAuth 2.0 providers.

Both are a POST of ``token`` (and maybe ``token_type_hint``) to an endpoint of the
authorization server, authenticated exactly like the provider's token requests (its
:class:`~requestforge.ClientAuthMethod`, through its HttpClient, never following a
redirect). A failure is a :class:`~requestforge.TokenEndpointError` from the one
token-endpoint error mapping (``_endpoint``): typed, transient or not, server text
scrubbed of the token and the client's secrets.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal

from requestforge._clock import get_default_clock
from requestforge._exceptions import (
    CircuitOpenError,
    ConfigurationError,
    MaxRetryException,
    ResponseDecodeError,
    TokenEndpointError,
    TokenResponseError,
    TransportError,
)
from requestforge._redact import redact_url
from requestforge._response import HttpResponse
from requestforge._validate import http_url
from requestforge.tokens._data import TokenData
from requestforge.tokens._endpoint import endpoint_error, scrub

if TYPE_CHECKING:
    from requestforge.tokens._oauth2 import _OAuth2TokenProvider

__all__ = ["Introspection"]

logger = logging.getLogger("requestforge.tokens")

#: RFC 7009 section 2.1 and RFC 7662 section 2.1: the hints every server understands.
TokenTypeHint = Literal["access_token", "refresh_token"]
_HINTS: Final = ("access_token", "refresh_token")


@dataclass(frozen=True)
class Introspection:
    """An RFC 7662 introspection answer: ``active`` and, for a live token, what it is for.

    ``exp`` and ``iat`` are timezone-aware datetimes; ``aud`` is a tuple whether the
    server sent a string or a list. Fields the server did not send (or sent with the wrong
    type) are None; ``raw`` is the whole answer, read-only.
    """

    active: bool
    scope: str | None = None
    client_id: str | None = None
    username: str | None = None
    token_type: str | None = None
    exp: datetime | None = None
    iat: datetime | None = None
    sub: str | None = None
    aud: tuple[str, ...] = ()
    iss: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_response(cls, data: Mapping[str, Any]) -> Introspection:
        """Read an introspection answer; only a JSON ``true`` ``active`` is active."""
        aud = data.get("aud")
        if isinstance(aud, str):
            audiences: tuple[str, ...] = (aud,)
        elif isinstance(aud, list):
            audiences = tuple(item for item in aud if isinstance(item, str))
        else:
            audiences = ()
        return cls(
            active=data.get("active") is True,
            scope=_string(data, "scope"),
            client_id=_string(data, "client_id"),
            username=_string(data, "username"),
            token_type=_string(data, "token_type"),
            exp=_time(data, "exp"),
            iat=_time(data, "iat"),
            sub=_string(data, "sub"),
            aud=audiences,
            iss=_string(data, "iss"),
            raw=MappingProxyType(dict(data)),
        )


def valid_endpoint_url(name: str, url: object) -> str | None:
    """``url`` checked as an absolute http(s) URL (None stays None)."""
    return None if url is None else http_url(name, url)


def token_value(token: object) -> tuple[str, str | None]:
    """The token string to send and the hint a TokenData implies (its access token)."""
    if isinstance(token, TokenData):
        return token.access_token, "access_token"
    if not isinstance(token, str) or not token:
        raise ConfigurationError(
            f"token must be a non-empty string or a TokenData, got {type(token).__name__}"
        )
    return token, None


def valid_hint(hint: object) -> str | None:
    """``token_type_hint``: None or an RFC 7009 / RFC 7662 hint."""
    if hint is None:
        return None
    if not isinstance(hint, str) or hint not in _HINTS:
        raise ConfigurationError(f"token_type_hint must be one of {_HINTS} or None")
    return hint


def endpoint_url(provider: _OAuth2TokenProvider, name: str, url: str | None) -> str:
    """``url``, or the ConfigurationError that names the missing option."""
    if url is None:
        raise ConfigurationError(
            f"{type(provider).__name__} has no {name}: give {name}= (or build it with "
            "from_issuer() from metadata that names the endpoint)"
        )
    return url


def post_revocation(
    provider: _OAuth2TokenProvider, url: str, token: TokenData | str, hint: str | None
) -> None:
    """RFC 7009 section 2.1: POST the token; any 2xx means revoked (or never valid)."""
    value, implied = token_value(token)
    hint = valid_hint(hint) or implied
    post(provider, url, value, hint, purpose="revoking a token")
    logger.debug("revoked a token at %s for client %r", redact_url(url), provider.client_id)


def post_introspection(
    provider: _OAuth2TokenProvider, url: str, token: TokenData | str, hint: str | None
) -> Introspection:
    """RFC 7662 section 2: POST the token, read the JSON answer."""
    value, implied = token_value(token)
    hint = valid_hint(hint) or implied
    response = post(provider, url, value, hint, purpose="introspecting a token")
    try:
        data: Any = response.json()
    except ResponseDecodeError as exc:
        raise TokenResponseError(
            f"introspection endpoint {redact_url(url)} answered {response.status_code} with "
            "a body that is not JSON",
            response=response,
        ) from exc
    if not isinstance(data, Mapping):
        raise TokenResponseError(
            f"introspection endpoint {redact_url(url)} answered with JSON that is not an object",
            response=response,
        )
    return Introspection.from_response(data)


def post(
    provider: _OAuth2TokenProvider, url: str, token: str, hint: str | None, *, purpose: str
) -> HttpResponse:
    """POST ``token`` to ``url`` with the provider's client authentication."""
    # The same path as the provider's token requests (_oauth2._request_token): its client,
    # timeout and retries, its ClientAuthMethod, no redirects, one error mapping.
    form: dict[str, str | list[str]] = {"token": token}
    if hint is not None:
        form["token_type_hint"] = hint
    headers = {"Accept": "application/json"}
    secrets = [token, *provider._secrets()]
    if provider._authenticates:
        clock = provider._clock or get_default_clock()
        secrets += provider._auth.apply(
            form,
            headers,
            client_id=provider._client_id,
            token_url=provider._token_url,
            now=clock.now(),
        )
    try:
        response = provider._client.post(
            url, data=form, headers=headers, timeout=provider._timeout, allow_redirects=False
        )
    except MaxRetryException as exc:
        if exc.response is not None:
            raise endpoint_error(
                exc.response, url=url, purpose=purpose, secrets=secrets, attempts=exc.attempts
            ) from exc
        cause = exc.last_error or exc
        raise _unreachable(url, purpose, cause, secrets, exc.attempts) from cause
    except (TransportError, CircuitOpenError) as exc:
        raise _unreachable(url, purpose, exc, secrets, 1) from exc
    if not response.is_success:
        raise endpoint_error(response, url=url, purpose=purpose, secrets=secrets)
    return response


def _unreachable(
    url: str, purpose: str, cause: BaseException, secrets: list[str], attempts: int
) -> TokenEndpointError:
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    return TokenEndpointError(
        f"endpoint {redact_url(url)} could not be reached for {purpose}{tries}: "
        f"{type(cause).__name__}: {scrub(str(cause), secrets, 300)}",
        transient=True,
        request=getattr(cause, "request", None),
    )


def _string(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    return value if isinstance(value, str) else None


def _time(data: Mapping[str, Any], name: str) -> datetime | None:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return datetime.fromtimestamp(value, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None

"""Auth hooks: put credentials on each attempt, and recover from a 401 once.

The auth hook runs on every attempt (after the request hooks), so a retry after a long
backoff carries fresh credentials. When a response is 401 the client asks
:meth:`AuthHookInterface.on_unauthorized` whether the credentials were renewed; if so it
resends the request exactly once.

Each hook knows exactly what it sends that is secret and says so in
:attr:`AuthHookInterface.secrets` (declared process-wide, see ``_secrets.py``, when the
hook is built and again when a client is built with it), so logs, ``to_curl()``, reprs,
exception messages and cassettes hide it whatever the header or parameter is called.
"""

from __future__ import annotations

import base64
from abc import ABC, abstractmethod
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING

from requestforge._exceptions import ConfigurationError
from requestforge._hooks import _header_value_problem, _valid_header_name
from requestforge._models import HttpRequest, RequestContext
from requestforge._redact import REDACTED
from requestforge._response import HttpResponse
from requestforge._secrets import Secrets, declare_secrets

if TYPE_CHECKING:
    from requestforge.tokens._manager import TokenManager

__all__ = [
    "ApiKeyAuthHook",
    "AuthHookInterface",
    "BasicAuthHook",
    "BearerTokenAuthHook",
    "CompositeAuthHook",
    "TokenAuthHook",
]


class AuthHookInterface(ABC):
    """Adds credentials to a request.

    A hook of your own that sends a secret should say what it is in :attr:`secrets`: the
    client declares it when it is built, and from then on every log line, ``to_curl()``,
    repr, exception message and cassette hides it, whatever its header or parameter is
    called. A value the hook only learns later can be declared then with
    :func:`requestforge.declare_secrets`.
    """

    @property
    def secrets(self) -> Secrets:
        """The header names, query/form field names and values this hook sends that are
        secret (``Secrets.of(headers=..., fields=..., values=...)``); empty by default."""
        return Secrets()

    @abstractmethod
    def before_request(self, request: HttpRequest, context: RequestContext) -> HttpRequest:
        """Return a copy of ``request`` carrying the credentials."""

    def on_unauthorized(
        self, request: HttpRequest, response: HttpResponse, context: RequestContext
    ) -> bool:
        """Called on a 401: return True if the credentials were renewed and a resend may succeed.

        Static credentials cannot be renewed, so the default is False. The client resends at
        most once per request, whatever this returns the second time.
        """
        return False

    def on_resend_answered(
        self, request: HttpRequest, response: HttpResponse, context: RequestContext
    ) -> None:
        """Called with the answer to the resend that :meth:`on_unauthorized` allowed, so a
        hook can tell renewed credentials that work from ones that are refused too (another
        401). Nothing by default; :class:`TokenAuthHook` feeds its manager's storm limit."""
        return


_AUTHORIZATION = Secrets.of(headers=["Authorization"])


def _valid_secret(value: object, what: str) -> str:
    """Return ``value`` if it can go into a header; the message never quotes it."""
    problem = _header_value_problem(value)
    if problem is not None or not isinstance(value, str):
        raise ConfigurationError(f"{what} {problem}")
    return value


class BearerTokenAuthHook(AuthHookInterface):
    """Sends a fixed ``Authorization: Bearer <token>`` (RFC 6750) on every attempt.

    Pass the bare token, without the ``Bearer`` prefix. An ``Authorization`` header already on
    the request is replaced.
    """

    def __init__(self, token: str) -> None:
        token = _valid_secret(token, "token")
        if token[:7].lower() == "bearer ":
            raise ConfigurationError("token must be the bare token, without the 'Bearer ' prefix")
        self._headers = MappingProxyType({"Authorization": f"Bearer {token}"})
        self._secrets = Secrets.of(headers=["Authorization"], values=[token])
        declare_secrets(self._secrets)

    @property
    def secrets(self) -> Secrets:
        """``Authorization`` and the token."""
        return self._secrets

    def before_request(self, request: HttpRequest, context: RequestContext) -> HttpRequest:
        """Return a copy of ``request`` with the bearer ``Authorization`` header."""
        return request.with_headers(self._headers)

    def __repr__(self) -> str:
        return f"BearerTokenAuthHook(token={REDACTED!r})"


class ApiKeyAuthHook(AuthHookInterface):
    """Sends an API key in a header (``X-API-Key`` by default) or in a query parameter.

    With ``query_param`` the key goes into ``request.params`` under that name instead of a
    header (replacing a parameter of the same name). Query strings end up in server and proxy
    logs; prefer a header when the API allows it. The hook declares its header (or
    parameter) name and the key as secret, so requestforge hides them in its own logs,
    ``to_curl()``, messages and cassettes whatever the name is (``Ocp-Apim-Subscription-Key``,
    ``subscription-key``).
    """

    def __init__(
        self, api_key: str, *, header_name: str = "X-API-Key", query_param: str | None = None
    ) -> None:
        api_key = _valid_secret(api_key, "api_key")
        self._header_name = _valid_header_name(header_name, "header_name")
        if query_param is not None and (not isinstance(query_param, str) or not query_param):
            raise ConfigurationError(
                f"query_param must be a non-empty string or None, got {query_param!r}"
            )
        self._query_param = query_param
        self._api_key = api_key
        self._headers = MappingProxyType({header_name: api_key})
        self._secrets = (
            Secrets.of(fields=[query_param], values=[api_key])
            if query_param is not None
            else Secrets.of(headers=[header_name], values=[api_key])
        )
        declare_secrets(self._secrets)

    @property
    def secrets(self) -> Secrets:
        """The header or query parameter the key goes in, and the key."""
        return self._secrets

    @property
    def header_name(self) -> str:
        """The header the key is sent in (unused when ``query_param`` is set)."""
        return self._header_name

    @property
    def query_param(self) -> str | None:
        """The query parameter the key is sent in, or None to send it in the header."""
        return self._query_param

    def before_request(self, request: HttpRequest, context: RequestContext) -> HttpRequest:
        """Return a copy of ``request`` carrying the key in the header or the query."""
        if self._query_param is None:
            return request.with_headers(self._headers)
        return replace(request, params={**request.params, self._query_param: self._api_key})

    def __repr__(self) -> str:
        where = (
            f"query_param={self._query_param!r}"
            if self._query_param is not None
            else f"header_name={self._header_name!r}"
        )
        return f"ApiKeyAuthHook(api_key={REDACTED!r}, {where})"


class BasicAuthHook(AuthHookInterface):
    """Sends HTTP Basic credentials (RFC 7617, UTF-8), encoded once at construction."""

    def __init__(self, username: str, password: str) -> None:
        username = _valid_secret(username, "username")
        if ":" in username:
            raise ConfigurationError("username must not contain ':' (RFC 7617)")
        if not isinstance(password, str):
            raise ConfigurationError(f"password must be a string, got {type(password).__name__}")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in username + password):
            raise ConfigurationError("username and password must not contain control characters")
        credentials = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        self._username = username
        self._headers = MappingProxyType({"Authorization": f"Basic {credentials}"})
        self._secrets = Secrets.of(
            headers=["Authorization"], values=[password, credentials, f"Basic {credentials}"]
        )
        declare_secrets(self._secrets)

    @property
    def secrets(self) -> Secrets:
        """``Authorization``, the password and the encoded credentials."""
        return self._secrets

    @property
    def username(self) -> str:
        """The user name (not a secret; the password is not exposed)."""
        return self._username

    def before_request(self, request: HttpRequest, context: RequestContext) -> HttpRequest:
        """Return a copy of ``request`` with the Basic ``Authorization`` header."""
        return request.with_headers(self._headers)

    def __repr__(self) -> str:
        return f"BasicAuthHook(username={self._username!r}, password={REDACTED!r})"


class CompositeAuthHook(AuthHookInterface):
    """Applies several auth hooks in order, for APIs that want more than one credential.

    On a 401 every hook is asked to renew (none is skipped), and a resend is allowed if any
    of them did.
    """

    def __init__(self, *hooks: AuthHookInterface) -> None:
        if not hooks:
            raise ConfigurationError("CompositeAuthHook needs at least one auth hook")
        for hook in hooks:
            if not isinstance(hook, AuthHookInterface):
                raise ConfigurationError(
                    f"each hook must be an AuthHookInterface, got {type(hook).__name__}"
                )
        self._hooks = hooks

    @property
    def secrets(self) -> Secrets:
        """Everything the combined hooks declare."""
        combined = Secrets()
        for hook in self._hooks:
            combined |= hook.secrets
        return combined

    @property
    def hooks(self) -> tuple[AuthHookInterface, ...]:
        """The combined hooks, in the order they are applied."""
        return self._hooks

    def before_request(self, request: HttpRequest, context: RequestContext) -> HttpRequest:
        """Return ``request`` after passing it through every hook in order."""
        for hook in self._hooks:
            request = hook.before_request(request, context)
        return request

    def on_unauthorized(
        self, request: HttpRequest, response: HttpResponse, context: RequestContext
    ) -> bool:
        """Ask every hook to renew its credentials; True if at least one did."""
        renewed = [hook.on_unauthorized(request, response, context) for hook in self._hooks]
        return any(renewed)

    def __repr__(self) -> str:
        return f"CompositeAuthHook({', '.join(repr(h) for h in self._hooks)})"


class TokenAuthHook(AuthHookInterface):
    """Sends the :class:`~requestforge.TokenManager`'s current token on every attempt.

    On a 401 it asks the manager to replace the token that was sent (compare-and-refresh:
    fifty threads rejected with the same token cause one refresh) and lets the client resend
    once. A request that gets a 401 with the fresh token too is not retried again, and while
    the manager's storm limit holds (fresh tokens keep being rejected) the 401 is handed back
    without a fetch or a resend.
    """

    def __init__(self, token_manager: TokenManager) -> None:
        from requestforge.tokens._manager import TokenManager  # noqa: PLC0415 - import cycle

        if not isinstance(token_manager, TokenManager):
            raise ConfigurationError(
                f"token_manager must be a TokenManager, got {type(token_manager).__name__}"
            )
        self._manager = token_manager

    @property
    def secrets(self) -> Secrets:
        """``Authorization``; each token is declared as it arrives (``TokenData``)."""
        return _AUTHORIZATION

    @property
    def token_manager(self) -> TokenManager:
        """The manager tokens come from."""
        return self._manager

    def before_request(self, request: HttpRequest, context: RequestContext) -> HttpRequest:
        """Return a copy of ``request`` with ``Authorization`` set from the current token."""
        token = self._manager.get_token()
        return request.with_headers({"Authorization": token.authorization_header})

    def on_unauthorized(
        self, request: HttpRequest, response: HttpResponse, context: RequestContext
    ) -> bool:
        """Replace the rejected token (unless another thread already did) and allow a resend,
        unless the manager's storm limit handed the rejected token back: resending it would
        only be refused again."""
        sent = request.header("Authorization") or ""
        _, _, rejected = sent.partition(" ")
        token = self._manager.refresh(rejected or None)
        return not rejected or token.access_token != rejected

    def on_resend_answered(
        self, request: HttpRequest, response: HttpResponse, context: RequestContext
    ) -> None:
        """Tell the manager whether the token that replaced a rejected one was accepted:
        a 401 again opens its storm window (see ``TokenManager.record_resend``)."""
        _, _, sent = (request.header("Authorization") or "").partition(" ")
        if sent:
            self._manager.record_resend(sent, accepted=response.status_code != 401)

    def __repr__(self) -> str:
        return f"TokenAuthHook({self._manager!r})"

"""Auth hooks: put credentials on each attempt, and recover from a 401 once.

The auth hook runs on every attempt (after the request hooks), so a retry after a long
backoff carries fresh credentials. When a response with our credentials has an error status,
the client asks :meth:`AuthHookInterface.credentials_refused` whether it refused them (a 401
by default; :class:`TokenAuthHook` also reads ``WWW-Authenticate`` token errors and extra
statuses), then :meth:`AuthHookInterface.on_unauthorized` whether the credentials were
renewed; if so it resends the request exactly once.

Each hook knows exactly what it sends that is secret and says so in
:attr:`AuthHookInterface.secrets` (declared process-wide, see ``_secrets.py``, when the
hook is built and again when a client is built with it), so logs, ``to_curl()``, reprs,
exception messages and cassettes hide it whatever the header or parameter is called.
"""

from __future__ import annotations

import base64
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING

from requestforge._challenge import Challenge, parse_challenges, token_errors
from requestforge._exceptions import (
    ConfigurationError,
    HttpStatusError,
    InsufficientScopeError,
    TokenError,
)
from requestforge._hooks import _header_value_problem, _valid_header_name
from requestforge._models import HttpRequest, RequestContext
from requestforge._redact import REDACTED, redact_url
from requestforge._response import HttpResponse, header_value
from requestforge._secrets import Secrets, declare_secrets

if TYPE_CHECKING:
    from requestforge.tokens._dpop import DPoPKey
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

    def on_response(
        self, request: HttpRequest, response: HttpResponse, context: RequestContext
    ) -> None:
        """Called with every response that answered our credentials, whatever its status
        and before any other call about it: for what servers send on any answer
        (:class:`TokenAuthHook` remembers a DPoP server's ``DPoP-Nonce``, RFC 9449
        section 8). Nothing by default."""
        return

    def credentials_refused(
        self, request: HttpRequest, response: HttpResponse, context: RequestContext
    ) -> bool:
        """Called with every response of status 400 or more that answered our credentials:
        True if it refused them, so that renewing them may help (:meth:`on_unauthorized`).

        A 401 by default. It may raise a ``RequestForgeError`` to fail the request instead
        (:class:`TokenAuthHook` raises :class:`~requestforge.InsufficientScopeError`).
        """
        return response.status_code == 401

    def on_unauthorized(
        self, request: HttpRequest, response: HttpResponse, context: RequestContext
    ) -> bool:
        """Called when :meth:`credentials_refused` said so (on a 401 by default): return True
        if the credentials were renewed and a resend may succeed.

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

    A response refuses the credentials if it refuses any hook's (every hook is asked, so
    each may raise). Then every hook that saw its credentials refused is asked to renew
    (none is skipped), and a resend is allowed if any of them did; each of them hears how
    the resend was answered.
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

    def credentials_refused(
        self, request: HttpRequest, response: HttpResponse, context: RequestContext
    ) -> bool:
        """True if ``response`` refuses the credentials of at least one hook."""
        return any(self._refused(request, response, context))

    def on_unauthorized(
        self, request: HttpRequest, response: HttpResponse, context: RequestContext
    ) -> bool:
        """Ask every hook whose credentials were refused to renew them; True if one did."""
        refused = self._refused(request, response, context)
        renewed = [
            hook.on_unauthorized(request, response, context)
            for hook, no in zip(self._hooks, refused, strict=True)
            if no
        ]
        return any(renewed)

    def on_resend_answered(
        self, request: HttpRequest, response: HttpResponse, context: RequestContext
    ) -> None:
        """Pass the answer to the resend on to every hook."""
        for hook in self._hooks:
            hook.on_resend_answered(request, response, context)

    def on_response(
        self, request: HttpRequest, response: HttpResponse, context: RequestContext
    ) -> None:
        """Pass every answer on to every hook."""
        for hook in self._hooks:
            hook.on_response(request, response, context)

    def _refused(
        self, request: HttpRequest, response: HttpResponse, context: RequestContext
    ) -> list[bool]:
        return [hook.credentials_refused(request, response, context) for hook in self._hooks]

    def __repr__(self) -> str:
        return f"CompositeAuthHook({', '.join(repr(h) for h in self._hooks)})"


class TokenAuthHook(AuthHookInterface):
    """Sends the :class:`~requestforge.TokenManager`'s current token on every attempt.

    A response refuses the token when it is a 401, when any status carries a ``Bearer`` or
    ``DPoP`` challenge with ``error="invalid_token"`` (RFC 6750 section 3, RFC 9449), or when
    its status is one of ``refresh_on_statuses`` (``{403}`` for django-oauth-toolkit's
    default views, which answer a bare 403). Then the hook asks the manager to replace the
    token that was sent (compare-and-refresh: fifty threads rejected with the same token
    cause one refresh) and lets the client resend once. A request refused with the fresh
    token too is not retried again, and while the manager's storm limit holds (fresh tokens
    keep being rejected) the refusal is handed back without a fetch or a resend.

    A challenge with ``error="insufficient_scope"`` (and none with ``invalid_token``) raises
    :class:`~requestforge.InsufficientScopeError`: a new token would lack the scope too.
    When the renewal itself fails (the token endpoint is down), its ``TokenError`` is raised
    rather than the refusal handed back or the rejected token sent again; the error's
    ``__cause__`` is an :class:`~requestforge.HttpStatusError` carrying the refusal.

    DPoP (RFC 9449): when the manager's provider has a :class:`~requestforge.DPoPKey`
    (its ``dpop`` attribute, as the OAuth 2.0 providers given ``dpop=`` do), a token of
    type ``DPoP`` goes out as ``Authorization: DPoP <token>`` with a fresh ``DPoP`` proof on
    every attempt. The ``DPoP-Nonce`` of any answer is remembered for the next proofs to
    that origin; a 401 whose ``DPoP`` challenge says ``use_dpop_nonce`` is resent once with
    it, without renewing the token.
    """

    #: The context metadata key that marks a resend made for a DPoP nonce.
    _NONCE_RESEND = "requestforge.dpop_nonce_resend"

    def __init__(
        self, token_manager: TokenManager, *, refresh_on_statuses: Iterable[int] = ()
    ) -> None:
        from requestforge.tokens._manager import TokenManager  # noqa: PLC0415 - import cycle

        if not isinstance(token_manager, TokenManager):
            raise ConfigurationError(
                f"token_manager must be a TokenManager, got {type(token_manager).__name__}"
            )
        self._manager = token_manager
        self._statuses = _error_statuses(refresh_on_statuses)
        self._dpop = _provider_dpop_key(token_manager)

    @property
    def secrets(self) -> Secrets:
        """``Authorization``; each token is declared as it arrives (``TokenData``)."""
        return _AUTHORIZATION

    @property
    def token_manager(self) -> TokenManager:
        """The manager tokens come from."""
        return self._manager

    @property
    def refresh_on_statuses(self) -> frozenset[int]:
        """The statuses besides 401 that refuse the token, challenge or not."""
        return self._statuses

    @property
    def dpop(self) -> DPoPKey | None:
        """The DPoP key of the manager's provider, which signs proofs for DPoP tokens."""
        return self._dpop

    def before_request(self, request: HttpRequest, context: RequestContext) -> HttpRequest:
        """Return a copy of ``request`` with ``Authorization`` set from the current token
        (and a ``DPoP`` proof for a DPoP token)."""
        token = self._manager.get_token()
        headers = {"Authorization": token.authorization_header}
        if self._dpop is not None and token.token_type.lower() == "dpop":
            headers["DPoP"] = self._dpop.proof(
                request.method.value, request.url, access_token=token.access_token
            )
        return request.with_headers(headers)

    def credentials_refused(
        self, request: HttpRequest, response: HttpResponse, context: RequestContext
    ) -> bool:
        """True for a 401, a ``refresh_on_statuses`` status or an ``invalid_token``
        challenge; raises :class:`~requestforge.InsufficientScopeError` for an
        ``insufficient_scope`` one."""
        refused, scope = self._verdict(response)
        if scope is not None:
            raise _insufficient_scope(request, response, scope)
        return refused

    def on_unauthorized(
        self, request: HttpRequest, response: HttpResponse, context: RequestContext
    ) -> bool:
        """Replace the rejected token (unless another thread already did) and allow a resend,
        unless the manager's storm limit handed the rejected token back: resending it would
        only be refused again. A failed renewal raises its error, chained to the refusal.
        A DPoP ``use_dpop_nonce`` refusal is resent with the nonce, the token kept."""
        if self._dpop is not None and request.header("DPoP") is not None:
            from requestforge.tokens._dpop import asks_for_nonce  # noqa: PLC0415 - cycle

            if asks_for_nonce(response.headers):
                context.metadata[self._NONCE_RESEND] = True
                return True
        sent = request.header("Authorization") or ""
        _, _, rejected = sent.partition(" ")
        failure: TokenError | None = None
        try:
            token = self._manager.refresh(rejected or None)
        except TokenError as exc:
            failure = exc
        else:
            if not rejected or token.access_token != rejected:
                return True
            # The rejected token came back: the storm limit (hand the refusal back), or a
            # failed fetch the manager served the still-valid token over (raise it).
            failure = self._manager._renewal_failure(rejected)
            if failure is None:
                return False
        raise _chained(failure, request, response)

    def on_resend_answered(
        self, request: HttpRequest, response: HttpResponse, context: RequestContext
    ) -> None:
        """Tell the manager whether the token that replaced a rejected one was accepted:
        refused again opens its storm window (see ``TokenManager.record_resend``)."""
        if self._dpop is not None and context.metadata.pop(self._NONCE_RESEND, False):
            return  # the same token, resent with a DPoP nonce: not a renewal
        _, _, sent = (request.header("Authorization") or "").partition(" ")
        if sent:
            refused = response.status_code >= 400 and self._verdict(response)[0]
            self._manager.record_resend(sent, accepted=not refused)

    def on_response(
        self, request: HttpRequest, response: HttpResponse, context: RequestContext
    ) -> None:
        """Remember the ``DPoP-Nonce`` a DPoP-protected API sends, on any status."""
        if self._dpop is not None:
            self._dpop.remember_nonce(request.url, response.headers)

    def _verdict(self, response: HttpResponse) -> tuple[bool, Challenge | None]:
        """Whether ``response`` refuses the token, and the ``insufficient_scope`` challenge
        that makes it an error (only when no challenge says ``invalid_token``)."""
        status = response.status_code
        header = header_value(response.headers, "WWW-Authenticate")
        if header is not None:
            errors = token_errors(parse_challenges(header))
            if any(c.params["error"] == "invalid_token" for c in errors):
                return True, None
            for challenge in errors:
                if challenge.params["error"] == "insufficient_scope":
                    return False, challenge
        return status == 401 or status in self._statuses, None

    def __repr__(self) -> str:
        statuses = f", refresh_on_statuses={sorted(self._statuses)}" if self._statuses else ""
        return f"TokenAuthHook({self._manager!r}{statuses})"


def _provider_dpop_key(manager: TokenManager) -> DPoPKey | None:
    """The ``dpop`` key of ``manager``'s provider, or None when it has none."""
    from requestforge.tokens._dpop import key_of  # noqa: PLC0415 - import cycle

    return key_of(manager.provider)


def _error_statuses(statuses: Iterable[int]) -> frozenset[int]:
    """``refresh_on_statuses`` checked: HTTP error statuses (400-599)."""
    if isinstance(statuses, str | bytes) or not isinstance(statuses, Iterable):
        raise ConfigurationError(
            f"refresh_on_statuses must be a collection of statuses, got {type(statuses).__name__}"
        )
    checked = frozenset(statuses)
    for status in checked:
        if type(status) is not int or not 400 <= status <= 599:
            raise ConfigurationError(
                f"refresh_on_statuses must hold error statuses (400-599), got {status!r}"
            )
    return checked


def _refusal(request: HttpRequest, response: HttpResponse) -> str:
    return f"{response.status_code} for {request.method.value} {redact_url(request.url)}"


def _insufficient_scope(
    request: HttpRequest, response: HttpResponse, challenge: Challenge
) -> InsufficientScopeError:
    scope = challenge.params.get("scope")
    needs = f"the scope {scope!r}" if scope is not None else "a scope it does not name"
    return InsufficientScopeError(
        f"{_refusal(request, response)}: insufficient_scope, the API needs {needs} and the "
        "token lacks it (a new token would too, so it is not renewed)",
        scope=scope,
        error_description=challenge.params.get("error_description"),
        request=request,
        response=response,
    )


def _chained(error: TokenError, request: HttpRequest, response: HttpResponse) -> TokenError:
    """A copy of ``error`` (same class, attributes and traceback; the original may be
    shared with other threads) whose ``__cause__`` is the refusal, as an HttpStatusError."""
    refusal = HttpStatusError(
        f"{_refusal(request, response)}: the API refused the token, and renewing it failed",
        response=response,
    )
    copy = BaseException.__new__(type(error), *error.args)
    copy.__dict__.update(error.__dict__)
    copy.__cause__ = refusal
    return copy.with_traceback(error.__traceback__)

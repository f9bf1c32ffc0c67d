"""OAuth 2.0 token providers: the client credentials and resource owner password grants,
and the token endpoint exchange the other grants (``_grants.py``) share.

A provider only talks to the token endpoint (RFC 6749 sections 4.3, 4.4 and 6); the
:class:`~requestforge.TokenManager` caches and single-flights, so providers hold no lock.
Every failure surfaces as a :class:`~requestforge.TokenError`: never a ``requests``
exception, never a :class:`~requestforge.MaxRetryException`, never a secret in a message.
The client authenticates with any :class:`~requestforge.ClientAuthMethod` (``_client_auth``).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeAlias

from requestforge._client import HttpClient
from requestforge._clock import Clock, get_default_clock
from requestforge._config import HttpClientConfig, connection_settings
from requestforge._exceptions import (
    CircuitOpenError,
    ConfigurationError,
    MaxRetryException,
    ResponseDecodeError,
    TokenEndpointError,
    TokenResponseError,
    TransportError,
)
from requestforge._models import HttpMethod
from requestforge._redact import is_secret_field, redact_url
from requestforge._response import HttpResponse
from requestforge._retry import ExponentialBackoffRetryStrategy
from requestforge._secrets import Secrets, declare_secrets
from requestforge._validate import (
    connection_config,
    count,
    http_url,
    instance,
    number,
    shown,
    text,
    valid_clock,
)
from requestforge.tokens._client_auth import (
    CLIENT_AUTH_NAMES,
    ClientAuthMethod,
    resolve_client_auth,
)
from requestforge.tokens._data import TokenData
from requestforge.tokens._discovery import AuthorizationServer, provider_from_issuer
from requestforge.tokens._dpop import DPoPKey, retry_for_nonce
from requestforge.tokens._endpoint import (
    MAX_DESCRIPTION,
    TRANSIENT_STATUSES,
    endpoint_error,
    scrub,
)
from requestforge.tokens._providers import TokenProviderInterface
from requestforge.tokens._revocation import (
    Introspection,
    TokenTypeHint,
    endpoint_url,
    post_introspection,
    post_revocation,
    valid_endpoint_url,
)

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from typing import Self
    else:
        from typing_extensions import Self

__all__ = ["ClientCredentialsTokenProvider", "PasswordGrantTokenProvider"]

logger = logging.getLogger("requestforge.tokens")

# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
# The form fields that carry a secret: declared, so logs and cassettes hide them by name.
_SECRET_FORM_FIELDS: Final = (
    "client_secret",
    "password",
    "refresh_token",
    "client_assertion",
    "assertion",
    "subject_token",
    "actor_token",
)
# Form fields the provider sets itself; extra_params may not override them.
_RESERVED_PARAMS = frozenset(
    {"grant_type", "client_id", "client_secret", "username", "password", "refresh_token", "scope"}
)
#: A token request's form: a list value is sent as a repeated field (RFC 8693 ``resource``).
Form: TypeAlias = dict[str, str | list[str]]


class _OAuth2TokenProvider(TokenProviderInterface):
    """The token endpoint exchange shared by the grants; subclasses add their form fields.

    Token requests go through ``client`` if given. Otherwise the provider makes its own
    client with its ``timeout`` and retries and, from ``config`` if given, only the
    connection settings (``_config.CONNECTION_FIELDS``): so an mTLS token endpoint
    (RFC 8705), a private CA or a proxy need no client of your own. The config's base URL,
    headers, hooks, auth, retries and cookies are not used: they are the API's.
    """

    #: A token endpoint that has not answered in ten seconds is down, not slow; callers of
    #: the TokenManager are waiting on this request.
    DEFAULT_TIMEOUT: Final = 10.0
    #: Two retries ride out a restarting authorization server without stalling callers long.
    DEFAULT_MAX_RETRIES: Final = 2
    #: First backoff before a retry: short, since every API call waits for this token.
    RETRY_BASE_DELAY: Final = 0.5
    #: The backoff stops growing here.
    RETRY_MAX_DELAY: Final = 5.0
    #: A server's Retry-After is honoured up to this long: threads waiting on the manager's
    #: fetch give up after its wait_timeout (60 s), so minutes-long waits help nobody.
    MAX_RETRY_AFTER: Final = 10.0
    #: Statuses that mean "try again later" and are retried: those the one token-endpoint
    #: error mapping (``_endpoint``) calls transient, 408/425/429, and the 5xx that mean a
    #: server-side failure. A 500 is included (unlike for API calls): token requests are
    #: safe to repeat.
    TRANSIENT_STATUSES: Final = TRANSIENT_STATUSES | {500, 502, 503, 504}
    #: The ``client_auth`` strings: ``"basic"`` (HTTP Basic, which RFC 6749 section 2.3.1
    #: says servers MUST support), ``"body"`` and the RFC 7591 method names.
    CLIENT_AUTH_METHODS: Final = CLIENT_AUTH_NAMES
    #: error_description is server text; it is cut to this length in our messages.
    MAX_DESCRIPTION: Final = MAX_DESCRIPTION

    #: The grant_type this provider's fetch_token sends.
    grant_type: ClassVar[str]
    #: Whether requests carry the client's authentication (an anonymous JWT bearer does not).
    _authenticates: bool = True

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str | None,
        *,
        scope: str | Iterable[str] | None = None,
        audience: str | None = None,
        extra_params: Mapping[str, str] | None = None,
        client_auth: str | ClientAuthMethod = "basic",
        revocation_url: str | None = None,
        introspection_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        client: HttpClient | None = None,
        config: HttpClientConfig | None = None,
        service_name: str | None = None,
        clock: Clock | None = None,
        dpop: DPoPKey | None = None,
    ) -> None:
        self._token_url = http_url("token_url", token_url)
        self._dpop = None if dpop is None else instance("dpop", dpop, DPoPKey)
        self._client_id = text("client_id", client_id)
        if client_secret is not None:
            client_secret = text("client_secret", client_secret)
        self._client_secret = client_secret
        self._scope = _valid_scope(scope)
        self._audience = None if audience is None else text("audience", audience)
        self._extra = _valid_extra_params(extra_params)
        self._auth = resolve_client_auth(client_auth, client_secret)
        self._revocation_url = valid_endpoint_url("revocation_url", revocation_url)
        self._introspection_url = valid_endpoint_url("introspection_url", introspection_url)
        self._timeout = number("timeout", timeout, strict=True)
        count("max_retries", max_retries, minimum=0)
        if client is not None:
            instance("client", client, HttpClient)
        self._connection = connection_config(config, client=client)
        if self._auth.needs_client_cert:
            settings = self._connection or (client.config if client is not None else None)
            if settings is None or settings.client_cert is None:
                raise ConfigurationError(
                    f"client_auth {self._auth.method!r} authenticates with the TLS client "
                    "certificate: give config= (or client=) with a client certificate"
                )
        self._clock = valid_clock("clock", clock)
        self._owns_client = client is None
        self._client = client if client is not None else self._make_client(max_retries)
        if service_name is not None:
            service_name = text("service_name", service_name)
        self._service_name = service_name
        declare_secrets(self._declared())

    def _declared(self) -> Secrets:
        """The form fields and values this provider sends that are secret (see _secrets)."""
        declared = Secrets.of(fields=_SECRET_FORM_FIELDS, values=self._secrets())
        return declared | self._auth.secrets(self._client_id)

    def _make_client(self, max_retries: int) -> HttpClient:
        retry = ExponentialBackoffRetryStrategy(
            max_retries,
            base_delay=self.RETRY_BASE_DELAY,
            max_delay=self.RETRY_MAX_DELAY,
            allowed_methods={HttpMethod.POST},  # a token request is safe to repeat
            retry_statuses=self.TRANSIENT_STATUSES,
            max_retry_after=self.MAX_RETRY_AFTER,
            clock=self._clock,
        )
        # Only how to connect comes from the caller's config: a token request has its own
        # timeout and retries, and must not carry the API's headers, hooks or credentials.
        connection = connection_settings(self._connection) if self._connection else {}
        return HttpClient(
            HttpClientConfig(default_timeout=self._timeout, retry_strategy=retry, **connection)
        )

    # -- public API ----------------------------------------------------------------------

    @classmethod
    def from_issuer(cls, server: str | AuthorizationServer, /, *args: Any, **kwargs: Any) -> Self:
        """The provider for the token endpoint that ``server``'s metadata names.

        ``server`` is an issuer URL (its document is fetched now, with the ``timeout``,
        ``client``, ``config`` and ``clock`` given here) or an
        :class:`~requestforge.AuthorizationServer`, whose cached document several
        providers share. The other arguments are the constructor's, without ``token_url``.
        Given a ``client_secret`` and no ``client_auth``, the client authenticates with
        ``client_secret_basic`` if the server lists it, else ``client_secret_post``. The
        provider keeps the token endpoint it was built with; ``revocation_url`` and
        ``introspection_url`` come from the document unless given. Discovery failures raise
        :class:`~requestforge.TokenEndpointError` (see :doc:`/guide/discovery`).
        """
        return provider_from_issuer(cls, server, args, kwargs)

    @property
    def token_url(self) -> str:
        """The token endpoint."""
        return self._token_url

    @property
    def client_id(self) -> str:
        """The OAuth client identifier (not a secret)."""
        return self._client_id

    @property
    def scope(self) -> str | None:
        """The requested scope, space-separated, or None."""
        return self._scope

    @property
    def client_auth(self) -> ClientAuthMethod:
        """How the client authenticates at the token endpoint."""
        return self._auth

    @property
    def client(self) -> HttpClient:
        """The HttpClient token requests go through."""
        return self._client

    @property
    def dpop(self) -> DPoPKey | None:
        """The DPoP key token requests prove possession of (RFC 9449), or None."""
        return self._dpop

    @property
    def service_name(self) -> str:
        """The token's identity, built from non-secret settings unless given explicitly."""
        if self._service_name is not None:
            return self._service_name
        parts = [f"oauth2:{self._grant_type()}", redact_url(self._token_url)]
        parts += [f"client_id={self._client_id}", *self._identity()]
        if self._scope is not None:
            parts.append(f"scope={self._scope}")
        if self._audience is not None:
            parts.append(f"audience={self._audience}")
        if self._dpop is not None:  # its tokens are bound to the key: never share them
            parts.append(f"dpop={self._dpop.thumbprint}")
        return ":".join(parts)

    def fetch_token(self) -> TokenData:
        """POST this provider's grant to the token endpoint and parse the token response."""
        return self._request_token(self._grant_type(), self._grant_params())

    def refresh_token(self, current: TokenData) -> TokenData:
        """Use ``current.refresh_token`` (RFC 6749 section 6) if it has one, else fetch anew."""
        if current.refresh_token is None:
            return self.fetch_token()
        return self._request_token(
            "refresh_token",
            {"refresh_token": current.refresh_token},
            # A server may echo the tokens back in error_description: never quote them.
            call_secrets=(current.refresh_token, current.access_token),
        )

    @property
    def revocation_url(self) -> str | None:
        """The RFC 7009 revocation endpoint, or None."""
        return self._revocation_url

    @property
    def introspection_url(self) -> str | None:
        """The RFC 7662 introspection endpoint, or None."""
        return self._introspection_url

    def revoke_token(
        self, token: TokenData | str, *, token_type_hint: TokenTypeHint | None = None
    ) -> None:
        """Revoke ``token`` at the revocation endpoint (RFC 7009), authenticated like token
        requests; a TokenData's access token is sent with the ``access_token`` hint.
        Raises ConfigurationError without a ``revocation_url``, TokenEndpointError when
        the server refuses or cannot be reached (see :doc:`/guide/revocation`)."""
        url = endpoint_url(self, "revocation_url", self._revocation_url)
        post_revocation(self, url, token, token_type_hint)

    def introspect(
        self, token: TokenData | str, *, token_type_hint: TokenTypeHint | None = None
    ) -> Introspection:
        """Ask the introspection endpoint (RFC 7662) whether ``token`` is active and what
        it was issued for; errors as for :meth:`revoke_token`."""
        url = endpoint_url(self, "introspection_url", self._introspection_url)
        return post_introspection(self, url, token, token_type_hint)

    def close(self) -> None:
        """Close the HttpClient this provider created (a client you passed in stays open)."""
        if self._owns_client:
            self._client.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(token_url={redact_url(self._token_url)!r}, "
            f"client_id={self._client_id!r}, scope={self._scope!r})"
        )

    # -- for subclasses ------------------------------------------------------------------

    def _grant_type(self) -> str:
        """The grant_type fetch_token sends (the class's, unless a subclass chooses)."""
        return self.grant_type

    def _grant_params(self) -> Form:
        """The grant's own form fields (besides grant_type, scope and client auth)."""
        return {}

    def _identity(self) -> list[str]:
        """Non-secret parts that tell this provider's tokens apart, for service_name."""
        return []

    def _secrets(self) -> list[str]:
        """Every secret this provider knows, to scrub from server text we quote: the client
        secret and any extra_params value under a secret name (``client_assertion``)."""
        found = [self._client_secret] if self._client_secret else []
        return found + [value for name, value in self._extra.items() if is_secret_field(name)]

    # -- the exchange --------------------------------------------------------------------

    def _request_token(
        self,
        grant_type: str,
        params: Mapping[str, str | list[str]],
        *,
        call_secrets: Iterable[str | None] = (),
    ) -> TokenData:
        """POST one grant; with a DPoP key, once more on ``use_dpop_nonce``, and the token's
        ``cnf.jkt`` must be the key's (see ``_dpop``)."""
        if self._dpop is None:
            return self._post_grant(grant_type, params, call_secrets)
        token = retry_for_nonce(
            self._dpop, self._token_url, lambda: self._post_grant(grant_type, params, call_secrets)
        )
        self._dpop.check_binding(token)
        return token

    def _post_grant(
        self,
        grant_type: str,
        params: Mapping[str, str | list[str]],
        call_secrets: Iterable[str | None],
    ) -> TokenData:
        """POST one grant; never follows a redirect (see ``_endpoint``)."""
        secrets = [*self._secrets(), *(s for s in call_secrets if s)]
        form: Form = {"grant_type": grant_type, **params}
        if self._scope is not None:
            form["scope"] = self._scope
        if self._audience is not None:
            form["audience"] = self._audience
        form.update(self._extra)
        headers = {"Accept": "application/json"}
        if self._authenticates:
            clock = self._clock or get_default_clock()
            secrets += self._auth.apply(
                form, headers, client_id=self._client_id, token_url=self._token_url, now=clock.now()
            )
        if self._dpop is not None:
            clock = self._clock or get_default_clock()
            headers["DPoP"] = self._dpop.proof("POST", self._token_url, now=clock.now())
        url = redact_url(self._token_url)
        logger.debug(
            "requesting a %s token from %s for client %r", grant_type, url, self._client_id
        )
        try:
            response = self._client.post(
                self._token_url,
                data=form,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            )
        except MaxRetryException as exc:
            if exc.response is not None:
                raise self._status_error(exc.response, grant_type, secrets, exc.attempts) from exc
            cause = exc.last_error or exc
            raise self._transport_error(cause, grant_type, exc.attempts, secrets) from cause
        except (TransportError, CircuitOpenError) as exc:
            raise self._transport_error(exc, grant_type, 1, secrets) from exc
        logger.debug("token endpoint %s answered %d", url, response.status_code)
        if self._dpop is not None:
            self._dpop.remember_nonce(self._token_url, response.headers)
        if not response.is_success:
            raise self._status_error(response, grant_type, secrets, 1)
        return self._parse(response)

    def _parse(self, response: HttpResponse) -> TokenData:
        try:
            data: Any = response.json()
        except ResponseDecodeError as exc:
            content_type = response.headers.get("Content-Type", "no content type")
            raise TokenResponseError(
                f"token endpoint {redact_url(self._token_url)} answered {response.status_code} "
                f"with a body that is not JSON ({content_type})",
                response=response,
            ) from exc
        token = TokenData.from_response(data, clock=self._clock)
        logger.debug(
            "got a %s token for client %r expiring at %s",
            token.token_type,
            self._client_id,
            token.expires_at,
        )
        return token

    def _status_error(
        self, response: HttpResponse, grant_type: str, secrets: list[str], attempts: int
    ) -> TokenEndpointError:
        return endpoint_error(
            response,
            url=self._token_url,
            purpose=f"the {grant_type} grant",
            secrets=secrets,
            attempts=attempts,
        )

    def _transport_error(
        self, cause: BaseException, grant_type: str, attempts: int, secrets: list[str]
    ) -> TokenEndpointError:
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return TokenEndpointError(
            f"token endpoint {redact_url(self._token_url)} could not be reached for the "
            f"{grant_type} grant{tries}: {type(cause).__name__}: {scrub(str(cause), secrets, 300)}",
            transient=True,
            request=getattr(cause, "request", None),
        )


class ClientCredentialsTokenProvider(_OAuth2TokenProvider):
    """Tokens for the client itself (RFC 6749 section 4.4): machine-to-machine APIs.

    ``scope`` is a space-separated string or an iterable of scope tokens. ``client_auth``
    is ``"basic"`` (HTTP Basic, the default) or ``"body"`` (``client_id`` and
    ``client_secret`` as form fields); a public client (``client_secret=None``) sends only
    its ``client_id`` in the body. It may also be an RFC 7591 method name
    (``"client_secret_jwt"``, ``"tls_client_auth"``, ``"none"``, ...) or a
    :class:`ClientAuthMethod` such as :class:`PrivateKeyJwt`, which holds the credentials
    itself (``client_secret`` is then None). ``audience`` and ``extra_params`` are added to every
    token request. Retries (``max_retries``, exponential backoff on the default clock,
    ``Retry-After`` honoured) cover connection errors, timeouts and 429/5xx answers.

    ``client`` sends token requests through an :class:`~requestforge.HttpClient` of yours.
    Without one, ``config`` lends the provider's own client its connection settings
    (``verify_ssl`` / CA bundle, client certificate, proxies, adapters, pool sizes, max
    redirects) and nothing else: for an mTLS token endpoint (RFC 8705) or one behind a
    proxy. Giving both is a ``ConfigurationError``.

    ``dpop`` is a :class:`~requestforge.DPoPKey`: every token request carries a DPoP proof
    (RFC 9449), so the tokens are bound to the key (see :doc:`/guide/dpop`).
    """

    grant_type = "client_credentials"


class PasswordGrantTokenProvider(_OAuth2TokenProvider):
    """Tokens for a user, from their username and password (RFC 6749 section 4.3).

    Only for first-party clients that cannot redirect a browser; the options are those of
    :class:`ClientCredentialsTokenProvider`. The server's refresh token is used by
    ``refresh_token()``, so the password is sent again only when that fails.
    """

    grant_type = "password"

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str | None,
        username: str,
        password: str,
        *,
        scope: str | Iterable[str] | None = None,
        audience: str | None = None,
        extra_params: Mapping[str, str] | None = None,
        client_auth: str | ClientAuthMethod = "basic",
        revocation_url: str | None = None,
        introspection_url: str | None = None,
        timeout: float = _OAuth2TokenProvider.DEFAULT_TIMEOUT,
        max_retries: int = _OAuth2TokenProvider.DEFAULT_MAX_RETRIES,
        client: HttpClient | None = None,
        config: HttpClientConfig | None = None,
        service_name: str | None = None,
        clock: Clock | None = None,
        dpop: DPoPKey | None = None,
    ) -> None:
        self._username = text("username", username)
        if not isinstance(password, str):
            raise ConfigurationError(f"password must be a string, got {type(password).__name__}")
        self._password = password
        super().__init__(
            token_url,
            client_id,
            client_secret,
            scope=scope,
            audience=audience,
            extra_params=extra_params,
            client_auth=client_auth,
            revocation_url=revocation_url,
            introspection_url=introspection_url,
            timeout=timeout,
            max_retries=max_retries,
            client=client,
            config=config,
            service_name=service_name,
            clock=clock,
            dpop=dpop,
        )

    @property
    def username(self) -> str:
        """The resource owner whose tokens this provider fetches."""
        return self._username

    def _grant_params(self) -> Form:
        return {"username": self._username, "password": self._password}

    def _identity(self) -> list[str]:
        return [f"username={self._username}"]

    def _secrets(self) -> list[str]:
        return [*super()._secrets(), *([self._password] if self._password else [])]


# -- validation and helpers ----------------------------------------------------------------


def _valid_scope(scope: object) -> str | None:
    if scope is None:
        return None
    if isinstance(scope, str):
        tokens = scope.split()
    elif isinstance(scope, Iterable):
        tokens = list(scope)
    else:
        raise ConfigurationError(f"scope must be a string or strings, got {type(scope).__name__}")
    for token in tokens:
        if not isinstance(token, str) or not _SCOPE_TOKEN.fullmatch(token):
            raise ConfigurationError(
                f"invalid scope token {shown(token)}: RFC 6749 allows printable ASCII "
                "without spaces, quotes or backslashes"
            )
    return " ".join(tokens) or None


def _valid_extra_params(params: object) -> dict[str, str]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise ConfigurationError(f"extra_params must be a mapping, got {type(params).__name__}")
    for name, value in params.items():
        if not isinstance(name, str) or not name or not isinstance(value, str):
            raise ConfigurationError(f"extra_params must map names to strings, got {shown(name)}")
        if name in _RESERVED_PARAMS:
            raise ConfigurationError(f"extra_params may not set {name!r}; the provider sets it")
    return dict(params)

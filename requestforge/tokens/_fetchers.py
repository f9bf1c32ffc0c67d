"""Pipeline steps that get their token from an HTTP endpoint, made with the earlier tokens.

``HeaderTokenFetcher`` takes the token from a response header, ``BodyTokenFetcher`` from a
dotted path into the JSON body. By default the request carries ``Authorization`` built from
the token of the step named by ``auth_from`` (the last dependency unless given); for APIs
that want earlier tokens elsewhere, ``headers``, ``json`` and ``data`` may be callables
that receive the :class:`~requestforge.FetchContext`.

A step that requests its token from an OAuth token endpoint authenticates the client with
``client_id`` and ``client_auth`` (any :class:`~requestforge.ClientAuthMethod`), whose form
fields join ``data`` and whose headers join the request's; ``TokenExchangeFetcher`` is such a
step for RFC 8693, exchanging an earlier step's token for its own. Given ``dpop=``, a step
sends a DPoP proof (RFC 9449) with its request (with ``ath`` when the ``auth_from`` token is a
DPoP token), retries once on ``use_dpop_nonce``, and checks the issued token's ``cnf.jkt``.
``TokenExchangeFetcher`` reads the token type from the token response; the header and body
steps take it from ``token_type``, so give ``token_type="DPoP"`` for a DPoP-bound token.

Failures are typed and never quote a token: the endpoint answering non-2xx or not at all is
a :class:`~requestforge.TokenEndpointError` (from the one mapping the OAuth providers use,
``_endpoint``); a 2xx without a usable token is a :class:`~requestforge.TokenResponseError`.

Requests go through ``client`` if given. Otherwise the step makes its own client (30 s
timeout, no retries), taking from ``config``, if given, only its connection settings:
``verify_ssl`` / CA bundle, client certificate, proxies, adapters, pool sizes and max
redirects, never its base URL, headers, hooks, auth, retries or cookies. ``client`` and
``config`` together are a :class:`~requestforge.ConfigurationError`.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any, Final, TypeAlias

from requestforge._client import HttpClient
from requestforge._clock import Clock, get_default_clock
from requestforge._config import HttpClientConfig, connection_settings
from requestforge._exceptions import (
    CircuitOpenError,
    ConfigurationError,
    MaxRetryException,
    RequestError,
    ResponseDecodeError,
    TokenEndpointError,
    TokenResponseError,
    TransportError,
)
from requestforge._hooks import _valid_header_name
from requestforge._models import merge_headers, parse_method
from requestforge._redact import is_secret_field, is_secret_header, redact_url
from requestforge._response import HttpResponse
from requestforge._secrets import Secrets, declare_secrets
from requestforge._validate import (
    connection_config,
    instance,
    shown,
    text,
    valid_clock,
    valid_token_type,
)
from requestforge.tokens._client_auth import ClientAuthMethod, check_form_fields
from requestforge.tokens._data import TokenData, _parse_expires_in
from requestforge.tokens._dpop import DPoPKey, retry_for_nonce
from requestforge.tokens._endpoint import endpoint_error, transient_status
from requestforge.tokens._pipeline import FetchContext, TokenFetcherInterface

__all__ = ["BodyTokenFetcher", "HeaderTokenFetcher"]

#: Request headers: fixed, or computed from the earlier steps' tokens.
HeadersArg: TypeAlias = Mapping[str, str] | Callable[[FetchContext], Mapping[str, str]] | None
#: A request body (``json=`` or ``data=``): fixed, or computed from the earlier tokens.
BodyArg: TypeAlias = Any


class _HttpTokenFetcher(TokenFetcherInterface):
    """Sends one request per fetch with an :class:`~requestforge.HttpClient`."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        method: str = "POST",
        depends_on: Iterable[str] = (),
        ttl: float | None = None,
        client: HttpClient | None = None,
        config: HttpClientConfig | None = None,
        headers: HeadersArg = None,
        json: BodyArg = None,
        data: BodyArg = None,
        auth_from: str | None = None,
        token_type: str = "Bearer",  # noqa: S107 - a scheme name, not a secret
        clock: Clock | None = None,
        client_id: str | None = None,
        client_auth: ClientAuthMethod | None = None,
        dpop: DPoPKey | None = None,
    ) -> None:
        super().__init__(name, depends_on=depends_on, ttl=ttl)
        if client is not None:
            instance("client", client, HttpClient)
        connection = connection_config(config, client=client)
        text(f"url of step {name!r}", url)
        absolute = url[:8].lower().startswith(("http://", "https://"))
        if not absolute and (client is None or client.config.base_url is None):
            raise ConfigurationError(
                f"url of step {name!r} is relative ({redact_url(url)}) but there is no "
                f"client with a base_url to resolve it against"
            )
        self._method = parse_method(method, error=ConfigurationError)
        if headers is not None and not (callable(headers) or isinstance(headers, Mapping)):
            raise ConfigurationError(
                f"headers must be a mapping or a callable, got {type(headers).__name__}"
            )
        if json is not None and data is not None:
            raise ConfigurationError(f"step {name!r}: give json or data, not both")
        if auth_from is not None and auth_from not in self.depends_on:
            raise ConfigurationError(
                f"auth_from of step {name!r} must be one of its depends_on "
                f"{self.depends_on!r}, got {shown(auth_from)}"
            )
        valid_token_type("token_type", token_type)
        valid_clock("clock", clock)
        self._client_auth = _valid_client_auth(
            name, client_auth, client_id, json=json, data=data, client=client, config=connection
        )
        self._client_id = client_id
        self._url = url
        self._owns_client = client is None
        if client is None:
            # How to connect, from the config; what to send stays this step's own.
            settings = connection_settings(connection) if connection is not None else {}
            client = HttpClient(HttpClientConfig(**settings))
        self._client = client
        # Absolute, for what must name the endpoint itself: an assertion's aud, a proof's htu.
        self._endpoint = client._resolve(url)
        self._dpop = None if dpop is None else instance("dpop", dpop, DPoPKey)
        self._headers = headers
        self._json = json
        self._data = data
        if auth_from is None and client_auth is None and self.depends_on:
            auth_from = self.depends_on[-1]  # a client that authenticates needs no bearer
        self._auth_from = auth_from
        self._token_type = token_type
        self._clock = clock
        declare_secrets(_fixed_secrets(headers, json, data))
        if client_auth is not None and client_id is not None:
            declare_secrets(client_auth.secrets(client_id))

    @property
    def url(self) -> str:
        """Where the token is requested."""
        return self._url

    @property
    def client(self) -> HttpClient:
        """The client requests are sent with."""
        return self._client

    @property
    def client_auth(self) -> ClientAuthMethod | None:
        """How the step authenticates the client at a token endpoint, or None."""
        return self._client_auth

    @property
    def dpop(self) -> DPoPKey | None:
        """The DPoP key this step's requests prove possession of (RFC 9449), or None."""
        return self._dpop

    def close(self) -> None:
        """Close the client if this fetcher created it (a client passed in is left open)."""
        if self._owns_client:
            self._client.close()

    def fetch(self, context: FetchContext) -> TokenData:
        """Request the token and take it from the response; with a DPoP key, once more on
        ``use_dpop_nonce``, and the token's ``cnf.jkt`` must be the key's."""
        clock = self._clock or get_default_clock()
        if self._dpop is None:
            return self._extract(self._send(context), clock)
        response = retry_for_nonce(self._dpop, self._endpoint, lambda: self._send(context))
        token = self._extract(response, clock)
        self._dpop.check_binding(token)
        return token

    @abstractmethod
    def _extract(self, response: HttpResponse, clock: Clock) -> TokenData:
        """Build the token from a 2xx response."""

    def _send(self, context: FetchContext) -> HttpResponse:
        headers: dict[str, str] = {}
        bearer = None if self._auth_from is None else context.get_token(self._auth_from)
        if bearer is not None:
            headers["Authorization"] = bearer.authorization_header
        given = self._headers(context) if callable(self._headers) else self._headers
        if given is not None and not isinstance(given, Mapping):
            raise ConfigurationError(
                f"the headers callable of step {self.name!r} returned "
                f"{type(given).__name__}, not a mapping"
            )
        if given:
            headers = merge_headers(headers, given)  # the caller's headers win
        if self._dpop is not None:
            bound = bearer if bearer is not None and bearer.token_type.lower() == "dpop" else None
            proof = self._dpop.proof(
                self._method.value,
                self._endpoint,
                access_token=None if bound is None else bound.access_token,
                now=(self._clock or get_default_clock()).now(),
            )
            headers = merge_headers(headers, {"DPoP": proof})
        where = redact_url(self._url)
        json = self._json(context) if callable(self._json) else self._json
        data = self._data(context) if callable(self._data) else self._data
        sent: list[str] = []
        if self._client_auth is not None and self._client_id is not None:
            data, sent = self._authenticate(self._client_auth, self._client_id, data, headers)
        try:
            response = self._client.request(
                self._method,
                self._url,
                headers=headers,
                json=json,
                data=data,
                allow_redirects=False,  # see _token_endpoint: a token request stays put
            )
        except RequestError as exc:
            if self._dpop is not None and exc.response is not None:
                self._dpop.remember_nonce(self._endpoint, exc.response.headers)
            if exc.response is not None and not exc.response.is_success:
                raise endpoint_error(
                    exc.response,
                    url=self._url,
                    purpose=f"step {self.name!r}",
                    secrets=[*sent, *_sent_secrets(context, headers, json, data)],
                ) from exc
            raise TokenEndpointError(
                f"token request to {where} failed: {type(exc).__name__}",
                transient=_transient_error(exc),
                request=exc.request,
                response=exc.response,
                status_code=None if exc.response is None else exc.response.status_code,
            ) from exc
        if self._dpop is not None:
            self._dpop.remember_nonce(self._endpoint, response.headers)
        if not response.is_success:
            raise endpoint_error(
                response,
                url=self._url,
                purpose=f"step {self.name!r}",
                secrets=[*sent, *_sent_secrets(context, headers, json, data)],
            )
        return response

    def _authenticate(
        self, auth: ClientAuthMethod, client_id: str, data: BodyArg, headers: dict[str, str]
    ) -> tuple[Any, list[str]]:
        """``data`` with the client authentication's fields added (and its headers added
        to ``headers``); the secrets it sent."""
        if data is not None and not isinstance(data, Mapping):
            raise ConfigurationError(
                f"step {self.name!r} authenticates its client in the form, so data must be a "
                f"mapping, got {type(data).__name__}"
            )
        form: dict[str, Any] = dict(data or {})
        check_form_fields(form, what=f"the data of step {self.name!r}")
        clock = self._clock or get_default_clock()
        sent = auth.apply(
            form, headers, client_id=client_id, token_url=self._endpoint, now=clock.now()
        )
        return (form if form or data is not None else None), sent

    def _token(
        self,
        access_token: str,
        clock: Clock,
        *,
        expires_in: object = None,
        refresh_token: str | None = None,
    ) -> TokenData:
        """A :class:`TokenData` issued now; validation errors never quote the token."""
        now = clock.now()
        try:
            lifetime = _parse_expires_in(expires_in)
            return TokenData(
                access_token=access_token,
                token_type=self._token_type,
                expires_at=None if lifetime is None else now + timedelta(seconds=lifetime),
                refresh_token=refresh_token,
                issued_at=now,
            )
        except TokenResponseError as exc:
            raise TokenResponseError(f"response from {redact_url(self._url)}: {exc}") from exc

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, url={redact_url(self._url)!r}, "
            f"depends_on={self.depends_on!r}, ttl={self.ttl!r})"
        )


class HeaderTokenFetcher(_HttpTokenFetcher):
    """A step whose token comes back in a response header (``X-Auth-Token`` by default).

    A header carries no expiry, so the token is cached until ``ttl`` (forever without one).
    """

    #: The conventional header for a token handed out in a response header.
    DEFAULT_HEADER_NAME: Final = "X-Auth-Token"

    def __init__(
        self,
        name: str,
        url: str,
        *,
        header_name: str = DEFAULT_HEADER_NAME,
        method: str = "POST",
        depends_on: Iterable[str] = (),
        ttl: float | None = None,
        client: HttpClient | None = None,
        config: HttpClientConfig | None = None,
        headers: HeadersArg = None,
        json: BodyArg = None,
        data: BodyArg = None,
        auth_from: str | None = None,
        token_type: str = "Bearer",  # noqa: S107 - a scheme name, not a secret
        clock: Clock | None = None,
        client_id: str | None = None,
        client_auth: ClientAuthMethod | None = None,
        dpop: DPoPKey | None = None,
    ) -> None:
        self._header_name = _valid_header_name(header_name, "header_name")
        declare_secrets(Secrets.of(headers=[header_name]))  # it carries the token
        super().__init__(
            name,
            url,
            method=method,
            depends_on=depends_on,
            ttl=ttl,
            client=client,
            config=config,
            headers=headers,
            json=json,
            data=data,
            auth_from=auth_from,
            token_type=token_type,
            clock=clock,
            client_id=client_id,
            client_auth=client_auth,
            dpop=dpop,
        )

    @property
    def header_name(self) -> str:
        """The response header the token is read from."""
        return self._header_name

    def _extract(self, response: HttpResponse, clock: Clock) -> TokenData:
        value = response.headers.get(self._header_name)
        if not value or not value.strip():
            raise TokenResponseError(
                f"response from {redact_url(self._url)} has no {self._header_name} header",
                response=response,
            )
        return self._token(value.strip(), clock)


class BodyTokenFetcher(_HttpTokenFetcher):
    """A step whose token is at a dotted path in the JSON body, such as ``data.auth.token``.

    ``expires_in_path`` (seconds, number or numeric string) sets the expiry when the body
    has it; ``refresh_token_path`` is read only when given. A path segment that is a number
    indexes a JSON array (``items.0.token``).
    """

    #: RFC 6749's field name, so a plain OAuth token response needs no paths at all.
    DEFAULT_TOKEN_PATH: Final = "access_token"  # noqa: S105 - a field name, not a secret
    #: RFC 6749's field name too; a body without it leaves the expiry to ``ttl``.
    DEFAULT_EXPIRES_IN_PATH: Final = "expires_in"

    def __init__(
        self,
        name: str,
        url: str,
        *,
        token_path: str = DEFAULT_TOKEN_PATH,
        expires_in_path: str | None = DEFAULT_EXPIRES_IN_PATH,
        refresh_token_path: str | None = None,
        method: str = "POST",
        depends_on: Iterable[str] = (),
        ttl: float | None = None,
        client: HttpClient | None = None,
        config: HttpClientConfig | None = None,
        headers: HeadersArg = None,
        json: BodyArg = None,
        data: BodyArg = None,
        auth_from: str | None = None,
        token_type: str = "Bearer",  # noqa: S107 - a scheme name, not a secret
        clock: Clock | None = None,
        client_id: str | None = None,
        client_auth: ClientAuthMethod | None = None,
        dpop: DPoPKey | None = None,
    ) -> None:
        self._token_path = _split_path(token_path, "token_path")
        self._expires_in_path = (
            None if expires_in_path is None else _split_path(expires_in_path, "expires_in_path")
        )
        self._refresh_path = (
            None
            if refresh_token_path is None
            else _split_path(refresh_token_path, "refresh_token_path")
        )
        super().__init__(
            name,
            url,
            method=method,
            depends_on=depends_on,
            ttl=ttl,
            client=client,
            config=config,
            headers=headers,
            json=json,
            data=data,
            auth_from=auth_from,
            token_type=token_type,
            clock=clock,
            client_id=client_id,
            client_auth=client_auth,
            dpop=dpop,
        )

    def _extract(self, response: HttpResponse, clock: Clock) -> TokenData:
        where = redact_url(self._url)
        try:
            body = response.json()
        except ResponseDecodeError as exc:
            raise TokenResponseError(
                f"response from {where} is not JSON", response=response
            ) from exc
        found, token = _lookup(body, self._token_path)
        if not found or not isinstance(token, str) or not token:
            raise TokenResponseError(
                f"response from {where} has no token string at {'.'.join(self._token_path)!r}",
                response=response,
            )
        expires_in = None
        if self._expires_in_path is not None:
            expires_in = _lookup(body, self._expires_in_path)[1]
        refresh_token: str | None = None
        if self._refresh_path is not None:
            found, value = _lookup(body, self._refresh_path)
            if found and isinstance(value, str) and value:
                refresh_token = value
            else:
                raise TokenResponseError(
                    f"response from {where} has no refresh token string at "
                    f"{'.'.join(self._refresh_path)!r}",
                    response=response,
                )
        return self._token(token, clock, expires_in=expires_in, refresh_token=refresh_token)


def _fixed_secrets(headers: HeadersArg, json: BodyArg, data: BodyArg) -> Secrets:
    """The values of secret-named fixed headers and body fields (callables are asked
    per fetch: what they return is redacted by name, and tokens are declared anyway)."""
    values: list[str] = []
    if isinstance(headers, Mapping):
        values += [v for k, v in headers.items() if isinstance(k, str) and is_secret_header(k)]
    for body in (json, data):
        values += _secret_fields(body, 0)
    return Secrets.of(values=[v for v in values if isinstance(v, str)])


def _sent_secrets(
    context: FetchContext, headers: Mapping[str, str], json: BodyArg, data: BodyArg
) -> list[str]:
    """Every secret one request carried, to scrub from the server text we quote: the earlier
    steps' tokens, secret-named header values and secret-named body fields."""
    found = [v for k, v in headers.items() if is_secret_header(k)]
    for token in context.tokens.values():
        found += [token.access_token, token.authorization_header]
        found += [token.refresh_token] if token.refresh_token else []
    for body in (json, data):
        found += _secret_fields(body, 0)
    return found


def _secret_fields(body: object, depth: int) -> list[str]:
    if depth > 8:  # a fixed body is shallow; deeper is not worth walking
        return []
    found: list[str] = []
    if isinstance(body, Mapping):
        for key, value in body.items():
            if isinstance(key, str) and is_secret_field(key) and isinstance(value, str):
                found.append(value)
            else:
                found += _secret_fields(value, depth + 1)
    elif isinstance(body, list | tuple):
        for item in body:
            found += _secret_fields(item, depth + 1)
    return found


def _split_path(path: object, what: str) -> tuple[str, ...]:
    if not isinstance(path, str) or not path or any(not part for part in path.split(".")):
        raise ConfigurationError(
            f"{what} must be a dotted path like 'data.token', got {shown(path)}"
        )
    return tuple(path.split("."))


def _lookup(body: object, path: tuple[str, ...]) -> tuple[bool, object]:
    """``(True, value)`` at ``path`` in a parsed JSON body, or ``(False, None)``."""
    node = body
    for part in path:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def _transient_error(exc: RequestError) -> bool:
    """Whether a request that got no usable answer may succeed if tried again later."""
    response = exc.response
    if response is not None:
        return transient_status(response.status_code)
    return isinstance(exc, TransportError | MaxRetryException | CircuitOpenError)


def _valid_client_auth(
    name: str,
    client_auth: object,
    client_id: object,
    *,
    json: BodyArg,
    data: BodyArg,
    client: HttpClient | None,
    config: HttpClientConfig | None,
) -> ClientAuthMethod | None:
    if client_auth is None:
        if client_id is not None:
            raise ConfigurationError(f"step {name!r}: client_id is sent by a client_auth")
        return None
    if not isinstance(client_auth, ClientAuthMethod):
        raise ConfigurationError(
            f"client_auth of step {name!r} must be a ClientAuthMethod, "
            f"got {type(client_auth).__name__}"
        )
    text(f"client_id of step {name!r}", client_id)
    if client_auth.uses_form and json is not None:
        raise ConfigurationError(
            f"step {name!r}: {type(client_auth).__name__} sends form fields; use data=, not json="
        )
    if client_auth.needs_client_cert:
        settings = config or (client.config if client is not None else None)
        if settings is None or settings.client_cert is None:
            raise ConfigurationError(
                f"step {name!r}: {client_auth.method} authenticates with the TLS client "
                "certificate: give config= (or client=) with a client certificate"
            )
    return client_auth

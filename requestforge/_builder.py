"""The fluent ``HttpClientConfigBuilder``: records settings, builds an ``HttpClientConfig``.

Setters never raise; :meth:`HttpClientConfigBuilder.build` validates everything (through
``HttpClientConfig.__post_init__``), so a bad argument is a
:class:`~requestforge.ConfigurationError` at build time, never at a call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from http.cookiejar import CookieJar
from typing import TYPE_CHECKING, Any

from requestforge._auth import (
    ApiKeyAuthHook,
    AuthHookInterface,
    BasicAuthHook,
    BearerTokenAuthHook,
    CompositeAuthHook,
    TokenAuthHook,
    _error_statuses,
)
from requestforge._exceptions import ConfigurationError
from requestforge._hooks import ErrorHookInterface, RequestHookInterface, ResponseHookInterface

if TYPE_CHECKING:
    from requestforge.tokens._manager import TokenManager
from requestforge._retry import (
    ExponentialBackoffRetryStrategy,
    RetryStrategyInterface,
)
from requestforge._validate import (
    existing_path,
)

__all__ = ["HttpClientConfig", "HttpClientConfigBuilder"]


from requestforge._config import (
    AdapterFactory,
    HttpClientConfig,
    _check_type,
    _cookie_names,
    _redacted_headers,
    _redacted_urls,
    _snapshot,
)

__all__ = ["HttpClientConfigBuilder"]


@dataclass(frozen=True, repr=False)
class HttpClientConfigBuilder:
    """Fluent builder for :class:`HttpClientConfig`.

    Every ``with_*`` method returns a new builder, so a half-configured builder can be
    shared and branched safely. Nothing is validated or constructed until :meth:`build`.
    """

    _settings: Mapping[str, Any] = field(default_factory=dict)
    _retry: Callable[[], RetryStrategyInterface] | None = None
    _auth: tuple[Callable[[], AuthHookInterface], ...] = ()
    _request_hooks: tuple[RequestHookInterface, ...] = ()
    _response_hooks: tuple[ResponseHookInterface, ...] = ()
    _error_hooks: tuple[ErrorHookInterface, ...] = ()
    _headers: Mapping[str, str] = field(default_factory=dict)
    _adapters: tuple[tuple[str, AdapterFactory], ...] = ()
    _secret_headers: frozenset[str] = frozenset()
    #: Why a setter's argument cannot be used, raised by build() (setters never raise).
    _rejected: tuple[str, ...] = ()

    def __repr__(self) -> str:
        # What was set so far, with every credential redacted, as the config's repr does.
        shown = []
        for name, value in self._settings.items():
            if name in ("base_url", "proxies"):
                shown.append(f"{name}={_redacted_urls(value)!r}")
            elif name == "cookies":
                shown.append(f"{name}={_cookie_names(value)!r}")
            else:
                shown.append(f"{name}={value!r}")
        if self._headers:
            headers = _redacted_headers(self._headers, self._secret_headers)
            shown.append(f"headers={headers!r}")
        if self._secret_headers:
            shown.append(f"secret_headers={sorted(self._secret_headers)!r}")
        if self._auth:
            shown.append(f"auth_hooks={len(self._auth)}")
        hooks = (
            ("request_hooks", self._request_hooks),
            ("response_hooks", self._response_hooks),
            ("error_hooks", self._error_hooks),
        )
        shown += [f"{name}={value!r}" for name, value in hooks if value]
        if self._retry is not None:
            shown.append("retry=<set>")
        if self._adapters:
            shown.append(f"adapters={[prefix for prefix, _ in self._adapters]!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def _set(self, *, replacing: str = "", **settings: Any) -> HttpClientConfigBuilder:
        kept = {name: value for name, value in self._settings.items() if name != replacing}
        return replace(self, _settings={**kept, **settings})

    def with_base_url(self, base_url: str) -> HttpClientConfigBuilder:
        """Join relative request URLs onto ``base_url``."""
        return self._set(base_url=base_url)

    def with_timeout(self, seconds: float | tuple[float, float]) -> HttpClientConfigBuilder:
        """Default timeout: seconds for connect and read, or a ``(connect, read)`` tuple.

        Each must be finite and > 0; anything else makes :meth:`build` raise
        ``ConfigurationError``. A request's own ``timeout=`` replaces it.
        """
        return self._set(default_timeout=seconds)

    def with_header(
        self, name: str, value: str, *, secret: bool = False
    ) -> HttpClientConfigBuilder:
        """Send this header with every request.

        ``secret=True`` marks a credential whose name does not say so (``X-Partner-Key``):
        it is then hidden everywhere, and not sent on a redirect to another origin, like
        ``Authorization`` or ``X-Client-Secret`` (secret by name) always are.
        """
        try:
            headers = {name: value}
        except TypeError:  # an unhashable name
            problem = f"with_header() takes a string name, got {type(name).__name__}"
            return replace(self, _rejected=(*self._rejected, problem))
        return self._with_headers(headers, secret)

    def with_headers(
        self, headers: Mapping[str, str], *, secret: bool = False
    ) -> HttpClientConfigBuilder:
        """Send these headers with every request; ``secret=True`` as for :meth:`with_header`."""
        return self._with_headers(headers, secret)

    def _with_headers(self, headers: Mapping[str, str], secret: bool) -> HttpClientConfigBuilder:
        if not isinstance(headers, Mapping) or not all(isinstance(n, str) for n in headers):
            problem = (
                "with_headers() takes a mapping of string names to values, got "
                f"{type(headers).__name__}"
            )
            return replace(self, _rejected=(*self._rejected, problem))
        marked = self._secret_headers
        if secret is True and isinstance(headers, Mapping):
            marked = marked | {name.lower() for name in headers if isinstance(name, str)}
        return replace(self, _headers={**self._headers, **headers}, _secret_headers=marked)

    def with_verify_ssl(self, verify: bool | str) -> HttpClientConfigBuilder:
        """Verify TLS certificates (default), skip verification, or use a CA bundle path."""
        return self._set(verify_ssl=verify, replacing="ca_bundle")

    def with_ca_bundle(self, path: str) -> HttpClientConfigBuilder:
        """Verify servers against this CA bundle: a PEM file, or a directory prepared with
        ``c_rehash``, as requests takes them. It sets ``verify_ssl``, so the later of this
        and :meth:`with_verify_ssl` wins; the path must exist when :meth:`build` runs."""
        return self._set(ca_bundle=path, replacing="verify_ssl")

    def with_client_cert(self, cert: str, key: str | None = None) -> HttpClientConfigBuilder:
        """Present this client certificate (mutual TLS): ``cert`` is a PEM file holding the
        certificate, and the private key too unless ``key`` names the key's file. Both must
        exist when :meth:`build` runs; an encrypted key is not supported (nor by requests)."""
        return self._set(client_cert=cert if key is None else (cert, key))

    def with_proxies(self, proxies: Mapping[str, str]) -> HttpClientConfigBuilder:
        """Send requests through proxies, as requests' ``session.proxies``: keys ``"http"``,
        ``"https"`` or ``"all"``, alone or with ``"://host"`` for one host, map to proxy URLs
        (``http``, ``https`` or ``socks5`` ...); ``"no_proxy"`` takes requests' meaning.

        Precedence is exactly requests': for the same key a request's ``proxies=`` wins,
        then the environment's proxy variables (``HTTPS_PROXY`` ...), then these; across
        keys ``"https://host"`` beats ``"https"``, then ``"all://host"``, then ``"all"``,
        wherever each came from. A later call replaces these proxies.
        """
        return self._set(proxies=dict(proxies) if isinstance(proxies, Mapping) else proxies)

    def with_max_redirects(self, max_redirects: int) -> HttpClientConfigBuilder:
        """Follow at most this many redirects (an integer >= 0; requests' default is 30), then
        fail with ``TooManyRedirectsError``: ``session.max_redirects`` of every session."""
        return self._set(max_redirects=max_redirects)

    def with_cookies(
        self, cookies: Mapping[str, str] | CookieJar, *, shared: bool = False
    ) -> HttpClientConfigBuilder:
        """Start every thread's session with these cookies (a mapping's are sent to every
        host, as requests does with a dict; a ``CookieJar``'s keep their domain and path).

        By default each thread's session has its own jar with its own copy, so a cookie a
        response sets is sent back only by that thread, as today. ``shared=True`` gives the
        client one jar instead, used by every thread's session and safe to use from all of
        them at once: a login cookie one thread receives is sent by every thread. Each
        ``HttpClient`` built from the config has its own shared jar (``client.cookies``).
        The cookies are copied now; a later call replaces them and ``shared``.
        """
        return self._set(cookies=_snapshot(cookies), shared_cookies=shared)

    def with_adapter(self, prefix: str, factory: AdapterFactory) -> HttpClientConfigBuilder:
        """Mount ``factory()`` at ``prefix`` on every thread's session, after the default
        adapters, so requests picks the longest matching prefix as always.

        Each thread's session needs an adapter of its own (an adapter holds a connection
        pool), hence a factory: the adapter class, or a lambda that makes one. Adding the
        same prefix again replaces the earlier factory. The client's pool sizes do not apply
        to these adapters; they are the factory's.
        """
        kept = tuple(pair for pair in self._adapters if pair[0] != prefix)
        return replace(self, _adapters=(*kept, (prefix, factory)))

    def with_pool_size(
        self, maxsize: int, *, connections: int | None = None
    ) -> HttpClientConfigBuilder:
        """Per thread: keep ``maxsize`` connections per host, pools for ``connections`` hosts."""
        return self._set(
            pool_maxsize=maxsize, pool_connections=maxsize if connections is None else connections
        )

    def with_retry(self, max_retries: int = 3, **options: Any) -> HttpClientConfigBuilder:
        """Retry with exponential backoff and full jitter (``ExponentialBackoffRetryStrategy``)."""
        return replace(self, _retry=lambda: ExponentialBackoffRetryStrategy(max_retries, **options))

    def with_retry_strategy(self, strategy: RetryStrategyInterface) -> HttpClientConfigBuilder:
        """Use any retry strategy, such as a ``CircuitBreakerRetryStrategy``."""
        return replace(self, _retry=lambda: strategy)

    def with_request_hook(self, hook: RequestHookInterface) -> HttpClientConfigBuilder:
        """Add a request hook; hooks run in the order they were added."""
        return replace(self, _request_hooks=(*self._request_hooks, hook))

    def with_response_hook(self, hook: ResponseHookInterface) -> HttpClientConfigBuilder:
        """Add a response hook; hooks run in the order they were added."""
        return replace(self, _response_hooks=(*self._response_hooks, hook))

    def with_error_hook(self, hook: ErrorHookInterface) -> HttpClientConfigBuilder:
        """Add an error hook; hooks run in the order they were added."""
        return replace(self, _error_hooks=(*self._error_hooks, hook))

    def with_auth_hook(self, hook: AuthHookInterface) -> HttpClientConfigBuilder:
        """Add an auth hook (the slot token auth plugs into); several combine in order."""
        return replace(self, _auth=(*self._auth, lambda: hook))

    def with_bearer_token(self, token: str) -> HttpClientConfigBuilder:
        """Send ``Authorization: Bearer <token>`` with every request."""
        return replace(self, _auth=(*self._auth, lambda: BearerTokenAuthHook(token)))

    def with_api_key(
        self, api_key: str, *, header_name: str = "X-API-Key", query_param: str | None = None
    ) -> HttpClientConfigBuilder:
        """Send an API key in a header (default ``X-API-Key``) or a query parameter."""
        return replace(
            self,
            _auth=(
                *self._auth,
                lambda: ApiKeyAuthHook(api_key, header_name=header_name, query_param=query_param),
            ),
        )

    def with_basic_auth(self, username: str, password: str) -> HttpClientConfigBuilder:
        """Send HTTP Basic credentials with every request."""
        return replace(self, _auth=(*self._auth, lambda: BasicAuthHook(username, password)))

    def with_token_auth(
        self, token_manager: TokenManager, *, refresh_on_statuses: Iterable[int] = ()
    ) -> HttpClientConfigBuilder:
        """Send the token manager's token, refreshing it once when a response refuses it: a
        401, an ``invalid_token`` challenge, or a status in ``refresh_on_statuses``
        (``TokenAuthHook``)."""
        try:
            statuses = _error_statuses(refresh_on_statuses)  # once: it may be an iterator
        except ConfigurationError as problem:
            return replace(self, _rejected=(*self._rejected, problem.message))
        return replace(
            self,
            _auth=(
                *self._auth,
                lambda: TokenAuthHook(token_manager, refresh_on_statuses=statuses),
            ),
        )

    def build(self) -> HttpClientConfig:
        """Construct and validate the config; raises ``ConfigurationError`` on bad input."""
        if self._rejected:
            raise ConfigurationError(self._rejected[0])
        auth_hooks = [make() for make in self._auth]
        for hook in auth_hooks:
            _check_type("auth hook", hook, AuthHookInterface)
        auth: AuthHookInterface | None
        if not auth_hooks:
            auth = None
        elif len(auth_hooks) == 1:
            auth = auth_hooks[0]
        else:
            auth = CompositeAuthHook(*auth_hooks)
        settings: dict[str, Any] = dict(self._settings)
        if "ca_bundle" in settings:
            settings["verify_ssl"] = existing_path("ca_bundle", settings.pop("ca_bundle"))
        if self._adapters:
            settings["adapters"] = self._adapters
        if self._retry is not None:
            try:
                settings["retry_strategy"] = self._retry()
            except ConfigurationError:
                raise
            except TypeError as exc:  # an unknown with_retry() option
                raise ConfigurationError(f"invalid retry option: {exc}") from exc
        return HttpClientConfig(
            default_headers=self._headers,
            secret_headers=self._secret_headers,
            auth_hook=auth,
            request_hooks=self._request_hooks,
            response_hooks=self._response_hooks,
            error_hooks=self._error_hooks,
            **settings,
        )

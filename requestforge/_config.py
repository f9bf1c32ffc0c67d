"""Client configuration: an immutable, validated ``HttpClientConfig`` and its fluent builder.

All validation lives in ``HttpClientConfig.__post_init__``, so a config is valid however it
was made. The builder only records what it is told and constructs everything in
:meth:`HttpClientConfigBuilder.build`, which is where bad input raises
:class:`~requestforge.ConfigurationError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from http.cookiejar import Cookie, CookieJar
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar
from urllib.parse import urlsplit

from requests.adapters import BaseAdapter

from requestforge._auth import (
    ApiKeyAuthHook,
    AuthHookInterface,
    BasicAuthHook,
    BearerTokenAuthHook,
    CompositeAuthHook,
    TokenAuthHook,
)
from requestforge._exceptions import ConfigurationError
from requestforge._hooks import ErrorHookInterface, RequestHookInterface, ResponseHookInterface
from requestforge._redact import REDACTED, redact_url

if TYPE_CHECKING:
    from requestforge._token_manager import TokenManager
from requestforge._retry import (
    ExponentialBackoffRetryStrategy,
    NoRetryStrategy,
    RetryStrategyInterface,
)
from requestforge._validate import (
    copy_cookie,
    count,
    existing_path,
    flag,
    valid_adapter,
    valid_client_cert,
    valid_cookies,
    valid_proxies,
    valid_timeout,
    valid_verify,
)

__all__ = ["HttpClientConfig", "HttpClientConfigBuilder"]

_H = TypeVar("_H")


#: Makes a new transport adapter: each thread's session mounts one of its own.
AdapterFactory = Callable[[], BaseAdapter]


@dataclass(frozen=True, slots=True, repr=False)
class HttpClientConfig:
    """Everything an :class:`~requestforge.HttpClient` needs, validated once, shared freely.

    The connection settings (``verify_ssl``, ``client_cert``, ``proxies``, ``max_redirects``,
    ``cookies``, ``adapters``, the pool sizes) become attributes of every thread's
    ``requests.Session``; see :class:`~requestforge.HttpClient` for sessions from a
    ``session_factory``. The repr never shows a proxy's password or a cookie's value.
    """

    #: requests' own default (``requests.models.DEFAULT_REDIRECT_LIMIT``), so a client that
    #: does not ask for another limit follows redirects exactly as a stock session does.
    DEFAULT_MAX_REDIRECTS: ClassVar[int] = 30

    #: Relative request URLs are joined onto this; ``None`` means only absolute URLs work.
    base_url: str | None = None
    #: Seconds before a connect or read gives up, or a ``(connect, read)`` tuple; always
    #: finite and > 0, so no request hangs forever.
    default_timeout: float | tuple[float, float] = 30.0
    default_headers: Mapping[str, str] = field(default_factory=dict)
    #: ``True``, ``False``, or the path of a CA bundle (a file, or a directory prepared with
    #: ``c_rehash``): ``with_verify_ssl`` or ``with_ca_bundle``.
    verify_ssl: bool | str = True
    retry_strategy: RetryStrategyInterface = field(default_factory=NoRetryStrategy)
    auth_hook: AuthHookInterface | None = None
    request_hooks: tuple[RequestHookInterface, ...] = ()
    response_hooks: tuple[ResponseHookInterface, ...] = ()
    error_hooks: tuple[ErrorHookInterface, ...] = ()
    #: How many hosts each thread's session keeps a connection pool for.
    pool_connections: int = 10
    #: How many connections each of those pools keeps alive.
    pool_maxsize: int = 10
    #: requests' ``proxies`` (read-only): proxy URLs by target (``"http"``, ``"https"``,
    #: ``"all"``, ``"https://api.example.com"``), and ``"no_proxy"``.
    proxies: Mapping[str, str] = field(default_factory=dict)
    #: The client certificate for mutual TLS: one PEM file with certificate and key, or a
    #: ``(certificate, key)`` pair of paths; ``None`` presents none.
    client_cert: str | tuple[str, str] | None = None
    #: Redirects a request follows before it fails with ``TooManyRedirectsError``.
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    #: Cookies every thread's session starts with, as read-only ``Cookie`` objects (each
    #: session gets copies); a mapping or a ``CookieJar`` given here is converted.
    cookies: tuple[Cookie, ...] = ()
    #: One jar for the whole client, shared by every thread's session, instead of a jar
    #: per thread; each ``HttpClient`` makes its own (see ``HttpClient.cookies``).
    shared_cookies: bool = False
    #: ``(prefix, factory)`` pairs: each thread's session mounts ``factory()`` at ``prefix``.
    adapters: tuple[tuple[str, AdapterFactory], ...] = ()

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "base_url", _valid_base_url(self.base_url))
        set_(self, "default_timeout", valid_timeout("timeout", self.default_timeout))
        set_(self, "default_headers", _valid_headers(self.default_headers))
        set_(self, "verify_ssl", valid_verify("verify_ssl", self.verify_ssl))
        _check_type("retry_strategy", self.retry_strategy, RetryStrategyInterface)
        if self.auth_hook is not None:
            _check_type("auth_hook", self.auth_hook, AuthHookInterface)
        set_(
            self,
            "request_hooks",
            _valid_hooks("request_hooks", self.request_hooks, RequestHookInterface),
        )
        set_(
            self,
            "response_hooks",
            _valid_hooks("response_hooks", self.response_hooks, ResponseHookInterface),
        )
        set_(self, "error_hooks", _valid_hooks("error_hooks", self.error_hooks, ErrorHookInterface))
        for name in ("pool_connections", "pool_maxsize"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be a positive integer, got {value!r}")
        set_(self, "proxies", MappingProxyType(valid_proxies("proxies", self.proxies)))
        set_(self, "client_cert", valid_client_cert("client_cert", self.client_cert))
        set_(self, "max_redirects", count("max_redirects", self.max_redirects, minimum=0))
        cookies = valid_cookies("cookies", self.cookies)
        set_(self, "cookies", tuple(copy_cookie(cookie, _FrozenCookie) for cookie in cookies))
        set_(self, "shared_cookies", flag("shared_cookies", self.shared_cookies))
        set_(self, "adapters", _valid_adapters(self.adapters))

    def __repr__(self) -> str:
        # The dataclass repr, with proxy URLs redacted (user:password@proxy is common).
        shown = []
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "proxies":
                value = {key: redact_url(url) for key, url in value.items()}
            shown.append(f"{item.name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"


#: The fields that say how to reach a server (TLS, proxies, pools, redirects, adapters), not
#: what to send it: a token provider given ``config=`` builds its own client from these.
CONNECTION_FIELDS: Final = (
    "verify_ssl",
    "client_cert",
    "proxies",
    "adapters",
    "pool_connections",
    "pool_maxsize",
    "max_redirects",
)


def connection_settings(config: HttpClientConfig) -> dict[str, Any]:
    """``config``'s :data:`CONNECTION_FIELDS`, as keywords for another ``HttpClientConfig``."""
    return {name: getattr(config, name) for name in CONNECTION_FIELDS}


class _FrozenCookie(Cookie):
    """A ``Cookie`` that cannot be changed, equal to another with the same attributes, and
    whose repr hides its value (a cookie is a credential as often as not).

    A config's initial cookies are shared by every client and thread that uses it: each
    session gets mutable copies, never these.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        object.__setattr__(self, "_rest", MappingProxyType(dict(getattr(self, "_rest", {}))))
        object.__setattr__(self, "_frozen", True)

    def __setattr__(self, name: str, value: object) -> None:
        if getattr(self, "_frozen", False):
            raise AttributeError(f"a config's cookie is read-only (cannot set {name!r})")
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"a config's cookie is read-only (cannot delete {name!r})")

    def set_nonstandard_attr(self, name: str, value: str) -> None:
        """Refused: the cookie is read-only."""
        raise AttributeError(f"a config's cookie is read-only (cannot set {name!r})")

    def _key(self) -> tuple[object, ...]:
        rest: Mapping[str, object] = getattr(self, "_rest", {})
        return (
            self.version,
            self.name,
            self.value,
            self.port,
            self.port_specified,
            self.domain,
            self.domain_specified,
            self.domain_initial_dot,
            self.path,
            self.path_specified,
            self.secure,
            self.expires,
            self.discard,
            self.comment,
            self.comment_url,
            tuple(sorted(rest.items(), key=lambda item: item[0])),
            self.rfc2109,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _FrozenCookie):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"Cookie(name={self.name!r}, value={REDACTED!r}, domain={self.domain!r}, "
            f"path={self.path!r})"
        )

    def __str__(self) -> str:
        return f"<Cookie {self.name}={REDACTED} for {self.domain}{self.path}>"


def _snapshot(cookies: object) -> object:
    """A builder's own copy of the cookies it is given, so the caller's later changes to
    them do not change what it builds; anything else is kept for build() to refuse."""
    if isinstance(cookies, CookieJar):
        return [copy_cookie(cookie, Cookie) for cookie in list(cookies)]
    if isinstance(cookies, Mapping):
        return dict(cookies)
    return cookies


def _valid_adapters(adapters: object) -> tuple[tuple[str, AdapterFactory], ...]:
    if isinstance(adapters, str | bytes) or not isinstance(adapters, Iterable):
        raise ConfigurationError(f"adapters must be (prefix, factory) pairs, got {adapters!r}")
    result = []
    for pair in adapters:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise ConfigurationError(f"each adapter must be a (prefix, factory) pair, got {pair!r}")
        result.append(valid_adapter(*pair))
    return tuple(result)


def _valid_base_url(url: object) -> str | None:
    if url is None:
        return None
    if not isinstance(url, str):
        raise ConfigurationError(f"base_url must be a string, got {url!r}")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"base_url must be an absolute http(s) URL with a host, got {url!r}"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(f"base_url must not carry a query or fragment, got {url!r}")
    return url.strip().rstrip("/")


def _valid_headers(headers: object) -> Mapping[str, str]:
    if not isinstance(headers, Mapping):
        raise ConfigurationError(f"default_headers must be a mapping, got {headers!r}")
    for name, value in headers.items():
        if not isinstance(name, str) or not name or not isinstance(value, str):
            raise ConfigurationError(f"header names and values must be strings, got {name!r}")
        if "\n" in value or "\r" in value:
            raise ConfigurationError(f"header {name!r} contains a line break")
    return MappingProxyType(dict(headers))


def _check_type(name: str, value: object, kind: type) -> None:
    if not isinstance(value, kind):
        raise ConfigurationError(
            f"{name} must be a {kind.__name__}, got {type(value).__name__}: {value!r}"
        )


def _valid_hooks(name: str, hooks: Iterable[_H], kind: type[_H]) -> tuple[_H, ...]:
    if isinstance(hooks, str | bytes) or not isinstance(hooks, Iterable):
        raise ConfigurationError(f"{name} must be a sequence of {kind.__name__}, got {hooks!r}")
    result = tuple(hooks)
    for hook in result:
        _check_type(f"each of {name}", hook, kind)
    return result


@dataclass(frozen=True)
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

    def with_header(self, name: str, value: str) -> HttpClientConfigBuilder:
        """Send this header with every request."""
        return replace(self, _headers={**self._headers, name: value})

    def with_headers(self, headers: Mapping[str, str]) -> HttpClientConfigBuilder:
        """Send these headers with every request."""
        return replace(self, _headers={**self._headers, **headers})

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
        return self._set(pool_maxsize=maxsize, pool_connections=connections or maxsize)

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

    def with_token_auth(self, token_manager: TokenManager) -> HttpClientConfigBuilder:
        """Send the token manager's token, refreshing it once on a 401 (``TokenAuthHook``)."""
        return replace(self, _auth=(*self._auth, lambda: TokenAuthHook(token_manager)))

    def build(self) -> HttpClientConfig:
        """Construct and validate the config; raises ``ConfigurationError`` on bad input."""
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
            except TypeError as exc:  # an unknown with_retry() option
                raise ConfigurationError(f"invalid retry option: {exc}") from exc
        return HttpClientConfig(
            default_headers=self._headers,
            auth_hook=auth,
            request_hooks=self._request_hooks,
            response_hooks=self._response_hooks,
            error_hooks=self._error_hooks,
            **settings,
        )

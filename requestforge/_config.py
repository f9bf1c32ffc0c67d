"""Client configuration: an immutable, validated ``HttpClientConfig`` and its fluent builder.

All validation lives in ``HttpClientConfig.__post_init__``, so a config is valid however it
was made. The builder only records what it is told and constructs everything in
:meth:`HttpClientConfigBuilder.build`, which is where bad input raises
:class:`~requestforge.ConfigurationError`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

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

if TYPE_CHECKING:
    from requestforge._token_manager import TokenManager
from requestforge._retry import (
    ExponentialBackoffRetryStrategy,
    NoRetryStrategy,
    RetryStrategyInterface,
)
from requestforge._validate import valid_timeout

__all__ = ["HttpClientConfig", "HttpClientConfigBuilder"]

_H = TypeVar("_H")


@dataclass(frozen=True, slots=True)
class HttpClientConfig:
    """Everything an :class:`~requestforge.HttpClient` needs, validated once, shared freely."""

    #: Relative request URLs are joined onto this; ``None`` means only absolute URLs work.
    base_url: str | None = None
    #: Seconds before a connect or read gives up, or a ``(connect, read)`` tuple; always
    #: finite and > 0, so no request hangs forever.
    default_timeout: float | tuple[float, float] = 30.0
    default_headers: Mapping[str, str] = field(default_factory=dict)
    #: ``True``, ``False``, or the path of a CA bundle.
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

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "base_url", _valid_base_url(self.base_url))
        set_(self, "default_timeout", valid_timeout("timeout", self.default_timeout))
        set_(self, "default_headers", _valid_headers(self.default_headers))
        if not isinstance(self.verify_ssl, bool | str):
            raise ConfigurationError(
                f"verify_ssl must be a bool or a CA bundle path, got {self.verify_ssl!r}"
            )
        if isinstance(self.verify_ssl, str) and not os.path.exists(self.verify_ssl):
            raise ConfigurationError(f"verify_ssl CA bundle not found: {self.verify_ssl!r}")
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

    def _set(self, **settings: Any) -> HttpClientConfigBuilder:
        return replace(self, _settings={**self._settings, **settings})

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
        return self._set(verify_ssl=verify)

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

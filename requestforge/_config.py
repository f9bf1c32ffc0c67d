"""Client configuration: an immutable, validated ``HttpClientConfig`` (the builder is in
``_builder.py``).

All validation lives in ``HttpClientConfig.__post_init__``, so a config is valid however it
was made. The builder only records what it is told and constructs everything in
:meth:`HttpClientConfigBuilder.build`, which is where bad input raises
:class:`~requestforge.ConfigurationError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from http.cookiejar import Cookie, CookieJar
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar
from urllib.parse import urlsplit

from requests.adapters import BaseAdapter

from requestforge._auth import (
    AuthHookInterface,
)
from requestforge._exceptions import ConfigurationError
from requestforge._hooks import ErrorHookInterface, RequestHookInterface, ResponseHookInterface
from requestforge._redact import REDACTED, is_secret_header, redact_headers, redact_url
from requestforge._secrets import Secrets, declare_secrets

if TYPE_CHECKING:
    pass
from requestforge._retry import (
    NoRetryStrategy,
    RetryStrategyInterface,
)
from requestforge._validate import (
    copy_cookie,
    count,
    flag,
    http_url,
    valid_adapter,
    valid_client_cert,
    valid_cookies,
    valid_proxies,
    valid_timeout,
    valid_verify,
)
from requestforge._validate_request import absolute_url, valid_headers

__all__ = ["HttpClientConfig"]

_H = TypeVar("_H")


#: Makes a new transport adapter: each thread's session mounts one of its own.
AdapterFactory = Callable[[], BaseAdapter]


@dataclass(frozen=True, slots=True, repr=False)
class HttpClientConfig:
    """Everything an :class:`~requestforge.HttpClient` needs, validated once, shared freely.

    The connection settings (``verify_ssl``, ``client_cert``, ``proxies``, ``max_redirects``,
    ``cookies``, ``adapters``, the pool sizes) become attributes of every thread's
    ``requests.Session``; see :class:`~requestforge.HttpClient` for sessions from a
    ``session_factory``. The repr never shows a proxy's password, a cookie's value, a
    secret header's value or the base URL's user info.

    ``secret_headers`` names default headers that carry a credential although their names
    do not say so (``X-Partner-Key``); headers whose names do (``Authorization``,
    ``X-Client-Secret``) are secret anyway. The config declares them, with their values
    and whatever its auth hook declares (:attr:`secrets`), when it is built.
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
    #: Lower-case names of default headers to treat as secret beyond the naming rules.
    secret_headers: frozenset[str] = frozenset()

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
            set_(self, name, count(name, getattr(self, name), minimum=1))
        set_(self, "proxies", MappingProxyType(valid_proxies("proxies", self.proxies)))
        set_(self, "client_cert", valid_client_cert("client_cert", self.client_cert))
        set_(self, "max_redirects", count("max_redirects", self.max_redirects, minimum=0))
        cookies = valid_cookies("cookies", self.cookies)
        set_(self, "cookies", tuple(copy_cookie(cookie, _FrozenCookie) for cookie in cookies))
        set_(self, "shared_cookies", flag("shared_cookies", self.shared_cookies))
        set_(self, "adapters", _valid_adapters(self.adapters))
        set_(self, "secret_headers", _valid_secret_headers(self.secret_headers))
        declare_secrets(self.secrets)

    @property
    def secrets(self) -> Secrets:
        """What this config sends that is secret: the secret default headers (by name or
        listed in ``secret_headers``) with their values, and the auth hook's secrets."""
        secret = {
            name: value
            for name, value in self.default_headers.items()
            if name.lower() in self.secret_headers or is_secret_header(name)
        }
        values: list[str | None] = list(secret.values())
        if self.base_url is not None and "@" in self.base_url:
            values.append(urlsplit(self.base_url).password)  # requests sends it as Basic
        declared = Secrets.of(headers=secret, values=values)
        return declared | self.auth_hook.secrets if self.auth_hook is not None else declared

    def __repr__(self) -> str:
        # The dataclass repr, with every credential redacted: proxy and base URLs
        # (user:password@ is common) and secret default headers.
        shown = []
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "proxies":
                value = {key: redact_url(url) for key, url in value.items()}
            elif item.name == "base_url" and value is not None:
                value = redact_url(value)
            elif item.name == "default_headers":
                value = _redacted_headers(value, self.secret_headers)
            elif item.name == "secret_headers":
                value = sorted(value)
            shown.append(f"{item.name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"


def _redacted_headers(headers: Mapping[str, str], secret: frozenset[str]) -> dict[str, str]:
    shown = redact_headers(headers)
    return {k: (REDACTED if k.lower() in secret else v) for k, v in shown.items()}


def _redacted_urls(value: object) -> object:
    """A URL, or a mapping of them, redacted; anything else as it is (build() refuses it)."""
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, Mapping):
        return {k: redact_url(v) if isinstance(v, str) else v for k, v in value.items()}
    return value


def _cookie_names(cookies: object) -> object:
    if isinstance(cookies, Mapping):
        return {name: REDACTED for name in cookies}
    if isinstance(cookies, list):
        return [getattr(cookie, "name", "?") for cookie in cookies]
    return type(cookies).__name__


def _valid_secret_headers(names: object) -> frozenset[str]:
    if isinstance(names, str | bytes) or not isinstance(names, Iterable):
        raise ConfigurationError(
            f"secret_headers must be a collection of header names, got {type(names).__name__}"
        )
    result = []
    for name in names:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(
                f"secret_headers must hold non-empty strings, got {type(name).__name__}"
            )
        result.append(name.lower())
    return frozenset(result)


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
        raise ConfigurationError(
            f"adapters must be (prefix, factory) pairs, got {type(adapters).__name__}"
        )
    result = []
    for pair in adapters:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise ConfigurationError(
                f"each adapter must be a (prefix, factory) pair, got {type(pair).__name__}"
            )
        result.append(valid_adapter(*pair))
    return tuple(result)


def _valid_base_url(url: object) -> str | None:
    if url is None:
        return None
    stripped = http_url("base_url", url)
    parts = urlsplit(stripped)
    if parts.query or parts.fragment:
        # The query itself is not quoted: base URLs with ?api_key=... are why this is refused.
        raise ConfigurationError(
            f"base_url must not carry a query or fragment, got {redact_url(stripped)!r}"
        )
    absolute_url("base_url", stripped, error=ConfigurationError)  # port, host labels
    return stripped.rstrip("/")


def _valid_headers(headers: object) -> Mapping[str, str]:
    # The rules of a request's headers (_validate_request), raised at build time; str
    # values only, as the field's type says.
    valid_headers("default_headers", headers, error=ConfigurationError)
    assert isinstance(headers, Mapping)  # noqa: S101 - valid_headers checked it
    for name, value in headers.items():
        if not isinstance(value, str):
            raise ConfigurationError(
                f"default_headers: the value of header {name!r} must be a string, "
                f"got {type(value).__name__}"
            )
    return MappingProxyType(dict(headers))


def _check_type(name: str, value: object, kind: type) -> None:
    if not isinstance(value, kind):
        raise ConfigurationError(f"{name} must be a {kind.__name__}, got {type(value).__name__}")


def _valid_hooks(name: str, hooks: Iterable[_H], kind: type[_H]) -> tuple[_H, ...]:
    if isinstance(hooks, str | bytes) or not isinstance(hooks, Iterable):
        raise ConfigurationError(
            f"{name} must be a sequence of {kind.__name__}, got {type(hooks).__name__}"
        )
    result = tuple(hooks)
    for hook in result:
        _check_type(f"each of {name}", hook, kind)
    return result

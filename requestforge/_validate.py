"""Argument checks shared by every constructor: each returns the value or raises
:class:`~requestforge.ConfigurationError` naming the argument, so bad input fails early.

A check that also guards a single request takes ``error=``: the client passes
:class:`~requestforge.InvalidRequestError` there, so one rule has one implementation
whether it runs at build time or at call time.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

from requestforge._exceptions import ConfigurationError, RequestForgeError
from requestforge._redact import redact_url

if TYPE_CHECKING:
    from http.cookiejar import Cookie

    from requests.adapters import BaseAdapter

    from requestforge._config import HttpClientConfig

__all__: list[str] = []  # helpers for the package's own modules, not public API

#: RFC 9110 §5.6.2: ``token = 1*tchar``; a method is a token (§9.1).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: How much of a rejected value a message quotes.
_SHOWN = 40


def count(
    name: str,
    value: object,
    *,
    minimum: int,
    error: type[RequestForgeError] = ConfigurationError,
) -> int:
    """An integer (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise error(f"{name} must be an integer >= {minimum}, got {_show(value)}")
    return value


def number(
    name: str,
    value: object,
    *,
    minimum: float = 0.0,
    strict: bool = False,
    error: type[RequestForgeError] = ConfigurationError,
) -> float:
    """A finite int or float (not a bool) >= ``minimum``, or > it when ``strict``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise error(f"{name} must be a number, got {_show(value)}")
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        bound = ">" if strict else ">="
        raise error(f"{name} must be a finite number {bound} {minimum}, got {value!r}")
    return float(value)


def flag(name: str, value: object) -> bool:
    """Exactly True or False."""
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be True or False, got {value!r}")
    return value


def valid_timeout(
    name: str, value: object, *, error: type[RequestForgeError] = ConfigurationError
) -> float | tuple[float, float]:
    """Seconds as requests takes them: one number for connect and read, or a
    ``(connect, read)`` tuple; each finite and > 0 (no "wait forever", no silent default)."""
    if isinstance(value, tuple):
        if len(value) != 2:
            raise error(f"{name} must be a (connect, read) pair, got {_show(value)}")
        return (
            number(f"{name} (connect)", value[0], strict=True, error=error),
            number(f"{name} (read)", value[1], strict=True, error=error),
        )
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise error(
            f"{name} must be a number of seconds or a (connect, read) tuple, got {_show(value)}"
        )
    return number(name, value, strict=True, error=error)


def valid_method(
    name: str, value: object, *, error: type[RequestForgeError] = ConfigurationError
) -> str:
    """An HTTP method: an RFC 9110 token (ASCII letters, digits and ``!#$%&'*+-.^_`|~``),
    upper-cased, as requests sends every method."""
    if not isinstance(value, str) or _TOKEN.fullmatch(value) is None:
        raise error(
            f"{name} must be an RFC 9110 token (ASCII letters, digits, "
            f"!#$%&'*+-.^_`|~), got {_show(value)}"
        )
    return value.upper()


def _show(value: object) -> str:
    """The repr of a rejected value, cut short: a message is not a place for a whole body."""
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[: _SHOWN - 3]}..."


def valid_request_options(
    *,
    cookies: object,
    files: object,
    auth: object,
    allow_redirects: object,
    stream: object,
    proxies: object,
    verify: object,
    cert: object,
    error: type[RequestForgeError],
) -> None:
    """The requests keywords of one request, each of a type requests accepts (see
    :meth:`HttpClient.request <requestforge.HttpClient.request>`); raise ``error`` otherwise,
    so no built-in exception escapes from deep inside requests. Never quotes a secret."""
    from collections.abc import Mapping  # noqa: PLC0415 - keeps this module's imports light
    from http.cookiejar import CookieJar  # noqa: PLC0415

    from requests.auth import AuthBase  # noqa: PLC0415

    if cookies is not None and not isinstance(cookies, CookieJar | Mapping):
        raise error(f"cookies must be a mapping or a CookieJar, got {type(cookies).__name__}")
    if files is not None and not (
        isinstance(files, Mapping)
        or (
            isinstance(files, list | tuple)
            and all(isinstance(f, tuple) and len(f) == 2 and isinstance(f[0], str) for f in files)
        )
    ):
        raise error(
            f"files must be a mapping or a list of (field, file) pairs, got {type(files).__name__}"
        )
    if (
        auth is not None
        and not isinstance(auth, AuthBase)
        and not (
            isinstance(auth, tuple) and len(auth) == 2 and all(isinstance(a, str) for a in auth)
        )
    ):
        raise error(
            "auth must be a (user, password) tuple of str or a requests.auth.AuthBase, "
            f"got {type(auth).__name__}"
        )
    for name, flag in (("allow_redirects", allow_redirects), ("stream", stream)):
        if not isinstance(flag, bool):
            raise error(f"{name} must be True or False, got {_show(flag)}")
    if proxies is not None and not (
        isinstance(proxies, Mapping)
        and all(isinstance(k, str) and isinstance(v, str | None) for k, v in proxies.items())
    ):
        raise error(f"proxies must be a mapping of str to str, got {type(proxies).__name__}")
    if verify is not None and not isinstance(verify, bool | str):
        raise error(f"verify must be True, False or a CA bundle path, got {_show(verify)}")
    if cert is not None and not (
        isinstance(cert, str)
        or (isinstance(cert, tuple) and len(cert) == 2 and all(isinstance(c, str) for c in cert))
    ):
        raise error(f"cert must be a path or a (cert, key) pair of paths, got {_show(cert)}")


# -- connection settings of a client config ---------------------------------------------------

#: The targets a requests ``proxies`` mapping is looked up by (``requests.utils.select_proxy``):
#: the request's scheme or ``all``, each alone or followed by ``://`` and the host name.
_PROXY_TARGETS = frozenset({"http", "https", "all"})
#: Schemes a proxy URL may have: urllib3's HTTP and HTTPS proxies, and SOCKS (with PySocks).
_PROXY_SCHEMES = frozenset({"http", "https", "socks4", "socks4a", "socks5", "socks5h"})
#: What no cookie name or value may contain: control characters would break the ``Cookie``
#: header, and a ``;`` would silently split one cookie into two.
_COOKIE_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f;]")
#: What a cookie name may not contain besides: the ``=`` that ends it, and spaces.
_COOKIE_NAME_FORBIDDEN = re.compile(r"[\s=]")

_C = TypeVar("_C", bound="Cookie")


def existing_path(name: str, value: object, *, what: str = "file or directory") -> str:
    """A path string naming something that exists now (a CA bundle: a file, or a directory
    prepared with ``c_rehash``), so a typo fails at build time, not on the first request."""
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{name} must be a path string, got {_show(value)}")
    if not os.path.exists(value):
        raise ConfigurationError(f"{name} {what} not found: {value!r}")
    return value


def existing_file(name: str, value: object) -> str:
    """A path string naming a file that exists now (a certificate or a key)."""
    path = existing_path(name, value, what="file")
    if not os.path.isfile(path):
        raise ConfigurationError(f"{name} must be a file, {path!r} is not")
    return path


def valid_verify(name: str, value: object) -> bool | str:
    """requests' ``verify``: True, False, or the path of an existing CA bundle."""
    if isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a bool or a CA bundle path, got {value!r}")
    return existing_path(f"{name} CA bundle", value)


def valid_client_cert(name: str, value: object) -> str | tuple[str, str] | None:
    """requests' ``cert``: None, one PEM file holding certificate and key, or a
    ``(certificate, key)`` pair of files; every file must exist."""
    if value is None:
        return None
    if isinstance(value, str):
        return existing_file(name, value)
    if isinstance(value, tuple) and len(value) == 2:
        return (
            existing_file(f"{name} certificate", value[0]),
            existing_file(f"{name} key", value[1]),
        )
    raise ConfigurationError(
        f"{name} must be a PEM path or a (certificate, key) pair of paths, got {_show(value)}"
    )


def valid_proxies(name: str, value: object) -> dict[str, str]:
    """A requests ``proxies`` mapping: ``http``, ``https`` or ``all``, alone or followed by
    ``://`` and a host name, to a proxy URL; ``no_proxy`` to a comma-separated host list.

    A key requests never looks up (``"HTTPS"``, a port after the host) is refused, since
    it would be ignored without a word. Messages never quote a proxy's credentials.
    """
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{name} must be a mapping, got {type(value).__name__}")
    proxies: dict[str, str] = {}
    for key, proxy in value.items():
        if not isinstance(key, str):
            raise ConfigurationError(f"{name} keys must be strings, got {_show(key)}")
        if key == "no_proxy":
            if not isinstance(proxy, str):
                raise ConfigurationError(
                    f"{name}['no_proxy'] must be a comma-separated string of hosts, "
                    f"got {type(proxy).__name__}"
                )
        else:
            _check_proxy_target(name, key)
            _check_proxy_url(f"{name}[{key!r}]", proxy)
        proxies[key] = proxy
    return proxies


def _check_proxy_target(name: str, key: str) -> None:
    target, separator, host = key.partition("://")
    valid = target in _PROXY_TARGETS and (
        not separator
        or (
            bool(host)
            and host == host.lower()
            and not any(c in host for c in "/@?#[] ")
            and host.count(":") != 1  # "host:port": requests matches host names only
        )
    )
    if not valid:
        raise ConfigurationError(
            f"{name} key {key!r} is never looked up: requests matches 'http', 'https' or "
            "'all', alone or followed by '://' and a lower-case host name without a port "
            "('https://api.example.com'), and 'no_proxy'"
        )


def _check_proxy_url(name: str, proxy: object) -> None:
    if not isinstance(proxy, str):
        raise ConfigurationError(f"{name} must be a proxy URL string, got {type(proxy).__name__}")
    try:
        parts = urlsplit(proxy)
        valid = parts.scheme in _PROXY_SCHEMES and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        valid = False
    if not valid:
        raise ConfigurationError(
            f"{name} must be a URL with a scheme ({', '.join(sorted(_PROXY_SCHEMES))}) and a "
            f"host, got {redact_url(proxy)!r}"
        )


def valid_cookies(name: str, value: object) -> list[Cookie]:
    """Cookies from a mapping of names to values (each sent to every host, as requests does
    with a dict given to a session), a ``CookieJar`` or a sequence of ``Cookie``, as new
    ``Cookie`` objects: the caller's jar and cookies are left alone. Messages never quote
    a value."""
    from http.cookiejar import Cookie, CookieJar  # noqa: PLC0415 - keeps this module light

    if isinstance(value, CookieJar) or (
        isinstance(value, tuple | list) and all(isinstance(c, Cookie) for c in value)
    ):
        cookies = [copy_cookie(cookie, Cookie) for cookie in list(value)]
    elif isinstance(value, Mapping):
        cookies = []
        for cookie_name, cookie_value in value.items():
            if not isinstance(cookie_name, str) or not isinstance(cookie_value, str):
                raise ConfigurationError(
                    f"{name} must map names to string values, got {_show(cookie_name)}"
                )
            cookies.append(_cookie_for_every_host(Cookie, cookie_name, cookie_value))
    else:
        raise ConfigurationError(
            f"{name} must be a mapping of names to values or a CookieJar, "
            f"got {type(value).__name__}"
        )
    for cookie in cookies:
        if (
            not isinstance(cookie.name, str)
            or not cookie.name
            or _COOKIE_FORBIDDEN.search(cookie.name)
            or _COOKIE_NAME_FORBIDDEN.search(cookie.name)
        ):
            raise ConfigurationError(
                f"{name}: invalid cookie name {_show(cookie.name)} (empty, or with a space, "
                "'=', ';' or a control character)"
            )
        if cookie.value is not None and (
            not isinstance(cookie.value, str) or _COOKIE_FORBIDDEN.search(cookie.value)
        ):
            raise ConfigurationError(
                f"{name}: the value of cookie {cookie.name!r} is not a string without ';' "
                "and control characters"
            )
    return cookies


def _cookie_for_every_host(kind: type[_C], name: str, value: str) -> _C:
    """What ``requests.cookies.create_cookie`` makes of a dict item: a cookie for every host
    and path, as a dict given to a session gives."""
    return kind(
        version=0,
        name=name,
        value=value,
        port=None,
        port_specified=False,
        domain="",
        domain_specified=False,
        domain_initial_dot=False,
        path="/",
        path_specified=True,
        secure=False,
        expires=None,
        discard=True,
        comment=None,
        comment_url=None,
        rest={},
    )


def copy_cookie(cookie: Cookie, kind: type[_C]) -> _C:
    """A new ``kind`` with ``cookie``'s attributes; the non-standard ones (``HttpOnly``)
    live in a private dict that ``Cookie`` offers no public way to list."""
    rest: dict[str, str] = dict(getattr(cookie, "_rest", None) or {})
    return kind(
        cookie.version,
        cookie.name,
        cookie.value,
        cookie.port,
        cookie.port_specified,
        cookie.domain,
        cookie.domain_specified,
        cookie.domain_initial_dot,
        cookie.path,
        cookie.path_specified,
        cookie.secure,
        cookie.expires,
        cookie.discard,
        cookie.comment,
        cookie.comment_url,
        rest,
        cookie.rfc2109,
    )


def valid_adapter(prefix: object, factory: object) -> tuple[str, Callable[[], BaseAdapter]]:
    """A URL prefix and a callable that makes a new transport adapter for it: each thread's
    session needs an adapter of its own, so an adapter instance itself is refused."""
    from requests.adapters import BaseAdapter  # noqa: PLC0415 - keeps this module light

    if not isinstance(prefix, str) or not prefix:
        raise ConfigurationError(f"adapter prefix must be a non-empty string, got {_show(prefix)}")
    if isinstance(factory, BaseAdapter) or not callable(factory):
        raise ConfigurationError(
            f"the adapter for {prefix!r} must be a callable that returns a new "
            f"requests.adapters.BaseAdapter (each thread's session gets its own), got "
            f"{type(factory).__name__}: pass the class, or a lambda that makes one"
        )
    return prefix, factory


def connection_config(config: object, *, client: object) -> HttpClientConfig | None:
    """``config=`` of a token provider or fetcher, whose own client takes that config's
    connection settings: an ``HttpClientConfig`` or None, and never with a ``client=``,
    which has settings of its own."""
    from requestforge._config import HttpClientConfig  # noqa: PLC0415 - it imports this module

    if config is None:
        return None
    if not isinstance(config, HttpClientConfig):
        raise ConfigurationError(f"config must be an HttpClientConfig, got {type(config).__name__}")
    if client is not None:
        raise ConfigurationError(
            "give client or config, not both: config= sets up the client the provider makes "
            "for itself, and the client= you gave has settings of its own"
        )
    return config

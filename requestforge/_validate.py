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

from requestforge._clock import Clock
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
#: The type :func:`instance` checks for.
_T = TypeVar("_T")


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
    maximum: float = math.inf,
    error: type[RequestForgeError] = ConfigurationError,
) -> float:
    """A finite int or float (not a bool) >= ``minimum``, or > it when ``strict``, and at
    most ``maximum``. An int too large for a float is refused, not an ``OverflowError``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise error(f"{name} must be a number, got {_show(value)}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int beyond the range of a float
        finite = False
    if not finite or value < minimum or (strict and value == minimum) or value > maximum:
        bound = ">" if strict else ">="
        top = f" and <= {maximum:g}" if maximum != math.inf else ""
        raise error(f"{name} must be a finite number {bound} {minimum}{top}, got {_show(value)}")
    return float(value)


def flag(name: str, value: object) -> bool:
    """Exactly True or False."""
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be True or False, got {value!r}")
    return value


def http_url(name: str, value: object) -> str:
    """``value`` as an absolute http(s) URL with a host (surrounding whitespace removed);
    the message never quotes its credentials or query."""
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a string, got {type(value).__name__}")
    url = value.strip()
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        valid = False
    if not valid:
        raise ConfigurationError(
            f"{name} must be an absolute http(s) URL with a host, got {redact_url(value)!r}"
        )
    return url


def text(name: str, value: object, *, error: type[RequestForgeError] = ConfigurationError) -> str:
    """A string with something besides whitespace in it. The message names the type only:
    the value may be a secret."""
    if not isinstance(value, str) or not value.strip():
        kind = "an empty string" if isinstance(value, str) else type(value).__name__
        raise error(f"{name} must be a non-empty string, got {kind}")
    return value


def instance(
    name: str,
    value: object,
    kind: type[_T] | tuple[type[_T], ...],
    *,
    error: type[RequestForgeError] = ConfigurationError,
) -> _T:
    """``value`` if it is a ``kind``; the message names the expected and the given type,
    never the value."""
    if isinstance(value, kind):
        return value
    kinds = kind if isinstance(kind, tuple) else (kind,)
    expected = " or ".join(_article(k.__name__) for k in kinds)
    raise error(f"{name} must be {expected}, got {type(value).__name__}")


def _article(word: str) -> str:
    """``word`` after "a" or "an", as it is read aloud ("an HttpClient")."""
    return f"an {word}" if word[:1] in "AEIOU" or word.startswith("Http") else f"a {word}"


def valid_callable(name: str, value: object) -> Callable[..., object]:
    """Something to call; the message names its type (a repr may hold a secret)."""
    if not callable(value):
        raise ConfigurationError(f"{name} must be callable, got {type(value).__name__}")
    return value


def valid_clock(name: str, value: object) -> Clock | None:
    """None (the default clock, read at call time) or a ``Clock``."""
    if value is not None and not isinstance(value, Clock):
        raise ConfigurationError(
            f"{name} must be a Clock (now/monotonic/sleep), got {type(value).__name__}"
        )
    return value


def valid_token_type(
    name: str, value: object, *, error: type[RequestForgeError] = ConfigurationError
) -> str:
    """An authentication scheme (``Bearer``, ``DPoP``...): an RFC 9110 token, as the
    ``Authorization`` header's auth-scheme must be. A space, CR/LF or other control character
    would split or forge the header on every request the token is used for."""
    if not isinstance(value, str) or _TOKEN.fullmatch(value) is None:
        raise error(
            f"{name} must be a non-empty string that is an RFC 9110 token (ASCII letters, "
            f"digits, !#$%&'*+-.^_`|~; no space or control character), got {_kind(value)}"
        )
    return value


#: RFC 6749 appendix A: access-token and refresh-token are ``1*VSCHAR`` (``%x20-7E``)...
_VSCHARS = re.compile(r"[\x20-\x7e]+")
#: ...and an access token is sent as one word of a header, so it has no space either. This is
#: wider than RFC 6750's b64token on purpose: real opaque tokens carry ``|`` or ``!`` too.
_VISIBLE = re.compile(r"[\x21-\x7e]+")


def token_text(
    name: str,
    value: object,
    *,
    space: bool = False,
    error: type[RequestForgeError] = ConfigurationError,
) -> str:
    """A token as RFC 6749 spells it: printable ASCII, with spaces only if ``space``. The
    message says what is wrong and never quotes the value, which is a secret."""
    if not isinstance(value, str) or not value:
        raise error(f"{name} must be a non-empty string, got {_kind(value)}")
    if (_VSCHARS if space else _VISIBLE).fullmatch(value) is None:
        found = "control or non-ASCII" if space else "whitespace, control or non-ASCII"
        allowed = "printable ASCII" if space else "printable ASCII without spaces"
        raise error(f"{name} contains {found} characters; RFC 6749 allows {allowed}")
    return value


def _kind(value: object) -> str:
    """What a rejected value is, for a message that must not quote it."""
    if isinstance(value, str):
        return "an empty string" if not value else f"a string of {len(value)} characters"
    return type(value).__name__


def valid_timeout(
    name: str, value: object, *, error: type[RequestForgeError] = ConfigurationError
) -> float | tuple[float, float]:
    """Seconds as requests takes them: one number for connect and read, or a
    ``(connect, read)`` tuple; each finite, > 0 (no "wait forever", no silent default) and at
    most :data:`MAX_TIMEOUT` (a larger one overflows the platform's socket timers)."""
    if isinstance(value, tuple):
        if len(value) != 2:
            raise error(f"{name} must be a (connect, read) pair, got {_show(value)}")
        return (
            number(f"{name} (connect)", value[0], strict=True, maximum=MAX_TIMEOUT, error=error),
            number(f"{name} (read)", value[1], strict=True, maximum=MAX_TIMEOUT, error=error),
        )
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise error(
            f"{name} must be a number of seconds or a (connect, read) tuple, got {_show(value)}"
        )
    return number(name, value, strict=True, maximum=MAX_TIMEOUT, error=error)


#: The longest timeout, in seconds (about 11.6 days): ``socket.settimeout`` overflows near
#: 1e10 s, and a deadline adds connect and read together, so the bound keeps a wide margin.
MAX_TIMEOUT = 1_000_000.0


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
    """The repr of a rejected value, cut short: a message is not a place for a whole body.
    A value whose repr fails (10,000-deep nesting, a broken ``__repr__``) shows its type."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a message must not fail: RecursionError, or anything
        return f"a {type(value).__name__}"
    return text if len(text) <= _SHOWN else f"{text[: _SHOWN - 3]}..."


def shown(value: object) -> str:
    """:func:`_show` for the other modules: a rejected (non-secret) value, short and safe."""
    return _show(value)


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

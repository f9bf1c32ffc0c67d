"""Argument checks shared by every constructor: each returns the value or raises
:class:`~requestforge.ConfigurationError` naming the argument, so bad input fails early.

A check that also guards a single request takes ``error=``: the client passes
:class:`~requestforge.InvalidRequestError` there, so one rule has one implementation
whether it runs at build time or at call time.
"""

from __future__ import annotations

import math
import re

from requestforge._exceptions import ConfigurationError, RequestForgeError

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
    if not isinstance(allow_redirects, bool):
        raise error(f"allow_redirects must be True or False, got {_show(allow_redirects)}")
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

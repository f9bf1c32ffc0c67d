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

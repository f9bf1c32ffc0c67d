"""Argument checks shared by every constructor: each returns the value or raises
:class:`~requestforge.ConfigurationError` naming the argument, so bad input fails early."""

from __future__ import annotations

import math

from requestforge._exceptions import ConfigurationError

__all__: list[str] = []  # helpers for the package's own modules, not public API


def count(name: str, value: object, *, minimum: int) -> int:
    """An integer (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def number(name: str, value: object, *, minimum: float = 0.0, strict: bool = False) -> float:
    """A finite int or float (not a bool) >= ``minimum``, or > it when ``strict``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        bound = ">" if strict else ">="
        raise ConfigurationError(f"{name} must be a finite number {bound} {minimum}, got {value!r}")
    return float(value)


def flag(name: str, value: object) -> bool:
    """Exactly True or False."""
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be True or False, got {value!r}")
    return value

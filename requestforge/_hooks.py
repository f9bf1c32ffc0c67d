"""Hooks: small objects the client calls at fixed points of a request.

Request hooks run once per logical request, in order, before the auth hook; response
hooks run once on the final response; error hooks see every failed attempt (transport
errors, and retryable statuses as :class:`~requestforge.HttpStatusError`). Hooks are shared
by every thread that uses the client, so they keep per-request state in
``context.metadata``, never on ``self``.

A hook that raises anything but a :class:`~requestforge.RequestForgeError`, or returns
something other than the request (or response) it must return -- ``None`` when it forgot
its ``return`` -- fails the call with :class:`~requestforge.HookError`, which names the hook
and chains its exception.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TypeVar
from uuid import uuid4

from requestforge._clock import get_default_clock
from requestforge._exceptions import ConfigurationError, InvalidRequestError
from requestforge._models import HttpRequest, RequestContext, _pairs
from requestforge._redact import REDACTED, redact_headers, redact_pairs, redact_text, redact_url
from requestforge._response import HttpResponse
from requestforge._retry import parse_retry_after
from requestforge._validate import _show, count
from requestforge._validate_request import header_name_problem, header_value_problem

__all__ = [
    "AuthorizationHook",
    "CorrelationIdHook",
    "ErrorHookInterface",
    "LoggingErrorHook",
    "LoggingRequestHook",
    "LoggingResponseHook",
    "RateLimitInfo",
    "RateLimitResponseHook",
    "RequestHookInterface",
    "ResponseHookInterface",
]

_T = TypeVar("_T")


class RequestHookInterface(ABC):
    """Sees (and may replace) the request before it is sent."""

    @abstractmethod
    def before_request(self, request: HttpRequest, context: RequestContext) -> HttpRequest:
        """Return the request to send: ``request`` itself or a modified copy."""


class ResponseHookInterface(ABC):
    """Sees (and may replace) the final response before the caller gets it."""

    @abstractmethod
    def after_response(self, response: HttpResponse, context: RequestContext) -> HttpResponse:
        """Return the response to hand on: ``response`` itself or a replacement."""


class ErrorHookInterface(ABC):
    """Observes every failed attempt; it cannot swallow the error."""

    @abstractmethod
    def on_error(self, error: BaseException, context: RequestContext) -> None:
        """Called with the error of a failed attempt (``context.attempt`` says which)."""


# -- built-in hooks ----------------------------------------------------------------------

_DEFAULT_LOGGER_NAME = "requestforge"

_URL_IN_TEXT = re.compile(r"https?://[^\s'\"<>]+", re.IGNORECASE)


def _valid_header_name(name: object, what: str) -> str:
    """Return ``name`` if it is a legal header name (an RFC 9110 token); raise
    ``ConfigurationError`` otherwise."""
    if header_name_problem(name) is not None:
        raise ConfigurationError(
            f"{what} must be a non-empty HTTP header name (an RFC 9110 token), got {_show(name)}"
        )
    assert isinstance(name, str)  # noqa: S101 - header_name_problem checked it
    return name


def _header_value_problem(value: object) -> str | None:
    """Why ``value`` cannot be the value of a header a hook sets (a credential, an id), or
    None: a non-empty string by the rules of any header value. Never quotes the value."""
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if not value.strip():
        return "must not be empty"
    return header_value_problem(value)


def _valid_logger(logger: object) -> logging.Logger:
    if logger is None:
        return logging.getLogger(_DEFAULT_LOGGER_NAME)
    if not isinstance(logger, logging.Logger):
        raise ConfigurationError(f"logger must be a logging.Logger, got {type(logger).__name__}")
    return logger


def _valid_level(level: object) -> int:
    return count("level (a logging level such as logging.INFO)", level, minimum=1)


class _LoggingHook:
    """Holds the (immutable) logger and level of a logging hook."""

    def __init__(self, logger: logging.Logger | None, level: int) -> None:
        self._logger = _valid_logger(logger)
        self._level = _valid_level(level)

    @property
    def logger(self) -> logging.Logger:
        """The logger messages go to."""
        return self._logger

    @property
    def level(self) -> int:
        """The level messages are logged at."""
        return self._level

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(logger={self._logger.name!r}, "
            f"level={logging.getLevelName(self._level)!r})"
        )


class LoggingRequestHook(_LoggingHook, RequestHookInterface):
    """Logs each outgoing request: method, URL and headers, with every secret redacted.

    It runs with the other request hooks, before the auth hook, so it logs the request as
    the caller built it. The body is never logged. When the level is disabled it costs one
    ``isEnabledFor`` check.
    """

    def __init__(self, *, logger: logging.Logger | None = None, level: int = logging.DEBUG) -> None:
        super().__init__(logger, level)

    def before_request(self, request: HttpRequest, context: RequestContext) -> HttpRequest:
        """Log ``request`` (redacted) and return it unchanged."""
        if self._logger.isEnabledFor(self._level):
            params = dict(redact_pairs(_pairs(request.params))) if request.params else {}
            self._logger.log(
                self._level,
                "HTTP request %s %s params=%s headers=%s",
                request.method.value,
                redact_url(request.url),
                params,
                redact_headers(request.headers),
            )
        return request


def _new_correlation_id() -> str:
    """The default correlation id: 32 random hex digits (a UUID4 without dashes)."""
    return uuid4().hex


class CorrelationIdHook(RequestHookInterface):
    """Gives each logical request a correlation id header, keeping one the caller already set.

    The id is stored in ``context.metadata["correlation_id"]``. Request hooks run once per
    logical request, so every retry of a request carries the same id.
    """

    def __init__(
        self,
        header_name: str = "X-Correlation-ID",
        id_factory: Callable[[], str] = _new_correlation_id,
    ) -> None:
        self._header_name = _valid_header_name(header_name, "header_name")
        if not callable(id_factory):
            raise ConfigurationError(f"id_factory must be callable, got {id_factory!r}")
        self._id_factory = id_factory
        # Our own ids are hex digits, always a valid header value: only a caller's are checked.
        self._check_ids = id_factory is not _new_correlation_id

    @property
    def header_name(self) -> str:
        """The header that carries the id."""
        return self._header_name

    def before_request(self, request: HttpRequest, context: RequestContext) -> HttpRequest:
        """Return ``request`` with the id header (a copy, unless it already had one)."""
        existing = request.header(self._header_name)
        if existing is not None and existing.strip():
            context.metadata["correlation_id"] = existing
            return request
        correlation_id = self._id_factory()
        problem = _header_value_problem(correlation_id) if self._check_ids else None
        if problem is not None:
            raise InvalidRequestError(f"id_factory returned an invalid correlation id: {problem}")
        context.metadata["correlation_id"] = correlation_id
        return request.with_headers({self._header_name: correlation_id})

    def __repr__(self) -> str:
        return f"CorrelationIdHook(header_name={self._header_name!r})"


class AuthorizationHook(RequestHookInterface):
    """Sets the ``Authorization`` header from a fixed value or a callable asked per request.

    The callable is called once per logical request (request hooks do not run again on a
    retry); for credentials that must be fresh on every attempt, write an
    :class:`~requestforge.AuthHookInterface` instead. A header the caller set is replaced.
    The value never appears in ``repr`` or in error messages.
    """

    def __init__(self, authorization: str | Callable[[], str]) -> None:
        if isinstance(authorization, str):
            problem = _header_value_problem(authorization)
            if problem is not None:
                raise ConfigurationError(f"authorization {problem}")
        elif not callable(authorization):
            raise ConfigurationError(
                "authorization must be a string or a callable returning one, "
                f"got {type(authorization).__name__}"
            )
        self._authorization = authorization

    def before_request(self, request: HttpRequest, context: RequestContext) -> HttpRequest:
        """Return a copy of ``request`` carrying the ``Authorization`` header."""
        value = self._authorization
        if not isinstance(value, str):
            value = value()
            problem = _header_value_problem(value)
            if problem is not None:
                raise InvalidRequestError(f"the authorization callable's result {problem}")
        return request.with_headers({"Authorization": value})

    def __repr__(self) -> str:
        shown = repr(REDACTED) if isinstance(self._authorization, str) else "<callable>"
        return f"AuthorizationHook(authorization={shown})"


class LoggingResponseHook(_LoggingHook, ResponseHookInterface):
    """Logs each final response: status, method, redacted URL and elapsed milliseconds.

    The URL is redacted by name and by knowledge: a query parameter an auth hook declared
    (``?subscription-key=``) is hidden whatever it is called.
    """

    def __init__(self, *, logger: logging.Logger | None = None, level: int = logging.INFO) -> None:
        super().__init__(logger, level)

    def after_response(self, response: HttpResponse, context: RequestContext) -> HttpResponse:
        """Log ``response`` and return it unchanged."""
        if self._logger.isEnabledFor(self._level):
            request = response.request if response.request is not None else context.request
            self._logger.log(
                self._level,
                "HTTP response %d %s %s (%.1f ms, %d attempt(s))",
                response.status_code,
                request.method.value,
                redact_url(response.url or request.url),
                response.elapsed_ms,
                context.attempt + 1,
            )
        return response


_NUMBER = re.compile(r"\d{1,18}(?:\.\d{1,9})?", re.ASCII)
_INTEGER = re.compile(r"\d{1,18}", re.ASCII)
#: A reset value above this is an epoch timestamp (2001-09-09), not a number of seconds.
_EPOCH_THRESHOLD = 1e9
#: Header prefixes in the order they are consulted: the IETF draft first, then the de facto.
_RATE_LIMIT_PREFIXES = ("ratelimit-", "x-ratelimit-", "x-rate-limit-")


def _first_item(value: object) -> str | None:
    """The first list member of a header value, without parameters (``10, 10;w=1`` -> ``10``)."""
    if not isinstance(value, str):
        return None
    return value.split(",", 1)[0].split(";", 1)[0].strip()


def _parse_int(value: object) -> int | None:
    item = _first_item(value)
    return int(item) if item is not None and _INTEGER.fullmatch(item) else None


def _parse_number(value: object) -> float | None:
    item = _first_item(value)
    return float(item) if item is not None and _NUMBER.fullmatch(item) else None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _parse_reset(value: object, now: datetime) -> float | None:
    """Seconds until the window resets, from delta seconds or an epoch timestamp."""
    number = _parse_number(value)
    if number is None:
        return None
    if number > _EPOCH_THRESHOLD:
        return max(0.0, number - now.timestamp())
    return number


def _may_carry_rate_limit(headers: Mapping[str, str]) -> bool:
    """Whether any header name mentions a rate limit or Retry-After: one scan of all the
    names at C speed, instead of lower-casing each into a new dict on every response."""
    try:
        names = "\n".join(headers).lower()
    except TypeError:  # a name that is not a string: let the careful path decide
        return True
    return "rate" in names or "retry-after" in names


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """What a response said about the caller's rate limit; a field is None when not sent.

    ``reset_after_seconds`` is the time until the window resets (an epoch-timestamp header
    is converted relative to ``now``); ``retry_after_seconds`` comes from ``Retry-After``.
    """

    limit: int | None = None
    remaining: int | None = None
    reset_after_seconds: float | None = None
    retry_after_seconds: float | None = None

    @classmethod
    def from_headers(
        cls, headers: Mapping[str, str], now: datetime | None = None
    ) -> RateLimitInfo | None:
        """Parse the common rate-limit headers; None when none of them carries a usable value.

        Understands ``RateLimit-*`` (IETF draft), ``X-RateLimit-*`` and ``X-Rate-Limit-*``
        (``-Limit``, ``-Remaining``, ``-Reset``; the first family that has a field wins) and
        ``Retry-After`` (seconds or an HTTP date). A reset above 1e9 is read as an epoch
        timestamp. ``now`` defaults to the library clock. Malformed values are ignored; this
        never raises.
        """
        if not _may_carry_rate_limit(headers):
            return None  # the common case: nothing to parse
        try:
            lowered = {str(k).lower(): v for k, v in headers.items()}
        except (AttributeError, TypeError):
            return None
        moment = _aware(now if now is not None else get_default_clock().now())

        def first(suffix: str, parse: Callable[[object], _T | None]) -> _T | None:
            for prefix in _RATE_LIMIT_PREFIXES:
                parsed = parse(lowered.get(prefix + suffix))
                if parsed is not None:
                    return parsed
            return None

        retry_after = lowered.get("retry-after")
        info = cls(
            limit=first("limit", _parse_int),
            remaining=first("remaining", _parse_int),
            reset_after_seconds=first("reset", lambda v: _parse_reset(v, moment)),
            retry_after_seconds=parse_retry_after(retry_after, moment)
            if isinstance(retry_after, str)
            else None,
        )
        return None if info == cls() else info


class RateLimitResponseHook(ResponseHookInterface):
    """Reads rate-limit headers into ``context.metadata["rate_limit"]`` and reports them.

    When a response carries rate-limit headers it stores the :class:`RateLimitInfo`, logs a
    warning if ``remaining <= warn_below`` (a negative ``warn_below`` never warns), then
    calls ``on_rate_limit(info, response)``. An exception from the callback reaches the
    caller as a :class:`~requestforge.HookError` naming this hook (a ``RequestForgeError``
    as itself), as from any hook.
    """

    def __init__(
        self,
        on_rate_limit: Callable[[RateLimitInfo, HttpResponse], None] | None = None,
        *,
        logger: logging.Logger | None = None,
        level: int = logging.WARNING,
        warn_below: int = 0,
    ) -> None:
        if on_rate_limit is not None and not callable(on_rate_limit):
            raise ConfigurationError(f"on_rate_limit must be callable, got {on_rate_limit!r}")
        if isinstance(warn_below, bool) or not isinstance(warn_below, int):
            raise ConfigurationError(f"warn_below must be an integer, got {_show(warn_below)}")
        self._on_rate_limit = on_rate_limit
        self._logger = _valid_logger(logger)
        self._level = _valid_level(level)
        self._warn_below = warn_below

    def after_response(self, response: HttpResponse, context: RequestContext) -> HttpResponse:
        """Record and report the response's rate-limit headers; return it unchanged."""
        info = RateLimitInfo.from_headers(response.headers)  # reads the clock only if needed
        if info is None:
            return response
        context.metadata["rate_limit"] = info
        if (
            info.remaining is not None
            and info.remaining <= self._warn_below
            and self._logger.isEnabledFor(self._level)
        ):
            request = response.request if response.request is not None else context.request
            self._logger.log(
                self._level,
                "rate limit nearly exhausted: %d of %s remaining for %s %s (resets in %s s)",
                info.remaining,
                info.limit if info.limit is not None else "?",
                request.method.value,
                redact_url(response.url or request.url),
                info.reset_after_seconds if info.reset_after_seconds is not None else "?",
            )
        if self._on_rate_limit is not None:
            self._on_rate_limit(info, response)
        return response

    def __repr__(self) -> str:
        return (
            f"RateLimitResponseHook(logger={self._logger.name!r}, "
            f"level={logging.getLevelName(self._level)!r}, warn_below={self._warn_below})"
        )


class LoggingErrorHook(_LoggingHook, ErrorHookInterface):
    """Logs each failed attempt: error type and message, redacted URL and attempt number.

    Request headers are never logged, and neither is the traceback: the message of a
    chained ``requests``/``urllib3`` error can quote the full URL. URLs inside the error
    message are redacted as well.
    """

    def __init__(
        self, *, logger: logging.Logger | None = None, level: int = logging.WARNING
    ) -> None:
        super().__init__(logger, level)

    def on_error(self, error: BaseException, context: RequestContext) -> None:
        """Log ``error`` for the attempt ``context`` describes."""
        if self._logger.isEnabledFor(self._level):
            request = context.request
            self._logger.log(
                self._level,
                "HTTP %s %s failed on attempt %d of %d: %s: %s",
                request.method.value,
                redact_url(request.url),
                context.attempt + 1,
                context.max_retries + 1,
                type(error).__name__,
                redact_text(_URL_IN_TEXT.sub(lambda m: redact_url(m.group()), str(error))),
            )

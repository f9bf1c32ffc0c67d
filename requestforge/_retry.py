"""Retry strategies: whether to try a failed attempt again, and how long to wait first.

The client treats an attempt as failed when it raised a transport error or its status is
in the strategy's ``retry_statuses``. It then calls ``should_retry(context, error)`` (a
status failure arrives as :class:`~requestforge.HttpStatusError` with ``.response``); on
True it increments ``context.attempt`` and sleeps ``get_delay(context)`` on the clock, so
``get_delay`` sees the number of the retry about to happen (1 for the first retry).
When retries run out the client raises :class:`~requestforge.MaxRetryException`.
"""

from __future__ import annotations

import math
import random
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Final

from requestforge._clock import Clock, get_default_clock
from requestforge._exceptions import (
    CircuitOpenError,
    ConfigurationError,
    ConnectError,
    HttpStatusError,
    ReadError,
    RequestTimeoutError,
)
from requestforge._models import HttpMethod, RequestContext
from requestforge._response import HttpResponse, header_value
from requestforge._validate import count, flag, number, valid_clock

__all__ = [
    "DEFAULT_ALLOWED_METHODS",
    "RETRYABLE_STATUSES",
    "RETRY_AFTER_STATUSES",
    "BaseRetryStrategy",
    "CircuitBreakerRetryStrategy",
    "CircuitState",
    "ExponentialBackoffRetryStrategy",
    "NoRetryStrategy",
    "RetryStrategyInterface",
    "SimpleRetryStrategy",
    "parse_retry_after",
]

#: Statuses worth another try: rate limited, or a gateway that could not reach the origin.
#: 500 is left out on purpose: it usually means a bug that the retry will hit again.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})

#: Statuses whose ``Retry-After`` header is honoured (RFC 9110 §10.2.3, RFC 6585 §4).
RETRY_AFTER_STATUSES = frozenset({413, 429, 503})

#: Methods that may be sent twice once the server could have seen them (RFC 9110 §9.2.2).
DEFAULT_ALLOWED_METHODS = frozenset(m for m in HttpMethod if m.is_idempotent)

_DELTA_SECONDS = re.compile(r"[0-9]+")
_system_random = random.SystemRandom()  # no shared state to race on; fine for jitter


class RetryStrategyInterface(ABC):
    """Decides retries. Instances are shared by all threads, so they must be thread-safe."""

    #: Statuses that make an attempt count as failed; empty means "never look at status".
    retry_statuses: frozenset[int] = frozenset()

    @property
    @abstractmethod
    def max_retries(self) -> int:
        """How many retries (not counting the first attempt) at most."""

    @abstractmethod
    def should_retry(self, context: RequestContext, exception: BaseException) -> bool:
        """Whether the failed attempt described by ``context`` and ``exception`` is retried."""

    @abstractmethod
    def get_delay(self, context: RequestContext) -> float:
        """Seconds to wait before retry number ``context.attempt``."""

    def before_attempt(self, context: RequestContext) -> None:  # noqa: B027 - optional hook
        """Called before every attempt; may refuse it by raising ``CircuitOpenError``."""

    def after_attempt(  # noqa: B027 - optional hook
        self,
        context: RequestContext,
        response: HttpResponse | None,
        error: BaseException | None,
    ) -> None:
        """Called after every attempt that ``before_attempt`` allowed, with its outcome."""


def parse_retry_after(value: str, now: datetime) -> float | None:
    """Seconds to wait according to a ``Retry-After`` value, or None if it is not valid.

    RFC 9110 §10.2.3 allows delta-seconds, a non-negative integer (so ``"1.5"`` and ``"-1"``
    are invalid), or an HTTP-date, counted from ``now``; a date in the past means 0.0.
    Naive datetimes are taken as UTC. Never raises.
    """
    text = value.strip() if isinstance(value, str) else ""
    if _DELTA_SECONDS.fullmatch(text):
        try:
            return float(int(text))
        except (ValueError, OverflowError):  # more digits than int() or float() take
            return math.inf
    try:
        when = parsedate_to_datetime(text)
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        if now.tzinfo is None:
            now = now.replace(tzinfo=timezone.utc)
        return max(0.0, (when - now).total_seconds())
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


class NoRetryStrategy(RetryStrategyInterface):
    """Never retry; every status is handed back as it is. The client's default."""

    @property
    def max_retries(self) -> int:
        return 0

    def should_retry(self, context: RequestContext, exception: BaseException) -> bool:
        return False

    def get_delay(self, context: RequestContext) -> float:
        return 0.0

    def __repr__(self) -> str:
        return "NoRetryStrategy()"


class BaseRetryStrategy(RetryStrategyInterface):
    """The rules shared by the retrying strategies; subclasses only choose the backoff.

    A failed attempt is retried while retries remain and the body can be sent again, and:

    * after a :class:`~requestforge.ConnectError`, whatever the method: the server never
      saw the request;
    * after a timeout, a broken connection or a status in ``retry_statuses``, only for
      ``allowed_methods``, since the server may already have acted on the request;
    * never after anything else (an open circuit, too many redirects, your own errors).

    The wait is the server's ``Retry-After``, capped at ``max_retry_after``, when a 413,
    429 or 503 response carries a valid one; otherwise :meth:`_backoff`. The attributes
    are ``Final``: an instance never changes, so every thread can share it.
    """

    #: Three retries ride out a brief outage without hammering a server that is down.
    DEFAULT_MAX_RETRIES = 3
    #: How long a server's ``Retry-After`` may keep a caller waiting, at most.
    DEFAULT_MAX_RETRY_AFTER = 120.0

    def __init__(
        self,
        max_retries: int = DEFAULT_MAX_RETRIES,
        *,
        allowed_methods: Iterable[HttpMethod | str] = DEFAULT_ALLOWED_METHODS,
        retry_statuses: Iterable[int] = RETRYABLE_STATUSES,
        respect_retry_after: bool = True,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        clock: Clock | None = None,
    ) -> None:
        self._max_retries: Final = count("max_retries", max_retries, minimum=0)
        self.allowed_methods: Final = _methods(allowed_methods)
        self.retry_statuses = _statuses(retry_statuses)
        self.respect_retry_after: Final = flag("respect_retry_after", respect_retry_after)
        self.max_retry_after: Final = number("max_retry_after", max_retry_after)
        self.clock: Final = valid_clock("clock", clock)

    @property
    def max_retries(self) -> int:
        return self._max_retries

    def should_retry(self, context: RequestContext, exception: BaseException) -> bool:
        if context.attempt >= self.max_retries or not context.request.has_replayable_body:
            return False
        if isinstance(exception, ConnectError):
            return True
        allowed = context.request.method in self.allowed_methods
        if isinstance(exception, RequestTimeoutError | ReadError):
            return allowed
        if isinstance(exception, HttpStatusError) and exception.response is not None:
            return allowed and exception.response.status_code in self.retry_statuses
        return False

    def get_delay(self, context: RequestContext) -> float:
        response = context.last_response
        if (
            self.respect_retry_after
            and response is not None
            and response.status_code in RETRY_AFTER_STATUSES
        ):
            value = header_value(response.headers, "Retry-After")
            if value is not None:
                wait = parse_retry_after(value, (self.clock or get_default_clock()).now())
                if wait is not None:
                    return min(wait, self.max_retry_after)
        return self._backoff(context.attempt)

    @abstractmethod
    def _backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` when the server did not say."""

    def _own_repr_fields(self) -> dict[str, object]:
        """A subclass's own constructor arguments, shown by ``repr`` after ``max_retries``."""
        return {}

    def __repr__(self) -> str:
        fields = {
            "max_retries": self.max_retries,
            **self._own_repr_fields(),
            "allowed_methods": sorted(m.value for m in self.allowed_methods),
            "retry_statuses": sorted(self.retry_statuses),
            "respect_retry_after": self.respect_retry_after,
            "max_retry_after": self.max_retry_after,
        }
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in fields.items())})"


class SimpleRetryStrategy(BaseRetryStrategy):
    """Wait the same ``delay`` before every retry."""

    #: One second is long enough for a restarting backend and short enough for a user.
    DEFAULT_DELAY = 1.0

    def __init__(
        self,
        max_retries: int = BaseRetryStrategy.DEFAULT_MAX_RETRIES,
        *,
        delay: float = DEFAULT_DELAY,
        allowed_methods: Iterable[HttpMethod | str] = DEFAULT_ALLOWED_METHODS,
        retry_statuses: Iterable[int] = RETRYABLE_STATUSES,
        respect_retry_after: bool = True,
        max_retry_after: float = BaseRetryStrategy.DEFAULT_MAX_RETRY_AFTER,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(
            max_retries,
            allowed_methods=allowed_methods,
            retry_statuses=retry_statuses,
            respect_retry_after=respect_retry_after,
            max_retry_after=max_retry_after,
            clock=clock,
        )
        self.delay: Final = number("delay", delay)

    def _backoff(self, attempt: int) -> float:
        return self.delay

    def _own_repr_fields(self) -> dict[str, object]:
        return {"delay": self.delay}


class ExponentialBackoffRetryStrategy(BaseRetryStrategy):
    """Wait up to ``base_delay * multiplier ** (attempt - 1)``, never more than ``max_delay``.

    With ``jitter`` (the default) the wait is drawn uniformly between 0 and that cap, the
    "full jitter" of the AWS Architecture Blog's *Exponential Backoff and Jitter*: clients
    that failed together do not all come back together. Pass a seeded ``rng`` in tests.
    """

    #: Half a second lets a hiccup pass without making the first retry feel slow.
    DEFAULT_BASE_DELAY = 0.5
    #: Beyond half a minute a caller is better served by an error than by more waiting.
    DEFAULT_MAX_DELAY = 30.0
    #: Doubling reaches the cap within a few retries while the first ones stay quick.
    DEFAULT_MULTIPLIER = 2.0

    def __init__(
        self,
        max_retries: int = BaseRetryStrategy.DEFAULT_MAX_RETRIES,
        *,
        base_delay: float = DEFAULT_BASE_DELAY,
        max_delay: float = DEFAULT_MAX_DELAY,
        multiplier: float = DEFAULT_MULTIPLIER,
        jitter: bool = True,
        rng: random.Random | None = None,
        allowed_methods: Iterable[HttpMethod | str] = DEFAULT_ALLOWED_METHODS,
        retry_statuses: Iterable[int] = RETRYABLE_STATUSES,
        respect_retry_after: bool = True,
        max_retry_after: float = BaseRetryStrategy.DEFAULT_MAX_RETRY_AFTER,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(
            max_retries,
            allowed_methods=allowed_methods,
            retry_statuses=retry_statuses,
            respect_retry_after=respect_retry_after,
            max_retry_after=max_retry_after,
            clock=clock,
        )
        self.base_delay: Final = number("base_delay", base_delay, strict=True)
        self.max_delay: Final = number("max_delay", max_delay, minimum=self.base_delay)
        self.multiplier: Final = number("multiplier", multiplier, minimum=1.0)
        self.jitter: Final = flag("jitter", jitter)
        if rng is not None and not isinstance(rng, random.Random):
            raise ConfigurationError(f"rng must be a random.Random, got {rng!r}")
        self._rng: Final = rng if rng is not None else _system_random

    def _backoff(self, attempt: int) -> float:
        try:
            cap = min(self.max_delay, self.base_delay * self.multiplier ** max(0, attempt - 1))
        except OverflowError:
            cap = self.max_delay
        return self._rng.uniform(0.0, cap) if self.jitter else cap

    def _own_repr_fields(self) -> dict[str, object]:
        return {
            "base_delay": self.base_delay,
            "max_delay": self.max_delay,
            "multiplier": self.multiplier,
            "jitter": self.jitter,
        }


class CircuitState(Enum):
    """Where a circuit breaker stands."""

    CLOSED = "closed"  #: requests flow; consecutive failures are counted
    OPEN = "open"  #: requests are refused until ``reset_timeout`` has passed
    HALF_OPEN = "half_open"  #: one probe is in flight; it closes or reopens the circuit


class CircuitBreakerRetryStrategy(RetryStrategyInterface):
    """Stop calling a server that keeps failing, and let one probe find out when it is back.

    After ``failure_threshold`` failed attempts in a row (a transport error, a 5xx, or a
    status in ``retry_statuses``) the circuit opens and attempts are refused with
    :class:`~requestforge.CircuitOpenError`. Once ``reset_timeout`` seconds have passed the
    next attempt goes through alone, as a probe: success closes the circuit, failure opens
    it again. A probe that has not reported back within another ``reset_timeout`` is
    presumed lost, and the next attempt becomes a new probe. Retry decisions, delays and
    the per-attempt hooks are delegated to ``retry`` (an exponential backoff by default).

    One lock guards the state, held only while it changes, never while a request is in flight.
    """

    #: Five failures in a row is a pattern rather than bad luck.
    DEFAULT_FAILURE_THRESHOLD = 5
    #: Thirty seconds gives a restarting server room before the first probe.
    DEFAULT_RESET_TIMEOUT = 30.0

    def __init__(
        self,
        *,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
        reset_timeout: float = DEFAULT_RESET_TIMEOUT,
        retry: RetryStrategyInterface | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.failure_threshold: Final = count("failure_threshold", failure_threshold, minimum=1)
        self.reset_timeout: Final = number("reset_timeout", reset_timeout, strict=True)
        if retry is not None and not isinstance(retry, RetryStrategyInterface):
            raise ConfigurationError(f"retry must be a RetryStrategyInterface, got {retry!r}")
        self.retry: Final = retry if retry is not None else ExponentialBackoffRetryStrategy()
        self.retry_statuses = self.retry.retry_statuses
        self.clock: Final = valid_clock("clock", clock)
        self._probe_key: Final = f"requestforge.circuit_probe.{id(self):x}"
        self._lock: Final = threading.Lock()
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0  # on the monotonic clock
        self._probe_started_at = 0.0
        self._probe_id = 0  # which probe is current; a stale probe's outcome is ignored

    @property
    def max_retries(self) -> int:
        return self.retry.max_retries

    @property
    def state(self) -> CircuitState:
        """The state right now; another thread may change it a moment later."""
        return self._state

    @property
    def failure_count(self) -> int:
        """Failed attempts in a row, counted while the circuit is closed."""
        return self._failures

    def reset(self) -> None:
        """Close the circuit and forget past failures; a probe in flight no longer counts."""
        with self._lock:
            self._state, self._failures = CircuitState.CLOSED, 0
            self._probe_id += 1

    def before_attempt(self, context: RequestContext) -> None:
        now = (self.clock or get_default_clock()).monotonic()
        with self._lock:
            verdict = self._admit(now)
        if isinstance(verdict, str):
            raise CircuitOpenError(verdict, request=context.request)
        if verdict is not None:
            context.metadata[self._probe_key] = verdict
        try:
            self.retry.before_attempt(context)
        except BaseException:
            if verdict is not None:  # hand the probe back so that the next attempt takes it
                context.metadata.pop(self._probe_key, None)
                with self._lock:
                    if self._state is CircuitState.HALF_OPEN and self._probe_id == verdict:
                        self._state = CircuitState.OPEN
            raise

    def _admit(self, now: float) -> int | str | None:
        """Under the lock: None lets the attempt through, an int makes it that probe, a
        string refuses it and says why."""
        if self._state is CircuitState.CLOSED:
            return None
        if self._state is CircuitState.OPEN:
            wait = self.reset_timeout - (now - self._opened_at)
            if wait > 0:
                return f"circuit open; the next probe request is allowed in {wait:.1f}s"
        elif now - self._probe_started_at < self.reset_timeout:
            return "circuit half-open; waiting for the probe request in flight"
        self._state, self._probe_started_at = CircuitState.HALF_OPEN, now
        self._probe_id += 1
        return self._probe_id

    def after_attempt(
        self,
        context: RequestContext,
        response: HttpResponse | None,
        error: BaseException | None,
    ) -> None:
        failed = error is not None or (
            response is not None
            and (response.status_code >= 500 or response.status_code in self.retry_statuses)
        )
        probe = context.metadata.pop(self._probe_key, None)
        now = (self.clock or get_default_clock()).monotonic()
        with self._lock:
            if probe is not None and probe == self._probe_id:
                if failed:
                    self._state, self._opened_at = CircuitState.OPEN, now
                else:
                    self._state, self._failures = CircuitState.CLOSED, 0
            elif self._state is CircuitState.CLOSED:
                self._failures = self._failures + 1 if failed else 0
                if self._failures >= self.failure_threshold:
                    self._state, self._opened_at = CircuitState.OPEN, now
        self.retry.after_attempt(context, response, error)

    def should_retry(self, context: RequestContext, exception: BaseException) -> bool:
        if self._state is not CircuitState.CLOSED:
            return False  # the retry would be refused anyway
        return self.retry.should_retry(context, exception)

    def get_delay(self, context: RequestContext) -> float:
        return self.retry.get_delay(context)

    def __repr__(self) -> str:
        return (
            f"CircuitBreakerRetryStrategy(failure_threshold={self.failure_threshold!r}, "
            f"reset_timeout={self.reset_timeout!r}, retry={self.retry!r}, "
            f"clock={self.clock!r}, state={self._state.value!r})"
        )


# Validation helpers: each returns the checked value or raises ConfigurationError.


def _methods(methods: Iterable[HttpMethod | str]) -> frozenset[HttpMethod]:
    if isinstance(methods, str) or not isinstance(methods, Iterable):
        raise ConfigurationError(f"allowed_methods must be a collection, got {methods!r}")
    checked = set()
    for method in methods:
        try:
            checked.add(HttpMethod(method.upper()))
        except (AttributeError, ValueError):
            raise ConfigurationError(
                f"allowed_methods takes standard methods only (an extension method is "
                f"retried only when its connection never opened), got {method!r}"
            ) from None
    return frozenset(checked)


def _statuses(statuses: Iterable[int]) -> frozenset[int]:
    if isinstance(statuses, str | bytes) or not isinstance(statuses, Iterable):
        raise ConfigurationError(f"retry_statuses must be a collection, got {statuses!r}")
    checked = tuple(statuses)
    for status in checked:
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise ConfigurationError(f"retry_statuses must be 100-599, got {status!r}")
    return frozenset(checked)

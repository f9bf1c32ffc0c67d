"""``FakeTokenProvider``: a token provider whose every call is counted, scriptable and holdable.

Proving single flight needs two things a real token endpoint cannot give: an exact count of
fetches, and a way to hold the leader inside its fetch while the other threads pile up. A
call here goes through five steps, in this order::

    count the call           (wait_until_called sees callers that are still inside)
    hold, in forge_stress    (open until every other worker is done or waiting; a no-op
                              outside a stress round)
    wait ``latency`` seconds (real time: a race window the fake clock cannot shrink)
    block while paused       (pause()/resume(): a deterministic race window)
    raise the scripted error, or return fake-access-<n> (n = the call's number)
"""

from __future__ import annotations

import math
import sys
import threading
import weakref
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, Literal, Protocol

from requestforge._clock import Clock, get_default_clock
from requestforge._exceptions import ConfigurationError
from requestforge.tokens._data import TokenData
from requestforge.tokens._providers import TokenProviderInterface
from requestforge_testing._code import call_site
from requestforge_testing._stress.registry import hold

__all__ = ["FakeTokenProvider", "FakeTokenProviderFactory", "ProviderCall", "live_providers"]

CallKind = Literal["fetch", "refresh"]


@dataclass(frozen=True)
class ProviderCall:
    """One finished ``fetch_token`` or ``refresh_token`` call: who made it and how it ended.

    ``number`` is the call's position (1, 2, ...) across fetches and refreshes, and the ``n``
    in its token's ``fake-access-<n>``. Exactly one of ``token`` and ``error`` is set.
    ``site`` is ``file:line in function`` of the first frame of your code (outside
    requestforge, this plugin, the standard library and installed packages) on the
    caller's stack, or None when there was none.
    """

    kind: CallKind
    number: int
    thread_id: int
    thread_name: str
    token: TokenData | None
    error: BaseException | None
    site: str | None = None


class FakeTokenProvider(TokenProviderInterface):
    """A ``TokenProviderInterface`` for tests: counts calls, issues distinct tokens, fails or
    blocks on demand. Thread-safe; needs no pytest.

    Tokens are ``fake-access-<n>`` (and ``fake-refresh-<n>`` with ``refresh_tokens=True``)
    where ``n`` is the call's number, so a failed call uses up its number. They expire
    ``lifetime`` seconds after they are issued on ``clock`` (the default clock, read at call
    time, so the ``forge_clock`` fixture governs them); ``lifetime=None`` means never.
    """

    #: One hour, the most common access-token lifetime (and long enough never to expire
    #: during a test on the real clock).
    DEFAULT_LIFETIME: Final = 3600.0
    #: A paused call gives up after this many seconds with ``TimeoutError``, so a forgotten
    #: ``resume()`` fails the test instead of hanging the whole run.
    PAUSE_TIMEOUT: Final = 60.0

    def __init__(
        self,
        *,
        lifetime: float | None = DEFAULT_LIFETIME,
        latency: float = 0.0,
        refresh_tokens: bool = False,
        service_name: str = "fake",
        token_type: str = "Bearer",  # noqa: S107 - a scheme name, not a secret
        clock: Clock | None = None,
    ) -> None:
        if lifetime is not None:
            _check_seconds("lifetime", lifetime)
        _check_seconds("latency", latency)
        if not isinstance(refresh_tokens, bool):
            raise ConfigurationError(f"refresh_tokens must be a bool, got {refresh_tokens!r}")
        for name, value in (("service_name", service_name), ("token_type", token_type)):
            if not isinstance(value, str) or not value.strip():
                raise ConfigurationError(f"{name} must be a non-empty string, got {value!r}")
        if clock is not None and not isinstance(clock, Clock):
            raise ConfigurationError(f"clock must be a Clock (now/monotonic/sleep), got {clock!r}")
        self._lifetime = None if lifetime is None else float(lifetime)
        self._latency = float(latency)
        self._refresh_tokens = refresh_tokens
        self._service_name = service_name
        self._token_type = token_type
        self._clock = clock
        self._lock = threading.Lock()
        self._called = threading.Condition(self._lock)
        self._running = threading.Event()
        self._never = threading.Event()  # never set: waiting on it is a plain real-time delay
        self._reset_state()
        with _live_lock:
            _live.add(self)

    def _reset_state(self) -> None:
        self._fetch_count = 0
        self._refresh_count = 0
        self._calls: list[ProviderCall] = []
        self._issued: list[TokenData] = []
        self._threads: list[int] = []
        self._fail_next: deque[BaseException] = deque()
        self._fail_always: BaseException | None = None
        self._running.set()

    # -- TokenProviderInterface -----------------------------------------------------------

    @property
    def service_name(self) -> str:
        """The name given at construction: the manager's default cache key is built from it."""
        return self._service_name

    def fetch_token(self) -> TokenData:
        """Count, wait, maybe block, then fail as scripted or issue a new token."""
        return self._call("fetch")

    def refresh_token(self, current: TokenData) -> TokenData:
        """Like ``fetch_token`` but counted as a refresh; ``current`` must be a TokenData."""
        if not isinstance(current, TokenData):
            raise TypeError(f"current must be a TokenData, got {type(current).__name__}")
        return self._call("refresh")

    # -- scripting ------------------------------------------------------------------------

    def fail_next(self, *errors: BaseException) -> None:
        """Make the next ``len(errors)`` calls raise these exceptions, in order."""
        for error in errors:
            _check_error(error)
        with self._lock:
            self._fail_next.extend(errors)

    def fail_always(self, error: BaseException | None) -> None:
        """Make every call raise ``error`` (after any ``fail_next`` ones) until set to None."""
        if error is not None:
            _check_error(error)
        with self._lock:
            self._fail_always = error

    def pause(self) -> None:
        """Hold every call, once counted, until ``resume()``: the leader stays inside."""
        self._running.clear()

    def resume(self) -> None:
        """Let held and future calls go on."""
        self._running.set()

    @property
    def paused(self) -> bool:
        """True between ``pause()`` and ``resume()``."""
        return not self._running.is_set()

    def wait_until_called(self, n: int = 1, timeout: float = 5.0) -> bool:
        """Block until ``n`` calls have started (finished or not); False on timeout."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an int >= 0, got {n!r}")
        _check_seconds("timeout", timeout, error=ValueError)
        with self._called:
            return self._called.wait_for(lambda: self._count() >= n, timeout=timeout)

    def reset(self) -> None:
        """Counters, records and scripts back to the start; a paused provider is resumed.

        A call still in flight finishes afterwards and is recorded under its old number.
        """
        with self._lock:
            self._reset_state()

    # -- records --------------------------------------------------------------------------

    @property
    def fetch_count(self) -> int:
        """How many ``fetch_token`` calls have started."""
        with self._lock:
            return self._fetch_count

    @property
    def refresh_count(self) -> int:
        """How many ``refresh_token`` calls have started."""
        with self._lock:
            return self._refresh_count

    @property
    def call_count(self) -> int:
        """Fetches plus refreshes started."""
        with self._lock:
            return self._count()

    @property
    def calls(self) -> list[ProviderCall]:
        """Finished calls in the order they finished (a copy)."""
        with self._lock:
            return list(self._calls)

    @property
    def issued(self) -> list[TokenData]:
        """Tokens returned, in the order they were returned (a copy)."""
        with self._lock:
            return list(self._issued)

    @property
    def fetch_threads(self) -> list[int]:
        """The thread id of every call (fetch or refresh), in the order they started (a copy).

        ``set(provider.fetch_threads)`` is the set of threads that reached the provider.
        """
        with self._lock:
            return list(self._threads)

    def __repr__(self) -> str:
        with self._lock:
            calls = self._count()
        return (
            f"FakeTokenProvider(service_name={self._service_name!r}, lifetime={self._lifetime!r}, "
            f"calls={calls}, paused={self.paused})"
        )

    # -- internals ------------------------------------------------------------------------

    def _count(self) -> int:
        return self._fetch_count + self._refresh_count

    def _call(self, kind: CallKind) -> TokenData:
        thread = threading.current_thread()
        site = call_site(sys._getframe(1))
        with self._called:
            if kind == "fetch":
                self._fetch_count += 1
            else:
                self._refresh_count += 1
            number = self._count()
            self._threads.append(thread.ident or 0)
            self._called.notify_all()
        hold("fetch")
        if self._latency:
            self._never.wait(self._latency)
        error: BaseException | None = None
        if not self._running.wait(self.PAUSE_TIMEOUT):
            error = TimeoutError(
                f"FakeTokenProvider stayed paused for {self.PAUSE_TIMEOUT:g}s: call resume()"
            )
        with self._lock:
            if error is None:
                error = self._fail_next.popleft() if self._fail_next else self._fail_always
            ident = thread.ident or 0
            if error is None:
                token = self._make_token(number)
                self._issued.append(token)
                self._calls.append(
                    ProviderCall(kind, number, ident, thread.name, token, None, site)
                )
                return token
            self._calls.append(ProviderCall(kind, number, ident, thread.name, None, error, site))
        # One instance may be raised many times: drop its last traceback so they do not pile up.
        raise error.with_traceback(None)

    def _make_token(self, number: int) -> TokenData:
        now = (self._clock or get_default_clock()).now()
        return TokenData(
            access_token=f"fake-access-{number}",
            token_type=self._token_type,
            expires_at=None if self._lifetime is None else now + timedelta(seconds=self._lifetime),
            refresh_token=f"fake-refresh-{number}" if self._refresh_tokens else None,
            issued_at=now,
        )


_live: weakref.WeakSet[FakeTokenProvider] = weakref.WeakSet()
_live_lock = threading.Lock()


def live_providers() -> Iterator[FakeTokenProvider]:
    """Every FakeTokenProvider still alive, so a report can tell whose token a worker got."""
    with _live_lock:
        providers = list(_live)
    return iter(providers)


class FakeTokenProviderFactory(Protocol):
    """The ``forge_token_provider_factory`` fixture: ``FakeTokenProvider``'s keywords in, a new
    provider out."""

    def __call__(
        self,
        *,
        lifetime: float | None = ...,
        latency: float = ...,
        refresh_tokens: bool = ...,
        service_name: str = ...,
        token_type: str = ...,
        clock: Clock | None = ...,
    ) -> FakeTokenProvider: ...


def _check_seconds(
    name: str, value: float, *, error: type[ValueError] = ConfigurationError
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise error(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise error(f"{name} must be a finite number of seconds >= 0, got {value!r}")


def _check_error(error: object) -> None:
    if not isinstance(error, BaseException):
        raise TypeError(
            f"expected an exception instance, got {error!r}"
            + (" (instantiate the class)" if isinstance(error, type) else "")
        )

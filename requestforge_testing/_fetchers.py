"""``FakeTokenFetcher``: a pipeline step that tests script, count, fail and hold open.

Pipeline tests need to know exactly how often each step was fetched, with which earlier
tokens, and to keep a fetch in flight while other threads pile up behind it. This step
does all of that without a network.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable
from datetime import timedelta
from typing import Final

from requestforge._clock import Clock, get_default_clock
from requestforge.tokens._data import TokenData
from requestforge.tokens._pipeline import FetchContext, TokenFetcherInterface

__all__ = ["FakeTokenFetcher"]


class FakeTokenFetcher(TokenFetcherInterface):
    """Issues ``f"{name}-{n}"`` on its n-th call, lasting ``lifetime`` seconds on the clock.

    Thread-safe. ``fetch_count`` counts calls, failed ones included (so the token of a call
    after a failure is numbered after it). ``seen`` records, per call, the earlier tokens the
    call's :class:`~requestforge.FetchContext` held. ``fail_next(*errors)`` makes the next
    calls raise those errors in order; after ``pause()`` every call is counted and then held
    until ``resume()``, and ``wait_until_called(n)`` lets a test wait for the n-th call.
    """

    #: A paused call gives up after this many real seconds, so a test that forgets
    #: ``resume()`` fails with an error instead of hanging the run.
    PAUSE_TIMEOUT: Final = 30.0
    #: Default token lifetime: an hour, like a typical access token.
    DEFAULT_LIFETIME: Final = 3600.0

    def __init__(
        self,
        name: str,
        *,
        depends_on: Iterable[str] = (),
        ttl: float | None = None,
        lifetime: float | None = DEFAULT_LIFETIME,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name, depends_on=depends_on, ttl=ttl)
        if lifetime is not None and (
            isinstance(lifetime, bool)
            or not isinstance(lifetime, int | float)
            or not (math.isfinite(lifetime) and lifetime > 0)
        ):
            raise ValueError(f"lifetime must be a finite number > 0 or None, got {lifetime!r}")
        self._lifetime = None if lifetime is None else float(lifetime)
        self._clock = clock
        self._cond = threading.Condition()
        self._count = 0
        self._seen: list[dict[str, str]] = []
        self._errors: deque[BaseException] = deque()
        self._paused = False

    def fetch(self, context: FetchContext) -> TokenData:
        """Count the call, record its context, wait while paused, then fail or issue a token."""
        with self._cond:
            self._count += 1
            number = self._count
            self._seen.append({name: t.access_token for name, t in context.tokens.items()})
            error = self._errors.popleft() if self._errors else None
            self._cond.notify_all()
            if not self._cond.wait_for(lambda: not self._paused, timeout=self.PAUSE_TIMEOUT):
                raise TimeoutError(
                    f"FakeTokenFetcher {self.name!r} stayed paused for {self.PAUSE_TIMEOUT:g}s; "
                    f"did the test forget resume()?"
                )
        if error is not None:
            raise error
        now = (self._clock or get_default_clock()).now()
        expires_at = None if self._lifetime is None else now + timedelta(seconds=self._lifetime)
        return TokenData(f"{self.name}-{number}", expires_at=expires_at, issued_at=now)

    @property
    def fetch_count(self) -> int:
        """How many times ``fetch`` has been called."""
        with self._cond:
            return self._count

    @property
    def seen(self) -> list[dict[str, str]]:
        """Per call, the earlier steps' access tokens its context held (a copy)."""
        with self._cond:
            return [dict(tokens) for tokens in self._seen]

    def fail_next(self, *errors: BaseException) -> None:
        """Make the next ``len(errors)`` calls raise these errors, in order."""
        for error in errors:
            if not isinstance(error, BaseException):
                raise TypeError(f"expected exception instances, got {error!r}")
        with self._cond:
            self._errors.extend(errors)

    def pause(self) -> None:
        """Hold every call from now on (after counting it) until :meth:`resume`."""
        with self._cond:
            self._paused = True

    def resume(self) -> None:
        """Let held calls, and later ones, finish."""
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def wait_until_called(self, n: int = 1, timeout: float = 5.0) -> None:
        """Block until ``fetch`` has been called at least ``n`` times, or raise TimeoutError."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._count >= n, timeout=timeout):
                raise TimeoutError(
                    f"FakeTokenFetcher {self.name!r} was called {self._count} time(s) within "
                    f"{timeout}s, expected at least {n}"
                )

    def __repr__(self) -> str:
        with self._cond:
            count = self._count
        return (
            f"FakeTokenFetcher(name={self.name!r}, depends_on={self.depends_on!r}, "
            f"ttl={self.ttl!r}, fetch_count={count})"
        )

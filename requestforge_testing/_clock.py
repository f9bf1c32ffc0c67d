"""A clock that tests move by hand, so expiry, backoff and timeouts run instantly and exactly."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, Final, Protocol

from requestforge._clock import Clock, set_default_clock

__all__ = ["FakeClock"]

_EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)
_MONOTONIC_START = 1000.0


class _FrozenTime(Protocol):
    """What FakeClock needs of a freezegun time factory: moving it."""

    def move_to(self, target_datetime: Any) -> None: ...


class FakeClock:
    """Deterministic ``Clock``: ``sleep`` advances time instead of blocking, and is recorded.

    Starts at 2026-01-01T00:00:00Z (or ``start``) with ``monotonic()`` at 1000.0, so tests
    never depend on when they run. Thread-safe: all state sits behind one lock.
    """

    #: Modules whose reads of the wall clock stay real under ``freeze_wall_clock``: the
    #: stress harness measures its rounds and timeouts in real time.
    FREEZE_IGNORE: Final = ("requestforge_testing._stress",)

    def __init__(self, start: datetime | None = None) -> None:
        when = _EPOCH if start is None else _aware_utc(start)
        self._lock = threading.Lock()
        self._now = when
        self._monotonic = _MONOTONIC_START
        self._sleeps: list[float] = []
        self._previous: Clock | None = None
        self._installed = False
        self._frozen: list[_FrozenTime] = []

    def now(self) -> datetime:
        """Current fake wall time, timezone-aware UTC."""
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        """Current fake monotonic seconds; only ever moves forward."""
        with self._lock:
            return self._monotonic

    def sleep(self, seconds: float) -> None:
        """Advance by ``seconds`` without blocking and record the call, so tests can assert
        on backoff delays without waiting for them."""
        _check_duration(seconds)
        with self._lock:
            self._advance(seconds)
            self._sleeps.append(seconds)

    def advance(self, seconds: float) -> None:
        """Move wall and monotonic time forward by ``seconds`` (not recorded as a sleep)."""
        _check_duration(seconds)
        with self._lock:
            self._advance(seconds)

    def set(self, when: datetime) -> None:
        """Jump wall time to ``when``; going backwards (an NTP step) leaves monotonic alone."""
        when = _aware_utc(when)
        with self._lock:
            delta = (when - self._now).total_seconds()
            self._now = when
            if delta > 0:
                self._monotonic += delta
            self._move_frozen()

    @property
    def sleeps(self) -> list[float]:
        """Every ``sleep`` duration so far, in call order (a copy)."""
        with self._lock:
            return list(self._sleeps)

    def install(self) -> None:
        """Make this the library's default clock; ``uninstall`` puts the previous one back."""
        with self._lock:
            if self._installed:
                raise RuntimeError("this FakeClock is already installed")
            self._installed = True
        self._previous = set_default_clock(self)

    def uninstall(self) -> None:
        """Restore the default clock that was in place before ``install``."""
        with self._lock:
            if not self._installed:
                raise RuntimeError("this FakeClock is not installed")
            self._installed = False
        previous, self._previous = self._previous, None
        if previous is not None:
            set_default_clock(previous)

    @contextmanager
    def installed(self) -> Iterator[FakeClock]:
        """Be the default clock inside the block, restoring the previous one even on error."""
        self.install()
        try:
            yield self
        finally:
            self.uninstall()

    @contextmanager
    def freeze_wall_clock(self) -> Iterator[FakeClock]:
        """Inside the block, code that reads the wall clock itself (``datetime.now()``,
        ``time.time()``, ``date.today()``, ...) sees this clock's time, through freezegun.

        ``advance``, ``sleep`` and ``set`` move the frozen time with the fake one, in every
        thread. Opt-in, for user code that bypasses the library's clock; the library itself
        needs none of it. Limits, all freezegun's:

        - freezegun gives *real* time from the ``time`` module (``time.time()``,
          ``time.monotonic()``, ...) to a function called straight from a thread's target:
          it answers callers within a few frames of ``threading`` with real time
          (spulec/freezegun#307), while ``datetime.now()`` stays frozen there. Threads may
          thus see a mix, so it is never the mechanism inside ``forge_stress`` (whose own
          module is ignored as well): threaded code should read ``clock.now()``.
        - ``time.monotonic()`` and ``time.perf_counter()`` freeze too, at the wall time's
          timestamp (not at this clock's ``monotonic()``): a loop waiting on them for
          real time to pass never ends unless the test advances the clock.
        - It patches process-wide state: freeze and unfreeze from the test's own thread.

        Needs ``freezegun`` (in the ``dev`` extra), imported only when this is called.
        """
        try:
            import freezegun  # noqa: PLC0415 - optional, and loading it patches nothing
        except ImportError as exc:
            raise ImportError(
                "FakeClock.freeze_wall_clock() needs freezegun: pip install freezegun"
            ) from exc
        with self._lock:
            start = self._now
        with freezegun.freeze_time(start, ignore=list(self.FREEZE_IGNORE)) as frozen:
            with self._lock:
                # The clock may have moved between reading it and freezing: catch up.
                frozen.move_to(self._now)
                self._frozen.append(frozen)
            try:
                yield self
            finally:
                with self._lock:
                    self._frozen.remove(frozen)

    def __repr__(self) -> str:
        with self._lock:
            return f"FakeClock(now={self._now.isoformat()}, monotonic={self._monotonic})"

    def _advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._monotonic += seconds
        self._move_frozen()

    def _move_frozen(self) -> None:
        """Carry every active freezegun freeze to ``_now``; the caller holds the lock."""
        for frozen in self._frozen:
            frozen.move_to(self._now)


def _check_duration(seconds: float) -> None:
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"seconds must be a finite number >= 0, got {seconds}")


def _aware_utc(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"FakeClock needs a timezone-aware datetime, got naive {when!r}")
    return when.astimezone(timezone.utc)

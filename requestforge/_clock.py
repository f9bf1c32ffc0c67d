"""One source of time for the whole library.

Everything that reads the time or waits (token expiry, retry backoff, the circuit
breaker's reset timeout, ``elapsed_ms``) asks the process-wide default clock *at call
time*. Swapping the default therefore moves time for every thread at once, which is
what the testing plugin's ``forge_clock`` does; a ``clock=`` argument overrides it for
one component.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock", "get_default_clock", "set_default_clock"]


@runtime_checkable
class Clock(Protocol):
    """What the library needs from time: wall time, a monotonic counter, and a way to wait."""

    def now(self) -> datetime:
        """The current wall-clock time, timezone-aware in UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a counter that never goes backwards, for measuring durations."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (a fake clock advances instead of waiting)."""
        ...


class SystemClock:
    """The real clock: ``datetime.now(UTC)``, ``time.monotonic`` and ``time.sleep``."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    # The C function itself, not a method wrapping it: the token hot path reads it per request.
    monotonic = staticmethod(time.monotonic)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


_default: Clock = SystemClock()
_swap_lock = threading.Lock()


def get_default_clock() -> Clock:
    """Return the clock that components without their own ``clock=`` use right now."""
    return _default


def set_default_clock(clock: Clock) -> Clock:
    """Install ``clock`` as the process-wide default and return the previous one."""
    global _default
    if not isinstance(clock, Clock):
        from requestforge._exceptions import ConfigurationError  # noqa: PLC0415 - import cycle

        raise ConfigurationError(f"expected a Clock (now/monotonic/sleep), got {clock!r}")
    with _swap_lock:
        previous, _default = _default, clock
    return previous

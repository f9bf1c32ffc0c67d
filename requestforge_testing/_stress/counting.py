"""Counting events that the code under test also counts, to find its lost updates.

A response hook that does ``stats[path] += 1`` without a lock loses increments when two
threads read the same old value. ``StressCounter`` counts the same events safely, so the
two can be compared; ``StressReport.assert_count`` does it against the number of calls.
"""

from __future__ import annotations

import threading

__all__ = ["StressCounter", "lost_updates_message"]


class StressCounter:
    """A thread-safe count of events; ``assert_matches(observed)`` names the lost updates.

    Call ``increment()`` where the event happens (next to the code under test's own
    counting), then compare the code's count with ``assert_matches``. Needs no pytest.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    def increment(self, n: int = 1) -> None:
        """Count ``n`` more events."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an int >= 0, got {n!r}")
        with self._lock:
            self._value += n

    @property
    def value(self) -> int:
        """How many events were counted."""
        with self._lock:
            return self._value

    def reset(self) -> None:
        """Back to zero."""
        with self._lock:
            self._value = 0

    def assert_matches(self, observed: int, *, name: str = "the count") -> None:
        """Raise ``AssertionError`` unless ``observed`` equals the events counted here."""
        __tracebackhide__ = True
        expected = self.value
        message = lost_updates_message(name, observed, expected, f"{expected} events counted")
        if message is not None:
            raise AssertionError(message)

    def __repr__(self) -> str:
        return f"StressCounter(value={self.value})"


def lost_updates_message(name: str, observed: object, expected: int, basis: str) -> str | None:
    """The failure text when ``observed`` is not ``expected`` (None when it is)."""
    if isinstance(observed, bool) or not isinstance(observed, int):
        raise ValueError(f"{name} must be an int, got {observed!r}")
    if observed == expected:
        return None
    if observed < expected:
        lost = expected - observed
        return (
            f"assert_count: {name} is {observed}, expected {expected} ({basis}): {lost} "
            f"update{'s were' if lost != 1 else ' was'} lost. Two threads read the same old "
            "value and both wrote it back plus one: a read-modify-write such as "
            "`stats[key] += 1` on shared state without a lock (or a thread-safe counter)."
        )
    return (
        f"assert_count: {name} is {observed}, expected {expected} ({basis}): "
        f"{observed - expected} more than there were events (counted twice, or a count "
        "left over from before the run)."
    )

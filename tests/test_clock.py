"""The process-wide default clock that every component reads at call time."""

from __future__ import annotations

from datetime import timezone

import pytest

from requestforge import ConfigurationError, SystemClock, get_default_clock, set_default_clock
from requestforge_testing import FakeClock


def test_system_clock_is_aware_utc() -> None:
    """SystemClock.now() is timezone-aware UTC and monotonic() does not go backwards."""
    clock = SystemClock()
    assert clock.now().tzinfo is timezone.utc
    first = clock.monotonic()
    assert clock.monotonic() >= first


def test_set_default_clock_returns_previous() -> None:
    """Installing a clock hands back the previous one so callers can restore it."""
    fake = FakeClock()
    previous = set_default_clock(fake)
    try:
        assert get_default_clock() is fake
    finally:
        assert set_default_clock(previous) is fake
    assert get_default_clock() is previous


def test_set_default_clock_rejects_non_clocks() -> None:
    """Something without now/monotonic/sleep is refused with ConfigurationError."""
    with pytest.raises(ConfigurationError, match="Clock"):
        set_default_clock(object())  # type: ignore[arg-type]


def test_forge_clock_is_the_default_inside_a_test(forge_clock: FakeClock) -> None:
    """The forge_clock fixture is what the library reads as its default clock."""
    assert get_default_clock() is forge_clock

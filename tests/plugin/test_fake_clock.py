"""FakeClock: deterministic time that moves only when told, safely from many threads."""

from __future__ import annotations

import math
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from requestforge._clock import Clock, get_default_clock
from requestforge_testing import FakeClock

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
THREADS = 16
PER_THREAD = 500


def test_starts_at_a_fixed_utc_instant() -> None:
    """A new FakeClock reads 2026-01-01T00:00:00Z and monotonic 1000.0, whenever it runs."""
    clock = FakeClock()
    assert clock.now() == START
    assert clock.now().tzinfo is timezone.utc
    assert clock.monotonic() == 1000.0
    assert clock.sleeps == []
    assert isinstance(clock, Clock)


def test_start_must_be_aware_and_is_normalised_to_utc() -> None:
    """start= accepts any aware datetime, reports it in UTC, and refuses naive ones."""
    plus_two = timezone(timedelta(hours=2))
    clock = FakeClock(start=datetime(2030, 6, 1, 12, 0, tzinfo=plus_two))
    assert clock.now() == datetime(2030, 6, 1, 10, 0, tzinfo=timezone.utc)
    assert clock.now().tzinfo is timezone.utc
    with pytest.raises(ValueError, match="naive"):
        FakeClock(start=datetime(2030, 6, 1))  # naive on purpose


def test_advance_moves_wall_and_monotonic_time_together() -> None:
    """advance() moves both clocks by the same amount and is not recorded as a sleep."""
    clock = FakeClock()
    clock.advance(90.5)
    assert clock.now() == START + timedelta(seconds=90.5)
    assert clock.monotonic() == 1090.5
    assert clock.sleeps == []


@pytest.mark.parametrize("bad", [-0.001, math.nan, math.inf])
def test_advance_and_sleep_refuse_negative_or_non_finite(bad: float) -> None:
    """Time cannot be moved backwards or by NaN/infinity through advance() or sleep()."""
    clock = FakeClock()
    with pytest.raises(ValueError, match="finite number >= 0"):
        clock.advance(bad)
    with pytest.raises(ValueError, match="finite number >= 0"):
        clock.sleep(bad)
    assert clock.monotonic() == 1000.0
    assert clock.sleeps == []


def test_sleep_advances_instantly_and_is_recorded() -> None:
    """sleep(an hour) returns at once, moves the clock an hour and appears in sleeps."""
    clock = FakeClock()
    started = time.monotonic()
    clock.sleep(3600)
    clock.sleep(0.25)
    clock.sleep(0)
    assert time.monotonic() - started < 1.0
    assert clock.sleeps == [3600, 0.25, 0]
    assert clock.monotonic() == 1000.0 + 3600.25
    assert clock.now() == START + timedelta(seconds=3600.25)


def test_sleeps_is_a_snapshot() -> None:
    """Mutating the returned sleeps list leaves the clock's record intact."""
    clock = FakeClock()
    clock.sleep(1)
    clock.sleeps.append(99)
    assert clock.sleeps == [1]


def test_set_forward_moves_monotonic_by_the_same_amount() -> None:
    """Jumping wall time forward also moves monotonic time forward by the gap."""
    clock = FakeClock()
    clock.set(START + timedelta(minutes=5))
    assert clock.now() == START + timedelta(minutes=5)
    assert clock.monotonic() == 1300.0


def test_set_backwards_moves_wall_time_only() -> None:
    """Stepping the wall clock back (like an NTP correction) never moves monotonic back."""
    clock = FakeClock()
    clock.advance(60)
    clock.set(START - timedelta(hours=1))
    assert clock.now() == START - timedelta(hours=1)
    assert clock.monotonic() == 1060.0


def test_set_refuses_naive_datetimes() -> None:
    """set() with a naive datetime raises instead of guessing a timezone."""
    clock = FakeClock()
    with pytest.raises(ValueError, match="naive"):
        clock.set(datetime(2026, 1, 2))  # naive on purpose
    assert clock.now() == START


def test_concurrent_advances_and_sleeps_all_count() -> None:
    """16 threads advancing and sleeping at once lose no update: the totals are exact."""
    clock = FakeClock()
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait(timeout=5)
            for _ in range(PER_THREAD):
                clock.advance(0.5)
                clock.sleep(0.25)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible to provoke races
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        sys.setswitchinterval(previous)
    assert not errors, errors
    total = THREADS * PER_THREAD * 0.75  # 0.5 and 0.25 are exact in binary: no rounding
    assert clock.monotonic() == 1000.0 + total
    assert clock.now() == START + timedelta(seconds=total)
    assert clock.sleeps == [0.25] * (THREADS * PER_THREAD)


def test_installed_swaps_the_default_and_restores_it() -> None:
    """installed() makes the clock the library default and puts the previous one back."""
    before = get_default_clock()
    clock = FakeClock()
    with clock.installed() as inside:
        assert inside is clock
        assert get_default_clock() is clock
    assert get_default_clock() is before


def test_installed_restores_the_default_even_on_error() -> None:
    """An exception inside installed() still restores the previous default clock."""
    before = get_default_clock()
    with pytest.raises(KeyError), FakeClock().installed():
        raise KeyError("boom")
    assert get_default_clock() is before


def test_nested_installs_unwind_in_order() -> None:
    """Two clocks installed one inside the other restore defaults last-in, first-out."""
    before = get_default_clock()
    outer, inner = FakeClock(), FakeClock()
    with outer.installed():
        with inner.installed():
            assert get_default_clock() is inner
        assert get_default_clock() is outer
    assert get_default_clock() is before


def test_install_and_uninstall_must_pair_up() -> None:
    """Installing twice or uninstalling an idle clock is a RuntimeError, not a silent swap."""
    before = get_default_clock()
    clock = FakeClock()
    with pytest.raises(RuntimeError, match="not installed"):
        clock.uninstall()
    clock.install()
    try:
        with pytest.raises(RuntimeError, match="already installed"):
            clock.install()
    finally:
        clock.uninstall()
    assert get_default_clock() is before


def test_forge_clock_fixture_is_the_installed_default(forge_clock: FakeClock) -> None:
    """The forge_clock fixture is a fresh FakeClock that the library reads as its default."""
    assert get_default_clock() is forge_clock
    assert forge_clock.now() == START
    forge_clock.sleep(2)
    assert get_default_clock().monotonic() == 1002.0

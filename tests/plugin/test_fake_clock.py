"""FakeClock: deterministic time that moves only when told, safely from many threads."""

from __future__ import annotations

import math
import sys
import threading
import time
from datetime import date, datetime, timedelta, timezone

import pytest

from requestforge._clock import Clock, get_default_clock
from requestforge_testing import FakeClock, forge_stress

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


# -- freeze_wall_clock: freezegun, following the fake clock ----------------------------------

#: Far from any time these tests run at, so a frozen reading is never mistaken for a real one.
FROZEN_START = datetime(2001, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
#: A reading further than this from FROZEN_START came from the real clock.
YEARS = 10 * 365 * 86400.0


def is_real(timestamp: float) -> bool:
    """True for a timestamp from the real clock rather than the frozen one."""
    return abs(timestamp - FROZEN_START.timestamp()) > YEARS


def test_freeze_wall_clock_freezes_datetime_and_time_at_the_fake_now() -> None:
    """Inside the block datetime.now(), date.today(), time.time() and time.gmtime() all read
    the fake clock's current time."""
    clock = FakeClock(start=FROZEN_START)
    with clock.freeze_wall_clock() as inside:
        assert inside is clock
        assert datetime.now(timezone.utc) == FROZEN_START
        assert datetime.now() == FROZEN_START.replace(tzinfo=None)
        assert date.today() == FROZEN_START.date()
        assert time.time() == FROZEN_START.timestamp()
        assert time.gmtime()[:6] == FROZEN_START.timetuple()[:6]


def test_the_freeze_starts_where_the_clock_is_when_entered() -> None:
    """A clock advanced before freezing freezes at its advanced time, not its start."""
    clock = FakeClock(start=FROZEN_START)
    clock.advance(3600)
    with clock.freeze_wall_clock():
        assert datetime.now(timezone.utc) == FROZEN_START + timedelta(hours=1)


def test_advance_sleep_and_set_move_the_frozen_time() -> None:
    """Moving the FakeClock moves the frozen wall clock with it, backwards too."""
    clock = FakeClock(start=FROZEN_START)
    with clock.freeze_wall_clock():
        clock.advance(90.5)
        assert time.time() == FROZEN_START.timestamp() + 90.5
        clock.sleep(9.5)
        assert datetime.now(timezone.utc) == FROZEN_START + timedelta(seconds=100)
        clock.set(FROZEN_START - timedelta(days=1))
        assert datetime.now(timezone.utc) == FROZEN_START - timedelta(days=1)
        assert datetime.now(timezone.utc) == clock.now()


def test_real_time_is_back_after_the_block_even_on_error() -> None:
    """Leaving the block, normally or by an exception, unfreezes the wall clock, and moving
    the FakeClock afterwards touches nothing."""
    clock = FakeClock(start=FROZEN_START)
    inside: list[float] = []

    def fail_while_frozen() -> None:
        with clock.freeze_wall_clock():
            inside.append(time.time())
            raise KeyError("boom")

    with pytest.raises(KeyError):
        fail_while_frozen()
    assert not is_real(inside[0])
    assert is_real(time.time())
    assert is_real(datetime.now(timezone.utc).timestamp())
    clock.advance(5)
    assert is_real(time.time())


def test_nested_freezes_follow_the_clock_and_unwind() -> None:
    """An inner freeze moves with the clock too; after it ends the outer one still does."""
    clock = FakeClock(start=FROZEN_START)
    with clock.freeze_wall_clock():
        with clock.freeze_wall_clock():
            clock.advance(10)
            assert time.time() == FROZEN_START.timestamp() + 10
        clock.advance(10)
        assert time.time() == FROZEN_START.timestamp() + 20
    assert is_real(time.time())


def test_concurrent_advances_move_the_frozen_time_exactly() -> None:
    """Advances from many threads while frozen all land: the frozen time ends exactly where
    the fake clock does."""
    clock = FakeClock(start=FROZEN_START)
    barrier = threading.Barrier(THREADS)

    def worker() -> None:
        barrier.wait(timeout=5)
        for _ in range(50):
            clock.advance(0.5)

    with clock.freeze_wall_clock():
        threads = [threading.Thread(target=worker) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert clock.now() == FROZEN_START + timedelta(seconds=THREADS * 50 * 0.5)
        assert datetime.now(timezone.utc) == clock.now()


def test_documented_limit_a_thread_target_gets_real_time_from_the_time_module() -> None:
    """The documented limit (spulec/freezegun#307): a function called straight from a
    thread's target reads real time from time.time(), while datetime.now() stays frozen in
    that same thread, so threaded code must read the FakeClock instead."""
    clock = FakeClock(start=FROZEN_START)
    seen: dict[str, float] = {}

    def target() -> None:
        seen["time.time"] = time.time()
        seen["datetime.now"] = datetime.now(timezone.utc).timestamp()
        seen["clock.now"] = clock.now().timestamp()

    with clock.freeze_wall_clock():
        thread = threading.Thread(target=target)
        thread.start()
        thread.join(timeout=10)
        assert not is_real(time.time())
    assert is_real(seen["time.time"])
    assert seen["datetime.now"] == seen["clock.now"] == FROZEN_START.timestamp()


def test_documented_limit_forge_stress_workers_and_timing_stay_real() -> None:
    """Under a freeze forge_stress's workers read real time.time() (the same limit), and the
    harness measures its rounds in real time, as its module is excluded from the freeze."""
    clock = FakeClock(start=FROZEN_START)
    with clock.freeze_wall_clock():
        report = forge_stress(time.time, threads=2)
    assert all(is_real(t) for t in report.results)
    assert report.rounds[0].elapsed > 0


def test_forge_clock_can_freeze_the_wall_clock(forge_clock: FakeClock) -> None:
    """The forge_clock fixture's freeze agrees with the clock the library reads."""
    with forge_clock.freeze_wall_clock():
        forge_clock.advance(42)
        assert datetime.now(timezone.utc) == get_default_clock().now() == forge_clock.now()


def test_freeze_without_freezegun_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where freezegun is not installed, freezing fails with an ImportError naming it."""
    monkeypatch.setitem(sys.modules, "freezegun", None)
    clock = FakeClock(start=FROZEN_START)
    with (
        pytest.raises(ImportError, match="needs freezegun: pip install freezegun"),
        clock.freeze_wall_clock(),
    ):
        pass  # pragma: no cover - never entered
    assert is_real(time.time())

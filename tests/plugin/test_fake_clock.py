"""FakeClock: deterministic time that moves only when told, safely from many threads; its
freeze of the wall clock; and the warning for code that reads the real clock instead."""

from __future__ import annotations

import asyncio
import copy
import json
import math
import pickle
import queue
import sys
import threading
import time
import warnings
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from requestforge import TokenData, TokenManager
from requestforge._clock import Clock, get_default_clock
from requestforge.tokens._data import decode_token, encode_token
from requestforge_testing import FakeClock, FakeTokenProvider, ForgeClockWarning, forge_stress

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


# -- freeze_wall_clock: time-machine, following the fake clock -------------------------------

#: Far from any time these tests run at, so a frozen reading is never mistaken for a real one.
FROZEN_START = datetime(2001, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
#: A reading further than this from FROZEN_START came from the real clock.
YEARS = 10 * 365 * 86400.0


def is_real(timestamp: float) -> bool:
    """True for a timestamp from the real clock rather than the frozen one."""
    return abs(timestamp - FROZEN_START.timestamp()) > YEARS


def readings() -> tuple[float, float, datetime]:
    """What code that reads the clock itself sees: time.time(), time.monotonic(), now()."""
    return time.time(), time.monotonic(), datetime.now(timezone.utc)


def expected(clock: FakeClock) -> tuple[float, float, datetime]:
    """The readings a frozen wall clock must give: the FakeClock's own."""
    return clock.now().timestamp(), clock.monotonic(), clock.now()


def test_freeze_wall_clock_freezes_datetime_time_and_monotonic_at_the_fake_now() -> None:
    """Inside the block datetime.now(), date.today(), time.time(), time.time_ns(),
    time.gmtime(), time.monotonic() and time.monotonic_ns() all read the fake clock."""
    clock = FakeClock(start=FROZEN_START)
    with clock.freeze_wall_clock() as inside:
        assert inside is clock
        assert datetime.now(timezone.utc) == FROZEN_START
        assert datetime.now() == FROZEN_START.replace(tzinfo=None)  # local time is UTC
        assert date.today() == FROZEN_START.date()
        assert time.time() == FROZEN_START.timestamp()
        assert time.time_ns() == int(FROZEN_START.timestamp()) * 10**9
        assert time.gmtime()[:6] == FROZEN_START.timetuple()[:6]
        assert time.monotonic() == 1000.0
        assert time.monotonic_ns() == 1000 * 10**9


def test_the_freeze_starts_where_the_clock_is_when_entered() -> None:
    """A clock advanced before freezing freezes at its advanced time, not its start."""
    clock = FakeClock(start=FROZEN_START)
    clock.advance(3600)
    with clock.freeze_wall_clock():
        assert readings() == (FROZEN_START.timestamp() + 3600, 4600.0, clock.now())


def test_advance_sleep_and_set_move_the_frozen_time() -> None:
    """Moving the FakeClock moves the frozen wall and monotonic clocks with it, exactly;
    set() backwards moves the wall clock only, as it does the fake one."""
    clock = FakeClock(start=FROZEN_START)
    with clock.freeze_wall_clock():
        clock.advance(90.5)
        assert readings() == (FROZEN_START.timestamp() + 90.5, 1090.5, clock.now())
        clock.sleep(0.1)
        assert readings() == expected(clock)
        assert time.time_ns() == int(FROZEN_START.timestamp()) * 10**9 + 90_600_000_000
        clock.set(FROZEN_START - timedelta(days=1))
        assert datetime.now(timezone.utc) == FROZEN_START - timedelta(days=1)
        assert readings() == expected(clock)
        assert time.monotonic() == 1090.6


def test_real_time_is_back_after_the_block_even_on_error() -> None:
    """Leaving the block, normally or by an exception, unfreezes every clock and puts the
    time module's own functions back; moving the FakeClock afterwards touches nothing."""
    clock = FakeClock(start=FROZEN_START)
    original = time.monotonic, time.monotonic_ns
    inside: list[float] = []

    def fail_while_frozen() -> None:
        with clock.freeze_wall_clock():
            inside.append(time.time())
            raise KeyError("boom")

    with pytest.raises(KeyError):
        fail_while_frozen()
    assert not is_real(inside[0])
    assert (time.monotonic, time.monotonic_ns) == original
    assert is_real(time.time())
    assert is_real(datetime.now(timezone.utc).timestamp())
    clock.advance(5)
    assert is_real(time.time())
    assert time.monotonic() != clock.monotonic()


def test_nested_freezes_follow_the_clock_and_unwind() -> None:
    """An inner freeze moves with the clock too; after it ends the outer one still does."""
    clock = FakeClock(start=FROZEN_START)
    with clock.freeze_wall_clock():
        with clock.freeze_wall_clock():
            clock.advance(10)
            assert readings() == (FROZEN_START.timestamp() + 10, 1010.0, clock.now())
        clock.advance(10)
        assert readings() == (FROZEN_START.timestamp() + 20, 1020.0, clock.now())
    assert is_real(time.time())


def test_the_innermost_of_two_clocks_answers() -> None:
    """A second clock frozen inside the first is what every reading follows until it ends."""
    outer, inner = FakeClock(start=FROZEN_START), FakeClock(start=FROZEN_START + timedelta(1))
    with outer.freeze_wall_clock():
        with inner.freeze_wall_clock():
            inner.advance(5)
            assert readings() == expected(inner)
        assert readings() == expected(outer)


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
        assert readings() == expected(clock)


def nested(depth: int) -> tuple[float, float, datetime]:
    """readings() from ``depth`` calls further down the stack."""
    return readings() if depth == 0 else nested(depth - 1)


def test_every_thread_at_any_depth_sees_the_frozen_clock() -> None:
    """A thread's target reading the clock directly (spulec/freezegun#307's case), the same
    ten frames down, and a thread started from that thread all see the fake clock."""
    clock = FakeClock(start=FROZEN_START)
    seen: dict[str, tuple[float, float, datetime]] = {}

    def target() -> None:
        seen["target"] = readings()
        seen["deep"] = nested(10)
        grandchild = threading.Thread(target=lambda: seen.setdefault("grandchild", readings()))
        grandchild.start()
        grandchild.join(timeout=10)

    with clock.freeze_wall_clock():
        clock.advance(7)
        thread = threading.Thread(target=target)
        thread.start()
        thread.join(timeout=10)
        want = expected(clock)
    assert seen == {"target": want, "deep": want, "grandchild": want}


def test_forge_stress_workers_see_the_frozen_clock_and_its_timing_stays_real() -> None:
    """forge_stress's workers read the frozen clock like any thread, while the harness
    measures its rounds in real time (its own reads are not the code under test)."""
    clock = FakeClock(start=FROZEN_START)
    with clock.freeze_wall_clock():
        report = forge_stress(readings, threads=4)
        want = expected(clock)
    assert report.results == [want] * 4
    assert report.rounds[0].elapsed > 0


def test_waits_outside_the_code_under_test_stay_real() -> None:
    """Under a freeze, a monotonic captured before it, the standard library's timeouts
    (asyncio's loop, a queue's get) and requestforge's own reads keep real time: they end."""
    captured = time.monotonic
    clock = FakeClock(start=FROZEN_START)
    library: dict[str, Any] = {"__name__": "requestforge._example", "time": time}
    exec("def monotonic():\n    return time.monotonic()\n", library)  # noqa: S102 - fixed code
    finished = threading.Event()

    def wait_in_asyncio_and_queue() -> None:
        asyncio.run(asyncio.sleep(0.01))
        with pytest.raises(queue.Empty):
            queue.Queue().get(timeout=0.01)
        finished.set()

    with clock.freeze_wall_clock():
        assert time.monotonic() == 1000.0
        before, library_before = captured(), library["monotonic"]()
        worker = threading.Thread(target=wait_in_asyncio_and_queue, daemon=True)
        worker.start()
        worker.join(timeout=10)
        assert finished.is_set(), "a standard-library wait saw the frozen monotonic clock"
        assert captured() > before
        assert library["monotonic"]() > library_before
        assert time.monotonic() == 1000.0


def test_a_monotonic_kept_from_inside_the_block_is_real_after_it() -> None:
    """time.monotonic captured during the freeze (a lazy import) gives real time after it."""
    clock = FakeClock(start=FROZEN_START)
    with clock.freeze_wall_clock():
        kept = time.monotonic
        assert kept() == 1000.0
    assert kept() == pytest.approx(time.monotonic(), abs=60)


def test_forge_clock_can_freeze_the_wall_clock(forge_clock: FakeClock) -> None:
    """The forge_clock fixture's freeze agrees with the clock the library reads."""
    with forge_clock.freeze_wall_clock():
        forge_clock.advance(42)
        assert datetime.now(timezone.utc) == get_default_clock().now() == forge_clock.now()
        assert time.monotonic() == get_default_clock().monotonic()


def test_freeze_without_time_machine_names_the_testing_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where time-machine is not installed, freezing fails with an ImportError naming the
    extra to install, and nothing is left frozen."""
    monkeypatch.setitem(sys.modules, "time_machine", None)
    clock = FakeClock(start=FROZEN_START)
    with (
        pytest.raises(ImportError, match=r"pip install 'requestforge\[testing\]'"),
        clock.freeze_wall_clock(),
    ):
        pass  # pragma: no cover - never entered
    assert is_real(time.time())


# -- ForgeClockWarning: expiry decided on the real wall clock ---------------------------------

#: The real wall clock, read the ways user code reads it.
REAL_NOW: dict[str, Callable[[], datetime]] = {
    "datetime.now(timezone.utc)": lambda: datetime.now(timezone.utc),
    "now + leeway": lambda: datetime.now(timezone.utc) + timedelta(seconds=30),
    "naive datetime.now()": datetime.now,
}

COMPARISONS: dict[str, Callable[[Any, Any], object]] = {
    "fake < real": lambda fake, real: fake < real,
    "fake <= real": lambda fake, real: fake <= real,
    "fake > real": lambda fake, real: fake > real,
    "fake >= real": lambda fake, real: fake >= real,
    "real < fake": lambda fake, real: real < fake,
    "real >= fake": lambda fake, real: real >= fake,
    "fake - real": lambda fake, real: fake - real,
    "real - fake": lambda fake, real: real - fake,
}


def fake_like(real: datetime, clock: FakeClock) -> datetime:
    """The fake clock's time, aware or naive like ``real``."""
    return clock.now() if real.tzinfo is not None else clock.now().replace(tzinfo=None)


@pytest.mark.parametrize("read", list(REAL_NOW.values()), ids=list(REAL_NOW))
@pytest.mark.parametrize("compare", list(COMPARISONS.values()), ids=list(COMPARISONS))
def test_comparing_the_fake_clock_with_the_real_one_warns_at_the_comparison(
    read: Callable[[], datetime], compare: Callable[[Any, Any], object]
) -> None:
    """Ordering or subtracting a fake-clock datetime and one read from the real clock warns
    with ForgeClockWarning, attributed to the line that compared (here, the lambda)."""
    clock = FakeClock(start=FROZEN_START)
    real = read()
    with pytest.warns(ForgeClockWarning, match="read from the real wall clock") as record:
        compare(fake_like(real, clock), real)
    assert len(record) == 1
    warning = record[0]
    assert (warning.filename, warning.lineno) == (__file__, compare.__code__.co_firstlineno)
    assert f"test_fake_clock.py:{warning.lineno} in <lambda>" in str(warning.message)


TIMESTAMP_COMPARISONS: dict[str, Callable[[float, float], object]] = {
    "expires < time.time()": lambda expires, real: expires < real,
    "time.time() >= expires": lambda expires, real: real >= expires,
    "expires - 30 < time.time()": lambda expires, real: expires - 30 < real,
    "expires - time.time()": lambda expires, real: expires - real,
    "time.time() - expires": lambda expires, real: real - expires,
    "expires + 30 > time.time()": lambda expires, real: expires + 30 > real,
}


@pytest.mark.parametrize(
    "compare", list(TIMESTAMP_COMPARISONS.values()), ids=list(TIMESTAMP_COMPARISONS)
)
def test_comparing_a_fake_timestamp_with_time_time_warns(
    compare: Callable[[float, float], object],
) -> None:
    """.timestamp() of a fake-clock time against time.time() warns the same way."""
    expires = FakeClock(start=FROZEN_START).now() + timedelta(hours=1)
    with pytest.warns(ForgeClockWarning, match="compared a time from requestforge's fake clock"):
        compare(expires.timestamp(), time.time())


def test_no_warning_where_no_real_clock_is_involved() -> None:
    """Fake against fake, equality, times far from now, int() timestamps, a fake clock near
    real time and a frozen wall clock never warn (warnings are errors in this block)."""
    clock = FakeClock(start=FROZEN_START)
    fake, real = clock.now(), datetime.now(timezone.utc)
    near = FakeClock(start=real).now()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fake < fake + timedelta(hours=1)
        assert (fake + timedelta(hours=1)) - fake == timedelta(hours=1)
        assert fake != real
        assert fake < datetime(2030, 1, 1, tzinfo=timezone.utc)
        assert int(fake.timestamp()) < time.time()
        assert fake.timestamp() < fake.timestamp() + 1
        assert near <= real
        assert near.timestamp() <= time.time()
        with clock.freeze_wall_clock():
            assert fake <= datetime.now(timezone.utc)
            assert fake.timestamp() <= time.time()
            assert not fake - datetime.now(timezone.utc)


def test_fake_times_behave_like_plain_datetimes() -> None:
    """A fake-clock datetime equals, hashes, formats, pickles and round-trips through
    TokenData's JSON like the plain datetime of the same instant; arithmetic keeps it fake."""
    clock = FakeClock(start=FROZEN_START)
    fake, plain = clock.now(), FROZEN_START
    assert isinstance(fake, datetime)
    assert (fake == plain, hash(fake) == hash(plain)) == (True, True)
    assert (repr(fake), str(fake), fake.isoformat()) == (repr(plain), str(plain), plain.isoformat())
    for derived in (
        fake + timedelta(1),
        timedelta(1) + fake,
        fake - timedelta(1),
        fake.replace(hour=1),
        fake.astimezone(timezone(timedelta(hours=2))),
        copy.deepcopy(fake),
    ):
        assert type(derived) is type(fake), derived
    unpickled = pickle.loads(pickle.dumps(fake))  # noqa: S301 - our own bytes
    assert (type(unpickled), unpickled) == (datetime, plain)
    timestamp = fake.timestamp()
    assert (timestamp, json.dumps(timestamp)) == (plain.timestamp(), json.dumps(plain.timestamp()))
    assert type(pickle.loads(pickle.dumps(timestamp))) is float  # noqa: S301 - our own bytes
    token = TokenData("abc", expires_at=fake + timedelta(hours=1))
    decoded = decode_token(encode_token(token))
    assert decoded == token
    assert decoded.expires_at == plain + timedelta(hours=1)


def test_expiry_from_the_real_clock_in_user_code_is_reported_as_such(
    forge_clock: FakeClock,
) -> None:
    """Under forge_clock, a token's expires_at carries the fake clock: user code checking it
    against datetime.now() gets a ForgeClockWarning, not a baffling wrong answer."""
    forge_clock.set(FROZEN_START)
    token = TokenManager(FakeTokenProvider()).get_token()
    assert token.expires_at is not None
    with pytest.warns(ForgeClockWarning, match=r"test_fake_clock\.py:\d+ in test_expiry"):
        assert token.expires_at < datetime.now(timezone.utc)  # the user's bug


class RealClockProvider(FakeTokenProvider):
    """A user's provider with the bug: it computes expiry from the real wall clock."""

    def fetch_token(self) -> TokenData:
        return TokenData("real", expires_at=datetime.now(timezone.utc) + timedelta(hours=1))


def test_a_provider_on_the_real_clock_is_blamed_on_the_user_call(forge_clock: FakeClock) -> None:
    """When the library compares the fake clock with a user's real-clock expiry, the
    warning names the user's line that called into the library, not the library."""
    forge_clock.set(FROZEN_START)
    manager = TokenManager(RealClockProvider())
    with pytest.warns(ForgeClockWarning) as record:
        manager.get_token()
    assert record[0].filename == __file__
    assert "in test_a_provider_on_the_real_clock_is_blamed" in str(record[0].message)


def test_the_library_on_the_fake_clock_raises_no_warning(forge_clock: FakeClock) -> None:
    """The library itself, reading only its clock, never trips the warning: tokens fetched,
    cached, refreshed and expired on forge_clock (warnings are errors in this block)."""
    forge_clock.set(FROZEN_START)
    provider = FakeTokenProvider()
    manager = TokenManager(provider)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first = manager.get_token()
        assert manager.get_token() is first
        forge_clock.advance(3600)
        assert first.is_expired
        assert manager.get_token() is not first
    assert provider.fetch_count == 2

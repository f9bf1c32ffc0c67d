"""A clock that tests move by hand, so expiry, backoff and timeouts run instantly and exactly.

Its wall times are a ``datetime`` subclass, :class:`ClockDateTime` (and its timestamps a
``float`` subclass, :class:`ClockTimestamp`), that notice being ordered against or
subtracted from a time read off the real wall clock, and say so with a
:class:`ForgeClockWarning`: code that decides expiry from ``datetime.now()`` while the test
moves requestforge's clock has a bug that would otherwise show as a baffling assertion.
``+ timedelta``, ``replace()`` and ``astimezone()`` keep the subclass, so a token's
``expires_at`` computed from the clock carries it too.
"""

from __future__ import annotations

import math
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from types import FrameType
from typing import Any, Final, Protocol, SupportsIndex, overload

from requestforge._clock import Clock, set_default_clock
from requestforge_testing._code import describe_site, is_user_code
from requestforge_testing._env import testing_extra_hint

__all__ = ["ClockDateTime", "ClockTimestamp", "FakeClock", "ForgeClockWarning"]

_MONOTONIC_START = 1000.0
#: A time within this of the wall clock's current time was read from the wall clock.
_NEAR: Final = timedelta(hours=1)
#: A fake time further than this from the wall clock cannot be mistaken for a real one.
_FAR: Final = timedelta(days=1)
#: ``ClockTimestamp - x`` is a timestamp again when ``x`` is shorter than this: a duration.
_DURATION_LIMIT: Final = 1e9


class ForgeClockWarning(UserWarning):
    """Code under ``forge_clock`` compared the fake clock's time with the real wall clock's.

    The other value came from ``datetime.now()``, ``time.time()`` or the like while the test
    moves requestforge's clock: that code decides expiry on a clock the test does not
    control. Read ``requestforge.get_default_clock().now()`` (or the ``clock=`` given)
    instead, or freeze the wall clock too with ``forge_clock.freeze_wall_clock()``.
    """


class ClockDateTime(datetime):
    """A ``datetime`` from a :class:`FakeClock`; warns when compared with the real clock.

    Equal to, hashed and formatted like the plain ``datetime`` of the same instant (its
    ``repr`` too); only ``<``, ``<=``, ``>``, ``>=`` and ``-`` against a plain aware or naive
    ``datetime`` near the real current time, while this one is far from it, emit
    :class:`ForgeClockWarning`. It pickles as a plain ``datetime``: another process has no
    fake clock to compare with.
    """

    __slots__ = ()

    def __lt__(self, other: datetime) -> bool:  # type: ignore[override]
        __tracebackhide__ = True
        _check_datetime(self, other)
        return datetime.__lt__(self, other)

    def __le__(self, other: datetime) -> bool:  # type: ignore[override]
        __tracebackhide__ = True
        _check_datetime(self, other)
        return datetime.__le__(self, other)

    def __gt__(self, other: datetime) -> bool:  # type: ignore[override]
        __tracebackhide__ = True
        _check_datetime(self, other)
        return datetime.__gt__(self, other)

    def __ge__(self, other: datetime) -> bool:  # type: ignore[override]
        __tracebackhide__ = True
        _check_datetime(self, other)
        return datetime.__ge__(self, other)

    @overload  # type: ignore[override]
    def __sub__(self, other: datetime, /) -> timedelta: ...
    @overload
    def __sub__(self, other: timedelta, /) -> ClockDateTime: ...
    def __sub__(self, other: datetime | timedelta, /) -> timedelta | ClockDateTime:
        __tracebackhide__ = True
        _check_datetime(self, other)
        result: timedelta | ClockDateTime = datetime.__sub__(self, other)
        return result

    def __rsub__(self, other: datetime, /) -> timedelta:
        if not isinstance(other, datetime):
            return NotImplemented
        __tracebackhide__ = True
        _check_datetime(self, other)
        return datetime.__sub__(other, self)

    def timestamp(self) -> ClockTimestamp:
        """POSIX timestamp, as a :class:`ClockTimestamp` that also notices the real clock."""
        return ClockTimestamp(datetime.timestamp(self))

    def __repr__(self) -> str:
        return repr(self.plain())

    def __reduce_ex__(self, protocol: SupportsIndex) -> str | tuple[Any, ...]:
        return self.plain().__reduce_ex__(protocol)

    def __copy__(self) -> ClockDateTime:
        return self  # immutable, like every datetime

    def __deepcopy__(self, memo: object) -> ClockDateTime:
        return self

    def plain(self) -> datetime:
        """The same instant as a plain ``datetime``, which never warns."""
        return datetime(
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.microsecond,
            self.tzinfo,
            fold=self.fold,
        )


class ClockTimestamp(float):
    """A POSIX timestamp from a :class:`ClockDateTime`; warns like it against ``time.time()``.

    ``+`` a number, and ``-`` a duration (a number below 1e9), keep the subclass, so
    ``expires_at.timestamp() - 30 < time.time()`` is noticed too; ``int()`` and
    ``round()`` give plain numbers, which never warn.
    """

    __slots__ = ()

    def __lt__(self, other: float) -> bool:
        __tracebackhide__ = True
        _check_timestamp(self, other)
        return float.__lt__(self, other)

    def __le__(self, other: float) -> bool:
        __tracebackhide__ = True
        _check_timestamp(self, other)
        return float.__le__(self, other)

    def __gt__(self, other: float) -> bool:
        __tracebackhide__ = True
        _check_timestamp(self, other)
        return float.__gt__(self, other)

    def __ge__(self, other: float) -> bool:
        __tracebackhide__ = True
        _check_timestamp(self, other)
        return float.__ge__(self, other)

    def __add__(self, other: float) -> float:
        result = float.__add__(self, other)
        if result is NotImplemented or isinstance(other, ClockTimestamp):
            return result
        return ClockTimestamp(result)

    __radd__ = __add__

    def __sub__(self, other: float) -> float:
        __tracebackhide__ = True
        _check_timestamp(self, other)
        result = float.__sub__(self, other)
        if result is NotImplemented or isinstance(other, ClockTimestamp):
            return result
        return ClockTimestamp(result) if abs(other) < _DURATION_LIMIT else result

    def __rsub__(self, other: float) -> float:
        __tracebackhide__ = True
        _check_timestamp(self, other)
        return float.__rsub__(self, other)

    def __reduce__(self) -> tuple[Any, ...]:
        return (float, (float(self),))

    def __copy__(self) -> ClockTimestamp:
        return self

    def __deepcopy__(self, memo: object) -> ClockTimestamp:
        return self


class _Traveller(Protocol):
    """What FakeClock needs of a running ``time_machine.travel``: moving it."""

    def shift(self, delta: timedelta) -> None: ...


class _Travel(Protocol):
    """A ``time_machine.travel``: started on entry, stopped on exit."""

    def start(self) -> _Traveller: ...

    def stop(self) -> None: ...


class FakeClock:
    """Deterministic ``Clock``: ``sleep`` advances time instead of blocking, and is recorded.

    Starts at 2026-01-01T00:00:00Z (or ``start``) with ``monotonic()`` at 1000.0, so tests
    never depend on when they run. Thread-safe: all state sits behind one lock. ``now()``
    returns a :class:`ClockDateTime`.
    """

    def __init__(self, start: datetime | None = None) -> None:
        when = _EPOCH if start is None else _aware_utc(start)
        self._lock = threading.Lock()
        self._now = _on_clock(when)
        self._monotonic = _MONOTONIC_START
        self._sleeps: list[float] = []
        self._previous: Clock | None = None
        self._installed = False
        self._travellers: list[_Traveller] = []

    def now(self) -> ClockDateTime:
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
        target = _on_clock(_aware_utc(when))
        with self._lock:
            delta = target - self._now
            self._now = target
            if delta > timedelta(0):
                self._monotonic += delta.total_seconds()
            self._move_frozen(delta)

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
        """Inside the block, code that reads the clock itself sees this clock, in every thread.

        ``datetime.now()``, ``date.today()``, ``time.time()``, ``time.time_ns()``,
        ``time.gmtime()``, ... give this clock's ``now()`` (through time-machine, which
        patches them at the C level, so every caller at any depth sees the same), with the
        local time zone set to UTC; ``time.monotonic()`` and ``time.monotonic_ns()`` give its
        ``monotonic()`` when called from the code under test. ``advance``, ``sleep`` and
        ``set`` move both. Opt-in, for user code that bypasses the library's clock; the
        library itself needs none of it. What stays real:

        - ``time.monotonic()`` called from the standard library, from installed packages
          (site-packages) and from requestforge and this plugin, whose waits and timeouts
          (asyncio's loop, a lock's ``timeout=``, the stress harness) must keep passing;
          and every ``monotonic`` captured before the block (``from time import
          monotonic``, as ``threading`` does). ``time.perf_counter()`` and ``time.sleep()``.
        - It patches process-wide state: freeze and unfreeze from the test's own thread,
          and nest blocks last-in, first-out.

        Needs ``time-machine`` (in the ``testing`` extra), imported only when this is called.
        """
        try:
            import time_machine  # noqa: PLC0415 - optional, and loading it patches nothing
        except ImportError as exc:
            raise ImportError(
                "FakeClock.freeze_wall_clock() needs time-machine: "
                + testing_extra_hint(("time-machine",))
            ) from exc
        with _FREEZE_LOCK:
            with self._lock:
                travel: _Travel = time_machine.travel(self._now.plain(), tick=False)
                traveller = travel.start()
                self._travellers.append(traveller)
            _freeze_monotonic(self)
        try:
            yield self
        finally:
            with _FREEZE_LOCK:
                _unfreeze_monotonic(self)
                with self._lock:
                    self._travellers.remove(traveller)
                    travel.stop()

    def __repr__(self) -> str:
        with self._lock:
            return f"FakeClock(now={self._now.isoformat()}, monotonic={self._monotonic})"

    def _advance(self, seconds: float) -> None:
        delta = timedelta(seconds=seconds)
        self._now += delta
        self._monotonic += seconds
        self._move_frozen(delta)

    def _move_frozen(self, delta: timedelta) -> None:
        """Move every active freeze by ``delta`` (exact: whole microseconds, in integer
        nanoseconds on time-machine's side); the caller holds the lock."""
        if delta:
            for traveller in self._travellers:
                traveller.shift(delta)


def _on_clock(when: datetime) -> ClockDateTime:
    """``when`` as a :class:`ClockDateTime`."""
    return ClockDateTime(
        when.year,
        when.month,
        when.day,
        when.hour,
        when.minute,
        when.second,
        when.microsecond,
        when.tzinfo,
        fold=when.fold,
    )


_EPOCH: Final = _on_clock(datetime(2026, 1, 1, tzinfo=timezone.utc))


def _check_duration(seconds: float) -> None:
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"seconds must be a finite number >= 0, got {seconds}")


def _aware_utc(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"FakeClock needs a timezone-aware datetime, got naive {when!r}")
    return when.astimezone(timezone.utc)


# -- noticing the real wall clock ---------------------------------------------------------


def _check_datetime(fake: datetime, other: object) -> None:
    """Warn when ``other`` is a plain datetime read from the wall clock and ``fake`` is not."""
    __tracebackhide__ = True  # pytest shows the user's comparison, not these frames
    if not isinstance(other, datetime) or isinstance(other, ClockDateTime):
        return
    aware = fake.utcoffset() is not None
    if aware != (other.utcoffset() is not None):
        return  # the operation itself raises TypeError
    if abs(datetime.__sub__(fake, other)) <= _FAR - _NEAR:
        return  # too close together for one of them to be real and the other not
    if aware:
        walls = [datetime.now(timezone.utc)]
    else:  # naive: local time or UTC, whichever the code used
        walls = [datetime.now(), datetime.now(timezone.utc).replace(tzinfo=None)]
    for wall in walls:
        if abs(other - wall) <= _NEAR and abs(datetime.__sub__(fake, wall)) > _FAR:
            _warn(datetime.isoformat(fake), other.isoformat())
            return


def _check_timestamp(fake: float, other: object) -> None:
    """Warn when ``other`` is a plain number read from ``time.time()`` and ``fake`` is not."""
    __tracebackhide__ = True  # pytest shows the user's comparison, not these frames
    if (
        not isinstance(other, int | float)
        or isinstance(other, bool | ClockTimestamp)
        or abs(float(fake) - other) <= (_FAR - _NEAR).total_seconds()
    ):
        return
    wall = time.time()
    near = abs(other - wall) <= _NEAR.total_seconds()
    if near and abs(float(fake) - wall) > _FAR.total_seconds():
        _warn(f"{float(fake)!r}", f"{other!r}")


def _warn(fake: str, other: str) -> None:
    """The warning, attributed to the innermost frame of the code under test (else to the
    innermost one outside requestforge, the library comparing on the caller's behalf)."""
    __tracebackhide__ = True  # pytest shows the user's comparison, not these frames
    frames: list[FrameType] = []
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    index = next((i for i, f in enumerate(frames) if not _waits_in_real_time(f)), None)
    if index is None:
        index = next((i for i, f in enumerate(frames) if not _is_ours(f)), 0)
    frame, level = frames[index], index + 2  # warn()'s stacklevel 2 is frames[0]
    where = describe_site(frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name)
    warnings.warn(
        ForgeClockWarning(
            f"{where} compared a time from requestforge's fake clock ({fake}) with {other}, "
            "which was read from the real wall clock: that code decides expiry with "
            "datetime.now() or time.time() instead of requestforge's clock "
            "(requestforge.get_default_clock().now()); read that one, or freeze the wall "
            "clock too with forge_clock.freeze_wall_clock()"
        ),
        stacklevel=level,
    )


# -- time.monotonic under freeze_wall_clock -----------------------------------------------

_FREEZE_LOCK = threading.Lock()
#: The clocks whose freeze is active, innermost last; the last one answers time.monotonic().
_frozen: list[FakeClock] = []
_real_monotonic: Final = time.monotonic
_real_monotonic_ns: Final = time.monotonic_ns
_OUR_PACKAGES: Final = ("requestforge", "requestforge_testing")


def _frozen_monotonic() -> float:
    """``time.monotonic`` during a freeze: the fake one for the code under test."""
    clock = _clock_for_caller()
    return _real_monotonic() if clock is None else clock.monotonic()


def _frozen_monotonic_ns() -> int:
    """``time.monotonic_ns`` during a freeze: the fake one for the code under test."""
    clock = _clock_for_caller()
    return _real_monotonic_ns() if clock is None else round(clock.monotonic() * 1e9)


def _clock_for_caller() -> FakeClock | None:
    """The innermost frozen clock, unless the caller of ``time.monotonic`` waits in real
    time; None when no freeze is active (a reference kept after the block stays real)."""
    frozen = _frozen[-1:]
    if not frozen:
        return None
    try:
        caller = sys._getframe(2)  # 0 is this, 1 _frozen_monotonic(_ns), 2 its caller
    except ValueError:
        return frozen[0]
    return None if _waits_in_real_time(caller) else frozen[0]


def _freeze_monotonic(clock: FakeClock) -> None:
    """Answer ``time.monotonic`` from ``clock``; the caller holds ``_FREEZE_LOCK``."""
    _frozen.append(clock)
    time.monotonic = _frozen_monotonic
    time.monotonic_ns = _frozen_monotonic_ns


def _unfreeze_monotonic(clock: FakeClock) -> None:
    """Undo ``_freeze_monotonic``; the caller holds ``_FREEZE_LOCK``."""
    _frozen.remove(clock)
    if not _frozen:
        time.monotonic = _real_monotonic
        time.monotonic_ns = _real_monotonic_ns


def _is_ours(frame: FrameType) -> bool:
    name = frame.f_globals.get("__name__", "")
    return isinstance(name, str) and name.partition(".")[0] in _OUR_PACKAGES


def _waits_in_real_time(frame: FrameType) -> bool:
    """Whether ``frame`` is not the user's code (``_code``'s rule: the standard library,
    installed packages, requestforge, this plugin, pytest): its waits must stay real."""
    name = frame.f_globals.get("__name__", "")
    return not is_user_code(frame.f_code, name if isinstance(name, str) else "")

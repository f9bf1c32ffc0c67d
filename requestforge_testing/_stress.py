"""``forge_stress``: call a function from many threads released at the same instant.

A race only shows when threads overlap, so each round starts ``threads`` workers that wait
on one barrier and call ``fn()`` together, with the interpreter's thread switch interval
shortened so they interleave finely. Every worker stays alive until the whole round is over,
so no thread id is reused within a round and per-thread state (sessions, thread-locals) can
be told apart by thread id. The report keeps each call's result or exception for assertions.

The harness waits and measures in real time (``time.monotonic``/``perf_counter``), never on
the library's clock: the code under test may run on a ``FakeClock``, whose ``sleep`` does
not wait.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import ClassVar, Generic, Protocol, TypeVar, cast

__all__ = [
    "StressOutcome",
    "StressReport",
    "StressRound",
    "StressRunner",
    "StressTimeoutError",
    "forge_stress",
]

T = TypeVar("T")
_T = TypeVar("_T")

#: Enough threads to make races likely, few enough to start in milliseconds.
DEFAULT_THREADS = 16
#: One microsecond (the default is 5 ms): threads hand over the GIL after a few bytecodes,
#: so check-then-act gaps get interleaved instead of running through unbroken.
DEFAULT_SWITCH_INTERVAL = 1e-6
#: Per round; generous, because a round only ends early when something hangs.
DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class StressOutcome(Generic[T]):
    """One thread's call in one round: what it returned or raised, and how long it took."""

    round: int
    index: int
    thread_id: int
    thread_name: str
    result: T | None
    error: BaseException | None
    elapsed: float

    @property
    def ok(self) -> bool:
        """True when the call returned instead of raising."""
        return self.error is None


@dataclass(frozen=True)
class StressRound(Generic[T]):
    """One round: every thread's outcome, in thread index order."""

    index: int
    outcomes: tuple[StressOutcome[T], ...]

    @property
    def results(self) -> list[T]:
        """Return values of this round's successful calls, in thread index order."""
        return [cast(T, o.result) for o in self.outcomes if o.error is None]

    @property
    def errors(self) -> list[StressOutcome[T]]:
        """This round's outcomes that raised."""
        return [o for o in self.outcomes if o.error is not None]


@dataclass(frozen=True)
class StressReport(Generic[T]):
    """Everything ``forge_stress`` saw: ``rounds`` in order and ``threads`` per round."""

    #: assert_no_errors lists this many failures one per line and summarises the rest by
    #: type, so 64 threads x 20 rounds of the same error stay readable.
    MAX_LISTED_ERRORS: ClassVar[int] = 20

    rounds: tuple[StressRound[T], ...]
    threads: int

    @property
    def outcomes(self) -> tuple[StressOutcome[T], ...]:
        """Every call of every round, by round then thread index."""
        return tuple(o for r in self.rounds for o in r.outcomes)

    @property
    def results(self) -> list[T]:
        """Return values of every successful call, by round then thread index."""
        return [cast(T, o.result) for o in self.outcomes if o.error is None]

    @property
    def errors(self) -> list[StressOutcome[T]]:
        """The outcomes that raised, by round then thread index."""
        return [o for o in self.outcomes if o.error is not None]

    def assert_no_errors(self) -> None:
        """Raise ``AssertionError`` naming every failed thread and its error, chained from the
        first error so its traceback is shown too."""
        errors = self.errors
        if not errors:
            return
        rounds = len(self.rounds)
        lines = [
            f"{len(errors)} of {len(self.outcomes)} forge_stress calls failed "
            f"({self.threads} threads x {rounds} round{'s' if rounds != 1 else ''}):"
        ]
        listed, rest = errors[: self.MAX_LISTED_ERRORS], errors[self.MAX_LISTED_ERRORS :]
        lines += [
            f"  round {o.round} thread {o.index} ({o.thread_name}): {_describe(o.error)}"
            for o in listed
        ]
        if rest:
            kinds = Counter(type(o.error).__qualname__ for o in rest)
            summary = ", ".join(f"{name} x{count}" for name, count in kinds.most_common())
            lines.append(f"  ... and {len(rest)} more ({summary})")
        raise AssertionError("\n".join(lines)) from errors[0].error


class StressTimeoutError(TimeoutError):
    """A round did not finish in time; ``stuck`` are the threads still inside ``fn()``.

    They are daemon threads and are left running: free whatever they wait on, then join them.
    """

    def __init__(self, message: str, *, round: int, stuck: tuple[threading.Thread, ...]):
        super().__init__(message)
        self.round = round
        self.stuck = stuck


class StressRunner(Protocol):
    """The type of ``forge_stress`` (and of the ``forge_stress`` fixture's value)."""

    def __call__(
        self,
        fn: Callable[[], _T],
        *,
        threads: int = ...,
        rounds: int = ...,
        switch_interval: float | None = ...,
        timeout: float = ...,
        before_round: Callable[[int], object] | None = ...,
    ) -> StressReport[_T]: ...


def forge_stress(
    fn: Callable[[], T],
    *,
    threads: int = DEFAULT_THREADS,
    rounds: int = 1,
    switch_interval: float | None = DEFAULT_SWITCH_INTERVAL,
    timeout: float = DEFAULT_TIMEOUT,
    before_round: Callable[[int], object] | None = None,
) -> StressReport[T]:
    """Call ``fn()`` from ``threads`` threads at once, ``rounds`` times, and report every outcome.

    ``before_round(i)`` runs in the calling thread before round ``i`` (to advance a fake
    clock, invalidate a token, pause a provider). ``switch_interval`` is set with
    ``sys.setswitchinterval`` for the whole run and restored afterwards; None leaves it
    alone. A round still running after ``timeout`` seconds raises ``StressTimeoutError``.
    Exceptions from ``fn`` are collected, not raised: call ``assert_no_errors()``.
    """
    if not callable(fn):
        raise ValueError(f"fn must be callable, got {fn!r}")
    _check_count("threads", threads)
    _check_count("rounds", rounds)
    if switch_interval is not None:
        _check_positive("switch_interval", switch_interval)
    _check_positive("timeout", timeout)
    if before_round is not None and not callable(before_round):
        raise ValueError(f"before_round must be callable or None, got {before_round!r}")

    previous = sys.getswitchinterval()
    if switch_interval is not None:
        sys.setswitchinterval(switch_interval)
    try:
        done: list[StressRound[T]] = []
        for number in range(rounds):
            if before_round is not None:
                before_round(number)
            done.append(_run_round(fn, number, threads, float(timeout)))
    finally:
        if switch_interval is not None:
            sys.setswitchinterval(previous)
    return StressReport(rounds=tuple(done), threads=threads)


def _run_round(fn: Callable[[], T], number: int, threads: int, timeout: float) -> StressRound[T]:
    deadline = time.monotonic() + timeout
    round_ = _Round(fn, number, threads)
    workers = [
        threading.Thread(
            target=round_.work, args=(i,), name=f"forge-stress-r{number}-t{i}", daemon=True
        )
        for i in range(threads)
    ]
    try:
        for worker in workers:
            worker.start()
        round_.end.wait(timeout=max(deadline - time.monotonic(), 0.0))
    except BaseException as exc:
        # Timed out, could not start a thread, or interrupted: nobody may enter fn() any
        # more; every worker not inside it leaves at once and is joined.
        stuck = round_.abandon()
        for i, worker in enumerate(workers):
            if i not in stuck and worker.ident is not None:
                worker.join()
        if not isinstance(exc, threading.BrokenBarrierError):
            raise
        if stuck or None in round_.slots:
            blocked = tuple(workers[i] for i in stuck)
            names = ", ".join(f"{w.name} (thread id {w.ident})" for w in blocked)
            raise StressTimeoutError(
                f"forge_stress round {number} did not finish in {timeout:g}s: {len(stuck)} of "
                f"{threads} threads still inside fn(): {names or 'none (they never started)'}. "
                "They are left running as daemon threads.",
                round=number,
                stuck=blocked,
            ) from None
        # Every call returned just as time ran out: the round is complete after all.
    else:
        for worker in workers:
            worker.join()
    return StressRound(number, tuple(cast(StressOutcome[T], slot) for slot in round_.slots))


class _Round(Generic[T]):
    """One round's barriers and outcome slots, shared by its workers and the calling thread."""

    def __init__(self, fn: Callable[[], T], number: int, threads: int) -> None:
        self.fn = fn
        self.number = number
        self.start = threading.Barrier(threads)
        # The calling thread is the extra party: passing this barrier means every call
        # returned, and no worker exits before then, so thread ids stay unique in the round.
        self.end = threading.Barrier(threads + 1)
        self.slots: list[StressOutcome[T] | None] = [None] * threads
        self._lock = threading.Lock()
        self._inside: set[int] = set()
        self._abandoned = False

    def work(self, index: int) -> None:
        try:
            self.start.wait()
        except threading.BrokenBarrierError:
            return  # abandoned before it began
        with self._lock:
            # The barrier's own lock already wakes the workers one by one: this adds no
            # serialisation, and tells abandon() exactly who is inside fn().
            if self._abandoned:
                return
            self._inside.add(index)
        me = threading.current_thread()
        began = time.perf_counter()
        result: T | None = None
        error: BaseException | None = None
        try:
            result = self.fn()
        except BaseException as exc:  # noqa: BLE001 - every outcome is reported, none lost
            error = exc
        elapsed = time.perf_counter() - began
        outcome = StressOutcome(self.number, index, me.ident or 0, me.name, result, error, elapsed)
        with self._lock:
            self.slots[index] = outcome
            self._inside.discard(index)
        with suppress(threading.BrokenBarrierError):
            self.end.wait()

    def abandon(self) -> frozenset[int]:
        """Stop the round: release every waiting worker; return who is still inside fn()."""
        with self._lock:
            self._abandoned = True
            stuck = frozenset(self._inside)
        self.start.abort()
        self.end.abort()
        return stuck


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def _check_positive(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")


def _describe(error: BaseException | None) -> str:
    name = type(error).__qualname__
    message = str(error)
    return f"{name}: {message}" if message else name

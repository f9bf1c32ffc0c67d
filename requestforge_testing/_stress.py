"""``forge_stress``: call a function from many threads released at the same instant.

A race only shows when threads overlap, so each round starts ``threads`` workers that wait
on one barrier and call ``fn()`` together, with the interpreter's thread switch interval
shortened so they interleave finely. Every worker stays alive until the whole round is over,
so no thread id is reused within a round and per-thread state (sessions, thread-locals) can
be told apart by thread id. The report keeps each call's result or exception, and checks the
two guarantees the library makes: one token fetch per expiry, one session per thread.

The harness waits and measures in real time (``time.monotonic``/``perf_counter``), never on
the library's clock: the code under test may run on a ``FakeClock``, whose ``sleep`` does
not wait.
"""

from __future__ import annotations

import inspect
import itertools
import math
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from typing import Generic, Protocol, TypeVar, cast

from requestforge_testing._stress_report import (
    FetchCounter,
    HasFetchCount,
    SessionSource,
    StressOutcome,
    StressReport,
    StressRound,
)

__all__ = [
    "DEFAULT_MARKER_THREADS",
    "StressOutcome",
    "StressReport",
    "StressRound",
    "StressRunner",
    "StressTimeoutError",
    "forge_stress",
    "run_stress_marker",
]

T = TypeVar("T")
_T = TypeVar("_T")

#: Enough threads to make races likely, few enough to start in milliseconds.
DEFAULT_THREADS = 16
#: The marker runs a whole test body per thread, usually heavier than one call: fewer threads.
DEFAULT_MARKER_THREADS = 8
#: One microsecond (the default is 5 ms): threads hand over the GIL after a few bytecodes,
#: so check-then-act gaps get interleaved instead of running through unbroken.
DEFAULT_SWITCH_INTERVAL = 1e-6
#: Per round; generous, because a round only ends early when something hangs.
DEFAULT_TIMEOUT = 30.0

_MARKER_OPTIONS = ("threads", "rounds", "switch_interval", "timeout")
_MISSING = object()
_run_numbers = itertools.count(1)
_run_numbers_lock = threading.Lock()


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
        counter: FetchCounter | None = ...,
        sessions: SessionSource | None = ...,
    ) -> StressReport[_T]: ...


def forge_stress(
    fn: Callable[[], T],
    *,
    threads: int = DEFAULT_THREADS,
    rounds: int = 1,
    switch_interval: float | None = DEFAULT_SWITCH_INTERVAL,
    timeout: float = DEFAULT_TIMEOUT,
    before_round: Callable[[int], object] | None = None,
    counter: FetchCounter | None = None,
    sessions: SessionSource | None = None,
) -> StressReport[T]:
    """Call ``fn()`` from ``threads`` threads at once, ``rounds`` times, and report every outcome.

    ``before_round(i)`` runs in the calling thread before round ``i`` (to advance a fake
    clock, invalidate a token, pause a provider). ``switch_interval`` is set with
    ``sys.setswitchinterval`` for the whole run and restored afterwards; None leaves it
    alone. A round still running after ``timeout`` seconds raises ``StressTimeoutError``.
    Exceptions from ``fn`` are collected, not raised: call ``assert_no_errors()``.

    ``counter`` (an int-returning callable, or an object with ``fetch_count``) is read after
    ``before_round`` and after each round, for ``assert_single_fetch(counter)``.
    ``sessions`` (an ``HttpClient``) has its ``session`` read inside every worker just
    before and after ``fn()``, for ``assert_per_thread_sessions(sessions)``. An error in
    that reading, or anywhere else in the harness's own part of a worker, is raised here
    once the round is over (it is not an outcome of ``fn``).
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
    if counter is not None:
        _read_counter(counter)  # fails now, before any thread starts, if it is no counter
    if sessions is not None and inspect.getattr_static(sessions, "session", _MISSING) is _MISSING:
        # getattr_static: reading .session here would give the calling thread a session.
        raise ValueError(
            f"sessions must have a session attribute (an HttpClient), got {sessions!r}"
        )
    with _run_numbers_lock:
        run = next(_run_numbers)

    previous = sys.getswitchinterval()
    if switch_interval is not None:
        sys.setswitchinterval(switch_interval)
    try:
        done: list[StressRound[T]] = []
        for number in range(rounds):
            if before_round is not None:
                before_round(number)
            before = None if counter is None else _read_counter(counter)
            began = time.perf_counter()
            outcomes = _run_round(
                _Round(fn, f"forge-stress-{run}-r{number}", number, threads, sessions),
                float(timeout),
            )
            elapsed = time.perf_counter() - began
            counts = (
                None if before is None else (before, _read_counter(cast(FetchCounter, counter)))
            )
            done.append(StressRound(number, outcomes, counts, elapsed))
    finally:
        if switch_interval is not None:
            sys.setswitchinterval(previous)
    return StressReport(tuple(done), threads, counter, sessions)


def run_stress_marker(
    fn: Callable[[], object],
    args: Sequence[object],
    kwargs: Mapping[str, object],
    *,
    passthrough: tuple[type[BaseException], ...] = (),
) -> StressReport[object]:
    """Run a test body as ``@pytest.mark.forge_stress(**kwargs)`` asks; fail if any call failed.

    When every call raised one of ``passthrough`` (pytest's skip and xfail outcomes), the
    first is re-raised so pytest reports the test skipped or xfailed, not failed.
    """
    __tracebackhide__ = True  # a failure points at the test body, not at this function
    if args:
        raise TypeError(
            f"@pytest.mark.forge_stress takes keyword arguments only "
            f"({', '.join(f'{o}=' for o in _MARKER_OPTIONS)}), got positional {tuple(args)!r}"
        )
    unknown = sorted(set(kwargs) - set(_MARKER_OPTIONS))
    if unknown:
        raise TypeError(
            f"@pytest.mark.forge_stress got unexpected argument(s) {', '.join(unknown)}; "
            f"it takes {', '.join(_MARKER_OPTIONS)}"
        )
    report = forge_stress(
        fn,
        threads=cast(int, kwargs.get("threads", DEFAULT_MARKER_THREADS)),
        rounds=cast(int, kwargs.get("rounds", 1)),
        switch_interval=cast(
            "float | None", kwargs.get("switch_interval", DEFAULT_SWITCH_INTERVAL)
        ),
        timeout=cast(float, kwargs.get("timeout", DEFAULT_TIMEOUT)),
    )
    errors = report.errors
    if passthrough and len(errors) == len(report.outcomes):
        first = errors[0].error
        if all(isinstance(o.error, passthrough) for o in errors) and first is not None:
            raise first
    report.assert_no_errors()
    return report


def _run_round(round_: _Round[T], timeout: float) -> tuple[StressOutcome[T], ...]:
    deadline = time.monotonic() + timeout
    workers = [
        threading.Thread(target=round_.work, args=(i,), name=f"{round_.name}-t{i}", daemon=True)
        for i in range(round_.threads)
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
        if stuck or (None in round_.slots and not round_.failures):
            blocked = tuple(workers[i] for i in stuck)
            names = ", ".join(f"{w.name} (thread id {w.ident})" for w in blocked)
            raise StressTimeoutError(
                f"forge_stress round {round_.number} did not finish in {timeout:g}s: "
                f"{len(stuck)} of {round_.threads} threads still inside fn(): "
                f"{names or 'none (they never started)'}. They are left running as daemon "
                "threads.",
                round=round_.number,
                stuck=blocked,
            ) from None
        # Every call returned just as time ran out: the round is complete after all.
    else:
        for worker in workers:
            worker.join()
    if round_.failures:
        index, error = round_.failures[0]
        _add_note(error, f"raised by forge_stress itself in worker {workers[index].name}")
        raise error
    return tuple(cast(StressOutcome[T], slot) for slot in round_.slots)


class _Round(Generic[T]):
    """One round's barriers and outcome slots, shared by its workers and the calling thread."""

    def __init__(
        self,
        fn: Callable[[], T],
        name: str,
        number: int,
        threads: int,
        sessions: SessionSource | None,
    ) -> None:
        self.fn = fn
        self.name = name
        self.number = number
        self.threads = threads
        self.sessions = sessions
        self.start = threading.Barrier(threads)
        # The calling thread is the extra party: passing this barrier means every call
        # returned, and no worker exits before then, so thread ids stay unique in the round.
        self.end = threading.Barrier(threads + 1)
        self.slots: list[StressOutcome[T] | None] = [None] * threads
        #: Errors of the harness's own code in a worker (not of fn): raised after the round.
        self.failures: list[tuple[int, BaseException]] = []
        self._lock = threading.Lock()
        self._inside: set[int] = set()
        self._abandoned = False

    def work(self, index: int) -> None:
        try:
            self._work(index)
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            with self._lock:
                self.failures.append((index, exc))
        finally:
            with self._lock:
                self._inside.discard(index)
            with suppress(threading.BrokenBarrierError):
                self.end.wait()

    def _work(self, index: int) -> None:
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
        seen = [] if self.sessions is None else [self.sessions.session]
        began = time.perf_counter()
        result: T | None = None
        error: BaseException | None = None
        try:
            result = self.fn()
        except BaseException as exc:  # noqa: BLE001 - every outcome is reported, none lost
            error = exc
        elapsed = time.perf_counter() - began
        if self.sessions is not None:
            seen.append(self.sessions.session)
        outcome = StressOutcome(
            self.number, index, me.ident or 0, me.name, result, error, elapsed, tuple(seen)
        )
        with self._lock:
            self.slots[index] = outcome

    def abandon(self) -> frozenset[int]:
        """Stop the round: release every waiting worker; return who is still inside fn()."""
        with self._lock:
            self._abandoned = True
            stuck = frozenset(self._inside)
        self.start.abort()
        self.end.abort()
        return stuck


def _read_counter(counter: FetchCounter) -> int:
    if inspect.getattr_static(counter, "fetch_count", _MISSING) is not _MISSING:
        value: object = cast(HasFetchCount, counter).fetch_count
    elif callable(counter):
        value = counter()
    else:
        raise ValueError(
            f"counter must be an int-returning callable or have fetch_count, got {counter!r}"
        )
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"counter {counter!r} must count with an int, got {value!r}")
    return value


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


def _add_note(error: BaseException, note: str) -> None:
    add_note = getattr(error, "add_note", None)  # Python 3.11+
    if add_note is not None:
        add_note(note)

"""``forge_stress``: call a function from many threads at once, on a schedule that races.

Each round starts ``threads`` workers that wait on one barrier and call ``fn()`` together.
Two things make their races happen on every run rather than now and then:

- a fake token provider's fetch stays open until every other worker of the round has
  finished or is waiting (``schedule.py``), so a cache without single flight fetches in
  every thread, not only in those the operating system happened to interleave;
- with ``preempt`` (the default) every worker parks before each write to shared state in
  the user's code (``trace.py``): every thread reads before anyone writes.

The scheduler's choices come from ``seed``, printed by every failure. ``schedules=K`` runs
the rounds again under K seeds and stops at the first schedule with a failure.

Every worker stays alive until its whole round is over, so no thread id is reused within a
round and per-thread state (sessions, thread-locals) can be told apart by thread id. The
harness waits and measures in real time (``time.monotonic``/``perf_counter``: under
``freeze_wall_clock`` only the code under test reads the fake time), never on the
library's clock.
"""

from __future__ import annotations

import inspect
import itertools
import math
import random
import sys
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from time import perf_counter
from typing import Protocol, TypeVar, cast

from requestforge_testing._stress.observe import Observations, observing
from requestforge_testing._stress.report import (
    FetchCounter,
    HasFetchCount,
    SessionSource,
    StressReport,
    StressRound,
)
from requestforge_testing._stress.schedule import Round
from requestforge_testing._stress.trace import Preemption

__all__ = [
    "DEFAULTS",
    "DEFAULT_MARKER_THREADS",
    "ForgeStressWarning",
    "StressRunner",
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
#: so what runs unscheduled (the library, the standard library) interleaves finely too.
DEFAULT_SWITCH_INTERVAL = 1e-6
#: Per round; generous, because a round only ends early when something hangs.
DEFAULT_TIMEOUT = 30.0

_MARKER_OPTIONS = (
    "threads",
    "rounds",
    "switch_interval",
    "timeout",
    "seed",
    "schedules",
    "preempt",
    "preempt_packages",
)
_MISSING = object()
_run_numbers = itertools.count(1)
_run_numbers_lock = threading.Lock()
_SEED_LIMIT = 2**32


@dataclass
class _Defaults:
    """Suite-wide settings the plugin fills in from ``--forge-stress-seed`` and
    ``--forge-stress-repeat``."""

    #: A seed for every forge_stress call that gives none (else a random one per call).
    seed: int | None = None
    #: Added to that seed: the repetition number under ``--forge-stress-repeat``.
    offset: int = 0


DEFAULTS = _Defaults()


class ForgeStressWarning(UserWarning):
    """``forge_stress`` could not force interleavings in some of its worker threads.

    On Python 3.10 and 3.11 preemption needs ``sys.settrace``, which a thread running under
    coverage.py or a debugger already uses; on 3.12 and later it needs a free
    ``sys.monitoring`` tool id. Herds are still found (a fake provider's fetch is held
    open either way); races in a narrow window of your code may not be. Run the stress
    tests without the other tracer (or on Python 3.12+, where coverage.py does not get in
    the way), or pass ``preempt=False`` to accept it.
    """


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
        counter: FetchCounter | object | None = ...,
        sessions: SessionSource | Sequence[SessionSource] | None = ...,
        seed: int | None = ...,
        schedules: int = ...,
        check: Callable[[StressReport[_T]], object] | None = ...,
        preempt: bool = ...,
        preempt_packages: Sequence[str] = ...,
    ) -> StressReport[_T]: ...


def forge_stress(
    fn: Callable[[], T],
    *,
    threads: int = DEFAULT_THREADS,
    rounds: int = 1,
    switch_interval: float | None = DEFAULT_SWITCH_INTERVAL,
    timeout: float = DEFAULT_TIMEOUT,
    before_round: Callable[[int], object] | None = None,
    counter: FetchCounter | object | None = None,
    sessions: SessionSource | Sequence[SessionSource] | None = None,
    seed: int | None = None,
    schedules: int = 1,
    check: Callable[[StressReport[T]], object] | None = None,
    preempt: bool = True,
    preempt_packages: Sequence[str] = (),
) -> StressReport[T]:
    """Call ``fn()`` from ``threads`` threads at once, ``rounds`` times, and report every outcome.

    ``before_round(i)`` runs in the calling thread before round ``i`` (to advance a fake
    clock, invalidate a token, pause a provider). ``switch_interval`` is set with
    ``sys.setswitchinterval`` for the whole run and restored afterwards; None leaves it
    alone. A round still running after ``timeout`` seconds raises ``StressTimeoutError``.
    Exceptions from ``fn`` are collected, not raised: call ``assert_no_errors()``.

    ``counter`` (an int-returning callable, an object with ``fetch_count``, or a token
    provider, whose calls are then watched one by one) is read after ``before_round`` and
    after each round, for ``assert_single_fetch(counter)``. ``sessions`` (an
    ``HttpClient``, or several) has its ``session`` read inside every worker just before
    and after ``fn()``, for ``assert_per_thread_sessions()``. An error in that reading, or
    anywhere else in the harness's own part of a worker, is raised here once the round is
    over (it is not an outcome of ``fn``).

    ``seed`` fixes the scheduler's choices (default: ``--forge-stress-seed``, else random;
    every failure prints it). ``schedules`` runs all the rounds again under that many seeds
    (``seed``, ``seed + 1``, ...), stopping after the first schedule in which a call raised
    or ``check(report_of_that_schedule)`` raised; the state ``fn`` works on carries over, so
    put it back in ``before_round``. ``preempt=False`` turns the forced interleavings of
    the user's code off; ``preempt_packages`` names installed packages (or requestforge)
    to interleave as well.
    """
    _check_arguments(
        fn,
        threads=threads,
        rounds=rounds,
        schedules=schedules,
        switch_interval=switch_interval,
        timeout=timeout,
        before_round=before_round,
        check=check,
        seed=seed,
    )
    if not isinstance(preempt, bool):
        raise ValueError(f"preempt must be a bool, got {preempt!r}")
    packages = _packages(preempt_packages)
    sources = _sources(sessions)
    base = _seed(seed, schedules)
    with _run_numbers_lock:
        run = next(_run_numbers)

    previous = sys.getswitchinterval()
    preemption = Preemption(packages) if preempt else None
    with observing(counter) as observations, preemption or nullcontext():
        if inspect.ismethod(fn) and counter is not None and fn.__self__ is counter:
            # forge_stress(provider.fetch_token, counter=provider): the method was bound
            # before the watch wrapped it on the instance; call the watched one.
            fn = getattr(counter, fn.__name__)
        read = _counter_reader(counter, observations)  # fails before any thread starts
        if read is not None:
            read()
        if switch_interval is not None:
            sys.setswitchinterval(switch_interval)
        untraced = 0
        try:
            done: list[StressRound[T]] = []
            for schedule in range(schedules):
                label = schedule if schedules > 1 else None
                first = len(done)
                for number in range(rounds):
                    if before_round is not None:
                        before_round(number)
                    before = None if read is None else read()
                    name = f"forge-stress-{run}-" + (f"s{schedule}-" if label is not None else "")
                    round_ = Round(
                        fn,
                        f"{name}r{number}",
                        number,
                        threads,
                        sources,
                        # a schedule's choices, not a secret
                        rng=random.Random(f"{base + schedule}/{number}"),  # noqa: S311
                        preemption=preemption,
                        schedule=label,
                    )
                    began = perf_counter()
                    outcomes = round_.run(float(timeout))
                    elapsed = perf_counter() - began
                    untraced += round_.untraced
                    counts = None if read is None or before is None else (before, read())
                    done.append(
                        StressRound(number, outcomes, counts, elapsed, base + schedule, label)
                    )
                this = StressReport(
                    tuple(done[first:]), threads, counter, sources, base + schedule, observations
                )
                if this.errors:
                    break
                if check is not None:
                    check(this)
        finally:
            if switch_interval is not None:
                sys.setswitchinterval(previous)
    if untraced:
        warnings.warn(_untraced_message(untraced, len(done) * threads), ForgeStressWarning, 2)
    return StressReport(tuple(done), threads, counter, sources, base, observations)


def _untraced_message(untraced: int, calls: int) -> str:
    reason = (
        "no sys.monitoring tool id was free"
        if sys.version_info >= (3, 12)
        else "another tracer (coverage.py, a debugger) held sys.settrace in those threads"
    )
    return (
        f"forge_stress ran {untraced} of {calls} calls without forced interleavings: "
        f"{reason}. Narrow races in your code may go unseen; see ForgeStressWarning, or "
        "pass preempt=False to accept it."
    )


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
        seed=cast("int | None", kwargs.get("seed")),
        schedules=cast(int, kwargs.get("schedules", 1)),
        preempt=cast(bool, kwargs.get("preempt", True)),
        preempt_packages=cast("Sequence[str]", kwargs.get("preempt_packages", ())),
    )
    errors = report.errors
    if passthrough and errors and len(errors) == len(report.outcomes):
        first = errors[0].error
        if all(isinstance(o.error, passthrough) for o in errors) and first is not None:
            raise first
    report.assert_no_errors()
    return report


def _check_arguments(
    fn: object,
    *,
    threads: object,
    rounds: object,
    schedules: object,
    switch_interval: object,
    timeout: object,
    before_round: object,
    check: object,
    seed: object,
) -> None:
    if not callable(fn):
        raise ValueError(f"fn must be callable, got {fn!r}")
    _check_count("threads", threads)
    _check_count("rounds", rounds)
    _check_count("schedules", schedules)
    if switch_interval is not None:
        _check_positive("switch_interval", switch_interval)
    _check_positive("timeout", timeout)
    for name, value in (("before_round", before_round), ("check", check)):
        if value is not None and not callable(value):
            raise ValueError(f"{name} must be callable or None, got {value!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"seed must be an int >= 0 or None, got {seed!r}")


def _seed(seed: int | None, schedules: int) -> int:
    """The first schedule's seed; repetition r of a test takes the next ``schedules`` seeds
    after those of repetition r - 1, so no two repetitions replay one schedule."""
    if seed is not None:
        return seed
    if DEFAULTS.seed is not None:
        return DEFAULTS.seed + DEFAULTS.offset * schedules
    return random.SystemRandom().randrange(_SEED_LIMIT)


def _sources(sessions: SessionSource | Sequence[SessionSource] | None) -> tuple[SessionSource, ...]:
    if sessions is None:
        return ()
    chosen = list(sessions) if isinstance(sessions, list | tuple) else [sessions]
    if not chosen:
        raise ValueError("sessions must be a client or a non-empty list of clients")
    for source in chosen:
        # getattr_static: reading .session here would give the calling thread a session.
        if inspect.getattr_static(source, "session", _MISSING) is _MISSING:
            raise ValueError(
                f"sessions must have a session attribute (an HttpClient), got {source!r}"
            )
    if len({id(s) for s in chosen}) != len(chosen):
        raise ValueError("sessions lists the same client twice")
    return tuple(cast(SessionSource, s) for s in chosen)


def _packages(packages: Sequence[str]) -> tuple[str, ...]:
    if isinstance(packages, str) or not all(isinstance(p, str) and p.strip() for p in packages):
        raise ValueError(f"preempt_packages must be a list of package names, got {packages!r}")
    return tuple(packages)


def _counter_reader(
    counter: FetchCounter | object | None, observations: Observations
) -> Callable[[], int] | None:
    """A function reading ``counter``, or None without one; raises ValueError for a bad one."""
    from requestforge.tokens._providers import TokenProviderInterface  # noqa: PLC0415

    if counter is None:
        return None
    if inspect.getattr_static(counter, "fetch_count", _MISSING) is not _MISSING:
        return lambda: _count(counter, cast(HasFetchCount, counter).fetch_count)
    if isinstance(counter, TokenProviderInterface):
        return lambda: len(observations.calls)
    if callable(counter):
        return lambda: _count(counter, counter())
    raise ValueError(
        "counter must be an int-returning callable, have fetch_count, or be a token "
        f"provider, got {counter!r}"
    )


def _count(counter: object, value: object) -> int:
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

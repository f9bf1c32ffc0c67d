"""forge_stress: threads released together, every outcome reported, hangs turned into errors."""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from requestforge import InMemoryTokenStorage, TokenData, TokenManager
from requestforge_testing import (
    FakeTokenProvider,
    StressReport,
    StressRunner,
    StressTimeoutError,
    forge_stress,
)

THREADS = 16
ROUNDS = 20
MANY = 64
ODD_INTERVAL = 0.0123  # no default or test uses it: seeing it proves who set it


@pytest.fixture
def switch_interval() -> Iterator[float]:
    """The interval before the test, put back afterwards in case forge_stress failed to."""
    previous = sys.getswitchinterval()
    yield previous
    sys.setswitchinterval(previous)


class Gathering:
    """Counts arrivals in a round and opens once ``expected`` threads are inside at once."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self._cond = threading.Condition()
        self._arrived = 0

    def reset(self, _round: int = 0) -> None:
        with self._cond:
            self._arrived = 0

    def arrive(self) -> None:
        with self._cond:
            self._arrived += 1
            self._cond.notify_all()

    def wait_all(self, timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._arrived >= self.expected, timeout=timeout)

    def arrive_and_wait(self) -> bool:
        """True only if every expected thread arrived while this one was still inside."""
        self.arrive()
        return self.wait_all()


def alive_workers() -> int:
    """How many of the current round's workers are alive (the caller must be one of them)."""
    prefix = threading.current_thread().name.rsplit("-", 1)[0] + "-"
    return sum(t.name.startswith(prefix) for t in threading.enumerate())


def test_every_thread_is_released_only_once_all_are_started(forge_stress: StressRunner) -> None:
    """When any call begins, all of the round's workers exist: the barrier held them back."""
    report = forge_stress(alive_workers, threads=THREADS, rounds=3)
    report.assert_no_errors()
    assert report.results == [THREADS] * THREADS * 3


def test_all_threads_are_inside_fn_at_the_same_time(forge_stress: StressRunner) -> None:
    """Every thread of every round sees all the others arrive before it returns."""
    gathering = Gathering(THREADS)

    def fn() -> tuple[bool, int]:
        return gathering.arrive_and_wait(), threading.get_ident()

    report = forge_stress(fn, threads=THREADS, rounds=3, before_round=gathering.reset)
    report.assert_no_errors()
    assert [together for together, _ in report.results] == [True] * THREADS * 3
    for round_ in report.rounds:
        idents = [ident for _, ident in round_.results]
        assert idents == [o.thread_id for o in round_.outcomes]
        assert len(set(idents)) == THREADS


def test_workers_stay_alive_until_the_round_ends(forge_stress: StressRunner) -> None:
    """The last call to return still sees every worker of its round alive."""
    lock = threading.Lock()
    finished = [0]

    def fn() -> int | None:
        with lock:
            finished[0] += 1
            last = finished[0] == THREADS
        return alive_workers() if last else None

    report = forge_stress(fn, threads=THREADS)
    assert [r for r in report.results if r is not None] == [THREADS]


def test_results_and_errors_are_kept_per_thread(forge_stress: StressRunner) -> None:
    """Each thread's return value or exception lands in its own outcome, in index order."""
    lock = threading.Lock()
    taken: list[int] = []

    def fn() -> int:
        with lock:
            n = len(taken)
            taken.append(n)
        if n % 2:
            raise ValueError(f"odd {n}")
        return n

    report = forge_stress(fn, threads=8)
    assert sorted(report.results) == [0, 2, 4, 6]
    assert sorted(str(o.error) for o in report.errors) == ["odd 1", "odd 3", "odd 5", "odd 7"]
    assert [o.index for o in report.outcomes] == list(range(8))
    assert report.threads == 8
    for outcome in report.outcomes:
        assert outcome.ok is (outcome.error is None)
        assert (outcome.result is None) is not outcome.ok
        assert re.fullmatch(rf"forge-stress-\d+-r0-t{outcome.index}", outcome.thread_name)
        assert outcome.round == 0
        assert outcome.elapsed >= 0


def test_base_exceptions_from_fn_are_reported_not_raised(forge_stress: StressRunner) -> None:
    """SystemExit or KeyboardInterrupt raised by fn are collected like any error."""

    def fn() -> None:
        raise SystemExit(3)

    report = forge_stress(fn, threads=2)
    assert [type(o.error) for o in report.errors] == [SystemExit, SystemExit]


def test_rounds_run_in_order_after_before_round(forge_stress: StressRunner) -> None:
    """before_round(i) runs in the calling thread before any call of round i."""
    main = threading.get_ident()
    seen: list[tuple[int, int]] = []
    current = [-1]

    def before(i: int) -> None:
        seen.append((i, threading.get_ident()))
        current[0] = i

    report = forge_stress(lambda: current[0], threads=4, rounds=3, before_round=before)
    assert seen == [(0, main), (1, main), (2, main)]
    assert [r.index for r in report.rounds] == [0, 1, 2]
    for round_ in report.rounds:
        assert round_.results == [round_.index] * 4
        assert {o.round for o in round_.outcomes} == {round_.index}
        assert round_.errors == []
    assert len(report.outcomes) == 12
    assert len(report.results) == 12


def test_switch_interval_is_set_during_and_restored_after(switch_interval: float) -> None:
    """fn runs under the requested switch interval; the old one is back afterwards."""
    report = forge_stress(sys.getswitchinterval, threads=4, switch_interval=ODD_INTERVAL)
    assert report.results == [pytest.approx(ODD_INTERVAL)] * 4
    assert sys.getswitchinterval() == switch_interval


def test_switch_interval_none_leaves_it_alone(switch_interval: float) -> None:
    """switch_interval=None runs fn under whatever interval was already set."""
    report = forge_stress(sys.getswitchinterval, threads=2, switch_interval=None)
    assert report.results == [switch_interval] * 2


def test_switch_interval_is_restored_when_fn_or_before_round_raises(
    switch_interval: float,
) -> None:
    """Errors from fn are reported and errors from before_round propagate; both restore it."""

    def fn() -> float:
        raise RuntimeError(str(sys.getswitchinterval()))

    report = forge_stress(fn, threads=2, switch_interval=ODD_INTERVAL)
    assert [float(str(o.error)) for o in report.errors] == [pytest.approx(ODD_INTERVAL)] * 2
    assert sys.getswitchinterval() == switch_interval

    def before(i: int) -> None:
        raise KeyError(f"round {i}")

    with pytest.raises(KeyError, match="round 0"):
        forge_stress(fn, switch_interval=ODD_INTERVAL, before_round=before)
    assert sys.getswitchinterval() == switch_interval


def test_assert_no_errors_names_every_failed_thread(forge_stress: StressRunner) -> None:
    """The message counts the failures, names each thread and quotes each error."""
    lock = threading.Lock()
    taken: list[int] = []

    def fn() -> int:
        with lock:
            n = len(taken)
            taken.append(n)
        if n < 3:
            raise ValueError(f"boom-{n}")
        return n

    report = forge_stress(fn, threads=THREADS)
    with pytest.raises(AssertionError) as info:
        report.assert_no_errors()
    message = str(info.value)
    assert message.startswith(f"3 of {THREADS} forge_stress calls failed ({THREADS} threads x 1")
    for outcome in report.errors:
        assert f"thread {outcome.index} ({outcome.thread_name}): ValueError: boom-" in message
    assert {f"boom-{n}" in message for n in range(3)} == {True}
    assert info.value.__cause__ is report.errors[0].error


def test_assert_no_errors_summarises_beyond_the_listed_ones(forge_stress: StressRunner) -> None:
    """Past MAX_LISTED_ERRORS failures the rest are counted by type, not listed."""

    def fn() -> None:
        raise LookupError("same")

    report = forge_stress(fn, threads=THREADS, rounds=2)
    listed = StressReport.MAX_LISTED_ERRORS
    with pytest.raises(AssertionError) as info:
        report.assert_no_errors()
    lines = str(info.value).splitlines()
    assert len(lines) == 1 + listed + 1 + 1  # header, listed, summary, replay
    assert (
        lines[-2] == f"  ... and {2 * THREADS - listed} more (LookupError x{2 * THREADS - listed})"
    )


def test_assert_no_errors_passes_a_clean_report(forge_stress: StressRunner) -> None:
    """A report without errors passes assert_no_errors."""
    forge_stress(lambda: None, threads=2).assert_no_errors()


def test_a_stuck_worker_times_out_naming_the_thread(switch_interval: float) -> None:
    """A call that never returns fails the round with StressTimeoutError naming its thread."""
    gate = threading.Event()
    first = threading.Lock()

    def fn() -> str:
        if first.acquire(blocking=False):
            gate.wait(timeout=30)
            return "freed"
        return "ok"

    with pytest.raises(StressTimeoutError) as info:
        forge_stress(fn, threads=4, rounds=2, timeout=0.2, switch_interval=ODD_INTERVAL)
    error = info.value
    assert error.round == 0
    assert len(error.stuck) == 1
    stuck = error.stuck[0]
    assert stuck.is_alive()
    assert f"1 of 4 threads still inside fn(): {stuck.name} (thread id {stuck.ident})" in str(error)
    assert isinstance(error, TimeoutError)
    assert sys.getswitchinterval() == switch_interval
    others = [t for t in threading.enumerate() if t.name.startswith("forge-stress-")]
    assert others == [stuck], "every worker not stuck in fn() is joined"
    gate.set()
    stuck.join(timeout=10)
    assert not stuck.is_alive()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"threads": 0}, "threads"),
        ({"threads": True}, "threads"),
        ({"threads": 2.0}, "threads"),
        ({"rounds": 0}, "rounds"),
        ({"switch_interval": 0}, "switch_interval"),
        ({"switch_interval": float("nan")}, "switch_interval"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
        ({"before_round": "soon"}, "before_round"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs: dict[str, Any], match: str) -> None:
    """Invalid arguments are refused with ValueError before any thread starts."""
    calls: list[None] = []
    with pytest.raises(ValueError, match=match):
        forge_stress(lambda: calls.append(None), **kwargs)
    assert calls == []


def test_fn_must_be_callable() -> None:
    """A non-callable fn is a ValueError."""
    with pytest.raises(ValueError, match="fn must be callable"):
        forge_stress(42)  # type: ignore[arg-type]


# -- the demonstration: the harness passes a correct manager and catches a naive one ---------


class NaiveManager:
    """Check the storage, fetch, store; no lock, so every thread that finds it empty fetches."""

    KEY = "naive"

    def __init__(self, provider: FakeTokenProvider) -> None:
        self._provider = provider
        self._storage = InMemoryTokenStorage()

    def get_token(self) -> TokenData:
        token = self._storage.get(self.KEY)
        if token is None:
            token = self._provider.fetch_token()
            self._storage.set(self.KEY, token)
        return token

    def invalidate(self) -> None:
        self._storage.delete(self.KEY)


def held_rounds(
    stress: StressRunner,
    provider: FakeTokenProvider,
    get_token: Callable[[], TokenData],
    invalidate: Callable[[], None],
    *,
    release_after_calls: int,
) -> tuple[StressReport[TokenData], list[int]]:
    """Run MANY threads for ROUNDS rounds; before each, drop the token and pause the provider
    until ``release_after_calls`` calls have started and every thread is inside get_token.

    Returns the report and the number of provider calls in each round.
    """
    gathering = Gathering(MANY)
    starts: list[int] = []
    releasers: list[threading.Thread] = []

    def release(base: int) -> None:
        provider.wait_until_called(base + release_after_calls, timeout=10)
        gathering.wait_all(timeout=10)
        provider.resume()

    def before_round(i: int) -> None:
        invalidate()
        gathering.reset()
        starts.append(provider.call_count)
        provider.pause()
        releaser = threading.Thread(target=release, args=(starts[-1],), name=f"releaser-{i}")
        releaser.start()
        releasers.append(releaser)

    def call() -> TokenData:
        gathering.arrive()
        return get_token()

    try:
        report = stress(call, threads=MANY, rounds=ROUNDS, before_round=before_round)
    finally:
        provider.resume()
        for releaser in releasers:
            releaser.join(timeout=10)
    ends = [*starts[1:], provider.call_count]
    return report, [end - start for start, end in zip(starts, ends, strict=True)]


def test_token_manager_fetches_once_per_round_for_64_threads(
    forge_stress: StressRunner, forge_token_provider: FakeTokenProvider
) -> None:
    """With the leader held inside the fetch until all 64 threads arrive, TokenManager still
    makes exactly one fetch per round and every thread gets that round's token."""
    manager = TokenManager(forge_token_provider)
    report, per_round = held_rounds(
        forge_stress,
        forge_token_provider,
        manager.get_token,
        manager.invalidate,
        release_after_calls=1,
    )
    report.assert_no_errors()
    report.assert_single_fetch(forge_token_provider)
    assert per_round == [1] * ROUNDS
    for round_ in report.rounds:
        assert len({id(token) for token in round_.results}) == 1
    assert len({t.access_token for t in report.results}) == ROUNDS


def test_the_harness_catches_a_manager_without_single_flight(
    forge_stress: StressRunner, forge_token_provider: FakeTokenProvider
) -> None:
    """A check-then-fetch manager fetches once per thread when all threads find it empty."""
    naive = NaiveManager(forge_token_provider)
    report, per_round = held_rounds(
        forge_stress,
        forge_token_provider,
        naive.get_token,
        naive.invalidate,
        release_after_calls=MANY,
    )
    report.assert_no_errors()
    with pytest.raises(AssertionError, match=f"round {ROUNDS - 1}: {MANY} fetches, expected 1"):
        report.assert_single_fetch(forge_token_provider)
    assert max(per_round) > 1
    assert per_round == [MANY] * ROUNDS
    assert len({t.access_token for t in report.results}) == MANY * ROUNDS


# -- the harness's own observations: names, counter snapshots, sessions, its own errors -----


def test_thread_names_carry_a_number_unique_to_each_run(forge_stress: StressRunner) -> None:
    """Workers are named forge-stress-<run>-r<round>-t<index>, with a new run number per call,
    so a thread of one run is never mistaken for a thread of another."""
    first = forge_stress(lambda: threading.current_thread().name, threads=2, rounds=2)
    second = forge_stress(lambda: threading.current_thread().name, threads=2)
    pattern = re.compile(r"forge-stress-(\d+)-r(\d+)-t(\d+)")
    runs = set()
    for report in (first, second):
        for outcome in report.outcomes:
            match = pattern.fullmatch(outcome.thread_name)
            assert match is not None
            assert outcome.result == outcome.thread_name
            assert (int(match[2]), int(match[3])) == (outcome.round, outcome.index)
            runs.add((id(report), match[1]))
    assert len(runs) == 2
    assert len({run for _, run in runs}) == 2


def test_counter_is_read_after_before_round_and_after_each_round(
    forge_stress: StressRunner,
) -> None:
    """Each round's counts are the counter just after before_round and just after the round."""
    events: list[str] = []
    lock = threading.Lock()

    def before_round(i: int) -> None:
        events.extend(["before"] * (i + 5))

    def fn() -> None:
        with lock:
            events.append("call")

    report = forge_stress(
        fn, threads=4, rounds=3, before_round=before_round, counter=lambda: len(events)
    )
    assert [r.counts for r in report.rounds] == [(5, 9), (15, 19), (26, 30)]
    assert report.counter is not None


def test_counter_with_fetch_count_is_read_from_that_attribute(
    forge_stress: StressRunner, forge_token_provider: FakeTokenProvider
) -> None:
    """An object with fetch_count (a FakeTokenProvider) is read through that attribute."""
    forge_token_provider.fetch_token()
    report = forge_stress(
        forge_token_provider.fetch_token, threads=3, rounds=2, counter=forge_token_provider
    )
    assert [r.counts for r in report.rounds] == [(1, 4), (4, 7)]


def test_rounds_have_no_counts_without_a_counter(forge_stress: StressRunner) -> None:
    """Without counter= no snapshot is taken and each round's counts is None."""
    report = forge_stress(lambda: None, threads=2, rounds=2)
    assert [r.counts for r in report.rounds] == [None, None]


def test_round_elapsed_covers_its_calls(forge_stress: StressRunner) -> None:
    """A round's elapsed time is at least as long as the slowest of its calls."""
    report = forge_stress(lambda: sum(range(10_000)), threads=4, rounds=2)
    for round_ in report.rounds:
        assert round_.elapsed >= max(o.elapsed for o in round_.outcomes) > 0


class NoCounter:
    """Has neither fetch_count nor __call__."""


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"counter": NoCounter()}, "counter must be an int-returning callable"),
        ({"counter": lambda: "3"}, "must count with an int, got '3'"),
        ({"counter": lambda: True}, "must count with an int, got True"),
        ({"sessions": object()}, "sessions must have a session attribute"),
    ],
)
def test_bad_counter_or_sessions_raise_before_any_thread_starts(
    kwargs: dict[str, Any], match: str
) -> None:
    """A counter that does not count ints, or sessions without .session, is a ValueError."""
    calls: list[None] = []
    with pytest.raises(ValueError, match=match):
        forge_stress(lambda: calls.append(None), **kwargs)
    assert calls == []


class RecordingSource:
    """A session source that hands each thread its own object and records every read."""

    def __init__(self) -> None:
        self.reads: list[tuple[str, int]] = []  # (thread name, workers alive at that moment)
        self._local = threading.local()
        self._lock = threading.Lock()

    @property
    def session(self) -> object:
        with self._lock:
            self.reads.append((threading.current_thread().name, alive_workers()))
        if not hasattr(self._local, "session"):
            self._local.session = object()
        return self._local.session


def test_sessions_are_read_by_each_worker_before_and_after_fn(
    forge_stress: StressRunner,
) -> None:
    """Each worker reads .session twice, itself, while all its round's workers are alive,
    and its outcome keeps both objects it saw; the calling thread never reads it."""
    source = RecordingSource()
    report = forge_stress(lambda: None, threads=THREADS, rounds=2, sessions=source)
    assert report.session_source is source
    assert len(source.reads) == 2 * THREADS * 2
    assert {alive for _, alive in source.reads} == {THREADS}
    assert sorted(name for name, _ in source.reads) == sorted(
        [o.thread_name for o in report.outcomes] * 2
    )
    for outcome in report.outcomes:
        assert len(outcome.sessions) == 2
        assert outcome.sessions[0] is outcome.sessions[1]
    assert len({id(o.sessions[0]) for o in report.outcomes}) == THREADS * 2


class BrokenSource:
    """.session raises in the threads listed in ``fail_in`` (every thread when None)."""

    def __init__(self, fail_in: set[str] | None = None) -> None:
        self.fail_in = fail_in

    @property
    def session(self) -> object:
        name = threading.current_thread().name
        if self.fail_in is None or name.rsplit("-", 1)[1] in self.fail_in:
            raise RuntimeError(f"no session in {name}")
        return self


def test_a_harness_error_in_a_worker_is_raised_in_the_test_thread(switch_interval: float) -> None:
    """An error in the harness's part of a worker (reading sessions=) is raised by forge_stress
    itself, fn is not called by that worker, and the switch interval is restored."""
    calls: list[None] = []
    with pytest.raises(RuntimeError, match=r"no session in forge-stress-\d+-r0-t") as info:
        forge_stress(
            lambda: calls.append(None),
            threads=4,
            sessions=BrokenSource(),
            switch_interval=ODD_INTERVAL,
        )
    assert calls == []
    assert sys.getswitchinterval() == switch_interval
    assert not [t for t in threading.enumerate() if t.name.startswith("forge-stress-")]
    if sys.version_info >= (3, 11):
        assert any("raised by forge_stress itself in worker" in n for n in info.value.__notes__)


def test_a_harness_error_in_one_worker_ends_the_round_without_a_timeout() -> None:
    """One worker's harness error still lets its round finish at once: the error is raised,
    not a StressTimeoutError, and no later round starts."""
    rounds_started: list[int] = []
    with pytest.raises(RuntimeError, match=r"no session in forge-stress-\d+-r0-t2"):
        forge_stress(
            lambda: None,
            threads=4,
            rounds=3,
            timeout=30,
            sessions=BrokenSource({"t2"}),
            before_round=rounds_started.append,
        )
    assert rounds_started == [0]


def test_assert_no_errors_shows_the_first_line_of_a_long_message(
    forge_stress: StressRunner,
) -> None:
    """A multi-line error message (like pytest's assertion rewriting makes) is shown by its
    first line, so each failed thread stays on one line."""

    def fn() -> None:
        raise AssertionError("assert 1 == 2\n +  where 1 = f()")

    report = forge_stress(fn, threads=2)
    with pytest.raises(AssertionError) as info:
        report.assert_no_errors()
    lines = str(info.value).splitlines()
    assert len(lines) == 4  # header, two threads, replay
    assert lines[1].endswith("): AssertionError: assert 1 == 2 [...]")

"""StressReport's assertions: one fetch per round, one session per thread, readable failures."""

from __future__ import annotations

import re
import threading

import pytest
import requests

from requestforge import HttpClient, TokenManager
from requestforge_testing import FakeTokenProvider, StressReport, StressRunner

THREADS = 8
ROUNDS = 3


def index() -> int:
    """The calling worker's thread index, from its name (forge-stress-<run>-r<round>-t<index>)."""
    return int(threading.current_thread().name.rsplit("-t", 1)[1])


def run_plan(
    stress: StressRunner, provider: FakeTokenProvider, plan: dict[int, set[int]], rounds: int
) -> StressReport[None]:
    """Run THREADS threads for ``rounds`` rounds, fetching exactly where ``plan`` says."""
    current = [-1]

    def fn() -> None:
        if index() in plan.get(current[0], set()):
            provider.fetch_token()

    def before_round(i: int) -> None:
        current[0] = i

    return stress(fn, threads=THREADS, rounds=rounds, before_round=before_round)


def failure(check: object, *args: object, **kwargs: object) -> str:
    """The AssertionError message ``check(*args, **kwargs)`` raises (failing if it passes)."""
    assert callable(check)
    with pytest.raises(AssertionError) as info:
        check(*args, **kwargs)
    return str(info.value)


# -- assert_single_fetch with a FakeTokenProvider: fetches attributed by thread ---------------


def test_the_real_token_manager_fetches_once_per_round(
    forge_stress: StressRunner, forge_token_provider: FakeTokenProvider
) -> None:
    """TokenManager, invalidated before each round, passes assert_single_fetch."""
    manager = TokenManager(forge_token_provider)
    report = forge_stress(
        manager.get_token,
        threads=THREADS,
        rounds=ROUNDS,
        before_round=lambda _: manager.invalidate(),
    )
    report.assert_no_errors()
    report.assert_single_fetch(forge_token_provider)
    assert forge_token_provider.fetch_count == ROUNDS


def test_extra_and_missing_fetches_are_listed_by_round_and_thread(
    forge_stress: StressRunner, forge_token_provider: FakeTokenProvider
) -> None:
    """Two fetches in round 0 name both threads; a round without one says so; a correct round
    is not mentioned."""
    report = run_plan(forge_stress, forge_token_provider, {0: {2, 5}, 2: {7}}, ROUNDS)
    message = failure(report.assert_single_fetch, forge_token_provider)
    lines = message.splitlines()
    assert lines[0] == (
        "assert_single_fetch: expected exactly one token fetch in every round "
        f"({THREADS} threads x {ROUNDS} rounds), but:"
    )
    assert lines[1].startswith("  round 0: 2 fetches, expected 1: fetch #")
    for thread in (2, 5):
        assert re.search(
            rf"fetch #[12] by thread {thread} \(forge-stress-\d+-r0-t{thread}\)", lines[1]
        )
    assert lines[2] == (
        "  round 1: no fetch, expected 1: the workers returned NoneType, no token; return the "
        "token from fn to see which one they used"
    )
    assert lines[3].startswith(f"  seed {report.seed}: replay with forge_stress(")
    assert len(lines) == 4


def test_rounds_names_the_rounds_that_must_fetch(
    forge_stress: StressRunner, forge_token_provider: FakeTokenProvider
) -> None:
    """With rounds=[0] round 0 must fetch once and the others not at all."""
    report = run_plan(forge_stress, forge_token_provider, {0: {3}}, ROUNDS)
    report.assert_single_fetch(forge_token_provider, rounds=[0])
    failure(report.assert_single_fetch, forge_token_provider)
    again = run_plan(forge_stress, forge_token_provider, {0: {3}, 2: {1}}, ROUNDS)
    message = failure(again.assert_single_fetch, forge_token_provider, rounds=[0])
    assert "exactly one token fetch in round [0] and none in the others" in message
    assert re.search(r"round 2: 1 fetch, expected 0: fetch #\d+ by thread 1 \(", message)


@pytest.mark.parametrize("rounds", [[3], [-1], [True], ["0"]])
def test_rounds_must_be_indexes_of_the_report(
    forge_stress: StressRunner, forge_token_provider: FakeTokenProvider, rounds: list[object]
) -> None:
    """A round index outside the report (or not an int) is a ValueError, not a silent pass."""
    report = run_plan(forge_stress, forge_token_provider, {}, ROUNDS)
    with pytest.raises(ValueError, match=r"rounds must be round indexes 0\.\.2"):
        report.assert_single_fetch(forge_token_provider, rounds=rounds)  # type: ignore[arg-type]


def test_calls_from_other_threads_are_not_counted_but_shown(
    forge_stress: StressRunner, forge_token_provider: FakeTokenProvider
) -> None:
    """A fetch by the test thread counts for no round; on failure it is listed apart."""
    forge_token_provider.fetch_token()
    report = run_plan(forge_stress, forge_token_provider, {0: {0}}, 1)
    report.assert_single_fetch(forge_token_provider)
    forge_token_provider.fetch_token()
    empty = run_plan(forge_stress, forge_token_provider, {}, 1)
    message = failure(empty.assert_single_fetch, forge_token_provider)
    assert "round 0: no fetch, expected 1" in message
    assert message.splitlines()[-2] == (
        "  (not counted: 3 calls from threads outside the rounds: fetch #1 by MainThread, "
        f"fetch #2 by {report.outcomes[0].thread_name}, fetch #3 by MainThread)"
    )


def test_an_earlier_run_with_the_same_provider_is_not_counted(
    forge_stress: StressRunner, forge_token_provider: FakeTokenProvider
) -> None:
    """Thread ids are reused between runs; the run number in the names keeps them apart."""
    noisy = run_plan(forge_stress, forge_token_provider, {0: set(range(THREADS))}, 1)
    quiet = run_plan(forge_stress, forge_token_provider, {0: {4}}, 1)
    quiet.assert_single_fetch(forge_token_provider)
    message = failure(noisy.assert_single_fetch, forge_token_provider)
    assert f"round 0: {THREADS} fetches, expected 1" in message


def test_failed_and_refresh_calls_count_as_fetches(
    forge_stress: StressRunner, forge_token_provider: FakeTokenProvider
) -> None:
    """A call that raised still reached the endpoint, and a refresh is a fetch too."""
    forge_token_provider.fail_next(RuntimeError("endpoint down"))
    token = FakeTokenProvider().fetch_token()
    failed = threading.Event()

    def fn() -> None:
        if index() == 1:
            try:
                with pytest.raises(RuntimeError, match="endpoint down"):
                    forge_token_provider.fetch_token()
            finally:
                failed.set()
        else:
            assert failed.wait(timeout=10)  # the scripted failure goes to thread 1's fetch
            forge_token_provider.refresh_token(token)

    report = forge_stress(fn, threads=2)
    report.assert_no_errors()
    message = failure(report.assert_single_fetch, forge_token_provider)
    assert "round 0: 2 fetches, expected 1" in message
    assert "fetch #1 (failed) by thread 1 (forge-stress-" in message
    assert "refresh #2 by thread 0 (forge-stress-" in message


def test_long_lists_are_cut_short(
    forge_stress: StressRunner, forge_token_provider: FakeTokenProvider
) -> None:
    """Past MAX_LISTED fetches in a round the rest are counted, not listed."""
    threads = StressReport.MAX_LISTED + 5
    report = forge_stress(forge_token_provider.fetch_token, threads=threads)
    message = failure(report.assert_single_fetch, forge_token_provider)
    assert message.count(" by thread ") == StressReport.MAX_LISTED
    assert message.splitlines()[1].endswith(", ... and 5 more")


# -- assert_single_fetch with a plain counter: snapshots between rounds -----------------------


class Counting:
    """A counting stand-in for a token endpoint, with fetch_count like FakeTokenProvider."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.fetch_count = 0

    def fetch(self) -> None:
        with self._lock:
            self.fetch_count += 1


def test_a_counter_passed_to_forge_stress_is_checked_by_snapshots(
    forge_stress: StressRunner,
) -> None:
    """A fetch_count object passed as counter= passes with one fetch per round, and fails with
    the counter's values and a note that it cannot tell which threads fetched."""
    counting = Counting()
    once = forge_stress(
        lambda: counting.fetch() if index() == 0 else None,
        threads=4,
        rounds=ROUNDS,
        counter=counting,
    )
    once.assert_single_fetch(counting)
    twice = forge_stress(
        lambda: counting.fetch() if index() < 2 else None, threads=4, rounds=2, counter=counting
    )
    message = failure(twice.assert_single_fetch, counting)
    assert message.splitlines()[1:-1] == [
        "  round 0: the counter went from 3 to 5: 2 fetches, expected 1",
        "  round 1: the counter went from 5 to 7: 2 fetches, expected 1",
        "  (counted from snapshots of the counter taken between rounds, which cannot tell "
        "which threads fetched. If the fetches go through a token provider, pass it as "
        "forge_stress(counter=provider) to have every call watched; if they reach "
        "forge_oauth_server, give assert_single_fetch the server)",
    ]


def test_a_callable_counter_works_the_same(forge_stress: StressRunner) -> None:
    """An int-returning callable passed as counter= is checked the same way."""
    counting = Counting()

    def count() -> int:
        return counting.fetch_count

    report = forge_stress(lambda: None, threads=2, rounds=2, counter=count)
    message = failure(report.assert_single_fetch, count, rounds=[1])
    assert "round 1: the counter went from 0 to 0: 0 fetches, expected 1" in message
    assert "round 0" not in message


def test_a_counter_not_given_to_forge_stress_is_refused(forge_stress: StressRunner) -> None:
    """Without snapshots there is nothing honest to check: a ValueError says to pass counter=."""
    counting = Counting()
    report = forge_stress(lambda: None, threads=2, counter=Counting())
    with pytest.raises(ValueError, match=r"forge_stress\(counter=\.\.\.\)"):
        report.assert_single_fetch(counting)
    with pytest.raises(ValueError, match=r"forge_stress\(counter=\.\.\.\)"):
        forge_stress(lambda: None, threads=2).assert_single_fetch(counting)


# -- assert_per_thread_sessions ---------------------------------------------------------------


def test_the_real_client_has_one_session_per_thread(forge_stress: StressRunner) -> None:
    """HttpClient gives every worker of every round its own session, the same throughout."""
    with HttpClient() as client:
        report = forge_stress(
            lambda: client.session, threads=THREADS, rounds=ROUNDS, sessions=client
        )
        report.assert_per_thread_sessions(client)
    assert all(o.result is o.sessions[0] for o in report.outcomes)


def test_a_session_shared_by_every_thread_is_named_with_its_threads(
    forge_stress: StressRunner,
) -> None:
    """A client given one session for all threads fails, naming the session and its threads."""
    shared = requests.Session()
    with HttpClient(session=shared) as client:
        report = forge_stress(lambda: None, threads=THREADS, rounds=ROUNDS, sessions=client)
        message = failure(report.assert_per_thread_sessions, client)
    shared.close()
    lines = message.splitlines()
    assert lines[0] == (
        "assert_per_thread_sessions: HttpClient.session is not one session per thread "
        f"({THREADS} threads x {ROUNDS} rounds; read in each worker before and after its call):"
    )
    assert lines[1].startswith(
        f"  session {id(shared):#x} (Session) was shared by {THREADS * ROUNDS} threads: "
        f"round 0 thread 0 ({report.outcomes[0].thread_name}), round 0 thread 1 ("
    )
    assert lines[1].endswith(f", ... and {THREADS * ROUNDS - StressReport.MAX_LISTED} more")
    assert lines[2].startswith(f"  seed {report.seed}: replay with forge_stress(")
    assert len(lines) == 3


class FreshSessionClient:
    """A broken client: a new session on every read of .session."""

    @property
    def session(self) -> object:
        return object()


def test_a_thread_that_sees_its_session_change_is_named(forge_stress: StressRunner) -> None:
    """A session that is not the same before and after the call fails, per thread."""
    client = FreshSessionClient()
    report = forge_stress(lambda: None, threads=2, sessions=client)
    message = failure(report.assert_per_thread_sessions, client)
    for outcome in report.outcomes:
        first, second = (id(s) for s in outcome.sessions)
        assert f"  {outcome.who} saw 2 sessions: {first:#x}, {second:#x}" in message


def test_sessions_must_come_from_the_object_given_to_forge_stress(
    forge_stress: StressRunner,
) -> None:
    """Asking about another client, or a report made without sessions=, is a ValueError."""
    with HttpClient() as client, HttpClient() as other:
        report = forge_stress(lambda: None, threads=2, sessions=client)
        with pytest.raises(ValueError, match=r"forge_stress\(sessions=\.\.\.\)"):
            report.assert_per_thread_sessions(other)
        with pytest.raises(ValueError, match=r"forge_stress\(sessions=\.\.\.\)"):
            forge_stress(lambda: None, threads=2).assert_per_thread_sessions(client)

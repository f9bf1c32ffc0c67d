"""The seed line that ends every failure of the report, and what giving it back replays."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import requests

from requestforge import (
    HttpClient,
    TokenData,
    TokenManager,
)
from requestforge._clock import get_default_clock
from requestforge_testing import (
    FakeTokenProvider,
    OAuthServer,
    StressReport,
    StressRunner,
)
from tests.inner_pytest import INNER_ARGS
from tests.plugin.catalogue_of_user_bugs import NoLock
from tests.plugin.stress_helpers import (
    SECRET,
    THREADS,
    UserProvider,
    failure,
    index,
    oauth_provider,
    replay_seed,
)

# -- seeds: the last line of every failure, and what it replays -------------------------------

Check = Callable[[], object]


def no_errors(stress: StressRunner, request: pytest.FixtureRequest) -> tuple[int, Check]:
    def fn() -> None:
        raise ConnectionError("refused")

    report = stress(fn, threads=2)
    return report.seed or 0, report.assert_no_errors


def single_fetch(stress: StressRunner, request: pytest.FixtureRequest) -> tuple[int, Check]:
    provider: FakeTokenProvider = request.getfixturevalue("forge_token_provider")
    report = stress(NoLock(provider).get, threads=2)
    return report.seed or 0, lambda: report.assert_single_fetch(provider)


def single_fetch_server(stress: StressRunner, request: pytest.FixtureRequest) -> tuple[int, Check]:
    server: OAuthServer = request.getfixturevalue("forge_oauth_server")
    provider = oauth_provider(server)
    report = stress(lambda: TokenManager(provider).get_token(), threads=2)
    return report.seed or 0, lambda: report.assert_single_fetch(server)


def single_fetch_watched(stress: StressRunner, request: pytest.FixtureRequest) -> tuple[int, Check]:
    provider = UserProvider()
    report = stress(lambda: TokenManager(provider).get_token(), threads=2, counter=provider)
    return report.seed or 0, lambda: report.assert_single_fetch(provider)


def single_fetch_counter(stress: StressRunner, request: pytest.FixtureRequest) -> tuple[int, Check]:
    report = stress(lambda: None, threads=2, counter=lambda: 0)
    return report.seed or 0, lambda: report.assert_single_fetch(report.counter)


def per_thread_sessions(stress: StressRunner, request: pytest.FixtureRequest) -> tuple[int, Check]:
    shared = requests.Session()
    request.addfinalizer(shared.close)
    client = HttpClient(session=shared)
    request.addfinalizer(client.close)
    report = stress(lambda: None, threads=2, sessions=client)
    return report.seed or 0, report.assert_per_thread_sessions


def fresh_tokens(stress: StressRunner, request: pytest.FixtureRequest) -> tuple[int, Check]:
    token = TokenData(access_token=SECRET, expires_at=get_default_clock().now())
    report = stress(lambda: token, threads=2)
    return report.seed or 0, report.assert_fresh_tokens


def count(stress: StressRunner, request: pytest.FixtureRequest) -> tuple[int, Check]:
    report = stress(lambda: None, threads=2)
    return report.seed or 0, lambda: report.assert_count(1)


FAILURES: dict[str, Callable[[StressRunner, pytest.FixtureRequest], tuple[int, Check]]] = {
    "assert_no_errors": no_errors,
    "assert_single_fetch(provider)": single_fetch,
    "assert_single_fetch(server)": single_fetch_server,
    "assert_single_fetch(watched)": single_fetch_watched,
    "assert_single_fetch(counter)": single_fetch_counter,
    "assert_per_thread_sessions": per_thread_sessions,
    "assert_fresh_tokens": fresh_tokens,
    "assert_count": count,
}


@pytest.mark.parametrize("kind", list(FAILURES))
def test_every_failure_ends_with_the_seed_and_how_to_replay_it(
    kind: str, forge_stress: StressRunner, request: pytest.FixtureRequest
) -> None:
    """Whatever the assertion, the last line of its failure gives the run's (random) seed
    and the three ways to replay it, and no other line mentions a seed."""
    seed, check = FAILURES[kind](forge_stress, request)
    message = failure(check)
    assert replay_seed(message) == seed
    assert all("seed" not in line for line in message.splitlines()[:-1])


class Registry:
    """Whoever joins first is the primary; every member wrongly expects to be it."""

    def __init__(self) -> None:
        self.members: list[int] = []

    def join(self, member: int) -> None:
        self.members.append(member)
        if self.members[0] != member:
            raise AssertionError(f"{member} is not the primary: {self.members[0]} joined first")


def joins(stress: StressRunner, seed: int | None) -> tuple[StressReport[None], object]:
    """Run THREADS joins of one Registry under ``seed``: the report and what the schedule did."""
    registry = Registry()
    report = stress(lambda: registry.join(index()), threads=THREADS, seed=seed)
    return report, (tuple(registry.members), [(o.index, str(o.error)) for o in report.errors])


def test_the_seed_of_a_failure_replays_the_same_schedule(forge_stress: StressRunner) -> None:
    """The seed printed by a failure, given back as forge_stress(seed=N), gives the same
    join order and the same failing threads with the same errors."""
    report, first = joins(forge_stress, None)
    seed = replay_seed(failure(report.assert_no_errors))
    assert [joins(forge_stress, seed)[1] for _ in range(2)] == [first, first]


INNER = """
import threading

import pytest


class Registry:
    def __init__(self):
        self.members = []

    def join(self, member):
        self.members.append(member)
        if self.members[0] != member:
            raise AssertionError(f"{member} is not the primary: {self.members[0]} joined first")


@pytest.fixture
def registry():
    return Registry()


@pytest.mark.forge_stress(threads=4MARKER)
def test_join(registry):
    registry.join(threading.current_thread().name.rsplit("-t", 1)[1])
"""


def inner_failure(pytester: pytest.Pytester, marker: str, *args: str) -> tuple[int, list[str]]:
    """Run the inner test once: the seed it printed and its failing threads, run-neutral."""
    pytester.makepyfile(test_inner=INNER.replace("MARKER", marker))
    result = pytester.inline_run(*INNER_ARGS, *args)
    [report] = [r for r in result.getreports("pytest_runtest_logreport") if r.when == "call"]
    assert report.failed
    text = report.longreprtext
    seed = re.search(r"seed (\d+): replay with", text)
    assert seed is not None
    threads = re.findall(r"round 0 thread \d+ \(forge-stress-\d+-r0-t\d+\): .*", text)
    assert len(threads) >= 3
    return int(seed[1]), [re.sub(r"forge-stress-\d+-", "forge-stress-N-", t) for t in threads]


def test_the_markers_seed_replays_the_seed_a_marked_test_printed(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A marked test's failure prints a seed; with @pytest.mark.forge_stress(seed=N) the
    test fails the same threads the same way (the option's replay is in
    test_stress_options.py)."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    seed, first = inner_failure(pytester, "")
    assert inner_failure(pytester, f", seed={seed}") == (seed, first)

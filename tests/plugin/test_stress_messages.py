"""Failure messages that point at the cause: who fetched and from which line, which token the
workers got instead and from whom, the seed that replays the schedule, and no secrets.

Also the rule behind every call site: ``requestforge_testing._code.is_user_code``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from requestforge import (
    ClientCredentialsTokenProvider,
    HttpClient,
    InMemoryTokenStorage,
    TokenData,
    TokenManager,
    TokenProviderInterface,
)
from requestforge._clock import get_default_clock
from requestforge_testing import (
    FakeClock,
    FakeTokenProvider,
    FakeTokenProviderFactory,
    OAuthServer,
    StressCounter,
    StressReport,
    StressRunner,
    forge_stress,
)
from requestforge_testing._code import call_site, is_user_code
from tests.inner_pytest import INNER_ARGS
from tests.plugin.stress_helpers import failure, index, replay_seed

THREADS = 4
HERE = Path(__file__).resolve()
SOURCE = HERE.read_text().splitlines()
#: A made-up "real" token value: it must never appear in a failure message.
SECRET = "rf-live-7Hq2XbN9pL"


def line_of(tag: str) -> int:
    """The line of this file that ends with the comment ``# <- tag``."""
    [number] = [n for n, text in enumerate(SOURCE, 1) if text.endswith(f"# <- {tag}")]
    return number


def sites(message: str, function: str) -> list[int]:
    """The line numbers of every ``at <this file>:<line> in <function>`` in ``message``."""
    found = re.findall(rf" at (\S+):(\d+) in {re.escape(function)}(?=,|$)", message, re.M)
    assert found, f"no call site in {function} in: {message}"
    assert {Path(path).resolve() for path, _ in found} == {HERE}
    return [int(line) for _, line in found]


def oauth_provider(server: OAuthServer) -> ClientCredentialsTokenProvider:
    """A real client-credentials provider for the server's default client, no retries."""
    return ClientCredentialsTokenProvider(
        server.token_url, "forge-client", "forge-secret", max_retries=0
    )


class NoLockCache:
    """Check-then-act without a lock: every thread that finds the cache empty fetches."""

    def __init__(self, provider: FakeTokenProvider) -> None:
        self.provider = provider
        self.token: TokenData | None = None

    def get(self) -> TokenData:
        if self.token is None:
            self.token = self.provider.fetch_token()  # <- no-lock fetch
        return self.token


class UserProvider(TokenProviderInterface):
    """A user's own provider: counts its fetches and issues real-looking (secret) tokens.

    Its refresh_token is the interface's default, which calls fetch_token. It counts with
    no write of its own, so forced interleavings never park inside it.
    """

    def __init__(self, tally: Tally | None = None) -> None:
        self.numbers = itertools.count(1)
        self.fetches = StressCounter()
        self.tally = tally
        self.fail_first = False

    def fetch_token(self) -> TokenData:
        number = next(self.numbers)
        self.fetches.increment()
        if self.tally is not None:
            self.tally.counter.increment()
        if self.fail_first and number == 1:
            raise ConnectionError("token endpoint reset the connection")
        return TokenData(
            access_token=f"{SECRET}-{number}",
            refresh_token=f"{SECRET}-refresh-{number}",
            expires_at=get_default_clock().now() + timedelta(hours=1),
        )

    def count(self) -> int:
        return self.fetches.value

    @property
    def service_name(self) -> str:
        return "user-api"


class Tally:
    """A plain counter object with ``fetch_count``, kept apart from the provider."""

    def __init__(self) -> None:
        self.counter = StressCounter()

    @property
    def fetch_count(self) -> int:
        return self.counter.value


# -- who fetched, from which line -------------------------------------------------------------


def test_each_fetch_names_its_thread_and_the_line_of_user_code(
    forge_stress: StressRunner, forge_token_provider: FakeTokenProvider
) -> None:
    """A cache without a lock fetches in every thread: each fetch is listed with its thread
    and this file's line that called the provider."""
    report = forge_stress(NoLockCache(forge_token_provider).get, threads=THREADS)
    message = failure(report.assert_single_fetch, forge_token_provider)
    fetches = message.splitlines()[1]
    assert fetches.startswith(f"  round 0: {THREADS} fetches, expected 1: fetch #")
    for outcome in report.outcomes:
        assert re.search(
            rf"fetch #\d by thread {outcome.index} \({outcome.thread_name}\) at ", fetches
        )
    assert sites(fetches, "get") == [line_of("no-lock fetch")] * THREADS


def test_frames_of_the_library_are_skipped_to_the_users_line(
    forge_stress: StressRunner, forge_token_provider: FakeTokenProvider
) -> None:
    """A TokenManager made per call fetches inside requestforge; the site named is the line
    of this file that called it, not a line of the library or the plugin."""
    report = forge_stress(
        lambda: TokenManager(forge_token_provider).get_token(),  # <- manager per call
        threads=THREADS,
    )
    message = failure(report.assert_single_fetch, forge_token_provider)
    assert sites(message, "<lambda>") == [line_of("manager per call")] * THREADS
    assert "requestforge/" not in message
    assert "requestforge_testing/" not in message


def test_fn_that_is_the_provider_itself_has_no_site_of_user_code(
    forge_stress: StressRunner, forge_token_provider: FakeTokenProvider
) -> None:
    """When fn is the provider's own method no frame is the user's, and the message says so
    instead of naming a line of the harness."""
    report = forge_stress(forge_token_provider.fetch_token, threads=2)
    message = failure(report.assert_single_fetch, forge_token_provider)
    for outcome in report.outcomes:
        assert (
            f"by thread {outcome.index} ({outcome.thread_name}) from fn itself "
            "(no frame of your code)"
        ) in message
    assert " at " not in message.splitlines()[1]


# -- a round without a fetch: which token the workers got, and from whom ----------------------

REUSED = ": a token from before the round was reused — expire or invalidate it in before_round"


def test_a_token_reused_from_an_earlier_round_names_the_call_that_issued_it(
    forge_stress: StressRunner, forge_token_provider: FakeTokenProvider
) -> None:
    """Without invalidating between rounds, round 1 has no fetch: the message names the
    token, the call and thread that issued it, and the fix; applying the fix passes."""
    manager = TokenManager(forge_token_provider)
    report = forge_stress(manager.get_token, threads=THREADS, rounds=2)
    message = failure(report.assert_single_fetch, forge_token_provider)
    [call] = forge_token_provider.calls
    assert message.splitlines()[1] == (
        "  round 1: no fetch, expected 1: the workers got fake-access-1, issued earlier by "
        f"this provider (call #1 by {call.thread_name}){REUSED}"
    )
    fixed = forge_stress(
        manager.get_token, threads=THREADS, rounds=2, before_round=lambda _: manager.invalidate()
    )
    fixed.assert_single_fetch(forge_token_provider)


def test_two_services_with_the_same_name_read_as_sharing_one_token(
    forge_stress: StressRunner, forge_token_provider_factory: FakeTokenProviderFactory
) -> None:
    """Two providers both named "fake" behind one storage: the payments workers got the
    billing token, and the message says the names collide; distinct names pass."""
    storage = InMemoryTokenStorage()
    billing, payments = forge_token_provider_factory(), forge_token_provider_factory()
    TokenManager(billing, storage).get_token()
    report = forge_stress(TokenManager(payments, storage).get_token, threads=THREADS)
    message = failure(report.assert_single_fetch, payments)
    assert message.splitlines()[1] == (
        "  round 0: no fetch, expected 1: the workers got fake-access-1 from another provider, "
        f"{billing!r} (call #1): two services share one token — both are named 'fake', and a "
        "TokenManager's cache key is built from the name: give each provider its own "
        "service_name"
    )
    named = forge_token_provider_factory(service_name="payments")
    forge_stress(TokenManager(named, storage).get_token).assert_single_fetch(named)


def test_two_services_with_one_cache_key_read_as_sharing_one_token(
    forge_stress: StressRunner, forge_token_provider_factory: FakeTokenProviderFactory
) -> None:
    """Two differently named providers cached under one explicit key: the message says
    they share storage and key."""
    storage = InMemoryTokenStorage()
    billing = forge_token_provider_factory(service_name="billing")
    payments = forge_token_provider_factory(service_name="payments")
    TokenManager(billing, storage, cache_key="token").get_token()
    manager = TokenManager(payments, storage, cache_key="token")
    message = failure(forge_stress(manager.get_token).assert_single_fetch, payments)
    assert message.splitlines()[1] == (
        "  round 0: no fetch, expected 1: the workers got fake-access-1 from another provider, "
        f"{billing!r} (call #1): two services share one token — the code caches both under "
        "one key (a TokenManager: the same storage and cache_key)"
    )


def test_a_token_no_fake_provider_issued_is_named_without_its_value(
    forge_stress: StressRunner, forge_token_provider: FakeTokenProvider, forge_clock: FakeClock
) -> None:
    """A hard-coded token: the message says the witness did not issue it, with its type and
    expiry, and never its value."""
    token = TokenData(access_token=SECRET, expires_at=forge_clock.now() + timedelta(hours=2))
    message = failure(forge_stress(lambda: token).assert_single_fetch, forge_token_provider)
    assert message.splitlines()[1] == (
        "  round 0: no fetch, expected 1: the workers got a TokenData (value hidden) expiring "
        "2026-01-01T02:00:00+00:00, which this witness did not issue in the run"
    )
    assert SECRET not in message


def test_a_round_in_which_every_call_failed_points_at_the_errors(
    forge_stress: StressRunner, forge_token_provider: FakeTokenProvider
) -> None:
    """No worker got a token because every call raised: the message says so and sends the
    reader to assert_no_errors, not to fn's return value."""

    def fn() -> TokenData:
        raise ConnectionError("cache backend down")

    message = failure(forge_stress(fn, threads=2).assert_single_fetch, forge_token_provider)
    assert message.splitlines()[1] == (
        "  round 0: no fetch, expected 1: every call raised, so no worker got a token: "
        "see assert_no_errors()"
    )


# -- plain counters: what they cannot tell, and advice that works -----------------------------

SNAPSHOT_NOTE = (
    "  (counted from snapshots of the counter taken between rounds, which cannot tell which "
    "threads fetched. If the fetches go through a token provider, pass it as "
    "forge_stress(counter=provider) to have every call watched; if they reach "
    "forge_oauth_server, give assert_single_fetch the server)"
)


@pytest.mark.parametrize("kind", ["callable", "fetch_count"])
def test_a_plain_counter_cannot_attribute_and_passing_the_provider_can(
    kind: str, forge_stress: StressRunner
) -> None:
    """With an int callable or a fetch_count object the message gives counts and says why it
    cannot name threads; following its advice, counter=provider, names thread and line."""
    tally = Tally()
    provider = UserProvider(tally)
    counter: object = provider.count if kind == "callable" else tally
    report = forge_stress(
        lambda: TokenManager(provider).get_token(),  # <- counted per call
        threads=THREADS,
        counter=counter,
    )
    message = failure(report.assert_single_fetch, counter)
    assert message.splitlines()[1:-1] == [
        f"  round 0: the counter went from 0 to {THREADS}: {THREADS} fetches, expected 1",
        SNAPSHOT_NOTE,
    ]
    watched = forge_stress(
        lambda: TokenManager(provider).get_token(),  # <- watched per call
        threads=THREADS,
        counter=provider,
    )
    advised = failure(watched.assert_single_fetch, provider)
    for outcome in watched.outcomes:
        assert f"by thread {outcome.index} ({outcome.thread_name}) at " in advised
    assert sites(advised, "<lambda>") == [line_of("watched per call")] * THREADS
    assert "snapshots" not in advised


def test_the_advice_to_give_the_fake_provider_works_on_the_same_report(
    forge_stress: StressRunner, forge_token_provider: FakeTokenProvider
) -> None:
    """A counter reading the fake provider's count gets the snapshot note; the same report
    given the FakeTokenProvider itself names every fetch's thread and line."""
    report = forge_stress(
        NoLockCache(forge_token_provider).get,
        threads=THREADS,
        counter=lambda: forge_token_provider.fetch_count,
    )
    assert SNAPSHOT_NOTE in failure(report.assert_single_fetch, report.counter)
    advised = failure(report.assert_single_fetch, forge_token_provider)
    assert sites(advised, "get") == [line_of("no-lock fetch")] * THREADS


def test_the_advice_to_give_the_oauth_server_works_on_the_same_report(
    forge_stress: StressRunner, forge_oauth_server: OAuthServer
) -> None:
    """A counter reading the server's fetch_count gets the snapshot note; the same report
    given forge_oauth_server names every fetch's thread and line."""
    provider = oauth_provider(forge_oauth_server)
    report = forge_stress(
        lambda: TokenManager(provider).get_token(),  # <- oauth manager per call
        threads=THREADS,
        counter=lambda: forge_oauth_server.fetch_count,
    )
    report.assert_no_errors()
    assert SNAPSHOT_NOTE in failure(report.assert_single_fetch, report.counter)
    advised = failure(report.assert_single_fetch, forge_oauth_server)
    for outcome in report.outcomes:
        assert f"by thread {outcome.index} ({outcome.thread_name}) at " in advised
    assert sites(advised, "<lambda>") == [line_of("oauth manager per call")] * THREADS


def test_a_watched_provider_that_was_never_called_is_not_advised_to_be_watched(
    forge_stress: StressRunner,
) -> None:
    """A provider given as counter= but never called: the message says which token the
    workers got instead, not "pass the token provider itself", which was done."""
    provider = UserProvider()
    token = provider.fetch_token()
    message = failure(forge_stress(lambda: token, counter=provider).assert_single_fetch, provider)
    assert message.splitlines()[1].startswith(
        "  round 0: no fetch, expected 1: the workers got a TokenData (value hidden) expiring "
    )
    assert "snapshots" not in message


# -- forge_oauth_server: fetches pinned on the workers' connections ---------------------------


def test_server_fetches_are_attributed_to_threads_with_the_failed_one_marked(
    forge_stress: StressRunner, forge_oauth_server: OAuthServer
) -> None:
    """Each token request the server received is named with its grant, the worker whose
    connection sent it and this file's line; the one answered 503 is marked (failed)."""
    forge_oauth_server.fail_next()
    provider = oauth_provider(forge_oauth_server)
    report = forge_stress(
        lambda: TokenManager(provider).get_token(),  # <- oauth per call, one failed
        threads=THREADS,
    )
    assert len(report.errors) == 1
    message = failure(report.assert_single_fetch, forge_oauth_server)
    fetches = message.splitlines()[1]
    assert fetches.startswith(f"  round 0: {THREADS} fetches, expected 1: client_credentials #")
    [failed] = report.errors
    assert re.search(rf"client_credentials #\d \(failed\) by thread {failed.index} \(", fetches)
    assert fetches.count("(failed)") == 1
    for outcome in report.outcomes:
        assert f"by thread {outcome.index} ({outcome.thread_name}) at " in fetches
    assert sites(fetches, "<lambda>") == [line_of("oauth per call, one failed")] * THREADS


def test_a_correct_manager_passes_against_the_server_round_after_round(
    forge_stress: StressRunner, forge_oauth_server: OAuthServer
) -> None:
    """One TokenManager, invalidated before each round, makes one request per round, each
    pinned on a worker of that round."""
    manager = TokenManager(oauth_provider(forge_oauth_server))
    report = forge_stress(
        manager.get_token, threads=THREADS, rounds=2, before_round=lambda _: manager.invalidate()
    )
    report.assert_no_errors()
    report.assert_single_fetch(forge_oauth_server)
    assert forge_oauth_server.fetch_count == 2


def test_a_server_token_reused_from_before_the_run_says_the_server_issued_it(
    forge_stress: StressRunner, forge_oauth_server: OAuthServer
) -> None:
    """A token fetched by the test thread and reused by the workers: the round has no fetch,
    the token is named as this server's (never by value), and the test thread's request
    is listed apart."""
    manager = TokenManager(oauth_provider(forge_oauth_server))
    manager.get_token()
    message = failure(forge_stress(manager.get_token).assert_single_fetch, forge_oauth_server)
    lines = message.splitlines()
    assert lines[1].startswith(
        "  round 0: no fetch, expected 1: the workers got a TokenData (value hidden) expiring "
    )
    assert lines[1].endswith(f", issued earlier by this server{REUSED}")
    assert lines[2] == (
        "  (not counted: 1 call from threads outside the rounds: client_credentials #1 by a "
        "connection of no worker)"
    )
    assert all(token not in message for token in forge_oauth_server.issued_tokens)


# -- a provider given as counter=: watched call by call ---------------------------------------


def test_a_watched_provider_names_fetches_refreshes_and_failures(
    forge_stress: StressRunner,
) -> None:
    """Every call of a provider given as counter= is recorded with its kind, thread and line;
    a call that raised is marked (failed), and a refresh that falls back to fetch_token (the
    interface's default) is one call, not two."""
    provider = UserProvider()
    provider.fail_first = True
    token = TokenData(access_token=SECRET, expires_at=get_default_clock().now())
    started = threading.Event()

    def fn() -> None:
        if index() == 0:
            try:
                provider.fetch_token()  # <- watched fetch
            finally:
                started.set()
        else:
            assert started.wait(timeout=10)  # the first call, the one that fails, is thread 0's
            provider.refresh_token(token)  # <- watched refresh

    report = forge_stress(fn, threads=3, counter=provider)
    assert [o.index for o in report.errors] == [0]
    message = failure(report.assert_single_fetch, provider)
    fetches = message.splitlines()[1]
    assert fetches.startswith("  round 0: 3 fetches, expected 1: ")
    assert re.search(r"fetch_token #\d \(failed\) by thread 0 \(", fetches)
    assert len(re.findall(r"refresh_token #\d by thread [12] \(", fetches)) == 2
    assert sorted(sites(fetches, "fn")) == sorted(
        [line_of("watched fetch"), line_of("watched refresh"), line_of("watched refresh")]
    )
    assert SECRET not in message


def test_the_watch_on_a_provider_ends_with_the_run(forge_stress: StressRunner) -> None:
    """After forge_stress returns the provider's methods are its own again: later calls are
    not recorded in the report."""
    provider = UserProvider()
    # a lambda: a bound method taken before the run would bypass the watch
    report = forge_stress(lambda: provider.fetch_token(), threads=2, counter=provider)  # noqa: PLW0108
    assert "fetch_token" not in vars(provider)
    assert "refresh_token" not in vars(provider)
    provider.fetch_token()
    assert report.observations is not None
    assert len(report.observations.calls) == 2


def test_a_token_reused_from_a_watched_provider_names_its_call(
    forge_stress: StressRunner,
) -> None:
    """Round 1 reuses the token the watched provider issued in round 0: the message names
    that call and thread (not "did not issue"), and never the token's value."""
    provider = UserProvider()
    manager = TokenManager(provider)
    report = forge_stress(manager.get_token, threads=THREADS, rounds=2, counter=provider)
    message = failure(report.assert_single_fetch, provider)
    assert report.observations is not None
    [call] = report.observations.calls
    line = message.splitlines()[1]
    assert line.startswith("  round 1: no fetch, expected 1: the workers got a TokenData ")
    assert line.endswith(
        f", issued earlier by this provider (call #1 by {call.thread_name}){REUSED}"
    )
    assert SECRET not in message


# -- seeds: the last line of every failure, and what it replays -------------------------------

Check = Callable[[], object]


def no_errors(stress: StressRunner, request: pytest.FixtureRequest) -> tuple[int, Check]:
    def fn() -> None:
        raise ConnectionError("refused")

    report = stress(fn, threads=2)
    return report.seed or 0, report.assert_no_errors


def single_fetch(stress: StressRunner, request: pytest.FixtureRequest) -> tuple[int, Check]:
    provider: FakeTokenProvider = request.getfixturevalue("forge_token_provider")
    report = stress(NoLockCache(provider).get, threads=2)
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


# -- secrets ----------------------------------------------------------------------------------


def test_no_message_prints_a_real_token_of_the_oauth_server(
    forge_stress: StressRunner, forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """Tokens issued by the OAuth server, stale, reused or fetched by every thread, are
    named by type and expiry in every message, never by value."""
    provider = oauth_provider(forge_oauth_server)
    manager = TokenManager(provider, leeway=0, refresh_window=0)
    manager.get_token()
    forge_clock.advance(OAuthServer.DEFAULT_LIFETIME - 5)
    stale = forge_stress(manager.get_token, threads=2, rounds=2)
    herd = forge_stress(lambda: TokenManager(provider).get_token(), threads=2)
    messages = [
        failure(stale.assert_fresh_tokens),
        failure(stale.assert_single_fetch, forge_oauth_server),
        failure(herd.assert_single_fetch, forge_oauth_server),
    ]
    assert "a TokenData (value hidden) expiring 2026-01-01T01:00:00+00:00" in messages[0]
    issued = forge_oauth_server.issued_tokens
    assert len(issued) == 3
    for message in messages:
        assert [token for token in issued if token in message] == []


def test_only_a_fake_providers_tokens_are_shown_by_value(
    forge_stress: StressRunner, forge_token_provider: FakeTokenProvider, forge_clock: FakeClock
) -> None:
    """A stale fake token is shown as fake-access-1; a real one with the same expiry, returned
    by the same calls, only by its type."""
    fake = forge_token_provider.fetch_token()
    real = TokenData(access_token=SECRET, refresh_token=SECRET + "-r", expires_at=fake.expires_at)
    forge_clock.advance(FakeTokenProvider.DEFAULT_LIFETIME - 1)
    message = failure(forge_stress(lambda: (fake, real), threads=1).assert_fresh_tokens)
    assert "got fake-access-1, which expires 1s" in message
    assert (
        "got a TokenData (value hidden) expiring 2026-01-01T01:00:00+00:00, which expires 1s"
        in (message)
    )
    assert SECRET not in message


# -- which code is the user's -----------------------------------------------------------------


def a_user_function() -> None:
    """Code of this test file."""


@pytest.mark.parametrize(
    ("code", "module"),
    [
        (json.dumps.__code__, "json"),
        (threading.Thread.run.__code__, "threading"),
        (requests.get.__code__, "requests.api"),
        (pytest.raises.__code__, "_pytest.python_api"),
        (HttpClient.get.__code__, "requestforge._client"),
        (TokenManager.get_token.__code__, "requestforge._token_manager"),
        (forge_stress.__code__, "requestforge_testing._stress.runner"),
        (FakeTokenProvider.fetch_token.__code__, "requestforge_testing._providers"),
    ],
    ids=[
        "stdlib",
        "stdlib-threading",
        "site-packages",
        "pytest",
        "requestforge",
        "requestforge-tokens",
        "plugin",
        "plugin-provider",
    ],
)
def test_the_library_the_plugin_and_installed_packages_are_not_user_code(
    code: object, module: str
) -> None:
    """Frames of the standard library, site-packages, pytest, requestforge and the plugin are
    never the user's."""
    assert isinstance(code, type(a_user_function.__code__))
    assert not is_user_code(code, module)


def test_a_test_file_is_user_code() -> None:
    """This file's functions are the user's, and so is code exec'd from a string."""
    assert is_user_code(a_user_function.__code__, __name__)
    exec_code = compile("pass", "<string>", "exec")
    assert is_user_code(exec_code, "__main__")
    frozen = compile("pass", "<frozen importlib._bootstrap>", "exec")
    assert not is_user_code(frozen, "importlib._bootstrap")


def test_both_rules_apply_and_include_overrides_the_packages() -> None:
    """A site-packages file is not the user's whatever its module name; requestforge in the
    project tree is excluded by name, and counts again when named in include."""
    assert not is_user_code(requests.get.__code__, "my_app")
    assert not is_user_code(a_user_function.__code__, "requestforge.extras")
    assert not is_user_code(a_user_function.__code__, "requestforge_testing")
    assert is_user_code(a_user_function.__code__, "requestforge_tools")
    assert is_user_code(HttpClient.get.__code__, "requestforge._client", ("requestforge",))
    assert is_user_code(requests.get.__code__, "requests.api", ("requests",))


def test_call_site_names_the_first_user_frame_past_the_standard_library() -> None:
    """From inside a callback run by the json module, the site is this file's line that
    called json.loads, relative to the working directory."""
    seen: list[str | None] = []

    def hook(obj: dict[str, object]) -> dict[str, object]:
        seen.append(call_site(sys._getframe(1)))  # frame 1: json's decoder
        return obj

    json.loads("{}", object_hook=hook)  # <- json callback
    function = "test_call_site_names_the_first_user_frame_past_the_standard_library"
    relative = os.path.relpath(HERE)
    assert seen == [f"{relative}:{line_of('json callback')} in {function}"]
    direct = call_site(sys._getframe())  # <- direct call site
    assert direct == f"{relative}:{line_of('direct call site')} in {function}"
    assert call_site(None) is None


def test_a_site_outside_the_working_directory_is_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from elsewhere, the site keeps the file's full path."""
    monkeypatch.chdir(tmp_path)
    site = call_site(sys._getframe())  # <- absolute site
    assert site is not None
    path, line = re.fullmatch(r"(.+):(\d+) in \w+", site).groups()  # type: ignore[union-attr]
    assert os.path.isabs(path)
    assert Path(path).resolve() == HERE
    assert int(line) == line_of("absolute site")

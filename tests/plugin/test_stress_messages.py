"""Failure messages that point at the cause: who fetched and from which line, which token the
workers got instead and from whom, the seed that replays the schedule, and no secrets.

Also the rule behind every call site: ``requestforge_testing._code.is_user_code``.
"""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from requestforge import (
    InMemoryTokenStorage,
    TokenData,
    TokenManager,
)
from requestforge._clock import get_default_clock
from requestforge_testing import (
    FakeClock,
    FakeTokenProvider,
    FakeTokenProviderFactory,
    OAuthServer,
    StressRunner,
)
from tests.plugin.stress_helpers import (
    SECRET,
    THREADS,
    Tally,
    UserProvider,
    failure,
    index,
    oauth_provider,
)

HERE = Path(__file__).resolve()
SOURCE = HERE.read_text().splitlines()


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


class NoLockCache:
    """Check-then-act without a lock: every thread that finds the cache empty fetches."""

    def __init__(self, provider: FakeTokenProvider) -> None:
        self.provider = provider
        self.token: TokenData | None = None

    def get(self) -> TokenData:
        if self.token is None:
            self.token = self.provider.fetch_token()  # <- no-lock fetch
        return self.token


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

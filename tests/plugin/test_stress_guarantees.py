"""The report's guarantees for several clients, fresh tokens and counts kept by user code.

``assert_per_thread_sessions`` with ``sessions=[a, b]``, ``assert_fresh_tokens`` judged on
``forge_clock``, ``StressReport.assert_count`` and ``StressCounter``: each with a broken
twin that must fail (and what its message says) and a correct one that must pass.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

import pytest
import requests

from requestforge import (
    HttpClient,
    HttpClientConfigBuilder,
    HttpResponse,
    RequestContext,
    ResponseHookInterface,
    TokenData,
    TokenManager,
)
from requestforge_testing import (
    ApiServer,
    FakeClock,
    FakeTokenProvider,
    FakeTokenProviderFactory,
    Reply,
    StressCounter,
    StressReport,
    StressRunner,
)
from tests.plugin.stress_helpers import failure, index, replay_seed

THREADS = 4

# -- assert_per_thread_sessions with several clients -----------------------------------------


class ClassLocalClient(HttpClient):
    """The bug: ``threading.local()`` as a class attribute, so all instances share sessions."""

    _shared_local = threading.local()

    def __init__(self) -> None:
        super().__init__()
        self._local = self._shared_local


class ReconnectingClient(HttpClient):
    """A client whose ``reconnect()`` gives the calling thread a new session."""

    def reconnect(self) -> None:
        self._local.slot = None


def sessions_of(report: StressReport[Any], position: int) -> list[object]:
    """The session each worker saw first through client ``position``, in outcome order."""
    return [o.sessions_by_source[position][0] for o in report.outcomes]


def test_two_clients_sharing_sessions_fail_naming_both_clients_and_each_thread(
    forge_stress: StressRunner, forge_api_server: ApiServer
) -> None:
    """Two instances of a class-level-local client share each thread's session: every
    thread is named with the session and both clients, and nothing else is reported."""
    forge_api_server.add("/billing", Reply(json={"ok": True}))
    forge_api_server.add("/payments", Reply(json={"ok": True}))
    billing, payments = ClassLocalClient(), ClassLocalClient()
    with billing, payments:
        report = forge_stress(
            lambda: (
                billing.get(forge_api_server.url_for("/billing")).status_code,
                payments.get(forge_api_server.url_for("/payments")).status_code,
            ),
            threads=THREADS,
            sessions=[billing, payments],
        )
        report.assert_no_errors()
        message = failure(report.assert_per_thread_sessions)
    lines = message.splitlines()
    assert lines[0] == (
        "assert_per_thread_sessions: the sessions of 2 clients (ClassLocalClient, "
        f"ClassLocalClient) are not one session per thread and client ({THREADS} threads x 1 "
        "round; read in each worker before and after its call):"
    )
    clients = (
        f"client 0 (ClassLocalClient at {id(billing):#x}) and "
        f"client 1 (ClassLocalClient at {id(payments):#x})"
    )
    assert lines[1:-1] == [
        f"  session {id(session):#x} ({type(session).__qualname__}) was shared by 2 clients, "
        f"{clients}, in {outcome.who}"
        for outcome, session in zip(report.outcomes, sessions_of(report, 0), strict=True)
    ]
    assert replay_seed(message) == report.seed


def test_two_correct_clients_pass_across_rounds(forge_stress: StressRunner) -> None:
    """Two plain HttpClients give every worker of every round two sessions of its own."""
    with HttpClient() as billing, HttpClient() as payments:
        report = forge_stress(
            lambda: (billing.session, payments.session),
            threads=THREADS,
            rounds=2,
            sessions=[billing, payments],
        )
        report.assert_per_thread_sessions()
        report.assert_per_thread_sessions([billing, payments])
    seen = [s for o in report.outcomes for s in o.sessions]
    assert len({id(s) for s in seen}) == 2 * THREADS * 2  # each read twice, one per client


def test_one_client_of_several_can_be_checked_alone(forge_stress: StressRunner) -> None:
    """With sessions=[good, bad], checking good passes, checking bad (or all) fails and
    names only bad's shared session, with the client it belongs to."""
    shared = requests.Session()
    with HttpClient() as good, HttpClient(session=shared) as bad:
        report = forge_stress(lambda: None, threads=THREADS, sessions=[good, bad])
        report.assert_per_thread_sessions(good)
        report.assert_per_thread_sessions([good])
        alone = failure(report.assert_per_thread_sessions, bad)
        everything = failure(report.assert_per_thread_sessions)
    shared.close()
    threads = ", ".join(o.who for o in report.outcomes)
    assert alone.splitlines()[0].startswith(
        "assert_per_thread_sessions: HttpClient.session is not one session per thread ("
    )
    assert alone.splitlines()[1:-1] == [
        f"  session {id(shared):#x} (Session) of client 1 (HttpClient at {id(bad):#x}) was "
        f"shared by {THREADS} threads: {threads}"
    ]
    assert everything.splitlines()[1:] == alone.splitlines()[1:]
    assert all(f"{id(s):#x}" not in everything for s in sessions_of(report, 0))


def test_a_client_not_given_as_sessions_is_a_value_error(forge_stress: StressRunner) -> None:
    """Asking about a client that was not in sessions=[...] (alone or in a list), or about
    an empty list, raises ValueError instead of checking nothing."""
    with HttpClient() as billing, HttpClient() as payments, HttpClient() as other:
        report = forge_stress(lambda: None, threads=2, sessions=[billing, payments])
        for clients in (other, [billing, other]):
            with pytest.raises(ValueError, match=r"forge_stress\(sessions=\.\.\.\)") as info:
                report.assert_per_thread_sessions(clients)
            assert repr(other) in str(info.value)
        with pytest.raises(ValueError, match="no client was given"):
            report.assert_per_thread_sessions([])


def test_a_session_replaced_mid_call_is_reported_with_its_client(
    forge_stress: StressRunner,
) -> None:
    """A thread whose session of the second client changes during fn() is named, with the
    two sessions and that client; the first client, unchanged, is not mentioned."""
    flaky = ReconnectingClient()
    with HttpClient() as steady, flaky:
        report = forge_stress(flaky.reconnect, threads=THREADS, sessions=[steady, flaky])
        report.assert_per_thread_sessions(steady)
        message = failure(report.assert_per_thread_sessions)
    assert message.splitlines()[1:-1] == [
        f"  {o.who} saw 2 sessions of client 1 (ReconnectingClient at {id(flaky):#x}): "
        f"{id(o.sessions_by_source[1][0]):#x}, {id(o.sessions_by_source[1][1]):#x}"
        for o in report.outcomes
    ]


# -- assert_fresh_tokens ----------------------------------------------------------------------

LIFETIME = FakeTokenProvider.DEFAULT_LIFETIME


def near_expiry(manager: TokenManager, clock: FakeClock, seconds_left: float) -> None:
    """Cache a token in ``manager``, then move the clock to ``seconds_left`` before it expires."""
    manager.get_token()
    clock.advance(LIFETIME - seconds_left)


def test_a_manager_without_leeway_fails_naming_thread_expiry_and_leeway(
    forge_stress: StressRunner, forge_token_provider: FakeTokenProvider, forge_clock: FakeClock
) -> None:
    """A cache serving its token until the last second hands out one expiring in 10 s: each
    thread is named with the token and how soon it expires, and the leeway is stated."""
    manager = TokenManager(forge_token_provider, leeway=0, refresh_window=0)
    near_expiry(manager, forge_clock, 10)
    report = forge_stress(manager.get_token, threads=THREADS)
    message = failure(report.assert_fresh_tokens, leeway=30)
    assert message.splitlines() == [
        f"assert_fresh_tokens: {THREADS} of {THREADS} tokens returned expire within the 30s "
        f"leeway ({THREADS} threads x 1 round; on the library's clock):",
        *(
            f"  {o.who} got fake-access-1, which expires 10s after it was returned"
            for o in report.outcomes
        ),
        "  a token must be renewed some time before it expires, or the API rejects it in "
        "flight: give the token cache a leeway",
        message.splitlines()[-1],
    ]
    assert replay_seed(message) == report.seed
    report.assert_fresh_tokens(leeway=10)  # exactly 10 s left is not within a 10 s leeway


def test_a_manager_with_leeway_passes_on_the_same_clock(
    forge_stress: StressRunner, forge_token_provider: FakeTokenProvider, forge_clock: FakeClock
) -> None:
    """The default TokenManager (30 s leeway) renews a token with 10 s left, so every caller
    gets the new one and the check passes."""
    manager = TokenManager(forge_token_provider)
    near_expiry(manager, forge_clock, 10)
    report = forge_stress(manager.get_token, threads=THREADS)
    report.assert_fresh_tokens(leeway=30)
    assert {t.access_token for t in report.results} == {"fake-access-2"}


class Credentials:
    """Not a TokenData, but shaped like one: an access token and an expiry."""

    def __init__(self, token: TokenData) -> None:
        self.access_token = token.access_token
        self.expires_at = token.expires_at


SHAPES = {
    "token_data": lambda token: token,
    "access_token_string": lambda token: token.access_token,
    "tuple": lambda token: (200, token),
    "list_of_strings": lambda token: ["other", token.access_token],
    "token_shaped_object": Credentials,
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_tokens_are_found_in_every_documented_shape(
    shape: str,
    forge_stress: StressRunner,
    forge_token_provider: FakeTokenProvider,
    forge_clock: FakeClock,
) -> None:
    """A stale token is found whether fn returns it as TokenData, as the fake provider's
    access-token string, inside a tuple or list, or as any object shaped like a token."""
    token = forge_token_provider.fetch_token()
    forge_clock.advance(LIFETIME - 5)
    result = SHAPES[shape](token)
    report = forge_stress(lambda: result, threads=2)
    message = failure(report.assert_fresh_tokens)
    assert message.splitlines()[0].startswith("assert_fresh_tokens: 2 of 2 tokens returned")
    for outcome in report.outcomes:
        assert f"  {outcome.who} got fake-access-1, which expires 5s after" in message


def test_an_access_token_string_is_judged_by_the_provider_that_issued_it(
    forge_stress: StressRunner,
    forge_token_provider_factory: FakeTokenProviderFactory,
    forge_clock: FakeClock,
) -> None:
    """Two live providers both issued fake-access-1, one expiring in 20 s and one in an hour:
    each string returned is judged by its own provider's token, whichever is looked at first."""
    providers = forge_token_provider_factory(lifetime=20), forge_token_provider_factory()
    short, long = (provider.fetch_token() for provider in providers)
    assert short.access_token == long.access_token == "fake-access-1"
    forge_stress(lambda: long.access_token, threads=2).assert_fresh_tokens(leeway=30)
    message = failure(forge_stress(lambda: short.access_token, threads=2).assert_fresh_tokens)
    assert "got fake-access-1, which expires 20s after it was returned" in message


def test_an_expired_token_says_how_long_ago_it_expired(
    forge_stress: StressRunner, forge_token_provider: FakeTokenProvider, forge_clock: FakeClock
) -> None:
    """A token already past its expiry fails even with leeway=0, saying by how much."""
    token = forge_token_provider.fetch_token()
    forge_clock.advance(LIFETIME + 7)
    message = failure(forge_stress(lambda: token, threads=1).assert_fresh_tokens, leeway=0)
    assert "got fake-access-1, which had expired 7s before it was returned" in message


def test_tokens_that_never_expire_are_fresh(
    forge_stress: StressRunner, forge_token_provider_factory: FakeTokenProviderFactory
) -> None:
    """A token without expires_at counts as checked and is never stale."""
    provider = forge_token_provider_factory(lifetime=None)
    forge_stress(provider.fetch_token, threads=2).assert_fresh_tokens(leeway=3600)
    assert provider.fetch_count == 2


@pytest.mark.parametrize("leeway", [-1, -0.5, True, "30", None, float("nan"), float("inf")])
def test_leeway_must_be_a_finite_number_of_seconds(
    leeway: object, forge_stress: StressRunner, forge_token_provider: FakeTokenProvider
) -> None:
    """A negative, non-numeric, NaN or infinite leeway is a ValueError, not a silent pass."""
    report = forge_stress(forge_token_provider.fetch_token, threads=1)
    with pytest.raises(ValueError, match="leeway must be a number of seconds >= 0"):
        report.assert_fresh_tokens(leeway=leeway)  # type: ignore[arg-type]


def test_calls_that_raised_are_skipped(
    forge_stress: StressRunner, forge_token_provider: FakeTokenProvider, forge_clock: FakeClock
) -> None:
    """Only the calls that returned are judged: the header counts their tokens alone and
    the failed threads are not listed."""
    token = forge_token_provider.fetch_token()
    forge_clock.advance(LIFETIME - 5)

    def fn() -> TokenData:
        if index() % 2:
            raise ConnectionError("the API is down")
        return token

    report = forge_stress(fn, threads=THREADS)
    message = failure(report.assert_fresh_tokens)
    assert message.splitlines()[0].startswith(
        f"assert_fresh_tokens: {THREADS // 2} of {THREADS // 2} tokens returned expire"
    )
    listed = [o.index for o in report.outcomes if f"  {o.who} got " in message]
    assert listed == [0, 2]


@pytest.mark.parametrize("result", [None, 200, "an-unknown-token-string", {"token": "x"}])
def test_a_run_that_returns_no_token_says_fn_must_return_them(
    result: object, forge_stress: StressRunner
) -> None:
    """When fn returns no token at all there is nothing to judge: a ValueError says what fn
    must return, instead of a pass."""
    report = forge_stress(lambda: result, threads=2)
    with pytest.raises(ValueError, match="found no token among the results: fn must return"):
        report.assert_fresh_tokens()


def test_a_run_in_which_every_call_raised_says_so(forge_stress: StressRunner) -> None:
    """When every call raised, the ValueError points at the errors, not at fn's return."""

    def fn() -> TokenData:
        raise ConnectionError("token endpoint down")

    report = forge_stress(fn, threads=2)
    with pytest.raises(ValueError, match=r"every call raised: see assert_no_errors\(\)"):
        report.assert_fresh_tokens()


# -- StressCounter and assert_count -----------------------------------------------------------


class CountingHook(ResponseHookInterface):
    """A response hook tallying responses per method with ``stats[k] += 1``; ``locked`` is
    the fix. ``counter`` counts the same events thread-safely, next to it."""

    def __init__(self, *, locked: bool) -> None:
        self.stats: defaultdict[str, int] = defaultdict(int)
        self.lock = threading.Lock() if locked else None
        self.counter = StressCounter()

    def after_response(self, response: HttpResponse, context: RequestContext) -> HttpResponse:
        self.counter.increment()
        if self.lock is None:
            self.stats[context.request.method] += 1
        else:
            with self.lock:
                self.stats[context.request.method] += 1
        return response


def run_hook(stress: StressRunner, server: ApiServer, hook: CountingHook) -> StressReport[int]:
    """One GET per worker (default threads) through a client sharing ``hook``."""
    server.add("/ping", Reply(json={"ok": True}))
    config = HttpClientConfigBuilder().with_base_url(server.url).with_response_hook(hook).build()
    with HttpClient(config) as client:
        report = stress(lambda: client.get("/ping").status_code)
    report.assert_no_errors()
    return report


def test_an_unlocked_hook_counter_fails_with_the_lost_updates_message(
    forge_stress: StressRunner, forge_api_server: ApiServer
) -> None:
    """``stats[k] += 1`` in a shared hook loses updates under forge_stress's defaults, and
    assert_count says how many and why."""
    hook = CountingHook(locked=False)
    report = run_hook(forge_stress, forge_api_server, hook)
    calls = len(report.outcomes)
    observed = hook.stats["GET"]
    assert observed < calls
    message = failure(report.assert_count, observed, name="stats['GET']")
    lost = calls - observed
    first, _ = message.splitlines()
    assert first == (
        f"assert_count: stats['GET'] is {observed}, expected {calls} (1 per call, {calls} "
        f"calls: {report.threads} threads x 1 round): {lost} "
        f"update{'s were' if lost != 1 else ' was'} lost. Two threads read the same old value "
        "and both wrote it back plus one: a read-modify-write such as `stats[key] += 1` on "
        "shared state without a lock (or a thread-safe counter)."
    )
    assert replay_seed(message) == report.seed


def test_a_stress_counter_next_to_the_hook_counts_every_event(
    forge_stress: StressRunner, forge_api_server: ApiServer
) -> None:
    """Under the same race StressCounter counts every response, and assert_matches names the
    updates the hook lost."""
    hook = CountingHook(locked=False)
    report = run_hook(forge_stress, forge_api_server, hook)
    assert hook.counter.value == len(report.outcomes)
    observed = hook.stats["GET"]
    message = failure(hook.counter.assert_matches, observed, name="stats['GET']")
    assert (
        f"stats['GET'] is {observed}, expected {hook.counter.value} "
        f"({hook.counter.value} events counted): {hook.counter.value - observed} update"
    ) in message.splitlines()[0]
    assert "`stats[key] += 1` on shared state without a lock" in message


def test_a_locked_hook_counter_passes(
    forge_stress: StressRunner, forge_api_server: ApiServer
) -> None:
    """With the lock the hook counts every response: both checks pass."""
    hook = CountingHook(locked=True)
    report = run_hook(forge_stress, forge_api_server, hook)
    report.assert_count(hook.stats["GET"], name="stats['GET']")
    hook.counter.assert_matches(hook.stats["GET"])
    assert hook.stats["GET"] == len(report.outcomes) > 1


class Metered:
    """A user object counting its calls with ``self.calls += 1`` (``locked``: the fix)."""

    def __init__(self, *, locked: bool, per_call: int = 1) -> None:
        self.calls = 0
        self.per_call = per_call
        self.lock = threading.Lock() if locked else None

    def call(self) -> None:
        for _ in range(self.per_call):
            if self.lock is None:
                self.calls += 1
            else:
                with self.lock:
                    self.calls += 1


@pytest.mark.parametrize("locked", [False, True])
def test_a_user_counter_is_checked_against_the_calls(
    locked: bool, forge_stress: StressRunner
) -> None:
    """``self.calls += 1`` without a lock fails assert_count with lost updates; with the lock
    it passes."""
    metered = Metered(locked=locked)
    report = forge_stress(metered.call)
    if locked:
        report.assert_count(metered.calls, name="calls")
        assert metered.calls == len(report.outcomes)
    else:
        message = failure(report.assert_count, metered.calls, name="calls")
        assert f"assert_count: calls is {metered.calls}, expected {len(report.outcomes)}" in (
            message
        )
        assert "lost. Two threads read the same old value" in message


def test_per_call_multiplies_the_calls(forge_stress: StressRunner) -> None:
    """A correct counter of three events per call passes with per_call=3 and fails with the
    default, as more than there were events."""
    metered = Metered(locked=True, per_call=3)
    report = forge_stress(metered.call, threads=THREADS)
    report.assert_count(metered.calls, per_call=3)
    message = failure(report.assert_count, metered.calls, name="events")
    assert message.splitlines()[0] == (
        f"assert_count: events is {3 * THREADS}, expected {THREADS} (1 per call, {THREADS} "
        f"calls: {THREADS} threads x 1 round): {2 * THREADS} more than there were events "
        "(counted twice, or a count left over from before the run)."
    )
    assert replay_seed(message) == report.seed


def test_a_count_left_over_from_before_the_run_is_more_than_expected(
    forge_stress: StressRunner,
) -> None:
    """A counter not reset after a warm-up call is one more than the run's calls."""
    metered = Metered(locked=True)
    metered.call()
    report = forge_stress(metered.call, threads=THREADS)
    message = failure(report.assert_count, metered.calls)
    assert f"the count is {THREADS + 1}, expected {THREADS}" in message
    assert ": 1 more than there were events" in message


def test_calls_that_raised_are_not_expected_to_count(forge_stress: StressRunner) -> None:
    """Only the calls that returned are expected to have counted."""
    counter = StressCounter()

    def fn() -> None:
        if index() % 2:
            raise ConnectionError("refused before the hook ran")
        counter.increment()

    report = forge_stress(fn, threads=THREADS)
    report.assert_count(counter.value)
    message = failure(report.assert_count, counter.value + 1)
    assert f"expected {THREADS // 2} (1 per call, {THREADS // 2} calls: " in message


@pytest.mark.parametrize("per_call", [True, -1, 1.5, "2", None])
def test_assert_count_refuses_a_bad_per_call(per_call: object, forge_stress: StressRunner) -> None:
    """per_call must be an int >= 0 (not a bool)."""
    report = forge_stress(lambda: None, threads=1)
    with pytest.raises(ValueError, match="per_call must be an int >= 0"):
        report.assert_count(1, per_call=per_call)  # type: ignore[arg-type]


@pytest.mark.parametrize("observed", [True, 1.0, "1", None])
def test_assert_count_refuses_an_observed_value_that_is_not_an_int(
    observed: object, forge_stress: StressRunner
) -> None:
    """The observed count must be an int; the error names it by ``name``."""
    report = forge_stress(lambda: None, threads=1)
    with pytest.raises(ValueError, match=r"stats\['GET'\] must be an int"):
        report.assert_count(observed, name="stats['GET']")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="the count must be an int"):
        StressCounter().assert_matches(observed)  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [True, -1, 0.5, "1"])
def test_stress_counter_refuses_a_bad_increment(n: object) -> None:
    """increment(n) takes an int >= 0 only, and a refused one counts nothing."""
    counter = StressCounter()
    with pytest.raises(ValueError, match="n must be an int >= 0"):
        counter.increment(n)  # type: ignore[arg-type]
    assert counter.value == 0


def test_stress_counter_counts_increments_and_resets(forge_stress: StressRunner) -> None:
    """Increments from every worker are all counted; reset() goes back to zero."""
    counter = StressCounter()
    report = forge_stress(lambda: counter.increment(2))
    assert counter.value == 2 * len(report.outcomes)
    assert repr(counter) == f"StressCounter(value={counter.value})"
    counter.assert_matches(2 * len(report.outcomes))
    counter.reset()
    assert counter.value == 0
    counter.assert_matches(0)
    counter.increment(0)
    assert counter.value == 0

"""Tests for requestforge.tokens._manager: caching, single flight, leeway, refresh, failures."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

import pytest

from requestforge import (
    ConfigurationError,
    InMemoryTokenStorage,
    TokenData,
    TokenEndpointError,
    TokenError,
    TokenManager,
    TokenProviderInterface,
    TokenStorageError,
    TokenStorageInterface,
)
from requestforge_testing import FakeClock, FakeTokenProvider, StressRunner
from tests.threads import in_threads, while_held

Stress = StressRunner


def _in_thread(fn: Any) -> tuple[threading.Thread, list[Any]]:
    """Run fn in a started thread; its return value or exception lands in the list."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except Exception as exc:  # noqa: BLE001 - handed to the test to inspect
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


# -- caching ------------------------------------------------------------------------------------


def test_token_is_fetched_once_and_cached(forge_token_provider: FakeTokenProvider) -> None:
    """Repeated get_token calls return the same cached token after one fetch."""
    manager = TokenManager(forge_token_provider)
    tokens = {manager.get_token().access_token for _ in range(10)}
    assert tokens == {"fake-access-1"}
    assert forge_token_provider.fetch_count == 1


def test_cached_token_is_served_while_the_storage_write_lock_is_held(
    forge_token_provider: FakeTokenProvider,
) -> None:
    """The hot path takes no lock: a valid cached token comes back while another thread
    holds the in-memory storage's write lock."""
    storage = InMemoryTokenStorage()
    manager = TokenManager(forge_token_provider, storage)
    first = manager.get_token()
    assert while_held(storage._lock, manager.get_token) is first


def test_get_token_reads_the_near_copy_and_renewal_reads_the_storage(
    forge_clock: FakeClock,
) -> None:
    """get_token() asks the storage for its cached() copy; once that copy enters the
    refresh window, a get() finds the token another manager renewed, with no fetch."""
    calls: list[str] = []

    class Near(InMemoryTokenStorage):
        """Serves the first token it saw from cached(), like a shared storage's near copy."""

        near: TokenData | None = None

        def cached(self, key: str) -> TokenData | None:
            calls.append("cached")
            if self.near is None:
                self.near = super().get(key)
            return self.near

        def get(self, key: str) -> TokenData | None:
            calls.append("get")
            return super().get(key)

    provider = FakeTokenProvider(lifetime=3600)
    storage = Near()
    ours, theirs = TokenManager(provider, storage), TokenManager(provider, storage)
    first = ours.get_token()
    calls.clear()
    assert ours.get_token() is first
    assert calls == ["cached"]  # no storage read on the hot path
    forge_clock.advance(3600 - 200)  # inside the 300 s refresh window
    renewed = theirs.refresh()
    calls.clear()
    assert ours.get_token() == renewed
    assert calls[:2] == ["cached", "get"]
    assert provider.fetch_count == 2  # the first token and the renewal: nothing more


def test_a_storage_failing_to_store_still_hands_over_the_fetched_token(
    forge_token_provider: FakeTokenProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """When set() fails after the fetch (a Redis failover), the caller gets the fetched token
    and a warning, not the storage's error."""

    class Failing(InMemoryTokenStorage):
        def set(self, key: str, token: TokenData) -> None:
            raise TokenStorageError("the master is failing over")

    manager = TokenManager(forge_token_provider, Failing())
    token = manager.get_token()
    assert token.access_token == "fake-access-1"
    assert "could not store the token" in caplog.text
    assert token.access_token not in caplog.text


def test_default_cache_key_comes_from_service_name() -> None:
    """Two providers with different service names keep separate tokens in one storage."""
    storage = InMemoryTokenStorage()
    first = TokenManager(FakeTokenProvider(service_name="billing"), storage)
    second = TokenManager(FakeTokenProvider(service_name="search"), storage)
    assert first.cache_key != second.cache_key
    assert "billing" in first.cache_key
    first.get_token()
    second.get_token()
    assert storage.exists(first.cache_key)
    assert storage.exists(second.cache_key)


def test_invalidate_forces_the_next_fetch(forge_token_provider: FakeTokenProvider) -> None:
    """After invalidate() the stored token is gone and the next caller fetches a new one."""
    manager = TokenManager(forge_token_provider)
    first = manager.get_token()
    manager.invalidate()
    assert not manager.storage.exists(manager.cache_key)
    assert manager.get_token() != first
    assert forge_token_provider.fetch_count == 2


def test_issued_at_is_stamped_when_the_provider_omits_it(forge_clock: FakeClock) -> None:
    """A provider's token without issued_at gets the fetch time, so leeway can be sized."""

    class Bare(TokenProviderInterface):
        def fetch_token(self) -> TokenData:
            return TokenData(access_token="a", expires_at=forge_clock.now() + timedelta(hours=1))

    token = TokenManager(Bare()).get_token()
    assert token.issued_at == forge_clock.now()
    assert token.lifetime == pytest.approx(3600)


def test_a_provider_returning_garbage_stores_nothing() -> None:
    """A provider that returns something other than TokenData is an error and nothing is cached."""

    class Broken(TokenProviderInterface):
        def fetch_token(self) -> TokenData:
            return {"access_token": "x"}  # type: ignore[return-value]

    manager = TokenManager(Broken())
    with pytest.raises(TokenError, match="not TokenData"):
        manager.get_token()
    assert not manager.storage.exists(manager.cache_key)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"leeway": -1}, "leeway"),
        ({"refresh_window": float("inf")}, "refresh_window"),
        ({"wait_timeout": 0}, "wait_timeout"),
        ({"cache_key": ""}, "cache_key"),
        ({"storage": {}}, "storage"),
    ],
)
def test_bad_configuration_is_rejected(kwargs: dict[str, Any], problem: str) -> None:
    """Invalid options raise ConfigurationError at construction, naming the option."""
    with pytest.raises(ConfigurationError, match=problem):
        TokenManager(FakeTokenProvider(), **kwargs)


def test_provider_must_implement_the_interface() -> None:
    """A provider that is not a TokenProviderInterface is rejected at construction."""
    with pytest.raises(ConfigurationError, match="TokenProviderInterface"):
        TokenManager(object())  # type: ignore[arg-type]


def test_repr_shows_no_token(forge_token_provider: FakeTokenProvider) -> None:
    """The manager's repr names its key and never the token it holds."""
    manager = TokenManager(forge_token_provider)
    token = manager.get_token()
    assert token.access_token not in repr(manager)
    assert manager.cache_key in repr(manager)


# -- single flight --------------------------------------------------------------------------------


def test_100_threads_on_a_missing_token_fetch_once(forge_stress: Stress) -> None:
    """100 threads that all find no token produce exactly one fetch per round, and share it."""
    provider = FakeTokenProvider(latency=0.002)
    manager = TokenManager(provider)

    report = forge_stress(
        manager.get_token, threads=100, rounds=10, before_round=lambda _: manager.invalidate()
    )
    report.assert_no_errors()
    report.assert_single_fetch(provider)
    assert provider.fetch_count == 10
    for round_ in report.rounds:
        assert len({getattr(o.result, "access_token", None) for o in round_.outcomes}) == 1


def test_100_threads_on_an_expired_token_fetch_once(
    forge_clock: FakeClock, forge_stress: Stress
) -> None:
    """Crossing the expiry on the clock makes exactly one thread of 100 fetch, every round."""
    provider = FakeTokenProvider(lifetime=600, latency=0.002)
    manager = TokenManager(provider)
    manager.get_token()

    report = forge_stress(
        manager.get_token, threads=100, rounds=10, before_round=lambda _: forge_clock.advance(600)
    )
    report.assert_no_errors()
    report.assert_single_fetch(provider)
    assert provider.fetch_count == 11
    assert len({getattr(o.result, "access_token", None) for o in report.outcomes}) == 10


def test_managers_sharing_a_storage_and_key_fetch_once(forge_stress: Stress) -> None:
    """Single flight is per cache key: two managers on one storage still fetch once."""
    provider = FakeTokenProvider(latency=0.002)
    storage = InMemoryTokenStorage()
    managers = [TokenManager(provider, storage), TokenManager(provider, storage)]
    turn = iter(range(10**6))

    def call() -> TokenData:
        return managers[next(turn) % 2].get_token()

    report = forge_stress(
        call, threads=40, rounds=10, before_round=lambda _: storage.delete(managers[0].cache_key)
    )
    report.assert_no_errors()
    report.assert_single_fetch(provider)
    assert provider.fetch_count == 10
    for round_ in report.rounds:
        assert len({token.access_token for token in round_.results}) == 1


def test_waiters_get_the_leaders_token_without_fetching(
    forge_token_provider: FakeTokenProvider,
) -> None:
    """While the leader is inside the fetch, other callers wait and then get its token."""
    manager = TokenManager(forge_token_provider)
    forge_token_provider.pause()
    leader, leader_out = _in_thread(manager.get_token)
    assert forge_token_provider.wait_until_called(1)
    waiters = [_in_thread(manager.get_token) for _ in range(20)]
    forge_token_provider.resume()
    leader.join(10)
    for thread, _ in waiters:
        thread.join(10)
    assert forge_token_provider.fetch_count == 1
    assert {out[0] for _, out in waiters} == {leader_out[0]}


# -- leeway and the refresh window ---------------------------------------------------------------


def test_leeway_makes_a_token_stale_before_expiry(forge_clock: FakeClock) -> None:
    """A one-hour token is replaced 30 s (the default leeway) before it expires."""
    provider = FakeTokenProvider(lifetime=3600)
    manager = TokenManager(provider, refresh_window=0)
    manager.get_token()
    forge_clock.advance(3600 - 30 - 0.001)
    assert manager.get_token().access_token == "fake-access-1"
    forge_clock.advance(0.001)
    assert manager.get_token().access_token == "fake-access-2"


def test_leeway_is_capped_for_short_lived_tokens(forge_clock: FakeClock) -> None:
    """A 20-second token is not expired on arrival: its leeway is 10% of its life (2 s)."""
    provider = FakeTokenProvider(lifetime=20)
    manager = TokenManager(provider, refresh_window=0)
    assert manager.get_token().access_token == "fake-access-1"
    forge_clock.advance(17.9)
    assert manager.get_token().access_token == "fake-access-1"
    forge_clock.advance(0.1)
    assert manager.get_token().access_token == "fake-access-2"
    assert provider.fetch_count == 2


def test_token_without_expiry_is_never_refreshed(forge_clock: FakeClock) -> None:
    """A token with no expires_at stays in use however far the clock moves."""
    provider = FakeTokenProvider(lifetime=None)
    manager = TokenManager(provider)
    manager.get_token()
    forge_clock.advance(10**7)
    manager.get_token()
    assert provider.fetch_count == 1


def test_refresh_window_refreshes_ahead_while_others_keep_the_valid_token(
    forge_clock: FakeClock,
) -> None:
    """Inside the window one caller refreshes; the others get the old token without waiting."""
    provider = FakeTokenProvider(lifetime=3600)
    manager = TokenManager(provider, refresh_window=300)
    old = manager.get_token()
    forge_clock.advance(3600 - 299)
    provider.pause()
    leader, leader_out = _in_thread(manager.get_token)
    assert provider.wait_until_called(2)
    # The leader is held inside the fetch: everyone else is served at once, in this thread too.
    assert [manager.get_token() for _ in range(5)] == [old] * 5
    provider.resume()
    leader.join(10)
    assert leader_out[0].access_token == "fake-access-2"
    assert manager.get_token() == leader_out[0]
    assert provider.fetch_count == 2


def test_refresh_window_is_capped_for_short_lived_tokens(forge_clock: FakeClock) -> None:
    """A 60-second token is refreshed ahead only in its last half, not for its whole life."""
    provider = FakeTokenProvider(lifetime=60)
    manager = TokenManager(provider)
    manager.get_token()
    forge_clock.advance(29.9)
    manager.get_token()
    assert provider.fetch_count == 1
    forge_clock.advance(0.1)
    manager.get_token()
    assert provider.fetch_count == 2


def test_clock_argument_overrides_the_default() -> None:
    """A manager given clock= reads only that clock for expiry."""
    clock = FakeClock()
    provider = FakeTokenProvider(lifetime=100, clock=clock)
    manager = TokenManager(provider, clock=clock, refresh_window=0)
    manager.get_token()
    clock.advance(95)
    manager.get_token()
    assert provider.fetch_count == 2


# -- refresh tokens ------------------------------------------------------------------------------


def test_refresh_token_is_used_when_present(forge_clock: FakeClock) -> None:
    """An expired token with a refresh token is renewed with refresh_token(), not fetch_token()."""
    provider = FakeTokenProvider(lifetime=600, refresh_tokens=True)
    manager = TokenManager(provider)
    manager.get_token()
    forge_clock.advance(600)
    manager.get_token()
    assert (provider.fetch_count, provider.refresh_count) == (1, 1)


def test_rejected_refresh_token_falls_back_to_a_fetch(forge_clock: FakeClock) -> None:
    """invalid_grant on the refresh (the refresh token expired) leads to a plain fetch."""
    provider = FakeTokenProvider(lifetime=600, refresh_tokens=True)
    manager = TokenManager(provider)
    manager.get_token()
    forge_clock.advance(600)
    provider.fail_next(TokenEndpointError("refused", error="invalid_grant", status_code=400))
    token = manager.get_token()
    assert (provider.fetch_count, provider.refresh_count) == (2, 1)
    assert token.access_token == "fake-access-3"


def test_refresh_keeps_the_old_refresh_token_if_none_is_returned(forge_clock: FakeClock) -> None:
    """RFC 6749 section 6: a refresh response without refresh_token keeps the old one usable."""

    class Provider(TokenProviderInterface):
        def fetch_token(self) -> TokenData:
            return TokenData(access_token="a1", refresh_token="r1", expires_at=_in(forge_clock, 60))

        def refresh_token(self, current: TokenData) -> TokenData:
            assert current.refresh_token == "r1"
            return TokenData(access_token="a2", expires_at=_in(forge_clock, 60))

    manager = TokenManager(Provider())
    manager.get_token()
    forge_clock.advance(60)
    token = manager.get_token()
    assert (token.access_token, token.refresh_token) == ("a2", "r1")


def _in(clock: FakeClock, seconds: float) -> Any:
    return clock.now() + timedelta(seconds=seconds)


class _ExpiringRefreshProvider(TokenProviderInterface):
    """Issues 60-second tokens whose refresh token lives ``refresh_lifetime`` seconds, and
    counts fetches and refreshes; ``rotate=False`` refreshes without a new refresh token."""

    def __init__(self, clock: FakeClock, refresh_lifetime: float, *, rotate: bool = True) -> None:
        self.clock, self.refresh_lifetime, self.rotate = clock, refresh_lifetime, rotate
        self.fetches = self.refreshes = 0
        self.refreshed_with: list[str | None] = []

    def _token(self, name: str, *, refresh: bool) -> TokenData:
        return TokenData(
            access_token=name,
            expires_at=_in(self.clock, 60),
            issued_at=self.clock.now(),
            refresh_token=f"r-{name}" if refresh else None,
            refresh_expires_at=_in(self.clock, self.refresh_lifetime) if refresh else None,
        )

    def fetch_token(self) -> TokenData:
        self.fetches += 1
        return self._token(f"fetched-{self.fetches}", refresh=True)

    def refresh_token(self, current: TokenData) -> TokenData:
        self.refreshes += 1
        self.refreshed_with.append(current.refresh_token)
        return self._token(f"refreshed-{self.refreshes}", refresh=self.rotate)


@pytest.mark.parametrize(
    ("refresh_lifetime", "expected"),
    [
        (600, (1, 1)),  # 540 s left at the refresh: used
        (61, (2, 0)),  # 1 s left, inside its leeway (a tenth of 61 s): a fetch instead
        (60, (2, 0)),  # expired exactly then
        (30, (2, 0)),  # long expired
    ],
)
def test_a_refresh_token_past_its_expiry_is_not_tried(
    forge_clock: FakeClock, refresh_lifetime: float, expected: tuple[int, int]
) -> None:
    """Past (or within the leeway of) refresh_expires_at the manager fetches instead of
    sending a refresh token that would earn an invalid_grant."""
    provider = _ExpiringRefreshProvider(forge_clock, refresh_lifetime)
    manager = TokenManager(provider)
    manager.get_token()
    forge_clock.advance(60)
    manager.get_token()
    assert (provider.fetches, provider.refreshes) == expected


def test_a_kept_refresh_token_keeps_its_expiry(forge_clock: FakeClock) -> None:
    """A refresh answered without a refresh token keeps the old one and its
    refresh_expires_at, so the manager still knows when to stop refreshing."""
    provider = _ExpiringRefreshProvider(forge_clock, 150, rotate=False)
    manager = TokenManager(provider)
    first = manager.get_token()
    forge_clock.advance(60)
    second = manager.get_token()
    assert (second.refresh_token, second.refresh_expires_at) == (
        first.refresh_token,
        first.refresh_expires_at,
    )
    forge_clock.advance(60)  # 30 s left on the refresh token: beyond its 15 s leeway
    manager.get_token()
    forge_clock.advance(60)  # now past it
    manager.get_token()
    assert (provider.fetches, provider.refreshes) == (2, 2)
    assert provider.refreshed_with == ["r-fetched-1", "r-fetched-1"]


# -- expires_in=0: do not cache ---------------------------------------------------------------


def test_a_token_with_expires_in_0_is_never_stored_or_reused(forge_clock: FakeClock) -> None:
    """expires_in=0 means "do not cache": each call fetches, and the storage stays empty."""
    provider = FakeTokenProvider(lifetime=0)
    storage = InMemoryTokenStorage()
    manager = TokenManager(provider, storage)
    tokens = [manager.get_token().access_token for _ in range(3)]
    assert tokens == ["fake-access-1", "fake-access-2", "fake-access-3"]
    assert storage.get(manager.cache_key) is None
    assert manager.refresh("fake-access-3").access_token == "fake-access-4"
    assert storage.get(manager.cache_key) is None


def test_expires_in_0_from_a_response_is_not_cached(forge_clock: FakeClock) -> None:
    """A provider parsing {"expires_in": 0} gets the same treatment; a 1-second token is cached."""

    class Provider(TokenProviderInterface):
        def __init__(self, lifetime: int) -> None:
            self.lifetime, self.fetches = lifetime, 0

        def fetch_token(self) -> TokenData:
            self.fetches += 1
            body = {"access_token": f"t{self.fetches}", "expires_in": self.lifetime}
            return TokenData.from_response(body)

    zero, one = Provider(0), Provider(1)
    for provider in (zero, one):
        manager = TokenManager(provider)
        manager.get_token()
        manager.get_token()
    assert (zero.fetches, one.fetches) == (2, 1)


def test_32_callers_share_one_fetch_of_an_expires_in_0_token(forge_stress: Stress) -> None:
    """Still single flight per burst: 32 concurrent callers get one fetch's token, and the
    next burst fetches anew because nothing was stored."""
    provider = FakeTokenProvider(lifetime=0)
    storage = InMemoryTokenStorage()
    manager = TokenManager(provider, storage)

    report = forge_stress(manager.get_token, threads=32, rounds=5)
    report.assert_no_errors()
    report.assert_single_fetch(provider)
    assert provider.fetch_count == 5
    for round_ in report.rounds:
        assert len({token.access_token for token in round_.results}) == 1
    assert storage.get(manager.cache_key) is None


# -- compare-and-refresh -------------------------------------------------------------------------


def test_refresh_of_the_stored_token_fetches(forge_token_provider: FakeTokenProvider) -> None:
    """refresh(rejected) replaces the token when it is still the stored one."""
    manager = TokenManager(forge_token_provider)
    first = manager.get_token()
    assert manager.refresh(first).access_token == "fake-access-2"
    assert manager.refresh("fake-access-2").access_token == "fake-access-3"


def test_refresh_of_an_old_token_does_not_fetch(forge_token_provider: FakeTokenProvider) -> None:
    """refresh(rejected) is a no-op returning the current token once it was already replaced."""
    manager = TokenManager(forge_token_provider)
    first = manager.get_token()
    second = manager.refresh(first)
    assert manager.refresh(first) is second
    assert forge_token_provider.call_count == 2


def test_refresh_without_argument_always_fetches(forge_token_provider: FakeTokenProvider) -> None:
    """refresh() with nothing rejected forces a new token."""
    manager = TokenManager(forge_token_provider)
    manager.get_token()
    manager.refresh()
    manager.refresh()
    assert forge_token_provider.fetch_count == 3


def test_50_simultaneous_401s_cause_one_refresh(forge_stress: Stress) -> None:
    """Fifty threads reporting the same rejected token trigger exactly one refresh per round."""
    provider = FakeTokenProvider(latency=0.002)
    manager = TokenManager(provider)
    rejected: list[TokenData] = []

    def before_round(_: int) -> None:
        rejected[:] = [manager.get_token()]

    report = forge_stress(
        lambda: manager.refresh(rejected[0]), threads=50, rounds=10, before_round=before_round
    )
    report.assert_no_errors()
    report.assert_single_fetch(provider)  # a refresh per round; the first fetch was not a worker's
    assert provider.fetch_count == 11  # the first fetch, then one refresh per round
    for round_ in report.rounds:
        assert len({getattr(o.result, "access_token", None) for o in round_.outcomes}) == 1


# -- storm limit ---------------------------------------------------------------------------------


def test_a_rejected_resend_holds_refreshes_of_that_token(
    forge_clock: FakeClock, forge_token_provider: FakeTokenProvider
) -> None:
    """After record_resend(accepted=False), refresh(that token) returns it without a fetch
    until the window (1 s) has passed on the clock; then it fetches once."""
    manager = TokenManager(forge_token_provider)
    fresh = manager.refresh(manager.get_token())
    manager.record_resend(fresh, accepted=False)
    assert [manager.refresh(fresh) for _ in range(20)] == [fresh] * 20
    assert forge_token_provider.fetch_count == 2
    forge_clock.advance(TokenManager.FAILURE_BACKOFF)
    assert manager.refresh(fresh) != fresh
    assert forge_token_provider.fetch_count == 3


def test_the_storm_window_doubles_up_to_the_cap_and_resets_after_quiet(
    forge_clock: FakeClock, forge_token_provider: FakeTokenProvider
) -> None:
    """Each window opened again is twice as long, capped at MAX_FAILURE_BACKOFF; a quiet spell
    that long after the last window starts the next storm at 1 s."""
    manager = TokenManager(forge_token_provider)
    token = manager.get_token()
    windows = []
    for _ in range(8):
        manager.record_resend(token, accepted=False)
        opened = forge_clock.monotonic()
        assert manager.refresh(token) == token
        while manager.refresh(token) == token:
            forge_clock.advance(0.5)
        windows.append(forge_clock.monotonic() - opened)
        token = manager.get_token()
    assert windows == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    forge_clock.advance(TokenManager.MAX_FAILURE_BACKOFF)
    manager.record_resend(token, accepted=False)
    forge_clock.advance(TokenManager.FAILURE_BACKOFF)
    assert manager.refresh(token) != token


def test_only_the_rejected_fresh_token_is_held(
    forge_token_provider: FakeTokenProvider,
) -> None:
    """A storm window for one token does not hold the refresh of another (a revoked one)."""
    manager = TokenManager(forge_token_provider)
    first = manager.get_token()
    manager.record_resend("some-other-token", accepted=False)
    assert manager.refresh(first) != first
    assert forge_token_provider.fetch_count == 2


def test_an_accepted_resend_or_invalidate_ends_the_storm(
    forge_token_provider: FakeTokenProvider,
) -> None:
    """An accepted resend with the held token, or invalidate(), closes the window at once."""
    manager = TokenManager(forge_token_provider)
    token = manager.get_token()
    manager.record_resend(token, accepted=False)
    manager.record_resend(token, accepted=True)
    assert manager.refresh(token) != token
    token = manager.get_token()
    manager.record_resend(token, accepted=False)
    manager.invalidate()
    manager.storage.set(manager.cache_key, token)
    assert manager.refresh(token) != token


def test_a_burst_of_rejected_resends_opens_one_window(
    forge_clock: FakeClock, forge_token_provider: FakeTokenProvider
) -> None:
    """Fifty threads whose resends with the same token were all rejected open one 1 s window,
    not fifty doublings, and none of their refreshes fetches inside it."""
    manager = TokenManager(forge_token_provider)
    token = manager.get_token()

    def rejected_resend() -> TokenData:
        manager.record_resend(token, accepted=False)
        return manager.refresh(token)

    assert in_threads(50, rejected_resend) == [token] * 50
    assert forge_token_provider.fetch_count == 1
    forge_clock.advance(TokenManager.FAILURE_BACKOFF)
    assert manager.refresh(token) != token


def test_record_resend_checks_its_argument() -> None:
    """record_resend takes a TokenData or a string."""
    manager = TokenManager(FakeTokenProvider())
    with pytest.raises(TypeError, match="TokenData or a string"):
        manager.record_resend(42, accepted=False)  # type: ignore[arg-type]


# -- failures ----------------------------------------------------------------------------------


def test_waiters_get_the_leaders_error_and_nothing_is_stored(
    forge_token_provider: FakeTokenProvider,
) -> None:
    """A failed fetch raises its error in every waiting caller, once, and caches nothing."""
    manager = TokenManager(forge_token_provider)
    error = TokenEndpointError("endpoint down", status_code=503, transient=True)
    forge_token_provider.fail_next(error)
    forge_token_provider.pause()
    leader, leader_out = _in_thread(manager.get_token)
    assert forge_token_provider.wait_until_called(1)
    waiters = [_in_thread(manager.get_token) for _ in range(20)]
    forge_token_provider.resume()
    for thread, _ in [(leader, leader_out), *waiters]:
        thread.join(10)
    assert forge_token_provider.call_count == 1
    assert all(out == [error] for _, out in [(leader, leader_out), *waiters])
    assert not manager.storage.exists(manager.cache_key)


def test_failure_in_the_refresh_window_serves_the_old_token(
    forge_clock: FakeClock,
    forge_token_provider: FakeTokenProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failed proactive refresh is logged (without the token) and the valid token is served."""
    manager = TokenManager(forge_token_provider)
    old = manager.get_token()
    forge_clock.advance(3600 - 100)
    forge_token_provider.fail_next(TokenEndpointError("down", transient=True))
    with caplog.at_level(logging.WARNING, logger="requestforge.tokens"):
        assert manager.get_token() is old
    assert "failed" in caplog.text
    assert old.access_token not in caplog.text
    assert manager.storage.get(manager.cache_key) is old


def test_failure_past_the_leeway_serves_the_old_token_until_expiry(
    forge_clock: FakeClock, forge_token_provider: FakeTokenProvider
) -> None:
    """Inside the leeway a failed fetch serves the unexpired token; after expiry it raises."""
    manager = TokenManager(forge_token_provider)
    old = manager.get_token()
    forge_clock.advance(3600 - 10)
    forge_token_provider.fail_always(TokenEndpointError("down", transient=True))
    assert manager.get_token() is old
    forge_clock.advance(10)
    with pytest.raises(TokenEndpointError, match="down"):
        manager.get_token()


def test_repeated_failures_are_spaced(
    forge_clock: FakeClock, forge_token_provider: FakeTokenProvider
) -> None:
    """After a failure callers get the error without a fetch until a doubling backoff passes."""
    manager = TokenManager(forge_token_provider)
    forge_token_provider.fail_always(TokenEndpointError("down", transient=True))
    calls = []
    for backoff in (1.0, 2.0, 4.0, 8.0):
        with pytest.raises(TokenEndpointError):
            manager.get_token()
        calls.append(forge_token_provider.call_count)
        for _ in range(5):  # within the backoff: no new fetch
            with pytest.raises(TokenEndpointError):
                manager.get_token()
        forge_clock.advance(backoff - 0.01)
        with pytest.raises(TokenEndpointError):
            manager.get_token()
        assert forge_token_provider.call_count == calls[-1]
        forge_clock.advance(0.01)
    assert calls == [1, 2, 3, 4]
    forge_token_provider.fail_always(None)
    assert manager.get_token().access_token == "fake-access-5"


def test_backoff_is_capped(forge_clock: FakeClock, forge_token_provider: FakeTokenProvider) -> None:
    """The spacing between attempts stops growing at MAX_FAILURE_BACKOFF."""
    manager = TokenManager(forge_token_provider)
    forge_token_provider.fail_always(TokenEndpointError("down"))
    for _ in range(12):
        with pytest.raises(TokenEndpointError):
            manager.get_token()
        forge_clock.advance(TokenManager.MAX_FAILURE_BACKOFF)
    assert forge_token_provider.call_count == 12


def test_invalidate_clears_the_backoff(forge_token_provider: FakeTokenProvider) -> None:
    """invalidate() lets the next caller try again at once."""
    manager = TokenManager(forge_token_provider)
    forge_token_provider.fail_next(TokenEndpointError("down"))
    with pytest.raises(TokenEndpointError):
        manager.get_token()
    manager.invalidate()
    assert manager.get_token().access_token == "fake-access-2"


def test_waiting_too_long_for_a_fetch_is_an_error(forge_token_provider: FakeTokenProvider) -> None:
    """A caller waiting past wait_timeout for another caller's fetch gets a TokenError."""
    manager = TokenManager(forge_token_provider, wait_timeout=0.05)
    forge_token_provider.pause()
    leader, _ = _in_thread(manager.get_token)
    assert forge_token_provider.wait_until_called(1)
    with pytest.raises(TokenError, match="timed out"):
        manager.get_token()
    forge_token_provider.resume()
    leader.join(10)


def test_storage_lock_timeout_surfaces(forge_token_provider: FakeTokenProvider) -> None:
    """When another holder keeps the storage's refresh lock, the fetch fails with its error."""
    storage = InMemoryTokenStorage()
    manager = TokenManager(forge_token_provider, storage, wait_timeout=0.05)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with storage.refresh_lock(manager.cache_key, timeout=1):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    with pytest.raises(TokenError, match="refresh lock"):
        manager.get_token()
    release.set()
    holder.join(10)
    assert forge_token_provider.call_count == 0


def test_custom_storage_works_without_overriding_the_lock(
    forge_token_provider: FakeTokenProvider,
) -> None:
    """A storage implementing only get/set/delete gets the in-process refresh lock for free."""

    class DictStorage(TokenStorageInterface):
        def __init__(self) -> None:
            self.data: dict[str, TokenData] = {}

        def get(self, key: str) -> TokenData | None:
            return self.data.get(key)

        def set(self, key: str, token: TokenData) -> None:
            self.data[key] = token

        def delete(self, key: str) -> None:
            self.data.pop(key, None)

    storage = DictStorage()
    manager = TokenManager(forge_token_provider, storage)
    token = manager.get_token()
    assert storage.data[manager.cache_key] == token

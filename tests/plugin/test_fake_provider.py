"""FakeTokenProvider: counted, scriptable, holdable token calls for single-flight tests."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
import time
import traceback
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from requestforge import (
    ConfigurationError,
    TokenData,
    TokenEndpointError,
    TokenManager,
    TokenProviderInterface,
)
from requestforge_testing import (
    FakeClock,
    FakeTokenProvider,
    FakeTokenProviderFactory,
    ProviderCall,
)

THREADS = 8


def call_in_thread(provider: FakeTokenProvider, name: str = "caller") -> threading.Thread:
    """Start a thread that fetches one token (its outcome lands in the provider's records)."""

    def fetch() -> None:
        with contextlib.suppress(Exception):  # the provider records the error itself
            provider.fetch_token()

    thread = threading.Thread(target=fetch, name=name)
    thread.start()
    return thread


def test_is_a_token_provider_named_by_service_name() -> None:
    """It implements TokenProviderInterface and its service_name is the one given."""
    assert isinstance(FakeTokenProvider(), TokenProviderInterface)
    assert FakeTokenProvider().service_name == "fake"
    assert FakeTokenProvider(service_name="billing").service_name == "billing"


def test_counts_fetches_and_refreshes_separately_and_together() -> None:
    """fetch_count, refresh_count and call_count each count their own calls."""
    provider = FakeTokenProvider()
    first = provider.fetch_token()
    provider.fetch_token()
    provider.refresh_token(first)
    assert (provider.fetch_count, provider.refresh_count, provider.call_count) == (2, 1, 3)
    assert [c.kind for c in provider.calls] == ["fetch", "fetch", "refresh"]


def test_tokens_are_distinct_and_numbered_across_fetches_and_refreshes() -> None:
    """Each call's token is fake-access-<n>, n counting fetches and refreshes together."""
    provider = FakeTokenProvider(refresh_tokens=True, token_type="DPoP")
    one = provider.fetch_token()
    two = provider.refresh_token(one)
    three = provider.fetch_token()
    assert [t.access_token for t in (one, two, three)] == [
        "fake-access-1",
        "fake-access-2",
        "fake-access-3",
    ]
    assert [t.refresh_token for t in (one, two, three)] == [
        "fake-refresh-1",
        "fake-refresh-2",
        "fake-refresh-3",
    ]
    assert {t.token_type for t in (one, two, three)} == {"DPoP"}
    assert provider.issued == [one, two, three]
    assert [c.number for c in provider.calls] == [1, 2, 3]


def test_no_refresh_token_unless_asked() -> None:
    """By default tokens carry no refresh token, like a client-credentials grant."""
    assert FakeTokenProvider().fetch_token().refresh_token is None


def test_lifetime_follows_the_forge_clock(forge_clock: FakeClock) -> None:
    """Tokens are issued at the fake clock's now and expire lifetime seconds later."""
    provider = FakeTokenProvider(lifetime=120.0)
    first = provider.fetch_token()
    assert first.issued_at == forge_clock.now()
    assert first.expires_at == forge_clock.now() + timedelta(seconds=120)
    assert first.lifetime == 120.0
    forge_clock.advance(121)
    assert first.is_expired
    second = provider.fetch_token()
    assert second.issued_at == forge_clock.now()
    assert not second.is_expired


def test_the_default_clock_is_read_at_call_time(forge_clock: FakeClock) -> None:
    """A provider built before a clock is installed still issues tokens on that clock."""
    provider = FakeTokenProvider()
    later = FakeClock(start=datetime(2031, 3, 1, tzinfo=timezone.utc))
    with later.installed():
        assert provider.fetch_token().issued_at == later.now()
    assert provider.fetch_token().issued_at == forge_clock.now()


def test_an_explicit_clock_beats_the_default(forge_clock: FakeClock) -> None:
    """clock= is used instead of the default clock."""
    own = FakeClock(start=datetime(2030, 1, 1, tzinfo=timezone.utc))
    token = FakeTokenProvider(clock=own, lifetime=60).fetch_token()
    assert token.issued_at == own.now()
    assert token.issued_at != forge_clock.now()


def test_lifetime_none_issues_tokens_that_never_expire() -> None:
    """lifetime=None gives tokens without expires_at."""
    token = FakeTokenProvider(lifetime=None).fetch_token()
    assert token.expires_at is None
    assert token.expires_in() is None


def test_latency_is_real_time_counted_after_the_call(forge_clock: FakeClock) -> None:
    """A call is counted at once, then waits latency real seconds without touching the clock."""
    latency = 0.5
    provider = FakeTokenProvider(latency=latency)
    began = time.perf_counter()
    thread = call_in_thread(provider)
    assert provider.wait_until_called(1)
    counted_but_unfinished = (provider.call_count, provider.calls)
    thread.join(timeout=10)
    assert counted_but_unfinished == (1, [])
    assert time.perf_counter() - began >= latency * 0.9
    assert forge_clock.sleeps == []
    assert forge_clock.monotonic() == 1000.0
    assert provider.issued[0].issued_at == forge_clock.now()


def test_pause_holds_every_caller_after_counting_until_resume() -> None:
    """Paused calls are counted but return nothing until resume() lets them all through."""
    provider = FakeTokenProvider()
    provider.pause()
    assert provider.paused
    threads = [call_in_thread(provider, f"caller-{i}") for i in range(THREADS)]
    assert provider.wait_until_called(THREADS)
    assert provider.call_count == THREADS
    assert provider.calls == []
    assert provider.issued == []
    assert all(t.is_alive() for t in threads)
    provider.resume()
    for thread in threads:
        thread.join(timeout=10)
    assert not provider.paused
    assert not any(t.is_alive() for t in threads)
    assert len({t.access_token for t in provider.issued}) == THREADS


def test_wait_until_called_times_out_with_false() -> None:
    """wait_until_called returns False when fewer calls than asked have started."""
    provider = FakeTokenProvider()
    provider.fetch_token()
    assert provider.wait_until_called(1, timeout=0.01)
    assert not provider.wait_until_called(2, timeout=0.01)
    assert provider.wait_until_called(0, timeout=0.01)


def test_a_forgotten_pause_fails_the_call_instead_of_hanging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A call paused longer than PAUSE_TIMEOUT raises TimeoutError and is recorded."""
    provider = FakeTokenProvider()
    monkeypatch.setattr(provider, "PAUSE_TIMEOUT", 0.01)
    provider.pause()
    with pytest.raises(TimeoutError, match="resume"):
        provider.fetch_token()
    assert isinstance(provider.calls[0].error, TimeoutError)
    assert provider.issued == []


def test_fail_next_raises_the_given_errors_in_order_then_succeeds() -> None:
    """The next len(errors) calls raise those exact instances, in order, then tokens resume."""
    provider = FakeTokenProvider()
    first = TokenEndpointError("first", error="temporarily_unavailable", transient=True)
    second = ValueError("second")
    provider.fail_next(first, second)
    with pytest.raises(TokenEndpointError) as one:
        provider.fetch_token()
    with pytest.raises(ValueError, match="second") as two:
        provider.fetch_token()
    assert one.value is first
    assert two.value is second
    assert provider.fetch_token().access_token == "fake-access-3"
    assert [c.error for c in provider.calls] == [first, second, None]
    assert [c.token is None for c in provider.calls] == [True, True, False]


def test_fail_next_queues_up_across_calls() -> None:
    """Two fail_next calls add to one queue rather than replacing it."""
    provider = FakeTokenProvider()
    errors = [RuntimeError("a"), RuntimeError("b")]
    provider.fail_next(errors[0])
    provider.fail_next(errors[1])
    for expected in errors:
        with pytest.raises(RuntimeError) as info:
            provider.fetch_token()
        assert info.value is expected
    assert provider.fetch_token().access_token == "fake-access-3"


@pytest.mark.parametrize("bad", [ValueError, "boom", None])
def test_fail_next_refuses_anything_but_exception_instances(bad: Any) -> None:
    """An exception class, a string or None is a TypeError, and nothing gets scripted."""
    provider = FakeTokenProvider()
    with pytest.raises(TypeError, match="exception instance"):
        provider.fail_next(ValueError("ok"), bad)
    assert provider.fetch_token().access_token == "fake-access-1"


def test_fail_always_raises_until_cleared_after_fail_next() -> None:
    """fail_always fails every call (after queued fail_next errors) until set back to None."""
    provider = FakeTokenProvider()
    always = TokenEndpointError("down", error="server_error", status_code=503)
    once = KeyError("once")
    provider.fail_always(always)
    provider.fail_next(once)
    with pytest.raises(KeyError):
        provider.fetch_token()
    depths = []
    for _ in range(3):
        with pytest.raises(TokenEndpointError) as info:
            provider.fetch_token()
        assert info.value is always
        depths.append(len(traceback.extract_tb(info.value.__traceback__)))
    assert len(set(depths)) == 1, "re-raising must not pile tracebacks onto the instance"
    provider.fail_always(None)
    assert provider.fetch_token().access_token == "fake-access-5"
    with pytest.raises(TypeError, match="instantiate"):
        provider.fail_always(KeyError)  # type: ignore[arg-type]


def test_records_name_the_calling_threads() -> None:
    """Each record and fetch_threads name the thread that made the call, in call order."""
    provider = FakeTokenProvider()
    threads = []
    for name in ("alpha", "beta"):
        thread = call_in_thread(provider, name)
        thread.join(timeout=10)
        threads.append(thread)
    provider.fetch_token()
    main = threading.current_thread()
    expected_ids = [threads[0].ident, threads[1].ident, main.ident]
    assert [c.thread_name for c in provider.calls] == ["alpha", "beta", main.name]
    assert [c.thread_id for c in provider.calls] == expected_ids
    assert provider.fetch_threads == expected_ids
    record = provider.calls[0]
    assert isinstance(record, ProviderCall)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.number = 9  # type: ignore[misc]


def test_records_are_copies() -> None:
    """Mutating a returned list does not change the provider's records."""
    provider = FakeTokenProvider()
    provider.fetch_token()
    provider.calls.clear()
    provider.issued.clear()
    provider.fetch_threads.clear()
    assert (len(provider.calls), len(provider.issued), len(provider.fetch_threads)) == (1, 1, 1)


def test_counting_is_exact_under_contention() -> None:
    """Many threads calling at once are each counted once and get distinct tokens."""
    provider = FakeTokenProvider()
    barrier = threading.Barrier(THREADS)

    def hammer() -> None:
        barrier.wait(timeout=10)
        for _ in range(50):
            provider.fetch_token()

    threads = [threading.Thread(target=hammer) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert provider.fetch_count == THREADS * 50
    assert len({t.access_token for t in provider.issued}) == THREADS * 50
    assert sorted(c.number for c in provider.calls) == list(range(1, THREADS * 50 + 1))


def test_reset_restores_the_starting_state_and_frees_paused_callers() -> None:
    """reset() clears counters, records and scripts, and un-pauses (releasing held callers)."""
    provider = FakeTokenProvider()
    provider.fetch_token()
    provider.fail_next(ValueError("queued"))
    provider.fail_always(ValueError("always"))
    provider.pause()
    held = call_in_thread(provider)
    assert provider.wait_until_called(2)
    provider.reset()
    held.join(timeout=10)
    assert not held.is_alive()
    assert not provider.paused
    provider.reset()  # drop what the released caller recorded
    assert (provider.fetch_count, provider.refresh_count, provider.call_count) == (0, 0, 0)
    assert (provider.calls, provider.issued, provider.fetch_threads) == ([], [], [])
    assert provider.fetch_token().access_token == "fake-access-1"


def test_repr_never_shows_a_token() -> None:
    """The repr names the service and call count but no access or refresh token."""
    provider = FakeTokenProvider(refresh_tokens=True, service_name="billing")
    provider.fetch_token()
    text = repr(provider)
    assert "fake-access" not in text
    assert "fake-refresh" not in text
    assert "billing" in text
    assert "calls=1" in text
    assert "fake-access" not in repr(provider.calls)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lifetime": -1.0},
        {"lifetime": math.inf},
        {"latency": math.nan},
        {"latency": -0.1},
        {"latency": "1"},
        {"refresh_tokens": "yes"},
        {"service_name": " "},
        {"token_type": ""},
        {"clock": object()},
    ],
)
def test_bad_arguments_are_configuration_errors(kwargs: dict[str, Any]) -> None:
    """Invalid constructor arguments raise ConfigurationError naming the argument."""
    with pytest.raises(ConfigurationError, match=next(iter(kwargs))):
        FakeTokenProvider(**kwargs)


def test_bad_call_arguments_are_rejected() -> None:
    """refresh_token needs a TokenData and wait_until_called a count >= 0."""
    provider = FakeTokenProvider()
    with pytest.raises(TypeError, match="TokenData"):
        provider.refresh_token("fake-access-1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n must be"):
        provider.wait_until_called(-1)
    assert provider.call_count == 0


def test_drives_a_token_manager_through_fetch_and_refresh(forge_clock: FakeClock) -> None:
    """TokenManager fetches once, then refreshes with the refresh token once it goes stale."""
    provider = FakeTokenProvider(lifetime=600, refresh_tokens=True)
    manager = TokenManager(provider)
    first = manager.get_token()
    assert manager.get_token() is first
    forge_clock.advance(600)
    second = manager.get_token()
    assert (provider.fetch_count, provider.refresh_count) == (1, 1)
    assert second.access_token == "fake-access-2"


def test_forge_token_provider_follows_forge_clock(
    forge_token_provider: FakeTokenProvider, forge_clock: FakeClock
) -> None:
    """The fixture's provider is fresh and issues tokens on the fake clock."""
    assert forge_token_provider.call_count == 0
    token = forge_token_provider.fetch_token()
    assert token.issued_at == forge_clock.now()
    assert token.expires_at == forge_clock.now() + timedelta(seconds=3600)


@given(lifetime=st.floats(min_value=1, max_value=1e6), refresh=st.booleans())
def test_the_factory_gives_every_hypothesis_example_a_fresh_provider(
    forge_token_provider_factory: FakeTokenProviderFactory, lifetime: float, refresh: bool
) -> None:
    """Each call makes a new, unused provider with the given keywords."""
    provider = forge_token_provider_factory(lifetime=lifetime, refresh_tokens=refresh)
    assert provider.call_count == 0
    token = provider.fetch_token()
    assert token.access_token == "fake-access-1"
    assert token.lifetime == pytest.approx(lifetime)
    assert (token.refresh_token is not None) is refresh
    assert isinstance(token, TokenData)

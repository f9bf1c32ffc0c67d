"""FakeTokenFetcher: a pipeline step that counts, records, fails and pauses on command."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from requestforge import FetchContext, TokenData, TokenFetcherInterface
from requestforge_testing import FakeClock, FakeTokenFetcher


def context(**tokens: str) -> FetchContext:
    ctx = FetchContext()
    for name, value in tokens.items():
        ctx.add_token(name, TokenData(value))
    return ctx


def test_issues_numbered_tokens_that_live_for_lifetime(forge_clock: FakeClock) -> None:
    """The n-th call returns '<name>-n', issued now and expiring lifetime seconds later."""
    fetcher = FakeTokenFetcher("device", lifetime=90)
    assert isinstance(fetcher, TokenFetcherInterface)
    first, second = fetcher.fetch(FetchContext()), fetcher.fetch(FetchContext())
    assert (first.access_token, second.access_token) == ("device-1", "device-2")
    assert first.issued_at == forge_clock.now()
    assert first.expires_at == forge_clock.now() + timedelta(seconds=90)
    assert fetcher.fetch_count == 2


def test_lifetime_none_issues_tokens_that_never_expire() -> None:
    """lifetime=None gives tokens without an expiry."""
    assert FakeTokenFetcher("a", lifetime=None).fetch(FetchContext()).expires_at is None


def test_uses_its_own_clock_when_given() -> None:
    """clock= sets the issue time instead of the default clock."""
    own = FakeClock()
    own.advance(500)
    token = FakeTokenFetcher("a", clock=own).fetch(FetchContext())
    assert token.issued_at == own.now()


@pytest.mark.parametrize("lifetime", [0, -1, float("inf"), True, "60"])
def test_rejects_a_bad_lifetime(lifetime: Any) -> None:
    """A lifetime that is not a finite positive number (or None) raises ValueError."""
    with pytest.raises(ValueError, match="lifetime"):
        FakeTokenFetcher("a", lifetime=lifetime)


def test_seen_records_the_context_of_each_call() -> None:
    """seen lists, per call, the earlier steps' access tokens, and is a copy."""
    fetcher = FakeTokenFetcher("c", depends_on=("a", "b"))
    fetcher.fetch(context(a="a-1", b="b-1"))
    fetcher.fetch(context(a="a-1", b="b-2"))
    seen = fetcher.seen
    assert seen == [{"a": "a-1", "b": "b-1"}, {"a": "a-1", "b": "b-2"}]
    seen[0]["a"] = "changed"
    assert fetcher.seen[0]["a"] == "a-1"


def test_fail_next_raises_the_errors_in_order_then_recovers() -> None:
    """fail_next(e1, e2) makes the next two calls raise them; failed calls are counted too."""
    fetcher = FakeTokenFetcher("a")
    first, second = ConnectionError("down"), TimeoutError("slow")
    fetcher.fail_next(first, second)
    with pytest.raises(ConnectionError) as one:
        fetcher.fetch(FetchContext())
    with pytest.raises(TimeoutError) as two:
        fetcher.fetch(FetchContext())
    assert (one.value, two.value) == (first, second)
    assert fetcher.fetch(FetchContext()).access_token == "a-3"
    assert fetcher.fetch_count == 3


def test_fail_next_takes_exception_instances_only() -> None:
    """Passing something that is not an exception instance raises TypeError."""
    with pytest.raises(TypeError, match="exception instances"):
        FakeTokenFetcher("a").fail_next("boom")  # type: ignore[arg-type]


def test_pause_holds_calls_until_resume() -> None:
    """A paused call is counted at once but returns only after resume()."""
    fetcher = FakeTokenFetcher("a")
    fetcher.pause()
    results: list[TokenData] = []
    thread = threading.Thread(target=lambda: results.append(fetcher.fetch(FetchContext())))
    thread.start()
    fetcher.wait_until_called(1)
    assert fetcher.fetch_count == 1
    assert results == []
    fetcher.resume()
    thread.join()
    assert [t.access_token for t in results] == ["a-1"]


def test_a_forgotten_pause_times_out_instead_of_hanging(monkeypatch: pytest.MonkeyPatch) -> None:
    """A call held longer than PAUSE_TIMEOUT raises TimeoutError telling what went wrong."""
    fetcher = FakeTokenFetcher("a")
    monkeypatch.setattr(fetcher, "PAUSE_TIMEOUT", 0.01)
    fetcher.pause()
    with pytest.raises(TimeoutError, match="forget resume"):
        fetcher.fetch(FetchContext())


def test_wait_until_called_times_out_with_the_count() -> None:
    """wait_until_called raises TimeoutError naming how many calls there were."""
    fetcher = FakeTokenFetcher("a")
    fetcher.fetch(FetchContext())
    fetcher.wait_until_called(1, timeout=0.01)
    with pytest.raises(TimeoutError, match="called 1 time"):
        fetcher.wait_until_called(2, timeout=0.01)


def test_counts_calls_from_many_threads_exactly() -> None:
    """Concurrent calls each get a distinct number and none is lost from fetch_count."""
    fetcher = FakeTokenFetcher("a")
    barrier = threading.Barrier(8)
    tokens: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        barrier.wait()
        for _ in range(50):
            token = fetcher.fetch(FetchContext()).access_token
            with lock:
                tokens.append(token)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fetcher.fetch_count == 400
    assert sorted(tokens) == sorted(f"a-{n}" for n in range(1, 401))


def test_a_user_test_file_can_build_a_pipeline_from_fakes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With -p requestforge_testing, FakeTokenFetcher and forge_clock drive a pipeline test."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(
        """
        import pytest
        from requestforge import PipelineStepError, TokenFetchPipeline
        from requestforge_testing import FakeTokenFetcher

        def test_ttl(forge_clock):
            device = FakeTokenFetcher("device", ttl=60)
            user = FakeTokenFetcher("user", depends_on=("device",))
            pipeline = TokenFetchPipeline([device, user])
            assert pipeline.execute().access_token == "user-1"
            forge_clock.advance(60)
            pipeline.execute()
            assert (device.fetch_count, user.fetch_count) == (2, 1)

        def test_failure(forge_clock):
            device = FakeTokenFetcher("device")
            device.fail_next(RuntimeError("down"))
            pipeline = TokenFetchPipeline([device])
            with pytest.raises(PipelineStepError) as caught:
                pipeline.execute()
            assert caught.value.step == "device"
            assert pipeline.execute().access_token == "device-2"
        """
    )
    result = pytester.runpytest(
        "-p", "requestforge_testing", "-p", "no:cacheprovider", "--strict-markers", "-W", "error"
    )
    result.assert_outcomes(passed=2)

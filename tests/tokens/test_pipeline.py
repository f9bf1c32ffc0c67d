"""Tests for the token pipeline: ordering, validation, caching, invalidation, failures."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from requestforge import (
    ConfigurationError,
    FetchContext,
    InMemoryTokenStorage,
    PipelineStepError,
    PipelineTokenProvider,
    TokenData,
    TokenEndpointError,
    TokenError,
    TokenFetcherInterface,
    TokenFetchPipeline,
    TokenManager,
    TokenStorageError,
)
from requestforge_testing import FakeClock, FakeTokenFetcher, StressRunner


def make_pipeline(
    *steps: TokenFetcherInterface, **kwargs: Any
) -> tuple[TokenFetchPipeline, InMemoryTokenStorage]:
    storage = InMemoryTokenStorage()
    return TokenFetchPipeline(list(steps), storage, **kwargs), storage


def abc(**ttls: float) -> tuple[FakeTokenFetcher, FakeTokenFetcher, FakeTokenFetcher]:
    """The chain A -> B -> C (C depends on B, B on A), with optional per-step TTLs."""
    a = FakeTokenFetcher("A", ttl=ttls.get("A"))
    b = FakeTokenFetcher("B", depends_on=("A",), ttl=ttls.get("B"))
    c = FakeTokenFetcher("C", depends_on=("B",), ttl=ttls.get("C"))
    return a, b, c


def counts(*fetchers: FakeTokenFetcher) -> dict[str, int]:
    return {f.name: f.fetch_count for f in fetchers}


def cached(pipeline: TokenFetchPipeline, storage: InMemoryTokenStorage) -> list[str]:
    """Names of the steps whose token is in the storage right now."""
    return [s.name for s in pipeline.steps if storage.exists(pipeline.cache_key(s.name))]


class ArrivalStorage(InMemoryTokenStorage):
    """Counts callers arriving at each key's refresh lock, so tests can wait for a pile-up."""

    def __init__(self) -> None:
        super().__init__()
        self._arrivals: dict[str, int] = {}
        self._arrived = threading.Condition()

    @contextmanager
    def refresh_lock(self, key: str, *, timeout: float) -> Iterator[None]:
        with self._arrived:
            self._arrivals[key] = self._arrivals.get(key, 0) + 1
            self._arrived.notify_all()
        with super().refresh_lock(key, timeout=timeout):
            yield

    def arrivals(self, key: str) -> int:
        with self._arrived:
            return self._arrivals.get(key, 0)

    def wait_for_arrivals(self, key: str, n: int, timeout: float = 10.0) -> None:
        with self._arrived:
            if not self._arrived.wait_for(lambda: self._arrivals.get(key, 0) >= n, timeout):
                raise TimeoutError(f"{self._arrivals.get(key, 0)} of {n} callers reached {key}")


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Start fn in a thread; its return value or exception lands in the list."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except Exception as exc:  # noqa: BLE001 - handed to the test to inspect
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


# -- ordering ----------------------------------------------------------------------------------


def test_steps_given_out_of_order_run_dependencies_first(forge_clock: FakeClock) -> None:
    """Steps listed C, A, B run as A, B, C and the final token is C's."""
    a, b, c = abc()
    pipeline, _ = make_pipeline(c, a, b)
    assert [s.name for s in pipeline.steps] == ["A", "B", "C"]
    assert pipeline.final_step is c
    assert pipeline.execute().access_token == "C-1"
    assert (a.seen, b.seen, c.seen) == ([{}], [{"A": "A-1"}], [{"A": "A-1", "B": "B-1"}])


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (["X", "Y", "Z"], ["X", "Y", "Z"]),
        (["Z", "Y", "X"], ["Z", "Y", "X"]),
        (["B", "X", "A"], ["X", "A", "B"]),
    ],
)
def test_order_keeps_the_given_order_where_dependencies_allow(
    given: list[str], expected: list[str]
) -> None:
    """Independent steps keep their given order; a step moves only as far as its deps require."""
    deps = {"B": ("A",)}
    steps = [FakeTokenFetcher(name, depends_on=deps.get(name, ())) for name in given]
    pipeline, _ = make_pipeline(*steps)
    assert [s.name for s in pipeline.steps] == expected
    assert pipeline.final_step.name == expected[-1]


# -- validation ----------------------------------------------------------------------------------


class NoInit(TokenFetcherInterface):
    """A fetcher that forgot to call TokenFetcherInterface.__init__."""

    def __init__(self) -> None:
        pass

    def fetch(self, context: FetchContext) -> TokenData:
        raise NotImplementedError


def fake(name: str, *deps: str) -> FakeTokenFetcher:
    return FakeTokenFetcher(name, depends_on=deps)


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (lambda: [], "at least one step"),
        (lambda: [fake("A"), fake("A")], "two steps are named 'A'"),
        (lambda: [fake("A"), fake("B", "Q")], "step 'B' depends on unknown step 'Q'"),
        (lambda: [fake("A", "A")], "cycle .*: 'A' -> 'A'$"),
        (lambda: [fake("A", "C"), fake("B", "A"), fake("C", "B")], "'A' -> 'C' -> 'B' -> 'A'$"),
        (lambda: [fake("X", "A"), fake("A", "B"), fake("B", "A")], ": 'A' -> 'B' -> 'A'$"),
        (lambda: [fake("A"), object()], "must be a TokenFetcherInterface, got object"),
        (lambda: fake("A"), "steps must be a sequence"),
        (lambda: [NoInit()], "NoInit has no name, depends_on or ttl"),
    ],
)
def test_invalid_steps_are_rejected_at_construction(steps: Callable[[], Any], message: str) -> None:
    """Each invalid pipeline raises ConfigurationError naming the problem."""
    with pytest.raises(ConfigurationError, match=message):
        TokenFetchPipeline(steps())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"storage": {}}, "storage must be a TokenStorageInterface"),
        ({"key_prefix": ""}, "key_prefix must be a non-empty string"),
        ({"lock_timeout": 0}, "lock_timeout must be a finite number > 0"),
        ({"lock_timeout": float("nan")}, "lock_timeout must be a finite number > 0"),
        ({"lock_timeout": True}, "lock_timeout must be a number"),
        ({"clock": "now"}, "clock must be a Clock"),
    ],
)
def test_invalid_options_are_rejected_at_construction(kwargs: dict[str, Any], message: str) -> None:
    """Bad storage, key prefix, lock timeout or clock raise ConfigurationError."""
    with pytest.raises(ConfigurationError, match=message):
        TokenFetchPipeline([fake("A")], **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "step name must be a non-empty string"),
        ({"name": "A", "ttl": 0}, "ttl of step 'A' must be a finite number > 0"),
        ({"name": "A", "ttl": float("inf")}, "ttl of step 'A' must be a finite number > 0"),
        ({"name": "A", "ttl": True}, "ttl of step 'A' must be a number"),
        ({"name": "A", "depends_on": "B"}, "depends_on of step 'A' must be a sequence"),
        ({"name": "A", "depends_on": ("B", "B")}, "lists a dependency twice"),
        ({"name": "A", "depends_on": ("",)}, "a dependency of step 'A' must be a non-empty"),
    ],
)
def test_invalid_fetcher_settings_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    """TokenFetcherInterface validates name, depends_on and ttl when the step is made."""
    with pytest.raises(ConfigurationError, match=message):
        FakeTokenFetcher(**kwargs)


# -- caching and TTLs ----------------------------------------------------------------------------


def test_each_step_is_fetched_once_and_then_served_from_the_cache(forge_clock: FakeClock) -> None:
    """Repeated executions return the cached final token without fetching any step again."""
    steps = abc()
    pipeline, storage = make_pipeline(*steps)
    tokens = {pipeline.execute().access_token for _ in range(5)}
    assert tokens == {"C-1"}
    assert counts(*steps) == {"A": 1, "B": 1, "C": 1}
    assert cached(pipeline, storage) == ["A", "B", "C"]


def test_each_step_expires_on_its_own_ttl(forge_clock: FakeClock) -> None:
    """A step is refetched exactly when its TTL (or its token's shorter life) runs out."""
    a, b, _ = abc(A=3000, B=50)
    c_short = FakeTokenFetcher("C", depends_on=("B",), lifetime=120)
    pipeline, _ = make_pipeline(a, b, c_short)
    pipeline.execute()
    forge_clock.advance(49.999)
    pipeline.execute()
    assert counts(a, b, c_short) == {"A": 1, "B": 1, "C": 1}
    forge_clock.advance(0.001)  # t = 50: B's TTL is over, C's 120 s lifetime is not
    assert pipeline.execute().access_token == "C-1"
    assert counts(a, b, c_short) == {"A": 1, "B": 2, "C": 1}
    forge_clock.advance(70)  # t = 120: C expired; B-2 (fetched at 50) expired at 100
    assert pipeline.execute().access_token == "C-2"
    assert counts(a, b, c_short) == {"A": 1, "B": 3, "C": 2}
    assert c_short.seen[-1] == {"A": "A-1", "B": "B-3"}


def test_cached_expiry_is_the_sooner_of_ttl_and_token_expiry(forge_clock: FakeClock) -> None:
    """The stored token expires at now + ttl when that is sooner, and never later than itself."""
    short_ttl = FakeTokenFetcher("A", ttl=50, lifetime=3600)
    long_ttl = FakeTokenFetcher("B", ttl=3000, lifetime=100)
    pipeline, storage = make_pipeline(short_ttl, long_ttl)
    pipeline.execute()
    start = forge_clock.now()
    a_token = storage.get(pipeline.cache_key("A"))
    b_token = storage.get(pipeline.cache_key("B"))
    assert a_token is not None
    assert b_token is not None
    assert a_token.expires_at == start + timedelta(seconds=50)
    assert b_token.expires_at == start + timedelta(seconds=100)


def test_a_token_without_expiry_is_cached_until_invalidated(forge_clock: FakeClock) -> None:
    """A step whose token never expires and that has no TTL is not fetched again."""
    forever = FakeTokenFetcher("A", lifetime=None)
    pipeline, _ = make_pipeline(forever)
    pipeline.execute()
    forge_clock.advance(10 * 365 * 86400)
    pipeline.execute()
    assert forever.fetch_count == 1


def test_time_comes_from_the_pipelines_own_clock(forge_clock: FakeClock) -> None:
    """With clock=, expiry follows that clock and not the default one."""
    own = FakeClock()
    step = FakeTokenFetcher("A", ttl=60, clock=own)
    pipeline, _ = make_pipeline(step, clock=own)
    pipeline.execute()
    forge_clock.advance(3600)
    pipeline.execute()
    assert step.fetch_count == 1
    own.advance(60)
    pipeline.execute()
    assert step.fetch_count == 2


def test_force_refresh_refetches_every_step(forge_clock: FakeClock) -> None:
    """execute(force_refresh=True) fetches every step again, each with the new earlier tokens."""
    a, b, c = abc()
    pipeline, _ = make_pipeline(a, b, c)
    pipeline.execute()
    assert pipeline.execute(force_refresh=True).access_token == "C-2"
    assert counts(a, b, c) == {"A": 2, "B": 2, "C": 2}
    assert c.seen[-1] == {"A": "A-2", "B": "B-2"}
    assert pipeline.execute().access_token == "C-2"


def test_pipelines_with_different_prefixes_share_a_storage_safely(forge_clock: FakeClock) -> None:
    """Two pipelines with their own key_prefix keep separate tokens in one storage."""
    storage = InMemoryTokenStorage()
    first = TokenFetchPipeline([FakeTokenFetcher("A")], storage, key_prefix="one")
    second_step = FakeTokenFetcher("A")
    second = TokenFetchPipeline([second_step], storage, key_prefix="two")
    first.execute()
    second.execute()
    assert (first.cache_key("A"), second.cache_key("A")) == ("one:A", "two:A")
    assert second_step.fetch_count == 1


# -- context -----------------------------------------------------------------------------------


def test_context_get_token_names_a_missing_step() -> None:
    """FetchContext.get_token of a step that has not run raises TokenError naming it."""
    context = FetchContext()
    context.add_token("A", TokenData("secret-a"))
    assert context.get_token("A").access_token == "secret-a"
    with pytest.raises(TokenError, match=r"no token from step 'B'.*available: 'A'"):
        context.get_token("B")


def test_context_repr_hides_tokens() -> None:
    """A FetchContext's repr lists step names, never token values."""
    context = FetchContext()
    context.add_token("A", TokenData("secret-a"))
    assert "secret-a" not in repr(context)
    assert "'A'" in repr(context)


class Reader(TokenFetcherInterface):
    """Reads the token of a step it does not declare, then issues its own."""

    def fetch(self, context: FetchContext) -> TokenData:
        context.get_token("missing")
        return TokenData("never")


def test_a_step_reading_an_undeclared_token_fails_with_its_name(forge_clock: FakeClock) -> None:
    """A step asking its context for an unknown step raises PipelineStepError for that step."""
    pipeline, _ = make_pipeline(FakeTokenFetcher("A"), Reader("R", depends_on=("A",)))
    with pytest.raises(PipelineStepError) as caught:
        pipeline.execute()
    assert caught.value.step == "R"
    assert isinstance(caught.value.__cause__, TokenError)
    assert "'missing'" in str(caught.value.__cause__)


# -- invalidation ------------------------------------------------------------------------------


def test_invalidate_cascades_to_dependents_only(forge_clock: FakeClock) -> None:
    """invalidate(B) drops B and C, keeps A and D, and the next run refetches B then C."""
    a, b, c = abc()
    d = FakeTokenFetcher("D")
    pipeline, storage = make_pipeline(d, a, b, c)
    pipeline.execute()
    assert pipeline.invalidate("B") == ["B", "C"]
    assert cached(pipeline, storage) == ["D", "A"]
    assert pipeline.execute().access_token == "C-2"
    assert counts(a, b, c, d) == {"A": 1, "B": 2, "C": 2, "D": 1}
    assert c.seen[-1] == {"D": "D-1", "A": "A-1", "B": "B-2"}


def test_invalidate_all_drops_everything(forge_clock: FakeClock) -> None:
    """invalidate_all() empties the cache, so every step is fetched again."""
    steps = abc()
    pipeline, storage = make_pipeline(*steps)
    pipeline.execute()
    assert pipeline.invalidate_all() == ["A", "B", "C"]
    assert cached(pipeline, storage) == []
    pipeline.execute()
    assert counts(*steps) == {"A": 2, "B": 2, "C": 2}


def test_invalidate_of_an_unknown_step_is_a_configuration_error() -> None:
    """invalidate() of a name the pipeline does not have raises ConfigurationError."""
    pipeline, _ = make_pipeline(FakeTokenFetcher("A"))
    with pytest.raises(ConfigurationError, match="no step named 'Z'"):
        pipeline.invalidate("Z")
    with pytest.raises(ConfigurationError, match="no step named 'Z'"):
        pipeline.cache_key("Z")


# -- failures ----------------------------------------------------------------------------------


def test_a_failing_step_raises_pipeline_step_error_and_caches_nothing_for_it(
    forge_clock: FakeClock,
) -> None:
    """B failing raises PipelineStepError(step='B') from the cause; A stays cached, B/C do not."""
    a, b, c = abc()
    pipeline, storage = make_pipeline(a, b, c)
    cause = TokenEndpointError("refused", status_code=403)
    b.fail_next(cause)
    with pytest.raises(PipelineStepError, match="step 'B' failed") as caught:
        pipeline.execute()
    assert caught.value.step == "B"
    assert caught.value.__cause__ is cause
    assert cached(pipeline, storage) == ["A"]
    assert c.fetch_count == 0
    assert pipeline.execute().access_token == "C-1"
    assert counts(a, b, c) == {"A": 1, "B": 2, "C": 1}
    assert c.seen == [{"A": "A-1", "B": "B-2"}]


def test_a_pipeline_step_error_from_a_step_passes_through(forge_clock: FakeClock) -> None:
    """A step that itself raises PipelineStepError (a nested pipeline) is not wrapped again."""
    inner = PipelineStepError("inner failed", step="inner-step")
    step = FakeTokenFetcher("A")
    step.fail_next(inner)
    pipeline, _ = make_pipeline(step)
    with pytest.raises(PipelineStepError) as caught:
        pipeline.execute()
    assert caught.value is inner


class NotAToken(TokenFetcherInterface):
    """Returns something that is not a TokenData."""

    def fetch(self, context: FetchContext) -> TokenData:
        return "plain-string"  # type: ignore[return-value]


def test_a_step_returning_a_non_token_fails_clearly(forge_clock: FakeClock) -> None:
    """A fetch that returns no TokenData raises PipelineStepError caused by a TokenError."""
    pipeline, storage = make_pipeline(NotAToken("A"))
    with pytest.raises(PipelineStepError) as caught:
        pipeline.execute()
    assert isinstance(caught.value.__cause__, TokenError)
    assert "returned str, not TokenData" in str(caught.value.__cause__)
    assert cached(pipeline, storage) == []


def test_waiting_longer_than_lock_timeout_fails_the_step(forge_clock: FakeClock) -> None:
    """A caller that cannot take a step's lock within lock_timeout gets PipelineStepError."""
    step = FakeTokenFetcher("A")
    pipeline, _ = make_pipeline(step, lock_timeout=0.05)
    step.pause()
    holder, out = in_thread(pipeline.execute)
    try:
        step.wait_until_called(1)
        with pytest.raises(PipelineStepError) as caught:
            pipeline.execute()
    finally:
        step.resume()
        holder.join()
    assert caught.value.step == "A"
    assert isinstance(caught.value.__cause__, TokenStorageError)
    assert [t.access_token for t in out] == ["A-1"]
    assert step.fetch_count == 1


# -- invalidation racing an execution ------------------------------------------------------------


def run_paused(
    pipeline: TokenFetchPipeline, paused: FakeTokenFetcher, during: Callable[[], object]
) -> object:
    """Execute in a thread, call ``during`` while ``paused`` is mid-fetch, return the result."""
    paused.pause()
    thread, out = in_thread(pipeline.execute)
    try:
        paused.wait_until_called(1)
        during()
    finally:
        paused.resume()
        thread.join()
    (result,) = out
    return result


def test_invalidate_during_a_fetch_keeps_its_results_out_of_the_cache(
    forge_clock: FakeClock,
) -> None:
    """invalidate(B) while B is being fetched: neither that B nor the C made from it is cached."""
    a, b, c = abc()
    pipeline, storage = make_pipeline(a, b, c)
    result = run_paused(pipeline, b, lambda: pipeline.invalidate("B"))
    assert isinstance(result, TokenData)
    assert result.access_token == "C-1"
    assert cached(pipeline, storage) == ["A"]
    assert pipeline.execute().access_token == "C-2"
    assert counts(a, b, c) == {"A": 1, "B": 2, "C": 2}
    assert c.seen[-1] == {"A": "A-1", "B": "B-2"}


def test_invalidating_an_earlier_step_mid_run_blocks_derived_writes(
    forge_clock: FakeClock,
) -> None:
    """invalidate(A) while B (made with A-1) is fetched: B-1 and C-1 are never cached."""
    a, b, c = abc()
    pipeline, storage = make_pipeline(a, b, c)
    run_paused(pipeline, b, lambda: pipeline.invalidate("A"))
    assert cached(pipeline, storage) == []
    pipeline.execute()
    assert b.seen[-1] == {"A": "A-2"}


def test_invalidating_an_unrelated_step_mid_run_does_not_block_caching(
    forge_clock: FakeClock,
) -> None:
    """invalidate(D) while B is fetched leaves B and C free to be cached."""
    a, b, c = abc()
    d = FakeTokenFetcher("D")
    pipeline, storage = make_pipeline(d, a, b, c)
    run_paused(pipeline, b, lambda: pipeline.invalidate("D"))
    assert cached(pipeline, storage) == ["A", "B", "C"]


def test_force_refresh_accepts_a_token_fetched_while_it_waited(forge_clock: FakeClock) -> None:
    """A forced run that waited for another forced fetch of a step uses that fetch's token."""
    step = FakeTokenFetcher("A")
    storage = ArrivalStorage()
    pipeline = TokenFetchPipeline([step], storage)
    pipeline.execute()
    step.pause()
    first, first_out = in_thread(lambda: pipeline.execute(force_refresh=True))
    try:
        step.wait_until_called(2)  # the first forced run holds A's lock, fetching A-2
        second, second_out = in_thread(lambda: pipeline.execute(force_refresh=True))
        storage.wait_for_arrivals(pipeline.cache_key("A"), 3)  # the second saw A-1 and waits
    finally:
        step.resume()
        first.join()
    second.join()
    assert [t.access_token for t in first_out + second_out] == ["A-2", "A-2"]
    assert step.fetch_count == 2


# -- PipelineTokenProvider ---------------------------------------------------------------------


def test_provider_gives_the_manager_a_new_final_token_each_fetch(forge_clock: FakeClock) -> None:
    """Through TokenManager, a refresh refetches only the final step; earlier ones stay cached."""
    a, b, c = abc()
    pipeline, _ = make_pipeline(a, b, c)
    provider = PipelineTokenProvider(pipeline, "partner-api")
    manager = TokenManager(provider)
    assert provider.service_name == "partner-api"
    assert "partner-api" in manager.cache_key
    assert manager.get_token().access_token == "C-1"
    assert manager.get_token().access_token == "C-1"
    assert manager.refresh().access_token == "C-2"
    assert counts(a, b, c) == {"A": 1, "B": 1, "C": 2}


def test_provider_follows_each_steps_ttl(forge_clock: FakeClock) -> None:
    """Each manager fetch refetches the final step, and an earlier step only past its TTL."""
    a, b, _ = abc(B=1800)
    c = FakeTokenFetcher("C", depends_on=("B",), lifetime=600)
    manager = TokenManager(PipelineTokenProvider(make_pipeline(a, b, c)[0], "svc"))
    assert manager.get_token().access_token == "C-1"
    forge_clock.advance(600)  # C-1 has expired; A and B are still good
    assert manager.get_token().access_token == "C-2"
    assert counts(a, b, c) == {"A": 1, "B": 1, "C": 2}
    forge_clock.advance(1200)  # t = 1800: C-2 expired, and B's 30-minute TTL is over
    assert manager.get_token().access_token == "C-3"
    assert counts(a, b, c) == {"A": 1, "B": 2, "C": 3}
    assert c.seen[-1] == {"A": "A-1", "B": "B-2"}


def test_provider_refresh_token_fetches_a_new_final_token(forge_clock: FakeClock) -> None:
    """refresh_token(current) drops the final step and runs the pipeline again."""
    a, b, c = abc()
    provider = PipelineTokenProvider(make_pipeline(a, b, c)[0], "svc")
    first = provider.fetch_token()
    assert provider.refresh_token(first).access_token == "C-2"
    assert counts(a, b, c) == {"A": 1, "B": 1, "C": 2}


@pytest.mark.parametrize(
    ("pipeline", "service_name", "message"),
    [
        (object, "svc", "pipeline must be a TokenFetchPipeline"),
        (lambda: TokenFetchPipeline([fake("A")]), "", "service_name must be a non-empty"),
    ],
)
def test_provider_validates_its_arguments(
    pipeline: Callable[[], Any], service_name: str, message: str
) -> None:
    """PipelineTokenProvider rejects a non-pipeline or an empty service name."""
    with pytest.raises(ConfigurationError, match=message):
        PipelineTokenProvider(pipeline(), service_name)


# -- concurrency -------------------------------------------------------------------------------

THREADS = 32
ROUNDS = 3


class ReleaseAfter(threading.Thread):
    """Calls ``release`` once ``wait`` returns, or fails, so a test can never hang on it."""

    def __init__(self, wait: Callable[[], object], release: Callable[[], object]) -> None:
        super().__init__(name="release-after")
        self._wait, self._release = wait, release
        self.errors: list[BaseException] = []
        self.start()

    def run(self) -> None:
        try:
            self._wait()
        except BaseException as exc:  # noqa: BLE001 - the test asserts on self.errors
            self.errors.append(exc)
        finally:
            self._release()


def test_concurrent_executions_fetch_each_step_once_per_round(
    forge_clock: FakeClock, forge_stress: StressRunner
) -> None:
    """32 threads executing together fetch every step exactly once per round, all piled up."""
    a, b, c = abc()
    storage = ArrivalStorage()
    pipeline = TokenFetchPipeline([a, b, c], storage)
    key_a = pipeline.cache_key("A")
    controllers: list[ReleaseAfter] = []

    def before_round(number: int) -> None:
        pipeline.invalidate_all()
        a.pause()  # the first caller holds A open until all 32 wait behind A's lock
        target = (number + 1) * THREADS
        controllers.append(ReleaseAfter(lambda: storage.wait_for_arrivals(key_a, target), a.resume))

    report = forge_stress(
        lambda: pipeline.execute().access_token,
        threads=THREADS,
        rounds=ROUNDS,
        before_round=before_round,
    )
    for controller in controllers:
        controller.join()
        assert controller.errors == []
    report.assert_no_errors()
    assert [set(r.results) for r in report.rounds] == [{f"C-{n}"} for n in range(1, ROUNDS + 1)]
    assert counts(a, b, c) == {"A": ROUNDS, "B": ROUNDS, "C": ROUNDS}
    assert b.seen == [{"A": f"A-{n}"} for n in range(1, ROUNDS + 1)]
    assert storage.arrivals(key_a) == ROUNDS * THREADS


def test_concurrent_forced_executions_share_each_fetch(
    forge_clock: FakeClock, forge_stress: StressRunner
) -> None:
    """Forced executions piled up behind one forced fetch take its token instead of refetching."""
    a, b, c = abc()
    storage = ArrivalStorage()
    pipeline = TokenFetchPipeline([a, b, c], storage)
    pipeline.execute()
    key_a = pipeline.cache_key("A")
    warm_up = storage.arrivals(key_a)  # the first execute() took A's lock too
    a.pause()
    controller = ReleaseAfter(lambda: storage.wait_for_arrivals(key_a, warm_up + THREADS), a.resume)
    report = forge_stress(lambda: pipeline.execute(force_refresh=True), threads=THREADS)
    controller.join()
    report.assert_no_errors()
    assert controller.errors == []
    # All 32 saw A-1 before A's lock, so the one forced fetch of A serves them all. A later
    # step may be fetched again by a caller that only arrives after a new token was stored
    # (it asked to replace that one), but no forced caller ever gets back the token it saw.
    assert a.fetch_count == 2
    assert "C-1" not in {t.access_token for t in report.results}
    assert {seen["A"] for seen in b.seen[1:]} == {"A-2"}


def test_manager_over_a_pipeline_fetches_the_chain_once_for_many_threads(
    forge_clock: FakeClock, forge_stress: StressRunner
) -> None:
    """32 threads asking a TokenManager backed by a pipeline cause one fetch of each step."""
    a, b, c = abc()
    pipeline, _ = make_pipeline(a, b, c)
    manager = TokenManager(PipelineTokenProvider(pipeline, "svc"))
    entered = threading.Semaphore(0)
    controllers: list[ReleaseAfter] = []

    def wait_for_everyone() -> None:
        for _ in range(THREADS):
            if not entered.acquire(timeout=10):
                raise TimeoutError("not every thread asked for a token")

    def before_round(number: int) -> None:
        manager.invalidate()
        pipeline.invalidate_all()
        a.pause()  # the leader's fetch stays open until all 32 have asked
        controllers.append(ReleaseAfter(wait_for_everyone, a.resume))

    def get_token() -> str:
        entered.release()
        return manager.get_token().access_token

    report = forge_stress(get_token, threads=THREADS, rounds=ROUNDS, before_round=before_round)
    for controller in controllers:
        controller.join()
        assert controller.errors == []
    report.assert_no_errors()
    assert [set(r.results) for r in report.rounds] == [{f"C-{n}"} for n in range(1, ROUNDS + 1)]
    assert counts(a, b, c) == {"A": ROUNDS, "B": ROUNDS, "C": ROUNDS}


# -- property tests over dependency graphs ------------------------------------------------------


@st.composite
def _dags(draw: st.DrawFn) -> tuple[list[str], dict[str, tuple[str, ...]], list[str]]:
    """A random DAG: step i may depend on any earlier step; returned in a shuffled order."""
    size = draw(st.integers(min_value=1, max_value=8))
    names = [f"s{i}" for i in range(size)]
    deps = {
        name: tuple(draw(st.sets(st.sampled_from(names[:i]))) if i else ())
        for i, name in enumerate(names)
    }
    given_order = draw(st.permutations(names))
    return names, deps, list(given_order)


def _dependents(deps: dict[str, tuple[str, ...]], root: str) -> set[str]:
    found = {root}
    changed = True
    while changed:
        changed = False
        for name, parents in deps.items():
            if name not in found and found.intersection(parents):
                found.add(name)
                changed = True
    return found


@given(dag=_dags(), data=st.data())
def test_any_dag_runs_in_dependency_order_and_invalidates_its_dependents(
    dag: tuple[list[str], dict[str, tuple[str, ...]], list[str]], data: st.DataObject
) -> None:
    """For any DAG given in any order: dependencies run first, each step sees its
    dependencies' tokens, and invalidate(x) drops exactly x and what derives from it."""
    _, deps, given_order = dag
    fetchers = {name: FakeTokenFetcher(name, depends_on=deps[name]) for name in given_order}
    pipeline = TokenFetchPipeline([fetchers[name] for name in given_order], InMemoryTokenStorage())
    order = [step.name for step in pipeline.steps]
    assert sorted(order) == sorted(given_order)
    for name, parents in deps.items():
        assert all(order.index(parent) < order.index(name) for parent in parents)
    pipeline.execute()
    for name, parents in deps.items():
        assert set(parents) <= set(fetchers[name].seen[0])
    root = data.draw(st.sampled_from(given_order))
    dropped = pipeline.invalidate(root)
    assert set(dropped) == _dependents(deps, root)
    pipeline.execute()
    refetched = {name for name, fetcher in fetchers.items() if fetcher.fetch_count == 2}
    assert refetched == set(dropped)


@given(dag=_dags(), data=st.data())
def test_any_cycle_is_refused_at_construction(
    dag: tuple[list[str], dict[str, tuple[str, ...]], list[str]], data: st.DataObject
) -> None:
    """Adding one back edge (from a step to one of its dependents, or itself) to any DAG
    makes the pipeline a ConfigurationError."""
    names, deps, given_order = dag
    target = data.draw(st.sampled_from(names))
    source = data.draw(st.sampled_from(sorted(_dependents(deps, target))))
    cyclic = dict(deps)
    cyclic[target] = (*deps[target], source)
    with pytest.raises(ConfigurationError, match="cycle"):
        TokenFetchPipeline(
            [FakeTokenFetcher(name, depends_on=cyclic[name]) for name in given_order],
            InMemoryTokenStorage(),
        )

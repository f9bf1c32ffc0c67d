"""Tests for requestforge._retry: retry rules, delays, Retry-After and the circuit breaker."""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from requestforge import (
    CircuitOpenError,
    ConfigurationError,
    ConnectError,
    ConnectTimeoutError,
    HttpMethod,
    HttpRequest,
    HttpResponse,
    HttpStatusError,
    ReadError,
    ReadTimeoutError,
    RequestContext,
    RequestTimeoutError,
    TooManyRedirectsError,
)
from requestforge._retry import (
    DEFAULT_ALLOWED_METHODS,
    RETRY_AFTER_STATUSES,
    RETRYABLE_STATUSES,
    BaseRetryStrategy,
    CircuitBreakerRetryStrategy,
    CircuitState,
    ExponentialBackoffRetryStrategy,
    NoRetryStrategy,
    RetryStrategyInterface,
    SimpleRetryStrategy,
    parse_retry_after,
)
from requestforge_testing import FakeClock, StressRunner

URL = "https://api.example.com/items"


def make_request(method: HttpMethod = HttpMethod.GET, data: Any = None) -> HttpRequest:
    return HttpRequest(method, URL, data=data)


def make_response(status: int, headers: Mapping[str, str] | None = None) -> HttpResponse:
    return HttpResponse(
        status_code=status, headers=CaseInsensitiveDict(headers or {}), content=b"", url=URL
    )


def make_context(
    method: HttpMethod = HttpMethod.GET,
    *,
    attempt: int = 0,
    data: Any = None,
    response: HttpResponse | None = None,
) -> RequestContext:
    return RequestContext(
        request=make_request(method, data), attempt=attempt, last_response=response
    )


def status_error(status: int) -> HttpStatusError:
    return HttpStatusError(f"status {status}", response=make_response(status))


def seeded(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - reproducible jitter, not cryptography


def fixed(delay: float = 1.0, **options: Any) -> SimpleRetryStrategy:
    return SimpleRetryStrategy(3, delay=delay, **options)


def exponential(**options: Any) -> ExponentialBackoffRetryStrategy:
    options.setdefault("jitter", False)
    return ExponentialBackoffRetryStrategy(3, **options)


RETRYING: list[Callable[[], RetryStrategyInterface]] = [
    fixed,
    exponential,
    lambda: CircuitBreakerRetryStrategy(retry=fixed()),
]
RETRYING_IDS = ["simple", "exponential", "breaker"]


# --- constants and NoRetryStrategy ----------------------------------------------------------


def test_module_constants() -> None:
    """The defaults are the RFC 9110 idempotent methods and the documented status sets."""
    assert sorted(RETRYABLE_STATUSES) == [429, 502, 503, 504]
    assert sorted(RETRY_AFTER_STATUSES) == [413, 429, 503]
    assert sorted(DEFAULT_ALLOWED_METHODS) == ["DELETE", "GET", "HEAD", "OPTIONS", "PUT", "TRACE"]
    assert all(isinstance(method, HttpMethod) for method in DEFAULT_ALLOWED_METHODS)


def test_no_retry_strategy_never_retries() -> None:
    """NoRetryStrategy has no retries, no retry statuses, and refuses even a connect error."""
    strategy = NoRetryStrategy()
    context = make_context()
    assert strategy.max_retries == 0
    assert strategy.retry_statuses == frozenset()
    assert strategy.should_retry(context, ConnectError("refused")) is False
    assert strategy.get_delay(context) == 0.0
    strategy.before_attempt(context)
    strategy.after_attempt(context, None, ConnectError("refused"))
    assert repr(strategy) == "NoRetryStrategy()"


# --- should_retry ---------------------------------------------------------------------------


@pytest.mark.parametrize("factory", RETRYING, ids=RETRYING_IDS)
@pytest.mark.parametrize("method", list(HttpMethod))
@pytest.mark.parametrize("error", [ConnectError("refused"), ConnectTimeoutError("slow")])
def test_connect_errors_are_retried_for_every_method(
    factory: Callable[[], RetryStrategyInterface], method: HttpMethod, error: Exception
) -> None:
    """The server never saw the request, so even POST and PATCH are retried."""
    assert factory().should_retry(make_context(method), error) is True


@pytest.mark.parametrize("factory", RETRYING, ids=RETRYING_IDS)
@pytest.mark.parametrize("method", list(HttpMethod))
@pytest.mark.parametrize(
    "error", [RequestTimeoutError("t"), ReadTimeoutError("t"), ReadError("reset")]
)
def test_timeouts_and_read_errors_are_retried_only_for_idempotent_methods(
    factory: Callable[[], RetryStrategyInterface], method: HttpMethod, error: Exception
) -> None:
    """The server may have acted already, so only idempotent methods go again."""
    assert factory().should_retry(make_context(method), error) is method.is_idempotent


@pytest.mark.parametrize("factory", RETRYING, ids=RETRYING_IDS)
@pytest.mark.parametrize("method", list(HttpMethod))
@pytest.mark.parametrize("status", sorted(RETRYABLE_STATUSES))
def test_retryable_statuses_are_retried_only_for_idempotent_methods(
    factory: Callable[[], RetryStrategyInterface], method: HttpMethod, status: int
) -> None:
    """A 429/502/503/504 is retried for idempotent methods and handed back for the rest."""
    context = make_context(method)
    assert factory().should_retry(context, status_error(status)) is method.is_idempotent


@pytest.mark.parametrize("status", [400, 401, 404, 500, 501])
def test_other_statuses_are_not_retried(status: int) -> None:
    """Statuses outside retry_statuses are not retried, even for GET."""
    assert fixed().should_retry(make_context(), status_error(status)) is False


def test_status_error_without_response_is_not_retried() -> None:
    """An HttpStatusError that carries no response gives nothing to judge by."""
    assert fixed().should_retry(make_context(), HttpStatusError("no response")) is False


@pytest.mark.parametrize("factory", RETRYING, ids=RETRYING_IDS)
@pytest.mark.parametrize(
    "error",
    [
        CircuitOpenError("open"),
        TooManyRedirectsError("loop"),
        ValueError("user bug"),
        KeyboardInterrupt(),
    ],
    ids=["circuit-open", "redirects", "user-error", "interrupt"],
)
def test_other_exceptions_are_never_retried(
    factory: Callable[[], RetryStrategyInterface], error: BaseException
) -> None:
    """Only transport failures and retryable statuses are retried."""
    assert factory().should_retry(make_context(), error) is False


@pytest.mark.parametrize("factory", RETRYING, ids=RETRYING_IDS)
@pytest.mark.parametrize("error", [ConnectError("refused"), ReadError("reset"), status_error(503)])
def test_non_replayable_body_is_never_retried(
    factory: Callable[[], RetryStrategyInterface], error: Exception
) -> None:
    """A generator body was consumed by the first attempt, so nothing is retried."""

    def chunks() -> Iterator[bytes]:
        yield b"part"

    context = make_context(HttpMethod.PUT, data=chunks())
    assert factory().should_retry(context, error) is False


def test_replayable_body_is_retried() -> None:
    """A bytes body can be sent again, so a PUT with one is retried after a read error."""
    context = make_context(HttpMethod.PUT, data=b"payload")
    assert fixed().should_retry(context, ReadError("reset")) is True


@pytest.mark.parametrize("factory", RETRYING, ids=RETRYING_IDS)
def test_retries_stop_when_attempts_are_exhausted(
    factory: Callable[[], RetryStrategyInterface],
) -> None:
    """Retry number max_retries is the last one; after it should_retry says no."""
    strategy = factory()
    assert strategy.max_retries == 3
    error = ConnectError("refused")
    assert strategy.should_retry(make_context(attempt=2), error) is True
    assert strategy.should_retry(make_context(attempt=3), error) is False
    assert strategy.should_retry(make_context(attempt=4), error) is False


def test_zero_max_retries_never_retries() -> None:
    """max_retries=0 is a valid way to switch retries off."""
    assert SimpleRetryStrategy(0).should_retry(make_context(), ConnectError("x")) is False


def test_allowed_methods_are_normalised_and_used() -> None:
    """Method names in any case and HttpMethod members both work, and only they retry."""
    strategy = SimpleRetryStrategy(allowed_methods=["post", HttpMethod.GET])
    assert strategy.allowed_methods == {HttpMethod.POST, HttpMethod.GET}
    assert strategy.should_retry(make_context(HttpMethod.POST), ReadError("x")) is True
    assert strategy.should_retry(make_context(HttpMethod.PUT), ReadError("x")) is False


def test_custom_retry_statuses_are_used() -> None:
    """retry_statuses replaces the default set, from any iterable."""
    strategy = SimpleRetryStrategy(retry_statuses=(s for s in (500, 418)))
    assert strategy.retry_statuses == {500, 418}
    assert strategy.should_retry(make_context(), status_error(500)) is True
    assert strategy.should_retry(make_context(), status_error(503)) is False


# --- get_delay and Retry-After --------------------------------------------------------------


@pytest.mark.parametrize("status", sorted(RETRY_AFTER_STATUSES))
def test_retry_after_seconds_replace_the_backoff(status: int, forge_clock: FakeClock) -> None:
    """A 413/429/503 with Retry-After: 7 waits 7 seconds instead of the fixed delay."""
    response = make_response(status, {"Retry-After": " 7 "})
    assert fixed(1.0).get_delay(make_context(attempt=1, response=response)) == 7.0


def test_retry_after_date_is_relative_to_the_default_clock_at_call_time(
    forge_clock: FakeClock,
) -> None:
    """An HTTP-date is counted from the default clock's now(), read on every call."""
    strategy = fixed(1.0)
    when = forge_clock.now().replace(microsecond=0) + timedelta(seconds=45)
    response = make_response(503, {"Retry-After": format_datetime(when, usegmt=True)})
    context = make_context(attempt=1, response=response)
    assert strategy.get_delay(context) == pytest.approx((when - forge_clock.now()).total_seconds())
    forge_clock.advance(30)
    assert strategy.get_delay(context) == pytest.approx((when - forge_clock.now()).total_seconds())
    forge_clock.advance(60)
    assert strategy.get_delay(context) == 0.0


def test_retry_after_date_uses_an_explicit_clock(forge_clock: FakeClock) -> None:
    """A clock= argument is used instead of the process-wide default."""
    own = FakeClock()
    own.set(datetime(2030, 1, 1, tzinfo=timezone.utc))
    forge_clock.set(datetime(2020, 1, 1, tzinfo=timezone.utc))
    strategy = fixed(1.0, clock=own)
    response = make_response(429, {"Retry-After": "Tue, 01 Jan 2030 00:00:20 GMT"})
    assert strategy.get_delay(make_context(attempt=1, response=response)) == 20.0


@pytest.mark.parametrize(
    ("options", "expected"),
    [({}, 120.0), ({"max_retry_after": 5}, 5.0), ({"max_retry_after": 0}, 0.0)],
)
def test_retry_after_is_capped(
    options: dict[str, Any], expected: float, forge_clock: FakeClock
) -> None:
    """A server asking for 1000 seconds gets at most max_retry_after."""
    response = make_response(503, {"Retry-After": "1000"})
    assert fixed(1.0, **options).get_delay(make_context(attempt=1, response=response)) == expected


@pytest.mark.parametrize("status", [500, 502, 504, 404])
def test_retry_after_is_ignored_for_other_statuses(status: int, forge_clock: FakeClock) -> None:
    """Retry-After on a status outside RETRY_AFTER_STATUSES does not change the delay."""
    response = make_response(status, {"Retry-After": "7"})
    assert fixed(1.0).get_delay(make_context(attempt=1, response=response)) == 1.0


@pytest.mark.parametrize("value", ["soon", "1.5", "-3", ""])
def test_invalid_retry_after_falls_back_to_backoff(value: str, forge_clock: FakeClock) -> None:
    """A Retry-After that does not parse is ignored."""
    response = make_response(503, {"Retry-After": value})
    assert fixed(1.0).get_delay(make_context(attempt=1, response=response)) == 1.0


def test_retry_after_can_be_switched_off(forge_clock: FakeClock) -> None:
    """respect_retry_after=False always uses the backoff."""
    strategy = fixed(1.0, respect_retry_after=False)
    response = make_response(503, {"Retry-After": "7"})
    assert strategy.get_delay(make_context(attempt=1, response=response)) == 1.0


def test_retry_after_header_is_found_in_any_case_in_a_plain_mapping(
    forge_clock: FakeClock,
) -> None:
    """Headers that are not a CaseInsensitiveDict are still searched ignoring case."""
    response = HttpResponse(
        status_code=429, headers=MappingProxyType({"retry-after": "9"}), content=b"", url=URL
    )
    assert fixed(1.0).get_delay(make_context(attempt=1, response=response)) == 9.0


def test_no_response_uses_backoff(forge_clock: FakeClock) -> None:
    """After a transport error there is no response, so the backoff decides."""
    assert fixed(2.5).get_delay(make_context(attempt=2)) == 2.5


# --- backoff --------------------------------------------------------------------------------


def test_simple_delay_is_constant() -> None:
    """SimpleRetryStrategy waits the same delay before every retry."""
    strategy = fixed(0.25)
    assert [strategy.get_delay(make_context(attempt=n)) for n in range(1, 6)] == [0.25] * 5


def test_exponential_backoff_grows_then_caps() -> None:
    """Without jitter the delay doubles from base_delay and stops at max_delay."""
    strategy = exponential(base_delay=0.5, max_delay=10.0)
    delays = [strategy.get_delay(make_context(attempt=n)) for n in range(1, 9)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_exponential_backoff_survives_huge_attempt_numbers() -> None:
    """A huge exponent gives max_delay instead of an OverflowError."""
    strategy = exponential(max_delay=30.0)
    assert strategy.get_delay(make_context(attempt=100_000)) == 30.0


def test_exponential_backoff_custom_multiplier() -> None:
    """The multiplier sets the growth; 1.0 makes it constant."""
    assert exponential(base_delay=1, multiplier=3).get_delay(make_context(attempt=3)) == 9.0
    assert exponential(base_delay=2, multiplier=1).get_delay(make_context(attempt=9)) == 2.0


@pytest.mark.parametrize(("attempt", "cap"), [(1, 0.5), (3, 2.0), (7, 30.0)])
def test_full_jitter_is_uniform_between_zero_and_the_cap(attempt: int, cap: float) -> None:
    """With jitter each delay lies in [0, cap] and the samples spread over the whole range."""
    strategy = ExponentialBackoffRetryStrategy(rng=seeded(1234))
    samples = [strategy.get_delay(make_context(attempt=attempt)) for _ in range(4000)]
    assert all(0.0 <= s <= cap for s in samples)
    assert min(samples) < 0.05 * cap
    assert max(samples) > 0.95 * cap
    assert sum(samples) / len(samples) == pytest.approx(cap / 2, rel=0.05)


def test_seeded_jitter_is_reproducible() -> None:
    """Two strategies with equally seeded rngs produce the same delays."""
    first = ExponentialBackoffRetryStrategy(rng=seeded(7))
    second = ExponentialBackoffRetryStrategy(rng=seeded(7))
    contexts = [make_context(attempt=n) for n in range(1, 20)]
    assert [first.get_delay(c) for c in contexts] == [second.get_delay(c) for c in contexts]


def test_default_jitter_stays_within_bounds() -> None:
    """Without an rng argument the module's own generator still respects the cap."""
    strategy = ExponentialBackoffRetryStrategy(base_delay=1.0, max_delay=4.0)
    assert all(0.0 <= strategy.get_delay(make_context(attempt=5)) <= 4.0 for _ in range(500))


# --- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "options", "match"),
    [
        (SimpleRetryStrategy, {"max_retries": -1}, "max_retries"),
        (SimpleRetryStrategy, {"max_retries": 1.5}, "max_retries"),
        (SimpleRetryStrategy, {"max_retries": True}, "max_retries"),
        (SimpleRetryStrategy, {"max_retries": "3"}, "max_retries"),
        (SimpleRetryStrategy, {"allowed_methods": ["FETCH"]}, "FETCH"),
        (SimpleRetryStrategy, {"allowed_methods": "GET"}, "allowed_methods"),
        (SimpleRetryStrategy, {"allowed_methods": [1]}, "allowed_methods"),
        (SimpleRetryStrategy, {"retry_statuses": [99]}, "retry_statuses"),
        (SimpleRetryStrategy, {"retry_statuses": [600]}, "retry_statuses"),
        (SimpleRetryStrategy, {"retry_statuses": [True]}, "retry_statuses"),
        (SimpleRetryStrategy, {"retry_statuses": [503.0]}, "retry_statuses"),
        (SimpleRetryStrategy, {"retry_statuses": "503"}, "retry_statuses"),
        (SimpleRetryStrategy, {"retry_statuses": 503}, "retry_statuses"),
        (SimpleRetryStrategy, {"respect_retry_after": "yes"}, "respect_retry_after"),
        (SimpleRetryStrategy, {"max_retry_after": -1}, "max_retry_after"),
        (SimpleRetryStrategy, {"max_retry_after": math.nan}, "max_retry_after"),
        (SimpleRetryStrategy, {"max_retry_after": math.inf}, "max_retry_after"),
        (SimpleRetryStrategy, {"clock": object()}, "clock"),
        (SimpleRetryStrategy, {"delay": -0.1}, "delay"),
        (SimpleRetryStrategy, {"delay": math.nan}, "delay"),
        (SimpleRetryStrategy, {"delay": "1"}, "delay"),
        (ExponentialBackoffRetryStrategy, {"base_delay": 0}, "base_delay"),
        (ExponentialBackoffRetryStrategy, {"base_delay": -1}, "base_delay"),
        (ExponentialBackoffRetryStrategy, {"base_delay": math.nan}, "base_delay"),
        (ExponentialBackoffRetryStrategy, {"base_delay": 2, "max_delay": 1}, "max_delay"),
        (ExponentialBackoffRetryStrategy, {"max_delay": math.inf}, "max_delay"),
        (ExponentialBackoffRetryStrategy, {"multiplier": 0.5}, "multiplier"),
        (ExponentialBackoffRetryStrategy, {"multiplier": math.nan}, "multiplier"),
        (ExponentialBackoffRetryStrategy, {"jitter": 1}, "jitter"),
        (ExponentialBackoffRetryStrategy, {"rng": object()}, "rng"),
        (ExponentialBackoffRetryStrategy, {"max_retries": -2}, "max_retries"),
        (CircuitBreakerRetryStrategy, {"failure_threshold": 0}, "failure_threshold"),
        (CircuitBreakerRetryStrategy, {"failure_threshold": True}, "failure_threshold"),
        (CircuitBreakerRetryStrategy, {"failure_threshold": 2.0}, "failure_threshold"),
        (CircuitBreakerRetryStrategy, {"reset_timeout": 0}, "reset_timeout"),
        (CircuitBreakerRetryStrategy, {"reset_timeout": -5}, "reset_timeout"),
        (CircuitBreakerRetryStrategy, {"reset_timeout": math.nan}, "reset_timeout"),
        (CircuitBreakerRetryStrategy, {"retry": object()}, "retry"),
        (CircuitBreakerRetryStrategy, {"clock": "now"}, "clock"),
    ],
)
def test_invalid_configuration_is_rejected(
    cls: Callable[..., RetryStrategyInterface], options: dict[str, Any], match: str
) -> None:
    """Each bad argument raises ConfigurationError, a ValueError, naming the problem."""
    with pytest.raises(ConfigurationError, match=match) as excinfo:
        cls(**options)
    assert isinstance(excinfo.value, ValueError)


def test_base_strategy_is_abstract() -> None:
    """BaseRetryStrategy needs a subclass that chooses the backoff."""
    with pytest.raises(TypeError, match="abstract"):
        BaseRetryStrategy()  # type: ignore[abstract]


def test_reprs_show_the_parameters() -> None:
    """repr names the class and every parameter that shapes its decisions."""
    text = repr(ExponentialBackoffRetryStrategy(4, base_delay=0.25, retry_statuses=[503]))
    assert text.startswith("ExponentialBackoffRetryStrategy(max_retries=4, base_delay=0.25")
    for part in ["max_delay=30.0", "multiplier=2.0", "jitter=True", "retry_statuses=[503]"]:
        assert part in text
    assert "allowed_methods=['DELETE', 'GET', 'HEAD', 'OPTIONS', 'PUT', 'TRACE']" in text
    assert "respect_retry_after=True, max_retry_after=120.0" in text
    assert repr(SimpleRetryStrategy(2, delay=3)).startswith(
        "SimpleRetryStrategy(max_retries=2, delay=3.0,"
    )
    breaker = repr(CircuitBreakerRetryStrategy(failure_threshold=2, retry=SimpleRetryStrategy()))
    assert breaker.startswith("CircuitBreakerRetryStrategy(failure_threshold=2, reset_timeout=30.0")
    assert "retry=SimpleRetryStrategy(" in breaker
    assert "state='closed'" in breaker


def test_strategies_do_not_change_when_used(forge_clock: FakeClock) -> None:
    """Deciding and computing delays leaves the configuration exactly as it was."""
    strategy = ExponentialBackoffRetryStrategy(rng=seeded(3))
    before = repr(strategy)
    for attempt in range(5):
        context = make_context(attempt=attempt, response=make_response(503, {"Retry-After": "2"}))
        strategy.should_retry(context, status_error(503))
        strategy.get_delay(context)
    assert repr(strategy) == before


# --- circuit breaker ------------------------------------------------------------------------


def tripped(
    threshold: int = 2, reset_timeout: float = 30.0, **options: Any
) -> CircuitBreakerRetryStrategy:
    """A breaker opened by ``threshold`` failures."""
    breaker = CircuitBreakerRetryStrategy(
        failure_threshold=threshold, reset_timeout=reset_timeout, **options
    )
    for _ in range(threshold):
        fail(breaker)
    assert state(breaker) is CircuitState.OPEN
    return breaker


def state(breaker: CircuitBreakerRetryStrategy) -> CircuitState:
    """The breaker's state, read through a call so that mypy does not narrow it across calls."""
    return breaker.state


def fail(breaker: CircuitBreakerRetryStrategy, context: RequestContext | None = None) -> None:
    context = context or make_context()
    breaker.before_attempt(context)
    breaker.after_attempt(context, None, ConnectError("refused"))


def succeed(breaker: CircuitBreakerRetryStrategy, context: RequestContext | None = None) -> None:
    context = context or make_context()
    breaker.before_attempt(context)
    breaker.after_attempt(context, make_response(200), None)


def test_breaker_starts_closed(forge_clock: FakeClock) -> None:
    """A new breaker lets requests through and has counted no failures."""
    breaker = CircuitBreakerRetryStrategy()
    assert state(breaker) is CircuitState.CLOSED
    assert breaker.failure_count == 0
    succeed(breaker)
    assert state(breaker) is CircuitState.CLOSED


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (None, ReadError("reset")),
        (None, KeyboardInterrupt()),
        (make_response(500), None),
        (make_response(503), None),
        (make_response(429), None),
    ],
    ids=["transport-error", "interrupt", "500", "503", "429"],
)
def test_failures_count_and_open_at_the_threshold(
    response: HttpResponse | None, error: BaseException | None, forge_clock: FakeClock
) -> None:
    """Errors, 5xx and retry statuses are failures; the threshold-th one opens the circuit."""
    breaker = CircuitBreakerRetryStrategy(failure_threshold=3)
    for expected in (1, 2):
        context = make_context()
        breaker.before_attempt(context)
        breaker.after_attempt(context, response, error)
        assert (breaker.state, breaker.failure_count) == (CircuitState.CLOSED, expected)
    context = make_context()
    breaker.before_attempt(context)
    breaker.after_attempt(context, response, error)
    assert state(breaker) is CircuitState.OPEN


@pytest.mark.parametrize("status", [200, 204, 301, 401, 404, 422])
def test_non_failure_responses_reset_the_count(status: int, forge_clock: FakeClock) -> None:
    """A 2xx/3xx/4xx outside retry_statuses is a success and clears consecutive failures."""
    breaker = CircuitBreakerRetryStrategy(failure_threshold=2)
    fail(breaker)
    assert breaker.failure_count == 1
    context = make_context()
    breaker.before_attempt(context)
    breaker.after_attempt(context, make_response(status), None)
    assert breaker.failure_count == 0
    fail(breaker)
    assert state(breaker) is CircuitState.CLOSED


def test_inner_retry_statuses_count_as_failures(forge_clock: FakeClock) -> None:
    """A status in the wrapped strategy's retry_statuses is a failure even if below 500."""
    breaker = CircuitBreakerRetryStrategy(
        failure_threshold=1, retry=SimpleRetryStrategy(retry_statuses=[418])
    )
    context = make_context()
    breaker.before_attempt(context)
    breaker.after_attempt(context, make_response(418), None)
    assert state(breaker) is CircuitState.OPEN


def test_open_circuit_refuses_until_the_reset_timeout(forge_clock: FakeClock) -> None:
    """While open, attempts are refused with the time left until a probe is allowed."""
    breaker = tripped(reset_timeout=30)
    forge_clock.advance(12)
    context = make_context()
    with pytest.raises(CircuitOpenError, match=r"18\.0s") as excinfo:
        breaker.before_attempt(context)
    assert excinfo.value.request is context.request
    forge_clock.advance(17.999)
    with pytest.raises(CircuitOpenError):
        breaker.before_attempt(make_context())
    assert state(breaker) is CircuitState.OPEN


def test_one_probe_after_the_reset_timeout_then_refusals(forge_clock: FakeClock) -> None:
    """Once the timeout passes exactly one attempt goes through while the rest are refused."""
    breaker = tripped(reset_timeout=30)
    forge_clock.advance(30)
    probe = make_context()
    breaker.before_attempt(probe)
    assert state(breaker) is CircuitState.HALF_OPEN
    with pytest.raises(CircuitOpenError, match="probe"):
        breaker.before_attempt(make_context())
    forge_clock.advance(29)
    with pytest.raises(CircuitOpenError, match="probe"):
        breaker.before_attempt(make_context())


def test_successful_probe_closes_the_circuit(forge_clock: FakeClock) -> None:
    """A probe that succeeds closes the circuit and clears the failure count."""
    breaker = tripped(threshold=2, reset_timeout=10)
    forge_clock.advance(10)
    succeed(breaker)
    assert state(breaker) is CircuitState.CLOSED
    assert breaker.failure_count == 0
    fail(breaker)
    assert state(breaker) is CircuitState.CLOSED
    succeed(breaker)


def test_failed_probe_reopens_with_a_fresh_timeout(forge_clock: FakeClock) -> None:
    """A probe that fails opens the circuit again, timed from the probe's failure."""
    breaker = tripped(reset_timeout=10)
    forge_clock.advance(10)
    probe = make_context()
    breaker.before_attempt(probe)
    forge_clock.advance(4)
    breaker.after_attempt(probe, make_response(502), None)
    assert state(breaker) is CircuitState.OPEN
    forge_clock.advance(9.5)
    with pytest.raises(CircuitOpenError, match=r"0\.5s"):
        breaker.before_attempt(make_context())
    forge_clock.advance(0.5)
    succeed(breaker)
    assert state(breaker) is CircuitState.CLOSED


def test_late_outcomes_do_not_disturb_the_probe(forge_clock: FakeClock) -> None:
    """Requests started before the circuit opened report back without closing or reopening it."""
    breaker = CircuitBreakerRetryStrategy(failure_threshold=2, reset_timeout=10)
    slow_success, slow_failure = make_context(), make_context()
    breaker.before_attempt(slow_success)
    breaker.before_attempt(slow_failure)
    fail(breaker)
    fail(breaker)
    breaker.after_attempt(slow_success, make_response(200), None)
    assert state(breaker) is CircuitState.OPEN
    forge_clock.advance(10)
    probe = make_context()
    breaker.before_attempt(probe)
    breaker.after_attempt(slow_failure, None, ReadError("reset"))
    assert state(breaker) is CircuitState.HALF_OPEN
    breaker.after_attempt(probe, make_response(200), None)
    assert state(breaker) is CircuitState.CLOSED


def test_success_while_open_does_not_close_or_delay_the_probe(forge_clock: FakeClock) -> None:
    """A late success while open leaves the circuit open with the original timeout."""
    breaker = CircuitBreakerRetryStrategy(failure_threshold=1, reset_timeout=10)
    late = make_context()
    breaker.before_attempt(late)
    fail(breaker)
    forge_clock.advance(6)
    breaker.after_attempt(late, None, ReadError("reset"))
    assert state(breaker) is CircuitState.OPEN
    forge_clock.advance(4)
    breaker.before_attempt(make_context())
    assert state(breaker) is CircuitState.HALF_OPEN


def test_lost_probe_is_replaced_after_another_reset_timeout(forge_clock: FakeClock) -> None:
    """A probe that never reports does not wedge the breaker; its late report is ignored."""
    breaker = tripped(reset_timeout=10)
    forge_clock.advance(10)
    lost = make_context()
    breaker.before_attempt(lost)
    forge_clock.advance(10)
    probe = make_context()
    breaker.before_attempt(probe)
    breaker.after_attempt(lost, None, ReadError("too late"))
    assert state(breaker) is CircuitState.HALF_OPEN
    breaker.after_attempt(probe, make_response(200), None)
    assert state(breaker) is CircuitState.CLOSED


def test_reset_closes_and_forgets_the_probe(forge_clock: FakeClock) -> None:
    """reset() closes the circuit; the old probe's failure then counts as an ordinary one."""
    breaker = tripped(threshold=2, reset_timeout=10)
    forge_clock.advance(10)
    probe = make_context()
    breaker.before_attempt(probe)
    breaker.reset()
    assert (breaker.state, breaker.failure_count) == (CircuitState.CLOSED, 0)
    breaker.after_attempt(probe, None, ReadError("reset"))
    assert (breaker.state, breaker.failure_count) == (CircuitState.CLOSED, 1)


def test_breaker_reads_the_default_clock_at_call_time(forge_clock: FakeClock) -> None:
    """A breaker built before the clock moved still sees the move."""
    breaker = tripped(reset_timeout=5)
    forge_clock.advance(5)
    succeed(breaker)
    assert state(breaker) is CircuitState.CLOSED


def test_breaker_uses_an_explicit_clock(forge_clock: FakeClock) -> None:
    """With clock= the default clock moving does not end the open period; its own clock does."""
    own = FakeClock()
    breaker = tripped(reset_timeout=5, clock=own)
    forge_clock.advance(100)
    with pytest.raises(CircuitOpenError):
        breaker.before_attempt(make_context())
    own.advance(5)
    succeed(breaker)
    assert state(breaker) is CircuitState.CLOSED


def test_breaker_delegates_to_the_wrapped_strategy(forge_clock: FakeClock) -> None:
    """max_retries, retry_statuses, should_retry and get_delay come from the wrapped strategy."""
    inner = SimpleRetryStrategy(7, delay=2.5, retry_statuses=[500])
    breaker = CircuitBreakerRetryStrategy(retry=inner)
    assert breaker.retry is inner
    assert breaker.max_retries == 7
    assert breaker.retry_statuses == {500}
    assert breaker.get_delay(make_context(attempt=1)) == 2.5
    assert breaker.should_retry(make_context(), status_error(500)) is True
    assert breaker.should_retry(make_context(HttpMethod.POST), ReadError("x")) is False


def test_default_wrapped_strategy_is_exponential_backoff() -> None:
    """Without retry= the breaker retries like ExponentialBackoffRetryStrategy()."""
    breaker = CircuitBreakerRetryStrategy()
    assert isinstance(breaker.retry, ExponentialBackoffRetryStrategy)
    assert breaker.max_retries == 3
    assert breaker.retry_statuses == RETRYABLE_STATUSES


def test_breaker_does_not_retry_unless_closed(forge_clock: FakeClock) -> None:
    """While open or half-open a retry would only be refused, so should_retry says no."""
    breaker = tripped(reset_timeout=10, retry=fixed())
    assert breaker.should_retry(make_context(), ConnectError("x")) is False
    forge_clock.advance(10)
    breaker.before_attempt(make_context())
    assert state(breaker) is CircuitState.HALF_OPEN
    assert breaker.should_retry(make_context(), ConnectError("x")) is False
    breaker.reset()
    assert breaker.should_retry(make_context(), ConnectError("x")) is True


def test_hooks_are_delegated_to_a_wrapped_breaker(forge_clock: FakeClock) -> None:
    """before_attempt and after_attempt reach the wrapped strategy, so breakers can nest."""
    inner = CircuitBreakerRetryStrategy(failure_threshold=1)
    outer = CircuitBreakerRetryStrategy(failure_threshold=5, retry=inner)
    fail(outer)
    assert (outer.state, inner.state) == (CircuitState.CLOSED, CircuitState.OPEN)
    with pytest.raises(CircuitOpenError):
        outer.before_attempt(make_context())


class RefuseOnce(SimpleRetryStrategy):
    """A wrapped strategy whose before_attempt refuses once after ``arm()``."""

    def __init__(self) -> None:
        super().__init__()
        self.refusals: list[Exception] = []

    def arm(self) -> None:
        self.refusals.append(RuntimeError("refused by the wrapped strategy"))

    def before_attempt(self, context: RequestContext) -> None:
        if self.refusals:
            raise self.refusals.pop()


def test_probe_is_handed_back_when_the_wrapped_strategy_refuses(forge_clock: FakeClock) -> None:
    """If the wrapped strategy refuses the probe, the next attempt may probe at once."""
    inner = RefuseOnce()
    breaker = tripped(reset_timeout=10, retry=inner)
    forge_clock.advance(10)
    inner.arm()
    refused = make_context()
    with pytest.raises(RuntimeError, match="wrapped"):
        breaker.before_attempt(refused)
    assert state(breaker) is CircuitState.OPEN
    assert refused.metadata == {}
    succeed(breaker)
    assert state(breaker) is CircuitState.CLOSED


# --- concurrency ----------------------------------------------------------------------------


def test_exactly_one_probe_among_racing_threads(
    forge_clock: FakeClock, forge_stress: StressRunner
) -> None:
    """32 threads released together after the reset timeout: one probe, 31 refusals, 200 times."""
    threads, rounds = 32, 200
    breakers: list[CircuitBreakerRetryStrategy] = []

    def trip_and_wait_out(_: int) -> None:
        breakers.append(tripped(threshold=1, reset_timeout=1))
        forge_clock.advance(1)

    def attempt() -> str:
        try:
            breakers[-1].before_attempt(make_context())
        except CircuitOpenError:
            return "refused"
        return "probe"

    report = forge_stress(attempt, threads=threads, rounds=rounds, before_round=trip_and_wait_out)
    report.assert_no_errors()
    for round_, breaker in zip(report.rounds, breakers, strict=True):
        assert sorted(round_.results) == ["probe"] + ["refused"] * (threads - 1), round_.index
        assert state(breaker) is CircuitState.HALF_OPEN


@pytest.mark.parametrize("in_flight", ["closed", "probe"])
def test_no_lock_is_held_while_a_request_is_in_flight(
    in_flight: str, forge_clock: FakeClock
) -> None:
    """While thread A's attempt is in flight, thread B's calls complete without waiting."""
    breaker = CircuitBreakerRetryStrategy(failure_threshold=1, reset_timeout=10)
    if in_flight == "probe":
        fail(breaker)
        forge_clock.advance(10)
    started, finish = threading.Event(), threading.Event()
    b_results: list[str] = []

    def attempt_a() -> None:
        context = make_context()
        breaker.before_attempt(context)
        started.set()
        finish.wait(timeout=30)
        breaker.after_attempt(context, make_response(200), None)

    def calls_b() -> None:
        for _ in range(3):
            context = make_context()
            try:
                breaker.before_attempt(context)
            except CircuitOpenError:
                b_results.append("refused")
                continue
            breaker.after_attempt(context, None, ReadError("reset"))
            b_results.append("failed")

    thread_a = threading.Thread(target=attempt_a, daemon=True)
    thread_a.start()
    assert started.wait(timeout=30)
    thread_b = threading.Thread(target=calls_b, daemon=True)
    thread_b.start()
    thread_b.join(timeout=5)
    try:
        assert not thread_b.is_alive()
        expected = ["failed", "refused", "refused"] if in_flight == "closed" else ["refused"] * 3
        assert b_results == expected
    finally:
        finish.set()
        thread_a.join(timeout=30)
    assert not thread_a.is_alive()


# --- parse_retry_after ----------------------------------------------------------------------

NOW = datetime(2024, 5, 17, 12, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("120", 120.0),
        ("  30\t", 30.0),
        ("007", 7.0),
        ("Fri, 17 May 2024 12:01:30 GMT", 90.0),
        ("Friday, 17-May-24 12:00:10 GMT", 10.0),
        ("Fri May 17 12:00:05 2024", 5.0),
        ("Thu, 16 May 2024 12:00:00 GMT", 0.0),
        ("9" * 5000, math.inf),
    ],
)
def test_parse_retry_after_valid(value: str, expected: float) -> None:
    """Delta-seconds and the three RFC 9110 date formats give the seconds to wait."""
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    "value", ["", "   ", "-1", "+5", "1.5", "1e3", ".", "soon", "٣", "Fri, 99 Nope 2024"]
)
def test_parse_retry_after_invalid(value: str) -> None:
    """Anything but a non-negative integer or an HTTP-date gives None."""
    assert parse_retry_after(value, NOW) is None


def test_parse_retry_after_naive_now_is_utc() -> None:
    """A naive ``now`` is taken as UTC instead of raising on the subtraction."""
    naive = NOW.replace(tzinfo=None)
    assert parse_retry_after("Fri, 17 May 2024 12:00:30 GMT", naive) == 30.0


@given(st.integers(min_value=0, max_value=10**15), st.sampled_from(["", " ", "\t", "  "]))
def test_parse_retry_after_integers_round_trip(seconds: int, pad: str) -> None:
    """Every non-negative integer, padded with whitespace, parses to itself."""
    assert parse_retry_after(f"{pad}{seconds}{pad}", NOW) == float(seconds)


@given(st.integers(max_value=-1))
def test_parse_retry_after_negative_integers_are_invalid(seconds: int) -> None:
    """A negative delta is not valid delta-seconds."""
    assert parse_retry_after(str(seconds), NOW) is None


@given(st.text())
def test_parse_retry_after_never_raises(value: str) -> None:
    """Arbitrary text gives None or a non-negative number, never an exception."""
    result = parse_retry_after(value, NOW)
    assert result is None or result >= 0.0


@given(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(9999, 12, 31)),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(9999, 12, 31)),
)
def test_parse_retry_after_http_dates(when: datetime, now: datetime) -> None:
    """A date written by format_datetime(usegmt=True) parses to its distance from now."""
    when = when.replace(microsecond=0, tzinfo=timezone.utc)
    now = now.replace(tzinfo=timezone.utc)
    expected = max(0.0, (when - now).total_seconds())
    assert parse_retry_after(format_datetime(when, usegmt=True), now) == expected

"""Tests for requestforge._hooks: the built-in request, response and error hooks."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import responses
from hypothesis import given
from hypothesis import strategies as st

import requestforge._hooks as hooks_module
from requestforge import (
    ApiKeyAuthHook,
    AuthHookInterface,
    AuthorizationHook,
    ConfigurationError,
    CorrelationIdHook,
    ErrorHookInterface,
    HookError,
    HttpClient,
    HttpClientConfigBuilder,
    HttpMethod,
    HttpRequest,
    HttpResponse,
    HttpStatusError,
    InvalidRequestError,
    LoggingErrorHook,
    LoggingRequestHook,
    LoggingResponseHook,
    RateLimitInfo,
    RateLimitResponseHook,
    ReadTimeoutError,
    RequestContext,
    RequestHookInterface,
    ResponseHookInterface,
    SimpleRetryStrategy,
    set_default_clock,
)
from requestforge_testing import FakeClock

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
SECRETS = ("t0k3n-abc", "c00kie-val", "k3y-123", "qs-t0k", "hunter2", "cl13nt-s3cr3t")


def _secret_request() -> HttpRequest:
    """A request carrying a credential in every place a credential can hide."""
    return HttpRequest(
        HttpMethod.POST,
        "https://api.example.com/v1/items?access_token=qs-t0k&page=2",
        headers={
            "Authorization": "Bearer t0k3n-abc",
            "Cookie": "session=c00kie-val",
            "X-API-Key": "k3y-123",
            "X-Request-ID": "req-42",
        },
        params={"q": "books", "api_key": "k3y-123"},
        json_data={"user": "ann", "password": "hunter2", "client_secret": "cl13nt-s3cr3t"},
    )


def _response(
    request: HttpRequest,
    status: int = 200,
    headers: dict[str, str] | None = None,
    *,
    url: str | None = None,
) -> HttpResponse:
    return HttpResponse(
        status_code=status,
        headers=headers or {},
        content=b"{}",
        url=url if url is not None else request.url,
        elapsed_ms=12.345,
        request=request,
    )


class _FixedClock:
    """A clock frozen at NOW; never sleeps."""

    def now(self) -> datetime:
        return NOW

    def monotonic(self) -> float:
        return 0.0

    def sleep(self, seconds: float) -> None:
        raise AssertionError("hooks must not sleep")


@pytest.fixture
def fixed_clock() -> Iterator[None]:
    """Install a clock frozen at NOW as the library default for one test."""
    previous = set_default_clock(_FixedClock())
    try:
        yield
    finally:
        set_default_clock(previous)


# -- no secret reaches a log --------------------------------------------------------------


def test_logging_hooks_never_log_secrets(caplog: pytest.LogCaptureFixture) -> None:
    """All logging hooks at DEBUG, fed a request full of secrets, log none of them."""
    caplog.set_level(logging.DEBUG, logger="requestforge")
    request = _secret_request()
    context = RequestContext(request=request, max_retries=2)
    LoggingRequestHook().before_request(request, context)
    sent_url = request.url + "&q=books&api_key=k3y-123"
    LoggingResponseHook(level=logging.DEBUG).after_response(
        _response(request, 200, url=sent_url), context
    )
    RateLimitResponseHook(warn_below=10).after_response(
        _response(request, 429, {"X-RateLimit-Remaining": "0"}, url=sent_url), context
    )
    LoggingErrorHook(level=logging.DEBUG).on_error(
        HttpStatusError(f"boom for {sent_url}", response=_response(request, 500)), context
    )
    assert len(caplog.records) == 4
    for secret in SECRETS:
        assert secret not in caplog.text
    assert "page=2" in caplog.text
    assert "req-42" in caplog.text


# -- LoggingRequestHook -------------------------------------------------------------------


def test_request_hook_logs_method_url_and_redacted_headers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The request is logged at the configured level with a redacted URL and headers."""
    caplog.set_level(logging.DEBUG, logger="requestforge")
    request = _secret_request()
    returned = LoggingRequestHook(level=logging.INFO).before_request(
        request, RequestContext(request=request)
    )
    assert returned is request
    [record] = caplog.records
    assert record.levelno == logging.INFO
    assert record.name == "requestforge"
    message = record.getMessage()
    assert message.startswith("HTTP request POST https://api.example.com/v1/items?")
    assert "'Authorization': '[REDACTED]'" in message
    assert "'X-Request-ID': 'req-42'" in message
    assert "'q': 'books'" in message
    assert "hunter2" not in message


def test_request_hook_does_no_work_when_disabled(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below the logger's level the hook neither logs nor redacts anything."""
    caplog.set_level(logging.WARNING, logger="requestforge")

    def must_not_run(*_: object) -> Any:
        raise AssertionError("redaction ran although logging is disabled")

    monkeypatch.setattr(hooks_module, "redact_headers", must_not_run)
    monkeypatch.setattr(hooks_module, "redact_url", must_not_run)
    request = _secret_request()
    context = RequestContext(request=request)
    assert LoggingRequestHook().before_request(request, context) is request
    LoggingResponseHook().after_response(_response(request), context)
    assert caplog.records == []


def test_logging_hooks_print_an_extension_method(caplog: pytest.LogCaptureFixture) -> None:
    """The request, response and error hooks log an extension method by its name."""
    caplog.set_level(logging.DEBUG, logger="requestforge")
    request = HttpRequest("propfind", "https://dav.example/files/")  # type: ignore[arg-type]
    context = RequestContext(request=request)
    LoggingRequestHook().before_request(request, context)
    LoggingResponseHook().after_response(_response(request, 207), context)
    LoggingErrorHook().on_error(ReadTimeoutError("slow", request=request), context)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert all("PROPFIND https://dav.example/files/" in m for m in messages), messages


def test_custom_logger_is_used(caplog: pytest.LogCaptureFixture) -> None:
    """logger= sends the messages to the caller's logger."""
    logger = logging.getLogger("myapp.http")
    caplog.set_level(logging.DEBUG, logger="myapp.http")
    request = _secret_request()
    hook = LoggingRequestHook(logger=logger)
    hook.before_request(request, RequestContext(request=request))
    assert [r.name for r in caplog.records] == ["myapp.http"]
    assert repr(hook) == "LoggingRequestHook(logger='myapp.http', level='DEBUG')"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"logger": "requestforge"}, "logger must be a logging.Logger"),
        ({"level": 0}, "level"),
        ({"level": "DEBUG"}, "level"),
        ({"level": True}, "level"),
    ],
)
def test_logging_hooks_validate_options(kwargs: dict[str, Any], message: str) -> None:
    """A bad logger or level raises ConfigurationError at construction, for each hook."""
    for hook_class in (LoggingRequestHook, LoggingResponseHook, LoggingErrorHook):
        with pytest.raises(ConfigurationError, match=message):
            hook_class(**kwargs)


# -- CorrelationIdHook --------------------------------------------------------------------


def test_correlation_id_is_added_and_recorded() -> None:
    """A request without the header gets a new id, which is also put in the metadata."""
    request = HttpRequest(HttpMethod.GET, "https://a.example")
    context = RequestContext(request=request)
    sent = CorrelationIdHook(id_factory=lambda: "cid-1").before_request(request, context)
    assert sent.header("X-Correlation-ID") == "cid-1"
    assert context.metadata["correlation_id"] == "cid-1"
    assert request.header("X-Correlation-ID") is None


def test_correlation_id_keeps_the_callers_id() -> None:
    """An id the caller already set, in any header case, is kept and recorded."""
    request = HttpRequest(HttpMethod.GET, "https://a.example", headers={"x-correlation-id": "mine"})
    context = RequestContext(request=request)

    def factory() -> str:
        raise AssertionError("no new id is needed")

    sent = CorrelationIdHook(id_factory=factory).before_request(request, context)
    assert sent is request
    assert context.metadata["correlation_id"] == "mine"


def test_correlation_id_replaces_a_blank_header() -> None:
    """A blank id header counts as missing."""
    request = HttpRequest(HttpMethod.GET, "https://a.example", headers={"X-Correlation-ID": " "})
    sent = CorrelationIdHook(id_factory=lambda: "new").before_request(
        request, RequestContext(request=request)
    )
    assert dict(sent.headers) == {"X-Correlation-ID": "new"}


def test_correlation_id_default_factory_makes_unique_hex_ids() -> None:
    """The default ids are 32 hex digits and differ from request to request."""
    hook = CorrelationIdHook(header_name="X-Request-ID")
    request = HttpRequest(HttpMethod.GET, "https://a.example")
    ids = {
        hook.before_request(request, RequestContext(request=request)).header("X-Request-ID")
        for _ in range(50)
    }
    assert len(ids) == 50
    assert all(i is not None and re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert repr(hook) == "CorrelationIdHook(header_name='X-Request-ID')"


def test_correlation_id_rejects_bad_configuration() -> None:
    """A bad header name or factory is rejected at construction; a bad id at request time."""
    with pytest.raises(ConfigurationError, match="header_name"):
        CorrelationIdHook(header_name="X Bad")
    with pytest.raises(ConfigurationError, match="id_factory"):
        CorrelationIdHook(id_factory="abc")  # type: ignore[arg-type]
    request = HttpRequest(HttpMethod.GET, "https://a.example")
    hook = CorrelationIdHook(id_factory=lambda: "a\r\nX-Injected: 1")
    with pytest.raises(InvalidRequestError, match="correlation id"):
        hook.before_request(request, RequestContext(request=request))


def test_correlation_id_checks_only_ids_it_did_not_make(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default factory's hex ids skip the header-value check; a caller's ids get it."""
    checked: list[object] = []
    real_check = hooks_module._header_value_problem

    def counting_check(value: object) -> str | None:
        checked.append(value)
        return real_check(value)

    monkeypatch.setattr(hooks_module, "_header_value_problem", counting_check)
    request = HttpRequest(HttpMethod.GET, "https://a.example")
    CorrelationIdHook().before_request(request, RequestContext(request=request))
    assert checked == []
    CorrelationIdHook(id_factory=lambda: "cid-7").before_request(
        request, RequestContext(request=request)
    )
    assert checked == ["cid-7"]


# -- AuthorizationHook --------------------------------------------------------------------


def test_authorization_hook_sets_a_static_value() -> None:
    """A string value is sent as the Authorization header, replacing the caller's."""
    request = HttpRequest(HttpMethod.GET, "https://a.example", headers={"AUTHORIZATION": "old"})
    sent = AuthorizationHook("Token t0k3n-abc").before_request(
        request, RequestContext(request=request)
    )
    assert dict(sent.headers) == {"Authorization": "Token t0k3n-abc"}


def test_authorization_hook_calls_the_callable_per_request() -> None:
    """A callable is asked once for every request, so each gets the current value."""
    values = iter(["Bearer one", "Bearer two"])
    hook = AuthorizationHook(lambda: next(values))
    request = HttpRequest(HttpMethod.GET, "https://a.example")
    first = hook.before_request(request, RequestContext(request=request))
    second = hook.before_request(request, RequestContext(request=request))
    assert first.header("Authorization") == "Bearer one"
    assert second.header("Authorization") == "Bearer two"


def test_authorization_hook_repr_never_shows_the_value() -> None:
    """Neither a static value nor a callable's details appear in the repr."""
    assert repr(AuthorizationHook("Bearer t0k3n-abc")) == (
        "AuthorizationHook(authorization='[REDACTED]')"
    )

    def t0k3n_abc() -> str:
        return "Bearer x"

    assert repr(AuthorizationHook(t0k3n_abc)) == "AuthorizationHook(authorization=<callable>)"


def test_authorization_hook_rejects_bad_values() -> None:
    """Unusable values raise at construction, or at request time for a callable's result."""
    for bad in ("", "a\nb", 5, None):
        with pytest.raises(ConfigurationError, match="authorization"):
            AuthorizationHook(bad)  # type: ignore[arg-type]
    request = HttpRequest(HttpMethod.GET, "https://a.example")
    hook = AuthorizationHook(lambda: "t0k3n-abc\r\n")
    with pytest.raises(InvalidRequestError, match="line break") as excinfo:
        hook.before_request(request, RequestContext(request=request))
    assert "t0k3n" not in str(excinfo.value)


# -- LoggingResponseHook ------------------------------------------------------------------


def test_response_hook_logs_status_method_url_and_elapsed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The final response is logged with status, method, redacted URL and duration."""
    caplog.set_level(logging.INFO, logger="requestforge")
    request = _secret_request()
    context = RequestContext(request=request)
    context.increment_attempt()
    response = _response(request, 201)
    assert LoggingResponseHook().after_response(response, context) is response
    [record] = caplog.records
    assert record.levelno == logging.INFO
    message = record.getMessage()
    assert message.startswith("HTTP response 201 POST https://api.example.com/v1/items?")
    assert "12.3 ms" in message
    assert "2 attempt(s)" in message
    assert "qs-t0k" not in message


# -- RateLimitInfo ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "7", "X-RateLimit-Reset": "30"},
            RateLimitInfo(100, 7, 30.0, None),
        ),
        (
            {"X-RateLimit-Reset": str(int(NOW.timestamp()) + 90), "X-RateLimit-Remaining": "0"},
            RateLimitInfo(None, 0, 90.0, None),
        ),
        (
            {"X-RateLimit-Reset": str(int(NOW.timestamp()) - 5)},
            RateLimitInfo(None, None, 0.0, None),
        ),
        (
            {"RateLimit-Limit": "10", "RateLimit-Remaining": "3", "RateLimit-Reset": "2.5"},
            RateLimitInfo(10, 3, 2.5, None),
        ),
        (
            {"RateLimit-Limit": "10, 10;w=1, 50;w=60", "RateLimit-Remaining": "9"},
            RateLimitInfo(10, 9, None, None),
        ),
        (
            {"x-rate-limit-limit": "900", "x-rate-limit-remaining": "899"},
            RateLimitInfo(900, 899, None, None),
        ),
        ({"Retry-After": "120"}, RateLimitInfo(None, None, None, 120.0)),
        (
            {"Retry-After": "Wed, 01 May 2024 12:01:30 GMT"},
            RateLimitInfo(None, None, None, 90.0),
        ),
        (
            {"Retry-After": "Wed, 01 May 2024 11:00:00 GMT"},
            RateLimitInfo(None, None, None, 0.0),
        ),
        (
            {"RATELIMIT-REMAINING": "1", "x-ratelimit-remaining": "50", "X-RateLimit-Limit": "60"},
            RateLimitInfo(60, 1, None, None),
        ),
    ],
    ids=[
        "x-ratelimit-delta",
        "x-ratelimit-epoch",
        "epoch-in-the-past",
        "ietf",
        "ietf-quota-policy-list",
        "x-rate-limit",
        "retry-after-seconds",
        "retry-after-date",
        "retry-after-past-date",
        "ietf-wins-field-by-field",
    ],
)
def test_rate_limit_info_from_headers(headers: dict[str, str], expected: RateLimitInfo) -> None:
    """Each header family parses into the same RateLimitInfo, relative to a fixed now."""
    assert RateLimitInfo.from_headers(headers, NOW) == expected


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Content-Type": "application/json"},
        {"X-RateLimit-Limit": "lots", "X-RateLimit-Remaining": "-1", "Retry-After": "soon"},
        {"RateLimit-Reset": "nan", "X-RateLimit-Reset": "inf", "Retry-After": "1e3"},
        {"Retry-After": "Wed, 99 Foo 2024 99:99:99 GMT"},
    ],
    ids=["empty", "unrelated", "malformed", "non-finite", "bad-date"],
)
def test_rate_limit_info_none_without_usable_headers(headers: dict[str, str]) -> None:
    """No rate-limit header, or only malformed ones, gives None instead of raising."""
    assert RateLimitInfo.from_headers(headers, NOW) is None


def test_rate_limit_info_reads_past_a_header_name_that_is_not_a_string() -> None:
    """A mapping with a non-string name still has its rate-limit headers parsed."""
    headers: dict[Any, str] = {1: "one", "x-ratelimit-REMAINING": "3", "Server": "t"}
    assert RateLimitInfo.from_headers(headers, NOW) == RateLimitInfo(remaining=3)


@pytest.mark.parametrize(
    "headers",
    [{"X-Generated-By": "gen"}, {"X-Retry-After-Hint": "5"}, {"Operator": "ratel"}],
    ids=["rate-inside-a-name", "retry-after-inside-a-name", "rate-only-in-a-value"],
)
def test_rate_limit_info_none_for_names_that_only_look_related(headers: dict[str, str]) -> None:
    """Names that merely contain "rate" or "retry-after" parse to None, not to empty info."""
    assert RateLimitInfo.from_headers(headers, NOW) is None


def test_rate_limit_info_ignores_one_malformed_field() -> None:
    """A malformed field is skipped while the valid ones are still parsed."""
    info = RateLimitInfo.from_headers({"X-RateLimit-Limit": "x", "X-RateLimit-Remaining": "4"}, NOW)
    assert info == RateLimitInfo(None, 4, None, None)


def test_rate_limit_info_handles_naive_datetimes() -> None:
    """A naive now is taken as UTC instead of failing against an aware HTTP date."""
    naive_now = NOW.replace(tzinfo=None)
    info = RateLimitInfo.from_headers({"Retry-After": "Wed, 01 May 2024 12:00:10 GMT"}, naive_now)
    assert info == RateLimitInfo(retry_after_seconds=10.0)


@pytest.mark.usefixtures("fixed_clock")
def test_rate_limit_info_now_defaults_to_the_library_clock() -> None:
    """Without now, an epoch reset is measured from the default clock."""
    epoch = str(int((NOW + timedelta(seconds=42)).timestamp()))
    info = RateLimitInfo.from_headers({"X-RateLimit-Reset": epoch})
    assert info is not None
    assert info.reset_after_seconds == 42.0


def test_rate_limit_info_is_frozen() -> None:
    """RateLimitInfo is immutable, so it can be shared through metadata."""
    info = RateLimitInfo(1, 1, None, None)
    with pytest.raises(AttributeError):
        info.remaining = 0  # type: ignore[misc]


_HEADER_NAMES = st.sampled_from(
    [
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        "RateLimit-Limit",
        "RateLimit-Remaining",
        "RateLimit-Reset",
        "X-Rate-Limit-Limit",
        "X-Rate-Limit-Remaining",
        "X-Rate-Limit-Reset",
        "Retry-After",
    ]
)


@given(
    st.dictionaries(st.one_of(_HEADER_NAMES, st.text()), st.text(), max_size=6),
    st.datetimes(timezones=st.sampled_from([timezone.utc, None])),
)
def test_property_from_headers_never_raises(headers: dict[str, str], now: datetime) -> None:
    """Whatever the header values and the time, parsing returns None or sane values."""
    info = RateLimitInfo.from_headers(headers, now)
    if info is not None:
        assert info.limit is None or info.limit >= 0
        assert info.remaining is None or info.remaining >= 0
        assert info.reset_after_seconds is None or info.reset_after_seconds >= 0
        assert info.retry_after_seconds is None or info.retry_after_seconds >= 0


# -- RateLimitResponseHook ----------------------------------------------------------------


@pytest.mark.usefixtures("fixed_clock")
def test_rate_limit_hook_records_and_calls_back(caplog: pytest.LogCaptureFixture) -> None:
    """The parsed info lands in the metadata and the callback gets it with the response."""
    caplog.set_level(logging.DEBUG, logger="requestforge")
    seen: list[tuple[RateLimitInfo, HttpResponse]] = []
    request = HttpRequest(HttpMethod.GET, "https://a.example/x")
    context = RequestContext(request=request)
    epoch = str(int(NOW.timestamp()) + 60)
    response = _response(
        request, headers={"X-RateLimit-Remaining": "5", "X-RateLimit-Reset": epoch}
    )
    hook = RateLimitResponseHook(lambda info, resp: seen.append((info, resp)))
    assert hook.after_response(response, context) is response
    expected = RateLimitInfo(None, 5, 60.0, None)
    assert context.metadata["rate_limit"] == expected
    assert seen == [(expected, response)]
    assert caplog.records == []


def test_rate_limit_hook_ignores_responses_without_headers() -> None:
    """Without rate-limit headers nothing is recorded and the callback is not called."""
    seen: list[RateLimitInfo] = []
    request = HttpRequest(HttpMethod.GET, "https://a.example/x")
    context = RequestContext(request=request)
    RateLimitResponseHook(lambda info, _: seen.append(info)).after_response(
        _response(request), context
    )
    assert "rate_limit" not in context.metadata
    assert seen == []


def test_rate_limit_hook_reads_the_clock_only_for_rate_limit_headers(
    forge_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A response without rate-limit headers costs no clock read; one with them reads it."""
    reads: list[datetime] = []
    real_now = forge_clock.now

    def counting_now() -> datetime:
        reads.append(real_now())
        return reads[-1]

    monkeypatch.setattr(forge_clock, "now", counting_now)
    request = HttpRequest(HttpMethod.GET, "https://a.example/x")
    hook = RateLimitResponseHook()
    hook.after_response(
        _response(request, headers={"Server": "t"}), RequestContext(request=request)
    )
    assert reads == []
    limited = _response(request, headers={"X-RateLimit-Remaining": "9"})
    hook.after_response(limited, RequestContext(request=request))
    assert len(reads) == 1


@pytest.mark.parametrize(
    ("remaining", "warn_below", "warns"),
    [("0", 0, True), ("1", 0, False), ("10", 10, True), ("11", 10, False), ("0", -1, False)],
)
def test_rate_limit_hook_warns_when_running_low(
    caplog: pytest.LogCaptureFixture, remaining: str, warn_below: int, warns: bool
) -> None:
    """A warning is logged exactly when remaining <= warn_below."""
    caplog.set_level(logging.DEBUG, logger="requestforge")
    request = HttpRequest(HttpMethod.GET, "https://a.example/x?access_token=qs-t0k")
    response = _response(
        request, headers={"RateLimit-Remaining": remaining, "RateLimit-Limit": "60"}
    )
    RateLimitResponseHook(warn_below=warn_below).after_response(
        response, RequestContext(request=request)
    )
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == (1 if warns else 0)
    if warns:
        message = warnings[0].getMessage()
        assert f"{remaining} of 60 remaining" in message
        assert "qs-t0k" not in message


def test_rate_limit_hook_validates_options() -> None:
    """A non-callable callback or a non-integer threshold raises ConfigurationError."""
    with pytest.raises(ConfigurationError, match="on_rate_limit"):
        RateLimitResponseHook("print")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="warn_below"):
        RateLimitResponseHook(warn_below=1.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="logger"):
        RateLimitResponseHook(logger=print)  # type: ignore[arg-type]


# -- LoggingErrorHook ---------------------------------------------------------------------


def test_error_hook_logs_type_message_url_and_attempt(caplog: pytest.LogCaptureFixture) -> None:
    """A failed attempt is logged at WARNING with its type, message, URL and attempt number."""
    caplog.set_level(logging.DEBUG, logger="requestforge")
    request = _secret_request()
    context = RequestContext(request=request, max_retries=3)
    context.increment_attempt()
    error = ReadTimeoutError("read timed out after 5s", request=request)
    LoggingErrorHook().on_error(error, context)
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    message = record.getMessage()
    assert "POST https://api.example.com/v1/items?" in message
    assert "attempt 2 of 4" in message
    assert "ReadTimeoutError: read timed out after 5s" in message
    for secret in SECRETS:
        assert secret not in message
    assert "Authorization" not in message
    assert "req-42" not in message


def test_error_hook_redacts_urls_inside_the_message(caplog: pytest.LogCaptureFixture) -> None:
    """A URL quoted by the error message itself is redacted too."""
    caplog.set_level(logging.DEBUG, logger="requestforge")
    request = HttpRequest(HttpMethod.GET, "https://a.example/x")
    error = ValueError("401 Unauthorized for url: https://a.example/x?access_token=qs-t0k&p=1")
    LoggingErrorHook(level=logging.ERROR).on_error(error, RequestContext(request=request))
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert "qs-t0k" not in record.getMessage()
    assert "p=1" in record.getMessage()


def test_logging_hooks_hide_a_custom_named_api_key(caplog: pytest.LogCaptureFixture) -> None:
    """A key sent as ?subscription-key= or X-Partner-Key by an auth hook is not logged
    by the request, response or error hook: the hook declared both."""
    caplog.set_level(logging.DEBUG, logger="requestforge")
    query = ApiKeyAuthHook("CANARY-APIKEY-7f3a", query_param="subscription-key")
    header = ApiKeyAuthHook("CANARY-HDRKEY-8b4c", header_name="X-Partner-Key")
    plain = HttpRequest(HttpMethod.GET, "https://api.example.com/v1/items?page=2")
    context = RequestContext(request=plain)
    sent = header.before_request(query.before_request(plain, context), context)
    sent_url = "https://api.example.com/v1/items?page=2&subscription-key=CANARY-APIKEY-7f3a"
    LoggingRequestHook().before_request(sent, context)
    LoggingResponseHook(level=logging.DEBUG).after_response(
        _response(sent, 200, url=sent_url), context
    )
    LoggingErrorHook().on_error(
        ReadTimeoutError(f"GET {sent_url} failed: header CANARY-HDRKEY-8b4c"), context
    )
    assert len(caplog.records) == 3
    assert "CANARY-APIKEY-7f3a" not in caplog.text
    assert "CANARY-HDRKEY-8b4c" not in caplog.text
    assert "page=2" in caplog.text


# -- HookError: a hook that raises, or forgets its return ----------------------------------

_HOOK_SECRET = "hook-canary-5d1e"
_HOOK_URL = "https://hooks.example/x"


class _Misbehaving(RequestHookInterface, ResponseHookInterface, ErrorHookInterface):
    """Raises ``raises`` (or returns None) from the one method named by ``where``."""

    def __init__(self, where: str, raises: BaseException | None) -> None:
        self.where, self.raises = where, raises

    def _act(self, method: str, value: Any) -> Any:
        if method != self.where:
            return value
        if self.raises is not None:
            raise self.raises
        return None

    def before_request(self, request: HttpRequest, context: RequestContext) -> HttpRequest:
        return self._act("before_request", request)  # type: ignore[no-any-return]

    def after_response(self, response: HttpResponse, context: RequestContext) -> HttpResponse:
        return self._act("after_response", response)  # type: ignore[no-any-return]

    def on_error(self, error: BaseException, context: RequestContext) -> None:
        self._act("on_error", None)


class _MisbehavingAuth(AuthHookInterface):
    """An auth hook whose before_request raises ``raises`` or returns None."""

    def __init__(self, raises: BaseException | None) -> None:
        self.raises = raises

    def before_request(self, request: HttpRequest, context: RequestContext) -> HttpRequest:
        if self.raises is not None:
            raise self.raises
        return None  # type: ignore[return-value]


def _hooked_client(hook: object) -> HttpClient:
    builder = HttpClientConfigBuilder().with_retry_strategy(SimpleRetryStrategy(0))
    if isinstance(hook, AuthHookInterface):
        builder = builder.with_auth_hook(hook)
    else:
        assert isinstance(hook, _Misbehaving)
        builder = builder.with_request_hook(hook).with_response_hook(hook).with_error_hook(hook)
    return HttpClient(builder.build())


@pytest.mark.parametrize("where", ["before_request", "after_response", "on_error", "auth"])
def test_a_hook_that_raises_is_a_hook_error_naming_it(
    forge_responses: responses.RequestsMock, where: str
) -> None:
    """A KeyError from any kind of hook reaches the caller as HookError: it names the hook's
    class and method, chains the KeyError, and does not quote the KeyError's text."""
    if where in ("after_response", "on_error"):  # the others fail before sending
        forge_responses.get(_HOOK_URL, status=200 if where != "on_error" else 503)
    original = KeyError(_HOOK_SECRET)
    hook: object = _MisbehavingAuth(original) if where == "auth" else _Misbehaving(where, original)
    with _hooked_client(hook) as client, pytest.raises(HookError) as info:
        client.get(_HOOK_URL)
    method = "before_request" if where == "auth" else where
    assert info.value.__cause__ is original
    assert (info.value.hook, info.value.method) == (hook, method)
    assert f"{type(hook).__qualname__}.{method}() raised KeyError" in str(info.value)
    assert _HOOK_SECRET not in str(info.value)


@pytest.mark.parametrize("where", ["before_request", "after_response", "auth"])
def test_a_hook_that_returns_none_is_a_clear_hook_error(
    forge_responses: responses.RequestsMock, where: str
) -> None:
    """A hook that forgot its return raises HookError saying it returned None, not an
    AttributeError about 'NoneType' from deep inside the client."""
    if where == "after_response":  # the others fail before sending
        forge_responses.get(_HOOK_URL)
    hook: object = _MisbehavingAuth(None) if where == "auth" else _Misbehaving(where, None)
    with _hooked_client(hook) as client, pytest.raises(HookError, match="returned None"):
        client.get(_HOOK_URL)


def test_a_request_forge_error_from_a_hook_passes_unchanged(
    forge_responses: responses.RequestsMock,
) -> None:
    """A hook's own RequestForgeError is not wrapped: callers catch it as raised."""
    original = InvalidRequestError("refused by policy")
    client = _hooked_client(_Misbehaving("before_request", original))
    with client, pytest.raises(InvalidRequestError) as info:
        client.get(_HOOK_URL)
    assert info.value is original
    assert len(forge_responses.calls) == 0


def test_a_rate_limit_callback_that_raises_is_a_hook_error(
    forge_responses: responses.RequestsMock,
) -> None:
    """RateLimitResponseHook's callback raising ValueError fails the call with HookError."""
    forge_responses.get(_HOOK_URL, headers={"X-RateLimit-Remaining": "0"})

    def callback(info: RateLimitInfo, response: HttpResponse) -> None:
        raise ValueError("no")

    config = HttpClientConfigBuilder().with_response_hook(RateLimitResponseHook(callback))
    with HttpClient(config.build()) as client, pytest.raises(HookError) as info:
        client.get(_HOOK_URL)
    assert isinstance(info.value.__cause__, ValueError)
    assert isinstance(info.value.hook, RateLimitResponseHook)

"""Unit tests for requestforge._client: URL joining, the request flow, retries, 401 handling."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import responses

import requestforge._cached_session as transport_module
from requestforge import (
    AuthHookInterface,
    CircuitBreakerRetryStrategy,
    CircuitOpenError,
    ClientClosedError,
    ConfigurationError,
    ConnectError,
    ConnectTimeoutError,
    ErrorHookInterface,
    ExtensionMethod,
    HttpClient,
    HttpClientConfig,
    HttpClientConfigBuilder,
    HttpRequest,
    HttpResponse,
    HttpStatusError,
    InvalidRequestError,
    InvalidURLError,
    MaxRetryException,
    ReadError,
    ReadTimeoutError,
    RequestContext,
    RequestHookInterface,
    ResponseHookInterface,
    SimpleRetryStrategy,
    TransportError,
)
from requestforge._cached_session import CachedEnvironmentSession
from requestforge_testing import FakeClock

BASE = "https://api.example.com/v1"


def client_with(builder: HttpClientConfigBuilder | None = None) -> HttpClient:
    return HttpClient((builder or HttpClientConfigBuilder()).with_base_url(BASE).build())


def retrying(max_retries: int = 3, delay: float = 1.0) -> HttpClientConfigBuilder:
    strategy = SimpleRetryStrategy(max_retries, delay=delay)
    return HttpClientConfigBuilder().with_retry_strategy(strategy)


class Recorder(RequestHookInterface, ResponseHookInterface, ErrorHookInterface):
    """Records the order in which the client calls it (state on self only in tests)."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def before_request(self, request: HttpRequest, context: RequestContext) -> HttpRequest:
        self.log.append(f"request:{self.name}")
        return request.with_headers({"X-Seen-By": self.name})

    def after_response(self, response: HttpResponse, context: RequestContext) -> HttpResponse:
        self.log.append(f"response:{self.name}")
        return response

    def on_error(self, error: BaseException, context: RequestContext) -> None:
        self.log.append(f"error:{self.name}:{type(error).__name__}:{context.attempt}")


class RenewingAuth(AuthHookInterface):
    """Sends a numbered token and renews it when told the last one was rejected."""

    def __init__(self, renew: bool = True) -> None:
        self.generation, self.renew, self.rejected = 1, renew, 0

    def before_request(self, request: HttpRequest, context: RequestContext) -> HttpRequest:
        return request.with_headers({"Authorization": f"Bearer token-{self.generation}"})

    def on_unauthorized(
        self, request: HttpRequest, response: HttpResponse, context: RequestContext
    ) -> bool:
        self.rejected += 1
        if self.renew:
            self.generation += 1
        return self.renew


def test_relative_urls_join_onto_base_url(forge_responses: responses.RequestsMock) -> None:
    """A relative path joins onto the base URL whether or not it starts with a slash."""
    forge_responses.get(f"{BASE}/users/1", json={"id": 1})
    forge_responses.get(f"{BASE}/users/2", json={"id": 2})
    with client_with() as client:
        assert client.get("/users/1").json() == {"id": 1}
        assert client.get("users/2").json() == {"id": 2}


def test_absolute_urls_pass_through(forge_responses: responses.RequestsMock) -> None:
    """An absolute URL is sent as it is, ignoring the base URL."""
    forge_responses.get("https://other.example.org/x", body="ok")
    with client_with() as client:
        assert client.get("https://other.example.org/x").text == "ok"


def test_relative_url_without_base_url_is_rejected() -> None:
    """A relative URL with no base URL raises InvalidURLError before anything is sent."""
    with HttpClient() as client, pytest.raises(InvalidURLError, match="base_url"):
        client.get("/users")


@pytest.mark.parametrize("method", ["BR EW", "GET\r\nX: 1", "", "PRÖPFIND", 7, None])
def test_non_token_method_is_rejected_before_sending(
    forge_responses: responses.RequestsMock, method: Any
) -> None:
    """A method that is not an RFC 9110 token raises InvalidRequestError and sends nothing."""
    with client_with() as client, pytest.raises(InvalidRequestError, match="RFC 9110 token"):
        client.request(method, "/pot")
    assert len(forge_responses.calls) == 0


def test_extension_method_is_sent_upper_cased(forge_responses: responses.RequestsMock) -> None:
    """Any token is a method: "propfind" goes out as PROPFIND, with its body."""
    forge_responses.add("PROPFIND", f"{BASE}/dav", status=207, body="<multistatus/>")
    with client_with() as client:
        response = client.request("propfind", "/dav", data="<propfind/>", headers={"Depth": "1"})
    assert response.status_code == 207
    assert response.request is not None
    assert response.request.method == ExtensionMethod("PROPFIND")
    (call,) = forge_responses.calls
    assert (call.request.method, call.request.body) == ("PROPFIND", "<propfind/>")


def test_extension_method_is_retried_only_when_never_sent(
    forge_responses: responses.RequestsMock, forge_clock: FakeClock
) -> None:
    """An extension method is not idempotent: a read error is final, a refused connect retries."""
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    forge_responses.add("REPORT", f"{BASE}/r", body=requests.ConnectionError("reset"))
    with client_with(retrying()) as client, pytest.raises(ReadError):
        client.request("REPORT", "/r")
    assert len(forge_responses.calls) == 1
    refused = NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]
    forge_responses.replace(
        "REPORT",
        f"{BASE}/r",
        body=requests.ConnectionError(MaxRetryError(None, "/r", refused)),  # type: ignore[arg-type]
    )
    forge_responses.add("REPORT", f"{BASE}/r", status=200)
    with client_with(retrying()) as client:
        assert client.request("REPORT", "/r").status_code == 200
    assert len(forge_responses.calls) == 3


def test_request_and_default_timeouts_reach_the_session(
    forge_responses: responses.RequestsMock,
) -> None:
    """A (connect, read) default applies unless the request gives its own float or pair
    (a buffered request's reaches requests as a urllib3 Timeout with the attempt's total)."""
    forge_responses.get(f"{BASE}/t")
    with client_with(HttpClientConfigBuilder().with_timeout((2, 9))) as client:
        client.get("/t")
        client.get("/t", timeout=4)
        client.get("/t", timeout=(0.5, 60))
    sent = [c.request.req_kwargs["timeout"] for c in forge_responses.calls]  # type: ignore[attr-defined]
    phases = [(t.connect_timeout, t.read_timeout, t.total) for t in sent]
    assert phases == [(2.0, 9.0, 11.0), (4.0, 4.0, 4.0), (0.5, 60.0, 60.5)]


@pytest.mark.parametrize("timeout", [0, 0.0, -3, float("nan"), float("inf"), True, "5", (1, 0)])
def test_bad_request_timeout_is_rejected_before_sending(
    forge_responses: responses.RequestsMock, timeout: Any
) -> None:
    """A zero, negative, NaN, infinite, bool or str timeout raises; 0 no longer means 30 s."""
    with client_with() as client, pytest.raises(InvalidRequestError, match="timeout"):
        client.get("/t", timeout=timeout)
    assert len(forge_responses.calls) == 0


def test_default_headers_merge_with_request_headers(
    forge_responses: responses.RequestsMock,
) -> None:
    """Default headers are sent, and a per-request header of any case replaces one."""
    call = forge_responses.get(f"{BASE}/h")
    builder = HttpClientConfigBuilder().with_headers({"X-App": "demo", "Accept": "text/plain"})
    with client_with(builder) as client:
        client.get("/h", headers={"accept": "application/json"})
    sent = call.calls[0].request.headers
    assert sent["X-App"] == "demo"
    assert sent["Accept"] == "application/json"


def test_every_verb_sends_its_method(forge_responses: responses.RequestsMock) -> None:
    """get/post/put/patch/delete/head/options each send their own method."""
    verbs = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    for verb in verbs:
        forge_responses.add(verb, f"{BASE}/v")
    with client_with() as client:
        for verb in verbs:
            response = getattr(client, verb.lower())("/v")
            assert response.request is not None
            assert response.request.method.value == verb
    assert [c.request.method for c in forge_responses.calls] == verbs


def test_hooks_run_in_the_documented_order(forge_responses: responses.RequestsMock) -> None:
    """Request hooks in order, then auth, then send, then response hooks in order."""
    call = forge_responses.get(f"{BASE}/o")
    log: list[str] = []
    builder = (
        HttpClientConfigBuilder()
        .with_request_hook(Recorder("a", log))
        .with_request_hook(Recorder("b", log))
        .with_response_hook(Recorder("c", log))
        .with_response_hook(Recorder("d", log))
        .with_auth_hook(RenewingAuth())
    )
    with client_with(builder) as client:
        client.get("/o")
    assert log == ["request:a", "request:b", "response:c", "response:d"]
    sent = call.calls[0].request.headers
    assert sent["X-Seen-By"] == "b"
    assert sent["Authorization"] == "Bearer token-1"


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (requests.ConnectTimeout("connect timed out"), ConnectTimeoutError),
        (requests.ReadTimeout("read timed out"), ReadTimeoutError),
        (requests.ConnectionError("connection aborted"), ReadError),
        (requests.exceptions.ChunkedEncodingError("truncated"), ReadError),
        (requests.TooManyRedirects("loop"), TransportError),
    ],
)
def test_transport_errors_are_wrapped(
    forge_responses: responses.RequestsMock,
    raised: requests.RequestException,
    expected: type[Exception],
) -> None:
    """Every requests exception leaves the client as a requestforge error, chaining a
    redacted copy of the cause: same type, same (secret-free) message."""
    forge_responses.get(f"{BASE}/e", body=raised)
    with client_with() as client, pytest.raises(expected) as excinfo:
        client.get("/e")
    cause = excinfo.value.__cause__
    assert type(cause) is type(raised)
    assert str(cause) == str(raised)
    assert not isinstance(excinfo.value, requests.RequestException)


def test_error_messages_do_not_leak_query_secrets(forge_responses: responses.RequestsMock) -> None:
    """A failed request's message names the URL with secret query parameters redacted."""
    forge_responses.get(f"{BASE}/e", body=requests.ReadTimeout("slow"))
    with client_with() as client, pytest.raises(ReadTimeoutError) as excinfo:
        client.get("/e", params={"access_token": "s3cr3t-value", "page": "2"})
    assert "s3cr3t-value" not in str(excinfo.value)
    assert "/e" in str(excinfo.value)


def test_retryable_status_is_retried_after_the_strategy_delay(
    forge_responses: responses.RequestsMock, forge_clock: FakeClock
) -> None:
    """A 503 on GET is retried, waiting the strategy's delay on the clock, until it succeeds."""
    forge_responses.get(f"{BASE}/flaky", status=503)
    forge_responses.get(f"{BASE}/flaky", status=503)
    forge_responses.get(f"{BASE}/flaky", json={"ok": True})
    with client_with(retrying(delay=1.5)) as client:
        response = client.get("/flaky")
    assert response.status_code == 200
    assert forge_clock.sleeps == [1.5, 1.5]


def test_retry_after_header_sets_the_delay(
    forge_responses: responses.RequestsMock, forge_clock: FakeClock
) -> None:
    """A 429 with Retry-After waits that many seconds instead of the strategy's own delay."""
    forge_responses.get(f"{BASE}/rl", status=429, headers={"Retry-After": "7"})
    forge_responses.get(f"{BASE}/rl", body="ok")
    with client_with(retrying(delay=0.1)) as client:
        assert client.get("/rl").text == "ok"
    assert forge_clock.sleeps == [7.0]


def test_exhausted_status_retries_raise_max_retry_with_last_response(
    forge_responses: responses.RequestsMock, forge_clock: FakeClock
) -> None:
    """When every attempt gets a 503, MaxRetryException carries the last response."""
    forge_responses.get(f"{BASE}/down", status=503, body="still down")
    with client_with(retrying(max_retries=2)) as client, pytest.raises(MaxRetryException) as exc:
        client.get("/down")
    assert exc.value.attempts == 3
    assert exc.value.response is not None
    assert exc.value.response.text == "still down"
    assert len(forge_responses.calls) == 3
    assert len(forge_clock.sleeps) == 2


def test_exhausted_transport_retries_raise_max_retry_with_last_error(
    forge_responses: responses.RequestsMock, forge_clock: FakeClock
) -> None:
    """When every attempt times out, MaxRetryException carries the last error as its cause."""
    forge_responses.get(f"{BASE}/slow", body=requests.ReadTimeout("slow"))
    with client_with(retrying(max_retries=1)) as client, pytest.raises(MaxRetryException) as exc:
        client.get("/slow")
    assert isinstance(exc.value.last_error, ReadTimeoutError)
    assert exc.value.__cause__ is exc.value.last_error
    assert exc.value.response is None
    assert len(forge_responses.calls) == 2


def test_post_is_not_retried_on_a_retryable_status(
    forge_responses: responses.RequestsMock, forge_clock: FakeClock
) -> None:
    """A non-idempotent POST that gets a 503 returns the 503 instead of sending again."""
    forge_responses.post(f"{BASE}/orders", status=503)
    with client_with(retrying()) as client:
        response = client.post("/orders", json={"item": 1})
    assert response.status_code == 503
    assert len(forge_responses.calls) == 1
    assert forge_clock.sleeps == []


def test_post_is_not_retried_after_a_read_error(
    forge_responses: responses.RequestsMock, forge_clock: FakeClock
) -> None:
    """A POST whose connection broke after sending raises ReadError without a second send."""
    forge_responses.post(f"{BASE}/orders", body=requests.ConnectionError("reset"))
    with client_with(retrying()) as client, pytest.raises(ReadError):
        client.post("/orders", json={"item": 1})
    assert len(forge_responses.calls) == 1


def test_non_rewindable_body_is_never_retried(
    forge_responses: responses.RequestsMock, forge_clock: FakeClock
) -> None:
    """A generator body cannot be sent twice, so even an idempotent PUT is not retried."""
    forge_responses.put(f"{BASE}/blob", status=503)

    def chunks() -> Iterator[bytes]:
        yield b"part"

    with client_with(retrying()) as client:
        assert client.put("/blob", data=chunks()).status_code == 503
    assert len(forge_responses.calls) == 1


def test_error_hooks_see_every_failed_attempt(
    forge_responses: responses.RequestsMock, forge_clock: FakeClock
) -> None:
    """Error hooks are told about each failed attempt with its attempt number."""
    forge_responses.get(f"{BASE}/x", body=requests.ReadTimeout("slow"))
    forge_responses.get(f"{BASE}/x", status=502)
    forge_responses.get(f"{BASE}/x", body="ok")
    log: list[str] = []
    with client_with(retrying().with_error_hook(Recorder("e", log))) as client:
        client.get("/x")
    assert log == ["error:e:ReadTimeoutError:0", "error:e:HttpStatusError:1"]


def test_401_renews_credentials_and_resends_once(forge_responses: responses.RequestsMock) -> None:
    """On a 401 the auth hook renews the token and the request is resent once with it."""
    forge_responses.get(f"{BASE}/me", status=401)
    forge_responses.get(f"{BASE}/me", json={"name": "ada"})
    auth = RenewingAuth()
    with client_with(HttpClientConfigBuilder().with_auth_hook(auth)) as client:
        assert client.get("/me").json() == {"name": "ada"}
    tokens = [c.request.headers["Authorization"] for c in forge_responses.calls]
    assert tokens == ["Bearer token-1", "Bearer token-2"]


def test_401_twice_is_returned_not_looped(forge_responses: responses.RequestsMock) -> None:
    """A second 401 after renewing is handed back to the caller; the client never loops."""
    forge_responses.get(f"{BASE}/me", status=401)
    auth = RenewingAuth()
    with client_with(HttpClientConfigBuilder().with_auth_hook(auth)) as client:
        assert client.get("/me").status_code == 401
    assert len(forge_responses.calls) == 2
    assert auth.rejected == 1


def test_401_without_renewal_is_not_resent(forge_responses: responses.RequestsMock) -> None:
    """When the auth hook cannot renew its credentials the 401 is returned at once."""
    forge_responses.get(f"{BASE}/me", status=401)
    with client_with(HttpClientConfigBuilder().with_auth_hook(RenewingAuth(renew=False))) as c:
        assert c.get("/me").status_code == 401
    assert len(forge_responses.calls) == 1


def test_open_circuit_refuses_without_sending(
    forge_responses: responses.RequestsMock, forge_clock: FakeClock
) -> None:
    """After the failure threshold the breaker refuses requests without touching the network."""
    forge_responses.get(f"{BASE}/down", status=500)
    breaker = CircuitBreakerRetryStrategy(
        failure_threshold=2, reset_timeout=30, retry=SimpleRetryStrategy(0)
    )
    log: list[str] = []
    builder = HttpClientConfigBuilder().with_retry_strategy(breaker)
    with client_with(builder.with_error_hook(Recorder("e", log))) as client:
        assert client.get("/down").status_code == 500
        assert client.get("/down").status_code == 500
        with pytest.raises(CircuitOpenError):
            client.get("/down")
        assert len(forge_responses.calls) == 2
        forge_clock.advance(30)
        forge_responses.replace(responses.GET, f"{BASE}/down", body="up")
        assert client.get("/down").text == "up"
    assert log[-1] == "error:e:CircuitOpenError:0"


def test_connect_errors_are_retried_even_for_post(
    forge_responses: responses.RequestsMock, forge_clock: FakeClock
) -> None:
    """A connection that never opened is safe to retry, whatever the method."""
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    refused = NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]
    forge_responses.post(
        f"{BASE}/orders",
        body=requests.ConnectionError(MaxRetryError(None, "/orders", refused)),  # type: ignore[arg-type]
    )
    forge_responses.post(f"{BASE}/orders", status=201)
    with client_with(retrying()) as client:
        assert client.post("/orders", json={}).status_code == 201
    assert len(forge_responses.calls) == 2


def test_connect_error_is_a_connection_error() -> None:
    """ConnectError can be caught as the built-in ConnectionError."""
    assert issubclass(ConnectError, ConnectionError)
    assert issubclass(ReadTimeoutError, TimeoutError)


def test_status_error_is_raised_only_on_request(forge_responses: responses.RequestsMock) -> None:
    """A 404 is returned as a response; raise_for_status turns it into HttpStatusError."""
    forge_responses.get(f"{BASE}/missing", status=404)
    with client_with() as client:
        response = client.get("/missing")
    with pytest.raises(HttpStatusError) as excinfo:
        response.raise_for_status()
    assert excinfo.value.response is response


def test_closed_client_refuses_requests() -> None:
    """After close() the client raises ClientClosedError instead of opening new sessions."""
    client = client_with()
    client.close()
    with pytest.raises(ClientClosedError):
        client.get("/x")


def test_shared_session_is_used_and_not_closed(forge_responses: responses.RequestsMock) -> None:
    """A caller's session is used for every request and left open by close()."""
    forge_responses.get(f"{BASE}/s")
    shared = requests.Session()
    closed: list[bool] = []
    shared.close = lambda: closed.append(True)  # type: ignore[method-assign]
    client = HttpClient(HttpClientConfigBuilder().with_base_url(BASE).build(), session=shared)
    assert client.session is shared
    client.get("/s")
    client.close()
    assert closed == []


def test_closed_client_refuses_before_resolving_the_url() -> None:
    """A closed client says so even for a relative URL it could not have resolved."""
    client = HttpClient()
    client.close()
    with pytest.raises(ClientClosedError):
        client.get("/no-base-url")


# -- the sessions the client creates: the environment once per host ------------------------


def count_calls(monkeypatch: pytest.MonkeyPatch, name: str) -> list[str]:
    """Wrap the environment helper ``name`` of the transport module; returns the URLs seen."""
    seen: list[str] = []
    real: Callable[..., Any] = getattr(transport_module, name)

    def counted(url: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(url)
        return real(url, *args, **kwargs)

    monkeypatch.setattr(transport_module, name, counted)
    return seen


@pytest.mark.usefixtures("forge_clean_environment")
def test_clients_sessions_read_the_environment_once_per_host(
    forge_responses: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proxies and .netrc are looked up on a host's first request only, not on every one."""
    proxy_lookups = count_calls(monkeypatch, "get_environ_proxies")
    netrc_lookups = count_calls(monkeypatch, "get_netrc_auth")
    forge_responses.get("https://a.example/x")
    forge_responses.get("https://b.example/x")
    with HttpClient() as client:
        for host in ("a", "b", "a", "b", "a"):
            client.get(f"https://{host}.example/x")
        assert isinstance(client.session, CachedEnvironmentSession)
        assert client.session.trust_env is True
    assert proxy_lookups == ["https://a.example/x", "https://b.example/x"]
    assert netrc_lookups == ["https://a.example/x", "https://b.example/x"]


@pytest.mark.usefixtures("forge_clean_environment")
def test_environment_cache_starts_over_when_full(
    forge_responses: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past MAX_CACHED_HOSTS the cache is emptied, so a host seen before is looked up again."""
    monkeypatch.setattr(CachedEnvironmentSession, "MAX_CACHED_HOSTS", 2)
    lookups = count_calls(monkeypatch, "get_environ_proxies")
    for host in "abc":
        forge_responses.get(f"https://{host}.example/x")
    with HttpClient() as client:
        for host in "abcab":
            client.get(f"https://{host}.example/x")
    assert [url[8] for url in lookups] == ["a", "b", "c", "a", "b"]


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, True),
        ({"REQUESTS_CA_BUNDLE": "requests-bundle.pem"}, "requests-bundle.pem"),
        ({"CURL_CA_BUNDLE": "curl-bundle.pem"}, "curl-bundle.pem"),
        (
            {"REQUESTS_CA_BUNDLE": "requests-bundle.pem", "CURL_CA_BUNDLE": "curl-bundle.pem"},
            "requests-bundle.pem",
        ),
    ],
    ids=["none", "requests", "curl", "both"],
)
@pytest.mark.usefixtures("forge_clean_environment")
def test_ca_bundle_variables_reach_the_adapter_as_with_requests(
    forge_responses: responses.RequestsMock,
    monkeypatch: pytest.MonkeyPatch,
    environment: dict[str, str],
    expected: bool | str,
) -> None:
    """REQUESTS_CA_BUNDLE, then CURL_CA_BUNDLE, becomes the verify the adapter gets, as in
    requests."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    forge_responses.get("https://a.example/x")
    with requests.Session() as stock:
        stock.get("https://a.example/x", timeout=5)
    with HttpClient() as client:
        client.get("https://a.example/x")
    stock_call, client_call = forge_responses.calls
    verify = [vars(call.request)["req_kwargs"]["verify"] for call in (stock_call, client_call)]
    assert verify == [expected, expected]


@pytest.mark.usefixtures("forge_clean_environment")
def test_ca_bundle_variable_does_not_override_verify_false(
    forge_responses: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """verify_ssl=False means no verification even with REQUESTS_CA_BUNDLE set (requests would
    verify against the bundle); a default client still takes the bundle."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "requests-bundle.pem")
    forge_responses.get("https://a.example/x")
    unverified = HttpClientConfigBuilder().with_verify_ssl(False).build()
    for config in (unverified, HttpClientConfig()):
        with HttpClient(config) as client:
            client.get("https://a.example/x")
    verify = [vars(call.request)["req_kwargs"]["verify"] for call in forge_responses.calls]
    assert verify == [False, "requests-bundle.pem"]


@pytest.mark.usefixtures("forge_clean_environment")
def test_prepare_request_leaves_the_callers_request_alone() -> None:
    """Preparing a Request (or a subclass of it) sets no auth on the caller's object."""

    class TaggedRequest(requests.Request):
        pass

    with CachedEnvironmentSession() as session:
        for kind in (requests.Request, TaggedRequest):
            request = kind("GET", "https://user:pw@a.example/x")
            prepared = session.prepare_request(request)
            assert request.auth is None
            assert prepared.headers["Authorization"] == "Basic dXNlcjpwdw=="


@pytest.mark.usefixtures("forge_clean_environment")
def test_cached_environment_session_survives_pickling(
    forge_responses: responses.RequestsMock,
) -> None:
    """A pickled session comes back with requests' settings and an empty, working cache."""
    forge_responses.get("https://a.example/x", body="ok")
    session = CachedEnvironmentSession()
    session.headers["X-App"] = "pickled"
    session.get("https://a.example/x", timeout=5)
    restored = pickle.loads(pickle.dumps(session))  # noqa: S301 - our own bytes
    assert isinstance(restored, CachedEnvironmentSession)
    assert restored.get("https://a.example/x", timeout=5).text == "ok"
    assert forge_responses.calls[1].request.headers["X-App"] == "pickled"


# -- every bad argument is a typed error, raised before anything is sent --------------------

_SECRET = "sk-canary-7f3a9c"


@pytest.mark.parametrize(
    ("url", "keywords", "expected", "names"),
    [
        ("/t", {"timeout": -1}, InvalidRequestError, "timeout"),
        ("/t", {"timeout": "5"}, InvalidRequestError, "timeout"),
        ("/t", {"timeout": float("inf")}, InvalidRequestError, "timeout"),
        ("/t", {"timeout": 1e10}, InvalidRequestError, "timeout"),
        ("/t", {"timeout": 10**400}, InvalidRequestError, "timeout"),
        ("/t", {"json": object()}, InvalidRequestError, "json"),
        ("/t", {"json": float("nan")}, InvalidRequestError, "json"),
        ("/t", {"data": 12345}, InvalidRequestError, "data"),
        ("/t", {"data": [1, 2]}, InvalidRequestError, "data"),
        ("/t", {"data": "x", "files": {"f": b"y"}}, InvalidRequestError, "data"),
        ("/t", {"files": {"f": 5}}, InvalidRequestError, "files"),
        ("/t", {"params": 5}, InvalidRequestError, "params"),
        ("/t", {"params": {1: "x"}}, InvalidRequestError, "params"),
        ("/t", {"headers": 5}, InvalidRequestError, "headers"),
        ("/t", {"headers": {1: "x"}}, InvalidRequestError, "header name"),
        ("/t", {"headers": {"a b": "x"}}, InvalidRequestError, "header name"),
        ("/t", {"headers": {"X-Key": f"{_SECRET}…"}}, InvalidRequestError, "X-Key"),
        ("/t", {"headers": {"X-Key": f"{_SECRET}\r\nX: 1"}}, InvalidRequestError, "X-Key"),
        ("/t", {"headers": {"X-Key": f" {_SECRET}"}}, InvalidRequestError, "X-Key"),
        ("/t", {"cookies": {"sid": f"{_SECRET};x"}}, InvalidRequestError, "cookie"),
        ("/t", {"auth": ("user", f"{_SECRET}…")}, InvalidRequestError, "auth"),
        ("/t", {"verify": "/no/such/bundle.pem"}, InvalidRequestError, "verify"),
        ("/t", {"cert": "/no/such/cert.pem"}, InvalidRequestError, "cert"),
        (None, {}, InvalidURLError, "url"),
        (123, {}, InvalidURLError, "url"),
        ("http://[::1", {}, InvalidURLError, "url"),
        ("http://[::1/x?token=" + _SECRET, {}, InvalidURLError, "url"),
        ("http://" + "a" * 64 + ".example.com/", {}, InvalidURLError, "label"),
        ("http://a..b/", {}, InvalidURLError, "label"),
        ("http://a.example:99999/", {}, InvalidURLError, "url"),
    ],
)
def test_bad_request_arguments_raise_typed_errors_before_sending(
    forge_responses: responses.RequestsMock,
    url: Any,
    keywords: dict[str, Any],
    expected: type[InvalidRequestError],
    names: str,
) -> None:
    """Each argument requests, urllib3 or http.client would fail on with a built-in error
    is an InvalidRequestError naming the parameter, never quoting a secret, with nothing sent."""
    with client_with() as client, pytest.raises(expected) as info:
        client.post(url, **keywords)
    assert type(info.value) is expected
    assert names in str(info.value)
    assert _SECRET not in str(info.value)
    assert len(forge_responses.calls) == 0


def test_a_longest_allowed_timeout_is_accepted(forge_responses: responses.RequestsMock) -> None:
    """MAX_TIMEOUT itself is a valid timeout, for a request and as the default."""
    forge_responses.get(f"{BASE}/t")
    with client_with(HttpClientConfigBuilder().with_timeout(1_000_000)) as client:
        assert client.get("/t", timeout=(1_000_000, 1)).status_code == 200


def test_client_arguments_of_the_wrong_type_are_configuration_errors() -> None:
    """HttpClient(config=, session=, session_factory=) of the wrong type raise
    ConfigurationError (still a TypeError, as config= raised before)."""
    with pytest.raises(ConfigurationError, match="config must be an HttpClientConfig"):
        HttpClient(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"session must be a requests\.Session"):
        HttpClient(session=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="session_factory"):
        HttpClient(session_factory=5)  # type: ignore[arg-type]


def test_map_of_a_non_iterable_is_an_invalid_request() -> None:
    """client.map(5) raises InvalidRequestError, not Python's TypeError."""
    with client_with() as client, pytest.raises(InvalidRequestError, match="iterable"):
        client.map(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "request_object",
    [
        requests.Request("GET", f"{BASE}/t", headers=5),
        requests.Request("GET", f"{BASE}/t", params="a=1"),
        requests.Request("GET", f"{BASE}/t", hooks={"response": [print]}),
    ],
    ids=["headers", "params", "hooks"],
)
def test_send_refuses_requests_objects_it_cannot_send(
    forge_responses: responses.RequestsMock, request_object: requests.Request
) -> None:
    """send() of a requests.Request with fields it cannot take raises InvalidRequestError."""
    with client_with() as client, pytest.raises(InvalidRequestError):
        client.send(request_object)
    assert len(forge_responses.calls) == 0

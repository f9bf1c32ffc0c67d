"""Whole-attempt deadlines over real loopback HTTP: a buffered request's timeout bounds
connect, headers and body together, so a server that drips its body cannot hold a call
past it; streamed responses keep per-read timeouts.

The dripping server waits on an event between bytes, so every test ends it by setting the
event; the bounds ("within 2 s" for a 1 s timeout) are the issue's, generous on purpose.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator

import pytest

from requestforge import (
    ClientCredentialsTokenProvider,
    ExponentialBackoffRetryStrategy,
    HttpClient,
    HttpClientConfigBuilder,
    MaxRetryException,
    ReadTimeoutError,
    TokenEndpointError,
    TokenManager,
)
from requestforge_testing import ApiServer, RecordedRequest, Reply
from tests.threads import in_threads

#: Long enough never to fire on a loaded machine; the tests never wait on it.
PATIENT = 30.0
#: The issue's bound for a 1 s timeout.
BOUND = 2.0


def drip(stop: threading.Event, *, every: float = 0.05, count: int = 200) -> Reply:
    """A chunked reply that sends one byte per ``every`` seconds until ``stop`` is set or
    ``count`` bytes are out (10 s by default, so a client without a deadline fails the test
    instead of hanging it): no single read waits long, the whole body takes long."""

    def chunks() -> Iterator[bytes]:
        sent = 0
        while sent < count and not stop.wait(every):
            sent += 1
            yield b" "

    return Reply(stream=chunks)


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    """Set at the end of each test, so a dripping or stalled server thread ends."""
    event = threading.Event()
    yield event
    event.set()


def client_with(timeout: float | tuple[float, float], retries: int = 0) -> HttpClient:
    builder = HttpClientConfigBuilder().with_timeout(timeout)
    if retries:
        strategy = ExponentialBackoffRetryStrategy(retries, base_delay=0.01)
        builder = builder.with_retry_strategy(strategy)
    return HttpClient(builder.build())


def test_a_dripping_body_fails_within_the_timeout(
    forge_api_server: ApiServer, stop: threading.Event
) -> None:
    """with_timeout(1.0) against a body dripping a byte per 50 ms fails within 2 s."""
    forge_api_server.add("/drip", drip(stop))
    with client_with(1.0) as client:
        started = time.monotonic()
        with pytest.raises(ReadTimeoutError, match="deadline passed") as caught:
            client.get(forge_api_server.url_for("/drip"))
        elapsed = time.monotonic() - started
    assert elapsed < BOUND
    assert "connect, headers and body" in str(caught.value)


def test_a_tuple_timeout_bounds_the_attempt_by_its_sum(
    forge_api_server: ApiServer, stop: threading.Event
) -> None:
    """A (connect, read) timeout of (0.5, 0.5) bounds the dripping attempt at 1 s."""
    forge_api_server.add("/drip", drip(stop))
    with client_with((0.5, 0.5)) as client:
        started = time.monotonic()
        with pytest.raises(ReadTimeoutError, match="1s for connect"):
            client.get(forge_api_server.url_for("/drip"))
    assert time.monotonic() - started < BOUND


def test_a_per_request_timeout_bounds_the_attempt(
    forge_api_server: ApiServer, stop: threading.Event
) -> None:
    """timeout=1.0 on the call bounds the attempt even when the client's default is long."""
    forge_api_server.add("/drip", drip(stop))
    with client_with(PATIENT) as client:
        started = time.monotonic()
        with pytest.raises(ReadTimeoutError, match="deadline passed"):
            client.get(forge_api_server.url_for("/drip"), timeout=1.0)
    assert time.monotonic() - started < BOUND


def test_each_retry_gets_its_own_deadline_and_post_is_not_retried(
    forge_api_server: ApiServer, stop: threading.Event
) -> None:
    """A GET that hits the deadline is retried (as read timeouts are); a POST is not."""
    forge_api_server.add("/drip", drip(stop))
    with client_with(0.5, retries=1) as client:
        with pytest.raises(MaxRetryException) as caught:
            client.get(forge_api_server.url_for("/drip"))
        assert isinstance(caught.value.last_error, ReadTimeoutError)
        assert len(forge_api_server.requests_to("/drip")) == 2
        with pytest.raises(ReadTimeoutError):
            client.post(forge_api_server.url_for("/drip"), data=b"once")
        assert len(forge_api_server.requests_to("/drip")) == 3


def test_headers_then_a_stall_fails_within_the_timeout(
    forge_api_server: ApiServer, stop: threading.Event
) -> None:
    """A server that sends its headers and then nothing fails with_timeout(1.0) within 2 s."""

    def stalled() -> Iterator[bytes]:
        stop.wait(PATIENT)
        yield b"late"

    forge_api_server.add("/stall", Reply(stream=stalled))
    with client_with(1.0) as client:
        started = time.monotonic()
        with pytest.raises(ReadTimeoutError):
            client.get(forge_api_server.url_for("/stall"))
    assert time.monotonic() - started < BOUND


def test_a_server_that_never_answers_fails_within_the_timeout(
    forge_api_server: ApiServer, stop: threading.Event
) -> None:
    """No headers at all: with_timeout(1.0) fails within 2 s, as before."""

    def silent(_request: RecordedRequest) -> Reply:
        stop.wait(PATIENT)
        return Reply()

    forge_api_server.add_handler("/silent", silent)
    with client_with(1.0) as client:
        started = time.monotonic()
        with pytest.raises(ReadTimeoutError):
            client.get(forge_api_server.url_for("/silent"))
    assert time.monotonic() - started < BOUND


def test_normal_bodies_pass_whole_and_keep_the_connection(forge_api_server: ApiServer) -> None:
    """A 16 MiB body, a gzip body, a chunked body, HEAD and an empty 204 all read as requests
    reads them, each within a 1 s deadline, over one keep-alive connection."""
    big = bytes(range(256)) * (1 << 16)
    text = b"compressed " * 1000
    forge_api_server.add("/big", Reply(body=big))
    forge_api_server.add(
        "/gzip", Reply(body=gzip.compress(text), headers={"Content-Encoding": "gzip"})
    )
    forge_api_server.add("/chunked", Reply(stream=lambda: iter([b"one;", b"two;", b"three"])))
    forge_api_server.add("/empty", Reply(status=204))
    with client_with(1.0) as client:
        assert client.get(forge_api_server.url_for("/big")).content == big
        gzipped = client.get(forge_api_server.url_for("/gzip"))
        assert gzipped.content == text
        assert gzipped.raw_response is not None
        assert gzipped.raw_response.content == text  # requests' own view agrees
        assert client.get(forge_api_server.url_for("/chunked")).content == b"one;two;three"
        head = client.head(forge_api_server.url_for("/big"))
        assert (head.status_code, head.content) == (200, b"")
        assert client.get(forge_api_server.url_for("/empty")).content == b""
        assert client.get(forge_api_server.url_for("/big")).content == big
    assert {r.connection for r in forge_api_server.requests} == {
        forge_api_server.requests[0].connection
    }


def test_a_streamed_response_keeps_per_read_timeouts(
    forge_api_server: ApiServer, stop: threading.Event
) -> None:
    """Under stream=True a 2 s drip that never pauses 1 s is read whole with timeout=1.0."""
    forge_api_server.add("/drip", drip(stop, every=0.02, count=100))
    with client_with(1.0) as client:
        started = time.monotonic()
        with client.get(forge_api_server.url_for("/drip"), stream=True) as response:
            body = b"".join(response.iter_content(chunk_size=None))
    assert body == b" " * 100
    assert time.monotonic() - started > 1.0  # it really outlasted the timeout


def test_a_dripping_token_endpoint_fails_every_waiter_within_the_timeout(
    forge_api_server: ApiServer, stop: threading.Event
) -> None:
    """A token endpoint that drips: the leader's fetch fails within 2 s of a 1 s timeout and
    the 7 callers waiting on it get its TokenEndpointError, not wait_timeout's 30 s."""
    forge_api_server.add("/token", drip(stop), method="POST")
    provider = ClientCredentialsTokenProvider(
        forge_api_server.url_for("/token"), "client", "secret", timeout=1.0, max_retries=0
    )
    manager = TokenManager(provider, wait_timeout=PATIENT)
    errors: list[TokenEndpointError] = []

    def call() -> float:
        started = time.monotonic()
        try:
            manager.get_token()
        except TokenEndpointError as exc:
            errors.append(exc)
        return time.monotonic() - started

    try:
        elapsed = in_threads(8, call)
    finally:
        provider.close()
    assert len(errors) == 8
    assert len({id(error) for error in errors}) == 1  # the leader's, handed to every waiter
    assert errors[0].transient is True
    assert max(elapsed) < BOUND
    assert len(forge_api_server.requests_to("/token")) == 1

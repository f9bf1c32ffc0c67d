"""``stream=True`` over real loopback HTTP: the body stays on the connection until read,
and everything else (hooks, auth, the 401 renewal, retries, redirects) happens first.

The server holds parts of a body back on events, so "not read yet" is proven by the
client getting its response while the server is still waiting, never by timing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import requests

from requestforge import (
    AuthHookInterface,
    HttpClient,
    HttpClientConfigBuilder,
    HttpRequest,
    HttpResponse,
    ReadTimeoutError,
    RequestContext,
    ResponseHookInterface,
    StreamConsumedError,
)
from requestforge_testing import ApiServer, FakeClock, Reply

#: Long enough never to fire on a loaded machine; the tests never wait on it.
PATIENT = 30.0


def held(first: bytes, release: threading.Event, rest: bytes) -> Reply:
    """A streamed reply that sends ``first``, then waits for ``release`` to send ``rest``."""

    def chunks() -> Iterator[bytes]:
        yield first
        release.wait(PATIENT)
        yield rest

    return Reply(stream=chunks)


def streamed(*chunks: bytes) -> Reply:
    return Reply(stream=lambda: iter(chunks))


def test_the_body_is_read_only_when_asked_for(forge_api_server: ApiServer) -> None:
    """The response arrives while the server still holds the body back; iteration gets it."""
    release = threading.Event()
    forge_api_server.add("/big", held(b"first;", release, b"rest"))
    with HttpClient() as client:
        response = client.get(forge_api_server.url_for("/big"), stream=True, timeout=PATIENT)
        assert response.is_streamed
        pieces = response.iter_content(chunk_size=None)
        assert next(pieces) == b"first;"
        release.set()
        assert b"".join(pieces) == b"rest"
    assert not response.is_streamed or response.raw.closed


class _SeesTheBody(ResponseHookInterface):
    def __init__(self) -> None:
        self.streamed: list[bool] = []

    def after_response(self, response: HttpResponse, context: RequestContext) -> HttpResponse:
        self.streamed.append(response.is_streamed)
        return response.replace(headers={**response.headers, "X-Hooked": "yes"})


class _Renewing(AuthHookInterface):
    def __init__(self) -> None:
        self.token = "old"
        self.renewals = 0

    def before_request(self, request: HttpRequest, context: RequestContext) -> HttpRequest:
        return request.with_headers({"Authorization": f"Bearer {self.token}"})

    def on_unauthorized(
        self, request: HttpRequest, response: HttpResponse, context: RequestContext
    ) -> bool:
        self.token, self.renewals = "new", self.renewals + 1
        return True


def test_hooks_auth_and_the_401_renewal_run_before_the_body(forge_api_server: ApiServer) -> None:
    """A 401 renews and resends, and the response hook sees (and replaces) an unread body."""
    release = threading.Event()
    forge_api_server.add("/p", Reply(status=401), held(b"a", release, b"b"))
    hook, auth = _SeesTheBody(), _Renewing()
    config = HttpClientConfigBuilder().with_auth_hook(auth).with_response_hook(hook).build()
    with HttpClient(config) as client:
        response = client.get(forge_api_server.url_for("/p"), stream=True, timeout=PATIENT)
        assert (response.status_code, response.headers["X-Hooked"]) == (200, "yes")
        assert (hook.streamed, auth.renewals) == ([True], 1)
        release.set()
        assert response.content == b"ab"
    sent = [r.headers["Authorization"] for r in forge_api_server.requests]
    assert sent == ["Bearer old", "Bearer new"]


def test_retries_happen_before_the_body(
    forge_api_server: ApiServer, forge_clock: FakeClock
) -> None:
    """A 503 is retried and only the final response's body is streamed to the caller."""
    forge_api_server.add("/r", Reply(status=503, body="busy"), streamed(b"fi", b"nal"))
    config = HttpClientConfigBuilder().with_retry(max_retries=2).build()
    with HttpClient(config) as client:
        response = client.get(forge_api_server.url_for("/r"), stream=True)
        assert list(response.iter_content(chunk_size=None)) == [b"fi", b"nal"]
    assert len(forge_api_server.requests) == 2


def test_a_redirect_hop_is_read_and_the_final_body_streamed(forge_api_server: ApiServer) -> None:
    """With stream=True the hops are read (their connection reused) and the last one streams."""
    release = threading.Event()
    forge_api_server.add("/from", Reply(status=302, body="moved", headers={"Location": "/to"}))
    forge_api_server.add("/to", held(b"x", release, b"y"))
    with HttpClient() as client:
        response = client.get(forge_api_server.url_for("/from"), stream=True, timeout=PATIENT)
        assert response.history[0].content == b"moved"
        assert response.is_streamed
        release.set()
        assert response.text == "xy"
    connections = {r.connection for r in forge_api_server.requests}
    assert len(connections) == 1


def test_a_fully_read_stream_gives_its_connection_back(forge_api_server: ApiServer) -> None:
    """After a streamed body is read to its end, the next request reuses the connection."""
    forge_api_server.add("/s", streamed(b"one", b"two"))
    with HttpClient() as client:
        for _ in range(3):
            with client.get(forge_api_server.url_for("/s"), stream=True) as response:
                assert b"".join(response.iter_content(chunk_size=2)) == b"onetwo"
    assert len({r.connection for r in forge_api_server.requests}) == 1


def test_closing_an_unread_stream_releases_it(forge_api_server: ApiServer) -> None:
    """Leaving a ``with`` block drops the unread rest; later requests still work."""
    release = threading.Event()
    forge_api_server.add("/held", held(b"start", release, b"never read"))
    forge_api_server.add("/after", Reply(body="fine"))
    with HttpClient() as client:
        with client.get(forge_api_server.url_for("/held"), stream=True) as response:
            assert next(response.iter_content(chunk_size=None)) == b"start"
        assert response.raw.closed
        release.set()
        assert client.get(forge_api_server.url_for("/after")).text == "fine"
    assert forge_api_server.handler_errors == []


def test_lines_do_not_depend_on_where_chunks_end(forge_api_server: ApiServer) -> None:
    """A CRLF split across two chunks is one line break (requests yields an extra line)."""
    chunks = (b"a\r", b"\nb\n", b"c;d", b"\r\n")
    forge_api_server.add("/lines", streamed(*chunks))
    url = forge_api_server.url_for("/lines")
    with HttpClient() as client:
        lines = list(client.get(url, stream=True).iter_lines(chunk_size=None))
        text = list(client.get(url, stream=True).iter_lines(decode_unicode=True, delimiter=";"))
    assert lines == b"".join(chunks).splitlines() == [b"a", b"b", b"c;d"]
    assert text == ["a\r\nb\nc", "d\r\n"]
    with requests.Session() as session:
        theirs = list(session.get(url, stream=True, timeout=5).iter_lines(chunk_size=None))
    assert theirs == [b"a", b"", b"b", b"c;d"]  # why ours is split by hand


def test_iterating_then_asking_for_content_is_a_typed_error(forge_api_server: ApiServer) -> None:
    """The body iterated away is gone: content then raises StreamConsumedError."""
    forge_api_server.add("/once", streamed(b"gone"))
    with HttpClient() as client:
        response = client.get(forge_api_server.url_for("/once"), stream=True)
        assert b"".join(response.iter_content(chunk_size=None)) == b"gone"
        with pytest.raises(StreamConsumedError):
            response.content  # noqa: B018
        with pytest.raises(StreamConsumedError):
            list(response.iter_content(chunk_size=None))


def test_a_body_that_stops_arriving_is_a_read_timeout(forge_api_server: ApiServer) -> None:
    """A stalled stream raises ReadTimeoutError from the iteration, not a requests error."""
    release = threading.Event()
    forge_api_server.add("/stall", held(b"some", release, b"more"))
    try:
        with HttpClient() as client:
            response = client.get(forge_api_server.url_for("/stall"), stream=True, timeout=0.5)
            pieces = response.iter_content(chunk_size=None)
            assert next(pieces) == b"some"
            with pytest.raises(ReadTimeoutError) as caught:
                next(pieces)
            assert caught.value.request is not None
    finally:
        release.set()


def test_two_threads_reading_content_get_the_same_bytes(forge_api_server: ApiServer) -> None:
    """content of one streamed response read from two threads at once is read once."""
    release = threading.Event()
    forge_api_server.add("/shared", held(b"left-", release, b"right"))
    results: list[bytes] = []
    with HttpClient() as client:
        response = client.get(forge_api_server.url_for("/shared"), stream=True, timeout=PATIENT)
        readers = [
            threading.Thread(target=lambda: results.append(response.content)) for _ in range(2)
        ]
        for reader in readers:
            reader.start()
        release.set()
        for reader in readers:
            reader.join(PATIENT)
    assert results == [b"left-right", b"left-right"]

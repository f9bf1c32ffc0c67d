"""End-to-end tests of HttpClient over real sockets on loopback, against forge_api_server."""

from __future__ import annotations

import io
import json
import socket

import pytest
import requests

from requestforge import (
    ConnectError,
    HttpClient,
    HttpClientConfigBuilder,
    MaxRetryException,
    ReadError,
    ReadTimeoutError,
    SimpleRetryStrategy,
)
from requestforge_testing import ApiServer, FakeClock, Reply


def make_client(server: ApiServer, max_retries: int = 0) -> HttpClient:
    builder = HttpClientConfigBuilder().with_base_url(server.url).with_timeout(5)
    if max_retries:
        builder = builder.with_retry_strategy(SimpleRetryStrategy(max_retries, delay=0.25))
    return HttpClient(builder.build())


def test_json_round_trip(forge_api_server: ApiServer) -> None:
    """A POSTed JSON body reaches the server and the JSON reply comes back decoded."""
    forge_api_server.add("/echo", Reply(status=201, json={"created": True}))
    with make_client(forge_api_server) as client:
        response = client.post("/echo", json={"name": "ada"}, params={"v": "2"})
    assert response.status_code == 201
    assert response.json() == {"created": True}
    assert response.elapsed_ms >= 0
    (seen,) = forge_api_server.requests
    assert (seen.method, seen.path, seen.query) == ("POST", "/echo", {"v": ["2"]})
    assert json.loads(seen.body) == {"name": "ada"}
    assert seen.headers["Content-Type"] == "application/json"


def test_form_body_and_headers(forge_api_server: ApiServer) -> None:
    """Form data and default headers arrive as sent."""
    forge_api_server.add("/form", Reply(body="ok"))
    builder = (
        HttpClientConfigBuilder().with_base_url(forge_api_server.url).with_header("X-App", "t")
    )
    with HttpClient(builder.build()) as client:
        assert client.put("/form", data={"a": "1", "b": "two"}).text == "ok"
    (seen,) = forge_api_server.requests
    assert seen.body == b"a=1&b=two"
    assert seen.headers["X-App"] == "t"


def test_dropped_connection_is_retried_for_get(
    forge_api_server: ApiServer, forge_clock: FakeClock
) -> None:
    """A connection closed without a reply is a ReadError, and an idempotent GET retries it."""
    forge_api_server.add("/drop", Reply(drop=True), Reply(json={"ok": True}))
    with make_client(forge_api_server, max_retries=2) as client:
        assert client.get("/drop").json() == {"ok": True}
    assert len(forge_api_server.requests_to("/drop")) == 2
    assert forge_clock.sleeps == [0.25]


def test_dropped_connection_on_post_raises_read_error(forge_api_server: ApiServer) -> None:
    """A POST whose connection broke is not resent: the caller gets ReadError."""
    forge_api_server.add("/drop", Reply(drop=True))
    with make_client(forge_api_server, max_retries=2) as client, pytest.raises(ReadError):
        client.post("/drop", json={})
    assert len(forge_api_server.requests_to("/drop")) == 1


def test_read_timeout(forge_api_server: ApiServer) -> None:
    """A server slower than the timeout gives ReadTimeoutError."""
    forge_api_server.add("/slow", Reply(delay=0.5))
    with make_client(forge_api_server) as client, pytest.raises(ReadTimeoutError):
        client.get("/slow", timeout=0.05)


def test_read_timeout_of_a_connect_read_pair(forge_api_server: ApiServer) -> None:
    """The read half of a (connect, read) timeout bounds the wait for the answer."""
    forge_api_server.add("/slow", Reply(delay=0.5))
    with make_client(forge_api_server) as client, pytest.raises(ReadTimeoutError):
        client.get("/slow", timeout=(5, 0.05))


def test_extension_method_over_loopback(forge_api_server: ApiServer) -> None:
    """A PROPFIND with a body reaches a script registered for that method, and is answered."""
    forge_api_server.add("/dav", Reply(status=207, body="<multistatus/>"), method="PROPFIND")
    forge_api_server.add("/dav", Reply(status=405), method="GET")
    with make_client(forge_api_server) as client:
        response = client.request("propfind", "/dav", data=b"<propfind/>")
    assert (response.status_code, response.text) == (207, "<multistatus/>")
    (seen,) = forge_api_server.requests
    assert (seen.method, seen.body) == ("PROPFIND", b"<propfind/>")


def test_followed_redirect_keeps_history_and_raw_response(forge_api_server: ApiServer) -> None:
    """A followed redirect is in history, each response names the request it answered, and
    raw_response is the requests.Response behind."""
    forge_api_server.add("/old", Reply(status=308, headers={"Location": "/new"}))
    forge_api_server.add("/new", Reply(json={"moved": True}))
    with make_client(forge_api_server) as client:
        response = client.get("/old")
    assert response.url == forge_api_server.url_for("/new")
    assert [(h.status_code, h.url) for h in response.history] == [
        (308, forge_api_server.url_for("/old"))
    ]
    assert response.history[0].request is not None
    assert response.request is not None
    assert response.history[0].request.url == forge_api_server.url_for("/old")
    assert response.request.url == forge_api_server.url_for("/new")
    assert isinstance(response.raw_response, requests.Response)
    assert response.raw_response.content is response.content
    assert response.history[0].raw_response is response.raw_response.history[0]


def test_refused_connection_is_a_connect_error(forge_clock: FakeClock) -> None:
    """Connecting to a closed port raises ConnectError, retried until MaxRetryException."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = (
        HttpClientConfigBuilder()
        .with_base_url(f"http://127.0.0.1:{port}")
        .with_retry_strategy(SimpleRetryStrategy(2, delay=1))
        .build()
    )
    with HttpClient(config) as client, pytest.raises(MaxRetryException) as excinfo:
        client.get("/")
    assert isinstance(excinfo.value.last_error, ConnectError)
    assert forge_clock.sleeps == [1.0, 1.0]


def test_file_body_is_rewound_for_a_retry(
    forge_api_server: ApiServer, forge_clock: FakeClock
) -> None:
    """A seekable file body is sent whole again on the retry."""
    forge_api_server.add("/upload", Reply(status=503), Reply(status=204))
    body = io.BytesIO(b"header-skipped|payload")
    body.seek(len(b"header-skipped|"))
    with make_client(forge_api_server, max_retries=1) as client:
        assert client.put("/upload", data=body).status_code == 204
    assert [r.body for r in forge_api_server.requests_to("/upload")] == [b"payload", b"payload"]


def test_keep_alive_reuses_one_connection(forge_api_server: ApiServer) -> None:
    """Sequential requests from one thread share one pooled TCP connection."""
    forge_api_server.add("/k", Reply(body="k"))
    with make_client(forge_api_server) as client:
        for _ in range(10):
            client.get("/k")
    assert forge_api_server.connections_accepted == 1

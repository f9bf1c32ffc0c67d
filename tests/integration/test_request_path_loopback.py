"""The lean request path over real sockets (docs/design.md, "The request path"): the same
calls through a stock ``requests.Session`` and through an ``HttpClient`` session reach the
loopback server as the same requests, and leave the same cookies behind."""

from __future__ import annotations

import pytest
import requests
from urllib3.exceptions import TimeoutStateError

from requestforge import HttpClient, HttpClientConfigBuilder
from requestforge._deadline import attempt_budget, deadline_timeout
from requestforge_testing import ApiServer, RecordedRequest, Reply

pytestmark = pytest.mark.usefixtures("forge_clean_environment")


def received(recorded: list[RecordedRequest]) -> list[tuple[str, str, str | None, str | None]]:
    """What the server saw of each request: method, path, Host and Cookie."""
    return [(r.method, r.path, r.headers.get("Host"), r.headers.get("Cookie")) for r in recorded]


def test_cookies_and_hosts_match_a_stock_session(forge_api_server: ApiServer) -> None:
    """Across two origins of one server (cached per origin) and a cookie set midway, the
    client's session sends what a stock session sends and keeps the same jar."""
    forge_api_server.add("/plain", Reply(body="p"))
    forge_api_server.add("/set", Reply(body="s", headers={"Set-Cookie": "sid=1; Path=/"}))
    port = forge_api_server.url.rsplit(":", 1)[1]
    origins = [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]
    calls = [(origin, path) for path in ("/plain", "/set", "/plain") for origin in origins]

    def run(session: requests.Session) -> tuple[list[object], list[tuple[str, str | None]]]:
        start = len(forge_api_server.requests)
        for origin, path in calls:
            session.get(origin + path, timeout=5).raise_for_status()
        jar = sorted((c.domain, c.value) for c in session.cookies)
        return list(received(forge_api_server.requests[start:])), jar

    with requests.Session() as stock:
        expected = run(stock)
    with HttpClient(HttpClientConfigBuilder().with_timeout(5).build()) as client:
        actual = run(client.session)
    assert actual == expected
    assert expected[1] == [("127.0.0.1", "1"), ("localhost.local", "1")]


def test_client_requests_send_the_session_cookie_back(forge_api_server: ApiServer) -> None:
    """A cookie the server sets is sent on the client's next request (the jar was not empty,
    so the Cookie header is worked out), and not before."""
    forge_api_server.add("/set", Reply(body="s", headers={"Set-Cookie": "sid=abc; Path=/"}))
    forge_api_server.add("/echo", Reply(body="e"))
    with HttpClient(HttpClientConfigBuilder().with_timeout(5).build()) as client:
        client.get(forge_api_server.url_for("/echo"))
        client.get(forge_api_server.url_for("/set"))
        client.get(forge_api_server.url_for("/echo"))
    cookies = [r.headers.get("Cookie") for r in forge_api_server.requests]
    assert cookies == [None, None, "sid=abc"]


def test_the_shared_deadline_timeout_is_never_started(forge_api_server: ApiServer) -> None:
    """The one urllib3 Timeout per timeout value is cloned for each request, never timed
    itself, so requests after the first get the whole budget."""
    forge_api_server.add("/t", Reply(body="t"))
    with HttpClient(HttpClientConfigBuilder().with_timeout(5).build()) as client:
        client.get(forge_api_server.url_for("/t"))
        client.get(forge_api_server.url_for("/t"))
    shared = deadline_timeout(5.0, attempt_budget(5.0))
    assert shared is deadline_timeout(5.0, attempt_budget(5.0))
    with pytest.raises(TimeoutStateError):
        shared.get_connect_duration()  # raises for a timer that was never started
    assert shared.total == 5.0

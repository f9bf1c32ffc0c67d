"""Redirects over real loopback HTTP: what an auth hook added stays on its origin, bodies
are resent only when they can be, and the redirect limit holds.

A second ``ApiServer`` on another port is another origin (RFC 6454: scheme, host, port).
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
import requests

from requestforge import (
    ApiKeyAuthHook,
    AuthHookInterface,
    HttpClient,
    HttpClientConfigBuilder,
    HttpRequest,
    HttpResponse,
    RequestContext,
    TooManyRedirectsError,
)
from requestforge_testing import ApiServer, Reply


@pytest.fixture
def other_origin() -> Iterator[ApiServer]:
    """A second loopback server: same host, another port, so another origin."""
    with ApiServer() as server:
        yield server


def redirect(to: str, status: int = 302) -> Reply:
    return Reply(status=status, headers={"Location": to})


def keyed_client(hook: AuthHookInterface) -> HttpClient:
    return HttpClient(HttpClientConfigBuilder().with_timeout(5).with_auth_hook(hook).build())


@pytest.mark.parametrize(
    "hook",
    [
        ApiKeyAuthHook("partner-secret", header_name="X-Partner-Key"),
        ApiKeyAuthHook("partner-secret", query_param="subscription-key"),
    ],
    ids=["header", "query"],
)
def test_an_api_key_never_follows_a_redirect_to_another_origin(
    forge_api_server: ApiServer, other_origin: ApiServer, hook: ApiKeyAuthHook
) -> None:
    """A custom-named API key header or query parameter is not sent to the other origin."""
    forge_api_server.add("/start", redirect(other_origin.url_for("/land")))
    other_origin.add("/land", Reply(body="landed"))
    with keyed_client(hook) as client:
        response = client.get(forge_api_server.url_for("/start"))
    assert response.text == "landed"
    (first,) = forge_api_server.requests
    sent = [first.headers.get("X-Partner-Key"), *first.query.get("subscription-key", [])]
    assert "partner-secret" in sent  # the home origin got it (reprs now hide it)
    (landed,) = other_origin.requests
    assert "partner-secret" not in repr((dict(landed.headers), landed.query, landed.body))


def test_an_api_key_is_applied_again_on_the_same_origin(forge_api_server: ApiServer) -> None:
    """A redirect within the origin gets the auth hook's header and query parameter again."""
    forge_api_server.add("/start", redirect("/land?page=2"))
    forge_api_server.add("/land", Reply(body="landed"))
    header = ApiKeyAuthHook("h-secret", header_name="X-Partner-Key")
    query = ApiKeyAuthHook("q-secret", query_param="subscription-key")
    config = HttpClientConfigBuilder().with_timeout(5).with_auth_hook(header).with_auth_hook(query)
    with HttpClient(config.build()) as client:
        client.get(forge_api_server.url_for("/start"))
    landed = forge_api_server.requests_to("/land")[0]
    assert landed.headers["X-Partner-Key"] == "h-secret"
    assert landed.query == {"page": ["2"], "subscription-key": ["q-secret"]}


def test_credentials_do_not_come_back_after_leaving_the_origin(
    forge_api_server: ApiServer, other_origin: ApiServer
) -> None:
    """A -> B -> A: once a hop left the origin, later hops go without the auth hook."""
    forge_api_server.add("/start", redirect(other_origin.url_for("/bounce")))
    other_origin.add("/bounce", redirect(forge_api_server.url_for("/back")))
    forge_api_server.add("/back", Reply(body="back"))
    with keyed_client(ApiKeyAuthHook("k-secret", header_name="X-Partner-Key")) as client:
        assert client.get(forge_api_server.url_for("/start")).text == "back"
    back = forge_api_server.requests_to("/back")[0]
    assert "X-Partner-Key" not in back.headers


def test_own_authorization_header_and_auth_tuple_stay_home(
    forge_api_server: ApiServer, other_origin: ApiServer
) -> None:
    """A caller's Authorization header or auth= pair is not sent to the other origin."""
    forge_api_server.add("/start", redirect(other_origin.url_for("/land")))
    other_origin.add("/land", Reply(body="landed"))
    with HttpClient() as client:
        client.get(forge_api_server.url_for("/start"), headers={"Authorization": "Bearer own"})
        client.get(forge_api_server.url_for("/start"), auth=("user", "pass-secret"))
    first, second = forge_api_server.requests
    assert first.headers["Authorization"] == "Bearer own"
    assert second.headers["Authorization"].startswith("Basic ")
    for landed in other_origin.requests:
        assert "Authorization" not in landed.headers


class _CountingAuth(AuthHookInterface):
    """Adds a header and counts how often a 401 asked it to renew."""

    def __init__(self) -> None:
        self.renewals = 0

    def before_request(self, request: HttpRequest, context: RequestContext) -> HttpRequest:
        return request.with_headers({"Authorization": "Bearer ours"})

    def on_unauthorized(
        self, request: HttpRequest, response: HttpResponse, context: RequestContext
    ) -> bool:
        self.renewals += 1
        return True


def test_a_401_from_another_origin_does_not_renew_our_token(
    forge_api_server: ApiServer, other_origin: ApiServer
) -> None:
    """Our credentials never reached the other origin, so its 401 says nothing about them."""
    forge_api_server.add("/start", redirect(other_origin.url_for("/deny")))
    forge_api_server.add("/home-deny", Reply(status=401), Reply(body="ok"))
    forge_api_server.add("/start-home", redirect("/home-deny"))
    other_origin.add("/deny", Reply(status=401))
    auth = _CountingAuth()
    with keyed_client(auth) as client:
        assert client.get(forge_api_server.url_for("/start")).status_code == 401
        assert auth.renewals == 0
        assert client.get(forge_api_server.url_for("/start-home")).text == "ok"
    assert auth.renewals == 1


def test_a_one_shot_body_is_not_resent_on_307(forge_api_server: ApiServer) -> None:
    """A generator body cannot be sent twice: the 307 is returned, not followed half-empty."""
    forge_api_server.add("/upload", redirect("/elsewhere", status=307))
    forge_api_server.add("/elsewhere", Reply(body="should not be reached"))
    with HttpClient() as client:
        response = client.post(forge_api_server.url_for("/upload"), data=iter([b"a", b"b"]))
    assert response.status_code == 307
    assert response.history == ()
    assert forge_api_server.requests_to("/elsewhere") == []


@pytest.mark.parametrize("status", [307, 308])
def test_a_seekable_body_is_rewound_for_307_and_308(
    forge_api_server: ApiServer, status: int
) -> None:
    """A file body is sent again from its start position to the new location."""
    forge_api_server.add("/upload", redirect("/elsewhere", status=status))
    forge_api_server.add("/elsewhere", Reply(body="stored"))
    body = io.BytesIO(b"skip:payload")
    body.seek(5)
    with HttpClient() as client:
        response = client.put(forge_api_server.url_for("/upload"), data=body)
    assert response.text == "stored"
    assert [r.body for r in forge_api_server.requests] == [b"payload", b"payload"]
    assert [r.method for r in forge_api_server.requests] == ["PUT", "PUT"]


@pytest.mark.parametrize("limit", [0, 1, 3])
def test_the_redirect_limit_matches_requests(forge_api_server: ApiServer, limit: int) -> None:
    """session.max_redirects stops an endless loop after as many requests as requests sends."""
    forge_api_server.add("/loop", redirect("/loop"))
    with requests.Session() as session:
        session.max_redirects = limit
        with pytest.raises(requests.TooManyRedirects):
            session.get(forge_api_server.url_for("/loop"), timeout=5)
    sent_by_requests = len(forge_api_server.requests)
    forge_api_server.reset()
    forge_api_server.add("/loop", redirect("/loop"))
    with HttpClient() as client:
        client.session.max_redirects = limit
        with pytest.raises(TooManyRedirectsError) as caught:
            client.get(forge_api_server.url_for("/loop"))
    assert len(forge_api_server.requests) == sent_by_requests == limit + 1
    assert caught.value.response is not None
    assert caught.value.response.status_code == 302
    assert len(caught.value.response.history) == limit


def test_a_location_in_latin_1_is_followed_not_crashed_on(forge_api_server: ApiServer) -> None:
    """requests raises UnicodeDecodeError for a non-UTF-8 Location; the client follows it."""
    forge_api_server.add("/start", redirect("/caf\xe9"))
    forge_api_server.add("/caf%C3%A9", Reply(body="latin"))
    with HttpClient() as client:
        response = client.get(forge_api_server.url_for("/start"))
    assert (response.status_code, response.history[0].status_code) == (200, 302)
    assert forge_api_server.requests[-1].path == "/caf%C3%A9"  # re-quoted, as requests does


def test_no_redirects_allowed_still_returns_a_redirect_not_followed(
    forge_api_server: ApiServer,
) -> None:
    """With max_redirects 0, allow_redirects=False returns the 3xx (requests raises there)."""
    forge_api_server.add("/start", redirect("/next"))
    config = HttpClientConfigBuilder().with_max_redirects(0).build()
    with HttpClient(config) as client:
        assert client.get(forge_api_server.url_for("/start"), allow_redirects=False).is_redirect
        with pytest.raises(TooManyRedirectsError):
            client.get(forge_api_server.url_for("/start"))
    with requests.Session() as session:
        session.max_redirects = 0
        with pytest.raises(requests.TooManyRedirects):
            session.get(forge_api_server.url_for("/start"), allow_redirects=False, timeout=5)

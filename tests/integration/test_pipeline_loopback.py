"""Token pipelines over real HTTP: each step's request carries the previous step's token."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from requestforge import (
    BodyTokenFetcher,
    HeaderTokenFetcher,
    HttpClient,
    HttpClientConfigBuilder,
    PipelineStepError,
    TokenEndpointError,
    TokenFetchPipeline,
    TokenResponseError,
)
from requestforge_testing import ApiServer, FakeClock, RecordedRequest, Reply

Handler = Callable[[RecordedRequest], Reply]


@pytest.fixture
def client(forge_api_server: ApiServer) -> Iterator[HttpClient]:
    """A client whose base URL is the loopback server."""
    config = HttpClientConfigBuilder().with_base_url(forge_api_server.url).with_timeout(5).build()
    with HttpClient(config) as http:
        yield http


def issuing(expected_auth: Callable[[], str | None], reply: Callable[[int], Reply]) -> Handler:
    """A handler that answers 401 unless Authorization is what the test expects right now,
    and otherwise issues its n-th token through ``reply(n)``."""
    numbers = itertools.count(1)

    def handle(request: RecordedRequest) -> Reply:
        if request.headers.get("Authorization") != expected_auth():
            return Reply(401, json={"error": "invalid_token"})
        return reply(next(numbers))

    return handle


def device_app_user(
    server: ApiServer, client: HttpClient
) -> tuple[TokenFetchPipeline, dict[str, str | None]]:
    """A device -> app -> user chain; ``issued`` holds the latest token each path gave out."""
    issued: dict[str, str | None] = {"device": None, "app": None, "user": None}

    def remember(name: str, token: str) -> str:
        issued[name] = token
        return token

    server.add_handler(
        "/device",
        issuing(
            lambda: None,
            lambda n: Reply(204, headers={"X-Auth-Token": remember("device", f"dev-{n}")}),
        ),
        method="POST",
    )
    server.add_handler(
        "/app",
        issuing(
            lambda: f"Bearer {issued['device']}",
            lambda n: Reply(json={"data": {"auth": {"token": remember("app", f"app-{n}")}}}),
        ),
        method="POST",
    )
    server.add_handler(
        "/user",
        issuing(
            lambda: f"Bearer {issued['app']}",
            lambda n: Reply(
                json={
                    "access_token": remember("user", f"user-{n}"),
                    "expires_in": "900",
                    "refresh_token": f"refresh-{n}",
                }
            ),
        ),
        method="POST",
    )
    steps = [
        BodyTokenFetcher(
            "user",
            "/user",
            depends_on=("device", "app"),
            refresh_token_path="refresh_token",
            client=client,
            # The user endpoint also wants the device token, in a header of its own.
            headers=lambda ctx: {"X-Device": ctx.get_token("device").access_token},
            json={"username": "ada"},
        ),
        HeaderTokenFetcher("device", "/device", ttl=30 * 86400, client=client),
        BodyTokenFetcher(
            "app",
            "/app",
            depends_on=("device",),
            token_path="data.auth.token",
            ttl=3600,
            client=client,
        ),
    ]
    return TokenFetchPipeline(steps), issued


def test_three_step_chain_passes_each_token_on(
    forge_api_server: ApiServer, client: HttpClient, forge_clock: FakeClock
) -> None:
    """device -> app -> user: each request carries the previous step's token, once each."""
    pipeline, _ = device_app_user(forge_api_server, client)
    token = pipeline.execute()
    assert token.access_token == "user-1"
    assert token.refresh_token == "refresh-1"
    assert token.expires_at == forge_clock.now() + timedelta(seconds=900)
    device, app, user = forge_api_server.requests
    assert [r.path for r in (device, app, user)] == ["/device", "/app", "/user"]
    assert "Authorization" not in device.headers
    assert app.headers["Authorization"] == "Bearer dev-1"
    assert user.headers["Authorization"] == "Bearer app-1"
    assert user.headers["X-Device"] == "dev-1"
    assert user.json() == {"username": "ada"}
    assert forge_api_server.handler_errors == []


def test_cached_steps_send_no_requests_and_invalidation_refetches(
    forge_api_server: ApiServer, client: HttpClient, forge_clock: FakeClock
) -> None:
    """A second run sends nothing; after invalidate('app'), only /app and /user are asked."""
    pipeline, _ = device_app_user(forge_api_server, client)
    pipeline.execute()
    pipeline.execute()
    assert len(forge_api_server.requests) == 3
    pipeline.invalidate("app")
    assert pipeline.execute().access_token == "user-2"
    paths = [r.path for r in forge_api_server.requests]
    assert paths == ["/device", "/app", "/user", "/app", "/user"]
    assert forge_api_server.requests[-1].headers["Authorization"] == "Bearer app-2"


def test_app_ttl_expiry_refetches_app_with_the_cached_device_token(
    forge_api_server: ApiServer, client: HttpClient, forge_clock: FakeClock
) -> None:
    """After the app step's hour, app and user are fetched again; the device token is reused."""
    pipeline, _ = device_app_user(forge_api_server, client)
    pipeline.execute()
    forge_clock.advance(3600)
    assert pipeline.execute().access_token == "user-2"
    paths = [r.path for r in forge_api_server.requests]
    assert paths == ["/device", "/app", "/user", "/app", "/user"]
    assert forge_api_server.requests[3].headers["Authorization"] == "Bearer dev-1"


def run_step(server: ApiServer, step: HeaderTokenFetcher | BodyTokenFetcher) -> PipelineStepError:
    """Execute a pipeline whose last step is ``step`` after a 'login' step; return its error."""
    server.add("/login", Reply(204, headers={"X-Auth-Token": "login-secret"}))
    login = HeaderTokenFetcher("login", server.url_for("/login"), client=step.client)
    with pytest.raises(PipelineStepError) as caught:
        TokenFetchPipeline([login, step]).execute()
    assert caught.value.step == step.name
    for text in (str(caught.value), str(caught.value.__cause__), repr(caught.value.__cause__)):
        assert "login-secret" not in text
    return caught.value


def test_server_error_is_a_transient_endpoint_error(
    forge_api_server: ApiServer, client: HttpClient
) -> None:
    """A 500 from the token endpoint is a transient TokenEndpointError with its OAuth code."""
    forge_api_server.add("/token", Reply(500, json={"error": "server_error"}))
    step = BodyTokenFetcher("token", "/token", depends_on=("login",), client=client)
    error = run_step(forge_api_server, step).__cause__
    assert isinstance(error, TokenEndpointError)
    assert (error.status_code, error.error, error.transient) == (500, "server_error", True)
    assert "answered 500 (server_error)" in str(error)
    assert forge_api_server.requests_to("/token")[0].headers["Authorization"] == (
        "Bearer login-secret"
    )


def test_refusal_is_a_permanent_endpoint_error(
    forge_api_server: ApiServer, client: HttpClient
) -> None:
    """A 400 invalid_grant is a TokenEndpointError that is not transient, with its description."""
    forge_api_server.add(
        "/token", Reply(400, json={"error": "invalid_grant", "error_description": "expired"})
    )
    step = HeaderTokenFetcher("token", "/token", depends_on=("login",), client=client)
    error = run_step(forge_api_server, step).__cause__
    assert isinstance(error, TokenEndpointError)
    assert (error.error, error.error_description, error.transient) == (
        "invalid_grant",
        "expired",
        False,
    )


def test_missing_header_is_a_token_response_error(
    forge_api_server: ApiServer, client: HttpClient
) -> None:
    """A 2xx without the token header raises TokenResponseError naming the header."""
    forge_api_server.add("/token", Reply(200, headers={"X-Other": "x"}))
    step = HeaderTokenFetcher(
        "token", "/token", header_name="X-Subject-Token", depends_on=("login",), client=client
    )
    error = run_step(forge_api_server, step).__cause__
    assert isinstance(error, TokenResponseError)
    assert "has no X-Subject-Token header" in str(error)


def test_bad_json_path_is_a_token_response_error(
    forge_api_server: ApiServer, client: HttpClient
) -> None:
    """A body without the configured dotted path raises TokenResponseError naming the path."""
    forge_api_server.add("/token", Reply(json={"data": {"auth": {}}}))
    step = BodyTokenFetcher(
        "token", "/token", token_path="data.auth.token", depends_on=("login",), client=client
    )
    error = run_step(forge_api_server, step).__cause__
    assert isinstance(error, TokenResponseError)
    assert "no token string at 'data.auth.token'" in str(error)


def test_non_json_body_is_a_token_response_error(
    forge_api_server: ApiServer, client: HttpClient
) -> None:
    """A 2xx body that is not JSON raises TokenResponseError."""
    forge_api_server.add("/token", Reply(body="<html>welcome</html>"))
    step = BodyTokenFetcher("token", "/token", depends_on=("login",), client=client)
    error = run_step(forge_api_server, step).__cause__
    assert isinstance(error, TokenResponseError)
    assert "is not JSON" in str(error)


def test_dropped_connection_is_a_transient_endpoint_error(
    forge_api_server: ApiServer, client: HttpClient
) -> None:
    """A token endpoint that closes the connection gives a transient TokenEndpointError."""
    forge_api_server.add("/token", Reply(drop=True))
    step = BodyTokenFetcher("token", "/token", depends_on=("login",), client=client)
    error = run_step(forge_api_server, step).__cause__
    assert isinstance(error, TokenEndpointError)
    assert error.transient
    assert error.status_code is None
    assert "token request to" in str(error)


def test_fetcher_without_a_client_makes_and_closes_its_own(
    forge_api_server: ApiServer, forge_clock: FakeClock
) -> None:
    """With no client=, a fetcher sends through its own HttpClient, closed by close()."""
    forge_api_server.add("/token", Reply(json={"access_token": "own-1", "expires_in": 60}))
    step = BodyTokenFetcher("token", forge_api_server.url_for("/token"), method="GET")
    try:
        assert TokenFetchPipeline([step]).execute().access_token == "own-1"
    finally:
        step.close()
    assert forge_api_server.requests[0].method == "GET"

"""Refresh triggers over real HTTP (issue 13): an ``invalid_token`` challenge on any status,
a bare 403 with ``refresh_on_statuses``, ``insufficient_scope`` as an error, and a 401 while
the token endpoint is down, against forge_oauth_server's API modes and DOT's default view."""

from __future__ import annotations

from typing import Any

import pytest

from requestforge import (
    ClientCredentialsTokenProvider,
    HttpClient,
    HttpClientConfigBuilder,
    HttpStatusError,
    InsufficientScopeError,
    TokenEndpointError,
    TokenManager,
)
from requestforge_testing import FakeClock, OAuthServer
from requestforge_testing._peers import DotServer

CLIENT_ID, CLIENT_SECRET = "forge-client", "forge-secret"


def _manager(server: OAuthServer, **options: Any) -> TokenManager:
    return TokenManager(
        ClientCredentialsTokenProvider(server.token_url, CLIENT_ID, CLIENT_SECRET, **options)
    )


def _client(url: str, manager: TokenManager, **options: Any) -> HttpClient:
    config = (
        HttpClientConfigBuilder()
        .with_base_url(url)
        .with_timeout(5)
        .with_token_auth(manager, **options)
        .build()
    )
    return HttpClient(config)


def _sent_tokens(server: OAuthServer) -> list[str]:
    return [r.headers.get("Authorization", "").partition(" ")[2] for r in server.api_requests]


@pytest.mark.parametrize("status", [400, 403])
def test_an_invalid_token_challenge_on_any_status_renews(
    forge_oauth_server: OAuthServer, status: int
) -> None:
    """A revoked token refused with ``Bearer error="invalid_token"`` on a non-401 is renewed
    and the request resent once."""
    server = forge_oauth_server
    server.invalid_token_status = status
    manager = _manager(server)
    with _client(server.api_url, manager) as client:
        revoked = manager.get_token().access_token
        server.revoke(revoked)
        response = client.get("/orders")
    assert response.status_code == 200
    assert server.fetch_count == 2
    assert _sent_tokens(server) == [revoked, manager.get_token().access_token]


def test_a_bare_403_renews_only_with_refresh_on_statuses(forge_oauth_server: OAuthServer) -> None:
    """DOT-style refusals (403, no challenge) are handed back by default and renewed with
    ``refresh_on_statuses={403}``."""
    server = forge_oauth_server
    server.invalid_token_status, server.invalid_token_challenge = 403, False
    manager = _manager(server)
    revoked = manager.get_token().access_token
    with _client(server.api_url, manager) as client:
        server.revoke(revoked)
        assert client.get("/orders").status_code == 403
        assert server.fetch_count == 1
    with _client(server.api_url, manager, refresh_on_statuses={403}) as client:
        assert client.get("/orders").status_code == 200
    assert server.fetch_count == 2
    assert _sent_tokens(server) == [revoked, revoked, manager.get_token().access_token]


def test_insufficient_scope_raises_and_fetches_nothing(forge_oauth_server: OAuthServer) -> None:
    """A token without the API's scope gets InsufficientScopeError naming it, after one send
    and with no renewal, even with 403 among the refresh statuses."""
    server = forge_oauth_server
    server.required_scope = "orders:write"
    manager = _manager(server, scope=["orders:read"])
    client = _client(server.api_url, manager, refresh_on_statuses={403})
    with client, pytest.raises(InsufficientScopeError) as caught:
        client.get("/orders")
    assert caught.value.scope == "orders:write"
    assert caught.value.response is not None
    assert caught.value.response.status_code == 403
    assert (server.fetch_count, len(server.api_requests)) == (1, 1)


def test_a_401_while_the_token_endpoint_is_down_raises_the_endpoint_error(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """The renewal's TokenEndpointError reaches the caller, caused by the 401; the rejected
    token is not sent a second time for that call, and the next call, while the manager backs
    off (the clock stands still), raises again without a token request."""
    server = forge_oauth_server
    manager = _manager(server, max_retries=0)
    revoked = manager.get_token().access_token
    with _client(server.api_url, manager) as client:
        server.revoke(revoked)
        server.fail_next(5, status=503)
        for _ in range(2):
            with pytest.raises(TokenEndpointError) as caught:
                client.get("/orders")
            assert caught.value.transient is True
            cause = caught.value.__cause__
            assert isinstance(cause, HttpStatusError)
            assert cause.response is not None
            assert cause.response.status_code == 401
    assert _sent_tokens(server) == [revoked, revoked]  # one send per call, no resend
    assert len(server.token_requests) == 2  # the first token, one failed renewal


def test_dot_403_for_an_expired_token_renews_with_refresh_on_statuses(
    forge_dot_server: DotServer,
) -> None:
    """django-oauth-toolkit's default view answers an expired token with a bare 403; with
    ``refresh_on_statuses={403}`` the client renews it and the resend succeeds."""
    server = forge_dot_server
    manager = TokenManager(
        ClientCredentialsTokenProvider(server.token_url, server.client_id, server.client_secret)
    )
    with _client(server.api_url, manager, refresh_on_statuses={403}) as client:
        assert client.get("/before").status_code == 200
        assert server.expire_tokens() == 1
        assert client.get("/expired").status_code == 200
    assert server.api_statuses == [200, 403, 200]
    assert server.token_request_counts == {"client_credentials": 2}

"""The OAuth 2.0 providers over real HTTP against forge_oauth_server, alone and behind a
TokenManager and an HttpClient: fetch once, renew on expiry, recover from a revoked token."""

from __future__ import annotations

from typing import Any

import pytest

from requestforge import (
    ClientCredentialsTokenProvider,
    HttpClient,
    PasswordGrantTokenProvider,
    TokenEndpointError,
    TokenManager,
    TokenResponseError,
)
from requestforge_testing import FakeClock, OAuthServer, Reply, StressRunner
from tests.api_clients import token_client

CLIENT_ID, CLIENT_SECRET = "forge-client", "forge-secret"
USERNAME, PASSWORD = "forge-user", "forge-password"


def _cc(server: OAuthServer, **options: Any) -> ClientCredentialsTokenProvider:
    return ClientCredentialsTokenProvider(
        server.token_url,
        CLIENT_ID,
        CLIENT_SECRET,
        **options,
    )


def _pw(server: OAuthServer, **options: Any) -> PasswordGrantTokenProvider:
    return PasswordGrantTokenProvider(
        server.token_url,
        CLIENT_ID,
        CLIENT_SECRET,
        USERNAME,
        PASSWORD,
        **options,
    )


# -- providers alone ------------------------------------------------------------------------


@pytest.mark.parametrize("client_auth", ["basic", "body"])
def test_client_credentials_token_works_on_the_api(
    forge_oauth_server: OAuthServer, client_auth: str
) -> None:
    """Either client authentication gets a token the protected API accepts."""
    provider = _cc(forge_oauth_server, client_auth=client_auth, scope=["read", "write"])
    token = provider.fetch_token()
    with HttpClient() as client:
        response = client.get(
            forge_oauth_server.api_url + "/whoami",
            headers={"Authorization": token.authorization_header},
        )
    assert response.json()["client_id"] == CLIENT_ID
    assert token.scope == "read write"
    assert token.refresh_token is None
    (record,) = forge_oauth_server.token_requests
    assert (record.auth_method, record.params["scope"]) == (client_auth, "read write")


def test_password_grant_then_refresh_grant(forge_oauth_server: OAuthServer) -> None:
    """The password grant's refresh token buys a new token without sending the password."""
    provider = _pw(forge_oauth_server)
    first = provider.fetch_token()
    second = provider.refresh_token(first)
    assert second.access_token != first.access_token
    assert second.refresh_token not in (None, first.refresh_token)
    assert forge_oauth_server.grant_counts == {"password": 1, "refresh_token": 1}
    assert "password" not in forge_oauth_server.token_requests[1].params


def test_a_public_client_uses_the_password_grant() -> None:
    """A client without a secret sends its id in the body and the server accepts it."""
    with OAuthServer(clients={"spa": None}) as server:
        provider = PasswordGrantTokenProvider(server.token_url, "spa", None, USERNAME, PASSWORD)
        provider.fetch_token()
        (record,) = server.token_requests
    assert (record.auth_method, record.client_id, record.status) == ("body", "spa", 200)
    assert "client_secret" not in record.params


def test_wrong_secret_is_a_permanent_invalid_client(forge_oauth_server: OAuthServer) -> None:
    """A refused client is reported once, with the server's code and status, not retried."""
    provider = ClientCredentialsTokenProvider(forge_oauth_server.token_url, CLIENT_ID, "wrong")
    with pytest.raises(TokenEndpointError) as caught:
        provider.fetch_token()
    assert (caught.value.error, caught.value.status_code) == ("invalid_client", 401)
    assert caught.value.transient is False
    assert "wrong" not in str(caught.value)
    assert len(forge_oauth_server.token_requests) == 1


def test_transient_failures_are_retried_on_the_clock(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """Two 503s then a token: the provider retries with backoff on the fake clock and succeeds."""
    forge_oauth_server.fail_next(2)
    token = _cc(forge_oauth_server, max_retries=2).fetch_token()
    assert token.access_token in forge_oauth_server.issued_tokens
    assert [r.status for r in forge_oauth_server.token_requests] == [503, 503, 200]
    assert len(forge_clock.sleeps) == 2


def test_retry_after_from_the_server_is_waited_on_the_clock(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """A 429 with Retry-After: 4 makes the provider wait exactly 4 s (of fake time)."""
    forge_oauth_server.fail_next(status=429, error="slow_down", retry_after=4)
    _cc(forge_oauth_server).fetch_token()
    assert forge_clock.sleeps == [4.0]


def test_retries_exhausted_is_transient(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """Failures beyond max_retries end in a transient TokenEndpointError with the last status."""
    forge_oauth_server.fail_next(3, status=502, error="bad_gateway")
    with pytest.raises(TokenEndpointError) as caught:
        _cc(forge_oauth_server, max_retries=2).fetch_token()
    assert (caught.value.transient, caught.value.status_code) == (True, 502)
    assert len(forge_oauth_server.token_requests) == 3


def test_an_unreachable_endpoint_is_transient(forge_clock: FakeClock) -> None:
    """A server that is gone (connection refused) maps to a transient error after retries."""
    with OAuthServer() as server:
        token_url = server.token_url
    provider = ClientCredentialsTokenProvider(token_url, CLIENT_ID, CLIENT_SECRET, max_retries=1)
    with pytest.raises(TokenEndpointError) as caught:
        provider.fetch_token()
    assert caught.value.transient is True
    assert caught.value.__cause__ is not None
    assert len(forge_clock.sleeps) == 1


def test_a_non_json_200_is_a_token_response_error(forge_oauth_server: OAuthServer) -> None:
    """An HTML page with status 200 is not a token."""
    forge_oauth_server.reply_next(Reply(body="<html>login</html>"))
    with pytest.raises(TokenResponseError, match="not JSON"):
        _cc(forge_oauth_server).fetch_token()


# -- behind a TokenManager and an HttpClient ------------------------------------------------


def test_one_token_serves_many_requests(forge_oauth_server: OAuthServer) -> None:
    """Ten API calls through with_token_auth cost one token request."""
    manager = TokenManager(_cc(forge_oauth_server))
    with token_client(forge_oauth_server, manager) as client:
        bodies = [client.get(f"/items/{i}").json() for i in range(10)]
    assert [b["path"] for b in bodies] == [f"/api/items/{i}" for i in range(10)]
    assert forge_oauth_server.fetch_count == 1
    assert len(forge_oauth_server.token_requests) == 1


def test_threads_racing_for_the_first_token_cause_one_fetch(
    forge_oauth_server: OAuthServer, forge_stress: StressRunner
) -> None:
    """Eight threads start together while the token endpoint is slow: one token request."""
    forge_oauth_server.latency = 0.2  # keeps the first fetch in flight while the others arrive
    manager = TokenManager(_cc(forge_oauth_server))
    with token_client(forge_oauth_server, manager) as client:
        report = forge_stress(
            lambda: client.get("/race").status_code,
            threads=8,
            counter=forge_oauth_server,
            sessions=client,
        )
    report.assert_no_errors()
    assert report.results == [200] * 8
    report.assert_single_fetch(forge_oauth_server)
    report.assert_per_thread_sessions(client)
    assert forge_oauth_server.fetch_count == 1


def test_expiry_on_the_clock_fetches_a_new_token(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """After the clock passes the lifetime the old token is dead on the server too, and the
    next call fetches a new one before sending."""
    manager = TokenManager(_cc(forge_oauth_server))
    with token_client(forge_oauth_server, manager) as client:
        assert client.get("/a").status_code == 200
        old = forge_oauth_server.issued_tokens[0]
        forge_clock.advance(forge_oauth_server.lifetime)
        assert client.get("/b").status_code == 200
    with HttpClient() as plain:
        stale = plain.get(forge_oauth_server.api_url, headers={"Authorization": f"Bearer {old}"})
    assert stale.status_code == 401
    assert forge_oauth_server.grant_counts == {"client_credentials": 2}
    new = forge_oauth_server.issued_tokens[1]
    assert [r.headers["Authorization"] for r in forge_oauth_server.api_requests[:2]] == [
        f"Bearer {old}",
        f"Bearer {new}",
    ]


def test_expired_password_token_is_renewed_with_the_refresh_grant(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """With a refresh token in hand the manager uses the refresh grant, not the password."""
    manager = TokenManager(_pw(forge_oauth_server))
    with token_client(forge_oauth_server, manager) as client:
        client.get("/a")
        forge_clock.advance(forge_oauth_server.lifetime)
        assert client.get("/b").json()["username"] == USERNAME
    assert forge_oauth_server.grant_counts == {"password": 1, "refresh_token": 1}


def test_a_dead_refresh_token_falls_back_to_the_password_grant(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """invalid_grant on refresh makes the manager fetch anew with the password."""
    manager = TokenManager(_pw(forge_oauth_server))
    token = manager.get_token()
    assert token.refresh_token is not None
    assert forge_oauth_server.revoke(token.refresh_token)
    forge_clock.advance(forge_oauth_server.lifetime)
    renewed = manager.get_token()
    assert renewed.access_token != token.access_token
    assert [r.grant_type for r in forge_oauth_server.token_requests] == [
        "password",
        "refresh_token",
        "password",
    ]
    assert forge_oauth_server.token_requests[1].error == "invalid_grant"


def test_a_revoked_token_is_refreshed_once_and_the_request_resent(
    forge_oauth_server: OAuthServer,
) -> None:
    """The server's 401 for a revoked token makes the auth hook refresh once; the same request
    is resent with the new token and succeeds."""
    manager = TokenManager(_cc(forge_oauth_server))
    with token_client(forge_oauth_server, manager) as client:
        assert client.get("/before").status_code == 200
        forge_oauth_server.revoke_all()
        response = client.post("/after", data={"n": "1"})
    assert response.status_code == 200
    assert response.json()["path"] == "/api/after"
    assert forge_oauth_server.fetch_count == 2
    sent = [(r.method, r.path) for r in forge_oauth_server.api_requests]
    assert sent == [("GET", "/api/before"), ("POST", "/api/after"), ("POST", "/api/after")]
    first, second = forge_oauth_server.issued_tokens
    auth = [r.headers["Authorization"] for r in forge_oauth_server.api_requests[1:]]
    assert auth == [f"Bearer {first}", f"Bearer {second}"]

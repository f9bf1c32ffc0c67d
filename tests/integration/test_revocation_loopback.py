"""Revocation (RFC 7009) and introspection (RFC 7662) over loopback: the plugin's OAuthServer,
authlib's Flask server and django-oauth-toolkit (DOT), each with its own endpoints."""

from __future__ import annotations

from typing import Any

from requestforge import (
    AuthorizationServer,
    ClientCredentialsTokenProvider,
    HttpClient,
    HttpClientConfigBuilder,
    PasswordGrantTokenProvider,
    TokenManager,
)
from requestforge_testing import OAuthServer
from requestforge_testing._peers import AuthlibServer, DotServer

CLIENT_ID, CLIENT_SECRET = "forge-client", "forge-secret"
USERNAME, PASSWORD = "forge-user", "forge-password"


def _forge_pw(server: OAuthServer, **options: Any) -> PasswordGrantTokenProvider:
    return PasswordGrantTokenProvider(
        server.token_url,
        CLIENT_ID,
        CLIENT_SECRET,
        USERNAME,
        PASSWORD,
        revocation_url=server.revocation_url,
        introspection_url=server.introspection_url,
        **options,
    )


def _api(url: str, manager: TokenManager) -> HttpClient:
    config = HttpClientConfigBuilder().with_base_url(url).with_token_auth(token_manager=manager)
    return HttpClient(config.build())


def test_manager_revoke_at_the_forge_server(forge_oauth_server: OAuthServer) -> None:
    """revoke() revokes the refresh token, then the access token, both authenticated; the
    token is inactive afterwards and the manager fetches a new one with the password."""
    provider = _forge_pw(forge_oauth_server)
    manager = TokenManager(provider)
    token = manager.get_token()
    assert token.refresh_token is not None
    before = provider.introspect(token)
    manager.revoke()
    after = provider.introspect(token.access_token)
    refresh_after = provider.introspect(token.refresh_token, token_type_hint="refresh_token")
    renewed = manager.get_token()
    records = forge_oauth_server.revocation_requests
    assert [(r.params["token"], r.params.get("token_type_hint")) for r in records] == [
        (token.refresh_token, "refresh_token"),
        (token.access_token, "access_token"),
    ]
    assert {(r.status, r.client_auth_method) for r in records} == {(200, "client_secret_basic")}
    assert (before.active, before.client_id, before.username, before.sub) == (
        True,
        CLIENT_ID,
        USERNAME,
        USERNAME,
    )
    assert before.iss == forge_oauth_server.issuer
    assert before.exp is not None
    assert token.expires_at is not None
    assert abs((before.exp - token.expires_at).total_seconds()) <= 1
    assert (after.active, refresh_after.active) == (False, False)
    assert renewed.access_token != token.access_token
    assert [r.grant_type for r in forge_oauth_server.token_requests] == ["password", "password"]


def test_a_revoked_token_is_refused_by_the_api_and_renewed(forge_oauth_server: OAuthServer) -> None:
    """After provider.revoke_token() behind the manager's back, the API's 401 renews it."""
    provider = ClientCredentialsTokenProvider(
        forge_oauth_server.token_url,
        CLIENT_ID,
        CLIENT_SECRET,
        client_auth="body",
        revocation_url=forge_oauth_server.revocation_url,
    )
    manager = TokenManager(provider)
    with _api(forge_oauth_server.api_url, manager) as client:
        assert client.get("/first").status_code == 200
        revoked = manager.get_token()
        provider.revoke_token(revoked)
        assert client.get("/second").status_code == 200
    assert manager.get_token().access_token != revoked.access_token
    (record,) = forge_oauth_server.revocation_requests
    assert record.client_auth_method == "client_secret_post"


def test_from_issuer_finds_the_forge_servers_endpoints(forge_oauth_server: OAuthServer) -> None:
    """from_issuer() against the plugin's discovery document fills both endpoint URLs."""
    with AuthorizationServer(forge_oauth_server.issuer) as server:
        provider = ClientCredentialsTokenProvider.from_issuer(server, CLIENT_ID, CLIENT_SECRET)
    assert provider.revocation_url == forge_oauth_server.revocation_url
    assert provider.introspection_url == forge_oauth_server.introspection_url
    token = provider.fetch_token()
    assert provider.introspect(token).active


def test_close_with_revoke_at_the_forge_server(forge_oauth_server: OAuthServer) -> None:
    """close(revoke=True) leaves the server with an inactive token."""
    provider = _forge_pw(forge_oauth_server)
    manager = TokenManager(provider)
    token = manager.get_token()
    manager.close(revoke=True)
    checker = _forge_pw(forge_oauth_server)
    assert not checker.introspect(token).active
    assert len(forge_oauth_server.revocation_requests) == 2


def test_revocation_and_introspection_at_authlib(forge_authlib_server: AuthlibServer) -> None:
    """authlib's endpoints: active, then revoke() through the manager, then inactive."""
    provider = PasswordGrantTokenProvider(
        forge_authlib_server.token_url,
        forge_authlib_server.client_id,
        forge_authlib_server.client_secret,
        forge_authlib_server.username,
        forge_authlib_server.password,
        revocation_url=forge_authlib_server.revocation_url,
        introspection_url=forge_authlib_server.introspection_url,
    )
    manager = TokenManager(provider)
    token = manager.get_token()
    before = provider.introspect(token)
    manager.revoke()
    after = provider.introspect(token)
    assert (before.active, before.client_id) == (True, forge_authlib_server.client_id)
    assert after.active is False
    assert manager.get_token().access_token != token.access_token


def test_revocation_and_introspection_at_dot(forge_dot_server: DotServer) -> None:
    """DOT's endpoints: active for the user, revoke() through the manager, then inactive and
    refused by DOT's protected view."""
    provider = PasswordGrantTokenProvider(
        forge_dot_server.token_url,
        forge_dot_server.password_client_id,
        forge_dot_server.password_client_secret,
        forge_dot_server.username,
        forge_dot_server.password,
        revocation_url=forge_dot_server.revocation_url,
        introspection_url=forge_dot_server.introspection_url,
    )
    manager = TokenManager(provider)
    token = manager.get_token()
    before = provider.introspect(token)
    manager.revoke()
    after = provider.introspect(token)
    with HttpClient() as raw:
        refused = raw.get(
            forge_dot_server.api_url + "/after",
            headers={"Authorization": f"Bearer {token.access_token}"},
        )
    assert (before.active, before.client_id, before.username) == (
        True,
        forge_dot_server.password_client_id,
        forge_dot_server.username,
    )
    assert after.active is False
    assert refused.status_code == 403


def test_revocation_with_client_secret_jwt() -> None:
    """A client_secret_jwt client signs a fresh assertion for the revocation request too."""
    secret = "a-client-secret-jwt-key-of-32-bytes-or-more"
    with OAuthServer(clients={"jwt-client": secret}) as server:
        provider = ClientCredentialsTokenProvider(
            server.token_url,
            "jwt-client",
            secret,
            client_auth="client_secret_jwt",
            revocation_url=server.revocation_url,
            introspection_url=server.introspection_url,
        )
        token = provider.fetch_token()
        provider.revoke_token(token)
        assert not provider.introspect(token).active
        (record,) = server.revocation_requests
        (token_request,) = server.token_requests
    assert record.client_auth_method == "client_secret_jwt"
    assert record.client_assertion_claims is not None
    assert token_request.client_assertion_claims is not None
    assert record.client_assertion_claims["jti"] != token_request.client_assertion_claims["jti"]

"""OAuthServer's discovery, revocation and introspection endpoints, and the protected API's
challenges: insufficient_scope, DOT-style bare 403s and invalid_token on other statuses."""

from __future__ import annotations

import threading

import pytest
import requests

from requestforge_testing import FakeClock, OAuthServer

CLIENT = ("forge-client", "forge-secret")
USER = {"grant_type": "password", "username": "forge-user", "password": "forge-password"}


def _tokens(server: OAuthServer, **form: str) -> dict[str, str]:
    response = requests.post(server.token_url, data={**USER, **form}, auth=CLIENT, timeout=5)
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


def _api(server: OAuthServer, token: str | None) -> requests.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return requests.get(server.api_url + "/orders", headers=headers, timeout=5)


# -- discovery ---------------------------------------------------------------------------------


def test_both_discovery_documents_describe_the_server(forge_oauth_server: OAuthServer) -> None:
    """OIDC discovery and RFC 8414 metadata: issuer, endpoints, methods, grants, DPoP algs."""
    server = forge_oauth_server
    oidc = requests.get(server.discovery_url, timeout=5).json()
    rfc8414 = requests.get(server.metadata_url, timeout=5).json()
    assert oidc == rfc8414
    assert server.discovery_url.endswith("/.well-known/openid-configuration")
    assert server.metadata_url.endswith("/.well-known/oauth-authorization-server")
    assert (oidc["issuer"], oidc["token_endpoint"]) == (server.url, server.token_url)
    assert oidc["revocation_endpoint"] == server.revocation_url
    assert oidc["introspection_endpoint"] == server.introspection_url
    assert oidc["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
        "none",
    ]  # tls_client_auth only over TLS
    assert oidc["grant_types_supported"] == [
        "client_credentials",
        "password",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    ]
    assert oidc["dpop_signing_alg_values_supported"] == ["ES256", "RS256"]
    assert len(server.discovery_requests) == 2


def test_a_wrong_issuer_and_other_overrides_until_reset(forge_oauth_server: OAuthServer) -> None:
    """override_discovery replaces, adds and (with None) removes fields; reset undoes it."""
    forge_oauth_server.override_discovery(
        issuer="https://impostor.example", revocation_endpoint=None, jwks_uri="https://x/jwks"
    )
    document = requests.get(forge_oauth_server.discovery_url, timeout=5).json()
    assert document["issuer"] == "https://impostor.example"
    assert "revocation_endpoint" not in document
    assert document["jwks_uri"] == "https://x/jwks"
    forge_oauth_server.reset()
    assert requests.get(forge_oauth_server.discovery_url, timeout=5).json()["issuer"] == (
        forge_oauth_server.url
    )
    assert len(forge_oauth_server.discovery_requests) == 1


def test_the_discovery_gate_holds_a_herd_until_it_opens(forge_oauth_server: OAuthServer) -> None:
    """With a gate, every request is counted on arrival and answered only once it is set."""
    gate = threading.Event()
    forge_oauth_server.discovery_gate = gate
    results: list[int] = []

    def fetch() -> None:
        results.append(requests.get(forge_oauth_server.metadata_url, timeout=10).status_code)

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        forge_oauth_server.wait_for_discovery_requests(4)
        assert results == []  # all four are held
    finally:
        gate.set()
        for thread in threads:
            thread.join()
    assert results == [200] * 4
    with pytest.raises(TimeoutError, match="discovery"):
        forge_oauth_server.wait_for_discovery_requests(5, timeout=0.01)


# -- revocation ---------------------------------------------------------------------------------


def test_revoking_an_access_token_ends_it_at_the_api(forge_oauth_server: OAuthServer) -> None:
    """RFC 7009: 200 with an empty body; the access token is dead, its refresh token lives."""
    tokens = _tokens(forge_oauth_server)
    data = {"token": tokens["access_token"], "token_type_hint": "access_token"}
    response = requests.post(forge_oauth_server.revocation_url, data=data, auth=CLIENT, timeout=5)
    assert (response.status_code, response.content) == (200, b"")
    assert _api(forge_oauth_server, tokens["access_token"]).status_code == 401
    refreshed = requests.post(
        forge_oauth_server.token_url,
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=CLIENT,
        timeout=5,
    )
    assert refreshed.status_code == 200
    (record,) = forge_oauth_server.revocation_requests
    assert (record.grant_type, record.client_auth_method, record.status) == (
        None,
        "client_secret_basic",
        200,
    )
    assert record.params["token_type_hint"] == "access_token"
    assert tokens["access_token"] not in repr(record)


def test_revoking_a_refresh_token_takes_its_access_token_too(
    forge_oauth_server: OAuthServer,
) -> None:
    """A refresh token revoked (with a wrong hint, which is only a hint) kills both."""
    tokens = _tokens(forge_oauth_server)
    data = {"token": tokens["refresh_token"], "token_type_hint": "access_token"}
    form = {"client_id": "forge-client", "client_secret": "forge-secret", **data}
    assert requests.post(forge_oauth_server.revocation_url, data=form, timeout=5).status_code == 200
    assert _api(forge_oauth_server, tokens["access_token"]).status_code == 401
    again = requests.post(
        forge_oauth_server.token_url,
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=CLIENT,
        timeout=5,
    )
    assert again.json()["error"] == "invalid_grant"


def test_revocation_answers_200_for_unknown_and_foreign_tokens(
    forge_oauth_server: OAuthServer,
) -> None:
    """Unknown tokens get 200 (RFC 7009 2.2); another client's token is left alone."""
    tokens = _tokens(forge_oauth_server)
    forge_oauth_server.add_client("other", "other-secret")
    url = forge_oauth_server.revocation_url
    unknown = requests.post(url, data={"token": "never-issued"}, auth=CLIENT, timeout=5)
    foreign = requests.post(
        url, data={"token": tokens["access_token"]}, auth=("other", "other-secret"), timeout=5
    )
    assert (unknown.status_code, foreign.status_code) == (200, 200)
    assert _api(forge_oauth_server, tokens["access_token"]).status_code == 200


def test_revocation_and_introspection_need_client_authentication(
    forge_oauth_server: OAuthServer,
) -> None:
    """No credentials or wrong ones are invalid_client; no token is invalid_request; GET 405."""
    for url in (forge_oauth_server.revocation_url, forge_oauth_server.introspection_url):
        anonymous = requests.post(url, data={"token": "x"}, timeout=5)
        wrong = requests.post(url, data={"token": "x"}, auth=("forge-client", "no"), timeout=5)
        empty = requests.post(url, data={}, auth=CLIENT, timeout=5)
        got = requests.get(url, timeout=5)
        assert (anonymous.status_code, anonymous.json()["error"]) == (401, "invalid_client")
        assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
        assert (empty.status_code, empty.json()["error"]) == (400, "invalid_request")
        assert got.status_code == 405
    assert len(forge_oauth_server.revocation_requests) == 4
    assert len(forge_oauth_server.introspection_requests) == 4


# -- introspection ------------------------------------------------------------------------------


def test_introspection_of_live_and_dead_tokens(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """RFC 7662: active with scope, client_id, exp and token_type; inactive once expired."""
    tokens = _tokens(forge_oauth_server, scope="orders")
    url = forge_oauth_server.introspection_url

    def introspect(token: str) -> dict[str, object]:
        response = requests.post(url, data={"token": token}, auth=CLIENT, timeout=5)
        assert response.status_code == 200
        body: dict[str, object] = response.json()
        return body

    live = introspect(tokens["access_token"])
    now = int(forge_clock.now().timestamp())
    assert live == {
        "active": True,
        "client_id": "forge-client",
        "iss": forge_oauth_server.issuer,
        "scope": "orders",
        "username": "forge-user",
        "sub": "forge-user",
        "token_type": "Bearer",
        "exp": now + 3600,
        "iat": now,
    }
    refresh = introspect(tokens["refresh_token"])
    assert (refresh["active"], "token_type" in refresh) == (True, False)
    assert introspect("never-issued") == {"active": False}
    forge_clock.advance(3600)
    assert introspect(tokens["access_token"]) == {"active": False}


# -- the API's challenges ----------------------------------------------------------------------


def test_insufficient_scope_is_a_403_challenge(forge_oauth_server: OAuthServer) -> None:
    """RFC 6750 3.1: a valid token without the required scope gets 403 insufficient_scope."""
    forge_oauth_server.required_scope = "orders:write"
    narrow = _tokens(forge_oauth_server, scope="orders:read")["access_token"]
    wide = _tokens(forge_oauth_server, scope="orders:read orders:write")["access_token"]
    refused = _api(forge_oauth_server, narrow)
    assert refused.status_code == 403
    assert refused.headers["WWW-Authenticate"] == (
        'Bearer error="insufficient_scope", scope="orders:write"'
    )
    assert _api(forge_oauth_server, wide).status_code == 200
    with pytest.raises(ValueError, match="required_scope"):
        forge_oauth_server.required_scope = " "


def test_dot_style_bare_403_for_an_expired_token(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """Like DOT's default views: 403 with no WWW-Authenticate for an expired token."""
    forge_oauth_server.invalid_token_status = 403
    forge_oauth_server.invalid_token_challenge = False
    token = _tokens(forge_oauth_server)["access_token"]
    assert _api(forge_oauth_server, token).status_code == 200
    forge_clock.advance(3600)
    expired = _api(forge_oauth_server, token)
    assert expired.status_code == 403
    assert "WWW-Authenticate" not in expired.headers
    assert expired.json()["error_description"] == "the access token expired"


def test_invalid_token_challenge_on_another_status_and_reset(
    forge_oauth_server: OAuthServer,
) -> None:
    """invalid_token_status=400 keeps the challenge on a 400; reset restores 401."""
    forge_oauth_server.invalid_token_status = 400
    refused = _api(forge_oauth_server, "made-up")
    assert refused.status_code == 400
    assert refused.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert _api(forge_oauth_server, None).headers["WWW-Authenticate"] == "Bearer"
    forge_oauth_server.reset()
    assert _api(forge_oauth_server, "made-up").status_code == 401
    with pytest.raises(ValueError, match="invalid_token_status"):
        forge_oauth_server.invalid_token_status = 200
    with pytest.raises(TypeError, match="invalid_token_challenge"):
        forge_oauth_server.invalid_token_challenge = 0  # type: ignore[assignment]

"""The library against django-oauth-toolkit (DOT) in a minimal Django project, in a child process.

Client credentials (Basic and form), password + refresh with rotation under a 32-thread
herd (one token request per expiry), revocation and introspection through raw posts, and
DOT's default protected view, whose bare 403 for an expired token the library treats as a
reason to renew only with ``refresh_on_statuses={403}``. The Basic-encoding table is
measured at the end.
"""

from __future__ import annotations

from typing import Any

import pytest

from requestforge import (
    ClientCredentialsTokenProvider,
    HttpClient,
    HttpClientConfigBuilder,
    PasswordGrantTokenProvider,
    TokenEndpointError,
    TokenManager,
)
from requestforge_testing import FakeClock, StressRunner
from requestforge_testing._peers import DotServer
from requestforge_testing._peers._basic import BASIC_ENCODINGS, SPECIAL_SECRETS, basic_outcome
from tests.oauth_flows import ROUNDS, THREADS, expiry_herd


def _cc(server: DotServer, **options: Any) -> ClientCredentialsTokenProvider:
    return ClientCredentialsTokenProvider(
        server.token_url, server.client_id, server.client_secret, **options
    )


def _pw(server: DotServer) -> PasswordGrantTokenProvider:
    return PasswordGrantTokenProvider(
        server.token_url,
        server.password_client_id,
        server.password_client_secret,
        server.username,
        server.password,
    )


def _api(server: DotServer, manager: TokenManager) -> HttpClient:
    config = (
        HttpClientConfigBuilder()
        .with_base_url(server.api_url)
        .with_token_auth(token_manager=manager)
        .build()
    )
    return HttpClient(config)


@pytest.mark.parametrize("client_auth", ["basic", "body"])
def test_client_credentials_works_on_the_api(forge_dot_server: DotServer, client_auth: str) -> None:
    """client_secret_basic and client_secret_post both get a token DOT's view accepts."""
    manager = TokenManager(_cc(forge_dot_server, client_auth=client_auth))
    with _api(forge_dot_server, manager) as client:
        answer = client.get("/whoami").json()
    assert answer == {"ok": True, "path": "/api/whoami", "username": None}
    assert manager.get_token().expires_at is not None
    assert forge_dot_server.token_request_counts == {"client_credentials": 1}


def test_a_rotated_refresh_token_works_once(forge_dot_server: DotServer) -> None:
    """ROTATE_REFRESH_TOKEN with no grace period: the old refresh token is invalid_grant."""
    provider = _pw(forge_dot_server)
    first = provider.fetch_token()
    second = provider.refresh_token(first)
    assert second.refresh_token not in (None, first.refresh_token)
    with pytest.raises(TokenEndpointError) as caught:
        provider.refresh_token(first)
    assert (caught.value.error, caught.value.transient) == ("invalid_grant", False)
    assert provider.refresh_token(second).access_token != second.access_token
    assert forge_dot_server.grant_counts == {"password": 1, "refresh_token": 2}


def test_password_and_refresh_herd_fetches_once_per_expiry(
    forge_dot_server: DotServer, forge_clock: FakeClock, forge_stress: StressRunner
) -> None:
    """32 threads per round: one password request, then exactly one refresh per (local)
    expiry, and never an invalid_grant from a refresh token already rotated."""
    forge_dot_server.set_latency(0.05)  # a slow endpoint: a wide window for a stampede
    manager = TokenManager(_pw(forge_dot_server))

    report = expiry_herd(
        forge_stress,
        lambda: manager.get_token().access_token,
        clock=forge_clock,
        lifetime=forge_dot_server.lifetime,
        counter=lambda: sum(forge_dot_server.token_request_counts.values()),
    )
    report.assert_no_errors()
    report.assert_single_fetch(report.counter)
    assert forge_dot_server.token_request_counts == {"password": 1, "refresh_token": ROUNDS - 1}
    assert forge_dot_server.grant_counts == forge_dot_server.token_request_counts
    tokens = [{outcome.result for outcome in round_.outcomes} for round_ in report.rounds]
    assert all(len(round_tokens) == 1 for round_tokens in tokens)  # one token per round
    assert len(set.union(*tokens)) == ROUNDS


def test_client_credentials_herd_on_the_api_fetches_once_per_expiry(
    forge_dot_server: DotServer, forge_clock: FakeClock, forge_stress: StressRunner
) -> None:
    """32 threads call DOT's protected view each round: one token request per expiry."""
    forge_dot_server.set_latency(0.05)
    manager = TokenManager(_cc(forge_dot_server))
    with _api(forge_dot_server, manager) as client:
        report = expiry_herd(
            forge_stress,
            lambda: client.get("/data").status_code,
            clock=forge_clock,
            lifetime=forge_dot_server.lifetime,
            sessions=client,
        )
    report.assert_no_errors()
    assert set(report.results) == {200}
    assert forge_dot_server.token_request_counts == {"client_credentials": ROUNDS}
    assert forge_dot_server.api_statuses == [200] * THREADS * ROUNDS


def test_introspection_then_revocation_with_raw_posts(forge_dot_server: DotServer) -> None:
    """DOT's RFC 7662 endpoint says active for the user; revoked (RFC 7009), inactive, and
    the view refuses the token."""
    manager = TokenManager(_pw(forge_dot_server))
    token = manager.get_token()
    credentials = (forge_dot_server.password_client_id, forge_dot_server.password_client_secret)
    with HttpClient() as raw, _api(forge_dot_server, manager) as client:
        active = raw.post(
            forge_dot_server.introspection_url, data={"token": token.access_token}, auth=credentials
        ).json()
        revoked = raw.post(
            forge_dot_server.revocation_url,
            data={"token": token.access_token, "token_type_hint": "access_token"},
            auth=credentials,
        )
        after = raw.post(
            forge_dot_server.introspection_url, data={"token": token.access_token}, auth=credentials
        ).json()
        refused = client.get("/after-revocation")
    assert (active["active"], active["client_id"], active["username"]) == (
        True,
        forge_dot_server.password_client_id,
        forge_dot_server.username,
    )
    assert revoked.status_code == 200
    assert after == {"active": False}
    assert refused.status_code == 403  # a bare 403: no WWW-Authenticate challenge
    assert "WWW-Authenticate" not in refused.headers


def test_an_expired_token_gets_dot_403_and_is_not_renewed_by_default(
    forge_dot_server: DotServer, forge_clock: FakeClock
) -> None:
    """DOT answers an expired token with a bare 403: by default the client returns it and
    re-sends the token until it expires locally, then renews it (refresh_on_statuses={403}
    renews it at once: test_refresh_triggers.py)."""
    manager = TokenManager(_cc(forge_dot_server))
    with _api(forge_dot_server, manager) as client:
        assert client.get("/before").status_code == 200
        assert forge_dot_server.expire_tokens() == 1
        refused = [client.get("/expired").status_code for _ in range(2)]
        forge_clock.advance(forge_dot_server.lifetime + 1)
        renewed = client.get("/renewed").status_code
    assert refused == [403, 403]
    assert renewed == 200
    assert forge_dot_server.api_statuses == [200, 403, 403, 200]
    assert forge_dot_server.token_request_counts == {"client_credentials": 2}


# -- Basic encoding interop --------------------------------------------------------------

#: What DOT answered, per secret, for each of BASIC_ENCODINGS (form, requests, quote).
DOT_BASIC: dict[str, tuple[str, str, str]] = {
    "space": ("200", "200", "200"),
    "plus": ("200", "401 invalid_client", "200"),
    "percent": ("200", "401 invalid_client", "200"),
    "percent-hex": ("200", "401 invalid_client", "200"),
    "colon": ("200", "200", "200"),
    "latin-1": ("200", "401 invalid_client", "200"),
    "non-latin-1": ("200", "UnicodeEncodeError", "200"),
}


@pytest.mark.parametrize("name", sorted(SPECIAL_SECRETS))
def test_basic_encodings_against_dot(forge_dot_server: DotServer, name: str) -> None:
    """DOT decodes Basic credentials with unquote_plus: form- and percent-encoding work for
    every secret, plain requests breaks +, % and non-ASCII."""
    client_id = f"basic-{name}"
    forge_dot_server.add_client(client_id, SPECIAL_SECRETS[name])
    outcomes = tuple(
        basic_outcome(forge_dot_server.token_url, client_id, SPECIAL_SECRETS[name], how)
        for how in BASIC_ENCODINGS
    )
    assert outcomes == DOT_BASIC[name]

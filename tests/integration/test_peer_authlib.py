"""The library against authlib's Flask authorization server, a peer we did not write.

The flows we support today pass there as they pass against our own OAuthServer: client
credentials (Basic and form), password + refresh with rotation under a 32-thread herd (one
token request per expiry), renewal after a revoked token's 401. Revocation, introspection,
JWT client authentication and the JWT bearer grant go through raw requests (or a
hand-written provider) until the library has them. The Basic-encoding table is measured at
the end.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, Key, OctKey, RSAKey

from requestforge import (
    ClientCredentialsTokenProvider,
    HttpClient,
    HttpClientConfigBuilder,
    PasswordGrantTokenProvider,
    TokenData,
    TokenEndpointError,
    TokenManager,
    TokenProviderInterface,
)
from requestforge_testing import FakeClock, StressRunner
from requestforge_testing._peers import AuthlibServer
from requestforge_testing._peers._basic import BASIC_ENCODINGS, SPECIAL_SECRETS, basic_outcome
from tests.oauth_flows import ROUNDS, THREADS, expiry_herd

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _cc(server: AuthlibServer, **options: Any) -> ClientCredentialsTokenProvider:
    return ClientCredentialsTokenProvider(
        server.token_url, server.client_id, server.client_secret, **options
    )


def _pw(server: AuthlibServer) -> PasswordGrantTokenProvider:
    return PasswordGrantTokenProvider(
        server.token_url, server.client_id, server.client_secret, server.username, server.password
    )


def _api(server: AuthlibServer, manager: TokenManager) -> HttpClient:
    config = (
        HttpClientConfigBuilder()
        .with_base_url(server.api_url)
        .with_token_auth(token_manager=manager)
        .build()
    )
    return HttpClient(config)


def _assertion(server: AuthlibServer, key: Key, alg: str, *, subject: str | None = None) -> str:
    """A fresh RFC 7523 JWT: a client assertion (``sub`` = the client) or a bearer grant."""
    now = int(datetime.now(timezone.utc).timestamp())
    claims = {
        "iss": server.client_id,
        "sub": subject or server.client_id,
        "aud": server.token_url,
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode({"alg": alg}, claims, key, algorithms=[alg])


# -- the grants the library has -----------------------------------------------------------


@pytest.mark.parametrize("client_auth", ["basic", "body"])
def test_client_credentials_works_on_the_api(
    forge_authlib_server: AuthlibServer, client_auth: str
) -> None:
    """client_secret_basic and client_secret_post both get a token authlib's API accepts."""
    manager = TokenManager(_cc(forge_authlib_server, client_auth=client_auth))
    with _api(forge_authlib_server, manager) as client:
        answer = client.get("/whoami").json()
    assert answer == {
        "ok": True,
        "path": "/api/whoami",
        "client_id": forge_authlib_server.client_id,
        "username": None,
        "scope": "",
    }
    assert forge_authlib_server.token_request_counts == {"client_credentials": 1}


def test_a_rotated_refresh_token_works_once(forge_authlib_server: AuthlibServer) -> None:
    """The refresh grant rotates: the new refresh token works, the old one is invalid_grant."""
    provider = _pw(forge_authlib_server)
    first = provider.fetch_token()
    second = provider.refresh_token(first)
    assert second.refresh_token not in (None, first.refresh_token)
    with pytest.raises(TokenEndpointError) as caught:
        provider.refresh_token(first)
    assert (caught.value.error, caught.value.transient) == ("invalid_grant", False)
    assert provider.refresh_token(second).access_token != second.access_token
    assert forge_authlib_server.grant_counts == {"password": 1, "refresh_token": 2}


def test_password_and_refresh_herd_fetches_once_per_expiry(
    forge_authlib_server: AuthlibServer, forge_clock: FakeClock, forge_stress: StressRunner
) -> None:
    """32 threads per round: one password request, then exactly one refresh per expiry, and
    never an invalid_grant from a refresh token another thread already rotated."""
    forge_authlib_server.latency = 0.05  # a slow endpoint: a wide window for a stampede
    manager = TokenManager(_pw(forge_authlib_server))

    report = expiry_herd(
        forge_stress,
        lambda: manager.get_token().access_token,
        clock=forge_clock,
        lifetime=forge_authlib_server.lifetime,
        counter=lambda: sum(forge_authlib_server.token_request_counts.values()),
    )
    report.assert_no_errors()
    report.assert_single_fetch(report.counter)
    assert forge_authlib_server.token_request_counts == {
        "password": 1,
        "refresh_token": ROUNDS - 1,
    }
    assert forge_authlib_server.grant_counts == forge_authlib_server.token_request_counts
    tokens = [{outcome.result for outcome in round_.outcomes} for round_ in report.rounds]
    assert all(len(round_tokens) == 1 for round_tokens in tokens)  # one token per round
    assert len(set.union(*tokens)) == ROUNDS
    (last,) = tokens[-1]
    assert last is not None
    assert forge_authlib_server.token_active(last)


def test_client_credentials_herd_on_the_api_fetches_once_per_expiry(
    forge_authlib_server: AuthlibServer, forge_clock: FakeClock, forge_stress: StressRunner
) -> None:
    """32 threads call the protected API each round: one token request per expiry, no 401."""
    forge_authlib_server.latency = 0.05
    manager = TokenManager(_cc(forge_authlib_server))
    with _api(forge_authlib_server, manager) as client:
        report = expiry_herd(
            forge_stress,
            lambda: client.get("/data").status_code,
            clock=forge_clock,
            lifetime=forge_authlib_server.lifetime,
            sessions=client,
        )
    report.assert_no_errors()
    assert set(report.results) == {200}
    assert forge_authlib_server.token_request_counts == {"client_credentials": ROUNDS}
    assert forge_authlib_server.api_statuses == [200] * THREADS * ROUNDS
    report.assert_per_thread_sessions(client)


def test_a_revoked_token_is_renewed_on_the_401(forge_authlib_server: AuthlibServer) -> None:
    """Revoked through RFC 7009, the token gets authlib's 401; the client renews it once."""
    manager = TokenManager(_cc(forge_authlib_server))
    with _api(forge_authlib_server, manager) as client, HttpClient() as raw:
        assert client.get("/first").status_code == 200
        revoked = manager.get_token().access_token
        answer = raw.post(
            forge_authlib_server.revocation_url,
            data={"token": revoked, "token_type_hint": "access_token"},
            auth=(forge_authlib_server.client_id, forge_authlib_server.client_secret),
        )
        assert answer.status_code == 200
        assert client.get("/second").status_code == 200
    assert manager.get_token().access_token != revoked
    assert forge_authlib_server.api_statuses == [200, 401, 200]
    assert forge_authlib_server.token_request_counts == {"client_credentials": 2}


# -- what the library does not have yet: raw requests ------------------------------------


def test_introspection_then_revocation_with_raw_posts(forge_authlib_server: AuthlibServer) -> None:
    """RFC 7662 says active with the client and user; after RFC 7009 revocation, inactive."""
    token = _pw(forge_authlib_server).fetch_token()
    credentials = (forge_authlib_server.client_id, forge_authlib_server.client_secret)
    with HttpClient() as raw:
        active = raw.post(
            forge_authlib_server.introspection_url,
            data={"token": token.access_token},
            auth=credentials,
        ).json()
        revoked = raw.post(
            forge_authlib_server.revocation_url,
            data={"token": token.refresh_token or "", "token_type_hint": "refresh_token"},
            auth=credentials,
        )
        after = raw.post(
            forge_authlib_server.introspection_url,
            data={"token": token.access_token},
            auth=credentials,
        ).json()
    assert (active["active"], active["client_id"], active["username"]) == (
        True,
        forge_authlib_server.client_id,
        forge_authlib_server.username,
    )
    assert revoked.status_code == 200
    assert after == {"active": False}
    assert not forge_authlib_server.token_active(token.refresh_token or "")


@pytest.mark.parametrize(
    ("method", "alg"),
    [("client_secret_jwt", "HS256"), ("private_key_jwt", "RS256"), ("private_key_jwt", "PS256")],
)
def test_a_static_client_assertion_works_once(
    forge_authlib_server: AuthlibServer, method: str, alg: str
) -> None:
    """A signed client assertion in extra_params gets a token; sent again, its jti is refused
    (why a provider must sign a fresh one per request)."""
    key: Key = (
        OctKey.import_key(forge_authlib_server.client_secret)
        if method == "client_secret_jwt"
        else forge_authlib_server.private_key
    )
    provider = ClientCredentialsTokenProvider(
        forge_authlib_server.token_url,
        forge_authlib_server.client_id,
        None,
        extra_params={
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": _assertion(forge_authlib_server, key, alg),
        },
    )
    token = provider.fetch_token()
    with pytest.raises(TokenEndpointError) as caught:
        provider.fetch_token()
    assert caught.value.error == "invalid_client"
    assert "JWT ID is used before" in str(caught.value)
    assert forge_authlib_server.grant_counts == {"client_credentials": 1}
    assert forge_authlib_server.token_active(token.access_token)


def test_an_assertion_signed_with_another_key_is_refused(
    forge_authlib_server: AuthlibServer,
) -> None:
    """private_key_jwt signed by a key the server does not know is invalid_client."""
    stranger = RSAKey.generate_key(2048)
    with HttpClient() as raw:
        answer = raw.post(
            forge_authlib_server.token_url,
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": _assertion(forge_authlib_server, stranger, "RS256"),
            },
        )
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_client")


def test_an_ec_client_uses_private_key_jwt(forge_authlib_server: AuthlibServer) -> None:
    """A client registered with an ES256 public key authenticates with its assertion."""
    key = ECKey.generate_key("P-256")
    forge_authlib_server.add_client("ec-client", None, public_jwk=key.as_dict(private=False))
    now = int(datetime.now(timezone.utc).timestamp())
    claims: dict[str, Any] = {"iss": "ec-client", "sub": "ec-client"}
    claims["aud"] = forge_authlib_server.token_url
    claims |= {"exp": now + 60, "jti": uuid.uuid4().hex}
    with HttpClient() as raw:
        answer = raw.post(
            forge_authlib_server.token_url,
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": jwt.encode({"alg": "ES256"}, claims, key),
            },
        )
    assert answer.status_code == 200, answer.text
    assert forge_authlib_server.grant_counts == {"client_credentials": 1}


class JwtBearerProvider(TokenProviderInterface):
    """A hand-written RFC 7523 section 2.1 provider: a fresh signed assertion per fetch."""

    def __init__(self, server: AuthlibServer) -> None:
        self._server = server
        self._client = HttpClient()

    def fetch_token(self) -> TokenData:
        assertion = _assertion(
            self._server, self._server.private_key, "RS256", subject=self._server.username
        )
        response = self._client.post(
            self._server.token_url, data={"grant_type": JWT_BEARER, "assertion": assertion}
        )
        response.raise_for_status()
        return TokenData.from_response(response.json())


def test_jwt_bearer_herd_fetches_once_per_expiry(
    forge_authlib_server: AuthlibServer, forge_clock: FakeClock, forge_stress: StressRunner
) -> None:
    """The JWT bearer grant behind a TokenManager: 32 threads, one grant request per expiry,
    and the token works on authlib's API for the assertion's subject."""
    forge_authlib_server.latency = 0.05
    manager = TokenManager(JwtBearerProvider(forge_authlib_server))

    report = expiry_herd(
        forge_stress,
        lambda: manager.get_token().access_token,
        clock=forge_clock,
        lifetime=forge_authlib_server.lifetime,
    )
    report.assert_no_errors()
    assert forge_authlib_server.token_request_counts == {JWT_BEARER: ROUNDS}
    with _api(forge_authlib_server, manager) as client:
        assert client.get("/me").json()["username"] == forge_authlib_server.username


def test_a_bearer_assertion_with_another_key_is_invalid_grant(
    forge_authlib_server: AuthlibServer,
) -> None:
    """The JWT bearer grant refuses an assertion the client's registered key did not sign."""
    stranger = RSAKey.generate_key(2048)
    assertion = _assertion(
        forge_authlib_server, stranger, "RS256", subject=forge_authlib_server.username
    )
    with HttpClient() as raw:
        answer = raw.post(
            forge_authlib_server.token_url, data={"grant_type": JWT_BEARER, "assertion": assertion}
        )
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_grant")


# -- Basic encoding interop --------------------------------------------------------------

#: What authlib answered, per secret, for each of BASIC_ENCODINGS (form, requests, quote).
AUTHLIB_BASIC: dict[str, tuple[str, str, str]] = {
    "space": ("401 invalid_client", "200", "200"),
    "plus": ("200", "200", "200"),
    "percent": ("200", "401 invalid_client", "200"),
    "percent-hex": ("200", "401 invalid_client", "200"),
    "colon": ("200", "200", "200"),
    "latin-1": ("200", "500", "200"),
    "non-latin-1": ("200", "UnicodeEncodeError", "200"),
}


@pytest.mark.parametrize("name", sorted(SPECIAL_SECRETS))
def test_basic_encodings_against_authlib(forge_authlib_server: AuthlibServer, name: str) -> None:
    """authlib unquotes Basic credentials (not unquote_plus): form-encoding breaks a space,
    plain requests breaks % and non-ASCII, percent-encoding works for every secret."""
    client_id = f"basic-{name}"
    forge_authlib_server.add_client(client_id, SPECIAL_SECRETS[name])
    outcomes = tuple(
        basic_outcome(forge_authlib_server.token_url, client_id, SPECIAL_SECRETS[name], how)
        for how in BASIC_ENCODINGS
    )
    assert outcomes == AUTHLIB_BASIC[name]

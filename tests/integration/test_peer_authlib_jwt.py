"""The library's JWT flows against authlib's real authorization server, a peer we did not write.

client_secret_jwt and private_key_jwt (RS256, PS256, ES256) client authentication through
ClientCredentialsTokenProvider, and the JWT bearer grant through JwtBearerTokenProvider,
each under a 32-thread herd behind a TokenManager: exactly one token request per expiry,
counted by authlib's side. authlib refuses a JWT id it has seen; our providers sign a fresh
assertion per request, so no request is refused. Then client_secret_basic with the default
encoding and awkward secrets, against authlib and DOT. The same herds against our
OAuthServer, with token exchange too (neither authlib nor DOT serves RFC 8693), are in
test_grant_herds.py.

authlib checks an assertion's ``iat`` and ``exp`` on the real clock (leeway 60 s), while
token expiry runs on a FakeClock started at the real now: tokens live ``LIFETIME`` seconds,
so the fake clock runs at most ``(ROUNDS - 1) * (LIFETIME + 1)`` seconds ahead of real time,
under that leeway however slow the machine; assertions live an hour, so a slow run cannot
outlast them either.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import pytest
from joserfc.jwk import ECKey

from requestforge import (
    ClientAuthMethod,
    ClientCredentialsTokenProvider,
    ClientSecretJwt,
    HttpClient,
    HttpClientConfigBuilder,
    JwtBearerTokenProvider,
    PrivateKeyJwt,
    TokenManager,
)
from requestforge_testing import FakeClock, StressRunner
from requestforge_testing._peers import AuthlibServer, DotServer
from requestforge_testing._peers._basic import SPECIAL_SECRETS
from tests.oauth_flows import ROUNDS, expiry_herd

#: Seconds a token lives here; see the module docstring for why it is short.
LIFETIME = 10
#: Seconds an assertion lives: longer than any run.
ASSERTION_LIFETIME = 3600.0
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: A client_secret_jwt secret: RFC 7518 wants 32 bytes or more for HS256.
HS_CLIENT, HS_SECRET = "hs-client", "a-client-secret-of-forty-two-characters!!"
EC_CLIENT = "ec-client"


def _real_now_clock() -> FakeClock:
    return FakeClock(datetime.now(timezone.utc))


def _api(server: AuthlibServer, manager: TokenManager) -> HttpClient:
    config = (
        HttpClientConfigBuilder()
        .with_base_url(server.api_url)
        .with_token_auth(token_manager=manager)
        .build()
    )
    return HttpClient(config)


def _client_credentials(server: AuthlibServer, flow: str) -> ClientCredentialsTokenProvider:
    """A client_credentials provider authenticating as ``flow`` says, its client registered."""
    method: ClientAuthMethod
    client_id = server.client_id
    if flow == "client_secret_jwt":
        server.add_client(HS_CLIENT, HS_SECRET)
        client_id, method = HS_CLIENT, ClientSecretJwt(HS_SECRET, lifetime=ASSERTION_LIFETIME)
    elif flow == "ES256":
        key = ECKey.generate_key("P-256")
        server.add_client(EC_CLIENT, None, public_jwk=key.as_dict(private=False))
        client_id, method = EC_CLIENT, PrivateKeyJwt(key, alg="ES256", lifetime=ASSERTION_LIFETIME)
    else:
        method = PrivateKeyJwt(server.private_key_pem, alg=flow, lifetime=ASSERTION_LIFETIME)
    return ClientCredentialsTokenProvider(server.token_url, client_id, None, client_auth=method)


def _jwt_bearer(server: AuthlibServer) -> JwtBearerTokenProvider:
    return JwtBearerTokenProvider(
        server.token_url,
        server.private_key_pem,
        issuer=server.client_id,
        subject=server.username,
        lifetime=ASSERTION_LIFETIME,
    )


Provider = ClientCredentialsTokenProvider | JwtBearerTokenProvider
FLOWS: dict[str, Callable[[AuthlibServer], Provider]] = {
    "client_secret_jwt": lambda server: _client_credentials(server, "client_secret_jwt"),
    "private_key_jwt-RS256": lambda server: _client_credentials(server, "RS256"),
    "private_key_jwt-PS256": lambda server: _client_credentials(server, "PS256"),
    "private_key_jwt-ES256": lambda server: _client_credentials(server, "ES256"),
    "jwt_bearer": _jwt_bearer,
}
GRANT = {name: JWT_BEARER if name == "jwt_bearer" else "client_credentials" for name in FLOWS}


@pytest.mark.parametrize("flow", sorted(FLOWS))
def test_jwt_flow_herd_fetches_once_per_expiry(
    forge_authlib_server: AuthlibServer, forge_stress: StressRunner, flow: str
) -> None:
    """32 threads per round through one TokenManager: one token request per expiry, each
    with a fresh assertion authlib accepts, and the last token works on authlib's API."""
    forge_authlib_server.lifetime = LIFETIME
    forge_authlib_server.latency = 0.05  # a slow endpoint: a wide window for a stampede
    with _real_now_clock().installed() as clock:
        manager = TokenManager(FLOWS[flow](forge_authlib_server), leeway=0)

        report = expiry_herd(
            forge_stress,
            lambda: manager.get_token().access_token,
            clock=clock,
            lifetime=LIFETIME,
            counter=lambda: sum(forge_authlib_server.token_request_counts.values()),
        )
        report.assert_no_errors()
        report.assert_single_fetch(report.counter)
        assert forge_authlib_server.token_request_counts == {GRANT[flow]: ROUNDS}
        assert forge_authlib_server.grant_counts == {GRANT[flow]: ROUNDS}  # none refused
        tokens = [{outcome.result for outcome in round_.outcomes} for round_ in report.rounds]
        assert [len(round_tokens) for round_tokens in tokens] == [1] * ROUNDS
        assert len(set.union(*tokens)) == ROUNDS
        with _api(forge_authlib_server, manager) as client:
            assert client.get("/me").status_code == 200
    assert forge_authlib_server.api_statuses == [200]


@pytest.mark.parametrize("flow", sorted(FLOWS))
def test_each_request_signs_a_fresh_jti(forge_authlib_server: AuthlibServer, flow: str) -> None:
    """authlib refuses a JWT id it has seen; three fetches in a row all get a token, so
    each carried a new assertion."""
    with _real_now_clock().installed():
        provider = FLOWS[flow](forge_authlib_server)
        tokens = {provider.fetch_token().access_token for _ in range(3)}
        provider.close()
    assert len(tokens) == 3
    assert forge_authlib_server.grant_counts == {GRANT[flow]: 3}
    assert forge_authlib_server.token_request_counts == {GRANT[flow]: 3}


# -- client_secret_basic with the default encoding -------------------------------------------


@pytest.mark.parametrize("name", sorted(SPECIAL_SECRETS))
def test_default_basic_encoding_works_on_authlib(
    forge_authlib_server: AuthlibServer, name: str
) -> None:
    """The default client_secret_basic (percent-encoding) gets authlib's token for a secret
    holding a space, +, %, : or non-ASCII."""
    client_id = f"basic {name}:id"
    forge_authlib_server.add_client(client_id, SPECIAL_SECRETS[name])
    provider = ClientCredentialsTokenProvider(
        forge_authlib_server.token_url, client_id, SPECIAL_SECRETS[name]
    )
    token = provider.fetch_token()
    provider.close()
    assert forge_authlib_server.token_active(token.access_token)
    assert forge_authlib_server.grant_counts == {"client_credentials": 1}


@pytest.mark.parametrize("name", sorted(SPECIAL_SECRETS))
def test_default_basic_encoding_works_on_dot(forge_dot_server: DotServer, name: str) -> None:
    """The default client_secret_basic (percent-encoding) gets DOT's token for a secret
    holding a space, +, %, : or non-ASCII."""
    client_id = f"basic-{name}"
    forge_dot_server.add_client(client_id, SPECIAL_SECRETS[name])
    provider = ClientCredentialsTokenProvider(
        forge_dot_server.token_url, client_id, SPECIAL_SECRETS[name]
    )
    provider.fetch_token()
    provider.close()
    assert forge_dot_server.token_request_counts == {"client_credentials": 1}

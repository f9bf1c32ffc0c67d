"""Contract tests of the JWT flows: private_key_jwt client authentication and token exchange.

Recorded once against the plugin's OAuthServer (see test_auth_contracts.py for how), replayed
under CI. A signed assertion differs on every run (a fresh ``jti``, ``iat`` and signature,
and here a fresh key), so replay must not compare its value: ``client_assertion`` is one of
the credential fields the recorder scrubs by default, and a scrubbed field is compared as
a placeholder next to the assertion's structure (its alg, kid, iss, sub, aud and claim
names), which is compared. The exchanged ``subject_token`` is an issued token, scrubbed
likewise. The last tests check the protocol fields (assertion type, token types) kept in
the committed files for review; test_committed_cassettes.py checks that none of
``SECRETS`` is there.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from joserfc.jwk import RSAKey
from vcr.serializers import yamlserializer

from requestforge import (
    ClientCredentialsTokenProvider,
    PrivateKeyJwt,
    TokenExchangeTokenProvider,
    TokenManager,
)
from requestforge_testing import CassetteMismatchError, FakeClock, ForgeCassette, OAuthServer
from tests.api_clients import api_client

CLIENT_ID, CLIENT_SECRET = "forge-client", "forge-secret"
JWT_CLIENT = "jwt-client"
LIFETIME = 3600
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


def check_oauth_server(
    cassette: ForgeCassette, server: OAuthServer, grants: dict[str, int], api_calls: int
) -> None:
    """Recording: the server saw exactly ``grants`` and ``api_calls``. Replay: nothing."""
    if cassette.replaying:
        assert server.token_requests == []
        assert server.api_requests == []
        assert cassette.all_played
    else:
        assert server.grant_counts == grants
        assert len(server.api_requests) == api_calls


@pytest.mark.forge_cassette
def test_private_key_jwt_flow(
    forge_oauth_server: OAuthServer, forge_cassette: ForgeCassette, forge_clock: FakeClock
) -> None:
    """client_credentials authenticated by a private_key_jwt assertion (RS256), an API call,
    and on expiry a second grant with a new assertion."""
    key = RSAKey.generate_key(2048)
    method = PrivateKeyJwt(key.as_pem(private=True), alg="RS256")
    forge_oauth_server.add_client(JWT_CLIENT, keys=method.public_jwk())
    provider = ClientCredentialsTokenProvider(
        forge_oauth_server.token_url, JWT_CLIENT, None, client_auth=method, scope="orders:read"
    )
    manager = TokenManager(provider)
    with api_client(forge_oauth_server.api_url, manager) as client:
        first = client.get("/orders").json()
        forge_clock.advance(LIFETIME)
        second = client.get("/orders").json()
    assert (
        first
        == second
        == {
            "path": "/api/orders",
            "client_id": JWT_CLIENT,
            "username": None,
            "scope": "orders:read",
            "ok": True,
        }
    )
    assert manager.get_token().expires_at == forge_clock.now() + timedelta(seconds=LIFETIME)
    check_oauth_server(forge_cassette, forge_oauth_server, {"client_credentials": 2}, 2)


@pytest.mark.forge_cassette
def test_token_exchange_flow(
    forge_oauth_server: OAuthServer, forge_cassette: ForgeCassette, forge_clock: FakeClock
) -> None:
    """A client_credentials token, exchanged (RFC 8693) for one with a narrower scope and an
    audience, which the API accepts."""
    subject = TokenManager(
        ClientCredentialsTokenProvider(
            forge_oauth_server.token_url, CLIENT_ID, CLIENT_SECRET, scope="orders:read orders:write"
        )
    )
    provider = TokenExchangeTokenProvider(
        forge_oauth_server.token_url,
        CLIENT_ID,
        CLIENT_SECRET,
        subject_token=subject,
        scope="orders:read",
        audience="orders-api",
    )
    manager = TokenManager(provider)
    with api_client(forge_oauth_server.api_url, manager) as client:
        answer = client.get("/orders").json()
    exchanged = manager.get_token()
    assert answer["scope"] == "orders:read"
    assert answer["path"] == "/api/orders"
    assert exchanged.access_token != subject.get_token().access_token
    assert exchanged.expires_at == forge_clock.now() + timedelta(seconds=LIFETIME)
    grants = {"client_credentials": 1, TOKEN_EXCHANGE: 1}
    check_oauth_server(forge_cassette, forge_oauth_server, grants, 1)


# -- the committed files -------------------------------------------------------------------

CASSETTES = Path(__file__).parent / "cassettes" / Path(__file__).stem
CONTRACTS = ["test_private_key_jwt_flow", "test_token_exchange_flow"]
#: What must never be in a file: the Basic credentials, issued tokens, a JWS (its header
#: starts ``eyJ``), a PEM key, a loopback address.
SECRETS = [CLIENT_SECRET, "forge-at-", "forge-rt-", "eyJ", "PRIVATE KEY", "127.0.0.1"]


def _requests(name: str) -> list[str]:
    raw = yamlserializer.deserialize((CASSETTES / f"{name}.yaml").read_text(encoding="utf-8"))
    return [str(interaction["request"]["body"]) for interaction in raw["interactions"]]


def test_the_assertion_is_a_placeholder_next_to_its_type() -> None:
    """Both token requests of the private_key_jwt flow carry the assertion type and client
    id as sent, and the assertion only as a placeholder."""
    bodies = [body for body in _requests("test_private_key_jwt_flow") if "grant_type" in body]
    assert len(bodies) == 2
    for body in bodies:
        assert "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type" in body
        assert f"client_id={JWT_CLIENT}" in body
        assert "client_assertion=forge-scrubbed-" in body


def test_the_exchange_keeps_its_protocol_fields() -> None:
    """The exchange request keeps its grant and token types, scope and audience; the
    subject token is a placeholder."""
    (body,) = [b for b in _requests("test_token_exchange_flow") if "token-exchange" in b]
    assert "subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token" in body
    assert "subject_token=forge-scrubbed-" in body
    assert "audience=orders-api" in body


def test_the_jwt_cassette_refuses_a_secret_instead_of_an_assertion(
    forge_oauth_server: OAuthServer,
) -> None:
    """Replayed, the private_key_jwt cassette refuses client_secret_post for the same client:
    the assertion fields are missing and a secret was not recorded; the file is untouched."""
    path = CASSETTES / "test_private_key_jwt_flow.yaml"
    before = path.read_text(encoding="utf-8")
    provider = ClientCredentialsTokenProvider(
        forge_oauth_server.token_url,
        JWT_CLIENT,
        CLIENT_SECRET,
        client_auth="body",
        scope="orders:read",
    )
    with pytest.raises(CassetteMismatchError) as caught, ForgeCassette(path, record_mode="none"):
        provider.fetch_token()
    provider.close()
    assert [str(d) for d in caught.value.differences] == [
        "body: not sent: client_assertion, client_assertion_type; not recorded: client_secret"
    ]
    assert forge_oauth_server.token_requests == []
    assert path.read_text(encoding="utf-8") == before

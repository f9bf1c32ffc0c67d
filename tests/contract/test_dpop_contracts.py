"""Contract test of the DPoP flow (RFC 9449): server nonces, a bound token, proofs on API calls.

Recorded once against the plugin's OAuthServer (see test_auth_contracts.py for how), replayed
under CI. A proof differs on every run (a fresh ``jti``, ``iat`` and signature), so its value
is never compared: the ``DPoP`` header is stored as a placeholder followed by the proof's
structure (alg, typ, the jwk's kty and crv, htm, htu, the claim names), and a replay
compares that. The key is a fixed test key, because on replay the provider still checks the
recorded ``cnf.jkt`` against its key's thumbprint; its private member is declared secret
(test_committed_cassettes.py checks that no token, proof or key is in the file). The last
tests check that the file keeps the protocol facts (``use_dpop_nonce``, ``DPoP-Nonce``,
``token_type: DPoP``, ``cnf.jkt``) for review.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from vcr.serializers import yamlserializer

from requestforge import (
    ClientCredentialsTokenProvider,
    DPoPKey,
    TokenManager,
)
from requestforge_testing import FakeClock, ForgeCassette, OAuthServer
from requestforge_testing._cassette_jwt import split_summary
from requestforge_testing._scrubbing import is_placeholder
from tests.api_clients import api_client

CLIENT_ID, CLIENT_SECRET = "forge-client", "forge-secret"
LIFETIME = 3600
#: A P-256 key made for this test only: fixed, so the recorded ``cnf.jkt`` is its thumbprint.
TEST_JWK: dict[str, str] = {
    "kty": "EC",
    "crv": "P-256",
    "x": "dRTY6l694Xvr2lCacHuDmmWTgM4Qo7CB0QJtIpnNCus",
    "y": "Jdz0QuIKAwkU-Mqmby7yo9DObIIJ3R5AOJ-Cs_93Ulc",
    "d": "G5JJRjvoUUm9QCAkzGmwnUAfUgDWTwoR2U4Itjae7Yw",
}
THUMBPRINT = "jkYQJOdfQsD_FrwVfXWfHNKOrTGBFpC7VY8vv9I3O3o"
EXPECTED = {
    "path": "/api/orders",
    "client_id": CLIENT_ID,
    "username": None,
    "scope": "orders:read",
    "ok": True,
}


def check_oauth_server(cassette: ForgeCassette, server: OAuthServer) -> None:
    """Recording: the server saw the nonce retry, two grants and four API calls. Replay:
    nothing, and every recorded interaction was played."""
    if cassette.replaying:
        assert server.token_requests == []
        assert server.api_requests == []
        assert cassette.all_played
        return
    token_answers = [(r.status, r.error, r.dpop_jkt) for r in server.token_requests]
    assert token_answers == [
        (400, "use_dpop_nonce", None),  # refused before the proof's key is recorded
        (200, None, THUMBPRINT),
        (200, None, THUMBPRINT),
    ]
    assert server.grant_counts == {"client_credentials": 2}
    sent = server.api_requests
    assert len(sent) == 4  # the one after the rotation twice: refused, then resent
    assert all(r.headers["Authorization"].startswith("DPoP ") for r in sent)
    assert len({r.headers["DPoP"] for r in sent}) == 4  # a fresh proof for every request


@pytest.mark.forge_cassette
def test_dpop_flow_with_nonces_and_renewal(
    forge_oauth_server: OAuthServer, forge_cassette: ForgeCassette, forge_clock: FakeClock
) -> None:
    """client_credentials with a DPoP key: the token endpoint's use_dpop_nonce is retried
    with its nonce, the bound token is used with proofs, the API's nonce challenge after a
    rotation is resent once, and at expiry a second grant reuses the remembered nonce."""
    forge_oauth_server.dpop_required = True
    forge_oauth_server.dpop_nonce_required = True
    key = DPoPKey(TEST_JWK, alg="ES256")
    assert key.thumbprint == THUMBPRINT
    provider = ClientCredentialsTokenProvider(
        forge_oauth_server.token_url, CLIENT_ID, CLIENT_SECRET, dpop=key, scope="orders:read"
    )
    manager = TokenManager(provider)
    with api_client(forge_oauth_server.api_url, manager) as client:
        first = client.get("/orders").json()
        forge_oauth_server.rotate_dpop_nonce()  # the API now answers use_dpop_nonce once
        after_rotation = client.get("/orders").json()
        forge_clock.advance(LIFETIME)
        renewed = client.get("/orders").json()
    assert first == after_rotation == renewed == EXPECTED
    token = manager.get_token()
    assert (token.token_type, token.extra["cnf"]) == ("DPoP", {"jkt": THUMBPRINT})
    assert token.expires_at == forge_clock.now() + timedelta(seconds=LIFETIME)
    assert key.nonce_for(forge_oauth_server.api_url) is not None
    check_oauth_server(forge_cassette, forge_oauth_server)


# -- the committed file --------------------------------------------------------------------

CASSETTES = Path(__file__).parent / "cassettes" / Path(__file__).stem
CONTRACTS = ["test_dpop_flow_with_nonces_and_renewal"]
#: What must never be in the file: the Basic secret, issued tokens, a JWS (a proof's header
#: starts ``eyJ``), the key's private member, a PEM key, a loopback address.
SECRETS = [
    CLIENT_SECRET,
    "forge-at-",
    "forge-rt-",
    "eyJ",
    TEST_JWK["d"],
    "PRIVATE KEY",
    "127.0.0.1",
]


def _interactions(name: str) -> list[dict[str, Any]]:
    text = (CASSETTES / f"{name}.yaml").read_text(encoding="utf-8")
    interactions: list[dict[str, Any]] = yamlserializer.deserialize(text)["interactions"]
    return interactions


def _header(headers: dict[str, list[str]], name: str) -> str | None:
    values = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    return None if values is None else values[0]


def test_every_request_carries_a_proof_kept_as_its_structure() -> None:
    """Each request's proof is a placeholder plus its structure: ES256 with an EC P-256
    jwk, htm and htu as sent, a nonce claim except on the first token request, ath on API
    requests only; the API requests use the DPoP scheme."""
    requests = [i["request"] for i in _interactions(CONTRACTS[0])]
    assert len(requests) == 7
    proofs = [split_summary(str(_header(r["headers"], "DPoP"))) for r in requests]
    assert all(is_placeholder(placeholder) for placeholder, _ in proofs)
    summaries = [summary for _, summary in proofs if summary is not None]
    assert len(summaries) == 7
    jwk = {"kty": "EC", "crv": "P-256"}
    assert all(s.header == {"alg": "ES256", "typ": "dpop+jwt", "jwk": jwk} for s in summaries)
    token, api = "http://loopback-1.invalid/oauth/token", "http://loopback-1.invalid/api/orders"
    kept = [
        (s.claims["htm"], s.claims["htu"], "nonce" in s.claims, "ath" in s.claims)
        for s in summaries
    ]
    assert kept == [
        ("POST", token, False, False),
        ("POST", token, True, False),
        ("GET", api, True, True),
        ("GET", api, True, True),
        ("GET", api, True, True),
        ("POST", token, True, False),
        ("GET", api, True, True),
    ]
    schemes = [str(_header(r["headers"], "Authorization")).split()[0] for r in requests]
    assert schemes == ["Basic", "Basic", "DPoP", "DPoP", "DPoP", "Basic", "DPoP"]


def test_the_protocol_facts_stay_readable() -> None:
    """The use_dpop_nonce refusals (token endpoint and API), the DPoP-Nonce headers, the
    DPoP token type and the cnf.jkt binding are in the file as the server sent them."""
    responses = [i["response"] for i in _interactions(CONTRACTS[0])]
    statuses = [r["status"]["code"] for r in responses]
    assert statuses == [400, 200, 200, 401, 200, 200, 200]
    refusal = json.loads(responses[0]["body"]["string"])
    assert refusal["error"] == "use_dpop_nonce"
    nonces = [_header(r["headers"], "DPoP-Nonce") for r in responses]
    assert all(n is not None and not n.startswith("forge-scrubbed-") for n in nonces)
    assert nonces[0] == nonces[1] != nonces[3]  # the rotation between the two API calls
    issued = [json.loads(responses[i]["body"]["string"]) for i in (1, 5)]
    for body in issued:
        assert (body["token_type"], body["cnf"]) == ("DPoP", {"jkt": THUMBPRINT})
        assert body["access_token"].startswith("forge-scrubbed-")
    challenge = _header(responses[3]["headers"], "WWW-Authenticate")
    assert challenge is not None
    assert challenge.startswith('DPoP error="use_dpop_nonce"')

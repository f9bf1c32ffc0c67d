"""DPoP (RFC 9449) over loopback against forge_oauth_server: bound tokens fetched with a
proof and used with one, server nonces at the token endpoint and the API, the jkt check."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from requestforge import (
    ClientCredentialsTokenProvider,
    DPoPKey,
    PasswordGrantTokenProvider,
    TokenEndpointError,
    TokenManager,
    TokenResponseError,
)
from requestforge_testing import ApiServer, OAuthServer, Reply
from requestforge_testing._oauth_jose import parse_jwt
from tests import oauth_flows as flows
from tests.api_clients import token_client

CLIENT_ID, CLIENT_SECRET = "forge-client", "forge-secret"


def _cc(server: OAuthServer, **options: Any) -> ClientCredentialsTokenProvider:
    return ClientCredentialsTokenProvider(server.token_url, CLIENT_ID, CLIENT_SECRET, **options)


def test_bound_token_is_fetched_and_used_with_proofs(forge_oauth_server: OAuthServer) -> None:
    """With dpop= the token is DPoP-bound to the key, and the hook's proofs satisfy the API."""
    forge_oauth_server.dpop_required = True
    key = DPoPKey()
    manager = TokenManager(_cc(forge_oauth_server, dpop=key))
    with token_client(forge_oauth_server, manager) as client:
        first = client.get("/whoami?x=1")
        second = client.post("/whoami", json={"a": 1})
    assert (first.json()["ok"], second.json()["ok"]) == (True, True)
    assert manager.get_token().token_type == "DPoP"
    assert [r.dpop_jkt for r in forge_oauth_server.token_requests] == [key.thumbprint]
    sent = forge_oauth_server.api_requests
    assert [r.headers["Authorization"].split()[0] for r in sent] == ["DPoP", "DPoP"]
    assert sent[0].headers["DPoP"] != sent[1].headers["DPoP"]


def test_password_grant_takes_a_dpop_key(forge_oauth_server: OAuthServer) -> None:
    """The password grant binds its token to the key too."""
    forge_oauth_server.dpop_required = True
    key = DPoPKey()
    provider = PasswordGrantTokenProvider(
        forge_oauth_server.token_url,
        CLIENT_ID,
        CLIENT_SECRET,
        "forge-user",
        "forge-password",
        dpop=key,
    )
    assert provider.fetch_token().extra["cnf"] == {"jkt": key.thumbprint}


def test_without_a_key_dpop_required_refuses(forge_oauth_server: OAuthServer) -> None:
    """The server's dpop_required mode really refuses a provider without a key."""
    forge_oauth_server.dpop_required = True
    with pytest.raises(TokenEndpointError) as caught:
        _cc(forge_oauth_server).fetch_token()
    assert caught.value.error == "invalid_dpop_proof"


def test_token_endpoint_nonce_challenge_is_retried_once(forge_oauth_server: OAuthServer) -> None:
    """use_dpop_nonce from the token endpoint is answered by one retry with its nonce."""
    forge_oauth_server.dpop_nonce_required = True
    key = DPoPKey()
    token = _cc(forge_oauth_server, dpop=key).fetch_token()
    assert token.token_type == "DPoP"
    records = forge_oauth_server.token_requests
    assert [(r.status, r.error) for r in records] == [(400, "use_dpop_nonce"), (200, None)]
    assert key.nonce_for(forge_oauth_server.token_url) == forge_oauth_server.dpop_nonce


def test_a_nonce_refused_twice_is_an_error(forge_oauth_server: OAuthServer) -> None:
    """A second use_dpop_nonce is not retried again: TokenEndpointError after two tries."""
    forge_oauth_server.dpop_nonce_required = True
    refusal = Reply(
        status=400,
        json={"error": "use_dpop_nonce"},
        headers={"DPoP-Nonce": "scripted", "Cache-Control": "no-store"},
    )
    forge_oauth_server.reply_next(refusal)
    forge_oauth_server.reply_next(refusal)
    with pytest.raises(TokenEndpointError) as caught:
        _cc(forge_oauth_server, dpop=DPoPKey()).fetch_token()
    assert caught.value.error == "use_dpop_nonce"
    assert len(forge_oauth_server.token_requests) == 2


def test_api_nonce_challenge_is_resent_without_a_new_token(
    forge_oauth_server: OAuthServer,
) -> None:
    """A 401 use_dpop_nonce at the API is resent once with the new nonce, the token kept."""
    forge_oauth_server.dpop_nonce_required = True
    key = DPoPKey()
    manager = TokenManager(_cc(forge_oauth_server, dpop=key))
    with token_client(forge_oauth_server, manager) as client:
        assert client.get("/whoami").json()["ok"] is True
        fresh = forge_oauth_server.rotate_dpop_nonce()
        assert client.get("/whoami").json()["ok"] is True
    assert forge_oauth_server.fetch_count == 1
    statuses = [r.headers.get("DPoP") is not None for r in forge_oauth_server.api_requests]
    assert statuses == [True, True, True]
    assert key.nonce_for(forge_oauth_server.api_url) == fresh


def test_token_bound_to_another_key_is_refused(forge_oauth_server: OAuthServer) -> None:
    """A token response whose cnf.jkt is not the key's thumbprint is a TokenResponseError."""
    reply = Reply(
        json={
            "access_token": "bound-elsewhere",
            "token_type": "DPoP",
            "expires_in": 300,
            "cnf": {"jkt": DPoPKey().thumbprint},
        },
        headers={"Cache-Control": "no-store"},
    )
    forge_oauth_server.reply_next(reply)
    with pytest.raises(TokenResponseError, match="another key"):
        _cc(forge_oauth_server, dpop=DPoPKey()).fetch_token()


# -- nonces on successful answers, every grant, pipeline steps ----------------------------


def _claims(proof: str) -> Mapping[str, Any]:
    """The claims of a proof, unverified (the server verified it)."""
    return parse_jwt(proof).claims


def test_a_nonce_on_a_successful_api_answer_goes_in_the_next_proof(
    forge_oauth_server: OAuthServer, forge_api_server: ApiServer
) -> None:
    """A DPoP-Nonce on a 200 from the API is put in the next proof to it, with no refusal."""
    forge_oauth_server.dpop_required = True
    nonces = iter(["api-nonce-1", "api-nonce-2", "api-nonce-3"])
    forge_api_server.add_handler(
        "/data", lambda request: Reply(json={"ok": True}, headers={"DPoP-Nonce": next(nonces)})
    )
    manager = TokenManager(_cc(forge_oauth_server, dpop=DPoPKey()))
    with token_client(forge_oauth_server, manager, base_url=forge_api_server.url) as client:
        statuses = [client.get("/data").status_code for _ in range(3)]
    proofs = [_claims(r.headers["DPoP"]) for r in forge_api_server.requests]
    assert statuses == [200, 200, 200]
    assert [p.get("nonce") for p in proofs] == [None, "api-nonce-1", "api-nonce-2"]


@pytest.mark.parametrize(
    "make",
    [flows.jwt_bearer, flows.token_exchange, flows.custom_grant],
    ids=["jwt-bearer", "exchange", "custom"],
)
def test_every_grant_binds_its_token_to_the_key(
    forge_oauth_server: OAuthServer, make: Callable[..., Any]
) -> None:
    """The JWT bearer, token exchange and custom grants send proofs, answer the nonce
    challenge once, and get a token bound to the key."""
    forge_oauth_server.dpop_nonce_required = True
    key = DPoPKey()
    provider = make(forge_oauth_server, dpop=key)
    assert provider.dpop is key
    token = provider.fetch_token()
    records = forge_oauth_server.token_requests
    assert [(r.status, r.error) for r in records] == [(400, "use_dpop_nonce"), (200, None)]
    assert (token.token_type, token.extra["cnf"]) == ("DPoP", {"jkt": key.thumbprint})
    assert records[1].dpop_jkt == key.thumbprint


def test_a_pipeline_step_with_a_key_binds_the_pipeline_token(
    forge_oauth_server: OAuthServer,
) -> None:
    """A token exchange step given dpop= gets a bound token, and the API proofs of a client
    over the pipeline are signed by that step's key."""
    forge_oauth_server.dpop_nonce_required = True
    key = DPoPKey()
    provider = flows.exchange_pipeline(forge_oauth_server, dpop=key)
    assert provider.dpop is key
    manager = TokenManager(provider)
    with token_client(forge_oauth_server, manager) as client:
        assert client.get("/whoami").json()["ok"] is True
    grants = [(r.grant_type, r.status, r.dpop_jkt) for r in forge_oauth_server.token_requests]
    assert grants == [
        ("client_credentials", 200, None),
        (flows.EXCHANGE, 400, None),
        (flows.EXCHANGE, 200, key.thumbprint),
    ]
    (api,) = forge_oauth_server.api_requests
    assert api.headers["Authorization"].startswith("DPoP ")
    assert _claims(api.headers["DPoP"])["nonce"] == forge_oauth_server.dpop_nonce

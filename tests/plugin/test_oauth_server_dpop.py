"""OAuthServer's DPoP (RFC 9449) over loopback: proofs on token and API requests, key
binding through cnf.jkt, every check a proof must pass, and server nonces."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from requestforge_testing import FakeClock, OAuthServer
from tests.plugin.test_oauth_server_signing import (
    EC_KEY,
    OTHER_EC_KEY,
    RSA_KEY,
    dpop_proof,
    sign_hmac,
)

CLIENT = ("forge-client", "forge-secret")
CC = {"grant_type": "client_credentials"}


def _token_request(
    server: OAuthServer, proof: str | None, data: dict[str, str] | None = None, **kw: Any
) -> requests.Response:
    headers = {} if proof is None else {"DPoP": proof}
    kw.setdefault("auth", CLIENT)
    return requests.post(server.token_url, data=data or CC, headers=headers, timeout=5, **kw)


def _dpop_token(server: OAuthServer, clock: FakeClock, key: Any = EC_KEY) -> str:
    proof = dpop_proof(key, "POST", server.token_url, clock.now(), alg=_alg(key))
    response = _token_request(server, proof)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def _alg(key: Any) -> str:
    return "RS256" if key is RSA_KEY else "ES256"


def _api(
    server: OAuthServer, token: str, proof: str | None, scheme: str = "DPoP"
) -> requests.Response:
    headers = {"Authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["DPoP"] = proof
    return requests.get(server.api_url + "/orders?page=2", headers=headers, timeout=5)


@pytest.mark.parametrize("key", [EC_KEY, RSA_KEY])
def test_a_proof_binds_the_token_to_its_key(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock, key: Any
) -> None:
    """token_type DPoP and cnf.jkt come back; the API takes the token with a proof and ath."""
    proof = dpop_proof(key, "POST", forge_oauth_server.token_url, forge_clock.now(), alg=_alg(key))
    body = _token_request(forge_oauth_server, proof).json()
    assert (body["token_type"], body["cnf"]) == ("DPoP", {"jkt": key.thumbprint()})
    assert forge_oauth_server.token_requests[0].dpop_jkt == key.thumbprint()
    token = body["access_token"]
    url = forge_oauth_server.api_url + "/orders"  # htu ignores the query string sent
    api_proof = dpop_proof(key, "GET", url, forge_clock.now(), access_token=token, alg=_alg(key))
    response = _api(forge_oauth_server, token, api_proof)
    assert response.status_code == 200, response.text
    introspected = requests.post(
        forge_oauth_server.introspection_url, data={"token": token}, auth=CLIENT, timeout=5
    ).json()
    assert (introspected["token_type"], introspected["cnf"]) == ("DPoP", body["cnf"])


def test_a_bound_token_needs_the_dpop_scheme_and_its_own_key(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """Bearer use, no proof, another key's proof and a proof without ath are all 401 DPoP."""
    token = _dpop_token(forge_oauth_server, forge_clock)
    url, now = forge_oauth_server.api_url + "/orders", forge_clock.now()
    as_bearer = _api(forge_oauth_server, token, None, scheme="Bearer")
    no_proof = _api(forge_oauth_server, token, None)
    other_key = _api(
        forge_oauth_server, token, dpop_proof(OTHER_EC_KEY, "GET", url, now, access_token=token)
    )
    no_ath = _api(forge_oauth_server, token, dpop_proof(EC_KEY, "GET", url, now))
    challenges = [r.headers["WWW-Authenticate"] for r in (as_bearer, no_proof, other_key, no_ath)]
    assert [r.status_code for r in (as_bearer, no_proof, other_key, no_ath)] == [401] * 4
    assert challenges == [
        'DPoP error="invalid_token", algs="ES256 RS256"',
        'DPoP error="invalid_dpop_proof", algs="ES256 RS256"',
        'DPoP error="invalid_dpop_proof", algs="ES256 RS256"',
        'DPoP error="invalid_dpop_proof", algs="ES256 RS256"',
    ]
    assert "ath" in no_ath.json()["error_description"]


def test_an_unbound_token_is_refused_under_the_dpop_scheme(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """A Bearer token sent as DPoP is invalid_token (it was not bound to any key)."""
    plain = _token_request(forge_oauth_server, None).json()
    assert plain["token_type"] == "Bearer"
    assert "cnf" not in plain
    token = plain["access_token"]
    proof = dpop_proof(
        EC_KEY, "GET", forge_oauth_server.api_url + "/orders", forge_clock.now(), access_token=token
    )
    response = _api(forge_oauth_server, token, proof)
    assert (response.status_code, response.json()["error"]) == (401, "invalid_token")


def _bad_proof(case: str, url: str, clock: FakeClock) -> str:
    now = clock.now()
    private = {"jwk": EC_KEY.as_dict(private=True)}
    cases: dict[str, Callable[[], str]] = {
        "typ": lambda: dpop_proof(EC_KEY, "POST", url, now, header={"typ": "JWT"}),
        "alg": lambda: sign_hmac(
            {"htm": "POST", "htu": url, "iat": int(now.timestamp()), "jti": "j"},
            "k",
            typ="dpop+jwt",
        ),
        "htm": lambda: dpop_proof(EC_KEY, "GET", url, now),
        "htu": lambda: dpop_proof(EC_KEY, "POST", url.replace("/oauth/token", "/other"), now),
        "old-iat": lambda: dpop_proof(EC_KEY, "POST", url, now, iat=int(now.timestamp()) - 61),
        "future-iat": lambda: dpop_proof(EC_KEY, "POST", url, now, iat=int(now.timestamp()) + 61),
        "no-jti": lambda: dpop_proof(EC_KEY, "POST", url, now, jti=None),
        "no-iat": lambda: dpop_proof(EC_KEY, "POST", url, now, iat=None),
        "private-jwk": lambda: dpop_proof(EC_KEY, "POST", url, now, header=private),
        "wrong-jwk": lambda: dpop_proof(
            EC_KEY, "POST", url, now, header={"jwk": OTHER_EC_KEY.as_dict(private=False)}
        ),
        "two-proofs": lambda: ", ".join([dpop_proof(EC_KEY, "POST", url, now)] * 2),
        "garbage": lambda: "not-a-jwt",
    }
    return cases[case]()


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("typ", "typ must be dpop+jwt"),
        ("alg", "alg 'HS256'"),
        ("htm", "htm 'GET'"),
        ("htu", "htu"),
        ("old-iat", "iat is too old"),
        ("future-iat", "iat is more than 60s ahead"),
        ("no-jti", "jti is missing"),
        ("no-iat", "iat is missing"),
        ("private-jwk", "private key"),
        ("wrong-jwk", "does not verify"),
        ("two-proofs", "exactly one"),
        ("garbage", "not a compact JWS"),
    ],
)
def test_a_bad_proof_at_the_token_endpoint_is_invalid_dpop_proof(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock, case: str, reason: str
) -> None:
    """Each check of RFC 9449 section 4.3 refuses the token request with 400."""
    proof = _bad_proof(case, forge_oauth_server.token_url, forge_clock)
    response = _token_request(forge_oauth_server, proof)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_dpop_proof")
    assert reason in response.json()["error_description"]
    assert forge_oauth_server.fetch_count == 0


def test_a_proof_works_once_and_htu_is_compared_normalized(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """A replayed jti is refused; upper-case scheme and host and a query still match."""
    url = forge_oauth_server.token_url
    loud = url.replace("http://", "HTTP://") + "?x=1#frag"
    proof = dpop_proof(EC_KEY, "POST", loud, forge_clock.now())
    assert _token_request(forge_oauth_server, proof).status_code == 200
    replay = _token_request(forge_oauth_server, proof)
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_dpop_proof")
    assert "replay" in replay.json()["error_description"]


def test_dpop_required_refuses_a_plain_token_request(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """With dpop_required, no proof means no token; reset turns it off."""
    forge_oauth_server.dpop_required = True
    refused = _token_request(forge_oauth_server, None)
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_dpop_proof")
    assert _dpop_token(forge_oauth_server, forge_clock)
    forge_oauth_server.reset()
    assert forge_oauth_server.dpop_required is False
    assert _token_request(forge_oauth_server, None).status_code == 200


def test_nonces_at_the_token_endpoint_and_their_rotation(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """use_dpop_nonce with a DPoP-Nonce header; the nonce works; a rotated one is demanded."""
    forge_oauth_server.dpop_nonce_required = True
    url = forge_oauth_server.token_url
    first = _token_request(forge_oauth_server, dpop_proof(EC_KEY, "POST", url, forge_clock.now()))
    assert (first.status_code, first.json()["error"]) == (400, "use_dpop_nonce")
    nonce = first.headers["DPoP-Nonce"]
    assert nonce == forge_oauth_server.dpop_nonce
    proof = dpop_proof(EC_KEY, "POST", url, forge_clock.now(), nonce=nonce)
    ok = _token_request(forge_oauth_server, proof)
    assert (ok.status_code, ok.headers["DPoP-Nonce"]) == (200, nonce)
    rotated = forge_oauth_server.rotate_dpop_nonce()
    stale = _token_request(
        forge_oauth_server, dpop_proof(EC_KEY, "POST", url, forge_clock.now(), nonce=nonce)
    )
    assert (stale.json()["error"], stale.headers["DPoP-Nonce"]) == ("use_dpop_nonce", rotated)
    assert rotated != nonce


def test_nonces_at_the_api(forge_oauth_server: OAuthServer, forge_clock: FakeClock) -> None:
    """The API answers 401 WWW-Authenticate: DPoP error="use_dpop_nonce" with the nonce."""
    token = _dpop_token(forge_oauth_server, forge_clock)
    forge_oauth_server.dpop_nonce_required = True
    url, now = forge_oauth_server.api_url + "/orders", forge_clock.now()
    refused = _api(
        forge_oauth_server, token, dpop_proof(EC_KEY, "GET", url, now, access_token=token)
    )
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == 'DPoP error="use_dpop_nonce", algs="ES256 RS256"'
    nonce = refused.headers["DPoP-Nonce"]
    proof = dpop_proof(EC_KEY, "GET", url, now, access_token=token, nonce=nonce)
    assert _api(forge_oauth_server, token, proof).status_code == 200


def test_a_public_clients_refresh_token_is_bound_to_its_key(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """RFC 9449 section 5: refreshing needs a proof by the same key for a public client."""
    forge_oauth_server.add_client("spa")
    url = forge_oauth_server.token_url
    user = {
        "grant_type": "password",
        "username": "forge-user",
        "password": "forge-password",
        "client_id": "spa",
    }
    first = _token_request(
        forge_oauth_server, dpop_proof(EC_KEY, "POST", url, forge_clock.now()), user, auth=None
    ).json()
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": first["refresh_token"],
        "client_id": "spa",
    }
    other = dpop_proof(OTHER_EC_KEY, "POST", url, forge_clock.now())
    stolen = _token_request(forge_oauth_server, other, refresh, auth=None)
    assert stolen.json()["error"] == "invalid_grant"
    same = dpop_proof(EC_KEY, "POST", url, forge_clock.now())
    assert _token_request(forge_oauth_server, same, refresh, auth=None).status_code == 200

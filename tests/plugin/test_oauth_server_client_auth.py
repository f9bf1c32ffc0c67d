"""OAuthServer's client authentication over loopback: client_secret_jwt, private_key_jwt,
tls_client_auth and public clients, each check of RFC 7523 section 3, and the records."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests
from joserfc import jwk

from requestforge_testing import CertificateAuthority, FakeClock, OAuthServer
from tests.plugin.test_oauth_server_signing import (
    ASSERTION_TYPE,
    EC_KEY,
    OTHER_EC_KEY,
    RSA_KEY,
    assertion_claims,
    sign,
    sign_hmac,
)

CC = {"grant_type": "client_credentials"}


def _post(server: OAuthServer, data: dict[str, str], **kwargs: Any) -> requests.Response:
    return requests.post(server.token_url, data=data, timeout=5, **kwargs)


def _with_assertion(assertion: str, **extra: str) -> dict[str, str]:
    return {**CC, "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion, **extra}


def test_client_secret_jwt_is_verified_with_the_client_secret(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """An HS256 assertion signed with the secret gets a token; the record says how and what."""
    claims = assertion_claims("forge-client", forge_oauth_server.token_url, forge_clock.now())
    response = _post(forge_oauth_server, _with_assertion(sign_hmac(claims, "forge-secret")))
    assert response.status_code == 200, response.text
    (record,) = forge_oauth_server.token_requests
    assert (record.client_id, record.auth_method) == ("forge-client", None)
    assert record.client_auth_method == "client_secret_jwt"
    assert record.client_assertion_claims == claims
    assert "client_assertion': '[REDACTED]'" in repr(record)
    assert record.params["client_assertion"] not in repr(record)


@pytest.mark.parametrize(
    ("key", "alg"), [(RSA_KEY, "RS256"), (RSA_KEY, "PS256"), (EC_KEY, "ES256")]
)
def test_private_key_jwt_is_verified_with_the_registered_key(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock, key: Any, alg: str
) -> None:
    """RS256, PS256 and ES256 assertions verify with the client's registered JWKS."""
    public = {"keys": [RSA_KEY.as_dict(private=False), EC_KEY.as_dict(private=False)]}
    forge_oauth_server.add_client("svc", keys=public)
    claims = assertion_claims("svc", forge_oauth_server.token_url, forge_clock.now())
    assertion = sign(claims, key, alg, kid=key.kid)
    response = _post(forge_oauth_server, _with_assertion(assertion, client_id="svc"))
    assert response.status_code == 200, response.text
    (record,) = forge_oauth_server.token_requests
    assert (record.client_auth_method, record.client_assertion_claims) == (
        "private_key_jwt",
        claims,
    )


def test_the_issuer_is_an_accepted_audience_too(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """aud may be the issuer (some servers ask for it) or a list holding the token URL."""
    forge_oauth_server.add_client("svc", keys=EC_KEY)
    now = forge_clock.now()
    for audience in (
        forge_oauth_server.issuer,
        ["https://x.invalid", forge_oauth_server.token_url],
    ):
        assertion = sign(assertion_claims("svc", audience, now), EC_KEY, "ES256")
        assert _post(forge_oauth_server, _with_assertion(assertion)).status_code == 200


def _claims_case(name: str, server: OAuthServer, clock: FakeClock) -> str:
    """An assertion for client svc that is wrong in the way ``name`` says."""
    now, url = clock.now(), server.token_url
    good = assertion_claims("svc", url, now)
    cases = {
        "wrong-key": sign(good, OTHER_EC_KEY, "ES256"),
        "hmac-for-a-key-client": sign_hmac(good, "anything"),
        "iss-is-not-sub": sign(assertion_claims("svc", url, now, sub="other"), EC_KEY, "ES256"),
        "unknown-client": sign(assertion_claims("nobody", url, now), EC_KEY, "ES256"),
        "wrong-audience": sign(assertion_claims("svc", "https://x.invalid", now), EC_KEY, "ES256"),
        "no-exp": sign(assertion_claims("svc", url, now, exp=None), EC_KEY, "ES256"),
        "expired": sign(
            assertion_claims("svc", url, now, exp=int(now.timestamp())), EC_KEY, "ES256"
        ),
        "not-yet": sign(
            assertion_claims("svc", url, now, nbf=int(now.timestamp()) + 30), EC_KEY, "ES256"
        ),
        "no-jti": sign(assertion_claims("svc", url, now, jti=None), EC_KEY, "ES256"),
        "not-a-jwt": "not.a.jwt",
    }
    return cases[name]


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("wrong-key", "does not verify"),
        ("hmac-for-a-key-client", "no secret"),
        ("iss-is-not-sub", "iss and sub"),
        ("unknown-client", "client authentication failed"),
        ("wrong-audience", "aud"),
        ("no-exp", "exp is missing"),
        ("expired", "expired"),
        ("not-yet", "nbf"),
        ("no-jti", "jti is missing"),
        ("not-a-jwt", "does not decode"),
    ],
)
def test_a_bad_client_assertion_is_invalid_client(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock, case: str, reason: str
) -> None:
    """Each broken check of RFC 7523 section 3 answers 401 invalid_client and issues nothing."""
    forge_oauth_server.add_client("svc", keys=EC_KEY)
    response = _post(
        forge_oauth_server, _with_assertion(_claims_case(case, forge_oauth_server, forge_clock))
    )
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")
    assert reason in response.json()["error_description"]
    assert forge_oauth_server.fetch_count == 0
    assert forge_oauth_server.token_requests[-1].client_auth_method is None


def test_a_replayed_jti_is_refused(forge_oauth_server: OAuthServer, forge_clock: FakeClock) -> None:
    """The same assertion twice: the second is a replay (RFC 7523 section 3, item 7)."""
    claims = assertion_claims("forge-client", forge_oauth_server.token_url, forge_clock.now())
    data = _with_assertion(sign_hmac(claims, "forge-secret"))
    assert _post(forge_oauth_server, data).status_code == 200
    replay = _post(forge_oauth_server, data)
    assert (replay.status_code, replay.json()["error"]) == (401, "invalid_client")
    assert "replay" in replay.json()["error_description"]


def test_assertion_type_and_method_mixing_are_checked(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """A wrong client_assertion_type, or an assertion plus a secret, is refused."""
    claims = assertion_claims("forge-client", forge_oauth_server.token_url, forge_clock.now())
    assertion = sign_hmac(claims, "forge-secret")
    wrong_type = {**_with_assertion(assertion), "client_assertion_type": "urn:x"}
    mixed = _with_assertion(assertion, client_secret="forge-secret")
    basic_too = _post(
        forge_oauth_server, _with_assertion(assertion), auth=("forge-client", "forge-secret")
    )
    assert _post(forge_oauth_server, wrong_type).status_code == 401
    assert _post(forge_oauth_server, mixed).json()["error"] == "invalid_request"
    assert basic_too.json()["error"] == "invalid_request"
    assert forge_oauth_server.fetch_count == 0


def test_the_assertion_exp_is_checked_on_the_servers_clock(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """A fake clock moved past exp makes a fresh-looking assertion expired."""
    claims = assertion_claims("forge-client", forge_oauth_server.token_url, forge_clock.now())
    forge_clock.advance(61)
    response = _post(forge_oauth_server, _with_assertion(sign_hmac(claims, "forge-secret")))
    assert response.json()["error_description"] == "client_assertion: the assertion expired"


def test_client_keys_at_construction_and_auth_methods_restrictions(forge_clock: FakeClock) -> None:
    """client_keys= registers private_key_jwt clients; auth_methods= forbids the others."""
    with OAuthServer(client_keys={"svc": EC_KEY.as_dict(private=False)}) as server:
        claims = assertion_claims("svc", server.token_url, forge_clock.now())
        assert _post(server, _with_assertion(sign(claims, EC_KEY, "ES256"))).status_code == 200
        server.add_client("strict", "s3cret-s3cret", auth_methods=["client_secret_jwt"])
        basic = _post(server, CC, auth=("strict", "s3cret-s3cret"))
        assert (basic.status_code, basic.json()["error"]) == (401, "invalid_client")
        claims = assertion_claims("strict", server.token_url, forge_clock.now())
        assert _post(server, _with_assertion(sign_hmac(claims, "s3cret-s3cret"))).status_code == 200
        assert [r.client_auth_method for r in server.token_requests] == [
            "private_key_jwt",
            None,
            "client_secret_jwt",
        ]
        server.reset()
        gone = _post(server, CC, auth=("strict", "s3cret-s3cret"))
        assert gone.status_code == 401  # add_client lasts until reset
    with pytest.raises(ValueError, match="auth_methods"):
        OAuthServer().add_client("x", auth_methods=["magic"])
    with pytest.raises(ValueError, match="key"):
        OAuthServer(client_keys={"svc": {"kty": "oct", "k": "c2VjcmV0"}})


def test_basic_post_and_none_are_recorded_by_their_rfc_7591_names(
    forge_oauth_server: OAuthServer,
) -> None:
    """client_secret_basic, client_secret_post and none each land in client_auth_method."""
    forge_oauth_server.add_client("spa")
    user = {"grant_type": "password", "username": "forge-user", "password": "forge-password"}
    _post(forge_oauth_server, CC, auth=("forge-client", "forge-secret"))
    _post(forge_oauth_server, {**CC, "client_id": "forge-client", "client_secret": "forge-secret"})
    _post(forge_oauth_server, {**user, "client_id": "spa"})
    records = forge_oauth_server.token_requests
    assert [r.client_auth_method for r in records] == [
        "client_secret_basic",
        "client_secret_post",
        "none",
    ]
    assert [r.status for r in records] == [200, 200, 200]


def test_tls_client_auth_matches_the_certificate_subject() -> None:
    """Over mTLS a client named by tls_clients= authenticates by its certificate alone."""
    with CertificateAuthority() as ca:
        context = ca.server_context(require_client_cert=False)
        tls = {"mtls-svc": ca.CLIENT_COMMON_NAME, "other-svc": "someone-else"}
        with OAuthServer(tls_clients=tls, ssl_context=context) as server:
            assert server.token_url.startswith("https://")
            data = {**CC, "client_id": "mtls-svc"}
            ok = _post(server, data, verify=ca.ca_bundle, cert=ca.client_cert)
            no_cert = _post(server, data, verify=ca.ca_bundle)
            wrong = _post(
                server, {**CC, "client_id": "other-svc"}, verify=ca.ca_bundle, cert=ca.client_cert
            )
            assert ok.status_code == 200, ok.text
            assert (no_cert.status_code, wrong.status_code) == (401, 401)
            assert server.token_requests[0].client_auth_method == "tls_client_auth"
            document = requests.get(server.metadata_url, verify=ca.ca_bundle, timeout=5).json()
            assert "tls_client_auth" in document["token_endpoint_auth_methods_supported"]


def test_jwks_given_as_a_joserfc_key_set_verifies() -> None:
    """A joserfc KeySet's public dict registers both of its keys."""
    keys = jwk.KeySet([RSA_KEY, EC_KEY]).as_dict(private=False)
    with OAuthServer(client_keys={"svc": keys}) as server:
        clock = FakeClock()
        with clock.installed():
            claims = assertion_claims("svc", server.token_url, clock.now())
            assertion = sign(claims, RSA_KEY, "RS256", kid="rsa-1")
            assert _post(server, _with_assertion(assertion)).status_code == 200


def test_one_assertion_sent_by_eight_threads_at_once_wins_once(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """The jti check and its record are one step: of eight concurrent replays one gets a token."""
    claims = assertion_claims("forge-client", forge_oauth_server.token_url, forge_clock.now())
    data = _with_assertion(sign_hmac(claims, "forge-secret"))
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def send() -> None:
        barrier.wait()
        statuses.append(_post(forge_oauth_server, data).status_code)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [401] * 7
    assert forge_oauth_server.fetch_count == 1

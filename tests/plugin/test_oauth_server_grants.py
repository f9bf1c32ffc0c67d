"""OAuthServer's extension grants over loopback: JWT bearer (RFC 7523 2.1), token
exchange (RFC 8693) and grants a test registers a handler for."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import requests

from requestforge_testing import FakeClock, OAuthServer, Reply
from tests.plugin.test_oauth_server_signing import (
    EC_KEY,
    OTHER_EC_KEY,
    RSA_KEY,
    assertion_claims,
    sign,
)

CLIENT = ("forge-client", "forge-secret")
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ISSUER = "sa@project.example"


def _post(
    server: OAuthServer, data: Any, *, auth: tuple[str, str] | None = CLIENT
) -> requests.Response:
    return requests.post(server.token_url, data=data, auth=auth, timeout=5)


def _token(server: OAuthServer, **form: str) -> str:
    response = _post(
        server,
        {"grant_type": "password", "username": "forge-user", "password": "forge-password", **form},
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def _bearer_assertion(server: OAuthServer, clock: FakeClock, **claims: Any) -> str:
    body = assertion_claims(ISSUER, server.token_url, clock.now(), sub="user@example.com")
    body.update(claims)
    return sign(body, RSA_KEY, "RS256")


# -- JWT bearer --------------------------------------------------------------------------------


def test_jwt_bearer_grant_without_client_authentication(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """Google style: a signed assertion alone gets a token for its sub, with no refresh token."""
    forge_oauth_server.add_assertion_issuer(ISSUER, RSA_KEY.as_pem(private=False))
    assertion = _bearer_assertion(forge_oauth_server, forge_clock, scope="x")
    data = {"grant_type": JWT_BEARER, "assertion": assertion, "scope": "cloud"}
    response = _post(forge_oauth_server, data, auth=None)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["token_type"], body["scope"]) == ("Bearer", "cloud")
    assert "refresh_token" not in body
    (record,) = forge_oauth_server.token_requests
    assert record.assertion_claims is not None
    assert record.assertion_claims["sub"] == "user@example.com"
    assert record.client_auth_method is None
    api = requests.get(
        forge_oauth_server.api_url,
        timeout=5,
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert (api.json()["client_id"], api.json()["username"]) == (ISSUER, "user@example.com")
    assert forge_oauth_server.grant_counts == {JWT_BEARER: 1}


def test_jwt_bearer_grant_with_client_authentication(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """With client credentials too, the token belongs to the authenticated client."""
    forge_oauth_server.add_assertion_issuer(ISSUER, RSA_KEY)
    data = {
        "grant_type": JWT_BEARER,
        "assertion": _bearer_assertion(forge_oauth_server, forge_clock),
    }
    assert _post(forge_oauth_server, data).status_code == 200
    assert forge_oauth_server.token_requests[0].client_auth_method == "client_secret_basic"


@pytest.mark.parametrize(
    ("claims", "key", "description"),
    [
        ({}, OTHER_EC_KEY, "does not verify"),
        ({"iss": "stranger"}, RSA_KEY, "not a registered issuer"),
        ({"sub": None}, RSA_KEY, "sub is missing"),
        ({"aud": "https://elsewhere.invalid"}, RSA_KEY, "aud"),
        ({"exp": 0}, RSA_KEY, "expired"),
    ],
)
def test_a_bad_jwt_bearer_assertion_is_invalid_grant(
    forge_oauth_server: OAuthServer,
    forge_clock: FakeClock,
    claims: dict[str, Any],
    key: Any,
    description: str,
) -> None:
    """Wrong key, unknown issuer, no sub, wrong aud or expired: 400 invalid_grant."""
    forge_oauth_server.add_assertion_issuer(ISSUER, RSA_KEY)
    body = assertion_claims(
        ISSUER, forge_oauth_server.token_url, forge_clock.now(), sub="user@example.com"
    )
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    alg = "ES256" if key is OTHER_EC_KEY else "RS256"
    data = {"grant_type": JWT_BEARER, "assertion": sign(body, key, alg)}
    response = _post(forge_oauth_server, data, auth=None)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_grant")
    assert description in response.json()["error_description"]
    assert forge_oauth_server.fetch_count == 0


def test_a_jwt_bearer_assertion_works_once(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """Its jti is remembered: the same assertion again is invalid_grant; no assertion is
    invalid_request."""
    forge_oauth_server.add_assertion_issuer(ISSUER, RSA_KEY)
    data = {
        "grant_type": JWT_BEARER,
        "assertion": _bearer_assertion(forge_oauth_server, forge_clock),
    }
    assert _post(forge_oauth_server, data, auth=None).status_code == 200
    assert _post(forge_oauth_server, data, auth=None).json()["error"] == "invalid_grant"
    missing = _post(forge_oauth_server, {"grant_type": JWT_BEARER}, auth=None)
    assert missing.json()["error"] == "invalid_request"


# -- token exchange ----------------------------------------------------------------------------


def test_token_exchange_of_a_token_this_server_issued(forge_oauth_server: OAuthServer) -> None:
    """RFC 8693: the subject's identity and scope carry over; issued_token_type is answered;
    audience and resource may repeat and are recorded with actor and requested type."""
    subject = _token(forge_oauth_server, scope="orders")
    actor = _token(forge_oauth_server)
    data = [
        ("grant_type", EXCHANGE),
        ("subject_token", subject),
        ("subject_token_type", ACCESS),
        ("actor_token", actor),
        ("actor_token_type", ACCESS),
        ("audience", "billing"),
        ("audience", "shipping"),
        ("resource", "https://billing.example/api"),
        ("requested_token_type", ACCESS),
    ]
    response = _post(forge_oauth_server, data)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["issued_token_type"], body["token_type"], body["scope"]) == (
        ACCESS,
        "Bearer",
        "orders",
    )
    assert "refresh_token" not in body
    record = forge_oauth_server.token_requests[-1]
    assert record.exchange == {
        "subject_token_type": ACCESS,
        "actor_token_type": ACCESS,
        "audience": ("billing", "shipping"),
        "resource": ("https://billing.example/api",),
        "requested_token_type": ACCESS,
        "subject": "forge-user",
        "actor": "forge-user",
        "issued_token_type": ACCESS,
    }
    assert subject not in repr(record)
    assert actor not in repr(record)


def test_token_exchange_of_a_registered_external_token_and_a_jwt(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """A token registered with add_subject_token, or a JWT from a registered issuer, works."""
    forge_oauth_server.add_subject_token("upstream-tok", subject="alice", scope="read")
    forge_oauth_server.add_assertion_issuer("https://idp.example", EC_KEY)
    jwt_subject = sign(
        {
            "iss": "https://idp.example",
            "sub": "bob",
            "exp": int(forge_clock.now().timestamp()) + 60,
        },
        EC_KEY,
        "ES256",
    )
    for token, token_type in (("upstream-tok", ACCESS), (jwt_subject, JWT_TYPE)):
        data = {"grant_type": EXCHANGE, "subject_token": token, "subject_token_type": token_type}
        assert _post(forge_oauth_server, data).status_code == 200
    subjects = [r.exchange["subject"] for r in forge_oauth_server.token_requests if r.exchange]
    assert subjects == ["alice", "bob"]


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"subject_token_type": ACCESS}, "invalid_request"),
        ({"subject_token": "made-up", "subject_token_type": ACCESS}, "invalid_request"),
        ({"subject_token": "made-up", "subject_token_type": JWT_TYPE}, "invalid_request"),
        ({"subject_token": "$own", "subject_token_type": JWT_TYPE}, "invalid_request"),
        (
            {"subject_token": "$own", "subject_token_type": ACCESS, "actor_token": "x"},
            "invalid_request",
        ),
        (
            {
                "subject_token": "$own",
                "subject_token_type": ACCESS,
                "requested_token_type": "urn:ietf:params:oauth:token-type:saml2",
            },
            "invalid_request",
        ),
    ],
)
def test_token_exchange_refusals(
    forge_oauth_server: OAuthServer, fields: dict[str, str], error: str
) -> None:
    """Missing or unknown subject tokens, a wrong type, a lone actor token and an
    unsupported requested type are invalid_request (RFC 8693 section 2.2.2)."""
    own = _token(forge_oauth_server)
    data = {"grant_type": EXCHANGE, **{k: own if v == "$own" else v for k, v in fields.items()}}
    response = _post(forge_oauth_server, data)
    assert (response.status_code, response.json()["error"]) == (400, error)
    assert forge_oauth_server.fetch_count == 1


def test_a_revoked_or_expired_subject_token_cannot_be_exchanged(
    forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """Revocation and expiry on the server's clock both end a token's use as a subject."""
    revoked, expiring = _token(forge_oauth_server), _token(forge_oauth_server)
    forge_oauth_server.revoke(revoked)
    forge_clock.advance(3600)
    for token in (revoked, expiring):
        data = {"grant_type": EXCHANGE, "subject_token": token, "subject_token_type": ACCESS}
        assert _post(forge_oauth_server, data).json()["error"] == "invalid_request"


# -- grants a test adds ------------------------------------------------------------------------


def test_a_registered_grant_handler_serves_its_grant_type(
    forge_oauth_server: OAuthServer,
) -> None:
    """A mapping adds fields to the issued token, a Reply is sent as is, None issues plainly;
    unregistered grants stay unsupported and the handler is listed by discovery."""
    seen: list[tuple[Mapping[str, str], str | None]] = []

    def device(form: Mapping[str, str], client_id: str | None) -> Reply | Mapping[str, Any] | None:
        seen.append((dict(form), client_id))
        if form.get("device_code") == "pending":
            return Reply(status=400, json={"error": "authorization_pending"})
        if form.get("device_code") == "plain":
            return None
        return {"scope": "tv", "id_token": "header.claims.sig"}

    grant = "urn:ietf:params:oauth:grant-type:device_code"
    forge_oauth_server.add_grant_handler(grant, device)
    pending = _post(forge_oauth_server, {"grant_type": grant, "device_code": "pending"})
    done = _post(forge_oauth_server, {"grant_type": grant, "device_code": "ok"}, auth=None)
    plain = _post(forge_oauth_server, {"grant_type": grant, "device_code": "plain"})
    other = _post(forge_oauth_server, {"grant_type": "urn:other"})
    assert (pending.status_code, pending.json()["error"]) == (400, "authorization_pending")
    assert (done.json()["scope"], done.json()["id_token"]) == ("tv", "header.claims.sig")
    assert set(plain.json()) == {"access_token", "token_type", "expires_in"}
    assert other.json()["error"] == "unsupported_grant_type"
    assert [client for _, client in seen] == ["forge-client", None, "forge-client"]
    assert forge_oauth_server.grant_counts == {grant: 2}
    grants = requests.get(forge_oauth_server.discovery_url, timeout=5).json()
    assert grant in grants["grant_types_supported"]
    with pytest.raises(TypeError):
        forge_oauth_server.add_grant_handler(grant, "not callable")  # type: ignore[arg-type]

"""Signing helpers for the OAuthServer tests, and the server's own JOSE pieces checked
against joserfc: thumbprints, ``ath``, HMAC and public-key verification."""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pytest
from joserfc import jwk, jwt

from requestforge import ConfigurationError
from requestforge_testing._oauth_clients import ClientRegistry
from requestforge_testing._oauth_jose import (
    BadJWT,
    ath,
    b64url,
    jwk_thumbprint,
    parse_jwt,
    public_keys,
    verify_asymmetric,
    verify_hmac,
)

#: Made once per run: RSA key generation is the slow part of these tests.
RSA_KEY = jwk.RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
EC_KEY = jwk.ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
OTHER_EC_KEY = jwk.ECKey.generate_key("P-256")

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def sign(claims: Mapping[str, Any], key: Any, alg: str, **header: Any) -> str:
    """A compact JWS of ``claims`` signed by ``key`` (a joserfc key)."""
    return jwt.encode({"alg": alg, **header}, dict(claims), key, algorithms=[alg])


def sign_hmac(claims: Mapping[str, Any], secret: str, alg: str = "HS256", typ: str = "JWT") -> str:
    """HS256 by hand: joserfc warns about short secrets, real client secrets are short."""
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    head = b64url(json.dumps({"alg": alg, "typ": typ}).encode())
    body = b64url(json.dumps(dict(claims)).encode())
    mac = hmac.new(secret.encode(), f"{head}.{body}".encode(), digest).digest()
    return f"{head}.{body}.{b64url(mac)}"


def assertion_claims(
    client_id: str, audience: str | list[str], now: datetime, **extra: Any
) -> dict[str, Any]:
    """RFC 7523 section 3 claims for a client assertion valid for a minute from ``now``."""
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "exp": int(now.timestamp()) + 60,
        "iat": int(now.timestamp()),
        "jti": uuid.uuid4().hex,
    }
    claims.update(extra)
    return {k: v for k, v in claims.items() if v is not None}


def dpop_proof(
    key: Any,
    method: str,
    url: str,
    now: datetime,
    *,
    access_token: str | None = None,
    alg: str = "ES256",
    header: Mapping[str, Any] | None = None,
    **claims: Any,
) -> str:
    """An RFC 9449 proof by ``key`` for ``method`` ``url``, with ``ath`` for a token."""
    body: dict[str, Any] = {
        "jti": uuid.uuid4().hex,
        "htm": method,
        "htu": url,
        "iat": int(now.timestamp()),
    }
    if access_token is not None:
        body["ath"] = ath(access_token)
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    head = {"typ": "dpop+jwt", "jwk": key.as_dict(private=False), **(header or {})}
    return sign(body, key, alg, **head)


def form(**fields: str) -> dict[str, str]:
    """Form fields, spelled as keyword arguments."""
    return dict(fields)


# -- the server's JOSE pieces ------------------------------------------------------------------


def test_thumbprint_and_ath_match_rfc_7638_and_rfc_9449() -> None:
    """jwk_thumbprint agrees with joserfc's RFC 7638 thumbprint and ath is b64url(sha256)."""
    assert jwk_thumbprint(EC_KEY.as_dict(private=False)) == EC_KEY.thumbprint()
    expected = b64url(hashlib.sha256(b"forge-at-1").digest())
    assert ath("forge-at-1") == expected
    assert "=" not in expected


def test_hmac_verification_takes_the_right_secret_only() -> None:
    """An HS256 assertion verifies with its secret, not with another, and HS512 too."""
    token = parse_jwt(sign_hmac({"a": 1}, "s3cret"))
    verify_hmac(token, "s3cret")
    with pytest.raises(BadJWT, match="does not verify"):
        verify_hmac(token, "other")
    verify_hmac(parse_jwt(sign_hmac({"a": 1}, "s3cret", "HS512")), "s3cret")


def test_public_keys_take_a_jwk_a_jwks_a_pem_and_a_joserfc_key() -> None:
    """Every way of registering a key verifies the same RS256 signature."""
    token = parse_jwt(sign({"a": 1}, RSA_KEY, "RS256", kid="rsa-1"))
    public = RSA_KEY.as_dict(private=False)
    pem = RSA_KEY.as_pem(private=False)
    for key in (public, {"keys": [EC_KEY.as_dict(private=False), public]}, pem, RSA_KEY):
        public_keys(key).verify(token)
    with pytest.raises(BadJWT, match="any registered key"):
        public_keys(OTHER_EC_KEY.as_dict(private=False)).verify(token)


def test_public_keys_refuse_what_is_not_a_public_key() -> None:
    """A symmetric key, garbage and an empty JWKS are refused when registered."""
    bad: object
    for bad in ({"kty": "oct", "k": "c2VjcmV0"}, "not a key", {"keys": []}):
        with pytest.raises(ValueError, match="key"):
            public_keys(bad)


def test_verify_asymmetric_refuses_none_hmac_and_private_jwks() -> None:
    """alg none and HS256 never verify with a public key; a jwk header with d is refused."""
    unsigned = parse_jwt(b64url(b'{"alg":"none"}') + "." + b64url(b"{}") + ".")
    with pytest.raises(BadJWT, match="not allowed"):
        public_keys(EC_KEY).verify(unsigned)
    hs = parse_jwt(sign_hmac({}, "x"))
    with pytest.raises(BadJWT, match="not allowed"):
        public_keys(EC_KEY).verify(hs)
    signed = parse_jwt(sign({}, EC_KEY, "ES256"))
    with pytest.raises(BadJWT, match="private key"):
        verify_asymmetric(signed, EC_KEY.as_dict(private=True))
    assert verify_asymmetric(signed, EC_KEY.as_dict(private=False)) == EC_KEY.thumbprint()


def test_parse_jwt_refuses_what_is_not_a_compact_jws() -> None:
    """Two parts, bad base64 or JSON arrays are not JWTs."""
    for bad in ("a.b", "!!.!!.!!", f"{b64url(b'[1]')}.{b64url(b'{}')}.", ""):
        with pytest.raises(BadJWT):
            parse_jwt(bad)


def test_without_joserfc_a_public_key_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registering a key without joserfc installed is a ConfigurationError naming [jwt];
    HMAC assertions still verify, as they need only the standard library."""
    monkeypatch.setitem(sys.modules, "joserfc", None)
    with pytest.raises(ConfigurationError, match=r"requestforge\[jwt\]"):
        public_keys(EC_KEY.as_dict(private=False))
    verify_hmac(parse_jwt(sign_hmac({"a": 1}, "s3cret")), "s3cret")


def test_a_registered_secret_stays_out_of_reprs() -> None:
    """The client registry's entries never show a secret."""
    registry = ClientRegistry({"svc": "hunter2-secret"}, {}, {})
    assert "hunter2" not in repr(registry._clients)

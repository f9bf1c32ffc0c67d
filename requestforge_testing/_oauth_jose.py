"""JOSE for ``OAuthServer``: verify compact JWS, import public keys, RFC 7638 thumbprints.

joserfc is imported on first use, so a server that never sees a signed JWT needs nothing
beyond the testing extra; HMAC (``client_secret_jwt``) is checked here with ``hmac``, so a
short client secret works as real servers take it (joserfc warns about short HMAC keys).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from requestforge import ConfigurationError

__all__ = [
    "ASYMMETRIC_ALGS",
    "HMAC_ALGS",
    "BadJWT",
    "ParsedJWT",
    "PublicKeys",
    "ath",
    "b64url",
    "jwk_thumbprint",
    "parse_jwt",
    "public_keys",
    "verify_asymmetric",
    "verify_hmac",
]

#: Algorithms checked with a registered public key (never "none", never HMAC).
ASYMMETRIC_ALGS: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
#: Algorithms checked with a shared secret.
HMAC_ALGS: Final = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}

_HINT: Final = "signed JWTs need joserfc: pip install 'requestforge[jwt]'"


class BadJWT(Exception):
    """A JWT that is malformed, wrongly signed, or signed with an algorithm not allowed."""


@dataclass(frozen=True)
class ParsedJWT:
    """A compact JWS split and decoded, not yet verified."""

    header: Mapping[str, Any]
    claims: Mapping[str, Any]
    signing_input: bytes
    signature: bytes
    compact: str


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JOSE writes it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def ath(token: str) -> str:
    """RFC 9449 section 4.2: base64url of the SHA-256 of the access token."""
    return b64url(hashlib.sha256(token.encode("ascii", "replace")).digest())


def parse_jwt(token: str) -> ParsedJWT:
    """Split a compact JWS into header, claims and signature; BadJWT if it is not one."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise BadJWT("not a compact JWS")
    try:
        header = json.loads(_unb64url(parts[0]))
        claims = json.loads(_unb64url(parts[1]))
        signature = _unb64url(parts[2])
    except (ValueError, binascii.Error):
        raise BadJWT("the JWT does not decode") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise BadJWT("the JWT header and claims must be JSON objects")
    if not isinstance(header.get("alg"), str):
        raise BadJWT("the JWT header has no alg")
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    return ParsedJWT(header, claims, signing_input, signature, token)


def verify_hmac(jwt: ParsedJWT, secret: str) -> None:
    """Check an HS256/384/512 signature made with ``secret``."""
    digest = HMAC_ALGS.get(jwt.header["alg"])
    if digest is None:
        raise BadJWT(f"alg {jwt.header['alg']!r} is not an HMAC algorithm")
    expected = hmac.new(secret.encode("utf-8"), jwt.signing_input, digest).digest()
    if not hmac.compare_digest(expected, jwt.signature):
        raise BadJWT("the signature does not verify")


def _joserfc() -> Any:
    try:
        from joserfc import errors, jwk, jws  # noqa: PLC0415 - only signed-JWT tests need it
    except ImportError as exc:
        raise ConfigurationError(_HINT) from exc
    return jwk, jws, errors


class PublicKeys:
    """One client's or issuer's verification keys: a JWK, a JWKS or PEM, imported once."""

    def __init__(self, keys: list[Any]) -> None:
        self._keys = keys

    def __repr__(self) -> str:
        return f"PublicKeys({len(self._keys)} key(s))"

    def verify(self, jwt: ParsedJWT) -> None:
        """Check the signature with the key named by ``kid``, else with each key in turn."""
        alg = jwt.header["alg"]
        if alg not in ASYMMETRIC_ALGS:
            raise BadJWT(f"alg {alg!r} is not allowed for a public key")
        _, jws, errors = _joserfc()
        # The algorithm itself, not deserialize_compact: that caps headers at 512 bytes, and
        # a DPoP proof's header carries a whole RSA key.
        algorithm = jws.JWSRegistry.algorithms[alg]
        family = "EC" if alg.startswith("ES") else "RSA"
        kid = jwt.header.get("kid")
        for key in self._keys:
            if key.key_type != family or (kid is not None and key.kid not in (None, kid)):
                continue
            try:
                if algorithm.verify(jwt.signing_input, jwt.signature, key):
                    return
            except (errors.JoseError, ValueError, TypeError):
                continue
        raise BadJWT("the signature does not verify with any registered key")


def public_keys(key: object) -> PublicKeys:
    """Import ``key``: a joserfc key, a JWK or JWKS (``{"keys": [...]}``) dict, or PEM."""
    jwk, _, errors = _joserfc()
    if isinstance(key, Mapping) and "keys" in key:
        members = list(key["keys"])
    elif isinstance(key, list | tuple):
        members = list(key)
    else:
        members = [key]
    imported = [_import_public(jwk, errors, member) for member in members]
    if not imported:
        raise ValueError("no key given")
    return PublicKeys(imported)


def _import_public(jwk: Any, errors: Any, member: object) -> Any:
    """One public key from a JWK dict, PEM text or a joserfc key (its public half)."""
    if hasattr(member, "as_dict"):
        member = member.as_dict(private=False)
    if isinstance(member, Mapping):
        if member.get("kty") not in ("RSA", "EC", "OKP"):
            raise ValueError("a key must be an RSA, EC or OKP JWK (a symmetric key is a secret)")
        attempts: list[tuple[object, str]] = [(dict(member), member["kty"])]
    elif isinstance(member, str | bytes) and "-----BEGIN" in str(member):
        attempts = [(member, kty) for kty in ("RSA", "EC", "OKP")]
    else:
        raise ValueError(f"not a public key, JWK, JWKS or PEM: {type(member).__name__}")
    for data, kty in attempts:
        try:
            return jwk.import_key(data, kty)
        except (errors.JoseError, ValueError, TypeError):
            continue
    raise ValueError("not a valid public key, JWK, JWKS or PEM")


def verify_asymmetric(jwt: ParsedJWT, header_jwk: object) -> str:
    """Check a JWT against the public key in its own header (DPoP); return its thumbprint."""
    if not isinstance(header_jwk, Mapping):
        raise BadJWT("the jwk header is missing")
    if any(name in header_jwk for name in ("d", "p", "q", "dp", "dq", "qi", "k")):
        raise BadJWT("the jwk header holds a private key")
    if header_jwk.get("kty") not in ("EC", "RSA"):
        raise BadJWT("the jwk header must be an EC or RSA public key")
    try:
        keys = public_keys(header_jwk)
    except ValueError:
        raise BadJWT("the jwk header is not a valid public key") from None
    keys.verify(jwt)
    return jwk_thumbprint(header_jwk)


def jwk_thumbprint(public_jwk: Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint of a public JWK (the DPoP ``jkt``)."""
    jwk, _, errors = _joserfc()
    try:
        return str(jwk.import_key(dict(public_jwk), public_jwk.get("kty")).thumbprint())
    except (errors.JoseError, ValueError, TypeError):
        raise BadJWT("the jwk is not a valid key") from None

"""The few JOSE operations the library needs, and the one place that imports joserfc.

joserfc is the ``jwt`` extra (``pip install requestforge[jwt]``); the base install does not
have it. Every JWT feature calls :func:`require_joserfc` (through the helpers here), so using
one without the extra is a :class:`~requestforge.ConfigurationError` naming that command,
raised where the feature is configured, never an ``ImportError`` at import time.

Keys are accepted as PEM (``str`` or ``bytes``), as a JWK ``dict`` or as a joserfc key, and
checked against the algorithm they will sign with, so a bad key or key/algorithm pair fails
at construction. Signing, the public JWK and the RFC 7638 thumbprint work on the loaded key.
Everything here is for the library and its pytest plugin only (no ``__all__``: nothing is
public API).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Final

from requestforge._exceptions import ConfigurationError

#: The signing algorithms and the JWK key type each needs (RFC 7518 section 3.1).
ALGORITHMS: Final = {"HS256": "oct", "RS256": "RSA", "PS256": "RSA", "ES256": "EC"}
#: ES256 signs with P-256 only (RFC 7518 section 3.4).
_ES256_CURVE: Final = "P-256"
#: RFC 7518 section 3.2: an HS256 key must be at least as long as the hash, 256 bits.
_MIN_HMAC_BYTES: Final = 32
#: An RSA key shorter than this is refused (RFC 7518 section 3.3 says 2048 or more).
_MIN_RSA_BITS: Final = 2048
#: The private members of a JWK (RFC 7518 section 6): never shown, declared as secrets.
_PRIVATE_MEMBERS: Final = ("d", "p", "q", "dp", "dq", "qi", "k")
_INSTALL: Final = "pip install requestforge[jwt]"


def require_joserfc(feature: str) -> ModuleType:
    """The ``joserfc.jwk`` module, or a ConfigurationError naming the extra for ``feature``."""
    try:
        importlib.import_module("joserfc.jwt")
        return importlib.import_module("joserfc.jwk")
    except ImportError as exc:
        raise ConfigurationError(f"{feature} needs the joserfc library: {_INSTALL}") from exc


def load_key(key: object, *, alg: str, what: str = "key") -> Any:
    """``key`` (PEM text or bytes, a JWK dict, or a joserfc key) loaded for signing with
    ``alg``: a private key of the right type and size, else a ConfigurationError that never
    quotes the key."""
    if alg not in ALGORITHMS:
        raise ConfigurationError(
            f"alg must be one of {sorted(ALGORITHMS)}, got {alg!r}"
            if isinstance(alg, str)
            else f"alg must be a string, got {type(alg).__name__}"
        )
    jwk = require_joserfc(f"signing with {alg}")
    kty = ALGORITHMS[alg]
    if isinstance(key, jwk.OctKey | jwk.RSAKey | jwk.ECKey | jwk.OKPKey):
        loaded = key
    elif isinstance(key, str | bytes | Mapping):
        data: Any = dict(key) if isinstance(key, Mapping) else key
        try:
            if kty == "oct" and not isinstance(key, Mapping):
                raw = key.encode() if isinstance(key, str) else key
                _check_hmac_length(len(raw), alg=alg, what=what)
                loaded = jwk.OctKey.import_key(raw)
            else:
                loaded = jwk.import_key(data, None if isinstance(key, Mapping) else kty)
        except ConfigurationError:
            raise
        except Exception as exc:  # noqa: BLE001 - joserfc and cryptography raise many kinds
            raise ConfigurationError(
                f"{what} is not a usable {kty} key for {alg} ({type(exc).__name__})"
            ) from None
    else:
        raise ConfigurationError(
            f"{what} must be PEM text or bytes, a JWK dict or a joserfc key, "
            f"got {type(key).__name__}"
        )
    _check(loaded, alg=alg, kty=kty, what=what)
    return loaded


def _check(key: Any, *, alg: str, kty: str, what: str) -> None:
    if key.key_type != kty:
        raise ConfigurationError(f"{what} has key type {key.key_type}; {alg} needs {kty}")
    if kty == "oct":
        _check_hmac_length(len(key.raw_value), alg=alg, what=what)
        return
    if not key.is_private:
        raise ConfigurationError(f"{what} is a public key; {alg} signs with the private key")
    if kty == "RSA" and key.raw_value.key_size < _MIN_RSA_BITS:
        raise ConfigurationError(
            f"{what} is a {key.raw_value.key_size}-bit RSA key; {alg} needs {_MIN_RSA_BITS} bits"
        )
    if kty == "EC" and key.curve_name != _ES256_CURVE:
        raise ConfigurationError(f"{what} is on curve {key.curve_name}; {alg} needs P-256")


def _check_hmac_length(size: int, *, alg: str, what: str) -> None:
    if size < _MIN_HMAC_BYTES:
        raise ConfigurationError(
            f"{what} is {size} bytes; {alg} needs at least {_MIN_HMAC_BYTES} (RFC 7518 section 3.2)"
        )


def sign_jwt(
    claims: Mapping[str, Any],
    key: Any,
    *,
    alg: str,
    headers: Mapping[str, Any] | None = None,
) -> str:
    """A compact JWS of ``claims`` signed by ``key`` (from :func:`load_key`) with ``alg``;
    ``headers`` are added to ``{"alg": alg, "typ": "JWT"}`` and may override ``typ``."""
    require_joserfc("signing a JWT")
    from joserfc import jwt  # noqa: PLC0415 - the jwt extra is optional

    header = {"alg": alg, "typ": "JWT", **(headers or {})}
    return str(jwt.encode(header, dict(claims), key, algorithms=[alg]))


def public_jwk(key: Any) -> dict[str, Any]:
    """The public members of an asymmetric ``key`` as a JWK dict (never a private member)."""
    require_joserfc("a public JWK")
    if key.key_type == "oct":
        raise ConfigurationError("a symmetric (oct) key has no public part")
    jwk: dict[str, Any] = dict(key.as_dict(private=False))
    return {name: value for name, value in jwk.items() if name not in _PRIVATE_MEMBERS}


def thumbprint(key: Any) -> str:
    """The RFC 7638 SHA-256 JWK thumbprint of ``key``'s public part, base64url."""
    require_joserfc("a JWK thumbprint")
    return str(key.thumbprint())


def key_secrets(given: object, key: Any) -> list[str]:
    """The secrets of a key: its PEM text if it was given as PEM, and its private members."""
    found = secret_parts(key)
    if isinstance(given, str | bytes):
        pem = given.decode("utf-8", "replace") if isinstance(given, bytes) else given
        found.append(pem.strip())
    return found


def secret_parts(key: Any) -> list[str]:
    """The private members of ``key`` as text, to declare as secrets (see ``_secrets``)."""
    values = key.as_dict(private=True)
    return [str(values[name]) for name in _PRIVATE_MEMBERS if isinstance(values.get(name), str)]

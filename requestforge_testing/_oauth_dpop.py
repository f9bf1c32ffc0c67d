"""DPoP proofs (RFC 9449) as ``OAuthServer`` checks them, and its server nonces.

A proof is a JWT with ``typ: dpop+jwt``, an ES256 or RS256 signature by the public key in
its own ``jwk`` header, and claims ``htm`` (the method), ``htu`` (the URL, query and
fragment ignored), ``iat`` within a window of the server's clock, a ``jti`` never seen
before, ``ath`` (the hash of the access token) on API requests, and ``nonce`` when the
server demands one.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from requestforge_testing._oauth_common import url_without_query
from requestforge_testing._oauth_jose import BadJWT, ath, parse_jwt, verify_asymmetric

__all__ = ["DPOP_ALGS", "DPoPError", "DPoPState"]

#: The algorithms a proof may be signed with (``dpop_signing_alg_values_supported``).
DPOP_ALGS: Final = ("ES256", "RS256")


class DPoPError(Exception):
    """A proof was refused: ``error`` is ``invalid_dpop_proof`` or ``use_dpop_nonce``."""

    def __init__(self, error: str, description: str, nonce: str | None) -> None:
        super().__init__(description)
        self.error, self.description, self.nonce = error, description, nonce


@dataclass
class _Settings:
    required: bool = False
    nonce_required: bool = False
    nonce: str | None = None


class DPoPState:
    """Whether proofs and nonces are required, the current nonce and the ``jti`` seen."""

    #: How far ``iat`` may be from the server's clock, in seconds, either way.
    IAT_WINDOW: Final = 60.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settings = _Settings()
        self._seen: set[str] = set()

    def reset(self) -> None:
        with self._lock:
            self._settings = _Settings()
            self._seen = set()

    @property
    def required(self) -> bool:
        with self._lock:
            return self._settings.required

    @required.setter
    def required(self, value: bool) -> None:
        with self._lock:
            self._settings.required = value

    @property
    def nonce_required(self) -> bool:
        with self._lock:
            return self._settings.nonce_required

    @nonce_required.setter
    def nonce_required(self, value: bool) -> None:
        with self._lock:
            self._settings.nonce_required = value
            if value and self._settings.nonce is None:
                self._settings.nonce = secrets.token_urlsafe(16)

    @property
    def nonce(self) -> str | None:
        """The nonce proofs must carry now; None unless nonces are required."""
        with self._lock:
            return self._settings.nonce if self._settings.nonce_required else None

    def rotate_nonce(self) -> str:
        with self._lock:
            self._settings.nonce = secrets.token_urlsafe(16)
            return self._settings.nonce

    def check(
        self,
        proof: str | None,
        *,
        method: str,
        url: str,
        now: datetime,
        access_token: str | None = None,
    ) -> str | None:
        """The proof key's thumbprint (``jkt``), or None when no proof was sent."""
        nonce = self.nonce
        if proof is None:
            return None
        if "," in proof or not proof.strip():
            raise DPoPError("invalid_dpop_proof", "send exactly one DPoP header", nonce)
        try:
            jwt = parse_jwt(proof.strip())
            header, claims = jwt.header, jwt.claims
            if header.get("typ") != "dpop+jwt":
                raise BadJWT("typ must be dpop+jwt")
            if header["alg"] not in DPOP_ALGS:
                raise BadJWT(f"alg {header['alg']!r} is not one of {DPOP_ALGS}")
            jkt = verify_asymmetric(jwt, header.get("jwk"))
            if claims.get("htm") != method:
                raise BadJWT(f"htm {claims.get('htm')!r} is not {method}")
            _check_claims(claims, url, now.timestamp() - self.IAT_WINDOW, access_token)
            iat = claims["iat"]
            if iat - now.timestamp() > self.IAT_WINDOW:
                raise BadJWT(f"iat is more than {self.IAT_WINDOW:g}s ahead of the server's clock")
            jti = claims.get("jti")
            if not isinstance(jti, str) or not jti:
                raise BadJWT("jti is missing")
        except BadJWT as exc:
            raise DPoPError("invalid_dpop_proof", str(exc), nonce) from None
        if nonce is not None and claims.get("nonce") != nonce:
            raise DPoPError("use_dpop_nonce", "use the server's DPoP-Nonce", nonce)
        with self._lock:
            if jti in self._seen:
                raise DPoPError("invalid_dpop_proof", "the jti was seen before: a replay", nonce)
            self._seen.add(jti)
        return jkt


def _check_claims(
    claims: Mapping[str, Any], url: str, oldest: float, access_token: str | None
) -> None:
    """``htu``, ``iat`` (not before ``oldest``) and ``ath``: what a proof says about its use."""
    htu = claims.get("htu")
    if not isinstance(htu, str) or url_without_query(htu) != url_without_query(url):
        raise BadJWT(f"htu {htu!r} is not {url_without_query(url)}")
    iat = claims.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, int | float):
        raise BadJWT("iat is missing")
    if iat < oldest:
        raise BadJWT("iat is too old for the server's clock")
    if access_token is not None and claims.get("ath") != ath(access_token):
        raise BadJWT("ath is not the hash of the access token")

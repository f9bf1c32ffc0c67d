"""DPoP (RFC 9449): a client key pair that proves possession of the tokens bound to it.

A :class:`DPoPKey` signs one proof per request (a JWT with ``typ: dpop+jwt`` and its public
key in the ``jwk`` header) saying which method and URL it is for (``htm``, ``htu`` without
query or fragment), when (``iat``), a fresh ``jti``, the hash of the access token (``ath``)
on API requests and the server's ``nonce`` when it has sent one. Nonces are remembered per
origin: a new mapping is published under a lock on every change, so readers never lock.

An OAuth 2.0 provider given ``dpop=`` sends a proof with every token request, retries once
on ``use_dpop_nonce`` and checks that the token's ``cnf.jkt`` is the key's thumbprint; a
:class:`~requestforge.TokenAuthHook` whose manager's provider has a key sends
``Authorization: DPoP <token>`` and a proof, and resends once on a 401 ``use_dpop_nonce``
challenge. Proofs travel in the ``DPoP`` header, declared secret (never logged or
cassetted in clear); the key's private members are declared too.
"""

from __future__ import annotations

import base64
import hashlib
import secrets as _random
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, ClassVar, Final, TypeVar
from urllib.parse import urlsplit, urlunsplit

from requestforge._challenge import parse_challenges, token_errors
from requestforge._clock import Clock, get_default_clock
from requestforge._exceptions import ConfigurationError, TokenEndpointError, TokenResponseError
from requestforge._response import header_value
from requestforge._secrets import Secrets, declare_secrets
from requestforge._validate import text, valid_clock
from requestforge.tokens import _jose
from requestforge.tokens._data import TokenData

__all__ = ["DPoPKey"]

#: The header a proof travels in (RFC 9449 section 4.1), secret by name.
PROOF_HEADER: Final = "DPoP"
#: The header a server sends its nonce in (RFC 9449 section 8).
NONCE_HEADER: Final = "DPoP-Nonce"
#: The error that asks for the nonce: at the token endpoint (400) and the API (401).
USE_DPOP_NONCE: Final = "use_dpop_nonce"
#: The algorithms a DPoP key may sign with: asymmetric only (RFC 9449 section 4.2).
ALGORITHMS: Final = ("ES256", "RS256", "PS256")
#: The longest nonce remembered; a longer ``DPoP-Nonce`` is a broken server, ignored.
_MAX_NONCE: Final = 1024
_PROOF_SECRETS: Final = Secrets.of(headers=[PROOF_HEADER])
_T = TypeVar("_T")

declare_secrets(_PROOF_SECRETS)


class DPoPKey:
    """The key pair proofs are signed with: a new P-256 key (ES256) unless ``key`` is given.

    ``key`` is a private key as PEM text or bytes, a JWK dict or a joserfc key, checked
    against ``alg`` (``ES256``, ``RS256`` or ``PS256``). Give one key to one provider: its
    tokens are bound to it, and the nonces it learns are per origin. ``clock`` sets ``iat``
    (the default clock otherwise). Needs joserfc (``pip install requestforge[jwt]``).
    """

    #: Bytes of randomness in each ``jti``: unique per proof (RFC 9449 section 4.2).
    JTI_BYTES: ClassVar[int] = 24

    def __init__(
        self, key: object = None, *, alg: str = "ES256", clock: Clock | None = None
    ) -> None:
        if alg not in ALGORITHMS:
            raise ConfigurationError(
                f"alg must be one of {list(ALGORITHMS)} for DPoP, got {alg!r}"
                if isinstance(alg, str)
                else f"alg must be a string, got {type(alg).__name__}"
            )
        if key is None:
            jwk = _jose.require_joserfc("DPoP")
            key = (
                jwk.ECKey.generate_key("P-256") if alg == "ES256" else jwk.RSAKey.generate_key(2048)
            )
        self._key: Any = _jose.load_key(key, alg=alg, what="the DPoP key")
        self._alg = alg
        self._clock = valid_clock("clock", clock)
        self._jwk = MappingProxyType(_jose.public_jwk(self._key))
        self._thumbprint = _jose.thumbprint(self._key)
        self._lock = threading.Lock()
        self._nonces: Mapping[str, str] = MappingProxyType({})
        declare_secrets(Secrets.of(values=_jose.key_secrets(key, self._key)))

    @property
    def alg(self) -> str:
        """The JWS algorithm proofs are signed with."""
        return self._alg

    @property
    def public_jwk(self) -> Mapping[str, Any]:
        """The public key, as the JWK every proof carries."""
        return self._jwk

    @property
    def thumbprint(self) -> str:
        """The RFC 7638 SHA-256 thumbprint of the public key: a bound token's ``cnf.jkt``."""
        return self._thumbprint

    def proof(
        self,
        method: str,
        url: str,
        *,
        access_token: str | None = None,
        nonce: str | None = None,
        now: datetime | None = None,
    ) -> str:
        """A new proof for ``method`` ``url``: with ``ath`` when ``access_token`` is given,
        and ``nonce`` (the one remembered for the URL's origin unless given)."""
        method = text("method", method).upper()
        htu = proof_url(url)
        if now is None:
            now = (self._clock or get_default_clock()).now()
        claims: dict[str, Any] = {
            "jti": _random.token_urlsafe(self.JTI_BYTES),
            "htm": method,
            "htu": htu,
            "iat": int(now.timestamp()),
        }
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        nonce = nonce if nonce is not None else self.nonce_for(url)
        if nonce is not None:
            claims["nonce"] = nonce
        headers = {"typ": "dpop+jwt", "jwk": dict(self._jwk)}
        return _jose.sign_jwt(claims, self._key, alg=self._alg, headers=headers)

    def nonce_for(self, url: str) -> str | None:
        """The nonce last sent by ``url``'s origin, or None."""
        return self._nonces.get(_origin(url))

    def remember_nonce(self, url: str, headers: Mapping[str, str]) -> str | None:
        """Remember the ``DPoP-Nonce`` in a response from ``url`` (if any); return it."""
        nonce = header_value(headers, NONCE_HEADER)
        if nonce is None:
            return None
        nonce = nonce.strip()
        if not nonce or len(nonce) > _MAX_NONCE or not nonce.isprintable():
            return None
        origin = _origin(url)
        with self._lock:
            if self._nonces.get(origin) != nonce:
                self._nonces = MappingProxyType({**self._nonces, origin: nonce})
        return nonce

    def check_binding(self, token: TokenData) -> None:
        """Raise :class:`~requestforge.TokenResponseError` if ``token`` is bound
        (``cnf.jkt``) to another key; a token without ``cnf.jkt`` passes."""
        cnf = token.extra.get("cnf")
        jkt = cnf.get("jkt") if isinstance(cnf, Mapping) else None
        if jkt is None:
            return
        if jkt != self._thumbprint:
            raise TokenResponseError(
                "the token endpoint bound the token to another key: its cnf.jkt is not "
                "the DPoP key's thumbprint"
            )

    def __repr__(self) -> str:
        return f"DPoPKey(alg={self._alg!r}, thumbprint={self._thumbprint!r})"


def retry_for_nonce(key: DPoPKey, url: str, send: Callable[[], _T]) -> _T:
    """``send()`` a token request to ``url``; once more if the server refused it with
    ``use_dpop_nonce`` and sent the nonce (remembered by ``send``), as RFC 9449 section 8
    asks."""
    try:
        return send()
    except TokenEndpointError as exc:
        if exc.error != USE_DPOP_NONCE or key.nonce_for(url) is None:
            raise
        return send()


def key_of(owner: object) -> DPoPKey | None:
    """``owner``'s ``dpop`` key (a provider's, a pipeline step's), or None if it has none."""
    key = getattr(owner, "dpop", None)
    return key if isinstance(key, DPoPKey) else None


def proof_url(url: str) -> str:
    """``url`` without its query and fragment: a proof's ``htu`` (RFC 9449 section 4.2)."""
    parts = urlsplit(text("url", url).strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError("a DPoP proof needs an absolute http(s) URL")
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "", ""))


def access_token_hash(access_token: str) -> str:
    """``ath``: the base64url SHA-256 of the access token, unpadded."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def asks_for_nonce(headers: Mapping[str, str]) -> bool:
    """True if an API's answer gives a ``DPoP-Nonce`` and its ``WWW-Authenticate`` has a
    ``DPoP`` ``use_dpop_nonce`` challenge: a resend with that nonce may succeed."""
    if not header_value(headers, NONCE_HEADER):
        return False
    challenges = parse_challenges(header_value(headers, "WWW-Authenticate"))
    return any(
        c.is_scheme("DPoP") and c.params["error"] == USE_DPOP_NONCE
        for c in token_errors(challenges)
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"

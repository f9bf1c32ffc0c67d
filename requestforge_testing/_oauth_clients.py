"""Client authentication for ``OAuthServer``: RFC 6749 2.3.1, RFC 7523 2.2, RFC 8705, none.

A client is registered with a secret (``client_secret_basic``, ``client_secret_post``,
``client_secret_jwt``), public keys (``private_key_jwt``), a certificate subject
(``tls_client_auth``), or none of these (a public client: ``none``). Assertions are
checked for alg, signature, ``iss`` = ``sub`` = client id, ``aud``, ``exp`` and a fresh
``jti``; a ``jti`` seen before is a replay.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

from requestforge_testing._oauth_common import NO_STORE, Refused, Verified, basic_credentials
from requestforge_testing._oauth_jose import (
    HMAC_ALGS,
    BadJWT,
    ParsedJWT,
    PublicKeys,
    parse_jwt,
    public_keys,
    verify_hmac,
)
from requestforge_testing._servers import RecordedRequest

__all__ = ["AUTH_METHODS", "CLIENT_ASSERTION_TYPE", "ClientRegistry", "check_claims"]

CLIENT_ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Every method the server verifies, by its RFC 7591 name.
AUTH_METHODS: Final = (
    "client_secret_basic",
    "client_secret_post",
    "client_secret_jwt",
    "private_key_jwt",
    "tls_client_auth",
    "none",
)


@dataclass
class _Client:
    secret: str | None = field(repr=False)
    keys: PublicKeys | None = None
    tls_subject: str | None = None
    methods: frozenset[str] | None = None  # None: whatever its credentials allow

    @property
    def public(self) -> bool:
        return self.secret is None and self.keys is None and self.tls_subject is None

    def allows(self, method: str) -> bool:
        return self.methods is None or method in self.methods


def check_claims(
    claims: Mapping[str, Any], audiences: Collection[str], now: datetime, seen: set[str]
) -> None:
    """RFC 7523 section 3: ``aud``, ``exp``, ``nbf`` and a fresh ``jti`` (kept in ``seen``)."""
    aud = claims.get("aud")
    auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not any(a in audiences for a in auds):
        raise BadJWT(f"aud {aud!r} names neither the token endpoint nor the issuer")
    exp, nbf, timestamp = claims.get("exp"), claims.get("nbf"), now.timestamp()
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise BadJWT("exp is missing")
    if timestamp >= exp:
        raise BadJWT("the assertion expired")
    if isinstance(nbf, int | float) and not isinstance(nbf, bool) and timestamp < nbf:
        raise BadJWT("the assertion is not valid yet (nbf)")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise BadJWT("jti is missing")
    if jti in seen:
        raise BadJWT("the jti was seen before: a replayed assertion")
    seen.add(jti)


def _invalid_client(description: str, *, basic: bool = False) -> Refused:
    headers = dict(NO_STORE)
    if basic:
        headers["WWW-Authenticate"] = 'Basic realm="forge"'
    return Refused("invalid_client", description, 401, headers)


class ClientRegistry:
    """The clients a server knows, and the ``jti`` values their assertions used. Thread-safe."""

    def __init__(
        self,
        secrets: Mapping[str, str | None],
        keys: Mapping[str, object],
        tls_subjects: Mapping[str, str],
    ) -> None:
        self._lock = threading.Lock()
        self._clients: dict[str, _Client] = {cid: _Client(s) for cid, s in secrets.items()}
        self._seen: dict[str, set[str]] = {}
        for client_id, key in keys.items():
            self._clients.setdefault(client_id, _Client(None)).keys = public_keys(key)
        for client_id, subject in tls_subjects.items():
            if not isinstance(subject, str) or not subject:
                raise ValueError(f"tls_clients must map client ids to subject names: {client_id!r}")
            self._clients.setdefault(client_id, _Client(None)).tls_subject = subject

    def add(
        self,
        client_id: str,
        secret: str | None = None,
        *,
        keys: object = None,
        tls_subject: str | None = None,
        auth_methods: Iterable[str] | None = None,
    ) -> None:
        """Register a client, replacing one of the same id."""
        if not isinstance(client_id, str) or not client_id:
            raise ValueError(f"client_id must be a non-empty string, got {client_id!r}")
        if secret is not None and not isinstance(secret, str):
            raise TypeError("secret must be a string or None")
        if tls_subject is not None and (not isinstance(tls_subject, str) or not tls_subject):
            raise ValueError("tls_subject must be a non-empty string (the certificate's CN)")
        methods = None if auth_methods is None else frozenset(auth_methods)
        if methods is not None and not methods <= set(AUTH_METHODS):
            raise ValueError(f"auth_methods must be among {AUTH_METHODS}, got {sorted(methods)}")
        client = _Client(secret, None if keys is None else public_keys(keys), tls_subject, methods)
        with self._lock:
            self._clients[client_id] = client

    def is_public(self, client_id: str) -> bool:
        with self._lock:
            client = self._clients.get(client_id)
        return client is not None and client.public

    def authenticate(
        self,
        request: RecordedRequest,
        form: Mapping[str, str],
        audiences: Collection[str],
        now: datetime,
        verified: Verified,
    ) -> str | None:
        """The authenticated client's id, None if the request names no client at all."""
        header = request.headers.get("Authorization")
        if header is not None and header[:6].lower() == "basic ":
            client_id, secret = basic_credentials(header)
            if "client_secret" in form or "client_assertion" in form:
                raise Refused("invalid_request", "use one client authentication method")
            if form.get("client_id", client_id) != client_id:
                raise Refused("invalid_request", "use one client authentication method")
            return self._by_secret(client_id, secret, "client_secret_basic", verified)
        if "client_assertion" in form or "client_assertion_type" in form:
            if "client_secret" in form:
                raise Refused("invalid_request", "use one client authentication method")
            return self._by_assertion(form, audiences, now, verified)
        named = form.get("client_id")
        if named is None:
            if "client_secret" in form:
                raise _invalid_client("client_secret without client_id")
            return None
        if "client_secret" in form:
            return self._by_secret(named, form["client_secret"], "client_secret_post", verified)
        return self._by_id_only(request, named, verified)

    def _client(self, client_id: str, *, basic: bool = False) -> _Client:
        with self._lock:
            client = self._clients.get(client_id)
        if client is None:
            raise _invalid_client("client authentication failed", basic=basic)
        return client

    def _by_secret(self, client_id: str, secret: str, method: str, verified: Verified) -> str:
        basic = method == "client_secret_basic"
        client = self._client(client_id, basic=basic)
        if client.public:
            method = "none"  # a public client: whatever it sends as a secret is ignored
        elif client.secret is None or secret != client.secret:
            raise _invalid_client("client authentication failed", basic=basic)
        if not client.allows(method):
            raise _invalid_client(f"{method} is not allowed for this client", basic=basic)
        verified.client_auth_method = method
        return client_id

    def _by_id_only(self, request: RecordedRequest, client_id: str, verified: Verified) -> str:
        client = self._client(client_id)
        subject = request.client_cert_subject
        if client.tls_subject is not None:
            if subject is None or subject.get("commonName") != client.tls_subject:
                raise _invalid_client("no client certificate with the registered subject")
            method = "tls_client_auth"
        elif client.public:
            method = "none"
        else:
            raise _invalid_client("client authentication failed")
        if not client.allows(method):
            raise _invalid_client(f"{method} is not allowed for this client")
        verified.client_auth_method = method
        return client_id

    def _by_assertion(
        self,
        form: Mapping[str, str],
        audiences: Collection[str],
        now: datetime,
        verified: Verified,
    ) -> str:
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise _invalid_client(f"client_assertion_type must be {CLIENT_ASSERTION_TYPE}")
        try:
            jwt = parse_jwt(form.get("client_assertion", ""))
        except BadJWT as exc:
            raise _invalid_client(f"client_assertion: {exc}") from None
        client_id = jwt.claims.get("iss")
        if not isinstance(client_id, str) or jwt.claims.get("sub") != client_id:
            raise _invalid_client("client_assertion: iss and sub must both be the client id")
        if form.get("client_id", client_id) != client_id:
            raise _invalid_client("client_assertion: iss is not the client_id sent")
        client = self._client(client_id)
        method = "client_secret_jwt" if jwt.header["alg"] in HMAC_ALGS else "private_key_jwt"
        try:
            self._verify(jwt, client, method)
            with self._lock:
                check_claims(jwt.claims, audiences, now, self._seen.setdefault(client_id, set()))
        except BadJWT as exc:
            raise _invalid_client(f"client_assertion: {exc}") from None
        if not client.allows(method):
            raise _invalid_client(f"{method} is not allowed for this client")
        verified.client_auth_method = method
        verified.client_assertion_claims = MappingProxyType(dict(jwt.claims))
        return client_id

    @staticmethod
    def _verify(jwt: ParsedJWT, client: _Client, method: str) -> None:
        if method == "client_secret_jwt":
            if client.secret is None:
                raise BadJWT("the client has no secret to sign with")
            verify_hmac(jwt, client.secret)
        elif client.keys is None:
            raise BadJWT("the client has no registered public key")
        else:
            client.keys.verify(jwt)

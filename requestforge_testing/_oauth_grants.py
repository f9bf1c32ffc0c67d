"""The extension grants ``OAuthServer`` serves: JWT bearer (RFC 7523 2.1) and token
exchange (RFC 8693), with what both need: trusted assertion issuers and the parsing of a
token exchange request."""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

from requestforge_testing._oauth_clients import check_claims
from requestforge_testing._oauth_common import Refused
from requestforge_testing._oauth_jose import BadJWT, PublicKeys, parse_jwt, public_keys

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "JWT_BEARER",
    "JWT_TOKEN_TYPES",
    "REFRESH_TOKEN_TYPE",
    "TOKEN_EXCHANGE",
    "AssertionIssuers",
    "exchange_request",
]

JWT_BEARER: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_EXCHANGE: Final = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
ACCESS_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105
REFRESH_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:refresh_token"  # noqa: S105
#: Subject token types that are JWTs, checked against a registered issuer's keys.
JWT_TOKEN_TYPES: Final = (
    "urn:ietf:params:oauth:token-type:jwt",
    "urn:ietf:params:oauth:token-type:id_token",
)


class AssertionIssuers:
    """Issuers whose signed JWTs the server trusts, by ``iss``, and the ``jti`` they used."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, PublicKeys] = {}
        self._seen: dict[str, set[str]] = {}

    def reset(self) -> None:
        with self._lock:
            self._keys.clear()
            self._seen.clear()

    def add(self, issuer: str, key: object) -> None:
        if not isinstance(issuer, str) or not issuer:
            raise ValueError(f"issuer must be a non-empty string, got {issuer!r}")
        keys = public_keys(key)
        with self._lock:
            self._keys[issuer] = keys

    def verify(
        self, token: str, audiences: Collection[str] | None, now: datetime
    ) -> Mapping[str, Any]:
        """The claims of a JWT from a registered issuer; ``audiences`` None skips ``aud``
        and ``jti`` (a subject token is not a one-time assertion, only ``exp`` counts)."""
        try:
            jwt = parse_jwt(token)
            found = jwt.claims.get("iss")
            issuer = found if isinstance(found, str) else ""
            with self._lock:
                keys = self._keys.get(issuer)
            if keys is None:
                raise BadJWT(f"iss {found!r} is not a registered issuer")
            keys.verify(jwt)
            if not isinstance(jwt.claims.get("sub"), str):
                raise BadJWT("sub is missing")
            if audiences is None:
                exp = jwt.claims.get("exp")
                if isinstance(exp, int | float) and now.timestamp() >= exp:
                    raise BadJWT("the token expired")
            else:
                with self._lock:
                    check_claims(jwt.claims, audiences, now, self._seen.setdefault(issuer, set()))
        except BadJWT as exc:
            raise Refused("invalid_grant", f"assertion: {exc}") from None
        return MappingProxyType(dict(jwt.claims))


def exchange_request(values: Mapping[str, list[str]]) -> dict[str, Any]:
    """RFC 8693 section 2.1's parameters, checked for presence; for the record."""
    form = {name: found[0] for name, found in values.items()}
    for name in ("subject_token", "subject_token_type"):
        if not form.get(name):
            raise Refused("invalid_request", f"{name} is missing")
    if bool(form.get("actor_token")) != bool(form.get("actor_token_type")):
        raise Refused("invalid_request", "actor_token and actor_token_type go together")
    return {
        "subject_token_type": form["subject_token_type"],
        "actor_token_type": form.get("actor_token_type"),
        "audience": tuple(values.get("audience", ())),
        "resource": tuple(values.get("resource", ())),
        "requested_token_type": form.get("requested_token_type"),
    }

"""What ``OAuthServer`` says about itself and its tokens: the discovery document (OIDC
discovery and RFC 8414), introspection answers (RFC 7662) and API challenges (RFC 6750 3,
RFC 9449 7.1)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from requestforge_testing._oauth_clients import AUTH_METHODS
from requestforge_testing._oauth_common import Grant
from requestforge_testing._oauth_dpop import DPOP_ALGS
from requestforge_testing._oauth_jose import ASYMMETRIC_ALGS, HMAC_ALGS
from requestforge_testing._servers import Reply

__all__ = ["DISCOVERY_PATHS", "challenge_reply", "discovery_document", "introspection"]

#: OIDC discovery and RFC 8414 authorization server metadata: both serve the same document.
DISCOVERY_PATHS: Final = (
    "/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server",
)


def discovery_document(
    url: str,
    issuer: str,
    paths: Mapping[str, str],
    grant_types: Iterable[str],
    overrides: Mapping[str, Any],
) -> dict[str, Any]:
    """The metadata document; ``overrides`` replace or add fields (None removes one)."""
    methods = [m for m in AUTH_METHODS if m != "tls_client_auth" or url.startswith("https:")]
    signing = [*HMAC_ALGS, *ASYMMETRIC_ALGS]
    document: dict[str, Any] = {
        "issuer": issuer,
        "token_endpoint": url + paths["token"],
        "revocation_endpoint": url + paths["revocation"],
        "introspection_endpoint": url + paths["introspection"],
        "token_endpoint_auth_methods_supported": methods,
        "token_endpoint_auth_signing_alg_values_supported": signing,
        "revocation_endpoint_auth_methods_supported": methods,
        "introspection_endpoint_auth_methods_supported": methods,
        "grant_types_supported": list(grant_types),
        "dpop_signing_alg_values_supported": list(DPOP_ALGS),
        "response_types_supported": ["token"],
    }
    for name, value in overrides.items():
        if value is None:
            document.pop(name, None)
        else:
            document[name] = value
    return document


def introspection(
    grant: Grant | None, *, access: bool, issuer: str, now: datetime
) -> dict[str, Any]:
    """RFC 7662 section 2.2: ``{"active": false}`` and nothing more for a dead token."""
    if grant is None or grant.revoked:
        return {"active": False}
    if access and grant.expires_at is not None and now >= grant.expires_at:
        return {"active": False}
    body: dict[str, Any] = {"active": True, "client_id": grant.client_id, "iss": issuer}
    if grant.scope is not None:
        body["scope"] = grant.scope
    if grant.username is not None:
        body["username"] = body["sub"] = grant.username
    if access:
        body["token_type"] = "DPoP" if grant.jkt else "Bearer"
        if grant.expires_at is not None:
            body["exp"] = int(grant.expires_at.timestamp())
    if grant.issued_at is not None:
        body["iat"] = int(grant.issued_at.timestamp())
    if grant.jkt is not None:
        body["cnf"] = {"jkt": grant.jkt}
    return body


def challenge_reply(
    status: int,
    scheme: str,
    error: str | None,
    description: str,
    *,
    challenge: bool = True,
    extra: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """An API refusal with a ``WWW-Authenticate`` challenge (RFC 6750 section 3: no error
    code when no token was sent at all), or a bare one when ``challenge`` is False."""
    params = {} if error is None else {"error": error}
    params.update(extra or {})
    if scheme == "DPoP":
        params.setdefault("algs", " ".join(DPOP_ALGS))
    value = ", ".join(f'{name}="{text}"' for name, text in params.items())
    sent = dict(headers or {})
    if challenge:
        sent["WWW-Authenticate"] = f"{scheme} {value}" if value else scheme
    body = {"error": error or "unauthorized", "error_description": description}
    return Reply(status=status, json=body, headers=sent)

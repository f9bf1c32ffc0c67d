"""authlib's Flask authorization server over a :class:`PeerStore`: the app AuthlibServer runs.

Imported only when an :class:`AuthlibServer` starts, so authlib and Flask are needed only
then. Everything here is what an application writes around authlib's own grants, endpoints
and validators (authlib leaves the models and key lookup to it); the protocol is authlib's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Final

from authlib.integrations.flask_oauth2 import (  # type: ignore[import-untyped]
    AuthorizationServer,
    ResourceProtector,
    current_token,
)
from authlib.oauth2.rfc6749 import (  # type: ignore[import-untyped]
    InvalidClientError,
    InvalidGrantError,
    grants,
)
from authlib.oauth2.rfc6750 import (  # type: ignore[import-untyped]
    BearerTokenGenerator,
    BearerTokenValidator,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint  # type: ignore[import-untyped]
from authlib.oauth2.rfc7523 import (  # type: ignore[import-untyped]
    JWTBearerClientAssertion,
    JWTBearerGrant,
)
from authlib.oauth2.rfc7662 import IntrospectionEndpoint  # type: ignore[import-untyped]
from flask import Flask, Response, jsonify, request
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import Key, OctKey, import_key
from joserfc.util import to_bytes

from requestforge_testing._peers._store import PeerClient, PeerStore, PeerUser

__all__ = ["ALGORITHMS", "build_app"]

#: What the JWTs may be signed with. joserfc accepts only its "recommended" algorithms by
#: default, which leaves out PS256: a server that names it in its metadata accepts it.
ALGORITHMS: Final = ("HS256", "RS256", "PS256", "ES256")
#: The client authentication methods every grant and endpoint accepts.
AUTH_METHODS: Final = [
    "client_secret_basic",
    "client_secret_post",
    "client_secret_jwt",
    "private_key_jwt",
]
_HMAC_PREFIX: Final = "HS"


def _decode(assertion: str, key: Key, error: Callable[..., Exception]) -> dict[str, Any]:
    """The claims of a signed JWT, or authlib's ``error`` (invalid_client/invalid_grant)."""
    try:
        claims: dict[str, Any] = jwt.decode(assertion, key, algorithms=list(ALGORITHMS)).claims
    except (JoseError, ValueError) as exc:
        raise error(description=getattr(exc, "description", None) or str(exc)) from exc
    return claims


def _public_key(client: PeerClient) -> Key:
    if client.public_jwk is None:
        raise ValueError(f"client {client.client_id!r} has no key pair")
    key: Key = import_key(client.public_jwk)
    return key


def build_app(store: PeerStore, audiences: Callable[[], list[str]]) -> Flask:
    """The Flask app: ``/oauth/token``, ``/oauth/revoke``, ``/oauth/introspect`` and ``/api``."""
    app = Flask("requestforge_testing.authlib_peer")
    app.config["OAUTH2_REFRESH_TOKEN_GENERATOR"] = True

    def query_client(client_id: str) -> PeerClient | None:
        with store.lock:
            return store.clients.get(client_id)

    def save_token(token: dict[str, Any], oauth_request: Any) -> None:
        store.save(token, oauth_request.client, oauth_request.user)

    server = AuthorizationServer(app, query_client=query_client, save_token=save_token)

    def expires_in(client: PeerClient, grant_type: str) -> int:
        with store.lock:
            return store.lifetime

    generated = server.create_bearer_token_generator(app.config)
    server.register_token_generator(
        "default",
        BearerTokenGenerator(
            generated.access_token_generator, generated.refresh_token_generator, expires_in
        ),
    )

    class JwtClientAuth(JWTBearerClientAssertion):  # type: ignore[misc]
        """RFC 7523 section 2.2: ``client_secret_jwt`` (HS256 with the client secret) or
        ``private_key_jwt`` (the client's public key); each passes on the other's algs."""

        def __init__(self, method: str) -> None:
            super().__init__(validate_jti=True, leeway=60)
            self.CLIENT_AUTH_METHOD = method

        def __call__(self, query: Any, oauth_request: Any) -> PeerClient | None:
            assertion = oauth_request.form.get("client_assertion")
            if not assertion:
                return None
            try:
                alg = jws.extract_compact(to_bytes(assertion)).headers().get("alg", "")
            except (JoseError, ValueError):
                return None
            if (self.CLIENT_AUTH_METHOD == "client_secret_jwt") != alg.startswith(_HMAC_PREFIX):
                return None
            client: PeerClient | None = super().__call__(query, oauth_request)
            return client

        def process_assertion_claims(self, assertion: str, resolve_key: Key) -> dict[str, Any]:
            claims = _decode(assertion, resolve_key, InvalidClientError)
            self.verify_claims(claims)
            return claims

        def get_audiences(self) -> list[str]:
            return audiences()

        def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
            return store.use_jti(str(claims.get("sub")), str(jti))

        def resolve_client_public_key(self, client: PeerClient) -> Key:
            if self.CLIENT_AUTH_METHOD == "client_secret_jwt":
                secret: Key = OctKey.import_key(client.client_secret or "")
                return secret
            return _public_key(client)

    for method in ("client_secret_jwt", "private_key_jwt"):
        server.register_client_auth_method(method, JwtClientAuth(method))

    class ClientCredentials(grants.ClientCredentialsGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    class Password(grants.ResourceOwnerPasswordCredentialsGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

        def authenticate_user(self, username: str, password: str) -> PeerUser | None:
            with store.lock:
                user = store.users.get(username)
            return user if user is not None and user.password == password else None

    class Refresh(grants.RefreshTokenGrant):  # type: ignore[misc]
        """Rotation: each refresh token works once (the old one is revoked on use)."""

        TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
        INCLUDE_NEW_REFRESH_TOKEN = True

        def authenticate_refresh_token(self, refresh_token: str) -> Any:
            with store.lock:
                token = store.refresh.get(refresh_token)
                if token is None or token.refresh_revoked:
                    return None
                return token

        def authenticate_user(self, token: Any) -> PeerUser | None:
            with store.lock:
                return None if token.username is None else store.users.get(token.username)

        def revoke_old_credential(self, token: Any) -> None:
            with store.lock:
                token.refresh_revoked = True
                token.access_revoked = True

    class JwtBearer(JWTBearerGrant):  # type: ignore[misc]
        """RFC 7523 section 2.1: an assertion signed with the issuing client's key."""

        def process_assertion_claims(self, assertion: str) -> dict[str, Any]:
            _headers, unverified = self.extract_assertion(assertion)
            issuer = unverified.get("iss")
            client = self.resolve_issuer_client(issuer) if isinstance(issuer, str) else None
            if client is None:
                raise InvalidGrantError(description="The client does not exist on this server.")
            try:
                key = self.resolve_client_public_key(client)
            except ValueError as exc:
                raise InvalidGrantError(description=str(exc)) from exc
            claims = _decode(assertion, key, InvalidGrantError)
            self.verify_claims(claims)
            return claims

        def resolve_issuer_client(self, issuer: str) -> PeerClient | None:
            return query_client(issuer)

        def resolve_client_public_key(self, client: PeerClient) -> Key:
            return _public_key(client)

        def authenticate_user(self, subject: str) -> PeerUser | None:
            with store.lock:
                return store.users.get(subject)

        def has_granted_permission(self, client: PeerClient, user: PeerUser) -> bool:
            return True

        def get_audiences(self) -> list[str]:
            return audiences()

    class Revocation(RevocationEndpoint):  # type: ignore[misc]
        """RFC 7009: revoking either token of a response revokes both."""

        CLIENT_AUTH_METHODS = AUTH_METHODS

        def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
            return store.find(token_string, token_type_hint)

        def revoke_token(self, token: Any, oauth_request: Any) -> None:
            with store.lock:
                token.access_revoked = True
                token.refresh_revoked = True

    class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
        """RFC 7662: any authenticated client may introspect its own tokens."""

        CLIENT_AUTH_METHODS = AUTH_METHODS

        def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
            return store.find(token_string, token_type_hint)

        def introspect_token(self, token: Any) -> dict[str, Any]:
            return {
                "active": True,
                "client_id": token.client_id,
                "token_type": "Bearer",
                "username": token.username,
                "scope": token.scope,
                "sub": token.username or token.client_id,
                "exp": int(token.expires_at.timestamp()),
                "iat": int(token.issued_at.timestamp()),
            }

        def check_permission(self, token: Any, client: PeerClient, oauth_request: Any) -> bool:
            return bool(token.check_client(client))

    for grant in (ClientCredentials, Password, Refresh, JwtBearer):
        server.register_grant(grant)
    server.register_endpoint(Revocation)
    server.register_endpoint(Introspection)

    class Validator(BearerTokenValidator):  # type: ignore[misc]
        def authenticate_token(self, token_string: str) -> Any:
            with store.lock:
                return store.access.get(token_string)

    protector = ResourceProtector()
    protector.register_token_validator(Validator())
    hold = threading.Event()  # never set: waiting on it is the scripted latency

    @app.post("/oauth/token")
    def token() -> Response:
        grant_type = request.form.get("grant_type", "")
        with store.lock:
            store.requests[grant_type] += 1
            latency = store.latency
        if latency:
            hold.wait(latency)
        with store.lock:  # one token request at a time, as a row lock would have it
            response: Response = server.create_token_response()
            if response.status_code == 200:
                store.issued[grant_type] += 1
        return response

    @app.post("/oauth/revoke")
    def revoke() -> Response:
        response: Response = server.create_endpoint_response(Revocation.ENDPOINT_NAME)
        return response

    @app.post("/oauth/introspect")
    def introspect() -> Response:
        response: Response = server.create_endpoint_response(Introspection.ENDPOINT_NAME)
        return response

    @app.route("/api", defaults={"path": ""}, methods=["GET", "POST"])
    @app.route("/api/<path:path>", methods=["GET", "POST"])
    @protector()  # type: ignore[untyped-decorator]
    def api(path: str) -> Response:
        granted = current_token
        return jsonify(
            ok=True,
            path="/api/" + path if path else "/api",
            client_id=granted.client_id,
            username=granted.username,
            scope=granted.scope,
        )

    @app.after_request
    def note_api_status(response: Response) -> Response:
        if request.path == "/api" or request.path.startswith("/api/"):
            with store.lock:
                store.api_statuses.append(response.status_code)
        return response

    return app

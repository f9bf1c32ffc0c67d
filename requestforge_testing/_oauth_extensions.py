"""``OAuthServer`` beyond RFC 6749's token endpoint: the controls for client keys, grants,
DPoP and API challenges, and the discovery (RFC 8414), revocation (RFC 7009) and
introspection (RFC 7662) endpoints."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

from requestforge._clock import Clock, get_default_clock
from requestforge_testing._oauth_clients import ClientRegistry
from requestforge_testing._oauth_common import (
    FORM,
    NO_STORE,
    Grant,
    RecordedTokenRequest,
    Refused,
    Verified,
    claimed_client,
    form_of,
    refusal_reply,
    repeated,
    reply_error,
)
from requestforge_testing._oauth_dpop import DPoPState
from requestforge_testing._oauth_grants import (
    ACCESS_TOKEN_TYPE,
    JWT_BEARER,
    JWT_TOKEN_TYPES,
    REFRESH_TOKEN_TYPE,
    TOKEN_EXCHANGE,
    AssertionIssuers,
    exchange_request,
)
from requestforge_testing._oauth_meta import (
    DISCOVERY_PATHS,
    challenge_reply,
    discovery_document,
    introspection,
)
from requestforge_testing._servers import ApiServer, RecordedRequest, Reply

__all__ = [
    "API_PATH",
    "GRANTS",
    "INTROSPECTION_PATH",
    "REVOCATION_PATH",
    "TOKEN_PATH",
    "GrantHandler",
    "OAuthExtensions",
]

TOKEN_PATH: Final = "/oauth/token"  # noqa: S105 - a path, not a secret
REVOCATION_PATH: Final = "/oauth/revoke"
INTROSPECTION_PATH: Final = "/oauth/introspect"
API_PATH: Final = "/api"
GRANTS: Final = ("client_credentials", "password", "refresh_token")
_PATHS: Final = {
    "token": TOKEN_PATH,
    "revocation": REVOCATION_PATH,
    "introspection": INTROSPECTION_PATH,
}
#: How long a held discovery request waits for its gate before answering anyway.
_GATE_TIMEOUT: Final = 30.0

#: A test's grant: (form fields, authenticated client id or None) -> a Reply sent as it is,
#: a mapping of fields added to the token response, or None for a plain token.
GrantHandler = Callable[[Mapping[str, str], "str | None"], "Reply | Mapping[str, Any] | None"]


class OAuthExtensions:
    """The controls and endpoints :class:`OAuthServer` adds to the token endpoint; every
    setting here is forgotten by ``reset()``."""

    _cond: threading.Condition
    _clock: Clock | None
    _access: dict[str, Grant]
    _refresh: dict[str, Grant]
    _clients: ClientRegistry
    _dpop: DPoPState
    _issuers: AssertionIssuers
    _server: ApiServer

    def _restore_extensions(self) -> None:
        """Back to the defaults (the caller holds the lock)."""
        self._handlers: dict[str, GrantHandler] = {}
        self._subject_tokens: dict[str, tuple[str, str | None, str | None]] = {}
        self._discovery_overrides: dict[str, Any] = {}
        self._discovery_gate: threading.Event | None = None
        self._discovery_count = 0
        self._revocations: list[RecordedTokenRequest] = []
        self._introspections: list[RecordedTokenRequest] = []
        self._reject_status = 401
        self._reject_challenge = True
        self._required_scope: str | None = None

    # -- where ---------------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        """The issuer identifier: the server's URL, as the discovery document says."""
        return self._server.url

    @property
    def revocation_url(self) -> str:
        """The RFC 7009 revocation endpoint: ``url + "/oauth/revoke"``."""
        return self._server.url + REVOCATION_PATH

    @property
    def introspection_url(self) -> str:
        """The RFC 7662 introspection endpoint: ``url + "/oauth/introspect"``."""
        return self._server.url + INTROSPECTION_PATH

    @property
    def discovery_url(self) -> str:
        """The OIDC discovery document: ``url + "/.well-known/openid-configuration"``."""
        return self._server.url + DISCOVERY_PATHS[0]

    @property
    def metadata_url(self) -> str:
        """The RFC 8414 metadata: ``url + "/.well-known/oauth-authorization-server"``."""
        return self._server.url + DISCOVERY_PATHS[1]

    # -- clients, issuers, tokens, grants ------------------------------------------------

    def add_client(
        self,
        client_id: str,
        secret: str | None = None,
        *,
        keys: object = None,
        tls_subject: str | None = None,
        auth_methods: Iterable[str] | None = None,
    ) -> None:
        """Register a client until ``reset()``: a ``secret`` (basic, post, client_secret_jwt),
        public ``keys`` (a JWK, JWKS, PEM or joserfc key: private_key_jwt), a certificate
        common name ``tls_subject`` (tls_client_auth), or none of them (a public client).
        ``auth_methods`` restricts it to some of those methods, by their RFC 7591 names."""
        self._clients.add(
            client_id, secret, keys=keys, tls_subject=tls_subject, auth_methods=auth_methods
        )

    def add_assertion_issuer(self, issuer: str, key: object) -> None:
        """Trust JWTs whose ``iss`` is ``issuer`` signed by ``key`` (a public JWK, JWKS or
        PEM): assertions of the JWT bearer grant, and JWT subject tokens of token exchange."""
        self._issuers.add(issuer, key)

    def add_subject_token(
        self,
        token: str,
        *,
        token_type: str = ACCESS_TOKEN_TYPE,
        subject: str | None = None,
        scope: str | None = None,
    ) -> None:
        """Accept ``token`` (issued elsewhere) as a token exchange subject or actor token of
        ``token_type``, standing for ``subject`` with ``scope``."""
        if not isinstance(token, str) or not token:
            raise ValueError("token must be a non-empty string")
        with self._cond:
            self._subject_tokens[token] = (token_type, subject, scope)

    def add_grant_handler(self, grant_type: str, handler: GrantHandler) -> None:
        """Serve ``grant_type`` with ``handler(form, client_id)`` after client
        authentication (which this grant does not require): a Reply it returns is sent as it
        is; a mapping is added to the fields of a newly issued token (``scope`` included);
        None issues a plain token."""
        if not isinstance(grant_type, str) or not grant_type:
            raise ValueError("grant_type must be a non-empty string")
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {handler!r}")
        with self._cond:
            self._handlers[grant_type] = handler

    # -- DPoP ------------------------------------------------------------------------------

    @property
    def dpop_required(self) -> bool:
        """Whether a token request without a DPoP proof is refused; False by default (a
        proof that is sent is always checked, and binds the token). Settable."""
        return self._dpop.required

    @dpop_required.setter
    def dpop_required(self, value: bool) -> None:
        self._dpop.required = _flag("dpop_required", value)

    @property
    def dpop_nonce_required(self) -> bool:
        """Whether proofs must carry the server's nonce (``use_dpop_nonce`` otherwise, with
        the nonce in a ``DPoP-Nonce`` header). Settable."""
        return self._dpop.nonce_required

    @dpop_nonce_required.setter
    def dpop_nonce_required(self, value: bool) -> None:
        self._dpop.nonce_required = _flag("dpop_nonce_required", value)

    @property
    def dpop_nonce(self) -> str | None:
        """The nonce proofs must carry now, or None when none is required."""
        return self._dpop.nonce

    def rotate_dpop_nonce(self) -> str:
        """Replace the nonce (a proof with the old one gets ``use_dpop_nonce``); return it."""
        return self._dpop.rotate_nonce()

    # -- the API's refusals ----------------------------------------------------------------

    @property
    def invalid_token_status(self) -> int:
        """The status for a missing, unknown, revoked or expired token; 401 by default. 403
        with ``invalid_token_challenge = False`` answers like DOT's default views. Settable."""
        with self._cond:
            return self._reject_status

    @invalid_token_status.setter
    def invalid_token_status(self, status: int) -> None:
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError(f"invalid_token_status must be 400-599, got {status!r}")
        with self._cond:
            self._reject_status = status

    @property
    def invalid_token_challenge(self) -> bool:
        """Whether those refusals carry ``WWW-Authenticate: Bearer error="invalid_token"``
        (RFC 6750 section 3), whatever their status; True by default. Settable."""
        with self._cond:
            return self._reject_challenge

    @invalid_token_challenge.setter
    def invalid_token_challenge(self, value: bool) -> None:
        checked = _flag("invalid_token_challenge", value)
        with self._cond:
            self._reject_challenge = checked

    @property
    def required_scope(self) -> str | None:
        """Scopes (space-separated) the API needs: a valid token without all of them gets 403
        ``error="insufficient_scope"``. None (the default) needs none. Settable."""
        with self._cond:
            return self._required_scope

    @required_scope.setter
    def required_scope(self, scope: str | None) -> None:
        if scope is not None and (not isinstance(scope, str) or not scope.split()):
            raise ValueError(f"required_scope must be None or scope names, got {scope!r}")
        with self._cond:
            self._required_scope = scope

    # -- discovery ---------------------------------------------------------------------------

    def override_discovery(self, **fields: Any) -> None:
        """Replace or add fields of the discovery document (None removes one), e.g.
        ``override_discovery(issuer="https://elsewhere.example")`` for a wrong issuer."""
        with self._cond:
            self._discovery_overrides.update(fields)

    @property
    def discovery_gate(self) -> threading.Event | None:
        """While set to an Event that is not set, discovery requests wait for it (up to 30 s)
        before they are answered: a test holds a herd of clients on the first fetch."""
        with self._cond:
            return self._discovery_gate

    @discovery_gate.setter
    def discovery_gate(self, gate: threading.Event | None) -> None:
        if gate is not None and not isinstance(gate, threading.Event):
            raise TypeError(f"discovery_gate must be a threading.Event or None, got {gate!r}")
        with self._cond:
            self._discovery_gate = gate

    @property
    def discovery_requests(self) -> list[RecordedRequest]:
        """Requests for either discovery document since the last reset, in arrival order."""
        return [r for r in self._server.requests if r.path in DISCOVERY_PATHS]

    def wait_for_discovery_requests(self, n: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until ``n`` discovery requests have arrived (a gate may still hold them)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._discovery_count >= n, timeout=timeout):
                raise TimeoutError(
                    f"expected at least {n} discovery request(s) within {timeout}s, "
                    f"got {self._discovery_count}"
                )
        return self.discovery_requests

    # -- revocation and introspection ------------------------------------------------------

    @property
    def revocation_requests(self) -> list[RecordedTokenRequest]:
        """Every revocation request since the last reset (``grant_type`` is None)."""
        with self._cond:
            return list(self._revocations)

    @property
    def introspection_requests(self) -> list[RecordedTokenRequest]:
        """Every introspection request since the last reset (``grant_type`` is None)."""
        with self._cond:
            return list(self._introspections)

    # -- server threads ----------------------------------------------------------------------

    def _serve_discovery(self, request: RecordedRequest) -> Reply:
        with self._cond:
            self._discovery_count += 1
            self._cond.notify_all()
            gate = self._discovery_gate
            overrides = dict(self._discovery_overrides)
            grants = [*GRANTS, JWT_BEARER, TOKEN_EXCHANGE, *self._handlers]
        if gate is not None:
            gate.wait(_GATE_TIMEOUT)
        url = self._server.url
        return Reply(json=discovery_document(url, url, _PATHS, grants, overrides))

    def _serve_revocation(self, request: RecordedRequest) -> Reply:
        """RFC 7009: 200 whether or not the token was known; only its own client's token
        is revoked, and a refresh token takes its access token with it."""

        def revoke(token: str, client_id: str) -> Reply:
            with self._cond:
                grant = self._access.get(token)
                if grant is not None and grant.client_id == client_id:
                    grant.revoked = True
                refreshed = self._refresh.get(token)
                if refreshed is not None and refreshed.client_id == client_id:
                    del self._refresh[token]
                    refreshed.revoked = True
            return Reply(status=200, body=b"", headers=NO_STORE)

        return self._serve_token_endpoint(request, revoke, self._revocations)

    def _serve_introspection(self, request: RecordedRequest) -> Reply:
        """RFC 7662: ``active`` and, for a live token, what it was issued for."""

        def introspect(token: str, client_id: str) -> Reply:
            now = self._now()
            with self._cond:
                access = self._access.get(token)
                grant = access if access is not None else self._refresh.get(token)
                body = introspection(grant, access=access is not None, issuer=self.issuer, now=now)
            return Reply(json=body, headers=NO_STORE)

        return self._serve_token_endpoint(request, introspect, self._introspections)

    def _serve_token_endpoint(
        self,
        request: RecordedRequest,
        answer: Callable[[str, str], Reply],
        records: list[RecordedTokenRequest],
    ) -> Reply:
        """A POST with ``token`` (and maybe ``token_type_hint``) from an authenticated client."""
        form = form_of(request)
        client_id, auth_method = claimed_client(request, form)
        verified = Verified()
        try:
            self._check_form_post(request)
            authenticated = self._clients.authenticate(
                request, form, self._audiences(request), self._now(), verified
            )
            if authenticated is None:
                raise Refused("invalid_client", "client authentication failed", 401)
            if not form.get("token"):
                raise Refused("invalid_request", "token is missing")
            reply = answer(form["token"], authenticated)
        except Refused as refused:
            reply = refusal_reply(refused)
        record = RecordedTokenRequest(
            grant_type=None,
            client_id=client_id,
            auth_method=auth_method,
            params=MappingProxyType(form),
            thread_name=request.thread_name,
            status=reply.status,
            error=reply_error(reply),
            request=request,
            client_auth_method=verified.client_auth_method,
            client_assertion_claims=verified.client_assertion_claims,
        )
        with self._cond:
            records.append(record)
        return reply

    def _exchange(
        self,
        values: dict[str, list[str]],
        form: dict[str, str],
        client_id: str | None,
        now: datetime,
        verified: Verified,
    ) -> Grant:
        """RFC 8693: the subject (and actor) token must be valid here; what was asked is kept."""
        asked = exchange_request(values)
        subject, subject_scope = self._subject_of(
            form["subject_token"], asked["subject_token_type"], now, "subject_token"
        )
        actor = None
        if form.get("actor_token"):
            actor = self._subject_of(
                form["actor_token"], asked["actor_token_type"], now, "actor_token"
            )[0]
        requested = asked["requested_token_type"] or ACCESS_TOKEN_TYPE
        if requested != ACCESS_TOKEN_TYPE:
            raise Refused("invalid_request", f"requested_token_type {requested!r} is not issued")
        asked.update(subject=subject, actor=actor, issued_token_type=ACCESS_TOKEN_TYPE)
        verified.exchange = MappingProxyType(asked)
        return Grant(client_id, subject, form.get("scope") or subject_scope)

    def _subject_of(
        self, token: str, token_type: str, now: datetime, name: str
    ) -> tuple[str | None, str | None]:
        """Whom a subject or actor token stands for, and its scope."""
        with self._cond:
            table = {ACCESS_TOKEN_TYPE: self._access, REFRESH_TOKEN_TYPE: self._refresh}
            grant = table.get(token_type, {}).get(token)
            if grant is not None and not grant.revoked:
                live = grant.expires_at is None or now < grant.expires_at
                if live or token_type == REFRESH_TOKEN_TYPE:
                    return grant.username or grant.client_id, grant.scope
            external = self._subject_tokens.get(token)
        if external is not None and external[0] == token_type:
            return external[1], external[2]
        if token_type in JWT_TOKEN_TYPES:
            try:
                claims = self._issuers.verify(token, None, now)
            except Refused as refused:
                raise Refused("invalid_request", f"{name}: {refused.description}") from None
            scope = claims.get("scope")
            return claims["sub"], scope if isinstance(scope, str) else None
        raise Refused("invalid_request", f"{name} is not a valid {token_type} of this server")

    def _check_form_post(
        self, request: RecordedRequest, repeatable: frozenset[str] = frozenset()
    ) -> None:
        if request.method != "POST":
            headers = {**NO_STORE, "Allow": "POST"}
            raise Refused("invalid_request", "the endpoint accepts only POST", 405, headers)
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != FORM:
            raise Refused("invalid_request", f"the body must be {FORM}")
        if repeated(request, repeatable):
            raise Refused("invalid_request", "a parameter was sent more than once")

    def _reject(self, error: str | None, description: str) -> Reply:
        """The API's refusal of a missing or invalid token, as ``invalid_token_*`` say."""
        with self._cond:
            status, challenge = self._reject_status, self._reject_challenge
        return challenge_reply(status, "Bearer", error, description, challenge=challenge)

    def _with_nonce(self, headers: Mapping[str, str]) -> dict[str, str]:
        """``headers`` plus the current ``DPoP-Nonce`` when nonces are required."""
        nonce = self._dpop.nonce
        return dict(headers) if nonce is None else {**headers, "DPoP-Nonce": nonce}

    def _now(self) -> datetime:
        return (self._clock or get_default_clock()).now()

    def _request_url(self, request: RecordedRequest) -> str:
        scheme, _, rest = self._server.url.partition("://")
        return f"{scheme}://{request.headers.get('Host') or rest}{request.path}"

    def _audiences(self, request: RecordedRequest) -> frozenset[str]:
        """What an assertion's ``aud`` may name: the token endpoint, the issuer, or the
        endpoint it was sent to."""
        url = self._server.url
        return frozenset({url + TOKEN_PATH, url, url + "/", self._request_url(request)})


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return value

"""``OAuthServer``: a real OAuth 2.0 authorization server and protected API on loopback.

It issues and checks tokens the way RFC 6749 and RFC 6750 say, so code under test runs its
whole token flow over real HTTP: fetch, cache, expire (on the test's clock), 401, refresh.
Beyond the three classic grants it verifies JWT client authentication (RFC 7523), mTLS
client authentication (RFC 8705), the JWT bearer and token exchange grants (RFC 8693),
serves discovery documents (RFC 8414), revocation (RFC 7009) and introspection (RFC 7662),
and DPoP (RFC 9449) with nonces. Tests script failures (``fail_next``, ``reply_next``,
``latency``) and inspect what was asked for (``token_requests``, ``grant_counts``). It
needs nothing from pytest.
"""

from __future__ import annotations

import itertools
import secrets
import ssl
import threading
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from types import MappingProxyType, TracebackType
from typing import Any, Final

from requestforge._clock import Clock
from requestforge_testing._oauth_clients import ClientRegistry
from requestforge_testing._oauth_common import (
    NO_STORE,
    Grant,
    RecordedTokenRequest,
    Refused,
    Verified,
    check_credentials,
    check_seconds,
    claimed_client,
    form_values,
    refusal_reply,
    reply_error,
)
from requestforge_testing._oauth_dpop import DPoPError, DPoPState
from requestforge_testing._oauth_extensions import (
    API_PATH,
    GRANTS,
    INTROSPECTION_PATH,
    REVOCATION_PATH,
    TOKEN_PATH,
    OAuthExtensions,
)
from requestforge_testing._oauth_grants import (
    ACCESS_TOKEN_TYPE,
    JWT_BEARER,
    TOKEN_EXCHANGE,
    AssertionIssuers,
)
from requestforge_testing._oauth_jose import BadJWT, parse_jwt
from requestforge_testing._oauth_meta import DISCOVERY_PATHS, challenge_reply
from requestforge_testing._servers import ApiServer, RecordedRequest, Reply

__all__ = ["OAuthServer", "RecordedTokenRequest"]

# RFC 8693 section 2.1: these may be sent more than once.
_REPEATABLE: Final = frozenset({"audience", "resource"})


class _Server(ApiServer):
    """An ApiServer that also routes every path under /api to one handler."""

    def __init__(
        self, api_handler: Callable[[RecordedRequest], Reply], ssl_context: ssl.SSLContext | None
    ) -> None:
        super().__init__(ssl_context=ssl_context)
        self._api_handler = api_handler

    def _dispatch(self, request: RecordedRequest) -> Reply:
        if _is_api_path(request.path):
            self.add_handler(request.path, self._api_handler)  # idempotent; reset() clears it
        return super()._dispatch(request)


class OAuthServer(OAuthExtensions):
    """A loopback OAuth 2.0 token endpoint (``token_url``) and a protected API (``api_url``).

    Grants: ``client_credentials``, ``password``, ``refresh_token``, JWT bearer, token
    exchange and any a test adds (``add_grant_handler``). Clients authenticate by HTTP Basic,
    form fields, a signed JWT (``client_keys=`` for ``private_key_jwt``; the secret for
    ``client_secret_jwt``), a client certificate (``tls_clients=`` with ``ssl_context=``) or
    not at all: a client whose secret is None is public. Refresh tokens rotate: each works
    once. Tokens expire on ``clock`` (or the default clock at call time, so a test's fake
    clock moves server-side expiry too); assertion ``exp`` and DPoP ``iat`` are checked on
    the same clock. Thread-safe.
    """

    #: Credentials that work out of the box, so a demo needs no setup.
    DEFAULT_CLIENTS: Final = MappingProxyType({"forge-client": "forge-secret"})
    #: ...and a user for the password grant, likewise.
    DEFAULT_USERS: Final = MappingProxyType({"forge-user": "forge-password"})
    #: One hour: the common lifetime of real access tokens.
    DEFAULT_LIFETIME: Final = 3600.0

    def __init__(
        self,
        *,
        clients: Mapping[str, str | None] | None = None,
        users: Mapping[str, str] | None = None,
        lifetime: float = DEFAULT_LIFETIME,
        issue_refresh_tokens: bool = True,
        clock: Clock | None = None,
        client_keys: Mapping[str, object] | None = None,
        tls_clients: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        secrets_ = check_credentials(
            "clients", self.DEFAULT_CLIENTS if clients is None else clients, allow_none=True
        )
        self._users = check_credentials(
            "users", self.DEFAULT_USERS if users is None else users, allow_none=False
        )
        self._client_args = (secrets_, dict(client_keys or {}), dict(tls_clients or {}))
        self._clients = ClientRegistry(*self._client_args)  # bad keys fail here, not later
        self._default_lifetime = check_seconds("lifetime", lifetime, positive=True)
        if not isinstance(issue_refresh_tokens, bool):
            raise TypeError(f"issue_refresh_tokens must be a bool, got {issue_refresh_tokens!r}")
        self._default_refresh = issue_refresh_tokens
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(f"clock must be a Clock, got {clock!r}")
        self._clock = clock
        self._cond = threading.Condition()
        self._numbers = itertools.count(1)
        self._dpop = DPoPState()
        self._issuers = AssertionIssuers()
        self._server = _Server(self._serve_api, ssl_context)
        self._restore()

    def _restore(self) -> None:
        """Forget everything a test did; the constructor's settings come back."""
        with self._cond:
            self._lifetime = self._default_lifetime
            self._latency = 0.0
            self.issue_refresh_tokens = self._default_refresh
            self._access: dict[str, Grant] = {}
            self._refresh: dict[str, Grant] = {}
            self._order: list[str] = []
            self._records: list[RecordedTokenRequest] = []
            self._grant_counts: Counter[str] = Counter()
            self._scripted: deque[Reply] = deque()
            self._clients = ClientRegistry(*self._client_args)
            self._restore_extensions()
        self._dpop.reset()
        self._issuers.reset()
        self._server.add_handler(TOKEN_PATH, self._serve_token)
        self._server.add_handler(REVOCATION_PATH, self._serve_revocation)
        self._server.add_handler(INTROSPECTION_PATH, self._serve_introspection)
        for path in DISCOVERY_PATHS:
            self._server.add_handler(path, self._serve_discovery)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> OAuthServer:
        """Bind a free port on 127.0.0.1 and serve from background threads."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection."""
        self._server.stop()

    def __enter__(self) -> OAuthServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is accepting connections."""
        return self._server.running

    @property
    def url(self) -> str:
        """Base URL such as ``http://127.0.0.1:54321``."""
        return self._server.url

    @property
    def token_url(self) -> str:
        """The token endpoint: ``url + "/oauth/token"``."""
        return self._server.url + TOKEN_PATH

    @property
    def api_url(self) -> str:
        """The protected API's root: every path under it wants a Bearer token."""
        return self._server.url + API_PATH

    def reset(self) -> None:
        """Forget tokens, records and scripts and restore the settings; keep the socket."""
        self._server.reset()
        self._restore()

    def __repr__(self) -> str:
        return f"OAuthServer({self.url if self.running else 'stopped'})"

    # -- control -------------------------------------------------------------------------

    @property
    def lifetime(self) -> float:
        """Seconds a new access token is valid (``expires_in``); settable."""
        with self._cond:
            return self._lifetime

    @lifetime.setter
    def lifetime(self, seconds: float) -> None:
        value = check_seconds("lifetime", seconds, positive=True)
        with self._cond:
            self._lifetime = value

    @property
    def latency(self) -> float:
        """Seconds every token response is held back, in real time; settable."""
        with self._cond:
            return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        value = check_seconds("latency", seconds)
        with self._cond:
            self._latency = value

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 503,
        error: str = "temporarily_unavailable",
        retry_after: int | None = None,
    ) -> None:
        """Answer the next ``count`` token requests with ``status`` and OAuth ``error``."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be an integer >= 1, got {count!r}")
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an error status 400-599, got {status!r}")
        headers = dict(NO_STORE)
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        body = {"error": error, "error_description": "failure scripted by fail_next()"}
        reply = Reply(status=status, json=body, headers=headers)
        with self._cond:
            self._scripted.extend([reply] * count)

    def reply_next(self, reply: Reply) -> None:
        """Answer the next token request with ``reply`` exactly (after earlier scripts)."""
        if not isinstance(reply, Reply):
            raise TypeError(f"expected a Reply, got {reply!r}")
        with self._cond:
            self._scripted.append(reply)

    def revoke(self, token: str) -> bool:
        """Revoke an access or refresh token; False if this server never issued it."""
        with self._cond:
            grant = self._access.get(token)
            if grant is not None:
                grant.revoked = True
                return True
            return self._refresh.pop(token, None) is not None

    def revoke_all(self) -> None:
        """Revoke every access token issued so far (refresh tokens keep working)."""
        with self._cond:
            for grant in self._access.values():
                grant.revoked = True

    # -- inspection ----------------------------------------------------------------------

    @property
    def token_requests(self) -> list[RecordedTokenRequest]:
        """Every token endpoint request since the last reset, in arrival order (a copy)."""
        with self._cond:
            return list(self._records)

    @property
    def fetch_count(self) -> int:
        """Access tokens issued since the last reset, whatever the grant."""
        with self._cond:
            return len(self._order)

    @property
    def grant_counts(self) -> dict[str, int]:
        """Access tokens issued per grant type, e.g. ``{"password": 1, "refresh_token": 2}``."""
        with self._cond:
            return dict(self._grant_counts)

    @property
    def issued_tokens(self) -> list[str]:
        """Every access token issued since the last reset, oldest first."""
        with self._cond:
            return list(self._order)

    @property
    def api_requests(self) -> list[RecordedRequest]:
        """Every request to the protected API since the last reset, in arrival order."""
        return [r for r in self._server.requests if _is_api_path(r.path)]

    def wait_for_token_requests(self, n: int, timeout: float = 5.0) -> list[RecordedTokenRequest]:
        """Block until ``n`` token requests have been handled; return them all.

        A request is recorded as soon as its answer is decided, before ``latency`` holds it.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._records) >= n, timeout=timeout):
                raise TimeoutError(
                    f"expected at least {n} token request(s) within {timeout}s, "
                    f"got {len(self._records)}"
                )
            return list(self._records)

    # -- the token endpoint (server threads) ---------------------------------------------

    def _serve_token(self, request: RecordedRequest) -> Reply:
        values = form_values(request)
        form = {name: found[0] for name, found in values.items()}
        client_id, auth_method = claimed_client(request, form)
        if client_id is None and "client_assertion" in form:
            client_id = _unverified_issuer(form["client_assertion"])
        verified = Verified()
        with self._cond:
            reply = self._scripted.popleft() if self._scripted else None
            latency = self._latency
        if reply is None:
            try:
                reply = self._grant(request, form, values, verified)
            except Refused as refused:
                reply = refusal_reply(refused)
            except DPoPError as refused:
                headers = dict(NO_STORE)
                if refused.nonce is not None:
                    headers["DPoP-Nonce"] = refused.nonce
                body = {"error": refused.error, "error_description": refused.description}
                reply = Reply(status=400, json=body, headers=headers)
        record = RecordedTokenRequest(
            grant_type=form.get("grant_type"),
            client_id=client_id,
            auth_method=auth_method,
            params=MappingProxyType(form),
            thread_name=request.thread_name,
            status=reply.status,
            error=reply_error(reply),
            request=request,
            client_auth_method=verified.client_auth_method,
            client_assertion_claims=verified.client_assertion_claims,
            assertion_claims=verified.assertion_claims,
            dpop_jkt=verified.dpop_jkt,
            exchange=verified.exchange,
        )
        with self._cond:
            self._records.append(record)
            self._cond.notify_all()
        return replace(reply, delay=reply.delay + latency) if latency else reply

    def _grant(
        self,
        request: RecordedRequest,
        form: dict[str, str],
        values: dict[str, list[str]],
        verified: Verified,
    ) -> Reply:
        now = self._now()
        self._check_form_post(request, _REPEATABLE)
        jkt = self._dpop.check(
            request.headers.get("DPoP"), method="POST", url=self._request_url(request), now=now
        )
        if jkt is None and self._dpop.required:
            raise DPoPError("invalid_dpop_proof", "a DPoP proof is required", self._dpop.nonce)
        verified.dpop_jkt = jkt
        client_id = self._clients.authenticate(
            request, form, self._audiences(request), now, verified
        )
        grant_type = form.get("grant_type")
        with self._cond:
            handler = self._handlers.get(grant_type or "")
        if client_id is None and grant_type != JWT_BEARER and handler is None:
            raise Refused("invalid_client", "client authentication failed", 401)
        if not grant_type:
            raise Refused("invalid_request", "grant_type is missing")
        if grant_type not in (*GRANTS, JWT_BEARER, TOKEN_EXCHANGE) and handler is None:
            raise Refused("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")
        if handler is not None:
            result = handler(MappingProxyType(dict(form)), client_id)
            if isinstance(result, Reply):
                return result
            extra = dict(result or {})
            grant = Grant(client_id, None, extra.get("scope", form.get("scope") or None))
            with self._cond:
                return self._issue(grant, grant_type, jkt, now, extra)
        return self._standard_grant(
            request, grant_type, form, values, client_id=client_id, jkt=jkt, verified=verified
        )

    def _standard_grant(
        self,
        request: RecordedRequest,
        grant_type: str,
        form: dict[str, str],
        values: dict[str, list[str]],
        *,
        client_id: str | None,
        jkt: str | None,
        verified: Verified,
    ) -> Reply:
        now, scope = self._now(), form.get("scope") or None
        extra: Mapping[str, Any] = {}
        if grant_type == JWT_BEARER:
            if not form.get("assertion"):
                raise Refused("invalid_request", "assertion is missing")
            claims = self._issuers.verify(form["assertion"], self._audiences(request), now)
            verified.assertion_claims = claims
            grant = Grant(client_id or claims["iss"], claims["sub"], scope)
        elif grant_type == TOKEN_EXCHANGE:
            grant = self._exchange(values, form, client_id, now, verified)
            extra = {"issued_token_type": ACCESS_TOKEN_TYPE}
        with self._cond:
            if grant_type == "client_credentials":
                if client_id is not None and self._clients.is_public(client_id):
                    raise Refused("unauthorized_client", "public clients cannot use this grant")
                grant = Grant(client_id, None, scope)
            elif grant_type == "password":
                grant = Grant(client_id, self._check_user(form), scope)
            elif grant_type == "refresh_token":
                grant = self._use_refresh_token(form, client_id, scope, jkt)
            if client_id is not None:
                grant.public = self._clients.is_public(client_id)
            return self._issue(grant, grant_type, jkt, now, extra)

    def _check_user(self, form: dict[str, str]) -> str:
        username, password = form.get("username"), form.get("password")
        if username is None or password is None:
            raise Refused("invalid_request", "username and password are required")
        if self._users.get(username) != password:
            raise Refused("invalid_grant", "the username or password is wrong")
        return username

    def _use_refresh_token(
        self, form: dict[str, str], client_id: str | None, scope: str | None, jkt: str | None
    ) -> Grant:
        token = form.get("refresh_token")
        if not token:
            raise Refused("invalid_request", "refresh_token is missing")
        previous = self._refresh.get(token)
        if previous is None or previous.client_id != client_id:
            raise Refused("invalid_grant", "the refresh token is unknown, used or revoked")
        if previous.public and previous.jkt is not None and previous.jkt != jkt:
            # RFC 9449 section 5: a public client's refresh token is bound to its DPoP key.
            raise Refused("invalid_grant", "the refresh token is bound to another DPoP key")
        del self._refresh[token]  # rotation: each refresh token works once
        return Grant(client_id, previous.username, scope or previous.scope)

    def _issue(
        self,
        grant: Grant,
        grant_type: str,
        jkt: str | None,
        now: datetime,
        extra: Mapping[str, Any],
    ) -> Reply:
        """Mint tokens for ``grant`` (the caller holds the lock)."""
        number = next(self._numbers)
        access_token = f"forge-at-{number}-{secrets.token_urlsafe(12)}"
        grant.issued_at, grant.jkt = now, jkt
        grant.expires_at = now + timedelta(seconds=self._lifetime)
        body: dict[str, Any] = {
            "access_token": access_token,
            "token_type": "Bearer" if jkt is None else "DPoP",
            "expires_in": int(self._lifetime) if self._lifetime.is_integer() else self._lifetime,
        }
        if jkt is not None:
            body["cnf"] = {"jkt": jkt}
        if self.issue_refresh_tokens and grant_type in ("password", "refresh_token"):
            refresh_token = f"forge-rt-{number}-{secrets.token_urlsafe(12)}"
            self._refresh[refresh_token] = grant
            body["refresh_token"] = refresh_token
        if grant.scope is not None:
            body["scope"] = grant.scope
        body.update(extra)
        self._access[access_token] = grant
        self._order.append(access_token)
        self._grant_counts[grant_type] += 1
        return Reply(json=body, headers=self._with_nonce(NO_STORE))

    # -- the protected API (server threads) ----------------------------------------------

    def _serve_api(self, request: RecordedRequest) -> Reply:
        if request.method not in ("GET", "POST"):
            return Reply(
                status=405, json={"error": "method not allowed"}, headers={"Allow": "GET, POST"}
            )
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        scheme, token = scheme.lower(), token.strip()
        if scheme not in ("bearer", "dpop") or not token:
            return self._reject(None, "no Bearer token was sent")
        now = self._now()
        with self._cond:
            grant = self._access.get(token)
            required_scope = self._required_scope
        problem = _problem(grant, now)
        if problem is not None or grant is None:
            return self._reject("invalid_token", problem or "")
        if grant.jkt is not None or scheme == "dpop":
            refused = self._check_api_proof(request, grant, scheme, token, now)
            if refused is not None:
                return refused
        granted = set((grant.scope or "").split())
        if required_scope is not None and not set(required_scope.split()) <= granted:
            return challenge_reply(
                403,
                "DPoP" if grant.jkt else "Bearer",
                "insufficient_scope",
                f"the API needs the scope {required_scope!r}",
                extra={"scope": required_scope},
            )
        body = {
            "path": request.path,
            "client_id": grant.client_id,
            "username": grant.username,
            "scope": grant.scope,
            "ok": True,
        }
        return Reply(json=body, headers=self._with_nonce({}))

    def _check_api_proof(
        self, request: RecordedRequest, grant: Grant, scheme: str, token: str, now: datetime
    ) -> Reply | None:
        """RFC 9449 section 7: a bound token needs the DPoP scheme and a proof by its key."""
        if grant.jkt is None:
            return self._reject("invalid_token", "the token is not DPoP-bound: use Bearer")
        if scheme != "dpop":
            return challenge_reply(401, "DPoP", "invalid_token", "the token is DPoP-bound")
        try:
            jkt = self._dpop.check(
                request.headers.get("DPoP"),
                method=request.method,
                url=self._request_url(request),
                now=now,
                access_token=token,
            )
        except DPoPError as refused:
            nonce = {} if refused.nonce is None else {"DPoP-Nonce": refused.nonce}
            return challenge_reply(401, "DPoP", refused.error, refused.description, headers=nonce)
        if jkt is None:
            return challenge_reply(401, "DPoP", "invalid_dpop_proof", "a DPoP proof is required")
        if jkt != grant.jkt:
            return challenge_reply(
                401, "DPoP", "invalid_dpop_proof", "the proof's key is not the token's key"
            )
        return None


def _is_api_path(path: str) -> bool:
    return path == API_PATH or path.startswith(API_PATH + "/")


def _problem(grant: Grant | None, now: datetime) -> str | None:
    """Why the API refuses a token, or None when it is valid."""
    if grant is None:
        return "the access token is unknown"
    if grant.revoked:
        return "the access token was revoked"
    if grant.expires_at is not None and now >= grant.expires_at:
        return "the access token expired"
    return None


def _unverified_issuer(assertion: str) -> str | None:
    """Who a client assertion says it is, before checking it: for the record."""
    try:
        issuer = parse_jwt(assertion).claims.get("iss")
    except BadJWT:
        return None
    return issuer if isinstance(issuer, str) else None

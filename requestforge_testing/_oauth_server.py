"""``OAuthServer``: a real OAuth 2.0 authorization server and protected API on loopback.

It issues and checks tokens the way RFC 6749 and RFC 6750 say, so code under test runs its
whole token flow over real HTTP: fetch, cache, expire (on the test's clock), 401, refresh.
Tests script failures (``fail_next``, ``reply_next``, ``latency``) and inspect what was
asked for (``token_requests``, ``grant_counts``). It needs nothing from pytest.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import math
import secrets
import threading
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import MappingProxyType, TracebackType
from typing import Any, Final
from urllib.parse import parse_qsl, unquote_plus

from requestforge._clock import Clock, get_default_clock
from requestforge._redact import REDACTED, is_secret_field
from requestforge_testing._servers import ApiServer, RecordedRequest, Reply

__all__ = ["OAuthServer", "RecordedTokenRequest"]

_TOKEN_PATH: Final = "/oauth/token"  # noqa: S105 - a path, not a secret
_API_PATH: Final = "/api"
_GRANTS: Final = ("client_credentials", "password", "refresh_token")
_FORM: Final = "application/x-www-form-urlencoded"
# RFC 6749 section 5.1: token responses must not be cached anywhere.
_NO_STORE: Final = MappingProxyType({"Cache-Control": "no-store", "Pragma": "no-cache"})


@dataclass(frozen=True)
class RecordedTokenRequest:
    """One request to the token endpoint and how it was answered.

    ``auth_method`` is ``"basic"`` (HTTP Basic), ``"body"`` (``client_id`` form field) or
    None (no client identification). ``thread_name`` names the server thread that served it.
    ``params`` holds the form fields as sent, secrets included; the repr hides them.
    """

    grant_type: str | None
    client_id: str | None
    auth_method: str | None
    params: Mapping[str, str]
    thread_name: str
    status: int
    error: str | None = None
    request: RecordedRequest | None = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:
        shown = {k: (REDACTED if is_secret_field(k) else v) for k, v in self.params.items()}
        return (
            f"RecordedTokenRequest(grant_type={self.grant_type!r}, client_id={self.client_id!r}, "
            f"auth_method={self.auth_method!r}, params={shown!r}, status={self.status}, "
            f"error={self.error!r})"
        )


@dataclass
class _Grant:
    """What a token was issued for; access and refresh tokens of one response share it."""

    client_id: str
    username: str | None
    scope: str | None
    expires_at: datetime | None = None
    revoked: bool = False


class _Refused(Exception):
    """Ends token request handling with an RFC 6749 section 5.2 error response."""

    def __init__(
        self,
        error: str,
        description: str,
        status: int = 400,
        headers: Mapping[str, str] = _NO_STORE,
    ) -> None:
        super().__init__(error)
        self.error, self.description, self.status, self.headers = (
            error,
            description,
            status,
            headers,
        )


class _Server(ApiServer):
    """An ApiServer that also routes every path under /api to one handler."""

    def __init__(self, api_handler: Callable[[RecordedRequest], Reply]) -> None:
        super().__init__()
        self._api_handler = api_handler

    def _dispatch(self, request: RecordedRequest) -> Reply:
        if _is_api_path(request.path):
            self.add_handler(request.path, self._api_handler)  # idempotent; reset() clears it
        return super()._dispatch(request)


class OAuthServer:
    """A loopback OAuth 2.0 token endpoint (``token_url``) and a protected API (``api_url``).

    Grants: ``client_credentials``, ``password`` and ``refresh_token``, with the client
    authenticated by HTTP Basic or form fields; a client whose secret is None is public.
    Refresh tokens rotate: each works once. Tokens expire on ``clock`` (or the default clock
    at call time, so a test's fake clock moves server-side expiry too). Thread-safe.
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
    ) -> None:
        self._clients = _credentials(
            "clients", self.DEFAULT_CLIENTS if clients is None else clients, allow_none=True
        )
        self._users = _credentials(
            "users", self.DEFAULT_USERS if users is None else users, allow_none=False
        )
        self._default_lifetime = _seconds("lifetime", lifetime, positive=True)
        if not isinstance(issue_refresh_tokens, bool):
            raise TypeError(f"issue_refresh_tokens must be a bool, got {issue_refresh_tokens!r}")
        self._default_refresh = issue_refresh_tokens
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(f"clock must be a Clock, got {clock!r}")
        self._clock = clock
        self._cond = threading.Condition()
        self._numbers = itertools.count(1)
        self._server = _Server(self._serve_api)
        self._restore()

    def _restore(self) -> None:
        """Forget everything a test did; the constructor's settings come back."""
        with self._cond:
            self._lifetime = self._default_lifetime
            self._latency = 0.0
            self.issue_refresh_tokens = self._default_refresh
            self._access: dict[str, _Grant] = {}
            self._refresh: dict[str, _Grant] = {}
            self._order: list[str] = []
            self._records: list[RecordedTokenRequest] = []
            self._grant_counts: Counter[str] = Counter()
            self._scripted: deque[Reply] = deque()
        self._server.add_handler(_TOKEN_PATH, self._serve_token)

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
        return self._server.url + _TOKEN_PATH

    @property
    def api_url(self) -> str:
        """The protected API's root: every path under it wants a Bearer token."""
        return self._server.url + _API_PATH

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
        value = _seconds("lifetime", seconds, positive=True)
        with self._cond:
            self._lifetime = value

    @property
    def latency(self) -> float:
        """Seconds every token response is held back, in real time; settable."""
        with self._cond:
            return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        value = _seconds("latency", seconds)
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
        headers = dict(_NO_STORE)
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
        form = _form(request)
        client_id, auth_method = _claimed_client(request, form)
        with self._cond:
            reply = self._scripted.popleft() if self._scripted else None
            latency = self._latency
        if reply is None:
            try:
                reply = self._grant(request, form)
            except _Refused as refused:
                body = {"error": refused.error, "error_description": refused.description}
                reply = Reply(status=refused.status, json=body, headers=refused.headers)
        error = _reply_error(reply)
        record = RecordedTokenRequest(
            grant_type=form.get("grant_type"),
            client_id=client_id,
            auth_method=auth_method,
            params=MappingProxyType(form),
            thread_name=request.thread_name,
            status=reply.status,
            error=error,
            request=request,
        )
        with self._cond:
            self._records.append(record)
            self._cond.notify_all()
        return replace(reply, delay=reply.delay + latency) if latency else reply

    def _grant(self, request: RecordedRequest, form: dict[str, str]) -> Reply:
        if request.method != "POST":
            headers = {**_NO_STORE, "Allow": "POST"}
            raise _Refused("invalid_request", "the token endpoint accepts only POST", 405, headers)
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != _FORM:
            raise _Refused("invalid_request", f"the body must be {_FORM}")
        if _repeated(request.body):
            raise _Refused("invalid_request", "a parameter was sent more than once")
        client_id = self._authenticate(request, form)
        grant_type = form.get("grant_type")
        if not grant_type:
            raise _Refused("invalid_request", "grant_type is missing")
        if grant_type not in _GRANTS:
            raise _Refused("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")
        scope = form.get("scope") or None
        with self._cond:
            if grant_type == "client_credentials":
                if self._clients[client_id] is None:
                    raise _Refused("unauthorized_client", "public clients cannot use this grant")
                grant = _Grant(client_id, None, scope)
            elif grant_type == "password":
                grant = _Grant(client_id, self._check_user(form), scope)
            else:
                grant = self._use_refresh_token(form, client_id, scope)
            return self._issue(grant, grant_type)

    def _authenticate(self, request: RecordedRequest, form: dict[str, str]) -> str:
        """The client's id after checking its credentials (RFC 6749 section 2.3.1)."""
        header = request.headers.get("Authorization")
        secret: str | None
        if header is not None:
            client_id, secret = _basic_credentials(header)
            if "client_secret" in form or form.get("client_id", client_id) != client_id:
                raise _Refused("invalid_request", "use one client authentication method")
        else:
            client_id = form.get("client_id", "")
            secret = form.get("client_secret")
        expected = self._clients.get(client_id, "")
        if client_id not in self._clients or (expected is not None and secret != expected):
            headers = dict(_NO_STORE)
            if header is not None:
                headers["WWW-Authenticate"] = 'Basic realm="forge"'
            raise _Refused("invalid_client", "client authentication failed", 401, headers)
        return client_id

    def _check_user(self, form: dict[str, str]) -> str:
        username, password = form.get("username"), form.get("password")
        if username is None or password is None:
            raise _Refused("invalid_request", "username and password are required")
        if self._users.get(username) != password:
            raise _Refused("invalid_grant", "the username or password is wrong")
        return username

    def _use_refresh_token(self, form: dict[str, str], client_id: str, scope: str | None) -> _Grant:
        token = form.get("refresh_token")
        if not token:
            raise _Refused("invalid_request", "refresh_token is missing")
        previous = self._refresh.get(token)
        if previous is None or previous.client_id != client_id:
            raise _Refused("invalid_grant", "the refresh token is unknown, used or revoked")
        del self._refresh[token]  # rotation: each refresh token works once
        return _Grant(client_id, previous.username, scope or previous.scope)

    def _issue(self, grant: _Grant, grant_type: str) -> Reply:
        """Mint tokens for ``grant`` (the caller holds the lock)."""
        number = next(self._numbers)
        access_token = f"forge-at-{number}-{secrets.token_urlsafe(12)}"
        now = (self._clock or get_default_clock()).now()
        grant.expires_at = now + timedelta(seconds=self._lifetime)
        body: dict[str, Any] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": int(self._lifetime) if self._lifetime.is_integer() else self._lifetime,
        }
        if self.issue_refresh_tokens and grant_type != "client_credentials":
            refresh_token = f"forge-rt-{number}-{secrets.token_urlsafe(12)}"
            self._refresh[refresh_token] = grant
            body["refresh_token"] = refresh_token
        if grant.scope is not None:
            body["scope"] = grant.scope
        self._access[access_token] = grant
        self._order.append(access_token)
        self._grant_counts[grant_type] += 1
        return Reply(json=body, headers=_NO_STORE)

    # -- the protected API (server threads) ----------------------------------------------

    def _serve_api(self, request: RecordedRequest) -> Reply:
        if request.method not in ("GET", "POST"):
            return Reply(
                status=405, json={"error": "method not allowed"}, headers={"Allow": "GET, POST"}
            )
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _unauthorized(None, "no Bearer token was sent")
        now = (self._clock or get_default_clock()).now()
        with self._cond:
            grant = self._access.get(token.strip())
            if grant is None:
                return _unauthorized("invalid_token", "the access token is unknown")
            if grant.revoked:
                return _unauthorized("invalid_token", "the access token was revoked")
            if grant.expires_at is not None and now >= grant.expires_at:
                return _unauthorized("invalid_token", "the access token expired")
            body = {
                "path": request.path,
                "client_id": grant.client_id,
                "username": grant.username,
                "scope": grant.scope,
                "ok": True,
            }
        return Reply(json=body)


def _is_api_path(path: str) -> bool:
    return path == _API_PATH or path.startswith(_API_PATH + "/")


def _unauthorized(error: str | None, description: str) -> Reply:
    """RFC 6750 section 3: no error code when no token was sent at all."""
    challenge = "Bearer" if error is None else f'Bearer error="{error}"'
    body = {"error": error or "unauthorized", "error_description": description}
    return Reply(status=401, json=body, headers={"WWW-Authenticate": challenge})


def _form(request: RecordedRequest) -> dict[str, str]:
    try:
        return dict(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return {}


def _repeated(body: bytes) -> bool:
    names = [name for name, _ in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)]
    return len(names) != len(set(names))


def _claimed_client(
    request: RecordedRequest, form: Mapping[str, str]
) -> tuple[str | None, str | None]:
    """Who the request says it is, checked or not: for the record."""
    header = request.headers.get("Authorization")
    if header is not None and header[:6].lower() == "basic ":
        try:
            return _basic_credentials(header)[0], "basic"
        except _Refused:
            return None, "basic"
    if "client_id" in form:
        return form["client_id"], "body"
    return None, None


def _basic_credentials(header: str) -> tuple[str, str]:
    """Decode ``Basic base64(urlencode(id):urlencode(secret))`` (RFC 6749 section 2.3.1)."""
    scheme, _, encoded = header.partition(" ")
    try:
        if scheme.lower() != "basic":
            raise ValueError(scheme)
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (ValueError, binascii.Error):
        headers = {**_NO_STORE, "WWW-Authenticate": 'Basic realm="forge"'}
        raise _Refused("invalid_client", "malformed Basic credentials", 401, headers) from None
    client_id, _, secret = decoded.partition(":")
    return unquote_plus(client_id), unquote_plus(secret)


def _reply_error(reply: Reply) -> str | None:
    """The OAuth error code a reply carries, if it is an error with a JSON ``error``."""
    body = reply.json
    error = body.get("error") if reply.status >= 400 and isinstance(body, Mapping) else None
    return error if isinstance(error, str) else None


def _credentials(name: str, pairs: object, *, allow_none: bool) -> dict[str, Any]:
    if not isinstance(pairs, Mapping):
        raise TypeError(f"{name} must be a mapping, got {type(pairs).__name__}")
    for key, value in pairs.items():
        ok = isinstance(value, str) or (allow_none and value is None)
        if not isinstance(key, str) or not key or not ok:
            raise ValueError(f"{name} must map non-empty names to strings, got {key!r}")
    return dict(pairs)


def _seconds(name: str, value: float, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)

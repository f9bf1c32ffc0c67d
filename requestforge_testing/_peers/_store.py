"""The in-memory clients, users and tokens behind :class:`AuthlibServer` (no authlib here).

authlib leaves storage to the application: these are the models its grants, endpoints and
validators call (``ClientMixin`` and ``TokenMixin`` by duck typing), and the counters the
tests read. One lock guards everything; the token endpoint holds it for a whole request, as
a database row lock would, so a rotated refresh token works exactly once.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from requestforge._clock import Clock, get_default_clock

__all__ = ["PeerClient", "PeerStore", "PeerToken", "PeerUser"]


@dataclass
class PeerUser:
    """A resource owner of the password and JWT bearer grants."""

    username: str
    password: str = field(repr=False)

    def get_user_id(self) -> str:
        return self.username


@dataclass
class PeerClient:
    """A registered client: a secret (None for a public client), and a public JWK for
    ``private_key_jwt`` and the JWT bearer grant (None when it has no key pair)."""

    client_id: str
    client_secret: str | None = field(repr=False)
    public_jwk: dict[str, Any] | None = field(default=None, repr=False)

    # -- authlib's ClientMixin -----------------------------------------------------------

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        return scope or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client_secret is not None and client_secret == self.client_secret

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if method == "none":
            return self.client_secret is None
        if method == "private_key_jwt":
            return self.public_jwk is not None
        return self.client_secret is not None

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return True


@dataclass
class PeerToken:
    """One token response: an access token and maybe a refresh token, revocable apart."""

    client_id: str
    username: str | None
    scope: str
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    issued_at: datetime
    expires_in: int
    clock: Clock | None = field(repr=False, compare=False)
    access_revoked: bool = False
    refresh_revoked: bool = False

    @property
    def expires_at(self) -> datetime:
        return self.issued_at + timedelta(seconds=self.expires_in)

    # -- authlib's TokenMixin ------------------------------------------------------------

    def check_client(self, client: PeerClient) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return (self.clock or get_default_clock()).now() >= self.expires_at

    def is_revoked(self) -> bool:
        return self.access_revoked

    # -- what the grants ask ---------------------------------------------------------------

    def get_user(self) -> str | None:
        return self.username


class PeerStore:
    """Clients, users, tokens, used JWT ids and counters; thread-safe under ``lock``."""

    def __init__(self, *, lifetime: int, clock: Clock | None) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.default_lifetime = lifetime
        self.clients: dict[str, PeerClient] = {}
        self.users: dict[str, PeerUser] = {}
        self.reset()

    def reset(self) -> None:
        """Forget tokens, JWT ids and counts; clients and users stay."""
        with self.lock:
            self.lifetime = self.default_lifetime
            self.latency = 0.0
            self.access: dict[str, PeerToken] = {}
            self.refresh: dict[str, PeerToken] = {}
            self.jtis: set[tuple[str, str]] = set()
            self.requests: Counter[str] = Counter()
            self.issued: Counter[str] = Counter()
            self.api_statuses: list[int] = []

    def now(self) -> datetime:
        return (self.clock or get_default_clock()).now()

    def save(self, token: dict[str, Any], client: PeerClient, user: PeerUser | None) -> None:
        """Keep what authlib just generated (``save_token``)."""
        with self.lock:
            record = PeerToken(
                client_id=client.client_id,
                username=None if user is None else user.username,
                scope=str(token.get("scope") or ""),
                access_token=str(token["access_token"]),
                refresh_token=token.get("refresh_token"),
                issued_at=self.now(),
                expires_in=int(token["expires_in"]),
                clock=self.clock,
            )
            self.access[record.access_token] = record
            if record.refresh_token is not None:
                self.refresh[record.refresh_token] = record

    def find(self, value: str, hint: str | None = None) -> PeerToken | None:
        """The token whose access or refresh token is ``value`` (the hint is tried first)."""
        with self.lock:
            if hint == "refresh_token":
                return self.refresh.get(value) or self.access.get(value)
            return self.access.get(value) or self.refresh.get(value)

    def use_jti(self, issuer: str, jti: str) -> bool:
        """True the first time ``(issuer, jti)`` is seen: an assertion works once."""
        with self.lock:
            if (issuer, jti) in self.jtis:
                return False
            self.jtis.add((issuer, jti))
            return True

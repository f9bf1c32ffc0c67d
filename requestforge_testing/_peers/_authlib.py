"""``AuthlibServer``: authlib's Flask authorization server and a protected API on loopback.

A peer we did not write: the token endpoint, client authentication, revocation,
introspection and bearer-token checks are authlib's (``authlib.integrations.flask_oauth2``);
only the in-memory models and key lookup are ours (``_store.py``, ``_authlib_app.py``).
Served by werkzeug's threaded ``make_server`` on a free 127.0.0.1 port. Needs authlib and
Flask (the ``dev`` extra), imported when the server starts.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from importlib.util import find_spec
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from requestforge._clock import Clock
from requestforge_testing._peers._store import PeerClient, PeerStore, PeerUser

if TYPE_CHECKING:
    from joserfc.jwk import RSAKey
    from werkzeug.serving import BaseWSGIServer

__all__ = ["AuthlibServer", "missing_peer_packages"]

_HOST: Final = "127.0.0.1"

#: The distributions each peer needs, by the module it provides.
_PEER_PACKAGES: Final = {
    "authlib": {"authlib": "authlib", "flask": "flask", "joserfc": "joserfc"},
    "dot": {"django-oauth-toolkit": "oauth2_provider", "django": "django"},
}


def missing_peer_packages(peer: str) -> tuple[str, ...]:
    """The distributions ``peer`` (``"authlib"`` or ``"dot"``) needs that are not installed."""
    return tuple(dist for dist, module in _PEER_PACKAGES[peer].items() if find_spec(module) is None)


class AuthlibServer:
    """authlib's ``AuthorizationServer`` (Flask) with an in-memory store, on loopback.

    Grants: ``client_credentials``, ``password``, ``refresh_token`` (rotated: the old refresh
    token and its access token are revoked on use) and the JWT bearer grant (RFC 7523
    section 2.1, an assertion signed with the client's private key). Client authentication:
    ``client_secret_basic``, ``client_secret_post``, ``client_secret_jwt`` (HS256 with the
    secret) and ``private_key_jwt`` (RS256, PS256 or ES256 with the client's key); JWT ids
    are single-use. Revocation (RFC 7009) at :attr:`revocation_url`, introspection
    (RFC 7662) at :attr:`introspection_url`, and a protected API under :attr:`api_url`
    (authlib's ``ResourceProtector``: 401 with ``WWW-Authenticate`` for a bad token).

    One client is registered (:attr:`client_id`, :attr:`client_secret`, an RSA key pair in
    :attr:`private_key`) and one user (:attr:`username`, :attr:`password`); ``add_client``
    and ``add_user`` register more. Tokens expire on ``clock`` (else the default clock at
    call time, so a test's fake clock moves server-side expiry too).
    """

    #: The registered client and user.
    CLIENT_ID: Final = "authlib-client"
    CLIENT_SECRET: Final = "authlib-secret"  # noqa: S105 - a throwaway test credential
    USERNAME: Final = "authlib-user"
    PASSWORD: Final = "authlib-password"  # noqa: S105 - likewise
    #: ``expires_in`` of new access tokens unless ``lifetime`` says otherwise.
    DEFAULT_LIFETIME: Final = 3600

    def __init__(self, *, lifetime: int = DEFAULT_LIFETIME, clock: Clock | None = None) -> None:
        if isinstance(lifetime, bool) or not isinstance(lifetime, int) or lifetime < 1:
            raise ValueError(f"lifetime must be an integer >= 1, got {lifetime!r}")
        self._store = PeerStore(lifetime=lifetime, clock=clock)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._key: RSAKey | None = None
        self._url = ""

    @staticmethod
    def missing() -> tuple[str, ...]:
        """The distributions this server needs that are not installed (empty: none)."""
        return missing_peer_packages("authlib")

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> AuthlibServer:
        """Build the app, bind a free 127.0.0.1 port and serve from a background thread."""
        if self._server is not None:
            return self
        from joserfc.jwk import RSAKey  # noqa: PLC0415 - only a started server needs it
        from werkzeug.serving import WSGIRequestHandler, make_server  # noqa: PLC0415

        from requestforge_testing._peers._authlib_app import build_app  # noqa: PLC0415

        class QuietHandler(WSGIRequestHandler):
            def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
                """No line per request on stderr."""

        self._key = RSAKey.generate_key(2048)
        self.add_client(self.CLIENT_ID, self.CLIENT_SECRET, public_jwk=self.public_jwk)
        self.add_user(self.USERNAME, self.PASSWORD)
        app = build_app(self._store, self._audiences)
        server = make_server(_HOST, 0, app, threaded=True, request_handler=QuietHandler)
        self._url = f"http://{_HOST}:{server.server_port}"
        self._thread = threading.Thread(
            target=server.serve_forever, name="authlib-peer", daemon=True
        )
        self._server = server
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; stopping twice is harmless."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> AuthlibServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget tokens, JWT ids, counts and latency, restore ``lifetime``; keep clients."""
        self._store.reset()

    def __repr__(self) -> str:
        return f"AuthlibServer({self._url if self.running else 'stopped'})"

    # -- where and who -------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the server is accepting connections."""
        return self._server is not None

    @property
    def url(self) -> str:
        """Base URL such as ``http://127.0.0.1:54321``; also the issuer."""
        return self._url

    @property
    def token_url(self) -> str:
        """The token endpoint."""
        return self._url + "/oauth/token"

    @property
    def revocation_url(self) -> str:
        """The RFC 7009 revocation endpoint."""
        return self._url + "/oauth/revoke"

    @property
    def introspection_url(self) -> str:
        """The RFC 7662 introspection endpoint."""
        return self._url + "/oauth/introspect"

    @property
    def api_url(self) -> str:
        """The protected API's root: every path under it wants a Bearer token."""
        return self._url + "/api"

    @property
    def client_id(self) -> str:
        """The registered confidential client."""
        return self.CLIENT_ID

    @property
    def client_secret(self) -> str:
        """Its secret (also the HS256 key of ``client_secret_jwt``)."""
        return self.CLIENT_SECRET

    @property
    def username(self) -> str:
        """The registered user, for the password grant and as a JWT bearer ``sub``."""
        return self.USERNAME

    @property
    def password(self) -> str:
        """That user's password."""
        return self.PASSWORD

    @property
    def private_key(self) -> RSAKey:
        """The client's RSA key pair (a joserfc key), for ``private_key_jwt`` and JWT bearer."""
        if self._key is None:
            raise RuntimeError("the key pair is made by start()")
        return self._key

    @property
    def private_key_pem(self) -> bytes:
        """The client's private key as PKCS#8 PEM."""
        pem: bytes = self.private_key.as_pem(private=True)
        return pem

    @property
    def public_jwk(self) -> dict[str, Any]:
        """The client's public key as a JWK, as registered."""
        return dict(self.private_key.as_dict(private=False))

    @property
    def audiences(self) -> list[str]:
        """The ``aud`` values a client assertion or JWT bearer assertion may carry."""
        return self._audiences()

    def _audiences(self) -> list[str]:
        return [self.token_url, self._url]

    def add_client(
        self, client_id: str, client_secret: str | None, *, public_jwk: dict[str, Any] | None = None
    ) -> None:
        """Register (or replace) a client: a secret, and a public JWK for key-based auth."""
        with self._store.lock:
            self._store.clients[client_id] = PeerClient(client_id, client_secret, public_jwk)

    def add_user(self, username: str, password: str) -> None:
        """Register (or replace) a user."""
        with self._store.lock:
            self._store.users[username] = PeerUser(username, password)

    # -- control -------------------------------------------------------------------------

    @property
    def lifetime(self) -> int:
        """``expires_in`` of new access tokens, in seconds; settable."""
        with self._store.lock:
            return self._store.lifetime

    @lifetime.setter
    def lifetime(self, seconds: int) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 1:
            raise ValueError(f"lifetime must be an integer >= 1, got {seconds!r}")
        with self._store.lock:
            self._store.lifetime = seconds

    @property
    def latency(self) -> float:
        """Seconds every token request is held before authlib sees it (real time); settable."""
        with self._store.lock:
            return self._store.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise ValueError(f"latency must be a number >= 0, got {seconds!r}")
        with self._store.lock:
            self._store.latency = float(seconds)

    def expire_tokens(self) -> None:
        """Make every access token issued so far expired (refresh tokens keep working)."""
        with self._store.lock:
            for token in self._store.access.values():
                token.issued_at -= timedelta(seconds=token.expires_in + 1)

    # -- inspection ----------------------------------------------------------------------

    @property
    def token_request_counts(self) -> dict[str, int]:
        """Requests to the token endpoint per ``grant_type``, answered or refused."""
        with self._store.lock:
            return dict(self._store.requests)

    @property
    def grant_counts(self) -> dict[str, int]:
        """Access tokens issued per ``grant_type``, e.g. ``{"password": 1, "refresh_token": 2}``."""
        with self._store.lock:
            return dict(self._store.issued)

    @property
    def api_statuses(self) -> list[int]:
        """The status of every protected API response since the last reset, in order."""
        with self._store.lock:
            return list(self._store.api_statuses)

    def token_active(self, token: str) -> bool:
        """Whether ``token`` (access or refresh) was issued here and is neither revoked nor
        expired (an expired access token's refresh token still counts as active)."""
        with self._store.lock:
            found = self._store.access.get(token)
            if found is not None:
                return not found.access_revoked and not found.is_expired()
            found = self._store.refresh.get(token)
            return found is not None and not found.refresh_revoked

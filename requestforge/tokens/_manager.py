"""``TokenManager``: a cached token, refreshed by one caller at a time.

::

    get_token()
        stored token fresh                       -> return it (no lock taken)
        inside the refresh window, still valid   -> one caller refreshes; the rest return it
        missing or stale                         -> one caller fetches; the rest wait for it
    the fetching caller (the "leader")
        takes the storage's refresh lock         (cross-process for a shared storage)
        re-reads the storage                     (another process may have refreshed)
        provider.refresh_token(current) if it has a refresh token, else fetch_token()
        stores the new token, wakes the waiters  (or hands them its error)

Single flight holds per cache key: callers of one manager join the leader's flight, and
managers sharing a storage and key serialize on the storage's refresh lock and re-check it.
A failed fetch stores nothing. The old token is served while it is still valid, and the next
attempt is spaced by a growing backoff, so a broken token endpoint sees no refresh storm.

A token with ``expires_in: 0`` means "do not cache": it goes to the callers of the flight
that fetched it (one fetch per burst, as always) and is never stored, so every later call
fetches. A refresh token past its ``refresh_expires_at`` is not tried: the leader fetches.

A rejected token (``refresh(rejected)``, a 401) is replaced at once, however recently it was
fetched. But when the resend with the token that replaced it is rejected too
(``record_resend(token, accepted=False)``, reported by :class:`~requestforge.TokenAuthHook`),
a new token does not help: the API refuses every token, or this client. That "fresh token
rejected" signal opens a window (1 s, doubling up to 60 s while the signal recurs) in which
rejections of that token get it back instead of a fetch. So an API that always answers 401
sees about one token fetch per window, not one per call, while a revoked token is still
renewed on its first 401 (its replacement is accepted, so no window opens).
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import replace
from typing import Final, TypeGuard

from requestforge._clock import Clock, get_default_clock
from requestforge._exceptions import (
    ConfigurationError,
    TokenEndpointError,
    TokenError,
    TokenStorageError,
)
from requestforge._validate import instance, number, text, valid_clock
from requestforge.tokens._data import TokenData
from requestforge.tokens._providers import TokenProviderInterface
from requestforge.tokens.storage._interface import TokenStorageInterface
from requestforge.tokens.storage._memory import InMemoryTokenStorage

__all__ = ["TokenManager"]

logger = logging.getLogger("requestforge.tokens")

_INF = math.inf


class _Flight:
    """One fetch in progress: the leader settles it, the waiters block on it."""

    __slots__ = ("_done", "error", "token")

    def __init__(self) -> None:
        self._done = threading.Event()
        self.token: TokenData | None = None
        self.error: BaseException | None = None

    def settle(self, token: TokenData | None, error: BaseException | None) -> None:
        self.token, self.error = token, error
        self._done.set()

    def wait(self, timeout: float) -> bool:
        return self._done.wait(timeout)


class TokenManager:
    """Caches a provider's token in a storage and refreshes it once, however many threads ask.

    Share one manager between all threads (and, through a shared storage, between
    processes). ``cache_key`` defaults to one derived from ``provider.service_name``.
    All time is read from ``clock``, or the process-wide default clock at call time.
    """

    #: A token counts as expired this long before ``expires_at``: a request sent now must
    #: still carry a valid token when the server checks it, after network and clock skew.
    DEFAULT_LEEWAY: Final = 30.0
    #: ...but never more than this fraction of its lifetime, so that a 20-second token is
    #: not "expired on arrival".
    MAX_LEEWAY_FRACTION: Final = 0.1
    #: Inside this many seconds before expiry, one caller refreshes ahead of time while the
    #: others keep using the valid token, so nobody waits at the expiry itself.
    DEFAULT_REFRESH_WINDOW: Final = 300.0
    #: ...capped at this fraction of the lifetime (a 10-minute token refreshes in its last 5).
    MAX_REFRESH_WINDOW_FRACTION: Final = 0.5
    #: After a failed fetch the next one waits this long, doubling per consecutive failure,
    #: so a broken token endpoint sees a trickle of attempts instead of one per request.
    FAILURE_BACKOFF: Final = 1.0
    #: The backoff stops doubling here.
    MAX_FAILURE_BACKOFF: Final = 60.0
    #: How long a caller waits for another caller's fetch or for the storage's refresh lock.
    DEFAULT_WAIT_TIMEOUT: Final = 60.0

    def __init__(
        self,
        provider: TokenProviderInterface,
        storage: TokenStorageInterface | None = None,
        *,
        cache_key: str | None = None,
        leeway: float = DEFAULT_LEEWAY,
        refresh_window: float = DEFAULT_REFRESH_WINDOW,
        wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
        clock: Clock | None = None,
    ) -> None:
        instance("provider", provider, TokenProviderInterface)
        if storage is not None:
            instance("storage", storage, TokenStorageInterface)
        if cache_key is None:
            cache_key = f"requestforge:token:{provider.service_name}"
        text("cache_key", cache_key)
        self._provider = provider
        self._storage = storage if storage is not None else InMemoryTokenStorage()
        self._key = cache_key
        self._leeway = number("leeway", leeway)
        self._window = number("refresh_window", refresh_window)
        self._wait_timeout = number("wait_timeout", wait_timeout, strict=True)
        self._clock = valid_clock("clock", clock)
        self._state_lock = threading.Lock()
        self._flight: _Flight | None = None
        self._failures = 0
        self._retry_at = -_INF
        self._last_error: BaseException | None = None
        # The storm limit: the fresh token that was rejected too, the window in which its
        # rejections get no fetch, and how many windows have opened in a row.
        self._suspect: str | None = None
        self._storms = 0
        self._storm_until = -_INF
        # (token, clock, refresh_at, stale_at): the last token's thresholds on the monotonic
        # clock, so the hot path costs one storage read and one clock read.
        self._hot: tuple[TokenData | None, Clock | None, float, float] = (None, None, 0.0, 0.0)

    @property
    def provider(self) -> TokenProviderInterface:
        """The provider tokens come from."""
        return self._provider

    @property
    def storage(self) -> TokenStorageInterface:
        """The storage tokens are cached in."""
        return self._storage

    @property
    def cache_key(self) -> str:
        """The key this manager's token is stored under: its identity for single flight."""
        return self._key

    def get_token(self) -> TokenData:
        """Return a valid token, fetching or refreshing it first if it is missing or stale."""
        token = self._storage.cached(self._key)
        hot = self._hot
        clock = self._clock or get_default_clock()  # resolved once per call, passed down
        if token is not None and token is hot[0] and clock is hot[1] and clock.monotonic() < hot[2]:
            return token
        return self._get_slow(token, clock)

    def refresh(self, rejected: TokenData | str | None = None) -> TokenData:
        """Fetch a new token now, or, given the token a server ``rejected``, only if it is
        still the stored one (compare-and-refresh).

        A burst of 401s for the same token therefore causes one refresh: the first caller
        refreshes, the others join it or find a different token already stored. Inside a
        storm window (see :meth:`record_resend`) the rejected token is returned as it is.
        """
        if isinstance(rejected, TokenData):
            rejected = rejected.access_token
        if rejected is not None and not isinstance(rejected, str):
            raise TypeError(f"rejected must be a TokenData, a string or None, got {rejected!r}")
        clock = self._clock or get_default_clock()
        current = self._storage.get(self._key)
        if rejected is not None and self._usable(
            current, clock, proactive=False, rejected=rejected
        ):
            return current
        return self._obtain(
            current, clock, proactive=False, rejected=rejected, force=rejected is None
        )

    def record_resend(self, token: TokenData | str, *, accepted: bool) -> None:
        """Report how the API answered a resend with ``token``, the token that replaced a
        rejected one: ``accepted=False`` (a 401 again) opens the storm window, in which
        ``refresh(token)`` fetches nothing: 1 s, doubling per window that opens again up to
        :attr:`MAX_FAILURE_BACKOFF`, starting over after a quiet spell that long or after
        an accepted resend.
        """
        if isinstance(token, TokenData):
            token = token.access_token
        if not isinstance(token, str):
            raise TypeError(f"token must be a TokenData or a string, got {type(token).__name__}")
        now = (self._clock or get_default_clock()).monotonic()
        with self._state_lock:
            if accepted:
                self._storms = 0
                if token == self._suspect:
                    self._suspect, self._storm_until = None, -_INF
                return
            if token == self._suspect and now < self._storm_until:
                return  # one of a burst of resends with the same token: the window is open
            if now >= self._storm_until + self.MAX_FAILURE_BACKOFF:
                self._storms = 0  # quiet for a long while: a new storm starts small
            window = min(self.FAILURE_BACKOFF * 2.0**self._storms, self.MAX_FAILURE_BACKOFF)
            self._storms += 1
            self._suspect, self._storm_until = token, now + window
        logger.warning(
            "the token fetched for %r after a 401 was rejected too; its 401s cause no token "
            "fetch for %gs",
            self._key,
            window,
        )

    def _renewal_failure(self, rejected: str) -> TokenError | None:
        """Why ``refresh(rejected)`` returned the rejected token: None inside its storm
        window (the refusal goes back to the caller, as the storm limit wants), else the
        fetch error it served the still-valid token over (it failed now, or failed lately
        and is backing off). For :class:`~requestforge.TokenAuthHook`."""
        now = (self._clock or get_default_clock()).monotonic()
        with self._state_lock:
            if self._suspect == rejected and now < self._storm_until:
                return None
            error = self._last_error
        if isinstance(error, TokenError):
            return error
        if error is not None:
            return TokenError(f"renewing the token failed: {type(error).__name__}")
        return None

    def invalidate(self) -> None:
        """Forget the stored token (and any failure backoff); the next caller fetches."""
        self._storage.delete(self._key)
        with self._state_lock:
            self._hot = (None, None, 0.0, 0.0)
            self._failures, self._retry_at, self._last_error = 0, -_INF, None
            self._suspect, self._storms, self._storm_until = None, 0, -_INF

    def revoke(self) -> None:
        """Revoke the stored token at the provider's revocation endpoint (RFC 7009) and
        delete it from the storage; the next caller fetches a new one.

        The refresh token is revoked first (a server may revoke its access tokens with it,
        RFC 7009 section 2.1), then the access token. The provider must have a
        ``revoke_token(token, token_type_hint=...)`` method (the OAuth 2.0 providers do,
        given a ``revocation_url``), else this raises ConfigurationError. The token is
        deleted from the storage even when the server refuses or cannot be reached: a
        token we tried to revoke is never served again. The first error is then raised
        (a :class:`~requestforge.TokenEndpointError`), after both revocations were tried.
        Runs under the storage's refresh lock, so no concurrent refresh stores a token
        renewed from the one being revoked.
        """
        revoke_token = getattr(self._provider, "revoke_token", None)
        if not callable(revoke_token):
            raise ConfigurationError(
                f"{type(self._provider).__name__} cannot revoke tokens (it has no revoke_token)"
            )
        if getattr(self._provider, "revocation_url", "") is None:
            # Say so even when nothing is stored: the configuration is wrong either way.
            raise ConfigurationError(
                f"{type(self._provider).__name__} has no revocation_url: give revocation_url= "
                "(or build it with from_issuer() from metadata that names the endpoint)"
            )
        first: Exception | None = None
        with self._storage.refresh_lock(self._key, timeout=self._wait_timeout):
            token = self._storage.get(self._key)
            try:
                if token is not None:
                    sent = [
                        (token.refresh_token, "refresh_token"),
                        (token.access_token, "access_token"),
                    ]
                    for value, hint in sent:
                        if value is None:
                            continue
                        try:
                            revoke_token(value, token_type_hint=hint)
                        except Exception as exc:  # noqa: BLE001 - raised below, after both
                            first = first or exc
            finally:
                self.invalidate()
        if first is not None:
            raise first

    def close(self, *, revoke: bool = False) -> None:
        """Close the provider (if it has ``close()``), after :meth:`revoke` if ``revoke``.

        Use it when the manager owns its provider: the provider's own HttpClient is closed.
        With ``revoke=True`` a failed revocation still deletes the token and closes the
        provider, then raises. The storage stays open (it is often shared).
        """
        try:
            if revoke:
                self.revoke()
        finally:
            close = getattr(self._provider, "close", None)
            if callable(close):
                close()

    def __repr__(self) -> str:
        return (
            f"TokenManager(provider={self._provider!r}, storage={self._storage!r}, "
            f"cache_key={self._key!r})"
        )

    # -- the slow path -------------------------------------------------------------------

    def _get_slow(self, token: TokenData | None, clock: Clock) -> TokenData:
        if token is not None:
            refresh_at, stale_at = self._thresholds(token, clock)
            now = clock.monotonic()
            if now < refresh_at:
                return token
            if now < stale_at:
                return self._obtain(token, clock, proactive=True)
        return self._obtain(token, clock, proactive=False)

    def _thresholds(self, token: TokenData, clock: Clock) -> tuple[float, float]:
        """When ``token`` enters the refresh window and when it goes stale, as monotonic times."""
        if token.expires_at is None:
            refresh_at = stale_at = _INF
        else:
            remaining = (token.expires_at - clock.now()).total_seconds()
            leeway, window = self._leeway, self._window
            lifetime = token.lifetime
            if lifetime is not None:
                leeway = min(leeway, lifetime * self.MAX_LEEWAY_FRACTION)
                window = min(window, lifetime * self.MAX_REFRESH_WINDOW_FRACTION)
            now = clock.monotonic()
            stale_at = now + remaining - leeway
            refresh_at = now + remaining - max(window, leeway)
        self._hot = (token, clock, refresh_at, stale_at)
        return refresh_at, stale_at

    def _needs_fetch(
        self, token: TokenData | None, clock: Clock, *, proactive: bool = False
    ) -> bool:
        if token is None:
            return True
        refresh_at, stale_at = self._thresholds(token, clock)
        return clock.monotonic() >= (refresh_at if proactive else stale_at)

    def _obtain(
        self,
        stale: TokenData | None,
        clock: Clock,
        *,
        proactive: bool,
        rejected: str | None = None,
        force: bool = False,
    ) -> TokenData:
        """Lead a fetch, or join the one in flight; see the module docstring."""
        backing_off: BaseException | None = None
        # Only a still-usable token that was rejected as such can be held back.
        holdable = (
            stale
            if stale is not None
            and stale.access_token == rejected
            and not self._needs_fetch(stale, clock)
            else None
        )
        with self._state_lock:
            flight = self._flight
            leader = flight is None
            if flight is None:
                if (
                    holdable is not None
                    and rejected == self._suspect
                    and clock.monotonic() < self._storm_until
                ):
                    return holdable  # the storm window: a new token would be refused too
                if clock.monotonic() < self._retry_at and not force:
                    backing_off = self._last_error
                else:
                    flight = self._flight = _Flight()
        if flight is None:
            if stale is not None and (proactive or not stale.expired(clock=clock)):
                return stale
            raise backing_off or TokenError(f"token fetch for {self._key!r} is backing off")
        if not leader:
            if proactive and stale is not None:
                return stale
            return self._wait_for(flight, stale, clock)
        return self._lead(flight, stale, clock, proactive=proactive, rejected=rejected, force=force)

    def _wait_for(self, flight: _Flight, stale: TokenData | None, clock: Clock) -> TokenData:
        if not flight.wait(self._wait_timeout):
            raise TokenError(
                f"timed out after {self._wait_timeout:g}s waiting for another caller's "
                f"token fetch for {self._key!r}"
            )
        if flight.token is not None:
            return flight.token
        if stale is not None and not stale.expired(clock=clock):
            return stale
        raise flight.error or TokenError(f"token fetch for {self._key!r} failed")

    def _lead(
        self,
        flight: _Flight,
        stale: TokenData | None,
        clock: Clock,
        *,
        proactive: bool,
        rejected: str | None,
        force: bool,
    ) -> TokenData:
        try:
            token = self._fetch_under_lock(
                clock, proactive=proactive, rejected=rejected, force=force
            )
        except BaseException as exc:
            self._settle(flight, None, exc, clock)
            if isinstance(exc, Exception) and stale is not None and not stale.expired(clock=clock):
                logger.warning(
                    "token refresh for %r failed (%s); serving the current token until it "
                    "expires at %s",
                    self._key,
                    type(exc).__name__,
                    stale.expires_at,
                )
                return stale
            raise
        self._settle(flight, token, None, clock)
        return token

    def _settle(
        self, flight: _Flight, token: TokenData | None, error: BaseException | None, clock: Clock
    ) -> None:
        with self._state_lock:
            self._flight = None
            if error is None:
                self._failures, self._retry_at, self._last_error = 0, -_INF, None
            elif isinstance(error, Exception):
                backoff = min(self.FAILURE_BACKOFF * 2.0**self._failures, self.MAX_FAILURE_BACKOFF)
                self._failures += 1
                self._retry_at = clock.monotonic() + backoff
                self._last_error = error
        if error is not None and not isinstance(error, Exception):
            error = TokenError(f"the token fetch for {self._key!r} was interrupted")
        flight.settle(token, error)

    def _fetch_under_lock(
        self, clock: Clock, *, proactive: bool, rejected: str | None, force: bool
    ) -> TokenData:
        if rejected is None and not force:
            # The caller's token may be a near copy: another process may have renewed it
            # already, and one read is cheaper than a round of the shared lock.
            current = self._storage.get(self._key)
            if self._usable(current, clock, proactive=proactive, rejected=None):
                return current
        with self._storage.refresh_lock(self._key, timeout=self._wait_timeout):
            # Whoever held the lock before us has usually just stored a fresh token.
            current = self._storage.get(self._key)
            if not force and self._usable(current, clock, proactive=proactive, rejected=rejected):
                return current
            token = self._call_provider(current, clock)
            if _cacheable(token):
                self._store(token)
                self._thresholds(token, clock)
            # else expires_in=0, "do not cache": the callers of this flight get it (the
            # waiters through the flight), and the next call fetches again.
            return token

    def _store(self, token: TokenData) -> None:
        """Store a fetched token; if the storage fails now (a Redis failover), the callers of
        this flight still get the token: fetching it cost a round trip and it is valid."""
        try:
            self._storage.set(self._key, token)
        except TokenStorageError as exc:
            logger.warning(
                "could not store the token fetched for %r (%s); its callers get it, and the "
                "next caller that finds no stored token fetches again",
                self._key,
                type(exc).__name__,
            )

    def _usable(
        self, token: TokenData | None, clock: Clock, *, proactive: bool, rejected: str | None
    ) -> TypeGuard[TokenData]:
        """``token`` is there, not the rejected one, and needs no fetch yet."""
        return (
            token is not None
            and token.access_token != rejected
            and not self._needs_fetch(token, clock, proactive=proactive)
        )

    def _call_provider(self, current: TokenData | None, clock: Clock) -> TokenData:
        refreshed = current is not None and current.refresh_token is not None
        if current is not None and refreshed and self._refresh_expired(current, clock):
            # A refresh token past its refresh_expires_at would only earn an invalid_grant.
            logger.info("refresh token for %r has expired; fetching a new token", self._key)
            refreshed = False
        if current is not None and refreshed:
            try:
                token = self._provider.refresh_token(current)
            except TokenEndpointError as exc:
                if exc.error != "invalid_grant":
                    raise
                logger.info("refresh token for %r was rejected; fetching a new token", self._key)
                token, refreshed = self._provider.fetch_token(), False
        else:
            token = self._provider.fetch_token()
        if not isinstance(token, TokenData):
            raise TokenError(
                f"{type(self._provider).__name__} returned {type(token).__name__}, not TokenData"
            )
        if token.issued_at is None:
            token = replace(token, issued_at=clock.now())
        if refreshed and token.refresh_token is None and current is not None:
            # RFC 6749 section 6: the server may keep the old refresh token valid (and it
            # keeps its expiry, unless the response tells a new one).
            token = replace(
                token,
                refresh_token=current.refresh_token,
                refresh_expires_at=token.refresh_expires_at or current.refresh_expires_at,
            )
        return token

    def _refresh_expired(self, token: TokenData, clock: Clock) -> bool:
        """True once ``token``'s refresh token is within the leeway of its
        ``refresh_expires_at`` (the leeway capped at a tenth of its lifetime, as for access
        tokens): a refresh sent now would reach the server too late."""
        expires_at = token.refresh_expires_at
        if expires_at is None:
            return False
        leeway = self._leeway
        if token.issued_at is not None:
            lifetime = (expires_at - token.issued_at).total_seconds()
            leeway = min(leeway, max(lifetime, 0.0) * self.MAX_LEEWAY_FRACTION)
        return (expires_at - clock.now()).total_seconds() <= leeway


def _cacheable(token: TokenData) -> bool:
    """False for a token that expires as it is issued (``expires_in: 0``, or an
    ``expires_at`` before ``issued_at``): "do not cache", so it is never stored or reused."""
    return token.expires_at is None or token.issued_at is None or token.expires_at > token.issued_at

"""What every storage shared between processes has in common: a lease lock, fencing and a
near cache. A backend supplies only reading, writing and removing a value, and taking and
giving back a lock key (:class:`SharedTokenStorage`'s ``_read`` ... ``_give_back``).

* **The lease lock.** ``refresh_lock`` queues the threads of this process on an in-process
  lock first (so one of them polls the backend), then takes the backend's lock key with a
  fresh owner token that expires after the lease, polling with a short real-time backoff.
  It is re-entrant for the holding thread and given back only while it is still ours.
* **Fencing.** A ``set`` by the thread holding the lock writes only while the backend's lock
  still holds that thread's owner token: a holder that outlived its lease cannot overwrite
  the token of the process that took the lock after it. It logs instead, and its callers
  still get the token it fetched.
* **The near cache.** The last value this process read or wrote per key, raw and decoded.
  ``get`` always asks the backend, and an unchanged value comes back as the *same*
  ``TokenData`` object (the manager's hot path is an identity check). ``cached`` serves the
  near copy without a round trip: the :class:`~requestforge.TokenManager` calls it on every
  ``get_token()`` and calls ``get`` once that token enters its refresh window, expires, is
  rejected by a 401 or is invalidated. A process therefore uses a token another process
  replaced for at most that long, and learns of the replacement on its first 401.

The near copies are one dict that is never changed once published: a change publishes a
new dict under a lock, so ``cached`` reads it without one (see ``docs/design.md``).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Final

from requestforge._clock import Clock, get_default_clock
from requestforge._exceptions import TokenResponseError, TokenStorageError
from requestforge._validate import flag
from requestforge.tokens._data import TokenData, decode_token, encode_token
from requestforge.tokens.storage._interface import (
    TokenStorageInterface,
    _KeyedLocks,
    _lock_timeout,
    _poll_for_lock,
)

__all__: list[str] = []

logger = logging.getLogger("requestforge.tokens")

_Raw = str | bytes
#: A near copy: the raw value as the backend holds it, as bytes, and the token it decodes to
#: (None for a value this library cannot read, so it is not decoded, nor logged, twice).
_Entry = tuple[bytes, TokenData | None]


class Unavailable(Exception):
    """Raised by a backend hook when the backend is unreachable and the storage degrades to
    this process's own copy instead of raising (``RedisTokenStorage(on_unavailable="local")``)."""


class _Hold:
    """This thread's hold on one key's lock: its owner token (None when degraded), depth."""

    __slots__ = ("depth", "owner")

    def __init__(self, owner: str | None) -> None:
        self.owner, self.depth = owner, 1


class SharedTokenStorage(TokenStorageInterface):
    """The base of the Redis and Django cache storages: see the module docstring."""

    #: The first pause between attempts to take a lock another process holds: a refresh
    #: takes a token endpoint round trip, so a few milliseconds costs nothing...
    LOCK_POLL_INITIAL = 0.002
    #: ...doubling up to this, so a slow refresh does not hammer the backend.
    LOCK_POLL_MAX = 0.05
    #: Keys with a near copy; past this the copies start over (a manager uses one key, so
    #: only an application with thousands of keys ever gets here).
    NEAR_CACHE_SIZE: Final = 256

    def __init__(self, *, lease: float, near_cache: bool, clock: Clock | None) -> None:
        self._lease = lease
        self._near_cache = flag("near_cache", near_cache)
        self._clock = clock
        self._near: dict[str, _Entry] = {}
        self._near_lock = threading.Lock()
        self._near_version = 0
        self._local_locks = _KeyedLocks()
        self._held = threading.local()

    # -- what a backend supplies -----------------------------------------------------------

    @abstractmethod
    def _read(self, key: str, operation: str) -> _Raw | None:
        """The raw value under ``key``, or None; :class:`Unavailable` to degrade."""

    @abstractmethod
    def _write(self, key: str, raw: _Raw | None, ttl: float | None, owner: str | None) -> str:
        """Store ``raw`` for ``ttl`` seconds (None: forever), or remove the value when ``raw``
        is None; while ``owner`` is given, only if the lock still holds it. Returns "" when
        done, else why not (for the log)."""

    @abstractmethod
    def _take(self, key: str, owner: str) -> bool:
        """Take ``key``'s lock for the lease with ``owner`` if nobody holds it."""

    @abstractmethod
    def _give_back(self, key: str, owner: str) -> bool:
        """Remove ``key``'s lock if it still holds ``owner``; False if it did not."""

    @abstractmethod
    def _lock_busy(self, key: str, timeout: float) -> TokenStorageError:
        """The error for a lock another process held for all of ``timeout``."""

    # -- TokenStorageInterface --------------------------------------------------------------

    def get(self, key: str) -> TokenData | None:
        """The token under ``key``, from the backend; a value this library cannot read is a
        miss, logged once, not an error."""
        seen = self._near_version
        try:
            raw = self._read(key, "get")
        except Unavailable:
            entry = self._near.get(key)
            return None if entry is None else entry[1]
        if raw is None:
            self._publish(key, None, seen)
            return None
        if isinstance(raw, str):  # a backend or client that decodes responses
            raw = raw.encode()
        entry = self._near.get(key)
        if entry is not None and entry[0] == raw:
            return entry[1]
        token = self._decode(key, raw)
        self._publish(key, (raw, token), seen)
        return token

    def cached(self, key: str) -> TokenData | None:
        """The near copy of ``key``'s token if there is one (no round trip), else :meth:`get`."""
        if self._near_cache:
            entry = self._near.get(key)
            if entry is not None and entry[1] is not None:
                return entry[1]
        return self.get(key)

    def set(self, key: str, token: TokenData) -> None:
        """Store ``token`` until it expires (an expired one is removed instead); fenced while
        this thread holds the refresh lock."""
        if not isinstance(token, TokenData):
            raise TypeError(f"expected TokenData, got {type(token).__name__}")
        self._check_key(key)
        raw = encode_token(token)
        remaining = token.expires_in(clock=self._clock or get_default_clock())
        expired = remaining is not None and remaining <= 0
        hold = self._hold(key)
        try:
            refused = self._write(
                key, None if expired else raw, remaining, None if hold is None else hold.owner
            )
        except Unavailable:
            refused = ""
        if refused:
            logger.warning(
                "the refresh lock for %r ran out after its lease of %gs and %s; the token "
                "fetched under it was not stored, so it cannot overwrite a newer one (raise "
                "the lock lease above the slowest token fetch)",
                key,
                self._lease,
                refused,
            )
            return
        self._publish(key, None if expired else (raw, token))

    def delete(self, key: str) -> None:
        """Remove ``key``'s token (not its refresh lock); a missing key is not an error."""
        self._check_key(key)
        self._publish(key, None)
        with suppress(Unavailable):
            self._write(key, None, None, None)

    def exists(self, key: str) -> bool:
        """True if the backend holds a value under ``key`` (whether or not it decodes)."""
        try:
            return self._read(key, "exists") is not None
        except Unavailable:
            entry = self._near.get(key)
            return entry is not None and entry[1] is not None

    @contextmanager
    def refresh_lock(self, key: str, *, timeout: float) -> Iterator[None]:
        """Hold the right to refresh ``key`` in every process sharing the backend.

        Re-entrant per thread. Raises :class:`~requestforge.TokenStorageError` if the lock is
        not free within ``timeout`` seconds (real time, whatever the library clock says).
        """
        timeout = _lock_timeout(timeout)
        self._check_key(key)
        hold = self._hold(key)
        if hold is not None:
            hold.depth += 1
            try:
                yield
            finally:
                hold.depth -= 1
            return
        deadline = time.monotonic() + timeout
        local = self._local_locks.get(key)
        if not local.acquire(timeout=timeout):
            raise TokenStorageError(
                f"could not take the refresh lock for {key!r} within {timeout:g}s "
                "(another thread of this process holds it)"
            )
        try:
            owner = self._acquire(key, deadline, timeout)
            holds: dict[str, _Hold] | None = getattr(self._held, "keys", None)
            if holds is None:
                holds = self._held.keys = {}
            holds[key] = _Hold(owner)
            try:
                yield
            finally:
                del holds[key]
                if owner is not None:
                    self._release(key, owner)
        finally:
            local.release()

    # -- internals --------------------------------------------------------------------------

    def _check_key(self, key: str) -> None:
        """Raise ``ConfigurationError`` for a key the backend cannot hold (a backend hook)."""

    def _hold(self, key: str) -> _Hold | None:
        holds: dict[str, _Hold] | None = getattr(self._held, "keys", None)
        return None if holds is None else holds.get(key)

    def _acquire(self, key: str, deadline: float, timeout: float) -> str | None:
        """Take the backend's lock and return its owner token; None when degraded."""
        owner = secrets.token_hex(16)
        degraded = False

        def take() -> bool:
            nonlocal degraded
            try:
                return self._take(key, owner)
            except Unavailable:
                degraded = True
                return True

        if not _poll_for_lock(take, deadline, self.LOCK_POLL_INITIAL, self.LOCK_POLL_MAX):
            raise self._lock_busy(key, timeout)
        return None if degraded else owner

    def _release(self, key: str, owner: str) -> None:
        """Give the lock back. Never raises: the lease ends the lock anyway."""
        try:
            released = self._give_back(key, owner)
        except Exception as exc:  # noqa: BLE001 - logged; the lease expires the lock
            logger.warning(
                "could not release the refresh lock for %r (%s); it expires within %gs",
                key,
                type(exc).__name__,
                self._lease,
            )
            return
        if not released:
            logger.warning(
                "the refresh lock for %r outlived its lease of %gs before it was released; "
                "another process may have refreshed at the same time (raise the lock lease "
                "above the slowest token fetch)",
                key,
                self._lease,
            )

    def _decode(self, key: str, raw: _Raw) -> TokenData | None:
        try:
            return decode_token(raw)
        except TokenResponseError as exc:
            # A miss, overwritten by the next fetch. decode_token's messages describe the
            # problem without quoting the value; the near copy keeps it from being logged
            # again until the value changes.
            logger.warning(
                "the value stored under %r is not a token this library can read (%s); "
                "treating it as a miss",
                key,
                exc,
            )
            return None

    def _publish(self, key: str, entry: _Entry | None, seen: int | None = None) -> None:
        """Make ``entry`` the near copy of ``key`` (None: forget it). A read passes the
        version it started at and is dropped if a write published meanwhile, so a slow read
        never puts back a value older than one this process has just written."""
        with self._near_lock:
            if seen is not None and seen != self._near_version:
                return
            near = self._near
            if entry is None:
                if key not in near:
                    return
                near = {k: v for k, v in near.items() if k != key}
            elif len(near) >= self.NEAR_CACHE_SIZE and key not in near:
                near = {key: entry}
            else:
                near = {**near, key: entry}
            self._near = near
            self._near_version += 1

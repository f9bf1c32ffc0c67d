"""``DjangoCacheTokenStorage``: tokens and the refresh lock in a Django cache.

The point of a shared cache is that every worker process of a deployment sees one token
and one refresh lock, so a token is fetched once per expiry, not once per process. That
holds only for a backend the processes actually share:

============== ================== ==================================================
backend        shared by          use
============== ================== ==================================================
Redis          every process      production
Memcached      every process      production
Database       every process      production (one extra query per request)
LocMem         one process only   development: N processes fetch N tokens, N locks
FileBased      the host, but      not recommended: ``add`` is not atomic across
               racy               processes, so the refresh lock does not exclude
============== ================== ==================================================

Django is imported only when a storage is built, so ``import requestforge`` works without
the ``[django]`` extra.
"""

from __future__ import annotations

import hashlib
import logging
import math
import pickle
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final, Protocol, cast

from requestforge._clock import Clock, get_default_clock
from requestforge._exceptions import ConfigurationError, TokenResponseError, TokenStorageError
from requestforge._validate import number, shown, text, valid_clock
from requestforge.tokens._data import TokenData, decode_token, encode_token
from requestforge.tokens.storage._interface import (
    TokenStorageInterface,
    _KeyedLocks,
    _lock_timeout,
    _poll_for_lock,
)

__all__ = ["DjangoCacheTokenStorage"]

logger = logging.getLogger("requestforge.tokens")

#: What unpickling someone else's value can raise inside ``cache.get``: a corrupt or
#: foreign value, which is a miss, unlike a backend that cannot be reached.
_UNREADABLE: Final = (
    pickle.UnpicklingError,
    EOFError,
    AttributeError,
    ImportError,
    IndexError,
    TypeError,
    ValueError,
    RecursionError,
)
#: Anything Memcached refuses in a key (it warns on every other backend).
_UNSAFE_KEY_CHARS: Final = re.compile(r"[^\x21-\x7e]")


class _Cache(Protocol):
    """The part of Django's ``BaseCache`` this storage uses."""

    def get(self, key: str, default: Any = None) -> Any: ...
    def set(self, key: str, value: Any, timeout: float | None = ...) -> None: ...
    def add(self, key: str, value: Any, timeout: float | None = ...) -> bool: ...
    def delete(self, key: str) -> bool: ...


class _Hold:
    """This instance's hold on one key's cache lock: the thread, its owner token, depth."""

    __slots__ = ("depth", "owner", "thread")

    def __init__(self, thread: int, owner: str) -> None:
        self.thread, self.owner, self.depth = thread, owner, 1


class DjangoCacheTokenStorage(TokenStorageInterface):
    """Tokens in the Django cache ``cache_alias``, shared by every process using that cache.

    Each operation looks up ``django.core.cache.caches[cache_alias]``, because Django keeps
    one cache connection per thread. Tokens are stored as versioned JSON (never pickled
    ``TokenData``: other processes and library versions read the same keys) under
    ``<key_prefix>:token:<key>``, with a cache timeout of the seconds left until
    ``expires_at`` on ``clock``, rounded up (``None``, forever, for a token that never
    expires; an already expired token is not kept). A corrupt or foreign value is a miss,
    logged as a warning without the value. Backend failures raise ``TokenStorageError``.

    :meth:`refresh_lock` is the cache's atomic ``add`` of ``<key_prefix>:lock:<key>``, held
    for at most ``lock_lease`` seconds, so it excludes across processes on a shared backend.
    On LocMemCache the tokens and the lock are per process (N processes fetch N tokens):
    fine for development; use Redis, Memcached or the database cache in a deployment.
    FileBasedCache is not recommended: its ``add`` is not atomic across processes.

    Django's cache API has no compare-and-delete or compare-and-set, so two steps are a
    read followed by a write, on every backend:

    * releasing the lock reads it and deletes it if it still holds this holder's owner
      token; if the lease ends between the two, a lock just taken by another holder is
      deleted, and a third may then refresh alongside it (one extra fetch, nothing worse);
    * fencing: while a thread holds the lock, ``set`` first checks that the lock still
      holds its owner token, and skips the write with a warning if the lease ran out (the
      holder's caller still gets its token). The check and the write are two steps, so a
      new holder arriving in between is overwritten: last writer wins. Keep ``lock_lease``
      above the slowest token fetch.
    """

    #: Every key this storage writes starts with this, to keep apart from the app's keys.
    DEFAULT_KEY_PREFIX: Final = "requestforge"
    #: Longer than a token fetch with its retries usually takes, short enough that a holder
    #: that died (a killed worker) blocks the others only this long.
    DEFAULT_LOCK_LEASE: Final = 30.0
    #: Redis and Memcached keep cache timeouts in whole seconds: a shorter lease would be 0,
    #: which Django treats as "expire at once".
    MIN_LOCK_LEASE: Final = 1.0
    #: A waiting holder polls the lock after this long first...
    LOCK_POLL_INITIAL: Final = 0.005
    #: ...doubling each time up to this, so a waiter notices a release quickly without
    #: hammering a shared cache.
    LOCK_POLL_MAX: Final = 0.1
    #: Leaves room, within Memcached's 250 characters, for the rest of a hashed key.
    MAX_KEY_PREFIX_LENGTH: Final = 100
    #: Keys longer than this are hashed: Memcached refuses keys over 250 characters, and
    #: Django adds its own KEY_PREFIX and version in front.
    MAX_PLAIN_KEY_LENGTH: Final = 200
    #: Decoded tokens remembered per storage, so that an unchanged value decodes to the same
    #: ``TokenData`` object and the manager's hot path (an identity check) applies.
    DECODED_CACHE_SIZE: Final = 64

    def __init__(
        self,
        cache_alias: str = "default",
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        lock_lease: float = DEFAULT_LOCK_LEASE,
        clock: Clock | None = None,
    ) -> None:
        text("cache_alias", cache_alias)
        if (
            not isinstance(key_prefix, str)
            or not key_prefix
            or len(key_prefix) > self.MAX_KEY_PREFIX_LENGTH
            or _UNSAFE_KEY_CHARS.search(key_prefix)
        ):
            raise ConfigurationError(
                "key_prefix must be 1 to "
                f"{self.MAX_KEY_PREFIX_LENGTH} printable ASCII characters without spaces, "
                f"got {shown(key_prefix)}"
            )
        number("lock_lease", lock_lease, minimum=self.MIN_LOCK_LEASE)
        valid_clock("clock", clock)
        self._caches, self._config_errors, self._invalid_key = _import_django()
        self._alias = cache_alias
        self._prefix = key_prefix
        self._lease = math.ceil(lock_lease)  # the same whole seconds on every backend
        self._clock = clock
        self._local_locks = _KeyedLocks()
        self._holds: dict[str, _Hold] = {}
        self._decoded: dict[str, tuple[str | bytes, TokenData]] = {}
        self._check_alias()

    @property
    def cache_alias(self) -> str:
        """The Django cache this storage uses."""
        return self._alias

    @property
    def key_prefix(self) -> str:
        """The prefix of every cache key this storage writes."""
        return self._prefix

    # -- TokenStorageInterface -------------------------------------------------------------

    def get(self, key: str) -> TokenData | None:
        """The token under ``key``; None if missing, expired, or not a token we can read."""
        cache_key = self._cache_key("token", key)
        with self._operation_context(key):
            cache = self._cache()
            try:
                raw = cache.get(cache_key)
            except _UNREADABLE as exc:
                if isinstance(exc, self._invalid_key):
                    raise self._failure("get", exc) from exc
                self._unreadable(key, f"the cache could not unpickle it ({type(exc).__name__})")
                return None
            except Exception as exc:
                raise self._failure("get", exc) from exc
        if raw is None:
            return None
        remembered = self._decoded.get(key)
        if remembered is not None and remembered[0] == raw:
            return remembered[1]
        if not isinstance(raw, str | bytes):
            self._unreadable(key, f"it is a {type(raw).__name__}, not stored by requestforge")
            return None
        try:
            token = decode_token(raw)
        except TokenResponseError as exc:
            # A miss: the next fetch overwrites it. decode_token's messages describe the
            # problem without quoting the value, and it is depth-limited (no RecursionError).
            self._unreadable(key, str(exc))
            return None
        self._remember(key, raw, token)
        return token

    def set(self, key: str, token: TokenData) -> None:
        """Store ``token`` until it expires; skipped (with a warning) if this thread held the
        refresh lock for ``key`` and its lease ran out."""
        if not isinstance(token, TokenData):
            raise TypeError(f"expected TokenData, got {type(token).__name__}")
        value = encode_token(token).decode("ascii")
        remaining = token.expires_in(clock=self._clock or get_default_clock())
        timeout = None if remaining is None else max(math.ceil(remaining), 0)
        cache_key = self._cache_key("token", key)
        with self._operation_context(key):
            hold = self._holds.get(key)
            owner = (
                hold.owner if hold is not None and hold.thread == threading.get_ident() else None
            )
            cache = self._cache()
            try:
                if owner is not None and cache.get(self._cache_key("lock", key)) != owner:
                    logger.warning(
                        "not storing the token for %r: the refresh lock's %ss lease ran "
                        "out during the fetch and another holder may have stored a newer "
                        "one (raise lock_lease above the slowest token fetch)",
                        key,
                        self._lease,
                    )
                    return
                cache.set(cache_key, value, timeout=timeout)
            except Exception as exc:
                raise self._failure("set", exc) from exc
            self._remember(key, value, token)

    def delete(self, key: str) -> None:
        """Remove the token under ``key``; a missing key is not an error."""
        cache_key = self._cache_key("token", key)
        with self._operation_context(key):
            cache = self._cache()
            try:
                cache.delete(cache_key)
            except Exception as exc:
                raise self._failure("delete", exc) from exc
            self._decoded.pop(key, None)

    @contextmanager
    def refresh_lock(self, key: str, *, timeout: float) -> Iterator[None]:
        """Hold the right to refresh ``key`` in every process sharing this cache.

        Threads of this storage queue on an in-process lock first, so only one of them polls
        the cache. Re-entrant for the holding thread. Raises ``TokenStorageError`` if the
        lock is not taken within ``timeout`` seconds (real time, not the library's clock).
        """
        timeout = _lock_timeout(timeout)
        deadline = time.monotonic() + timeout
        local = self._local_locks.get(key)
        if not local.acquire(timeout=timeout):
            raise TokenStorageError(
                f"could not take the refresh lock for {key!r} within {timeout:g}s "
                "(another thread of this process holds it)"
            )
        try:
            hold = self._holds.get(key)
            if hold is not None:  # this thread again: the in-process lock is ours
                hold.depth += 1
            else:
                hold = self._holds[key] = _Hold(threading.get_ident(), self._acquire(key, deadline))
            try:
                yield
            finally:
                hold.depth -= 1
                if hold.depth == 0:
                    del self._holds[key]
                    self._release(key, hold.owner)
        finally:
            local.release()

    def __repr__(self) -> str:
        return f"DjangoCacheTokenStorage(cache_alias={self._alias!r}, key_prefix={self._prefix!r})"

    # -- internals -------------------------------------------------------------------------

    def _remember(self, key: str, raw: str | bytes, token: TokenData) -> None:
        if len(self._decoded) >= self.DECODED_CACHE_SIZE:
            self._decoded.clear()
        self._decoded[key] = (raw, token)

    def _acquire(self, key: str, deadline: float) -> str:
        """Add the lock key with a fresh owner token, polling with backoff until ``deadline``."""
        owner = uuid.uuid4().hex
        lock_key = self._cache_key("lock", key)
        cache = self._cache()

        def take() -> bool:
            try:
                return bool(cache.add(lock_key, owner, timeout=self._lease))
            except Exception as exc:
                raise self._failure("lock", exc) from exc

        if not _poll_for_lock(take, deadline, self.LOCK_POLL_INITIAL, self.LOCK_POLL_MAX):
            raise TokenStorageError(
                f"could not take the refresh lock for {key!r} in Django cache "
                f"{self._alias!r} before the timeout (another process or storage holds it)"
            )
        return owner

    def _release(self, key: str, owner: str) -> None:
        """Delete the lock if it is still ours. Never raises: the lease frees it anyway."""
        lock_key = self._cache_key("lock", key)
        try:
            cache = self._cache()
            if cache.get(lock_key) == owner:
                cache.delete(lock_key)
            else:
                logger.warning(
                    "the refresh lock for %r outlived its %ss lease; another holder may have "
                    "refreshed at the same time (raise lock_lease)",
                    key,
                    self._lease,
                )
        except Exception as exc:  # noqa: BLE001 - logged; the lease expires the lock
            logger.warning(
                "could not release the refresh lock for %r in Django cache %r (%s); it "
                "expires after its %ss lease",
                key,
                self._alias,
                type(exc).__name__,
                self._lease,
            )

    def _cache(self) -> _Cache:
        """This thread's connection to the cache (Django keeps one per thread)."""
        try:
            return cast(_Cache, self._caches[self._alias])
        except self._config_errors as exc:
            raise ConfigurationError(f"Django cache {self._alias!r} is not usable: {exc}") from exc

    def _check_alias(self) -> None:
        from django.conf import settings  # type: ignore[import-untyped]  # noqa: PLC0415

        if not settings.configured:
            return  # checked at first use instead: settings may be configured later
        try:
            aliases = self._caches.settings
        except self._config_errors as exc:
            raise ConfigurationError(f"settings.CACHES is not usable: {exc}") from exc
        if self._alias not in aliases:
            raise ConfigurationError(
                f"no Django cache named {self._alias!r} in settings.CACHES "
                f"(configured: {', '.join(sorted(aliases)) or 'none'})"
            )

    def _cache_key(self, kind: str, key: str) -> str:
        """``<prefix>:<kind>:<key>``, or a digest of ``key`` if Memcached would refuse that."""
        plain = f"{self._prefix}:{kind}:{key}"
        if len(plain) <= self.MAX_PLAIN_KEY_LENGTH and not _UNSAFE_KEY_CHARS.search(plain):
            return plain
        return f"{self._prefix}:{kind}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"

    def _unreadable(self, key: str, reason: str) -> None:
        logger.warning(
            "ignoring the value under %r in Django cache %r: %s; the token will be fetched again",
            key,
            self._alias,
            reason,
        )

    def _failure(self, operation: str, exc: BaseException) -> TokenStorageError:
        # The backend's message is left to the chained exception: it may quote a URL.
        return TokenStorageError(
            f"Django cache {self._alias!r} failed during {operation} ({type(exc).__name__})"
        )


def _import_django() -> tuple[Any, tuple[type[Exception], ...], type[Exception]]:
    """Django's cache handler, the errors that mean the cache is misconfigured, and the one
    for a key the backend refuses."""
    try:
        from django.core.cache import (  # type: ignore[import-untyped]  # noqa: PLC0415
            InvalidCacheBackendError,
            InvalidCacheKey,
            caches,
        )
        from django.core.exceptions import (  # type: ignore[import-untyped]  # noqa: PLC0415
            ImproperlyConfigured,
        )
    except ImportError as exc:
        raise ConfigurationError(
            "DjangoCacheTokenStorage needs Django: pip install requestforge[django]"
        ) from exc
    return caches, (InvalidCacheBackendError, ImproperlyConfigured), InvalidCacheKey

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
from typing import Any, Final, Protocol, cast

from requestforge._clock import Clock
from requestforge._exceptions import ConfigurationError, TokenStorageError
from requestforge._validate import number, shown, text, valid_clock
from requestforge.tokens.storage._shared import SharedTokenStorage

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
#: Memcached refuses longer keys; Django's memcached backends check the whole key, with
#: its KEY_PREFIX and version in front.
_MEMCACHED_MAX_KEY_LENGTH: Final = 250
#: Anything Memcached refuses in a key (it warns on every other backend).
_UNSAFE_KEY_CHARS: Final = re.compile(r"[^\x21-\x7e]")


class _Cache(Protocol):
    """The part of Django's ``BaseCache`` this storage uses."""

    def get(self, key: str, default: Any = None) -> Any: ...
    def set(self, key: str, value: Any, timeout: float | None = ...) -> None: ...
    def add(self, key: str, value: Any, timeout: float | None = ...) -> bool: ...
    def delete(self, key: str) -> bool: ...
    def make_key(self, key: str, version: int | None = None) -> str: ...


class DjangoCacheTokenStorage(SharedTokenStorage):
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
    LOCK_POLL_INITIAL = 0.005
    #: ...doubling each time up to this, so a waiter notices a release quickly without
    #: hammering a shared cache.
    LOCK_POLL_MAX = 0.1
    #: Leaves room, within Memcached's 250 characters, for the rest of a hashed key.
    MAX_KEY_PREFIX_LENGTH: Final = 100
    #: Keys longer than this are hashed: Memcached refuses keys over 250 characters, and
    #: Django adds its own KEY_PREFIX and version in front.
    MAX_PLAIN_KEY_LENGTH: Final = 200

    def __init__(
        self,
        cache_alias: str = "default",
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        lock_lease: float = DEFAULT_LOCK_LEASE,
        near_cache: bool = True,
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
        # The same whole seconds on every backend.
        super().__init__(lease=math.ceil(lock_lease), near_cache=near_cache, clock=clock)
        self._alias = cache_alias
        self._prefix = key_prefix
        self._check_alias()

    @property
    def cache_alias(self) -> str:
        """The Django cache this storage uses."""
        return self._alias

    @property
    def key_prefix(self) -> str:
        """The prefix of every cache key this storage writes."""
        return self._prefix

    # -- the backend ---------------------------------------------------------------------

    def _read(self, key: str, operation: str) -> str | bytes | None:
        cache_key, cache = self._cache_key("token", key), self._cache()
        try:
            raw = cache.get(cache_key)
        except _UNREADABLE as exc:
            if isinstance(exc, self._invalid_key):
                raise self._failure(operation, exc) from exc
            self._unreadable(key, f"the cache could not unpickle it ({type(exc).__name__})")
            return None
        except Exception as exc:
            raise self._failure(operation, exc) from exc
        if raw is None or isinstance(raw, str | bytes):
            return raw
        self._unreadable(key, f"it is a {type(raw).__name__}, not stored by requestforge")
        return None

    def _write(
        self, key: str, raw: str | bytes | None, ttl: float | None, owner: str | None
    ) -> str:
        cache = self._cache()
        try:
            # Django's cache has no compare-and-set: the fence is a read, then the write.
            if owner is not None and cache.get(self._cache_key("lock", key)) != owner:
                return "another holder may have stored a newer one"
            cache_key = self._cache_key("token", key)
            if raw is None:
                cache.delete(cache_key)
            else:
                value = raw.decode("ascii") if isinstance(raw, bytes) else raw
                cache.set(cache_key, value, timeout=None if ttl is None else math.ceil(ttl))
        except Exception as exc:
            raise self._failure("set" if raw is not None else "delete", exc) from exc
        return ""

    def _take(self, key: str, owner: str) -> bool:
        try:
            return bool(self._cache().add(self._cache_key("lock", key), owner, timeout=self._lease))
        except Exception as exc:
            raise self._failure("lock", exc) from exc

    def _give_back(self, key: str, owner: str) -> bool:
        # No compare-and-delete either: a lease ending between the two steps deletes the
        # lock a new holder just took (one extra fetch, nothing worse).
        lock_key = self._cache_key("lock", key)
        cache = self._cache()
        if cache.get(lock_key) != owner:
            return False
        cache.delete(lock_key)
        return True

    def _lock_busy(self, key: str, timeout: float) -> TokenStorageError:
        return TokenStorageError(
            f"could not take the refresh lock for {key!r} in Django cache {self._alias!r} "
            f"within {timeout:g}s (another process or storage holds it)"
        )

    def __repr__(self) -> str:
        return f"DjangoCacheTokenStorage(cache_alias={self._alias!r}, key_prefix={self._prefix!r})"

    # -- internals -------------------------------------------------------------------------

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
        """``<prefix>:<kind>:<key>``, or a digest of ``key`` if Memcached would refuse that
        once Django has put its KEY_PREFIX and version in front."""
        plain = f"{self._prefix}:{kind}:{key}"
        if (
            len(plain) <= self.MAX_PLAIN_KEY_LENGTH
            and not _UNSAFE_KEY_CHARS.search(plain)
            and len(self._cache().make_key(plain)) <= _MEMCACHED_MAX_KEY_LENGTH
        ):
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

"""Where tokens live between requests, and the lock that makes one process refresh them.

A storage does two jobs for the :class:`~requestforge.TokenManager`:

* ``get`` / ``set`` / ``delete`` / ``exists``: keep a :class:`~requestforge.TokenData` per key;
* :meth:`TokenStorageInterface.refresh_lock`: mutual exclusion for *refreshing* one key. The
  default is an in-process lock; a shared storage (Redis, a Django cache) overrides it with a
  lock every process sees, so a refresh happens once per key across the whole deployment.

The refresh lock is deliberately not the lock around ``get``/``set``: a refresh holds it for
a whole round trip to the token endpoint, and readers must keep getting the still-valid
token meanwhile.

Thread-safety for the storage operations themselves is composed from mixins that override
:meth:`~TokenStorageInterface._operation_context` and chain through ``super()``::

    class MyStorage(PerKeyLockMixin, MyBackend): ...
"""

from __future__ import annotations

import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Final

from requestforge._exceptions import TokenStorageError
from requestforge._validate import number
from requestforge.tokens._data import TokenData

__all__ = ["TokenStorageInterface"]


class _KeyedLocks:
    """A striped table of re-entrant locks, one per key, held weakly.

    A lock lives while some thread holds (or waits for) it, so the table never grows with
    keys nobody uses any more. A plain lock guards the table itself only while looking up.
    """

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[Any, threading.RLock] = (
            weakref.WeakValueDictionary()
        )
        self._meta_lock = threading.Lock()

    def get(self, key: object) -> threading.RLock:
        with self._meta_lock:
            lock = self._locks.get(key)
            if lock is None:
                lock = threading.RLock()
                self._locks[key] = lock
            return lock


_refresh_locks: Final = _KeyedLocks()
_NO_CONTEXT: Final = nullcontext()


def _lock_timeout(timeout: object) -> float:
    """``refresh_lock``'s timeout, checked: a finite number of seconds >= 0."""
    return number("timeout", timeout)


def _poll_for_lock(take: Callable[[], bool], deadline: float, first: float, most: float) -> bool:
    """Call ``take()`` until it returns True, pausing ``first`` seconds and doubling up to
    ``most``; False once the ``time.monotonic()`` deadline passes.

    The pause is real time on purpose: the library clock may be a fake whose ``sleep``
    advances time instead of waiting, which would turn the poll into a busy loop.
    """
    pause, waiter = first, threading.Event()  # never set: wait() is a real-time pause
    while not take():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        waiter.wait(min(pause, remaining))
        pause = min(pause * 2, most)
    return True


class TokenStorageInterface(ABC):
    """Keeps tokens by key; the :class:`~requestforge.TokenManager` reads it on every request.

    Implement ``get``, ``set`` and ``delete``. Override :meth:`refresh_lock` when the storage
    is shared between processes, so that they coordinate their refreshes too.
    """

    @abstractmethod
    def get(self, key: str) -> TokenData | None:
        """Return the token stored under ``key``, or None."""

    @abstractmethod
    def set(self, key: str, token: TokenData) -> None:
        """Store ``token`` under ``key``, replacing what was there, in one step."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""

    def exists(self, key: str) -> bool:
        """True if a token is stored under ``key``."""
        return self.get(key) is not None

    def cached(self, key: str) -> TokenData | None:
        """The token under ``key`` as this process last saw it, without a round trip when
        the storage keeps a near copy; :meth:`get` otherwise.

        The :class:`~requestforge.TokenManager` calls it on every ``get_token()`` and goes to
        :meth:`get` (which refreshes the near copy) once the token it returns enters the
        refresh window, expires or is rejected, so a shared storage stays off the hot path.
        """
        return self.get(key)

    @contextmanager
    def refresh_lock(self, key: str, *, timeout: float) -> Iterator[None]:
        """Hold the right to refresh ``key``: in this process only, unless overridden.

        Raises :class:`~requestforge.TokenStorageError` if the lock is not free within
        ``timeout`` seconds. Whoever holds it re-reads the storage before fetching, since the
        previous holder has usually just stored a fresh token.
        """
        lock = _refresh_locks.get((id(self), key))
        if not lock.acquire(timeout=_lock_timeout(timeout)):
            raise TokenStorageError(
                f"could not take the refresh lock for {key!r} within {timeout:g}s"
            )
        try:
            yield
        finally:
            lock.release()

    def _operation_context(self, key: str) -> AbstractContextManager[Any]:
        """Entered around every operation on ``key``; a no-op until a mixin wraps it.

        Mixins override it and chain with ``super()._operation_context(key)`` (see
        :func:`_wrap`) so that every mixin in the MRO gets to wrap the operation.
        """
        return _NO_CONTEXT

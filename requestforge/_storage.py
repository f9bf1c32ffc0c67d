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

import sys
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Final

from requestforge._exceptions import TokenStorageError
from requestforge._tokens import TokenData
from requestforge._validate import number

__all__ = [
    "InMemoryTokenStorage",
    "PerKeyLockMixin",
    "SerializingMixin",
    "TokenStorageInterface",
]


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


class _Nested:
    """``outer`` around ``inner``: what ``with outer, inner:`` does, as one object."""

    __slots__ = ("inner", "outer")

    def __init__(self, outer: AbstractContextManager[Any], inner: AbstractContextManager[Any]):
        self.outer = outer
        self.inner = inner

    def __enter__(self) -> None:
        self.outer.__enter__()
        try:
            self.inner.__enter__()
        except BaseException:
            self.outer.__exit__(*sys.exc_info())
            raise

    def __exit__(self, *exc_info: Any) -> None:
        try:
            self.inner.__exit__(*exc_info)
        finally:
            self.outer.__exit__(*exc_info)


def _wrap(
    outer: AbstractContextManager[Any], inner: AbstractContextManager[Any]
) -> AbstractContextManager[Any]:
    """Compose a mixin's context around the next one in the MRO; a bare lock when there is
    nothing inside, because the storage hot path runs this on every request."""
    return outer if inner is _NO_CONTEXT else _Nested(outer, inner)


def _nothing_inside(cls: type, mixin: type) -> bool:
    """True if no class after ``mixin`` in ``cls``'s MRO wraps operations, so the mixin's own
    lock is the whole context (the common case, and the storage hot path)."""
    mro = cls.__mro__
    for later in mro[mro.index(mixin) + 1 :]:
        if "_operation_context" in vars(later):
            return later is TokenStorageInterface
    return True


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


class SerializingMixin(TokenStorageInterface):
    """Serializes every operation behind one re-entrant lock (for a backend that is not
    thread-safe). Place it before the backend class: ``class S(SerializingMixin, Backend)``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._lock = threading.RLock()
        self._lock_only = _nothing_inside(type(self), SerializingMixin)
        super().__init__(*args, **kwargs)

    def _operation_context(self, key: str) -> AbstractContextManager[Any]:
        if self._lock_only:
            return self._lock
        return _wrap(self._lock, super()._operation_context(key))


class PerKeyLockMixin(TokenStorageInterface):
    """Serializes operations on the same key; different keys proceed in parallel.

    The per-key locks are re-entrant (a ``set`` inside a ``get`` does not deadlock) and held
    weakly, so a key's lock disappears once no thread uses it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._key_locks = _KeyedLocks()
        super().__init__(*args, **kwargs)

    def _get_key_lock(self, key: str) -> threading.RLock:
        """The lock for ``key`` (created on first use)."""
        return self._key_locks.get(key)

    def _operation_context(self, key: str) -> AbstractContextManager[Any]:
        return _wrap(self._get_key_lock(key), super()._operation_context(key))


class _DictTokenStorage(TokenStorageInterface):
    """A plain dict; every operation runs inside ``_operation_context``."""

    def __init__(self) -> None:
        self._tokens: dict[str, TokenData] = {}

    def get(self, key: str) -> TokenData | None:
        with self._operation_context(key):
            return self._tokens.get(key)

    def set(self, key: str, token: TokenData) -> None:
        if not isinstance(token, TokenData):
            raise TypeError(f"expected TokenData, got {type(token).__name__}")
        with self._operation_context(key):
            self._tokens[key] = token

    def delete(self, key: str) -> None:
        with self._operation_context(key):
            self._tokens.pop(key, None)

    def exists(self, key: str) -> bool:
        with self._operation_context(key):
            return key in self._tokens


class InMemoryTokenStorage(SerializingMixin, _DictTokenStorage):
    """Tokens in a dict behind an ``RLock``: shared by the threads of one process only.

    Every process has its own copy, so N worker processes fetch N tokens; use a shared
    storage (Redis, a Django cache) when that matters.
    """

    def __repr__(self) -> str:
        with self._lock:
            return f"InMemoryTokenStorage(keys={sorted(self._tokens)!r})"

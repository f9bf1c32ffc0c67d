"""Thread-safety for storage operations, composed from mixins.

Each mixin overrides :meth:`~requestforge.TokenStorageInterface._operation_context` and chains
through ``super()``, so several can wrap one backend::

    class MyStorage(PerKeyLockMixin, MyBackend): ...
"""

from __future__ import annotations

import sys
import threading
from contextlib import AbstractContextManager
from typing import Any

from requestforge.tokens.storage._interface import _NO_CONTEXT, TokenStorageInterface, _KeyedLocks

__all__ = ["PerKeyLockMixin", "SerializingMixin"]


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

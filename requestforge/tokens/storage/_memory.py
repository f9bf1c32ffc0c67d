"""The default storage: a dict shared by the threads of one process."""

from __future__ import annotations

from requestforge.tokens._data import TokenData
from requestforge.tokens.storage._interface import TokenStorageInterface
from requestforge.tokens.storage._mixins import SerializingMixin

__all__ = ["InMemoryTokenStorage"]


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
    """Tokens in a dict: shared by the threads of one process only.

    Reads take no lock: the dict is never changed once published, and ``set``/``delete``
    publish a changed copy under an ``RLock``, so a reader sees the whole old dict or the
    whole new one. Every process has its own copy, so N worker processes fetch N tokens;
    use a shared storage (Redis, a Django cache) when that matters.
    """

    def get(self, key: str) -> TokenData | None:
        return self._tokens.get(key)

    def exists(self, key: str) -> bool:
        return key in self._tokens

    def set(self, key: str, token: TokenData) -> None:
        if not isinstance(token, TokenData):
            raise TypeError(f"expected TokenData, got {type(token).__name__}")
        with self._lock:
            self._tokens = {**self._tokens, key: token}

    def delete(self, key: str) -> None:
        with self._lock:
            if key in self._tokens:
                self._tokens = {k: v for k, v in self._tokens.items() if k != key}

    def __repr__(self) -> str:
        return f"InMemoryTokenStorage(keys={sorted(self._tokens)!r})"

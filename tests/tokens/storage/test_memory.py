"""Tests for the in-memory storage, the lock mixins and the refresh lock."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest

from requestforge import (
    InMemoryTokenStorage,
    PerKeyLockMixin,
    SerializingMixin,
    TokenData,
    TokenStorageError,
    TokenStorageInterface,
)
from requestforge.tokens.storage._memory import _DictTokenStorage
from tests.threads import while_held

A = TokenData(access_token="token-a")
B = TokenData(access_token="token-b")


def test_in_memory_round_trip() -> None:
    """set, get, exists and delete behave like a dict of tokens."""
    storage = InMemoryTokenStorage()
    assert storage.get("k") is None
    assert not storage.exists("k")
    storage.set("k", A)
    assert storage.get("k") is A
    assert storage.exists("k")
    storage.set("k", B)
    assert storage.get("k") is B
    storage.delete("k")
    storage.delete("k")  # deleting a missing key is not an error
    assert storage.get("k") is None


def test_in_memory_rejects_non_tokens() -> None:
    """Only a TokenData can be stored, so a half-built value never lands in the cache."""
    storage = InMemoryTokenStorage()
    with pytest.raises(TypeError, match="TokenData"):
        storage.set("k", {"access_token": "x"})  # type: ignore[arg-type]
    assert storage.get("k") is None


def test_in_memory_repr_lists_keys_not_tokens() -> None:
    """The repr names the keys but never a token."""
    storage = InMemoryTokenStorage()
    storage.set("svc", TokenData(access_token="s3cr3t"))
    assert "svc" in repr(storage)
    assert "s3cr3t" not in repr(storage)


def test_in_memory_reads_take_no_lock() -> None:
    """get and exists answer while another thread holds the write lock."""
    storage = InMemoryTokenStorage()
    storage.set("k", A)
    assert while_held(storage._lock, lambda: storage.get("k")) is A
    assert while_held(storage._lock, lambda: storage.exists("k")) is True
    assert while_held(storage._lock, lambda: storage.cached("k")) is A


def test_in_memory_writes_publish_a_new_dict() -> None:
    """set and delete replace the published dict rather than change it, so a reader that
    holds the old one never sees it change under it."""
    storage = InMemoryTokenStorage()
    storage.set("k", A)
    before = storage._tokens
    storage.set("j", B)
    storage.delete("k")
    assert before == {"k": A}
    assert storage._tokens == {"j": B}
    assert storage._tokens is not before


def test_in_memory_storages_are_independent() -> None:
    """Two storages do not share tokens (each is its own process-local cache)."""
    first, second = InMemoryTokenStorage(), InMemoryTokenStorage()
    first.set("k", A)
    assert second.get("k") is None


def test_exists_defaults_to_get() -> None:
    """A storage that only implements get/set/delete still answers exists()."""

    class Minimal(TokenStorageInterface):
        def __init__(self) -> None:
            self.data: dict[str, TokenData] = {}

        def get(self, key: str) -> TokenData | None:
            return self.data.get(key)

        def set(self, key: str, token: TokenData) -> None:
            self.data[key] = token

        def delete(self, key: str) -> None:
            self.data.pop(key, None)

    storage = Minimal()
    assert not storage.exists("k")
    storage.set("k", A)
    assert storage.exists("k")


# -- the lock mixins ---------------------------------------------------------------------------


class _Recording(_DictTokenStorage):
    """Records, inside every operation, which locks the current thread holds."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, bool]] = []

    def _operation_context(self, key: str) -> AbstractContextManager[Any]:
        return self._record(key, super()._operation_context(key))

    @contextmanager
    def _record(self, key: str, inner: AbstractContextManager[Any]) -> Iterator[None]:
        with inner:
            self.seen.append((key, _held(self)))
            yield


def _held(storage: Any) -> bool:
    lock = getattr(storage, "_lock", None)
    if lock is None:
        lock = storage._get_key_lock("k")
    return bool(lock._is_owned())


class _Serialized(SerializingMixin, _Recording):
    pass


class _PerKey(PerKeyLockMixin, _Recording):
    pass


@pytest.mark.parametrize("cls", [_Serialized, _PerKey])
def test_mixin_wraps_every_operation(cls: type[_Recording]) -> None:
    """Each mixin's lock is held while the backend runs get, set, exists and delete."""
    storage = cls()
    storage.set("k", A)
    storage.get("k")
    storage.exists("k")
    storage.delete("k")
    assert storage.seen == [("k", True)] * 4


def test_mixins_compose_through_super() -> None:
    """Both mixins in one MRO both wrap the operation, outermost first."""
    order: list[str] = []

    class Outer(TokenStorageInterface):
        def _operation_context(self, key: str) -> AbstractContextManager[Any]:
            return self._trace("outer", super()._operation_context(key))

        @contextmanager
        def _trace(self, name: str, inner: AbstractContextManager[Any]) -> Iterator[None]:
            order.append(f"enter {name}")
            with inner:
                yield
            order.append(f"exit {name}")

    class Both(Outer, SerializingMixin, PerKeyLockMixin, _DictTokenStorage):
        pass

    storage = Both()
    storage.set("k", A)
    assert storage.get("k") is A
    assert order == ["enter outer", "exit outer"] * 2
    assert not storage._lock._is_owned()  # type: ignore[attr-defined]


def test_per_key_lock_lets_other_keys_through() -> None:
    """While one thread holds key 'a', another thread can use key 'b' but must wait for 'a'."""

    class PerKey(PerKeyLockMixin, _DictTokenStorage):
        pass

    storage = PerKey()
    holding, release = threading.Event(), threading.Event()

    def hold_a() -> None:
        with storage._operation_context("a"):
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold_a)
    holder.start()
    assert holding.wait(10)
    other = threading.Thread(target=storage.set, args=("b", B))
    other.start()
    other.join(10)
    assert storage.get("b") is B  # 'b' went through while 'a' was held
    blocked = threading.Thread(target=storage.set, args=("a", A))
    blocked.start()
    blocked.join(0.05)
    assert blocked.is_alive()  # 'a' waits for the holder
    release.set()
    blocked.join(10)
    holder.join(10)
    assert storage.get("a") is A


def test_per_key_locks_are_reentrant_and_weakly_held() -> None:
    """A key's lock can be re-entered and disappears when nobody holds it any more."""

    class PerKey(PerKeyLockMixin, _DictTokenStorage):
        pass

    storage = PerKey()
    with storage._operation_context("k"):
        storage.set("k", A)  # re-enters the same RLock
    assert storage.get("k") is A
    gc.collect()
    assert len(storage._key_locks._locks) == 0


# -- the refresh lock --------------------------------------------------------------------------


def test_refresh_lock_excludes_other_threads_per_key() -> None:
    """The default refresh lock serializes one key of one storage across threads."""
    storage = InMemoryTokenStorage()
    with storage.refresh_lock("k", timeout=1):
        outcome: list[object] = []

        def try_lock(key: str) -> None:
            try:
                with storage.refresh_lock(key, timeout=0.05):
                    outcome.append(key)
            except TokenStorageError as exc:
                outcome.append(exc)

        for key in ("k", "other"):
            thread = threading.Thread(target=try_lock, args=(key,))
            thread.start()
            thread.join(10)
    assert isinstance(outcome[0], TokenStorageError)
    assert "'k'" in str(outcome[0])
    assert outcome[1] == "other"


def test_refresh_lock_is_not_the_operation_lock() -> None:
    """Readers are not blocked while another thread holds the refresh lock for a long fetch."""
    storage = InMemoryTokenStorage()
    storage.set("k", A)
    seen: list[TokenData | None] = []
    with storage.refresh_lock("k", timeout=1):
        reader = threading.Thread(target=lambda: seen.append(storage.get("k")))
        reader.start()
        reader.join(10)
    assert seen == [A]


def test_refresh_lock_is_per_storage() -> None:
    """Two storages using the same key do not block each other's refreshes."""
    first, second = InMemoryTokenStorage(), InMemoryTokenStorage()
    acquired: list[bool] = []
    with first.refresh_lock("k", timeout=1):

        def other() -> None:
            with second.refresh_lock("k", timeout=0.05):
                acquired.append(True)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(10)
    assert acquired == [True]

"""Tests for requestforge.tokens.storage._django: DjangoCacheTokenStorage on LocMem and on Redis."""

from __future__ import annotations

import itertools
import logging
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any, TypeVar

import django  # type: ignore[import-untyped]
import pytest
from django.conf import settings  # type: ignore[import-untyped]
from django.core.cache import caches  # type: ignore[import-untyped]
from django.core.cache.backends import (  # type: ignore[import-untyped]
    base as cache_base,
)
from django.core.cache.backends import locmem
from django.test import override_settings  # type: ignore[import-untyped]

from requestforge import (
    ConfigurationError,
    DjangoCacheTokenStorage,
    TokenData,
    TokenManager,
    TokenStorageError,
)
from requestforge.tokens._data import encode_token
from requestforge_testing import FakeClock, FakeTokenProvider, RedisServer, StressRunner

if not settings.configured:
    settings.configure(
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        USE_TZ=True,
    )
    django.setup()

T = TypeVar("T")
LOCMEM = "django.core.cache.backends.locmem.LocMemCache"
SECRET = "s3cr3t-access-value"


def locmem_caches(*aliases: str) -> dict[str, dict[str, str]]:
    """A CACHES setting with a fresh LocMem store per alias (LOCATION names the store)."""
    return {alias: {"BACKEND": LOCMEM, "LOCATION": f"rf-{uuid.uuid4().hex}"} for alias in aliases}


@pytest.fixture
def locmem_cache() -> Iterator[None]:
    """An empty LocMem cache as "default" (and "other") for this test only."""
    with override_settings(CACHES=locmem_caches("default", "other")):
        yield


@pytest.fixture
def cache_time(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The wall clock LocMem expires entries by, as a one-item list the test moves forward."""
    now = [1_000_000.0]
    fake = SimpleNamespace(time=lambda: now[0])
    monkeypatch.setattr(cache_base, "time", fake)
    monkeypatch.setattr(locmem, "time", fake)
    return now


def full_token(clock: FakeClock, lifetime: float = 3600.0) -> TokenData:
    """A token with every field set, issued now on ``clock``."""
    now = clock.now()
    return TokenData(
        access_token=SECRET,
        token_type="DPoP",
        expires_at=now + timedelta(seconds=lifetime),
        refresh_token="s3cr3t-refresh-value",
        scope="read write",
        issued_at=now,
    )


def can_lock(storage: DjangoCacheTokenStorage, key: str = "k", timeout: float = 0) -> bool:
    """Take and release the refresh lock; False if it was not free within ``timeout``."""
    try:
        with storage.refresh_lock(key, timeout=timeout):
            return True
    except TokenStorageError:
        return False


def run_in_thread(fn: Callable[[], T]) -> T:
    """Call ``fn`` in a new thread, wait for it, and return or re-raise its outcome here."""
    outcome: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    if errors:
        raise errors[0]
    return outcome[0]


class _Alternate:
    """Hands each thread one of ``items``, round robin by first call: thread ids are
    addresses, so ``get_ident() % 2`` would not split them evenly."""

    def __init__(self, *items: Any) -> None:
        self._items = items
        self._next = itertools.count()
        self._local = threading.local()

    def __call__(self) -> Any:
        if not hasattr(self._local, "item"):
            self._local.item = self._items[next(self._next) % len(self._items)]
        return self._local.item


def raw_cache() -> Any:
    """This thread's connection to the default cache, to read and plant values directly."""
    return caches["default"]


# -- construction ---------------------------------------------------------------------------


@pytest.mark.usefixtures("locmem_cache")
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cache_alias": ""}, "cache_alias"),
        ({"cache_alias": 3}, "cache_alias"),
        ({"cache_alias": "missing"}, "no Django cache named 'missing'"),
        ({"key_prefix": ""}, "key_prefix"),
        ({"key_prefix": "has space"}, "key_prefix"),
        ({"key_prefix": "p" * 101}, "key_prefix"),
        ({"lock_lease": 0.5}, "lock_lease"),
        ({"lock_lease": float("nan")}, "lock_lease"),
        ({"lock_lease": True}, "lock_lease"),
        ({"lock_lease": "30"}, "lock_lease"),
        ({"clock": object()}, "clock"),
    ],
)
def test_bad_arguments_raise_configuration_error(kwargs: dict[str, Any], match: str) -> None:
    """Invalid arguments, including an alias missing from settings.CACHES, fail at construction."""
    with pytest.raises(ConfigurationError, match=match):
        DjangoCacheTokenStorage(**kwargs)


def test_missing_django_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Django installed the error says which extra to install."""
    monkeypatch.setitem(sys.modules, "django.core.cache", None)
    with pytest.raises(ConfigurationError, match=r"pip install requestforge\[django\]"):
        DjangoCacheTokenStorage()


def test_importing_requestforge_does_not_import_django() -> None:
    """The package imports without touching Django, so the [django] extra stays optional."""
    code = "import sys, requestforge; print('django' in sys.modules)"
    result = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


@pytest.mark.usefixtures("locmem_cache")
def test_repr_names_alias_and_prefix() -> None:
    """The repr says which cache and prefix are used."""
    storage = DjangoCacheTokenStorage("other", key_prefix="svc")
    assert repr(storage) == "DjangoCacheTokenStorage(cache_alias='other', key_prefix='svc')"
    assert (storage.cache_alias, storage.key_prefix) == ("other", "svc")


# -- tokens ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("locmem_cache")
def test_round_trip_keeps_every_field(forge_clock: FakeClock) -> None:
    """Every TokenData field, issued_at included, survives the cache."""
    token = full_token(forge_clock)
    DjangoCacheTokenStorage().set("k", token)
    read = DjangoCacheTokenStorage().get("k")  # another instance: nothing remembered
    assert read == token
    assert read is not None
    assert read.issued_at == token.issued_at
    assert read.refresh_token == token.refresh_token


@pytest.mark.usefixtures("locmem_cache")
def test_value_is_versioned_json_not_a_pickle(forge_clock: FakeClock) -> None:
    """The cache holds encode_token's JSON text under <prefix>:token:<key>."""
    token = full_token(forge_clock)
    DjangoCacheTokenStorage().set("k", token)
    assert raw_cache().get("requestforge:token:k") == encode_token(token).decode()


@pytest.mark.usefixtures("locmem_cache")
def test_unchanged_value_reads_as_the_same_object(forge_clock: FakeClock) -> None:
    """Reading an unchanged value returns the same TokenData, so the manager's hot path holds."""
    storage = DjangoCacheTokenStorage()
    token = full_token(forge_clock)
    storage.set("k", token)
    assert storage.get("k") is token
    other = DjangoCacheTokenStorage()
    assert other.get("k") is other.get("k")


@pytest.mark.usefixtures("locmem_cache")
@pytest.mark.parametrize(("near", "expected"), [(True, 0), (False, 1000)])
def test_cached_get_token_reads_the_cache_only_without_near_cache(
    monkeypatch: pytest.MonkeyPatch, near: bool, expected: int
) -> None:
    """With the near cache, 1,000 get_token() calls on a valid token read the Django cache
    not once; without it, once each."""
    reads: list[str] = []
    real_get = locmem.LocMemCache.get

    def counting_get(self: Any, key: str, default: Any = None, version: Any = None) -> Any:
        reads.append(key)
        return real_get(self, key, default, version)

    storage = DjangoCacheTokenStorage(near_cache=near)
    manager = TokenManager(FakeTokenProvider(), storage, cache_key="k")
    token = manager.get_token()
    monkeypatch.setattr(locmem.LocMemCache, "get", counting_get)
    assert all(manager.get_token() is token for _ in range(1000))
    assert len(reads) == expected


@pytest.mark.usefixtures("locmem_cache")
def test_a_401_re_reads_the_cache_before_fetching() -> None:
    """refresh(rejected) asks the cache first: a token another storage (process) renewed
    is taken instead of a second fetch."""
    provider = FakeTokenProvider()
    ours = TokenManager(provider, DjangoCacheTokenStorage(), cache_key="k")
    theirs = TokenManager(provider, DjangoCacheTokenStorage(), cache_key="k")
    revoked = ours.get_token()
    renewed = theirs.refresh(revoked)
    assert ours.get_token() is revoked  # the near copy, until the 401
    assert ours.refresh(revoked) == renewed
    assert provider.fetch_count == 2


@pytest.mark.usefixtures("locmem_cache")
def test_ttl_is_seconds_to_expiry_rounded_up(
    forge_clock: FakeClock, cache_time: list[float]
) -> None:
    """The cache keeps a token until its expiry on the library clock, rounded up to a second."""
    storage = DjangoCacheTokenStorage()
    storage.set("k", full_token(forge_clock, lifetime=90.25))
    start = cache_time[0]
    cache_time[0] = start + 90.9
    assert storage.get("k") is not None
    cache_time[0] = start + 91
    assert DjangoCacheTokenStorage().get("k") is None


@pytest.mark.usefixtures("locmem_cache")
def test_ttl_follows_the_clock_not_issued_at(
    forge_clock: FakeClock, cache_time: list[float]
) -> None:
    """A token stored late in its life is kept only for what is left of it."""
    token = full_token(forge_clock, lifetime=100)
    forge_clock.advance(60)
    DjangoCacheTokenStorage().set("k", token)
    start = cache_time[0]
    cache_time[0] = start + 39.5
    assert DjangoCacheTokenStorage().get("k") == token
    cache_time[0] = start + 40
    assert DjangoCacheTokenStorage().get("k") is None


@pytest.mark.usefixtures("locmem_cache")
def test_token_without_expiry_is_kept_forever(cache_time: list[float]) -> None:
    """No expires_at means no cache timeout (Django's None), not the cache's default."""
    storage = DjangoCacheTokenStorage()
    storage.set("k", TokenData(access_token=SECRET))
    cache_time[0] += 10 * 365 * 86400
    assert DjangoCacheTokenStorage().get("k") == TokenData(access_token=SECRET)


@pytest.mark.usefixtures("locmem_cache")
def test_expired_token_is_not_kept(forge_clock: FakeClock) -> None:
    """Storing an already expired token replaces the old one with nothing."""
    storage = DjangoCacheTokenStorage()
    storage.set("k", full_token(forge_clock))
    expired = full_token(forge_clock, lifetime=10)
    forge_clock.advance(11)
    storage.set("k", expired)
    assert storage.get("k") is None


@pytest.mark.usefixtures("locmem_cache")
def test_delete_and_exists(forge_clock: FakeClock) -> None:
    """exists follows set and delete; deleting a missing key is not an error."""
    storage = DjangoCacheTokenStorage()
    assert not storage.exists("k")
    storage.set("k", full_token(forge_clock))
    assert storage.exists("k")
    storage.delete("k")
    storage.delete("k")
    assert not storage.exists("k")
    assert storage.get("k") is None


@pytest.mark.usefixtures("locmem_cache")
def test_set_rejects_non_tokens() -> None:
    """Only a TokenData can be stored."""
    with pytest.raises(TypeError, match="TokenData"):
        DjangoCacheTokenStorage().set("k", {"access_token": "x"})  # type: ignore[arg-type]


@pytest.mark.usefixtures("locmem_cache")
def test_key_prefix_isolates_storages(forge_clock: FakeClock) -> None:
    """Storages with different prefixes on one cache see neither each other's tokens nor locks."""
    first, second = DjangoCacheTokenStorage(key_prefix="a"), DjangoCacheTokenStorage(key_prefix="b")
    first.set("k", full_token(forge_clock))
    assert second.get("k") is None
    with first.refresh_lock("k", timeout=1), second.refresh_lock("k", timeout=0):
        pass
    assert raw_cache().get("a:token:k") is not None


@pytest.mark.usefixtures("locmem_cache")
def test_aliases_are_separate_caches(forge_clock: FakeClock) -> None:
    """A storage on another alias does not see the default cache's tokens."""
    DjangoCacheTokenStorage("default").set("k", full_token(forge_clock))
    assert DjangoCacheTokenStorage("other").get("k") is None


@pytest.mark.usefixtures("locmem_cache")
@pytest.mark.parametrize(
    "key",
    ["scope=read write", "x" * 300, "tab\there", "ünïcode"],
    ids=["space", "long", "control", "non-ascii"],
)
def test_memcached_unsafe_keys_are_hashed(forge_clock: FakeClock, key: str) -> None:
    """Keys Memcached would refuse are stored under a digest, without a CacheKeyWarning."""
    storage = DjangoCacheTokenStorage()
    token = full_token(forge_clock)
    storage.set(key, token)  # pytest turns Django's CacheKeyWarning into an error
    with storage.refresh_lock(key, timeout=1):
        pass
    assert DjangoCacheTokenStorage().get(key) == token
    assert DjangoCacheTokenStorage().get(key + "2") is None


@pytest.mark.usefixtures("locmem_cache")
@pytest.mark.parametrize(
    "value",
    [
        f"not json {SECRET}",
        f'{{"v": 99, "access_token": "{SECRET}"}}',
        f'{{"v": 1, "access_token": "{SECRET}"}}',
        f'{{"v": 1, "access_token": "{SECRET}", "token_type": "Bearer", "expires_at": "noon"}}',
        {"access_token": SECRET},
        TokenData(access_token=SECRET),
        12345,
        "[" * 100_000 + "]" * 100_000,
        f'{{"v": 1, "access_token": "{SECRET}", "token_type": "Bearer\\r\\nX-Evil: 1"}}',
        f'{{"v": 1, "access_token": ["{SECRET}"], "token_type": 7}}',
    ],
    ids=[
        "text",
        "version",
        "missing-field",
        "bad-date",
        "dict",
        "pickled-token",
        "int",
        "100000-deep",
        "crlf-token-type",
        "wrong-types",
    ],
)
def test_foreign_value_is_a_logged_miss(value: object, caplog: pytest.LogCaptureFixture) -> None:
    """A value requestforge did not write reads as a miss with a warning that never quotes it."""
    raw_cache().set("requestforge:token:k", value)
    with caplog.at_level(logging.WARNING, logger="requestforge.tokens"):
        assert DjangoCacheTokenStorage().get("k") is None
    assert len(caplog.records) == 1
    assert "'k'" in caplog.text
    assert SECRET not in caplog.text


@pytest.mark.usefixtures("locmem_cache")
def test_deep_json_is_a_miss_the_next_fetch_overwrites() -> None:
    """100,000-deep JSON under the key (a RecursionError on every call before): one fetch heals."""
    raw_cache().set("requestforge:token:k", "[" * 100_000 + "]" * 100_000)
    provider = FakeTokenProvider()
    manager = TokenManager(provider, DjangoCacheTokenStorage(), cache_key="k")
    token = manager.get_token()
    assert raw_cache().get("requestforge:token:k") == encode_token(token).decode()
    assert manager.get_token() is token
    assert provider.fetch_count == 1


@pytest.mark.usefixtures("locmem_cache")
def test_unpicklable_value_is_a_logged_miss(caplog: pytest.LogCaptureFixture) -> None:
    """Bytes the cache itself cannot unpickle are a miss too, not a crash."""
    raw_cache().set("requestforge:token:k", "placeholder")
    made = raw_cache().make_key("requestforge:token:k")
    store = locmem._caches[settings.CACHES["default"]["LOCATION"]]
    store[made] = b"\x80\x05garbage" + SECRET.encode()
    with caplog.at_level(logging.WARNING, logger="requestforge.tokens"):
        assert DjangoCacheTokenStorage().get("k") is None
    assert "unpickle" in caplog.text
    assert SECRET not in caplog.text


@pytest.mark.usefixtures("locmem_cache")
@pytest.mark.parametrize("operation", ["get", "set", "delete", "add"])
def test_backend_failure_is_token_storage_error(
    operation: str, monkeypatch: pytest.MonkeyPatch, forge_clock: FakeClock
) -> None:
    """A failing backend raises TokenStorageError chained to its error, without the token."""
    boom = ConnectionError(f"backend down {SECRET}")

    def fail(*args: object, **kwargs: object) -> None:
        raise boom

    monkeypatch.setattr(locmem.LocMemCache, operation, fail)
    storage = DjangoCacheTokenStorage()
    calls: dict[str, Callable[[], object]] = {
        "get": lambda: storage.get("k"),
        "set": lambda: storage.set("k", full_token(forge_clock)),
        "delete": lambda: storage.delete("k"),
        "add": lambda: storage.refresh_lock("k", timeout=1).__enter__(),
    }
    with pytest.raises(TokenStorageError, match="'default'") as info:
        calls[operation]()
    assert info.value.__cause__ is boom
    assert SECRET not in str(info.value)


def test_cache_removed_from_settings_is_configuration_error() -> None:
    """An alias that disappears from settings after construction fails as a config error."""
    with override_settings(CACHES=locmem_caches("default", "other")):
        storage = DjangoCacheTokenStorage("other")
    with (
        override_settings(CACHES=locmem_caches("default")),
        pytest.raises(ConfigurationError, match="'other'"),
    ):
        storage.get("k")


# -- the refresh lock -----------------------------------------------------------------------


@pytest.mark.usefixtures("locmem_cache")
def test_lock_excludes_another_storage_instance() -> None:
    """While one storage holds the lock, another on the same cache cannot take it."""
    first, second = DjangoCacheTokenStorage(), DjangoCacheTokenStorage()
    with first.refresh_lock("k", timeout=1):
        with (
            pytest.raises(TokenStorageError, match="another process"),
            second.refresh_lock("k", timeout=0.05),
        ):
            pass
        assert can_lock(second, "other-key")
    assert can_lock(second)


@pytest.mark.usefixtures("locmem_cache")
def test_lock_excludes_another_thread() -> None:
    """A thread waiting for the lock gets it only when the holder lets go."""
    storage = DjangoCacheTokenStorage()
    entered = threading.Event()
    errors: list[BaseException] = []

    def contender() -> None:
        try:
            with storage.refresh_lock("k", timeout=10):
                entered.set()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    with storage.refresh_lock("k", timeout=1):
        thread = threading.Thread(target=contender)
        thread.start()
        assert not entered.wait(0.2)
        assert not run_in_thread(lambda: can_lock(storage, timeout=0.05))
    thread.join(10)
    assert errors == []
    assert entered.is_set()


@pytest.mark.usefixtures("locmem_cache")
def test_lock_is_mutually_exclusive_under_stress(forge_stress: StressRunner) -> None:
    """Threads spread over two storage instances never hold the lock at the same time."""
    storage_of_thread = _Alternate(DjangoCacheTokenStorage(), DjangoCacheTokenStorage())
    state = {"inside": 0, "peak": 0, "entries": 0}
    guard = threading.Lock()

    def enter() -> None:
        with storage_of_thread().refresh_lock("k", timeout=20):
            with guard:
                state["inside"] += 1
                state["entries"] += 1
                state["peak"] = max(state["peak"], state["inside"])
            raw_cache().get("requestforge:token:k")  # some work while holding it
            with guard:
                state["inside"] -= 1

    report = forge_stress(enter, threads=8, rounds=3)
    report.assert_no_errors()
    assert state["entries"] == 24
    assert state["peak"] == 1


@pytest.mark.usefixtures("locmem_cache")
def test_lock_is_reentrant_for_its_holder() -> None:
    """The holding thread may take the lock again; it is released at the outermost exit."""
    storage, other = DjangoCacheTokenStorage(), DjangoCacheTokenStorage()
    with storage.refresh_lock("k", timeout=1):
        assert can_lock(storage)
        assert not can_lock(other)
    assert can_lock(other)


@pytest.mark.usefixtures("locmem_cache")
def test_lock_timeout_error_names_the_key_only() -> None:
    """A lock that stays taken raises TokenStorageError after the timeout, naming the key."""
    first, second = DjangoCacheTokenStorage(), DjangoCacheTokenStorage()
    with (
        first.refresh_lock("svc", timeout=1),
        pytest.raises(TokenStorageError) as info,
        second.refresh_lock("svc", timeout=0.02),
    ):
        pass
    assert "'svc'" in str(info.value)
    assert "'default'" in str(info.value)


@pytest.mark.usefixtures("locmem_cache")
def test_lock_lease_is_whole_seconds(cache_time: list[float]) -> None:
    """A 1.5 s lease is kept for 2 s on every backend: expiry at 2 s, not before."""
    holder, other = DjangoCacheTokenStorage(lock_lease=1.5), DjangoCacheTokenStorage()
    with holder.refresh_lock("k", timeout=1):
        cache_time[0] += 1.9
        assert not can_lock(other)
        cache_time[0] += 0.1
        assert can_lock(other)


@pytest.mark.usefixtures("locmem_cache")
def test_release_deletes_only_its_own_lock(
    cache_time: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    """A holder whose lease ran out does not delete the lock a newer holder took."""
    first, second, third = (DjangoCacheTokenStorage() for _ in range(3))
    second_lock = second.refresh_lock("k", timeout=0)
    with caplog.at_level(logging.WARNING, logger="requestforge.tokens"):
        with first.refresh_lock("k", timeout=1):
            cache_time[0] += DjangoCacheTokenStorage.DEFAULT_LOCK_LEASE
            second_lock.__enter__()
        assert "outlived" in caplog.text
    assert not can_lock(third)
    second_lock.__exit__(None, None, None)
    assert can_lock(third)


@pytest.mark.usefixtures("locmem_cache")
def test_set_after_a_lost_lease_is_skipped(
    forge_clock: FakeClock, cache_time: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    """Fencing: a holder whose lease ran out does not overwrite the new holder's token."""
    slow, fast = DjangoCacheTokenStorage(), DjangoCacheTokenStorage()
    newer = TokenData(access_token="newer", expires_at=forge_clock.now() + timedelta(hours=1))
    older = TokenData(access_token="older", expires_at=forge_clock.now() + timedelta(hours=1))
    caplog.set_level(logging.WARNING, logger="requestforge.tokens")
    with slow.refresh_lock("k", timeout=1):
        cache_time[0] += DjangoCacheTokenStorage.DEFAULT_LOCK_LEASE
        with fast.refresh_lock("k", timeout=0):
            fast.set("k", newer)
        slow.set("k", older)
    assert DjangoCacheTokenStorage().get("k") == newer
    assert "the token fetched under it was not stored" in caplog.text


@pytest.mark.usefixtures("locmem_cache")
def test_set_while_holding_a_live_lock_writes(forge_clock: FakeClock) -> None:
    """The fencing check lets the current holder write, and non-holders write as usual."""
    storage = DjangoCacheTokenStorage()
    first, second = full_token(forge_clock), full_token(forge_clock, lifetime=60)
    with storage.refresh_lock("k", timeout=1):
        storage.set("k", first)
        assert DjangoCacheTokenStorage().get("k") == first
        run_in_thread(lambda: storage.set("k", second))  # not the holder: no fencing
    assert DjangoCacheTokenStorage().get("k") == second


@pytest.mark.usefixtures("locmem_cache")
@pytest.mark.parametrize("timeout", [-1, float("inf"), "1"])
def test_bad_lock_timeout_is_configuration_error(timeout: Any) -> None:
    """refresh_lock rejects a timeout that is not a finite number of seconds."""
    with pytest.raises(ConfigurationError, match="timeout"):
        can_lock(DjangoCacheTokenStorage(), timeout=timeout)


# -- with TokenManager ----------------------------------------------------------------------


@pytest.mark.usefixtures("locmem_cache")
def test_managers_fetch_once_per_round(forge_clock: FakeClock, forge_stress: StressRunner) -> None:
    """Two managers on separate storage instances, hammered by threads, fetch once per expiry."""
    provider = FakeTokenProvider(latency=0.05)
    manager_of_thread = _Alternate(
        *(TokenManager(provider, DjangoCacheTokenStorage(), cache_key="svc") for _ in range(2))
    )

    def expire(round_number: int) -> None:
        if round_number:
            forge_clock.advance(FakeTokenProvider.DEFAULT_LIFETIME)

    report = forge_stress(
        lambda: manager_of_thread().get_token(),
        threads=16,
        rounds=3,
        before_round=expire,
    )
    report.assert_no_errors()
    report.assert_single_fetch(provider)
    assert provider.fetch_count == 3
    for round_ in report.rounds:
        assert {t.access_token for t in round_.results} == {f"fake-access-{round_.index + 1}"}


# -- Django's Redis backend, against a real redis-server ------------------------------------

REDIS_BACKEND = "django.core.cache.backends.redis.RedisCache"


@pytest.fixture
def redis_cache(forge_redis: RedisServer) -> Iterator[RedisServer]:
    """Django's own RedisCache as "default", on the flushed session redis-server.

    Django opens one connection pool per cache object, which is per thread, and never
    closes them (RedisCache has no close()): the pools of every thread are disconnected
    here, so no socket is left for the garbage collector to warn about in a later test.
    """
    import redis  # the [redis] extra; only these tests need it

    pools: list[redis.ConnectionPool] = []
    lock = threading.Lock()

    class TrackedPool(redis.ConnectionPool):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            with lock:
                pools.append(self)

    cache = {"BACKEND": REDIS_BACKEND, "LOCATION": forge_redis.url}
    try:
        with override_settings(
            CACHES={"default": {**cache, "OPTIONS": {"pool_class": TrackedPool}}}
        ):
            yield forge_redis
    finally:
        for pool in pools:
            pool.disconnect()


def redis_key(cache_key: str) -> str:
    """The key Django's cache writes to Redis for ``cache_key`` (version 1, no KEY_PREFIX)."""
    return str(raw_cache().make_key(cache_key))


def test_redis_round_trip_and_ttl(redis_cache: RedisServer, forge_clock: FakeClock) -> None:
    """On Redis every field survives and the key expires when the token does (rounded up)."""
    token = full_token(forge_clock, lifetime=90.25)
    DjangoCacheTokenStorage().set("k", token)
    DjangoCacheTokenStorage().set("forever", TokenData(access_token=SECRET))
    read = DjangoCacheTokenStorage().get("k")
    assert read == token
    assert read is not None
    assert read.issued_at == token.issued_at
    with redis_cache.client() as client:
        assert client.ttl(redis_key("requestforge:token:k")) == 91
        assert client.ttl(redis_key("requestforge:token:forever")) == -1  # no expiry
    DjangoCacheTokenStorage().delete("k")
    assert not DjangoCacheTokenStorage().exists("k")


def test_redis_garbage_value_is_a_logged_miss(
    redis_cache: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Bytes in Redis that Django cannot unpickle are a miss with a warning, not a crash."""
    with redis_cache.client() as client:
        client.set(redis_key("requestforge:token:k"), b"\x80\x05garbage" + SECRET.encode())
    with caplog.at_level(logging.WARNING, logger="requestforge.tokens"):
        assert DjangoCacheTokenStorage().get("k") is None
    assert "unpickle" in caplog.text
    assert SECRET not in caplog.text


def test_redis_lock_excludes_another_storage_instance(redis_cache: RedisServer) -> None:
    """The lock is a Redis key with the lease as its TTL, and another instance cannot take it."""
    first, second = DjangoCacheTokenStorage(lock_lease=12.5), DjangoCacheTokenStorage()
    with first.refresh_lock("k", timeout=1):
        assert not can_lock(second, timeout=0.05)
        with redis_cache.client() as client:
            assert client.ttl(redis_key("requestforge:lock:k")) == 13
    assert can_lock(second)
    with redis_cache.client() as client:
        assert client.exists(redis_key("requestforge:lock:k")) == 0


@pytest.mark.usefixtures("redis_cache")
def test_redis_managers_fetch_once_per_round(
    forge_clock: FakeClock, forge_stress: StressRunner
) -> None:
    """Two managers on separate storages (as two processes would be) fetch once per expiry."""
    provider = FakeTokenProvider(latency=0.05)
    manager_of_thread = _Alternate(
        *(TokenManager(provider, DjangoCacheTokenStorage(), cache_key="svc") for _ in range(2))
    )

    def expire(round_number: int) -> None:
        if round_number:
            forge_clock.advance(FakeTokenProvider.DEFAULT_LIFETIME)

    report = forge_stress(
        lambda: manager_of_thread().get_token(), threads=16, rounds=3, before_round=expire
    )
    report.assert_no_errors()
    report.assert_single_fetch(provider)
    assert provider.fetch_count == 3
    for round_ in report.rounds:
        assert {t.access_token for t in round_.results} == {f"fake-access-{round_.index + 1}"}


def test_redis_unreachable_is_token_storage_error(forge_clock: FakeClock) -> None:
    """A Redis cache nobody listens on fails every operation with TokenStorageError."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed on leaving the block: nothing listens there
    location = f"redis://:{SECRET}@127.0.0.1:{port}/0"
    with override_settings(CACHES={"default": {"BACKEND": REDIS_BACKEND, "LOCATION": location}}):
        storage = DjangoCacheTokenStorage()
        operations: list[Callable[[], object]] = [
            lambda: storage.get("k"),
            lambda: storage.set("k", full_token(forge_clock)),
            lambda: storage.refresh_lock("k", timeout=1).__enter__(),
        ]
        for operation in operations:
            with pytest.raises(TokenStorageError, match="'default'") as info:
                operation()
            assert SECRET not in str(info.value)
            assert info.value.__cause__ is not None

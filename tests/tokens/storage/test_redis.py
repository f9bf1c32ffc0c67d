"""Tests for requestforge.tokens.storage._redis: RedisTokenStorage against a real redis-server."""

from __future__ import annotations

import itertools
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

from requestforge import (
    ConfigurationError,
    RedisTokenStorage,
    TokenData,
    TokenManager,
    TokenStorageError,
)
from requestforge_testing import FakeClock, FakeTokenProvider, RedisServer, StressRunner

KEY = "svc"
TOKEN_KEY = "requestforge:{svc}:token"
LOCK_KEY = "requestforge:{svc}:lock"
PASSWORD = "pw-s3cr3t-do-not-log"
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)  # forge_clock's start
REAL_START = datetime.now(timezone.utc)


def _token(name: str = "a", *, lifetime: float | None = 3600.0, start: datetime = NOW) -> TokenData:
    expires = None if lifetime is None else start + timedelta(seconds=lifetime)
    return TokenData(access_token=f"token-{name}", expires_at=expires, issued_at=start)


def _real_token(name: str) -> TokenData:
    """A token valid for a day on the real clock (equal for equal names within the run)."""
    return _token(name, lifetime=86400, start=REAL_START)


def _wait_until_gone(client: redis.Redis, key: str, timeout: float = 5.0) -> None:
    """Poll Redis until ``key`` has expired there (Redis measures PX leases, not our clock)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while client.exists(key):
        assert time.monotonic() < deadline, f"{key} still exists after {timeout}s"
        pause.wait(0.005)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def client(forge_redis: RedisServer) -> Iterator[redis.Redis]:
    """A client of the flushed test server."""
    with forge_redis.client() as connection:
        yield connection


@pytest.fixture
def storage(client: redis.Redis) -> RedisTokenStorage:
    """A storage with the default namespace over ``client``."""
    return RedisTokenStorage(client)


@pytest.fixture
def dead_url() -> str:
    """A Redis URL with a password, for a port nothing listens on."""
    return f"redis://user:{PASSWORD}@127.0.0.1:{_closed_port()}/0"


def _dead_storage(url: str, **options: Any) -> RedisTokenStorage:
    storage = RedisTokenStorage(url, **options)
    storage.client.set_retry(Retry(NoBackoff(), 0))  # fail at once instead of after ~3 s
    return storage


class CountingRedis(redis.Redis):
    """Records the name of every command sent, to count round trips."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.commands: list[str] = []

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.commands.append(str(args[0]))
        return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]


# -- construction ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"namespace": ""},
        {"namespace": "a{b"},
        {"namespace": 3},
        {"lock_lease": 0},
        {"lock_lease": -1.0},
        {"lock_lease": float("nan")},
        {"lock_lease": True},
        {"on_unavailable": "ignore"},
        {"clock": object()},
    ],
)
def test_rejects_bad_options(client: redis.Redis, options: dict[str, Any]) -> None:
    """Every invalid option fails at construction with a ConfigurationError."""
    with pytest.raises(ConfigurationError):
        RedisTokenStorage(client, **options)


def test_rejects_what_is_not_a_client() -> None:
    """Only a Redis client, a RedisCluster or a URL is accepted."""
    with pytest.raises(ConfigurationError, match=r"redis\.Redis"):
        RedisTokenStorage(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="not a Redis URL"):
        RedisTokenStorage("http://127.0.0.1:1/")


def test_missing_redis_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the redis package the error says which extra to install."""
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ConfigurationError, match=r"pip install requestforge\[redis\]"):
        RedisTokenStorage("redis://127.0.0.1:1/0")


def test_requestforge_imports_without_redis() -> None:
    """``import requestforge`` works where the redis extra is not installed."""
    code = (
        "import sys; sys.modules['redis'] = None; import requestforge; "
        "assert requestforge.RedisTokenStorage"
    )
    result = subprocess.run(  # noqa: S603 - our interpreter, our code
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_keys_with_braces_are_rejected(storage: RedisTokenStorage) -> None:
    """A brace in a key would move its lock to another cluster slot, so it is refused."""
    for key in ("", "a}b", "{x}"):
        with pytest.raises(ConfigurationError, match="braces"):
            storage.get(key)


def test_url_client_round_trip_and_close(forge_redis: RedisServer, client: redis.Redis) -> None:
    """A URL makes the storage its own client, which close() disconnects."""
    storage = RedisTokenStorage(f"{forge_redis.url}?client_name=rf-url-test")
    token = _real_token("a")
    storage.set(KEY, token)
    assert storage.get(KEY) == token
    assert "rf-url-test" in {c["name"] for c in client.client_list()}
    storage.close()
    deadline = time.monotonic() + 5
    while "rf-url-test" in {c["name"] for c in client.client_list()}:
        assert time.monotonic() < deadline, "close() left the connection open"
        threading.Event().wait(0.005)


# -- get / set / delete -----------------------------------------------------------------------


def test_round_trip_keeps_every_field(storage: RedisTokenStorage) -> None:
    """Every TokenData field, issued_at included, survives the trip through Redis."""
    start = datetime.now(timezone.utc)
    token = TokenData(
        access_token="acc-1",
        token_type="DPoP",
        expires_at=start + timedelta(hours=1),
        refresh_token="ref-1",
        scope="read write",
        issued_at=start,
    )
    storage.set(KEY, token)
    fresh = RedisTokenStorage(storage.client)  # nothing cached: decoded from Redis
    stored = fresh.get(KEY)
    assert stored == token
    assert stored is not None
    assert (stored.token_type, stored.refresh_token, stored.scope) == (
        "DPoP",
        "ref-1",
        "read write",
    )
    assert stored.issued_at == start


def test_delete_and_exists(storage: RedisTokenStorage) -> None:
    """delete removes the token; exists follows; deleting twice is fine."""
    assert not storage.exists(KEY)
    storage.set(KEY, _real_token("a"))
    assert storage.exists(KEY)
    storage.delete(KEY)
    storage.delete(KEY)
    assert not storage.exists(KEY)
    assert storage.get(KEY) is None


def test_set_rejects_non_tokens(storage: RedisTokenStorage) -> None:
    """Only a TokenData can be stored."""
    with pytest.raises(TypeError, match="TokenData"):
        storage.set(KEY, "token")  # type: ignore[arg-type]


@pytest.mark.parametrize("fenced", [False, True])
def test_ttl_matches_expiry_on_the_clock(
    forge_clock: FakeClock, client: redis.Redis, storage: RedisTokenStorage, fenced: bool
) -> None:
    """The Redis TTL is the time left until expires_at on the library clock (fenced or not)."""
    forge_clock.advance(1000)  # the token's expiry counts from the clock's now, not its start
    token = _token("a", lifetime=600, start=forge_clock.now())
    if fenced:
        with storage.refresh_lock(KEY, timeout=5):
            storage.set(KEY, token)
    else:
        storage.set(KEY, token)
    assert 599_000 < client.pttl(TOKEN_KEY) <= 600_000


@pytest.mark.parametrize("fenced", [False, True])
def test_token_without_expiry_has_no_ttl(
    client: redis.Redis, storage: RedisTokenStorage, fenced: bool
) -> None:
    """A token that never expires is stored without a TTL."""
    if fenced:
        with storage.refresh_lock(KEY, timeout=5):
            storage.set(KEY, _token("a", lifetime=None))
    else:
        storage.set(KEY, _token("a", lifetime=None))
    assert client.pttl(TOKEN_KEY) == -1
    assert storage.get(KEY) == _token("a", lifetime=None)


@pytest.mark.parametrize("fenced", [False, True])
def test_expired_token_deletes_the_key(
    forge_clock: FakeClock, client: redis.Redis, storage: RedisTokenStorage, fenced: bool
) -> None:
    """Storing an already expired token removes the key: it would be a miss for everyone."""
    storage.set(KEY, _token("old", lifetime=60))
    expired = _token("new", lifetime=10, start=forge_clock.now() - timedelta(seconds=20))
    if fenced:
        with storage.refresh_lock(KEY, timeout=5):
            storage.set(KEY, expired)
    else:
        storage.set(KEY, expired)
    assert not client.exists(TOKEN_KEY)
    assert storage.get(KEY) is None


def test_unchanged_value_returns_the_same_object(
    client: redis.Redis, storage: RedisTokenStorage
) -> None:
    """An unchanged value comes back as the same object; a changed one is decoded anew."""
    token = _real_token("a")
    storage.set(KEY, token)
    assert storage.get(KEY) is token  # the stored object itself
    other = RedisTokenStorage(client)
    first = other.get(KEY)
    assert first == token
    assert first is not token
    assert other.get(KEY) is first
    storage.set(KEY, _real_token("b"))
    changed = other.get(KEY)
    assert changed is not None
    assert changed.access_token == "token-b"


def test_get_is_one_round_trip(forge_redis: RedisServer) -> None:
    """The hot path costs one GET and nothing else."""
    client = CountingRedis(host=forge_redis.host, port=forge_redis.port)
    try:
        storage = RedisTokenStorage(client)
        storage.set(KEY, _real_token("a"))
        client.commands.clear()
        for _ in range(3):
            storage.get(KEY)
        assert client.commands == ["GET", "GET", "GET"]
    finally:
        client.close()


# -- the near cache --------------------------------------------------------------------------


def test_near_cache_must_be_a_bool(client: redis.Redis) -> None:
    """near_cache takes True or False only, at construction."""
    with pytest.raises(ConfigurationError, match="near_cache"):
        RedisTokenStorage(client, near_cache=1)  # type: ignore[arg-type]


def test_cached_get_token_sends_no_command(forge_redis: RedisServer) -> None:
    """With the near cache, 1,000 get_token() calls on a valid token send no command; without
    it each sends one GET."""
    client = CountingRedis(host=forge_redis.host, port=forge_redis.port)
    try:
        for near, expected in ((True, 0), (False, 1000)):
            storage = RedisTokenStorage(client, near_cache=near)
            manager = TokenManager(FakeTokenProvider(), storage, cache_key=f"near-{near}")
            token = manager.get_token()
            client.commands.clear()
            assert all(manager.get_token() is token for _ in range(1000))
            assert client.commands.count("GET") == expected
            assert len(client.commands) == expected
    finally:
        client.close()


def test_near_copy_is_read_again_in_the_refresh_window(
    forge_redis: RedisServer, forge_clock: FakeClock
) -> None:
    """A process serves its near copy until the refresh window, then finds the token another
    process renewed in Redis, with one GET and no fetch."""
    client = CountingRedis(host=forge_redis.host, port=forge_redis.port)
    provider = FakeTokenProvider(lifetime=3600)
    try:
        ours = TokenManager(provider, RedisTokenStorage(client), cache_key=KEY)
        theirs = TokenManager(provider, RedisTokenStorage(forge_redis.url), cache_key=KEY)
        first = ours.get_token()
        client.commands.clear()
        forge_clock.advance(3600 - 400)
        assert ours.get_token() is first
        forge_clock.advance(200)  # inside the 300 s refresh window
        renewed = theirs.refresh()  # another process got there first
        assert client.commands == []
        assert ours.get_token() == renewed
        assert client.commands == ["GET"]
        assert provider.fetch_count == 2
    finally:
        client.close()


def test_a_401_re_reads_redis_before_fetching(forge_redis: RedisServer) -> None:
    """refresh(rejected) asks Redis first: a token another process already renewed is taken
    instead of a second fetch, and becomes the near copy."""
    provider = FakeTokenProvider()
    ours = TokenManager(provider, RedisTokenStorage(forge_redis.url), cache_key=KEY)
    theirs = TokenManager(provider, RedisTokenStorage(forge_redis.url), cache_key=KEY)
    revoked = ours.get_token()
    renewed = theirs.refresh(revoked)
    assert ours.get_token() is revoked  # not seen before the 401
    assert ours.refresh(revoked) == renewed
    assert ours.get_token() == renewed
    assert provider.fetch_count == 2


def test_invalidate_drops_the_near_copy(forge_redis: RedisServer) -> None:
    """After invalidate() the next get_token() fetches: the near copy went with the key."""
    provider = FakeTokenProvider()
    manager = TokenManager(provider, RedisTokenStorage(forge_redis.url), cache_key=KEY)
    first = manager.get_token()
    manager.invalidate()
    assert manager.get_token() != first
    assert provider.fetch_count == 2


def test_a_slow_read_does_not_put_back_an_older_value(storage: RedisTokenStorage) -> None:
    """A read that started before a write publishes nothing, so the near copy never goes
    back to a value older than one this process wrote."""
    older, newer = _real_token("older"), _real_token("newer")
    storage.set(KEY, older)
    reading = threading.Event()
    resume = threading.Event()
    real_read = storage._read

    def slow_read(key: str, operation: str) -> Any:
        raw = real_read(key, operation)
        reading.set()
        assert resume.wait(30)
        return raw

    storage._near = {}  # as in a process that has not read it yet
    storage._read = slow_read  # type: ignore[method-assign]
    reader = threading.Thread(target=storage.get, args=(KEY,))
    reader.start()
    assert reading.wait(30)
    storage._read = real_read  # type: ignore[method-assign]
    storage.set(KEY, newer)  # written while the read of "older" is in flight
    resume.set()
    reader.join()
    assert storage.cached(KEY) == newer


FOREIGN_VALUES = {
    "not json": b"secret-abc not json",
    "not utf-8": b"\xff\xfesecret-abc",
    "a list": b'["secret-abc"]',
    "future version": b'{"v":3,"access_token":"secret-abc","token_type":"Bearer"}',
    "no version": b'{"access_token":"secret-abc","token_type":"Bearer"}',
    "missing field": b'{"v":1,"access_token":"secret-abc"}',
    "bad token": b'{"v":1,"access_token":"secret abc","token_type":"Bearer"}',
    "naive time": (
        b'{"v":1,"access_token":"secret-abc","token_type":"Bearer",'
        b'"expires_at":"2026-01-01T00:00:00"}'
    ),
}


@pytest.mark.parametrize("raw", FOREIGN_VALUES.values(), ids=FOREIGN_VALUES.keys())
def test_foreign_value_is_a_miss_until_overwritten(
    client: redis.Redis,
    storage: RedisTokenStorage,
    caplog: pytest.LogCaptureFixture,
    raw: bytes,
) -> None:
    """A value this library cannot read is a logged miss (value not quoted), then overwritten."""
    caplog.set_level(logging.WARNING, logger="requestforge.tokens")
    client.set(TOKEN_KEY, raw)
    assert storage.get(KEY) is None
    assert storage.get(KEY) is None
    warnings = [r for r in caplog.records if r.name == "requestforge.tokens"]
    assert len(warnings) == 1  # once per distinct value, not once per request
    assert "secret" not in caplog.text
    token = _real_token("a")
    storage.set(KEY, token)
    assert storage.get(KEY) is token


#: Deeper than any recursion limit: json.loads on it raised RecursionError on every call.
DEEP_JSON = b"[" * 100_000 + b"]" * 100_000
CORRUPT_VALUES = {
    "garbage": b"\x00\x01secret-abc\xff garbage",
    "100,000-deep array": DEEP_JSON,
    "100,000-deep object": b'{"v":1,"access_token":' + b'{"a":' * 100_000 + b"1" + b"}" * 100_001,
    "wrong types": b'{"v":1,"access_token":["secret-abc"],"token_type":7}',
    "year 1 at +14:00": (
        b'{"v":1,"access_token":"secret-abc","token_type":"Bearer",'
        b'"expires_at":"0001-01-01T00:00:00+14:00"}'
    ),
}


@pytest.mark.parametrize("raw", CORRUPT_VALUES.values(), ids=CORRUPT_VALUES.keys())
def test_corrupt_value_is_a_miss_the_next_fetch_overwrites(
    client: redis.Redis, caplog: pytest.LogCaptureFixture, raw: bytes
) -> None:
    """Garbage or 100,000-deep JSON under the key: the manager fetches, the token replaces it."""
    caplog.set_level(logging.WARNING, logger="requestforge.tokens")
    client.set(TOKEN_KEY, raw)
    provider = FakeTokenProvider()
    manager = TokenManager(provider, RedisTokenStorage(client), cache_key=KEY)
    token = manager.get_token()
    assert provider.fetch_count == 1
    assert client.get(TOKEN_KEY) != raw
    assert RedisTokenStorage(client).get(KEY) == token  # a second reader sees the new token
    assert manager.get_token() is token
    assert provider.fetch_count == 1
    assert "secret" not in caplog.text


def test_value_of_another_type_is_a_miss(
    client: redis.Redis, storage: RedisTokenStorage, caplog: pytest.LogCaptureFixture
) -> None:
    """A hash (WRONGTYPE) under the token key is a logged miss, and set replaces it."""
    caplog.set_level(logging.WARNING, logger="requestforge.tokens")
    client.hset(TOKEN_KEY, "access_token", "secret-abc")
    assert storage.get(KEY) is None
    assert "not a token" in caplog.text
    storage.set(KEY, _real_token("a"))
    assert storage.get(KEY) == _real_token("a")


def test_namespaces_are_isolated(client: redis.Redis) -> None:
    """Two namespaces on one Redis never see each other's tokens."""
    first = RedisTokenStorage(client, namespace="app1")
    second = RedisTokenStorage(client, namespace="app2")
    first.set(KEY, _real_token("a"))
    assert second.get(KEY) is None
    assert not second.exists(KEY)
    assert client.exists("app1:{svc}:token")
    second.delete(KEY)
    assert first.get(KEY) == _real_token("a")


def test_repr_hides_password_and_token(dead_url: str, client: redis.Redis) -> None:
    """The repr shows namespace and server, never a password or a token."""
    from_url = RedisTokenStorage(dead_url, namespace="ns")
    assert PASSWORD not in repr(from_url)
    assert "ns" in repr(from_url)
    assert "127.0.0.1" in repr(from_url)
    from_url.close()
    storage = RedisTokenStorage(client)
    storage.set(KEY, _real_token("a"))
    text = repr(storage)
    assert "token-a" not in text
    assert f"redis://127.0.0.1:{client.connection_pool.connection_kwargs['port']}/0" in text


# -- the refresh lock -------------------------------------------------------------------------


def test_lock_is_a_leased_redis_key_released_on_exit(
    client: redis.Redis, storage: RedisTokenStorage
) -> None:
    """While held the lock key exists with the lease as TTL; on exit it is deleted."""
    leased = RedisTokenStorage(client, lock_lease=5)
    with leased.refresh_lock(KEY, timeout=1):
        assert 0 < client.pttl(LOCK_KEY) <= 5000
    assert not client.exists(LOCK_KEY)
    with pytest.raises(RuntimeError), storage.refresh_lock(KEY, timeout=1):
        raise RuntimeError("fetch failed")
    assert not client.exists(LOCK_KEY)


def test_lock_excludes_threads_and_processes(
    forge_redis: RedisServer, forge_stress: StressRunner
) -> None:
    """Threads of two storages (two processes' worth) never hold the lock together."""
    with forge_redis.client() as first, forge_redis.client() as second:
        storages = [RedisTokenStorage(first), RedisTokenStorage(second)]
        turn = itertools.count()
        guard = threading.Lock()
        inside = [0, 0]  # now, most

        def critical() -> None:
            storage = storages[next(turn) % 2]
            with storage.refresh_lock(KEY, timeout=30):
                with guard:
                    inside[0] += 1
                    inside[1] = max(inside)
                value = int(first.get("counter") or 0)  # read-modify-write: loses updates
                first.set("counter", value + 1)  # unless the lock excludes
                with guard:
                    inside[0] -= 1

        report = forge_stress(critical, threads=8, rounds=5)
        report.assert_no_errors()
        assert inside[1] == 1
        assert int(first.get("counter") or 0) == 40


def test_lock_times_out_with_token_storage_error(client: redis.Redis) -> None:
    """Another process's lock that stays held makes the waiter fail after its timeout."""
    holder, waiter = RedisTokenStorage(client), RedisTokenStorage(client)
    with holder.refresh_lock(KEY, timeout=1):
        started = time.monotonic()
        with pytest.raises(TokenStorageError, match="svc"), waiter.refresh_lock(KEY, timeout=0.05):
            pass
        assert time.monotonic() - started >= 0.05
        with pytest.raises(TokenStorageError), waiter.refresh_lock(KEY, timeout=0):
            pass
    with waiter.refresh_lock(KEY, timeout=0):
        pass  # free again once released


def test_lock_times_out_inside_one_process(storage: RedisTokenStorage) -> None:
    """A thread of the same storage waits on the in-process lock and times out there."""
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        with storage.refresh_lock(KEY, timeout=1):
            held.set()
            done.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(10)
        with pytest.raises(TokenStorageError), storage.refresh_lock(KEY, timeout=0.02):
            pass
    finally:
        done.set()
        thread.join(10)


@pytest.mark.parametrize("timeout", [-1.0, float("inf"), float("nan")])
def test_lock_rejects_bad_timeouts(storage: RedisTokenStorage, timeout: float) -> None:
    """A timeout must be a finite number of seconds >= 0."""
    with pytest.raises(ConfigurationError), storage.refresh_lock(KEY, timeout=timeout):
        pass


def test_lock_is_reentrant_per_thread(client: redis.Redis, storage: RedisTokenStorage) -> None:
    """The holder can take the lock again; it is released when the outer block ends."""
    with storage.refresh_lock(KEY, timeout=1):
        owner = client.get(LOCK_KEY)
        with storage.refresh_lock(KEY, timeout=0):
            storage.set(KEY, _real_token("a"))
        assert client.get(LOCK_KEY) == owner
    assert not client.exists(LOCK_KEY)
    assert storage.get(KEY) == _real_token("a")


def test_crashed_holder_blocks_only_for_its_lease(
    client: redis.Redis, storage: RedisTokenStorage
) -> None:
    """A lock left by a dead process is taken over once Redis expires its lease."""
    client.set(LOCK_KEY, "dead-process", px=100)
    started = time.monotonic()
    with storage.refresh_lock(KEY, timeout=5):
        assert client.get(LOCK_KEY) != b"dead-process"
        assert time.monotonic() - started >= 0.05


def test_expired_holder_does_not_release_the_next_holders_lock(
    client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """After its lease ran out, the old holder's exit leaves the new holder's lock alone."""
    old, new = RedisTokenStorage(client, lock_lease=0.1), RedisTokenStorage(client)
    old_lock = old.refresh_lock(KEY, timeout=1)
    old_lock.__enter__()
    _wait_until_gone(client, LOCK_KEY)
    with new.refresh_lock(KEY, timeout=1):
        owner = client.get(LOCK_KEY)
        old_lock.__exit__(None, None, None)
        assert client.get(LOCK_KEY) == owner
    assert not client.exists(LOCK_KEY)
    assert "outlived its lease" in caplog.text


@pytest.mark.parametrize("new_holder_still_inside", [True, False])
def test_fencing_keeps_a_late_holder_from_overwriting(
    client: redis.Redis, caplog: pytest.LogCaptureFixture, new_holder_still_inside: bool
) -> None:
    """A holder whose lease ran out cannot store over the token of the holder after it."""
    slow = RedisTokenStorage(client, lock_lease=0.1)
    fast = RedisTokenStorage(client)
    with slow.refresh_lock(KEY, timeout=1):
        _wait_until_gone(client, LOCK_KEY)
        with fast.refresh_lock(KEY, timeout=1):
            fast.set(KEY, _real_token("fast"))
            if new_holder_still_inside:
                slow.set(KEY, _real_token("slow"))
        if not new_holder_still_inside:
            slow.set(KEY, _real_token("slow"))
    assert RedisTokenStorage(client).get(KEY) == _real_token("fast")
    assert slow.get(KEY) == _real_token("fast")
    expected = "another process holds it" if new_holder_still_inside else "nobody holds it"
    assert expected in caplog.text
    assert "token-slow" not in caplog.text


def test_managers_on_two_storages_fetch_once_per_round(
    forge_redis: RedisServer, forge_stress: StressRunner
) -> None:
    """Two managers on two storages of one Redis (as in two processes) fetch once per round,
    without near caches, so that every caller sees the round's deletion at once."""
    provider = FakeTokenProvider(latency=0.005)
    with forge_redis.client() as first, forge_redis.client() as second:
        managers = [
            TokenManager(provider, RedisTokenStorage(first, near_cache=False), cache_key=KEY),
            TokenManager(provider, RedisTokenStorage(second, near_cache=False), cache_key=KEY),
        ]
        turn = itertools.count()

        def call() -> TokenData:
            return managers[next(turn) % 2].get_token()

        report = forge_stress(
            call, threads=16, rounds=5, before_round=lambda _: managers[0].storage.delete(KEY)
        )
    report.assert_no_errors()
    report.assert_single_fetch(provider)
    assert provider.fetch_count == 5
    for round_ in report.rounds:
        assert len({token.access_token for token in round_.results}) == 1


# -- Redis unavailable ------------------------------------------------------------------------

OPERATIONS: dict[str, Callable[[RedisTokenStorage], object]] = {
    "get": lambda s: s.get(KEY),
    "set": lambda s: s.set(KEY, _real_token("a")),
    "delete": lambda s: s.delete(KEY),
    "exists": lambda s: s.exists(KEY),
    "refresh_lock": lambda s: s.refresh_lock(KEY, timeout=1).__enter__(),
}


@pytest.mark.parametrize("operation", OPERATIONS)
def test_unreachable_redis_raises_token_storage_error(dead_url: str, operation: str) -> None:
    """By default every operation on an unreachable Redis raises, naming it without a password."""
    storage = _dead_storage(dead_url)
    try:
        with pytest.raises(TokenStorageError) as caught:
            OPERATIONS[operation](storage)
    finally:
        storage.close()
    message = str(caught.value)
    assert operation in message
    assert "127.0.0.1" in message
    assert PASSWORD not in message
    assert isinstance(caught.value.__cause__, redis.exceptions.ConnectionError)


def test_degraded_mode_keeps_tokens_per_process(
    dead_url: str, forge_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """With on_unavailable="local" the storage keeps working locally and warns once per 30 s."""
    caplog.set_level(logging.WARNING, logger="requestforge.tokens")
    storage = _dead_storage(dead_url, on_unavailable="local")
    first, second = _token("a"), _token("b")
    assert storage.get(KEY) is None  # 1: the warning
    storage.set(KEY, first)  # 2
    assert storage.get(KEY) is first  # 3
    assert storage.exists(KEY)  # 4
    with storage.refresh_lock(KEY, timeout=1):  # 5
        storage.set(KEY, second)  # 6
    assert storage.get(KEY) is second  # 7
    storage.delete(KEY)  # 8
    assert storage.get(KEY) is None  # 9
    warnings = [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warnings) == 1
    forge_clock.advance(RedisTokenStorage.UNAVAILABLE_WARNING_INTERVAL)
    storage.get(KEY)
    warnings = [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warnings) == 2
    assert "(8 similar warnings suppressed)" in warnings[1]
    assert PASSWORD not in caplog.text
    storage.close()


def test_degraded_lock_still_excludes_threads(dead_url: str) -> None:
    """While Redis is down the refresh lock is the in-process one, and it still excludes."""
    storage = _dead_storage(dead_url, on_unavailable="local")
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        with storage.refresh_lock(KEY, timeout=1):
            held.set()
            done.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(10)
        with pytest.raises(TokenStorageError), storage.refresh_lock(KEY, timeout=0.02):
            pass
    finally:
        done.set()
        thread.join(10)
        storage.close()


def test_permission_errors_raise_even_when_degrading(forge_redis: RedisServer) -> None:
    """A user Redis refuses is a configuration mistake: it raises even with "local"."""
    with forge_redis.client() as admin:
        admin.acl_setuser(
            "limited",
            enabled=True,
            passwords=[f"+{PASSWORD}"],
            keys=["other:*"],
            commands=["+@all"],
        )
        try:
            with forge_redis.client(username="limited", password=PASSWORD) as client:
                storage = RedisTokenStorage(client, on_unavailable="local")
                with pytest.raises(TokenStorageError) as caught:
                    storage.get(KEY)
        finally:
            admin.acl_deluser("limited")
    assert isinstance(caught.value.__cause__, redis.exceptions.NoPermissionError)
    assert PASSWORD not in str(caught.value)


# -- Redis Cluster ----------------------------------------------------------------------------


@pytest.fixture
def cluster_client(forge_redis_cluster: RedisServer) -> Iterator[redis.cluster.RedisCluster]:
    """A RedisCluster client of the flushed single-node cluster."""
    connection = forge_redis_cluster.cluster_client()
    try:
        yield connection
    finally:
        connection.close()


def test_cluster_round_trip(cluster_client: redis.cluster.RedisCluster) -> None:
    """Through RedisCluster a token round-trips with its TTL, and both keys share a slot."""
    storage = RedisTokenStorage(cluster_client)
    assert key_slot(TOKEN_KEY.encode()) == key_slot(LOCK_KEY.encode())
    token = _real_token("a")
    storage.set(KEY, token)
    assert storage.get(KEY) is token
    assert RedisTokenStorage(cluster_client).get(KEY) == token
    expires_in = token.expires_in()
    assert expires_in is not None
    assert abs(cluster_client.pttl(TOKEN_KEY) - expires_in * 1000) < 1000
    assert "redis-cluster://127.0.0.1" in repr(storage)


def test_cluster_lock_excludes_and_times_out(cluster_client: redis.cluster.RedisCluster) -> None:
    """The lock and its compare-and-delete work on a cluster."""
    holder, waiter = RedisTokenStorage(cluster_client), RedisTokenStorage(cluster_client)
    with holder.refresh_lock(KEY, timeout=1):
        holder.set(KEY, _real_token("a"))  # the fenced write script, on a cluster
        with pytest.raises(TokenStorageError), waiter.refresh_lock(KEY, timeout=0.02):
            pass
    assert not cluster_client.exists(LOCK_KEY)
    assert waiter.get(KEY) == _real_token("a")


def test_cluster_fencing(
    cluster_client: redis.cluster.RedisCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """The fenced write refuses a late holder's token on a cluster too."""
    slow, fast = (
        RedisTokenStorage(cluster_client, lock_lease=0.1),
        RedisTokenStorage(cluster_client),
    )
    with slow.refresh_lock(KEY, timeout=1):
        _wait_until_gone(cluster_client, LOCK_KEY)  # type: ignore[arg-type]
        with fast.refresh_lock(KEY, timeout=1):
            fast.set(KEY, _real_token("fast"))
            slow.set(KEY, _real_token("slow"))
    assert RedisTokenStorage(cluster_client).get(KEY) == _real_token("fast")
    assert "another process holds it" in caplog.text

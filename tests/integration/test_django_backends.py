"""DjangoCacheTokenStorage on Django's own cache backends, against real servers.

``RedisCache`` runs against the session's ``redis-server`` and ``PyMemcacheCache`` against
its ``memcached``: the storage contract, single flight across threads, and worker processes
(each configuring Django's ``CACHES`` as a deployment's settings would) that share one token
per expiry through nothing but the cache. ``LocMemCache`` is shown per process. The worker
processes count their fetches at the local OAuth2 server in this process and run on a
``FakeClock`` set by the test before each round, so expiry crossings are exact and nobody
sleeps.
"""

from __future__ import annotations

import multiprocessing
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

import django  # type: ignore[import-untyped]
import pytest
import redis
from django.conf import settings  # type: ignore[import-untyped]
from django.core.cache import caches  # type: ignore[import-untyped]
from django.test import override_settings  # type: ignore[import-untyped]

from requestforge import (
    ClientCredentialsTokenProvider,
    DjangoCacheTokenStorage,
    TokenData,
    TokenManager,
    TokenStorageError,
)
from requestforge_testing import (
    FakeClock,
    FakeTokenProvider,
    MemcachedServer,
    OAuthServer,
    RedisServer,
    StressRunner,
    forge_stress,
)

REDIS = "django.core.cache.backends.redis.RedisCache"
MEMCACHED = "django.core.cache.backends.memcached.PyMemcacheCache"
LOCMEM = "django.core.cache.backends.locmem.LocMemCache"
SECRET = "s3cr3t-access-value"
PROCESSES = 4
THREADS = 16
ROUNDS = 5
LIFETIME = 600.0
#: A TTL read back within this many seconds of the write: the servers count whole seconds,
#: and only a test stalled for most of a minute would read less.
STALL = 60
#: Memcached reads a timeout above 30 days as a Unix time; Django converts for it.
MONTH_AND_A_DAY = 31 * 24 * 3600

# spawn, not fork: forking a multi-threaded pytest process can deadlock the child.
_mp = multiprocessing.get_context("spawn")


@dataclass(frozen=True)
class Backend:
    """A Django cache backend under test: its dotted path and the plugin fixture serving it."""

    path: str
    fixture: str

    def location(self, server: RedisServer | MemcachedServer) -> str:
        """The cache's LOCATION for ``server``."""
        return server.url if isinstance(server, RedisServer) else server.location

    def ttl(self, server: RedisServer | MemcachedServer, cache_key: str) -> int | None:
        """Seconds the server keeps the item Django stores for ``cache_key`` (-1: forever)."""
        raw = caches["default"].make_key(cache_key)
        if isinstance(server, MemcachedServer):
            return server.ttl(raw)
        with server.client() as client:
            left = int(client.ttl(raw))
        return None if left == -2 else left


BACKENDS = [Backend(REDIS, "forge_redis"), Backend(MEMCACHED, "forge_memcached")]
IDS = ["RedisCache", "PyMemcacheCache"]
each_backend = pytest.mark.parametrize("chosen", BACKENDS, ids=IDS)


def configure_django() -> None:
    """Django settings for this process if nobody configured them yet (LocMem by default:
    each test installs its own CACHES)."""
    if not settings.configured:
        settings.configure(CACHES={"default": {"BACKEND": LOCMEM}}, USE_TZ=True)
        django.setup()


@contextmanager
def django_cache(path: str, location: str, **options: Any) -> Iterator[None]:
    """Django's cache ``path`` at ``location`` as "default" for the block.

    Django keeps one cache object per thread. Redis connection pools are tracked and
    disconnected at the end (RedisCache has no close()); memcached connections are closed by
    each thread's ``caches.close_all()`` (as Django does after each request) and, for this
    thread, by leaving ``override_settings``.
    """
    configure_django()
    pools: list[redis.ConnectionPool] = []
    lock = threading.Lock()

    class TrackedPool(redis.ConnectionPool):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            with lock:
                pools.append(self)

    if path == REDIS:
        options = {"pool_class": TrackedPool, **options}
    try:
        with override_settings(
            CACHES={"default": {"BACKEND": path, "LOCATION": location, "OPTIONS": options}}
        ):
            yield
    finally:
        for pool in pools:
            pool.disconnect()


@contextmanager
def serving(request: pytest.FixtureRequest, chosen: Backend) -> Iterator[Any]:
    """``chosen`` as "default" for the block, on its flushed server from the plugin's fixture
    (which the block gets)."""
    server = request.getfixturevalue(chosen.fixture)
    with django_cache(chosen.path, chosen.location(server)):
        yield server


def token(clock: FakeClock, lifetime: float | None = 3600.0) -> TokenData:
    """A token issued now on ``clock``, expiring ``lifetime`` seconds later (None: never)."""
    now = clock.now()
    expires = None if lifetime is None else now + timedelta(seconds=lifetime)
    return TokenData(access_token=SECRET, expires_at=expires, scope="read", issued_at=now)


def can_lock(storage: DjangoCacheTokenStorage, key: str = "k", timeout: float = 1.0) -> bool:
    """True if ``storage`` takes the refresh lock for ``key`` within ``timeout``."""
    try:
        with storage.refresh_lock(key, timeout=timeout):
            return True
    except TokenStorageError:
        return False


def closing_caches(call: Callable[[], Any]) -> Callable[[], Any]:
    """``call``, then this thread's cache connections closed, as at the end of a request."""

    def run() -> Any:
        try:
            return call()
        finally:
            caches.close_all()

    return run


# -- the storage contract -------------------------------------------------------------------


@each_backend
def test_round_trip_and_ttls(
    request: pytest.FixtureRequest, chosen: Backend, forge_clock: FakeClock
) -> None:
    """Tokens round-trip and the server keeps each for exactly the time it has left."""
    tokens = {
        "short": token(forge_clock, 90.25),
        "month": token(forge_clock, MONTH_AND_A_DAY),
        "forever": token(forge_clock, None),
    }
    with serving(request, chosen) as server:
        for key, stored in tokens.items():
            DjangoCacheTokenStorage().set(key, stored)
        assert {key: DjangoCacheTokenStorage().get(key) for key in tokens} == tokens
        ttls = {key: chosen.ttl(server, f"requestforge:token:{key}") for key in tokens}
    assert ttls["forever"] == -1
    assert ttls["short"] is not None
    assert 91 - STALL < ttls["short"] <= 91  # rounded up, in the server's whole seconds
    assert ttls["month"] is not None
    assert MONTH_AND_A_DAY - STALL < ttls["month"] <= MONTH_AND_A_DAY + 1  # not read as a date


@each_backend
def test_delete_and_expired_tokens(
    request: pytest.FixtureRequest, chosen: Backend, forge_clock: FakeClock
) -> None:
    """delete removes the item from the server, and an already expired token is not stored."""
    with serving(request, chosen) as server:
        storage = DjangoCacheTokenStorage()
        storage.set("k", token(forge_clock))
        assert storage.exists("k")
        storage.delete("k")
        storage.delete("k")  # a missing key is not an error
        assert not DjangoCacheTokenStorage().exists("k")
        assert chosen.ttl(server, "requestforge:token:k") is None
        storage.set("old", token(forge_clock, -1.0))
        assert chosen.ttl(server, "requestforge:token:old") is None
        assert DjangoCacheTokenStorage().get("old") is None


@each_backend
@pytest.mark.parametrize("key", ["with space", "tab\tand\u00e9", "x" * 300])
def test_keys_the_server_would_refuse_are_hashed(
    request: pytest.FixtureRequest, chosen: Backend, forge_clock: FakeClock, key: str
) -> None:
    """Keys with spaces, control or non-ASCII characters, or over 250 bytes still round-trip."""
    with serving(request, chosen):
        stored = token(forge_clock)
        DjangoCacheTokenStorage().set(key, stored)
        assert DjangoCacheTokenStorage().get(key) == stored
        assert can_lock(DjangoCacheTokenStorage(), key)


def test_long_django_key_prefix_keeps_keys_within_memcached_limit(
    forge_memcached: MemcachedServer, forge_clock: FakeClock
) -> None:
    """A key that is short enough on its own but not behind a 60-character KEY_PREFIX works."""
    configure_django()
    location = forge_memcached.location
    prefixed = {"BACKEND": MEMCACHED, "LOCATION": location, "KEY_PREFIX": "p" * 60}
    with override_settings(CACHES={"default": prefixed}):
        stored = token(forge_clock)
        DjangoCacheTokenStorage().set("k" * 180, stored)
        assert DjangoCacheTokenStorage().get("k" * 180) == stored


@each_backend
def test_lock_excludes_another_instance_for_its_lease(
    request: pytest.FixtureRequest, chosen: Backend
) -> None:
    """The lock is one server item whose TTL is the lease, which another instance cannot add."""
    with serving(request, chosen) as server:
        first, second = DjangoCacheTokenStorage(lock_lease=12.5), DjangoCacheTokenStorage()
        with first.refresh_lock("k", timeout=1):
            assert not can_lock(second, timeout=0.05)
            lease = chosen.ttl(server, "requestforge:lock:k")
            assert lease is not None
            assert 13 - STALL < lease <= 13
            with first.refresh_lock("k", timeout=1):  # re-entrant for its holder
                pass
            assert not can_lock(second, timeout=0.05)
        assert chosen.ttl(server, "requestforge:lock:k") is None
        assert can_lock(second)


@each_backend
def test_managers_fetch_once_per_round(
    request: pytest.FixtureRequest,
    chosen: Backend,
    forge_clock: FakeClock,
    forge_stress: StressRunner,
) -> None:
    """16 threads alternating between two managers on separate storages fetch once per expiry."""
    provider = FakeTokenProvider(latency=0.05)
    turn = iter(range(1 << 30))
    turn_lock = threading.Lock()

    def expire(round_number: int) -> None:
        if round_number:
            forge_clock.advance(FakeTokenProvider.DEFAULT_LIFETIME)

    with serving(request, chosen):
        managers = [
            TokenManager(provider, DjangoCacheTokenStorage(), cache_key="svc") for _ in "ab"
        ]

        def ask() -> TokenData:
            with turn_lock:
                manager = managers[next(turn) % 2]
            return manager.get_token()

        report = forge_stress(closing_caches(ask), threads=16, rounds=3, before_round=expire)
    report.assert_no_errors()
    report.assert_single_fetch(provider)
    assert provider.fetch_count == 3
    for round_ in report.rounds:
        assert {t.access_token for t in round_.results} == {f"fake-access-{round_.index + 1}"}


# -- pymemcache's failure handling ----------------------------------------------------------


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (closed on return)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_pymemcache_defaults_turn_an_outage_into_silent_misses(forge_clock: FakeClock) -> None:
    """With pymemcache's retry defaults, after one failure reads are misses and the lock
    looks taken: the outage is only visible as a lock timeout that blames another holder."""
    # retry_timeout is stretched so that the test does not depend on how fast it runs.
    with django_cache(MEMCACHED, f"127.0.0.1:{closed_port()}", retry_timeout=3600):
        storage = DjangoCacheTokenStorage()
        with pytest.raises(TokenStorageError, match="during get"):
            storage.get("k")
        assert storage.get("k") is None  # a miss, not an error
        storage.set("k", token(forge_clock))  # dropped, not an error
        with pytest.raises(TokenStorageError, match="another process or storage holds it"):
            storage.refresh_lock("k", timeout=0.05).__enter__()


def test_recommended_options_make_an_outage_an_error(forge_clock: FakeClock) -> None:
    """With retry_attempts=0 and dead_timeout=0 every operation on a memcached that is down
    raises TokenStorageError (never a silent miss)."""
    options = {"retry_attempts": 0, "dead_timeout": 0}
    with django_cache(MEMCACHED, f"127.0.0.1:{closed_port()}", **options):
        storage = DjangoCacheTokenStorage()
        operations: list[Callable[[], object]] = [
            lambda: storage.get("k"),
            lambda: storage.get("k"),
            lambda: storage.set("k", token(forge_clock)),
            lambda: storage.refresh_lock("k", timeout=1).__enter__(),
            lambda: storage.get("k"),
        ]
        for operation in operations:
            with pytest.raises(TokenStorageError, match="'default' failed") as info:
                operation()
            assert info.value.__cause__ is not None


def test_recommended_options_recover_with_the_server(
    forge_memcached: MemcachedServer, forge_clock: FakeClock
) -> None:
    """With the recommended options a failed operation does not shut the server out: the
    next one reaches it (pymemcache's defaults would refuse it for 60 s as dead)."""
    options = {"retry_attempts": 0, "dead_timeout": 0}
    with django_cache(MEMCACHED, forge_memcached.location, **options):
        storage = DjangoCacheTokenStorage()
        cache = caches["default"]
        client = next(iter(cache._cache.clients.values()))

        def reset_get(*args: Any, **kwargs: Any) -> Any:
            client.close()  # what pymemcache does on a network error, before raising
            raise ConnectionResetError("reset by the network")

        client.get = reset_get  # this client only: once failed, pymemcache replaces it
        stored = token(forge_clock)
        storage.set("k", stored)
        with pytest.raises(TokenStorageError, match="during get"):
            storage.get("k")
        assert storage.get("k") == stored


# -- worker processes -----------------------------------------------------------------------


def _worker(
    conn: Connection, *, path: str, location: str, token_url: str, barrier: Any, threads: int
) -> None:
    """A Django worker process: its settings name the shared cache; each round, set the
    clock, then ``threads`` threads ask for a token once all threads of all processes have
    reached ``barrier``, closing their cache connections afterwards as Django does."""
    settings.configure(CACHES={"default": {"BACKEND": path, "LOCATION": location}}, USE_TZ=True)
    django.setup()
    clock = FakeClock()
    clock.install()
    provider = ClientCredentialsTokenProvider(token_url, "forge-client", "forge-secret")
    manager = TokenManager(provider, DjangoCacheTokenStorage())

    def ask() -> str:
        barrier.wait(30)
        return manager.get_token().access_token

    while (message := conn.recv()) is not None:
        clock.set(datetime.fromisoformat(message))
        report = forge_stress(closing_caches(ask), threads=threads)
        conn.send(
            [
                f"error: {type(o.error).__name__}: {o.error}" if o.error else str(o.result)
                for o in report.outcomes
            ]
        )
    provider.close()


@dataclass
class Rounds:
    """What the worker processes saw: fetches at the server and tokens, per round."""

    fetches: list[int]
    tokens: list[set[str]]
    answers: list[int]
    exitcodes: list[int | None]


def run_workers(
    path: str,
    location: str,
    oauth: OAuthServer,
    clock: FakeClock,
    *,
    processes: int,
    threads: int,
    rounds: int,
) -> Rounds:
    """Start ``processes`` Django workers on cache ``path``; each round every thread of every
    process asks for a token, and the next round starts past the token's expiry."""
    oauth.lifetime = LIFETIME
    oauth.latency = 0.05  # a slow endpoint: a wide window for a stampede
    barrier = _mp.Barrier(processes * threads)
    pipes = [_mp.Pipe() for _ in range(processes)]
    workers = [
        _mp.Process(
            target=_worker,
            args=(child,),
            kwargs={
                "path": path,
                "location": location,
                "token_url": oauth.token_url,
                "barrier": barrier,
                "threads": threads,
            },
        )
        for _, child in pipes
    ]
    for worker in workers:
        worker.start()
    seen = Rounds([], [], [], [])
    try:
        for _ in range(rounds):
            before = oauth.fetch_count
            for parent, _ in pipes:
                parent.send(clock.now().isoformat())
            answered = [token for parent, _ in pipes for token in parent.recv()]
            seen.fetches.append(oauth.fetch_count - before)
            seen.tokens.append(set(answered))
            seen.answers.append(len(answered))
            clock.advance(LIFETIME)
    finally:
        for parent, _ in pipes:
            parent.send(None)
        for worker in workers:
            worker.join(30)
    seen.exitcodes = [worker.exitcode for worker in workers]
    return seen


@each_backend
def test_processes_fetch_once_per_expiry(
    request: pytest.FixtureRequest,
    chosen: Backend,
    forge_oauth_server: OAuthServer,
    forge_clock: FakeClock,
) -> None:
    """4 Django processes x 16 threads on a shared backend: one fetch per expiry in all."""
    server = request.getfixturevalue(chosen.fixture)
    seen = run_workers(
        chosen.path,
        chosen.location(server),
        forge_oauth_server,
        forge_clock,
        processes=PROCESSES,
        threads=THREADS,
        rounds=ROUNDS,
    )
    assert seen.exitcodes == [0] * PROCESSES
    assert seen.answers == [PROCESSES * THREADS] * ROUNDS  # every thread answered
    assert all(not token.startswith("error") for tokens in seen.tokens for token in tokens)
    assert seen.fetches == [1] * ROUNDS
    assert [len(tokens) for tokens in seen.tokens] == [1] * ROUNDS
    assert len(set().union(*seen.tokens)) == ROUNDS  # a new token after each expiry


def test_locmem_is_per_process(forge_oauth_server: OAuthServer, forge_clock: FakeClock) -> None:
    """Two processes on LocMemCache share nothing: each fetches its own token (two fetches),
    though its own threads still share one."""
    seen = run_workers(
        LOCMEM, "", forge_oauth_server, forge_clock, processes=2, threads=4, rounds=1
    )
    assert seen.exitcodes == [0, 0]
    assert seen.answers == [8]
    assert seen.fetches == [2]
    assert len(seen.tokens[0]) == 2

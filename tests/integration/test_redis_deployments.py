"""RedisTokenStorage and TokenManager against Redis as it is deployed: TLS, an ACL user, a
Sentinel deployment failing over during a herd, a Cluster of three masters whose token slot
moves while in use, and a Redis restarted under a warm process.

A "worker" here is a storage and a manager of its own with a Redis client of its own: what
one process has. A herd is several workers' threads asking at once while the single fetch is
held inside the provider (``FakeTokenProvider.pause()``), so the fault happens while the
refresh lock is taken and the other workers poll it: no timing decides what overlaps.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.sentinel import SentinelManagedConnection

from requestforge import RedisTokenStorage, TokenManager, TokenStorageError
from requestforge_testing import (
    FakeClock,
    FakeTokenProvider,
    RedisClusterDeployment,
    RedisSentinelDeployment,
    RedisServer,
)

#: The manager's cache key: the Redis keys are requestforge:{svc}:token and :lock.
KEY = "svc"
TOKEN_KEY = "requestforge:{svc}:token"
LOCK_KEY = "requestforge:{svc}:lock"
WORKERS = 4
THREADS = 8


def _workers(
    stack: ExitStack, provider: FakeTokenProvider, clients: Callable[[], Redis | RedisCluster]
) -> list[TokenManager]:
    """``WORKERS`` managers, each over its own storage and client, all closed by ``stack``."""
    managers = []
    for _ in range(WORKERS):
        client = clients()
        stack.callback(client.close)
        storage = RedisTokenStorage(client)
        managers.append(TokenManager(provider, storage, cache_key=KEY))
    return managers


def _herd(
    managers: list[TokenManager], provider: FakeTokenProvider, fault: Callable[[], object]
) -> list[str]:
    """``THREADS`` threads per manager ask for a token while the one fetch is held; ``fault``
    runs once the fetch has begun, then the fetch goes on. Every answer, errors as text."""
    answers: list[str] = []
    answers_lock = threading.Lock()

    def ask(manager: TokenManager) -> None:
        try:
            answer = manager.get_token().access_token
        except Exception as exc:  # noqa: BLE001 - reported as an answer
            answer = f"error: {type(exc).__name__}: {exc}"
        with answers_lock:
            answers.append(answer)

    threads = [threading.Thread(target=ask, args=(m,)) for m in managers for _ in range(THREADS)]
    provider.pause()
    for thread in threads:
        thread.start()
    try:
        assert provider.wait_until_called(1, timeout=30), "nobody fetched"
        fault()
    finally:
        provider.resume()
        for thread in threads:
            thread.join(90)
    assert not any(thread.is_alive() for thread in threads), "a thread never answered"
    return answers


# -- TLS and ACL --------------------------------------------------------------------------


def test_workers_share_one_token_over_tls(forge_redis_tls: RedisServer) -> None:
    """Two workers with rediss:// URL storages fetch once and store the token over TLS."""
    provider = FakeTokenProvider()
    storages = [RedisTokenStorage(forge_redis_tls.url) for _ in range(2)]
    try:
        first, second = (TokenManager(provider, s, cache_key=KEY) for s in storages)
        assert first.get_token() == second.get_token()
        assert provider.fetch_count == 1
        assert repr(storages[0]).startswith(
            "RedisTokenStorage(namespace='requestforge', redis='rediss://"
        )
    finally:
        for storage in storages:
            storage.close()
    with forge_redis_tls.client() as client:
        assert client.exists(TOKEN_KEY)


def test_workers_share_one_token_as_an_acl_user(forge_redis_acl: RedisServer) -> None:
    """Two workers authenticating as the ACL user (URL credentials) fetch once."""
    provider = FakeTokenProvider()
    storages = [RedisTokenStorage(forge_redis_acl.url) for _ in range(2)]
    try:
        first, second = (TokenManager(provider, s, cache_key=KEY) for s in storages)
        assert first.get_token() == second.get_token()
        assert provider.fetch_count == 1
    finally:
        for storage in storages:
            storage.close()
    with forge_redis_acl.client() as client:
        assert client.exists(TOKEN_KEY)


@pytest.mark.parametrize("on_unavailable", ["raise", "local"])
def test_a_wrong_password_raises_without_showing_it(
    forge_redis_acl: RedisServer, on_unavailable: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong password fails get_token() with TokenStorageError in either mode (it is a
    mistake, not an outage); neither password appears in the error, its causes, the
    storage's repr or the log."""
    password = forge_redis_acl.password
    assert password
    wrong = "Wrong-" + password
    url = forge_redis_acl.url.replace(password, wrong)
    storage = RedisTokenStorage(url, on_unavailable=on_unavailable)  # type: ignore[arg-type]
    caplog.set_level(logging.DEBUG)
    try:
        manager = TokenManager(FakeTokenProvider(), storage, cache_key=KEY)
        with pytest.raises(TokenStorageError, match="AuthenticationError") as raised:
            manager.get_token()
        shown = [repr(storage), caplog.text, "".join(traceback.format_exception(raised.value))]
    finally:
        storage.close()
    for text in shown:
        assert wrong not in text
        assert password not in text


# -- Sentinel -----------------------------------------------------------------------------


class _FollowingConnection(SentinelManagedConnection):
    """redis-py's Sentinel connection, asking the sentinels for the master on every reconnect.

    From redis-py 6 (to 8.1 at least, redis/redis-py#3874) a command's retry reconnects
    through ``connect_check_health()``, which skips the Sentinel lookup: after a failover
    the retries go back to the old master, now a replica, and the command fails. redis-py 5
    looked the master up again.
    """

    def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        if self._sock is None and self.connection_pool.is_master:
            self.host, self.port = self.connection_pool.get_master_address()
        super().connect_check_health(*args, **kwargs)


def _sentinel_client(deployment: RedisSentinelDeployment, *, following: bool = True) -> Redis:
    """A client for the Sentinel master that retries a dropped connection, as a deployment's
    client must: after a failover the old master answers READONLY, which redis-py's Sentinel
    connection turns into a ConnectionError, and the retry asks the sentinels again (with
    ``following``; see _FollowingConnection for redis-py's own connection)."""
    # With redis-py's own connection every retry goes back to the old master: few suffice.
    retry = Retry(ExponentialBackoff(cap=0.2, base=0.01), 20 if following else 3)
    options: dict[str, Any] = {"connection_class": _FollowingConnection} if following else {}
    return deployment.master_client(
        socket_timeout=5,
        socket_connect_timeout=5,
        retry=retry,
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        **options,
    )


def test_workers_share_one_token_through_sentinel(
    forge_redis_sentinel: RedisSentinelDeployment,
) -> None:
    """Workers whose clients find the master through Sentinel fetch once."""
    provider = FakeTokenProvider()
    with ExitStack() as stack:
        managers = _workers(stack, provider, lambda: _sentinel_client(forge_redis_sentinel))
        assert len({manager.get_token() for manager in managers}) == 1
    assert provider.fetch_count == 1
    with forge_redis_sentinel.master.client() as client:
        assert client.exists(TOKEN_KEY)


def test_a_failover_during_a_herd_keeps_single_flight(
    forge_redis_sentinel: RedisSentinelDeployment,
) -> None:
    """4 workers x 8 threads ask while the one fetch is held and Sentinel fails the master
    over: still one fetch, every thread gets that token, and it is on the new master with
    the lock released. The lock lived through the failover (it was replicated) well inside
    its 30 s lease, so no worker took it while its holder was fetching."""
    provider = FakeTokenProvider()
    promoted: list[RedisServer] = []
    with ExitStack() as stack:
        managers = _workers(stack, provider, lambda: _sentinel_client(forge_redis_sentinel))
        answers = _herd(
            managers, provider, lambda: promoted.append(forge_redis_sentinel.failover())
        )
        after = {manager.get_token().access_token for manager in managers}
    assert answers == [provider.issued[0].access_token] * (WORKERS * THREADS)
    assert provider.fetch_count == 1
    assert after == {provider.issued[0].access_token}
    with promoted[0].client() as client:
        assert client.execute_command("ROLE")[0] == b"master"
        assert client.exists(TOKEN_KEY)  # stored on the new master: not lost
        assert not client.exists(LOCK_KEY)  # released there by its holder


def test_a_failover_that_loses_the_lock_is_fenced(
    forge_redis_sentinel: RedisSentinelDeployment, caplog: pytest.LogCaptureFixture
) -> None:
    """If the failover loses the lock (the replica never got it: here it is deleted on the
    new master), single flight breaks as documented for a lost lease: another worker takes
    the lock and fetches; the first holder's write is refused (fenced) with a warning, and
    every thread still gets a token."""
    provider = FakeTokenProvider()

    def failover_losing_the_lock() -> None:
        new = forge_redis_sentinel.failover()
        with new.client() as client:
            assert client.delete(LOCK_KEY) == 1

    with ExitStack() as stack:
        managers = _workers(stack, provider, lambda: _sentinel_client(forge_redis_sentinel))
        answers = _herd(managers, provider, failover_losing_the_lock)
        stored = managers[0].storage.get(KEY)
    issued = {token.access_token for token in provider.issued}
    assert not [answer for answer in answers if answer.startswith("error")]
    assert set(answers) <= issued
    assert provider.fetch_count == 2  # the lost lock let exactly one more fetch through
    assert stored is not None
    assert stored.access_token == provider.issued[1].access_token  # the fenced one did not win
    assert "ran out after its lease" in caplog.text or "outlived its lease" in caplog.text


def test_a_failover_with_redis_pys_own_connection_fails_only_as_documented(
    forge_redis_sentinel: RedisSentinelDeployment,
) -> None:
    """With redis-py's own Sentinel connection (redis-py 6 to 8.1 at least: no new lookup
    inside a command's retries) a failover during a herd fails the commands sent on
    connections still open to the old master: the callers get TokenStorageError
    (on_unavailable="raise"), never another error and never a second token, and the held
    fetch's token is not stored. Afterwards, within one attempt per stale connection, every
    worker gets the one token fetched next. (redis-py 5 follows the failover: no errors.)"""
    provider = FakeTokenProvider()
    with ExitStack() as stack:
        clients = lambda: _sentinel_client(forge_redis_sentinel, following=False)  # noqa: E731
        managers = _workers(stack, provider, clients)
        answers = _herd(managers, provider, forge_redis_sentinel.failover)
        held = provider.issued[0].access_token
        after = [_token_within(THREADS + 2, manager.storage, provider) for manager in managers]
    errors = [answer for answer in answers if answer.startswith("error")]
    assert all(error.startswith("error: TokenStorageError: ") for error in errors), errors
    assert {answer for answer in answers if answer not in errors} <= {held}
    assert len(set(after)) == 1
    assert provider.fetch_count <= 2  # the held fetch, and one more if its token was lost


def _token_within(attempts: int, storage: object, provider: FakeTokenProvider) -> str:
    """The first token a new manager over ``storage`` gets, within ``attempts`` managers (a
    manager that failed backs off before it tries again); each failure must be a
    TokenStorageError."""
    assert isinstance(storage, RedisTokenStorage)
    for _ in range(attempts - 1):
        try:
            return TokenManager(provider, storage, cache_key=KEY).get_token().access_token
        except TokenStorageError:
            continue
    return TokenManager(provider, storage, cache_key=KEY).get_token().access_token


# -- Cluster ------------------------------------------------------------------------------


def test_workers_share_one_token_in_a_cluster(
    forge_redis_sharded_cluster: RedisClusterDeployment,
) -> None:
    """Workers with RedisCluster clients fetch once; the token and its lock share a slot,
    so the fenced write (a script over both keys) runs on one master."""
    provider = FakeTokenProvider()
    with ExitStack() as stack:
        managers = _workers(stack, provider, forge_redis_sharded_cluster.cluster_client)
        assert len({manager.get_token() for manager in managers}) == 1
        managers[0].refresh()  # under the lock: the fenced write over both keys
    assert provider.fetch_count == 2
    owner = forge_redis_sharded_cluster.node_for(TOKEN_KEY)
    assert forge_redis_sharded_cluster.node_for(LOCK_KEY) is owner
    with owner.client() as client:
        assert client.get(TOKEN_KEY) is not None


def test_the_token_slot_moves_while_workers_use_it(
    forge_redis_sharded_cluster: RedisClusterDeployment,
) -> None:
    """While the token's slot migrates (ASK) a new worker reads the token and a refresh
    locks and writes on the importing master; after it (MOVED) workers with old slot maps
    read and refresh again. Each fetch is the one asked for, and the token ends up on the
    new owner."""
    provider = FakeTokenProvider()
    with ExitStack() as stack:
        first, second = _workers(stack, provider, forge_redis_sharded_cluster.cluster_client)[:2]
        token = first.get_token()
        source = forge_redis_sharded_cluster.node_for(TOKEN_KEY)
        with forge_redis_sharded_cluster.migrating(TOKEN_KEY) as target:
            assert second.get_token() == token  # read through ASK from the importing master
            refreshed = first.refresh()  # lock (SET NX) and fenced write through ASK
            with target.client() as client, client.pipeline(transaction=False) as pipe:
                pipe.execute_command("ASKING")  # the importing master serves it only so
                pipe.get(TOKEN_KEY)
                assert pipe.execute()[1] is not None
        assert forge_redis_sharded_cluster.node_for(TOKEN_KEY) is target is not source
        assert second.storage.get(KEY) == refreshed  # MOVED: the slot map is updated
        again = second.refresh()
        assert first.storage.get(KEY) == again
    assert provider.fetch_count == 3


def test_a_slot_migration_during_a_herd_keeps_single_flight(
    forge_redis_sharded_cluster: RedisClusterDeployment,
) -> None:
    """4 workers x 8 threads ask while the fetch is held and the token's slot, with the held
    lock, moves to another master: one fetch, one token, stored on the new owner."""
    provider = FakeTokenProvider()
    moved_to: list[RedisServer] = []
    with ExitStack() as stack:
        managers = _workers(stack, provider, forge_redis_sharded_cluster.cluster_client)

        def migrate() -> None:
            with forge_redis_sharded_cluster.node_for(LOCK_KEY).client() as client:
                assert client.exists(LOCK_KEY)  # the fetch is held under the lock
            moved_to.append(forge_redis_sharded_cluster.migrate_slot(LOCK_KEY))

        answers = _herd(managers, provider, migrate)
    assert answers == [provider.issued[0].access_token] * (WORKERS * THREADS)
    assert provider.fetch_count == 1
    with moved_to[0].client() as client:
        assert client.exists(TOKEN_KEY)
        assert not client.exists(LOCK_KEY)


# -- restart ------------------------------------------------------------------------------


@pytest.fixture
def restartable_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own: it is stopped and started again."""
    with RedisServer() as server:
        yield server


def test_a_restart_under_a_warm_process_raise(
    restartable_redis: RedisServer, forge_clock: FakeClock
) -> None:
    """on_unavailable="raise": while Redis is down a get_token() that needs Redis raises
    TokenStorageError; once it is back (empty) and the manager's failure backoff has passed,
    the warm storage reconnects, fetches once and stores the token there again."""
    provider = FakeTokenProvider(lifetime=600)
    storage = RedisTokenStorage(restartable_redis.url)
    try:
        manager = TokenManager(provider, storage, cache_key=KEY)
        manager.get_token()
        with restartable_redis.down():
            forge_clock.advance(600)  # expired: the manager must ask Redis
            with pytest.raises(TokenStorageError):
                manager.get_token()
        forge_clock.advance(TokenManager.FAILURE_BACKOFF)  # the manager's pause after a failure
        token = manager.get_token()
    finally:
        storage.close()
    assert provider.fetch_count == 2
    assert token == provider.issued[1]
    with restartable_redis.client() as client:
        assert client.exists(TOKEN_KEY)


def test_a_restart_under_a_warm_process_local(
    restartable_redis: RedisServer, forge_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """on_unavailable="local": while Redis is down the warm process fetches and keeps its own
    token (one warning); once Redis is back its next token is stored there again."""
    provider = FakeTokenProvider(lifetime=600)
    storage = RedisTokenStorage(restartable_redis.url, on_unavailable="local")
    try:
        manager = TokenManager(provider, storage, cache_key=KEY)
        manager.get_token()
        with restartable_redis.down():
            forge_clock.advance(600)
            during = manager.get_token()
            assert manager.get_token() == during
        assert "is unavailable" in caplog.text
        refreshed = manager.refresh()
    finally:
        storage.close()
    assert during == provider.issued[1]
    assert refreshed == provider.issued[2]
    with restartable_redis.client() as client:
        assert client.exists(TOKEN_KEY)


def test_a_sentinel_storage_names_its_service(
    forge_redis_sentinel: RedisSentinelDeployment,
) -> None:
    """A storage over a Sentinel client describes the service, not redis://localhost:6379."""
    client = _sentinel_client(forge_redis_sentinel)
    try:
        assert "forge-master" in repr(RedisTokenStorage(client))
    finally:
        client.close()

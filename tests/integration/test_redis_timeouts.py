"""A RedisTokenStorage built from a URL sets its own socket and connect timeouts, so a stalled
Redis (the real server frozen with SIGSTOP) fails ``get_token()`` within a bound, on every
redis-py the package allows (CI runs this file with the oldest one too).

Each call runs in a thread joined with the bound, so a storage without timeouts fails the
test instead of hanging it; the server resumes when the ``stalled()`` block ends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from requestforge import RedisTokenStorage, TokenData, TokenManager, TokenStorageError
from requestforge_testing import FakeTokenProvider, RedisServer

#: Slack over the socket timeout for the thread to see the error (a loaded CI machine).
SLACK = 3.0


def _token() -> TokenData:
    now = datetime.now(timezone.utc)
    return TokenData(access_token="token-a", expires_at=now + timedelta(days=1), issued_at=now)


def _outcome_within(bound: float, server: RedisServer, call: Callable[[], object]) -> object:
    """``call()``'s result or exception, run while ``server`` is stalled; fails the test if it
    has not returned within ``bound`` seconds of the stall."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as exc:  # noqa: BLE001 - handed to the test below
            outcome.append(exc)

    thread = threading.Thread(target=run)
    with server.stalled():
        thread.start()
        thread.join(bound)
        returned = not thread.is_alive()
    thread.join()
    assert returned, f"still waiting on the stalled Redis after {bound}s"
    return outcome[0]


def _manager(storage: RedisTokenStorage) -> TokenManager:
    manager = TokenManager(FakeTokenProvider(), storage, cache_key="svc", wait_timeout=60.0)
    manager.get_token()  # a token cached, and the storage's connection open, before the stall
    return manager


def test_a_url_storage_sets_both_timeouts(forge_redis: RedisServer) -> None:
    """The storage's own client has the class's socket and connect timeouts."""
    storage = RedisTokenStorage(forge_redis.url)
    try:
        options = storage.client.connection_pool.connection_kwargs  # type: ignore[union-attr]
        assert options["socket_timeout"] == RedisTokenStorage.URL_SOCKET_TIMEOUT
        assert options["socket_connect_timeout"] == RedisTokenStorage.URL_CONNECT_TIMEOUT
    finally:
        storage.close()


def test_timeouts_in_the_url_win(forge_redis: RedisServer) -> None:
    """socket_timeout= and socket_connect_timeout= in the URL's query beat the defaults."""
    storage = RedisTokenStorage(f"{forge_redis.url}?socket_timeout=2&socket_connect_timeout=3")
    try:
        options = storage.client.connection_pool.connection_kwargs  # type: ignore[union-attr]
        assert (options["socket_timeout"], options["socket_connect_timeout"]) == (2.0, 3.0)
    finally:
        storage.close()


def test_a_stalled_redis_fails_get_token_within_the_socket_timeout(
    forge_redis: RedisServer,
) -> None:
    """With the default timeouts a stalled Redis fails get_token() with TokenStorageError
    within URL_SOCKET_TIMEOUT (plus slack), not after the stall or wait_timeout's 60 s; the
    bound is under two timeouts, so a timed-out command sent again would fail it too. (No
    near cache, so that get_token() asks Redis.)"""
    storage = RedisTokenStorage(forge_redis.url, near_cache=False)
    try:
        manager = _manager(storage)
        bound = RedisTokenStorage.URL_SOCKET_TIMEOUT + SLACK
        outcome = _outcome_within(bound, forge_redis, manager.get_token)
    finally:
        storage.close()
    assert isinstance(outcome, TokenStorageError)


def test_a_stalled_redis_does_not_stop_a_warm_near_cache(forge_redis: RedisServer) -> None:
    """With the near cache warm, get_token() serves the valid token during a stall without a
    command, and a forced refresh still fails within the socket timeout."""
    storage = RedisTokenStorage(f"{forge_redis.url}?socket_timeout=1")
    try:
        manager = _manager(storage)
        cached = manager.get_token()
        served = _outcome_within(SLACK, forge_redis, manager.get_token)
        refreshed = _outcome_within(1.0 + SLACK, forge_redis, manager.refresh)
    finally:
        storage.close()
    assert served is cached
    assert isinstance(refreshed, TokenStorageError)


def test_a_stalled_redis_serves_the_last_token_when_degrading(forge_redis: RedisServer) -> None:
    """on_unavailable="local": a stalled Redis serves the last token within the timeout."""
    storage = RedisTokenStorage(f"{forge_redis.url}?socket_timeout=1", on_unavailable="local")
    try:
        manager = _manager(storage)
        cached = manager.get_token()
        outcome = _outcome_within(1.0 + SLACK, forge_redis, manager.get_token)
    finally:
        storage.close()
    assert outcome == cached


def test_the_storage_works_again_once_redis_resumes(forge_redis: RedisServer) -> None:
    """After a stall the storage's next command succeeds: the timed-out connection is
    replaced, and the token is still there."""
    storage = RedisTokenStorage(f"{forge_redis.url}?socket_timeout=1")
    try:
        storage.set("svc", _token())
        outcome = _outcome_within(1.0 + SLACK, forge_redis, lambda: storage.get("svc"))
        assert isinstance(outcome, TokenStorageError)
        resumed = storage.get("svc")
        assert resumed is not None
        assert resumed.access_token == "token-a"
    finally:
        storage.close()

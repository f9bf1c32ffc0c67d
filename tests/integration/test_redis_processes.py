"""Cross-process single flight through Redis: real processes, one redis-server, one token endpoint.

Every worker process runs a ``TokenManager`` over its own ``RedisTokenStorage`` (as separate
gunicorn or Celery workers would) and a ``ClientCredentialsTokenProvider`` pointed at the
local OAuth2 server in this process. The processes share nothing but Redis. Time is a
``FakeClock`` in every process, set by this test before each round, so expiry crossings
are exact and nobody sleeps.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

import pytest

from requestforge import ClientCredentialsTokenProvider, RedisTokenStorage, TokenManager
from requestforge_testing import (
    FakeClock,
    FakeTokenProvider,
    OAuthServer,
    RedisServer,
    forge_stress,
)

PROCESSES = 4
THREADS = 8
ROUNDS = 10
LIFETIME = 600.0

# spawn, not fork: forking a multi-threaded pytest process can deadlock the child.
_mp = multiprocessing.get_context("spawn")


def _worker(conn: Connection, redis_url: str, token_url: str, barrier: Any, threads: int) -> None:
    """A worker process: each round, set the clock, then ``threads`` threads ask for a token
    once every thread of every process has reached the cross-process ``barrier``."""
    clock = FakeClock()
    clock.install()
    provider = ClientCredentialsTokenProvider(token_url, "forge-client", "forge-secret")
    manager = TokenManager(provider, RedisTokenStorage(redis_url))

    def ask() -> str:
        barrier.wait(30)
        return manager.get_token().access_token

    while (message := conn.recv()) is not None:
        clock.set(datetime.fromisoformat(message))
        report = forge_stress(ask, threads=threads)
        conn.send(
            [
                f"error: {type(o.error).__name__}: {o.error}" if o.error else str(o.result)
                for o in report.outcomes
            ]
        )
    provider.close()


def test_processes_fetch_once_per_expiry(
    forge_redis: RedisServer, forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """4 processes x 8 threads: exactly one fetch at the first request and at each expiry."""
    forge_oauth_server.lifetime = LIFETIME
    forge_oauth_server.latency = 0.05  # a slow endpoint: a wide window for a stampede
    barrier = _mp.Barrier(PROCESSES * THREADS)
    pipes = [_mp.Pipe() for _ in range(PROCESSES)]
    workers = [
        _mp.Process(
            target=_worker,
            args=(child, forge_redis.url, forge_oauth_server.token_url, barrier, THREADS),
        )
        for _, child in pipes
    ]
    for worker in workers:
        worker.start()
    fetches: list[int] = []
    tokens: list[set[str]] = []
    answers: list[int] = []
    try:
        for _ in range(ROUNDS):
            before = forge_oauth_server.fetch_count
            for parent, _ in pipes:
                parent.send(forge_clock.now().isoformat())
            seen = [token for parent, _ in pipes for token in parent.recv()]
            fetches.append(forge_oauth_server.fetch_count - before)
            tokens.append(set(seen))
            answers.append(len(seen))
            forge_clock.advance(LIFETIME)  # the next round starts past the expiry
    finally:
        for parent, _ in pipes:
            parent.send(None)
        for worker in workers:
            worker.join(30)
    assert [worker.exitcode for worker in workers] == [0] * PROCESSES
    assert answers == [PROCESSES * THREADS] * ROUNDS  # every thread of every process answered
    assert fetches == [1] * ROUNDS
    assert [len(round_tokens) for round_tokens in tokens] == [1] * ROUNDS
    assert all(not token.startswith("error") for round_tokens in tokens for token in round_tokens)


def _hold_the_lock(redis_url: str, inside: Any) -> None:
    """A worker process that takes the refresh lock and then hangs inside the fetch."""
    provider = FakeTokenProvider()
    provider.pause()
    manager = TokenManager(provider, RedisTokenStorage(redis_url, lock_lease=1.0))
    thread = threading.Thread(target=manager.get_token, daemon=True)
    thread.start()
    provider.wait_until_called(1, timeout=30)
    inside.set()
    thread.join()  # never returns: the test kills this process


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_killed_lock_holder_blocks_others_only_for_the_lease(forge_redis: RedisServer) -> None:
    """A process SIGKILLed while holding the lock mid-fetch delays the next fetch by the lease."""
    inside = _mp.Event()
    holder = _mp.Process(target=_hold_the_lock, args=(forge_redis.url, inside))
    holder.start()
    try:
        assert inside.wait(30), "the holder never reached its fetch"
        client = forge_redis.client()
        locks = [key for key in client.scan_iter("requestforge:*:lock")]
        assert len(locks) == 1  # it holds the refresh lock right now
    finally:
        os.kill(holder.pid or 0, signal.SIGKILL)
        holder.join(30)
    assert holder.exitcode == -signal.SIGKILL

    provider = FakeTokenProvider()
    storage = RedisTokenStorage(forge_redis.url)
    manager = TokenManager(provider, storage, wait_timeout=30)
    token = manager.get_token()  # waits out the dead holder's 1 s lease, then fetches
    assert provider.fetch_count == 1
    assert list(client.scan_iter("requestforge:*:lock")) == []
    other = TokenManager(FakeTokenProvider(), RedisTokenStorage(forge_redis.url))
    assert other.get_token() == token  # stored for every process: nothing was lost

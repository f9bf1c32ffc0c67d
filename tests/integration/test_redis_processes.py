"""Cross-process single flight through Redis: real processes, one redis-server, one token endpoint.

Every worker process (``tests/integration/processes.py``) runs a ``TokenManager`` over its
own ``RedisTokenStorage`` (as separate gunicorn or Celery workers would) and a
``ClientCredentialsTokenProvider`` pointed at the local OAuth2 server in this process. The
processes share nothing but Redis. Time is a ``FakeClock`` in every process, set by this
test before each round, so expiry crossings are exact and nobody sleeps.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import pytest

from requestforge import RedisTokenStorage, TokenManager
from requestforge_testing import FakeClock, FakeTokenProvider, OAuthServer, RedisServer
from tests.integration.processes import CONTEXT, TokenWorker, Workers

PROCESSES = 4
THREADS = 8
ROUNDS = 10
LIFETIME = 600.0


def test_processes_fetch_once_per_expiry(
    forge_redis: RedisServer, forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """4 processes x 8 threads: exactly one fetch at the first request and at each expiry."""
    forge_oauth_server.lifetime = LIFETIME
    forge_oauth_server.latency = 0.05  # a slow endpoint: a wide window for a stampede
    fetches: list[int] = []
    tokens: list[set[str]] = []
    answers: list[int] = []
    with Workers(
        PROCESSES,
        TokenWorker,
        redis_url=forge_redis.url,
        token_url=forge_oauth_server.token_url,
        api_url=forge_oauth_server.api_url,
        barriers={THREADS: CONTEXT.Barrier(PROCESSES * THREADS)},
    ) as workers:
        for _ in range(ROUNDS):
            before = forge_oauth_server.fetch_count
            seen = [
                t
                for answer in workers.ask_all(forge_clock.now(), "tokens", THREADS)
                for t in answer
            ]
            fetches.append(forge_oauth_server.fetch_count - before)
            tokens.append(set(seen))
            answers.append(len(seen))
            forge_clock.advance(LIFETIME)  # the next round starts past the expiry
    assert workers.exitcodes == [0] * PROCESSES
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
    inside = CONTEXT.Event()
    holder = CONTEXT.Process(target=_hold_the_lock, args=(forge_redis.url, inside))
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
